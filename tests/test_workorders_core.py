"""Work orders, the core: the lifecycle and who may take each step, automatic orders from alarms (one open order per
cause, also when the alarm fires again or two runs race), deadlines with a fixed clock (overdue, paused on hold,
working hours), customers identified by QR in their district, dispatch, fees, search and hostile input."""
from __future__ import annotations

import datetime as dt
import threading
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from billing import qr
from billing.errors import BillingError
from core.config import WorkOrdersConfig
from storage import alarms
from storage.schema import audit_log, notification, work_order, work_order_event, work_order_fee, work_order_material
from tests.workorder_support import METER_A, METER_B, QR_KEY, copied_site, reopen, template_file, work_site
from workorders.deadlines import Calendar, due_flag
from workorders.errors import WorkOrderError
from workorders.model import CLOCK_STATES
from workorders.service import WorkOrderService, choose_worker, fee_totals

NOW = dt.datetime(2026, 11, 21, 2, 0)   # 10:00 in Shanghai, a Saturday


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    return template_file(tmp_path_factory, NOW)


@pytest.fixture
def site(template, tmp_path):
    with copied_site(template, tmp_path, NOW) as s:
        yield s


@pytest.fixture
def any_site(any_engine):
    return work_site(any_engine, NOW)


def _count(engine, table, *where) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table).where(*where)).scalar_one()


def _meter_id(engine, address):
    from storage.schema import meter
    with engine.connect() as conn:
        return conn.execute(sa.select(meter.c.id).where(meter.c.address == address)).scalar_one()


def _open_alarm(engine, kind, meter_id, at, code="arrears", params=None):
    with engine.begin() as conn:
        return alarms.open_alarm(conn, kind, alarms.meter(meter_id), alarms.AlarmLevel.CRITICAL, code,
                                 params if params is not None else {"balance": "0.00"}, at)


def _close_alarm(engine, kind, meter_id, at):
    with engine.begin() as conn:
        alarms.close_alarm(conn, kind, alarms.meter(meter_id), at)


# --- the lifecycle ----------------------------------------------------------------------------------------------
def test_an_order_goes_from_created_to_archived_with_one_event_per_step(any_site):
    s, svc = any_site, any_site.service
    o = svc.create(s.manager, type="repair", description="No power in A-101", account=s.accounts["A"]).order
    assert (o["state"], o["customer_name"], o["building_id"]) == ("created", "Li Lei", s.buildings["A"])
    wang = s.worker("wang")
    steps = [(s.manager, "dispatch", {"worker_id": s.ids["wang"]}), (wang, "accept", {}),
             (wang, "arrive", {"lat": 31.2, "lon": 121.5}), (wang, "complete", {}), (s.manager, "approve", {}),
             (s.manager, "archive", {})]
    svc.completion_checks = ()     # photos are the field side's (tests/test_workorders_upload.py)
    for who, action, kw in steps:
        o = svc.act(who, o["id"], action, **kw)
    assert o["state"] == "archived" and o["closed_at"] is not None
    view = svc.order_view(s.manager, o["id"])
    assert [(e["action"], e["from_state"], e["to_state"]) for e in view["events"]] == [
        ("create", None, "created"), ("dispatch", "created", "dispatched"), ("accept", "dispatched", "accepted"),
        ("arrive", "accepted", "on_site"), ("complete", "on_site", "completed"), ("approve", "completed", "approved"),
        ("archive", "approved", "archived")]
    arrive = view["events"][3]
    assert (arrive["actor"], arrive["lat"], arrive["lon"]) == ("wang", 31.2, 121.5)
    assert _count(s.engine, audit_log, audit_log.c.action.like("workorder.%"),
                  audit_log.c.target == f"work_order:{o['number']}") == 7


def test_the_card_of_the_type_is_copied_into_the_order(site):
    view = site.service.order_view(site.manager, site.service.create(
        site.manager, type="new_connection", description="new flat", account=site.accounts["A"]).order["id"])
    assert [st["kind"] for st in view["steps"]][:4] == ["step"] * 4
    assert any(st["kind"] == "hazard" for st in view["steps"])
    assert {m["kind"] for m in view["materials"]} == {"tool", "material", "service"}
    assert view["totals"]["services"] == Decimal("200.00")
    assert view["totals"]["materials"] == Decimal("240.00")    # 10 m x 12.00 + one box 120.00


