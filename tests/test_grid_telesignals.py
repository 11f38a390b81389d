"""Telesignals (grid/telesignals.py) over real poll cycles against the simulator on loopback, on both engines: the terminal's door,
smoke and water inputs, an outlet breaker in service that opens, and the environment over the [grid] limits each
open an alarm event on the area (kind, subject, message in both languages) and close it when they clear; a spare
outlet never closed raises nothing; a lost terminal keeps its area's events and its lost contact is named for the
area page."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from collectors.cycle import CollectorService
from collectors.poller import FieldIO
from collectors.profiles import ProfileRegistry
from collectors.topology_import import import_topology
from core.config import GridConfig
from core.events import ALARM_CHANGED, EventBus
from grid.telesignals import Telesignals, conditions
from simulator.field import run_field_in_thread
from simulator.site import BusSpec, GatewaySpec, MeterSpec, SiteSpec
from storage import alarms
from storage import grid_areas
from storage.schema import alarm_event, gateway, meter, transformer_area

from tests.conftest import free_port_block

TTU, MASTER, ROOM = "202611309002", "202611309001", "202611309011"


def _site(port: int) -> SiteSpec:
    return SiteSpec("signals", [GatewaySpec("GW-T", buses=[BusSpec(1, port, meters=[
        MeterSpec(ROOM, 1, "acrel-ddsy1352", building="Hall", floor=1, room="H-101", area="Area S",
                  balance_fen=5000),
        MeterSpec(MASTER, 2, "eastron-sdm630", building="Hall", area="Area S", prepaid_enabled=False),
        MeterSpec(TTU, 3, "wattline-ttu", building="Hall", area="Area S", prepaid_enabled=False),
    ])])])


@pytest.fixture
def area(any_engine, fixed_now):
    spec = _site(free_port_block(1))
    rows = [{k: "" if v is None else str(v) for k, v in r.items()} for r in spec.topology_rows()]
    import_topology(any_engine, rows, set(ProfileRegistry().names()), fixed_now)
    with any_engine.begin() as conn:
        conn.execute(gateway.update().values(timeout_s=0.8, retries=0))
        area_id = conn.execute(sa.select(transformer_area.c.id)).scalar_one()
    minutes = iter(fixed_now.replace(minute=m) for m in range(60))
    bus, heard = EventBus(), []
    bus.subscribe(ALARM_CHANGED, heard.append)
    with run_field_in_thread(spec) as ft, FieldIO(ProfileRegistry()) as fio:
        service = CollectorService(any_engine, fio, lost_after=1, clock=lambda: next(minutes), events=bus)
        signals = Telesignals(any_engine, clock=service.clock, limits=GridConfig())
        signals.subscribe(bus)
        service.run_cycle()
        yield ft.field, service, any_engine, area_id, heard


def _events(engine, area_id, kind):
    with engine.connect() as conn:
        return [alarms.as_alarm(r) for r in conn.execute(sa.select(alarm_event).where(
            alarm_event.c.subject_kind == "area", alarm_event.c.subject_id == area_id, alarm_event.c.kind == kind)
            .order_by(alarm_event.c.id)).mappings()]


@pytest.mark.parametrize("signal, kind, level, zh", [
    ("door_open", alarms.AREA_DOOR_OPEN, alarms.AlarmLevel.WARNING, "Area S：台区终端 202611309002 报告门开。"),
    ("smoke", alarms.AREA_SMOKE, alarms.AlarmLevel.CRITICAL, "Area S：台区终端 202611309002 报告烟感动作。"),
    ("water", alarms.AREA_WATER, alarms.AlarmLevel.CRITICAL, "Area S：台区终端 202611309002 报告水浸。"),
])
def test_a_terminal_input_opens_an_event_on_its_area_and_closes_when_it_clears(area, signal, kind, level, zh):
    field, service, engine, area_id, heard = area
    assert _events(engine, area_id, kind) == []
    field.set_terminal_input(TTU, signal, True)
    service.run_cycle()
    service.run_cycle()
    [event] = _events(engine, area_id, kind)
    assert event["closed_at"] is None and event["level"] == level
    assert (event["subject_kind"], event["subject_id"]) == ("area", area_id)
    assert alarms.message_text(event, "zh") == zh
    assert TTU in alarms.message_text(event, "en") and "Area S" in alarms.message_text(event, "en")
    assert [c.subject_id for e in heard for c in e.opened if c.kind == kind] == [area_id], "announced once"
    field.set_terminal_input(TTU, signal, False)
    service.run_cycle()
    [event] = _events(engine, area_id, kind)
    assert event["closed_at"] is not None
    assert [c.subject_id for e in heard for c in e.closed if c.kind == kind] == [area_id]


def test_the_changeover_to_the_standby_supply_is_an_event_while_it_lasts(area):
    field, service, engine, area_id, _heard = area
    field.trigger_changeover(TTU, True)
    service.run_cycle()
    [event] = _events(engine, area_id, alarms.AREA_CHANGEOVER)
    assert event["closed_at"] is None and "standby" in alarms.message_text(event, "en")
    field.trigger_changeover(TTU, False)
    service.run_cycle()
    assert _events(engine, area_id, alarms.AREA_CHANGEOVER)[0]["closed_at"] is not None


def _set_breaker(field, outlet: int, closed: bool) -> None:
    terminal = field.meter(TTU)

    def apply():
        terminal.breakers[outlet - 1] = closed
        terminal.mark_dirty()
    field._call_in_loop(apply)


def test_an_outlet_breaker_that_opens_is_one_event_naming_the_open_outlets(area):
    field, service, engine, area_id, _heard = area
    assert _events(engine, area_id, alarms.AREA_BREAKER_OPEN) == [], "outlets 7 and 8 are spare: never closed"
    _set_breaker(field, 2, False)
    service.run_cycle()
    [event] = _events(engine, area_id, alarms.AREA_BREAKER_OPEN)
    assert event["message_params"]["outlets"] == "2"
    assert alarms.message_text(event, "en") == "Area S: outlet breaker(s) 2 open."
    _set_breaker(field, 5, False)
    service.run_cycle()
    [event] = _events(engine, area_id, alarms.AREA_BREAKER_OPEN)
    assert event["closed_at"] is None and event["message_params"]["outlets"] == "2, 5", "the same event, updated"
    _set_breaker(field, 2, True)
    _set_breaker(field, 5, True)
    service.run_cycle()
    [event] = _events(engine, area_id, alarms.AREA_BREAKER_OPEN)
    assert event["closed_at"] is not None


def test_the_environment_over_its_limit_opens_and_closes_below_the_margin(area):
    field, service, engine, area_id, _heard = area
    with engine.connect() as conn:
        [state] = grid_areas.terminal_states(conn)
    humidity = state["humidity"]
    assert humidity is not None
    signals = Telesignals(engine, clock=service.clock, limits=GridConfig(humidity_max=humidity - 5))
    signals.evaluate()
    [event] = _events(engine, area_id, alarms.AREA_HUMIDITY)
    assert event["closed_at"] is None and f"{humidity - 5:g} %" in alarms.message_text(event, "en")
    Telesignals(engine, clock=service.clock, limits=GridConfig(humidity_max=humidity + 1)).evaluate()
    assert _events(engine, area_id, alarms.AREA_HUMIDITY)[0]["closed_at"] is None, "within the margin: held"
    Telesignals(engine, clock=service.clock, limits=GridConfig(humidity_max=humidity + 5)).evaluate()
    assert _events(engine, area_id, alarms.AREA_HUMIDITY)[0]["closed_at"] is not None


def test_a_lost_terminal_keeps_its_areas_events_and_the_area_names_its_lost_contact(area):
    field, service, engine, area_id, _heard = area
    field.set_terminal_input(TTU, "door_open", True)
    service.run_cycle()
    field.set_terminal_input(TTU, "door_open", False)
    field.set_meter_offline(TTU, True)
    service.run_cycle()
    assert _events(engine, area_id, alarms.AREA_DOOR_OPEN)[0]["closed_at"] is None, "its state is old"
    with engine.connect() as conn:
        named = grid_areas.area_open_alarms(conn, area_id)
        ttu_id = conn.execute(sa.select(meter.c.id).where(meter.c.address == TTU)).scalar_one()
    assert {(a["kind"], a["device"]) for a in named} == {(alarms.AREA_DOOR_OPEN, "area"),
                                                         (alarms.LOST_CONTACT, "terminal")}
    assert next(a for a in named if a["device"] == "terminal")["subject_id"] == ttu_id
    field.set_meter_offline(TTU, False)
    service.run_cycle()
    assert _events(engine, area_id, alarms.AREA_DOOR_OPEN)[0]["closed_at"] is not None


def test_the_conditions_leave_what_the_terminal_does_not_report():
    row = {"area": "A", "terminal": "T", "door_open": None, "breaker_1": None, "humidity": 88.5}
    out = conditions(row, {1}, GridConfig(humidity_max=90.0, environment_margin=2.0))
    assert out[alarms.AREA_DOOR_OPEN][0] is None and out[alarms.AREA_BREAKER_OPEN][0] is None
    assert out[alarms.AREA_HUMIDITY][0] is None, "between the limit less the margin and the limit: left as it is"


def test_smoke_reaches_the_alarm_numbers_once_in_the_operators_language(area):
    from core.config import SmsConfig, site_zone
    from notify.outbox import messages
    from notify.rules import NotificationRules
    field, service, engine, area_id, _heard = area
    rules = NotificationRules(engine, SmsConfig(alarm_numbers=("13900000001",), operator_language="zh"),
                              site_zone("+08:00"))
    rules.subscribe(service.events)
    field.set_terminal_input(TTU, "door_open", True)     # a warning: seen on /alarms, no message
    field.set_terminal_input(TTU, "smoke", True)
    service.run_cycle()
    service.run_cycle()
    with engine.connect() as conn:
        [msg] = [m for m in messages(conn) if m["kind"] == "area_alarm"]
    assert msg["recipient"] == "operator" and msg["phone"] == "13900000001"
    assert msg["text"].endswith("：Area S：台区终端 202611309002 报告烟感动作。") and msg["text"].startswith("Wattline报警")


def test_the_telesignals_job_opens_what_it_finds_and_reports_on_its_status(area):
    from collectors.schedule import Jobs
    from grid.telesignals import JOB, attach_telesignals
    field, service, engine, area_id, _heard = area
    with engine.connect() as conn:
        [state] = grid_areas.terminal_states(conn)
    jobs = Jobs(clock=service.clock)
    attach_telesignals(engine, EventBus(), GridConfig(humidity_max=state["humidity"] - 5), jobs, clock=service.clock)
    assert _events(engine, area_id, alarms.AREA_HUMIDITY) == []
    assert jobs.run(JOB)
    [status] = [s for s in jobs.status() if s.name == JOB]
    assert status.last_ok and status.runs == 1
    assert _events(engine, area_id, alarms.AREA_HUMIDITY)[0]["closed_at"] is None
