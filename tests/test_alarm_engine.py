"""The alarm engine (billing/alarm_engine.py) over real poll cycles against the simulator on loopback: low balance,
arrears and tamper open and close through storage.alarms, a wobbling balance opens one event, meter_state carries
the level, and what opened or closed is published on ALARM_CHANGED."""
from __future__ import annotations

from decimal import Decimal

import pytest
import sqlalchemy as sa

from billing.alarm_engine import AlarmEngine, meter_conditions
from core.events import ALARM_CHANGED, EventBus
from storage import alarms
from storage.schema import alarm_event, meter, meter_state

from tests.test_collector_cycle import field_and_service  # noqa: F401  (a small field on loopback)

ROOM = "202611210003"     # 50.00 yuan, above both alarm amounts (20.00, 5.00)


@pytest.fixture
def site(field_and_service):  # noqa: F811
    field, service, engine = field_and_service
    with engine.begin() as conn:   # the room is sold: its balance counts against the site's amounts
        conn.execute(meter.update().where(meter.c.address == ROOM).values(status="opened"))
        mid = conn.execute(sa.select(meter.c.id).where(meter.c.address == ROOM)).scalar_one()
    bus = EventBus()
    heard: list = []
    bus.subscribe(ALARM_CHANGED, heard.append)
    service.events = bus
    alarm_engine = AlarmEngine(engine, clock=service.clock, close_margin=Decimal("1.00"))
    alarm_engine.subscribe(bus)
    service.run_cycle()
    return field, service, engine, mid, heard


def _events(engine, mid, kind):
    with engine.connect() as conn:
        return conn.execute(sa.select(alarm_event).where(
            alarm_event.c.subject_kind == "meter", alarm_event.c.subject_id == mid, alarm_event.c.kind == kind)
            .order_by(alarm_event.c.id)).mappings().all()


def _level(engine, mid):
    with engine.connect() as conn:
        return conn.execute(sa.select(meter_state.c.alarm_level).where(meter_state.c.meter_id == mid)).scalar_one()


def _set(field, **values):
    m = field.meter(ROOM)
    for k, v in values.items():
        setattr(m, k, v)
    m.mark_dirty()     # the meter's registers show it at the next read


def _poll_with_balance(field, service, fen):
    _set(field, balance_fen=fen)
    service.run_cycle()


def test_alarm_1_opens_once_and_closes_when_the_room_is_topped_up(site):
    field, service, engine, mid, heard = site
    assert _events(engine, mid, alarms.ALARM1) == [] and _level(engine, mid) == 0
    for fen in (1500, 1400, 1300):
        _poll_with_balance(field, service, fen)
    [event] = _events(engine, mid, alarms.ALARM1)
    assert event["closed_at"] is None and event["level"] == alarms.AlarmLevel.WARNING
    assert alarms.message_text(alarms.as_alarm(event), "en").startswith("Balance 15.00 yuan"), "as it opened"
    assert _level(engine, mid) == 1
    opened = [c for e in heard for c in e.opened if c.kind == alarms.ALARM1 and c.subject_id == mid]
    assert [(c.subject_kind, c.id, dict(c.params)["balance"]) for c in opened] == [("meter", event["id"], "15.00")]
    _poll_with_balance(field, service, 10000)
    [event] = _events(engine, mid, alarms.ALARM1)
    assert event["closed_at"] is not None and _level(engine, mid) == 0
    assert [c.subject_id for e in heard for c in e.closed if c.kind == alarms.ALARM1] == [mid]


def test_a_balance_wobbling_across_the_amount_three_times_opens_one_event(site):
    field, service, engine, mid, heard = site
    for fen in (1990, 2010, 1990, 2010, 1990, 2010):
        _poll_with_balance(field, service, fen)
    [event] = _events(engine, mid, alarms.ALARM1)
    assert event["closed_at"] is None, "20.10 is within the 1.00 margin above 20.00: still the same episode"
    _poll_with_balance(field, service, 2150)
    assert _events(engine, mid, alarms.ALARM1)[0]["closed_at"] is not None


def test_arrears_opens_when_the_meter_trips_and_closes_after_a_recharge(site):
    field, service, engine, mid, heard = site
    _poll_with_balance(field, service, -50)
    [arrears] = _events(engine, mid, alarms.ARREARS)
    assert arrears["closed_at"] is None and _level(engine, mid) == 2
    assert {e["kind"] for e in (*_events(engine, mid, alarms.ALARM1), *_events(engine, mid, alarms.ALARM2))} == {
        "alarm1", "alarm2"}
    _poll_with_balance(field, service, 8000)
    assert all(e["closed_at"] is not None for k in (alarms.ARREARS, alarms.ALARM1, alarms.ALARM2)
               for e in _events(engine, mid, k))
    assert _level(engine, mid) == 0


def test_tamper_opens_when_the_cover_is_opened_and_closes_when_it_is_shut(site):
    field, service, engine, mid, heard = site
    _set(field, tamper=True)
    service.run_cycle()
    service.run_cycle()
    [tamper] = _events(engine, mid, alarms.TAMPER)
    assert tamper["closed_at"] is None and tamper["level"] == alarms.AlarmLevel.CRITICAL
    assert alarms.message_text(alarms.as_alarm(tamper), "zh") == "电表报告表盖被打开。"
    _set(field, tamper=False)
    service.run_cycle()
    assert _events(engine, mid, alarms.TAMPER)[0]["closed_at"] is not None