def test_a_worker_cannot_accept_another_workers_order_and_the_refusal_is_logged(site):
    svc = site.service
    o = svc.create(site.manager, type="repair", description="x", account=site.accounts["A"]).order
    svc.dispatch(site.manager, o["id"], site.ids["wang"])
    with pytest.raises(WorkOrderError) as refused:
        svc.act(site.worker("zhao"), o["id"], "accept")
    assert refused.value.code == "permission_denied"
    assert svc.order_view(site.manager, o["id"])["order"]["state"] == "dispatched"
    assert _count(site.engine, audit_log, audit_log.c.action == "permission.denied",
                  audit_log.c.operator == "zhao") == 1
    with pytest.raises(WorkOrderError) as hidden:
        svc.order_view(site.worker("zhao"), o["id"])
    assert hidden.value.code == "order_unknown"
    assert svc.search(site.worker("zhao")) == [] and len(svc.search(site.worker("wang"))) == 1


@pytest.mark.parametrize("who, action", [("manager", "accept"), ("manager", "complete"), ("worker", "approve"),
                                         ("worker", "cancel"), ("worker", "dispatch"), ("cashier", "dispatch")])
def test_each_role_takes_only_its_own_steps(site, who, action):
    svc = site.service
    o = svc.create(site.manager, type="temporary", description="x", account=site.accounts["A"]).order
    svc.dispatch(site.manager, o["id"], site.ids["wang"])
    actor = {"manager": site.manager, "worker": site.worker("wang"), "cashier": site.actor("cashier", "cashier")}[who]
    with pytest.raises(WorkOrderError) as refused:
        svc.act(actor, o["id"], action, reason="because", worker_id=site.ids["zhao"])
    assert refused.value.code == "permission_denied"
    assert _count(site.engine, work_order_event, work_order_event.c.order_id == o["id"]) == 2


def test_a_step_the_state_does_not_allow_is_refused_and_writes_nothing(site):
    svc = site.service
    o = svc.create(site.manager, type="temporary", description="x").order
    with pytest.raises(WorkOrderError) as refused:
        svc.act(site.manager, o["id"], "approve")
    assert refused.value.code == "action_not_allowed"
    assert refused.value.message("zh").startswith("工单当前状态")
    assert _count(site.engine, work_order_event, work_order_event.c.order_id == o["id"]) == 1


def test_a_declined_order_goes_back_unassigned_with_the_reason(site):
    svc = site.service
    o = svc.create(site.manager, type="repair", description="x", account=site.accounts["A"]).order
    svc.dispatch(site.manager, o["id"], site.ids["wang"])
    with pytest.raises(WorkOrderError) as no_reason:
        svc.act(site.worker("wang"), o["id"], "decline", reason=" \x00 ")
    assert no_reason.value.code == "reason_required"
    o = svc.act(site.worker("wang"), o["id"], "decline", reason="sick today")
    assert (o["state"], o["assigned_to"], o["reason"]) == ("created", None, "sick today")
    assert svc.my_orders(site.worker("wang")) == []


def test_a_rejected_order_goes_back_to_its_worker_on_site(site):
    svc = site.service
    svc.completion_checks = ()
    o = svc.create(site.manager, type="repair", description="x", account=site.accounts["A"]).order
    svc.dispatch(site.manager, o["id"], site.ids["wang"])
    for action in ("accept", "arrive", "complete"):
        svc.act(site.worker("wang"), o["id"], action)
    o = svc.act(site.manager, o["id"], "reject", reason="meter seal missing")
    assert (o["state"], o["reason"]) == ("rejected", "meter seal missing")
    assert svc.my_orders(site.worker("wang"))[0]["state"] == "rejected"
    assert svc.act(site.worker("wang"), o["id"], "rework")["state"] == "on_site"
    assert svc.act(site.worker("wang"), o["id"], "complete")["state"] == "completed"


def test_completing_a_type_that_needs_a_photo_without_one_is_refused(site):
    svc = site.service
    o = svc.create(site.manager, type="repair", description="x", account=site.accounts["A"]).order
    svc.dispatch(site.manager, o["id"], site.ids["wang"])
    svc.act(site.worker("wang"), o["id"], "accept")
    svc.act(site.worker("wang"), o["id"], "arrive")
    with pytest.raises(WorkOrderError) as refused:
        svc.act(site.worker("wang"), o["id"], "complete")
    assert refused.value.code == "photo_required"
    assert svc.order_view(site.manager, o["id"])["order"]["state"] == "on_site"


# --- automatic orders ---------------------------------------------------------------------------------------------
def test_an_arrears_alarm_creates_exactly_one_fee_collection_order_also_when_it_fires_again(any_site):
    s, svc = any_site, any_site.service
    mid = _meter_id(s.engine, METER_A)
    _open_alarm(s.engine, alarms.ARREARS, mid, NOW)
    assert svc.raise_orders_from_alarms(NOW + dt.timedelta(hours=23)) == []        # not long enough yet
    made = svc.raise_orders_from_alarms(NOW + dt.timedelta(hours=24))
    assert [(o["type"], o["source"], o["customer_name"]) for o in made] == [("fee_collection", "alarm", "Li Lei")]
    assert svc.raise_orders_from_alarms(NOW + dt.timedelta(hours=25)) == []
    _close_alarm(s.engine, alarms.ARREARS, mid, NOW + dt.timedelta(hours=26))       # paid, then ran out again
    _open_alarm(s.engine, alarms.ARREARS, mid, NOW + dt.timedelta(hours=27))
    assert svc.raise_orders_from_alarms(NOW + dt.timedelta(hours=60)) == []
    assert _count(s.engine, work_order, work_order.c.type == "fee_collection") == 1
    # once that order is closed, the alarm that fired again (still open) may raise the next one
    svc.act(s.manager, made[0]["id"], "cancel", reason="customer paid at the desk")
    assert len(svc.raise_orders_from_alarms(NOW + dt.timedelta(hours=61))) == 1
    assert svc.raise_orders_from_alarms(NOW + dt.timedelta(hours=62)) == []