def test_a_lost_meter_keeps_its_alarms_and_its_lost_contact_is_announced(site):
    field, service, engine, mid, heard = site
    _poll_with_balance(field, service, 1500)
    field.set_meter_offline(ROOM, True)
    for _ in range(3):
        service.run_cycle()
    assert _events(engine, mid, alarms.ALARM1)[0]["closed_at"] is None, "its last balance is old, not better"
    lost = [c for e in heard for c in e.opened if c.kind == alarms.LOST_CONTACT]
    assert [(c.subject_kind, c.subject_id, c.message_code) for c in lost] == [("meter", mid, "meter_lost")]
    assert _level(engine, mid) == 1


def test_the_close_conditions_widen_by_the_margin_and_need_the_polls_asked_for(site):
    field, service, engine, mid, heard = site
    row = {"status": "opened", "balance_fen": 2050, "alarm1": False, "alarm2": False, "arrears": False,
           "overload": False, "tamper": False}
    assert meter_conditions(row, (2000, 500), 100)[alarms.ALARM1] == (False, True)
    assert meter_conditions({**row, "status": "not_opened", "balance_fen": 0, "arrears": None},
                            (2000, 500), 100)[alarms.ARREARS] == (False, False), "an unsold meter owes nothing"
    slow = AlarmEngine(engine, clock=service.clock, close_margin=Decimal("0"), close_after_polls=2)
    service.events = None
    _poll_with_balance(field, service, 1500)
    slow.evaluate()
    _poll_with_balance(field, service, 9000)
    slow.evaluate()
    assert _events(engine, mid, alarms.ALARM1)[0]["closed_at"] is None, "clear for one poll of the two asked"
    service.run_cycle()
    slow.evaluate()
    assert _events(engine, mid, alarms.ALARM1)[0]["closed_at"] is not None



def test_relay_commands_of_a_batch_that_fail_open_alarms_and_send_the_operators_one_message(duck_engine):
    """Through the real parts: a trip batch queued by billing.control, sent by the dispatcher to the simulator, two
    meters acknowledging without tripping (set_relay_ignored): COMMAND_SETTLED reaches the alarm engine (a
    command_failed alarm on each of them, their level in meter_state) and the notification rules (one message to
    each alarm number for the batch, not one per meter)."""
    from functools import partial

    from billing import control, settlement
    from billing.context import utcnow
    from collectors.cycle import CollectorService
    from collectors.dispatch import Dispatcher
    from collectors.poller import FieldIO
    from collectors.profiles import ProfileRegistry
    from core.config import SmsConfig, site_zone
    from core.events import COMMAND_SETTLED
    from notify.outbox import messages
    from notify.rules import NotificationRules
    from simulator.field import run_field_in_thread
    from simulator.secure import TEST_MASTER_KEY
    from tests.billing_support import actor, flat_tariff, load_site, make_ctx
    from tests.conftest import free_port_block
    from tests.test_control import control_site, number

    spec = control_site(free_port_block(3))
    load_site(duck_engine, spec, utcnow())
    ctx = make_ctx(duck_engine, utcnow)
    flat_tariff(ctx)
    bus, heard, settled = EventBus(), [], []
    bus.subscribe(ALARM_CHANGED, heard.append)
    bus.subscribe(COMMAND_SETTLED, settled.append)
    AlarmEngine(duck_engine, clock=utcnow).subscribe(bus)
    NotificationRules(duck_engine, SmsConfig(quiet_hours="", alarm_numbers=("13900000001", "13900000002")),
                      site_zone("+08:00")).subscribe(bus)
    with run_field_in_thread(spec) as ft, FieldIO(ProfileRegistry()) as fio:
        CollectorService(duck_engine, fio, clock=utcnow).run_cycle()     # meter_state, as a running site has it
        dispatcher = Dispatcher(duck_engine, fio, TEST_MASTER_KEY, utcnow, send_timeout_s=1.0, backoff_s=0,
                                on_settled=partial(settlement.settle_command, ctx), events=bus)
        for n in (1, 2):
            ft.field.set_relay_ignored(number(n))
        batch = control.queue_batch(ctx, actor("operator", "olga"),
                                    control.Selection(building="Dorm C", floor=1), "trip", "maintenance")
        dispatcher.run_once()
    assert sorted(s.state for s in settled) == ["acked", "acked", "failed", "failed"]
    with duck_engine.connect() as conn:
        ids = dict(conn.execute(sa.select(meter.c.address, meter.c.id)).all())
        failed = conn.execute(sa.select(alarm_event.c.subject_id).where(
            alarm_event.c.kind == alarms.COMMAND_FAILED, alarm_event.c.closed_at.is_(None))).scalars().all()
        levels = dict(conn.execute(sa.select(meter_state.c.meter_id, meter_state.c.alarm_level)).all())
        sms = messages(conn)
    assert sorted(failed) == sorted(ids[number(n)] for n in (1, 2))
    assert all(levels.get(ids[number(n)], 0) >= 1 for n in (1, 2)) and levels.get(ids[number(3)], 0) == 0
    announced = [c.subject_id for e in heard for c in e.opened if c.kind == alarms.COMMAND_FAILED]
    assert sorted(announced) == sorted(failed)
    assert sorted((m["phone"], m["kind"], m["recipient"]) for m in sms) == [
        ("13900000001", "command_failed", "operator"), ("13900000002", "command_failed", "operator")]
    assert all(batch.batch_id in m["text"] for m in sms)