def test_two_runs_at_once_raise_one_order_for_a_cause(any_site):
    s, svc = any_site, any_site.service
    _open_alarm(s.engine, alarms.ARREARS, _meter_id(s.engine, METER_B), NOW)
    results, errors = [], []
    start = threading.Barrier(4)

    def run():
        try:
            start.wait()
            results.append(len(svc.raise_orders_from_alarms(NOW + dt.timedelta(days=2))))
        except Exception as exc:  # noqa: BLE001 - the assertion below shows it
            errors.append(exc)
    threads = [threading.Thread(target=run) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == [] and sum(results) == 1
    assert _count(s.engine, work_order, work_order.c.type == "fee_collection") == 1


def test_an_alarm_opening_raises_its_order_through_the_event(site):
    svc = site.service
    mid = _meter_id(site.engine, METER_A)
    _open_alarm(site.engine, alarms.COMMAND_FAILED, mid, NOW, code="command_failed",
                params={"command": 7, "command_kind": "close", "result": "NO_ANSWER"})
    svc.on_alarm_changed(alarms.AlarmChanges(NOW, ()))          # nothing opened: nothing to do
    assert _count(site.engine, work_order) == 0
    from billing.alarm_engine import _change
    with site.engine.connect() as conn:
        opened = alarms.open_alarms(conn, alarms.COMMAND_FAILED)
    svc.on_alarm_changed(alarms.AlarmChanges(NOW, tuple(_change(a, True) for a in opened)))
    with site.engine.connect() as conn:
        rows = conn.execute(sa.select(work_order.c.type, work_order.c.priority, work_order.c.cause_key)).all()
    assert [tuple(r) for r in rows] == [("repair", "urgent", f"relay_failed:meter:{mid}")]


def test_a_failed_money_command_raises_no_repair_order(site):
    _open_alarm(site.engine, alarms.COMMAND_FAILED, _meter_id(site.engine, METER_A), NOW, code="command_failed",
                params={"command": 8, "command_kind": "recharge", "result": "NOT_EXECUTED"})
    assert site.service.raise_orders_from_alarms(NOW) == []


def test_a_meter_lost_long_enough_gets_a_repair_order(site):
    mid = _meter_id(site.engine, METER_B)
    _open_alarm(site.engine, alarms.LOST_CONTACT, mid, NOW, code="meter_lost", params={"error": "timeout"})
    assert site.service.raise_orders_from_alarms(NOW + dt.timedelta(hours=3)) == []
    made = site.service.raise_orders_from_alarms(NOW + dt.timedelta(hours=4))
    assert [(o["type"], o["building_id"]) for o in made] == [("repair", site.buildings["B"])]


# --- deadlines -----------------------------------------------------------------------------------------------------
def test_an_order_is_due_soon_then_overdue_at_its_deadline(site):
    svc = site.service
    o = svc.create(site.manager, type="repair", description="x", priority="urgent", now=NOW).order
    assert o["due_at"] == NOW + dt.timedelta(hours=4)
    assert svc.due_flag(o, NOW + dt.timedelta(hours=1, minutes=59)) is None
    assert svc.due_flag(o, NOW + dt.timedelta(hours=2)) == "due_soon"
    assert svc.due_flag(o, o["due_at"] - dt.timedelta(seconds=1)) == "due_soon"
    assert svc.due_flag(o, o["due_at"]) == "overdue"
    found = svc.search(site.manager, now=o["due_at"])
    assert [r["flag"] for r in found] == ["overdue"]


def test_a_hold_pauses_the_clock_and_moves_the_deadline_by_the_time_held(site):
    svc = site.service
    o = svc.create(site.manager, type="repair", description="x", priority="urgent", now=NOW).order
    svc.dispatch(site.manager, o["id"], site.ids["wang"], now=NOW + dt.timedelta(hours=1))
    held = svc.act(site.worker("wang"), o["id"], "hold", reason="customer away", now=NOW + dt.timedelta(hours=3))
    assert held["state"] == "on_hold"
    assert svc.due_flag(held, NOW + dt.timedelta(hours=10)) is None           # the clock stands still on hold
    back = svc.act(site.manager, o["id"], "release", now=NOW + dt.timedelta(hours=8))
    assert (back["state"], back["due_at"], back["held_seconds"]) == (
        "dispatched", NOW + dt.timedelta(hours=9), 5 * 3600)
    assert svc.due_flag(back, NOW + dt.timedelta(hours=8, minutes=59)) == "due_soon"
    assert svc.due_flag(back, NOW + dt.timedelta(hours=9)) == "overdue"


def test_a_type_s_own_limit_wins_over_the_priority_default(site):
    svc = site.service
    svc.set_time_limit(site.manager, "repair", "normal", "8")
    assert svc.create(site.manager, type="repair", description="x", now=NOW).order["due_at"] == NOW + dt.timedelta(
        hours=8)
    with pytest.raises(WorkOrderError):
        svc.set_time_limit(site.manager, "repair", "normal", "８")
    with pytest.raises(WorkOrderError) as refused:
        svc.set_time_limit(site.worker(), "repair", "normal", "8")
    assert refused.value.code == "permission_denied"


def test_working_hours_carry_the_deadline_over_the_night_and_the_weekend():
    zone = ZoneInfo("Asia/Shanghai")
    cal = Calendar.from_config(WorkOrdersConfig(working_hours="08:00-18:00", working_days="1-5"), zone)
    friday_5pm = dt.datetime(2026, 11, 20, 9, 0)      # 17:00 Friday in Shanghai
    # one working hour on Friday, three more from 08:00 Monday: due 11:00 Monday (03:00 UTC)
    assert cal.add(friday_5pm, dt.timedelta(hours=4)) == dt.datetime(2026, 11, 23, 3, 0)
    assert cal.between(friday_5pm, dt.datetime(2026, 11, 23, 3, 0)) == dt.timedelta(hours=4)
    always = Calendar(zone)
    assert always.add(friday_5pm, dt.timedelta(hours=4)) == friday_5pm + dt.timedelta(hours=4)


def test_due_flags_never_apply_to_orders_whose_clock_stands():
    due = dt.datetime(2026, 1, 1)
    for state in ("on_hold", "completed", "approved", "archived", "cancelled"):
        assert due_flag(state, due, due + dt.timedelta(days=9), dt.timedelta(hours=2), CLOCK_STATES) is None


def test_reminders_go_to_the_worker_and_the_manager_once_before_and_once_at_the_deadline(site):
    site = reopen(site.engine, site, NOW, config=WorkOrdersConfig(manager_phone="13700000000"))
    svc = site.service
    o = svc.create(site.manager, type="repair", description="x", priority="urgent", now=NOW).order
    svc.dispatch(site.manager, o["id"], site.ids["wang"], now=NOW)
    assert svc.send_reminders(NOW + dt.timedelta(hours=1)) == 0
    assert svc.send_reminders(NOW + dt.timedelta(hours=2)) == 2
    assert svc.send_reminders(NOW + dt.timedelta(hours=3)) == 0
    assert svc.send_reminders(NOW + dt.timedelta(hours=4)) == 2
    assert svc.send_reminders(NOW + dt.timedelta(hours=9)) == 0
    with site.engine.connect() as conn:
        sent = conn.execute(sa.select(notification.c.phone, notification.c.kind, notification.c.text)
                            .order_by(notification.c.id)).all()
    assert [(p, k) for p, k, _ in sent] == [
        ("13900000001", "workorder_due_soon"), ("13700000000", "workorder_due_soon"),
        ("13900000001", "workorder_overdue"), ("13700000000", "workorder_overdue")]
    assert o["number"] in sent[0][2]


# --- customers, districts, QR ----------------------------------------------------------------------------------------
def test_a_counter_request_by_qr_finds_the_customer_and_the_district(site):
    token = qr.sign(QR_KEY, "account", site.accounts["A"])
    done = site.service.create_from_request(site.manager, type="safety_inspection", description="smell of burning",
                                            qr_token=token, district=("building", site.buildings["A"]))
    o = done.order
    assert (done.created, o["source"], o["account_id"], o["customer_name"], o["area_id"]) == (
        True, "counter", site.accounts["A"], "Li Lei", site.areas["A"])
    meter_token = qr.sign(QR_KEY, "meter", METER_B)
    o = site.service.create_from_request(site.manager, type="repair", description="x", channel="phone",
                                         qr_token=meter_token).order
    assert (o["meter_id"], o["building_id"]) == (_meter_id(site.engine, METER_B), site.buildings["B"])


@pytest.mark.parametrize("token", ["a1.AAAAAAAAAAAAAAAAAAAAAA", "not a token", "a1", "ａ1.xxxxxxxxxxxxxxxxxxxxxx"])
def test_a_forged_qr_is_refused_and_nothing_is_written(site, token):
    with pytest.raises(WorkOrderError) as refused:
        site.service.create_from_request(site.manager, type="repair", description="x", qr_token=token)
    assert refused.value.code == "qr_forged"
    assert "伪造" in refused.value.message("zh")
    assert _count(site.engine, work_order) == 0


def test_another_district_s_qr_is_refused(site):
    token_b = qr.sign(QR_KEY, "account", site.accounts["B"])
    with pytest.raises(WorkOrderError) as refused:     # the desk of Dorm A
        site.service.create_from_request(site.manager, type="repair", description="x", qr_token=token_b,
                                         district=("building", site.buildings["A"]))
    assert refused.value.code == "customer_other_district"
    assert "Dorm B" in refused.value.message("en")
    # a worker of Dorm A (districts kept on their worker record) taking a request in the field
    field = site.actor("wang", "worker")
    worker_with_desk = type(field)(field.username, field.permissions | {"workorder.dispatch"})
    with pytest.raises(WorkOrderError):
        site.service.create_from_request(worker_with_desk, type="repair", description="x", qr_token=token_b)
    assert _count(site.engine, work_order) == 0


def test_the_customer_s_qr_at_the_door_must_be_the_order_s_customer(site):
    o = site.service.create(site.manager, type="repair", description="x", account=site.accounts["A"]).order
    assert site.service.check_customer_qr(o, qr.sign(QR_KEY, "account", site.accounts["A"]))["holder_name"] == "Li Lei"
    assert site.service.check_customer_qr(o, qr.sign(QR_KEY, "meter", METER_A))["account_id"] == site.accounts["A"]
    for token, code in ((qr.sign(QR_KEY, "account", site.accounts["B"]), "qr_other_customer"),
                        (qr.sign(bytes(32), "account", site.accounts["A"]), "qr_forged")):
        with pytest.raises(WorkOrderError) as refused:
            site.service.check_customer_qr(o, token)
        assert refused.value.code == code


@pytest.mark.parametrize("account", ["999", "１", "1;DROP", True, "-1", "1" * 30])
def test_an_unknown_account_is_refused(site, account):
    with pytest.raises(WorkOrderError) as refused:
        site.service.create_from_request(site.manager, type="repair", description="x", account=account)
    assert refused.value.code == "account_unknown"


# --- dispatch -----------------------------------------------------------------------------------------------------
def test_dispatch_picks_the_nearest_available_worker_of_the_district(site):
    svc = site.service
    svc.report_location(site.worker("wang"), 31.30, 121.50)
    svc.report_location(site.worker("zhao"), 31.2001, 121.5001)
    svc.report_location(site.worker("sun"), 31.2, 121.5)            # nearest of all, but Dorm B's
    o = svc.create(site.manager, type="repair", description="x", account=site.accounts["A"], lat=31.2, lon=121.5).order
    assert svc.dispatch(site.manager, o["id"])["assigned_to"] == site.ids["zhao"]
    svc.report_location(site.worker("zhao"), 31.2001, 121.5001, available=False)
    o2 = svc.create(site.manager, type="repair", description="y", account=site.accounts["A"], lat=31.2, lon=121.5).order
    assert svc.dispatch(site.manager, o2["id"])["assigned_to"] == site.ids["wang"]
    o3 = svc.create(site.manager, type="repair", description="z", account=site.accounts["B"]).order
    assert svc.dispatch(site.manager, o3["id"])["assigned_to"] == site.ids["sun"]


def test_a_dispatched_order_can_be_given_to_another_worker(site):
    svc = site.service
    o = svc.create(site.manager, type="repair", description="x", account=site.accounts["A"]).order
    svc.dispatch(site.manager, o["id"], site.ids["wang"])
    assert svc.dispatch(site.manager, o["id"], site.ids["zhao"])["assigned_to"] == site.ids["zhao"]
    with pytest.raises(WorkOrderError) as refused:
        svc.dispatch(site.manager, o["id"], site.ids["cashier"])
    assert refused.value.code == "worker_unknown"


def test_choose_worker_takes_the_least_loaded_when_nobody_has_a_location():
    workers = [{"operator_id": 1, "username": "a", "available": True, "active": True, "districts": [], "lat": None},
               {"operator_id": 2, "username": "b", "available": True, "active": True, "districts": [], "lat": None}]
    assert choose_worker({"building_id": 9, "area_id": None, "lat": None}, workers, {1: 3, 2: 1}) == 2
    assert choose_worker({"building_id": 9}, [dict(workers[0], available=False)], {}) is None


# --- steps, materials, fees ------------------------------------------------------------------------------------------
def _on_site(site, type_key="new_connection"):
    svc = site.service
    o = svc.create(site.manager, type=type_key, description="x", account=site.accounts["A"]).order
    svc.dispatch(site.manager, o["id"], site.ids["wang"])
    svc.act(site.worker("wang"), o["id"], "accept")
    svc.act(site.worker("wang"), o["id"], "arrive")
    return svc.order_view(site.manager, o["id"])


def test_steps_record_their_values_and_a_value_step_needs_one(site):
    view = _on_site(site)
    value_step = next(st for st in view["steps"] if st["needs_value"])
    with pytest.raises(WorkOrderError) as refused:
        site.service.record_step(site.worker("wang"), view["order"]["id"], value_step["id"], value="  ")
    assert refused.value.code == "step_value_missing"
    done = site.service.record_step(site.worker("wang"), view["order"]["id"], value_step["id"], value="1234.5\x07")
    assert (done["done"], done["value"], done["done_by"]) == (True, "1234.5", "wang")
    with pytest.raises(WorkOrderError):
        site.service.record_step(site.worker("zhao"), view["order"]["id"], value_step["id"], value="1")


@pytest.mark.parametrize("quantity", ["50,5", "５", "1e3", "-1", "100000", "NaN", "1.2345", "=1+1", "", None, True])
def test_a_material_quantity_that_is_not_a_plain_number_is_refused(site, quantity):
    view = _on_site(site)
    line = next(m for m in view["materials"] if m["kind"] == "material")
    with pytest.raises(WorkOrderError) as refused:
        site.service.set_material(site.worker("wang"), view["order"]["id"], line["id"], quantity=quantity)
    assert refused.value.code == "quantity_invalid"
    assert site.service.order_view(site.manager, view["order"]["id"])["totals"] == view["totals"]


def test_materials_and_paid_services_are_totalled_and_the_fee_is_its_own_entry(site):
    view = _on_site(site)
    oid = view["order"]["id"]
    cable = next(m for m in view["materials"] if m["text_en"].startswith("Cable"))
    site.service.set_material(site.worker("wang"), oid, cable["id"], quantity="12.5")
    site.service.set_material(site.worker("wang"), oid, None, kind="material", text_en="Clamp", quantity="3",
                              unit_price="0.35")
    totals = site.service.order_view(site.manager, oid)["totals"]
    assert totals["materials"] == Decimal("12.5") * Decimal("12.00") + Decimal("120.00") + Decimal("1.05")
    assert (totals["services"], totals["outstanding"]) == (Decimal("200.00"), totals["total"])
    with pytest.raises(WorkOrderError) as too_much:
        site.service.collect_fee(site.worker("wang"), oid, "10000.00")
    assert too_much.value.code == "fee_above_outstanding"
    with pytest.raises(BillingError):
        site.service.collect_fee(site.worker("wang"), oid, "50,5")
    paid = site.service.collect_fee(site.worker("wang"), oid, "200.00", method="cash")
    assert paid["collected"] == Decimal("200.00")
    with site.engine.connect() as conn:
        assert conn.execute(sa.select(work_order_fee.c.amount)).scalar_one() == Decimal("200.00")
    assert _count(site.engine, work_order_material, work_order_material.c.order_id == oid) == len(view["materials"]) + 1


def test_fee_totals_round_each_line_once():
    lines = [{"kind": "material", "quantity": Decimal("0.333"), "unit_price": Decimal("1.00")},
             {"kind": "material", "quantity": Decimal("0.333"), "unit_price": Decimal("1.00")},
             {"kind": "tool", "quantity": Decimal("1"), "unit_price": Decimal("99.00")}]
    assert fee_totals(lines, [])["materials"] == Decimal("0.66")


# --- search -------------------------------------------------------------------------------------------------------
def test_orders_are_found_by_number_customer_account_meter_pole_and_time(site):
    svc = site.service
    a = svc.create(site.manager, type="repair", description="x", account=site.accounts["A"], pole_number="P-17_3",
                   now=NOW).order
    b = svc.create(site.manager, type="repair", description="y", account=site.accounts["B"],
                   now=NOW + dt.timedelta(days=2)).order

    def numbers(**kw):
        return sorted(r["number"] for r in svc.search(site.manager, **kw))
    assert numbers(text=a["number"]) == [a["number"]]
    assert numbers(text="han mei") == [b["number"]]
    assert a["number"] in numbers(text=str(site.accounts["A"]))     # (digits also match inside numbers)
    assert numbers(text=METER_B[-6:]) == [b["number"]]
    assert numbers(text="P-17_3") == [a["number"]] and numbers(text="P-17%") == []
    assert numbers(created_from=NOW + dt.timedelta(days=1)) == [b["number"]]
    assert numbers(created_from=NOW, created_to=NOW + dt.timedelta(days=1)) == [a["number"]]
    for bad in ("x" * 61, "a\x00b"):
        with pytest.raises(WorkOrderError):
            svc.search(site.manager, text=bad)
    with pytest.raises(WorkOrderError) as reversed_range:
        svc.search(site.manager, created_from=NOW + dt.timedelta(days=1), created_to=NOW)
    assert reversed_range.value.code == "range_reversed"


# --- hostile creation input ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kw, code", [
    ({"type": "rocket"}, "type_unknown"), ({"type": 5}, "type_unknown"), ({"priority": "asap"}, "priority_unknown"),
    ({"description": "\x00\x01 \t"}, "description_missing"), ({"external_id": "x" * 81}, "external_id_invalid"),
    ({"external_id": "a\nb"}, "external_id_invalid"), ({"meter": "12345"}, "meter_unknown")])
def test_hostile_creation_input_is_refused_with_nothing_written(site, kw, code):
    args = {"type": "repair", "description": "ok", **kw}
    with pytest.raises(WorkOrderError) as refused:
        site.service.create(site.manager, **args)
    assert refused.value.code == code
    assert refused.value.message("zh") != refused.value.message("en")
    assert _count(site.engine, work_order) == 0


def test_formula_text_and_control_characters_are_kept_as_plain_text(site):
    o = site.service.create(site.manager, type="repair", description="=HYPERLINK(\"x\")\r\n\x1bgo",
                            pole_number="+1").order
    assert (o["description"], o["pole_number"]) == ("=HYPERLINK(\"x\") go", "+1")


def test_a_repeated_external_id_answers_the_first_order(site):
    first = site.service.create(site.manager, type="repair", description="x", external_id="T-1", source="api")
    again = site.service.create(site.manager, type="meter_install", description="other", external_id="T-1",
                                source="api")
    assert (first.created, again.created, again.order["id"], again.order["type"]) == (
        True, False, first.order["id"], "repair")


def test_the_seeded_types_are_there_once_in_both_languages(site):
    assert site.service.seed() == []
    names = {t["key"]: (t["name_en"], t["name_zh"]) for t in site.service.order_types()}
    assert names["fee_collection"] == ("Fee collection", "电费催收") and len(names) == 9


def test_a_service_without_a_qr_key_says_so(duck_engine):
    svc = WorkOrderService(duck_engine)
    svc.seed()
    from billing.credit import Actor
    from operators.service import DEFAULT_ROLE_PERMISSIONS
    with pytest.raises(WorkOrderError) as refused:
        svc.create(Actor("boss", DEFAULT_ROLE_PERMISSIONS["manager"]), type="repair", description="x",
                   qr_token="a1.AAAAAAAAAAAAAAAAAAAAAA")
    assert refused.value.code == "qr_unavailable"


@pytest.mark.parametrize("bad", ["1; drop", "１", -1, 2**40, None, 1.5, True, "", "\x00"])
def test_a_hostile_order_or_line_id_is_no_such_order(site, bad):
    svc = site.service
    with pytest.raises(WorkOrderError) as refused:
        svc.act(site.manager, bad, "cancel", reason="x")
    assert refused.value.code == "order_unknown"
    with pytest.raises(WorkOrderError):
        svc.order_view(site.manager, bad if bad is not None else "x")


def test_an_order_overdue_for_days_is_not_reminded_of_again(site):
    site = reopen(site.engine, site, NOW, config=WorkOrdersConfig(manager_phone="13700000000"))
    old = site.service.create(site.manager, type="repair", description="x", priority="urgent",
                              now=NOW - dt.timedelta(days=10)).order
    site.service.dispatch(site.manager, old["id"], site.ids["wang"], now=NOW - dt.timedelta(days=10))
    assert site.service.send_reminders(NOW) == 0
    assert site.service.due_flag(old, NOW) == "overdue"


@pytest.mark.parametrize("line, named", [
    ('arrears_after_h = "24"', "workorders.arrears_after_h"), ("limit_urgent_h = 0", "workorders.limit_urgent_h"),
    ('working_hours = "18:00-08:00"', "workorders.working_hours"), ('working_days = "5-1"', "workorders.working_days"),
    ("relay_failed_orders = 1", "workorders.relay_failed_orders"), ("colour = 1", "unknown key workorders.colour")])
def test_a_wrong_workorders_setting_is_refused_with_its_name(tmp_path, line, named):
    from core.config import ConfigError
    with pytest.raises(ConfigError) as refused:
        _settings(tmp_path, line)
    assert named in str(refused.value)


def _settings(tmp_path, lines: str):
    from core.config import load_config
    (tmp_path / "site.toml").write_text(f"[workorders]\n{lines}\n", encoding="utf-8")
    return load_config(tmp_path / "site.toml", env={}).workorders


def test_the_workorders_settings_are_read(tmp_path):
    cfg = _settings(tmp_path, 'arrears_after_h = 48\nworking_hours = "08:00-18:00"\nworking_days = "1-5"\n'
                              'manager_phone = "13700000000"')
    assert (cfg.arrears_after_h, cfg.working_hours, cfg.working_days, cfg.manager_phone) == (
        48.0, "08:00-18:00", "1-5", "13700000000")


def test_a_failed_inspection_item_raises_a_follow_up_for_the_same_customer_in_one_action(site):
    view = _on_site(site, "safety_inspection")
    oid, item = view["order"]["id"], view["steps"][1]
    site.service.record_step(site.worker("wang"), oid, item["id"], passed=False, value="no earth")
    follow = site.service.create_followup(site.worker("wang"), oid, type="repair", step_id=item["id"],
                                          description="earth the meter box").order
    assert (follow["parent_id"], follow["source"], follow["account_id"], follow["building_id"], follow["state"]) == (
        oid, "followup", site.accounts["A"], site.buildings["A"], "created")
    with pytest.raises(WorkOrderError) as refused:
        site.service.create_followup(site.worker("zhao"), oid, type="repair", description="x")
    assert refused.value.code == "permission_denied"
    with pytest.raises(WorkOrderError) as other_step:
        site.service.create_followup(site.manager, oid, type="repair", description="x", step_id=10**6)
    assert other_step.value.code == "step_unknown"


def test_a_site_adds_its_own_order_type_and_retires_one(site):
    svc = site.service
    made = svc.save_type(site.manager, "street_light", name_en="Street light", name_zh="路灯维修", photo_required=True)
    assert (made["name_zh"], made["photo_required"], made["active"]) == ("路灯维修", True, True)
    assert svc.create(site.manager, type="street_light", description="dark").order["type"] == "street_light"
    svc.save_type(site.manager, "temporary", name_en="Temporary order", name_zh="临时工单", active=False)
    assert "temporary" not in {t["key"] for t in svc.order_types()}
    with pytest.raises(WorkOrderError):
        svc.create(site.manager, type="temporary", description="x")
    for key in ("Street", "x", "a b", "路灯", 5):
        with pytest.raises(WorkOrderError) as refused:
            svc.save_type(site.manager, key, name_en="x", name_zh="x")
        assert refused.value.code == "type_key_invalid"
    with pytest.raises(WorkOrderError) as refused:
        svc.save_type(site.worker(), "street_light", name_en="x", name_zh="x")
    assert refused.value.code == "permission_denied"
