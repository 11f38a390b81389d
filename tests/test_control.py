"""Batch operations against the simulated field on loopback: relay commands confirmed by read-back per meter, a
gateway lost mid-batch, a meter that acknowledges but does not execute, warnings asked again, cancel and retry,
permission refusals (nothing queued, audited)."""
from __future__ import annotations

import threading
from functools import partial

import pytest
import sqlalchemy as sa

from billing import control, settlement
from billing.context import utcnow
from billing.errors import BillingError
from collectors.cycle import CollectorService
from collectors.dispatch import Dispatcher
from collectors.poller import FieldIO
from collectors.profiles import ProfileRegistry
from simulator.field import run_field_in_thread
from simulator.secure import TEST_MASTER_KEY
from simulator.site import BusSpec, GatewaySpec, MeterSpec, SiteSpec
from storage.schema import audit_log, command, gateway

from storage.engine import dispose, open_engine
from storage.migrations import migrate
from dashboard.components.control import batch_body
from tests.billing_support import actor, flat_tariff, load_site, make_ctx
from tests.webclient import json_call
from tests.component_text import component_text
from tests.conftest import engine_url, free_port_block


def number(n: int) -> str:
    return f"2026112200{n:02d}"


def control_site(base_port: int) -> SiteSpec:
    """Six meters: GW-A with two buses of two, GW-B with one bus of two; meter 6 is in arrears, meter 5 keeps power."""
    def spec(n: int, unit: int, **kw) -> MeterSpec:
        return MeterSpec(address=number(n), unit=unit, profile="acrel-ddsy1352", building="Dorm C",
                         floor=1 + (n > 4), room=f"C-{n:02d}", balance_fen=kw.pop("balance_fen", 5000),
                         character=0.0, **kw)
    return SiteSpec("control", [
        GatewaySpec("GW-A", buses=[BusSpec(1, base_port, meters=[spec(1, 1), spec(2, 2)]),
                                   BusSpec(2, base_port + 1, meters=[spec(3, 1), spec(4, 2)])]),
        GatewaySpec("GW-B", buses=[BusSpec(1, base_port + 2, meters=[spec(5, 1, keep_power=True),
                                                                     spec(6, 2, balance_fen=0)])]),
    ])


class Site:
    def __init__(self, engine, field, ctx, collector, dispatcher):
        self.engine, self.field, self.ctx, self.collector, self.dispatcher = engine, field, ctx, collector, dispatcher

    def meter(self, n: int):
        return self.field.meter(number(n))

    def states(self, batch_id: str) -> dict[str, str]:
        return {r["address"]: r["state"] for r in control.batch_view(self.ctx, batch_id).rows}

    def commands(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(command)).scalar_one()


def _site(engine):
    spec = control_site(free_port_block(3))
    load_site(engine, spec, utcnow())
    with engine.begin() as conn:
        conn.execute(gateway.update().values(timeout_s=0.8, retries=0))  # quick, yet answered on a busy machine
    ctx = make_ctx(engine, utcnow)
    flat_tariff(ctx)
    with run_field_in_thread(spec) as ft, FieldIO(ProfileRegistry()) as fio:
        collector = CollectorService(engine, fio, clock=utcnow)
        dispatcher = Dispatcher(engine, fio, TEST_MASTER_KEY, utcnow, send_timeout_s=1.0, max_attempts=3,
                                backoff_s=0, on_settled=partial(settlement.settle_command, ctx))
        collector.run_cycle()
        yield Site(engine, ft.field, ctx, collector, dispatcher)


@pytest.fixture
def site(request, tmp_path):
    """The six meters on DuckDB; on each engine (DuckDB, PostgreSQL) for a test marked @on_both_engines: those
    that write in transactions (a batch queued and settled, cancel and retry, a refusal audited, settings pushed)."""
    engine = open_engine(engine_url(getattr(request, "param", "duckdb"), tmp_path))
    migrate(engine)
    try:
        yield from _site(engine)
    finally:
        dispose(engine)


on_both_engines = pytest.mark.parametrize("site", ["duckdb", pytest.param("postgresql", marks=pytest.mark.postgres)],
                                          indirect=True)


OPERATOR = actor("operator", "olga")
EVERYONE = control.Selection(building="Dorm C")
FLOOR_1 = control.Selection(building="Dorm C", floor=1)


@on_both_engines
def test_a_batch_trip_then_close_is_confirmed_per_meter_by_reading_the_relay_back(site):
    tripped = control.queue_batch(site.ctx, OPERATOR, FLOOR_1, "trip", "maintenance on floor 1")
    site.dispatcher.run_once()
    assert set(site.states(tripped.batch_id).values()) == {"confirmed"} and len(tripped.meters) == 4
    assert [site.meter(n).relay_closed for n in (1, 2, 3, 4)] == [False] * 4
    closed = control.queue_batch(site.ctx, OPERATOR, FLOOR_1, "close")
    site.dispatcher.run_once()
    assert set(site.states(closed.batch_id).values()) == {"confirmed"}
    assert [site.meter(n).relay_closed for n in (1, 2, 3, 4)] == [True] * 4


@on_both_engines
def test_a_gateway_lost_mid_batch_fails_its_meters_visibly_and_the_others_are_confirmed(site):
    batch = control.queue_batch(site.ctx, OPERATOR, EVERYONE, "keep_power_off")
    site.field.set_gateway_down("GW-B", True)
    for _ in range(3):                      # max_attempts sends that never reach GW-B
        site.dispatcher.run_once()
    states = site.states(batch.batch_id)
    assert {n: states[number(n)] for n in range(1, 7)} == {1: "confirmed", 2: "confirmed", 3: "confirmed",
                                                           4: "confirmed", 5: "failed", 6: "failed"}
    rows = {r["address"]: r for r in control.batch_view(site.ctx, batch.batch_id).rows}
    assert rows[number(6)]["result"] == "UNREACHABLE" and "refused" in rows[number(6)]["error"]
    view = control.batch_view(site.ctx, batch.batch_id)
    assert not view.open, "nothing stays queued or sent"


def test_a_meter_that_acknowledges_a_trip_but_keeps_its_relay_closed_is_reported_failed(site):
    site.field.set_relay_ignored(number(2))
    batch = control.queue_batch(site.ctx, OPERATOR, FLOOR_1, "trip", "maintenance")
    site.dispatcher.run_once()
    states = site.states(batch.batch_id)
    assert states[number(2)] == "failed" and states[number(1)] == "confirmed"
    row = next(r for r in control.batch_view(site.ctx, batch.batch_id).rows if r["address"] == number(2))
    assert row["result"] == "NOT_EXECUTED" and site.meter(2).relay_closed


def test_tripping_a_meter_with_keep_power_asks_again_and_queues_only_when_confirmed(site):
    asked = control.queue_batch(site.ctx, OPERATOR, control.Selection(meters=(number(5), number(1))), "trip",
                                "inspection")
    assert asked.batch_id is None and [w.code for w in asked.warnings] == ["trip_keep_power"]
    assert asked.warnings[0].meters == (number(5),) and site.commands() == 0
    sent = control.queue_batch(site.ctx, OPERATOR, control.Selection(meters=(number(5), number(1))), "trip",
                               "inspection", confirm=True)
    assert sent.batch_id and site.commands() == 2


def test_closing_a_meter_in_arrears_without_keep_power_asks_again(site):
    asked = control.queue_batch(site.ctx, OPERATOR, control.Selection(meters=(number(6),)), "close")
    assert [w.code for w in asked.warnings] == ["close_arrears"] and site.commands() == 0


def test_trip_and_keep_power_need_a_reason(site):
    for action in ("trip", "keep_power_on"):
        with pytest.raises(BillingError) as refused:
            control.queue_batch(site.ctx, OPERATOR, EVERYONE, action, "  \t ")
        assert refused.value.code == "reason_required"
    assert site.commands() == 0


@on_both_engines
def test_a_cashier_cannot_queue_a_batch_and_the_refusal_is_in_the_operation_log(site):
    with pytest.raises(BillingError) as refused:
        control.queue_batch(site.ctx, actor("cashier", "carl"), EVERYONE, "trip", "no reason to")
    assert refused.value.code == "permission_denied" and site.commands() == 0
    with site.engine.connect() as conn:
        denied = conn.execute(sa.select(audit_log).where(audit_log.c.action == "permission.denied",
                                                         audit_log.c.operator == "carl")).mappings().all()
    assert len(denied) == 1 and "relay.batch" in denied[0]["after"]


def test_an_operator_allowed_single_commands_only_trips_one_meter_but_not_a_batch(site):
    from billing.credit import Actor
    from core import permissions as P
    one_at_a_time = Actor("sam", frozenset({P.RELAY_COMMAND, P.METER_VIEW}), address="127.0.0.1")
    with pytest.raises(BillingError) as refused:
        control.queue_batch(site.ctx, one_at_a_time, control.Selection(meters=(number(1), number(2))), "trip",
                            "repair")
    assert refused.value.code == "permission_denied" and site.commands() == 0
    with pytest.raises(BillingError) as refused:
        control.queue_batch(site.ctx, one_at_a_time, control.Selection(meters=(number(1), number(2))), "trip",
                            "repair", single=True)
    assert refused.value.code == "one_meter_only" and site.commands() == 0
    done = control.queue_batch(site.ctx, one_at_a_time, control.Selection(meters=(number(1),)), "trip", "repair",
                               single=True)
    site.dispatcher.run_once()
    assert site.states(done.batch_id) == {number(1): "confirmed"}
    assert not site.meter(1).relay_closed


@on_both_engines
def test_cancel_stops_what_is_queued_and_retry_sends_the_failed_again(site, api):
    site.field.set_relay_ignored(number(1))
    batch = control.queue_batch(site.ctx, OPERATOR, control.Selection(meters=(number(1),)), "trip", "repair")
    site.dispatcher.run_once()
    assert site.states(batch.batch_id) == {number(1): "failed"}
    site.field.set_relay_ignored(number(1), False)
    assert control.retry_failed(site.ctx, OPERATOR, batch.batch_id) == 1
    assert site.states(batch.batch_id) == {number(1): "queued"}
    assert control.cancel_queued(site.ctx, OPERATOR, batch.batch_id) == 1
    assert site.states(batch.batch_id) == {number(1): "cancelled"}
    site.dispatcher.run_once()
    assert site.states(batch.batch_id) == {number(1): "cancelled"}, "a cancelled command is never sent"
    # stored expired with result CANCELLED; the API and the batch view say cancelled, and who did it
    status, body = api("GET", f"/commands/{batch.batch_id}")
    assert status == 200 and body["meters"][0]["state"] == "cancelled" and body["batch"]["finished"]
    assert (body["batch"]["counts"]["cancelled"], body["batch"]["counts"]["expired"]) == (1, 0)
    shown = component_text(batch_body(control.batch_view(site.ctx, batch.batch_id), "zh", site.ctx.tz))
    assert "已取消" in shown and "发送前已被 olga 取消" in shown and "CANCELLED" not in shown
    with site.engine.connect() as conn:
        actions = list(conn.execute(sa.select(audit_log.c.action).where(audit_log.c.target == f"batch:{batch.batch_id}")
                                    .order_by(audit_log.c.id)).scalars())
    assert actions == ["control.batch", "control.retry", "control.cancel"]


def test_a_settings_push_with_alarm_2_above_alarm_1_is_refused_and_nothing_is_pushed(site):
    with pytest.raises(BillingError) as refused:
        control.queue_batch(site.ctx, OPERATOR, EVERYONE, "push_limits",
                            limits={"alarm1": "5.00", "alarm2": "20.00", "overload_w": "6000"})
    assert refused.value.code == "alarm2_above_alarm1" and site.commands() == 0


@on_both_engines
def test_a_settings_push_and_a_price_push_reach_every_selected_meter(site):
    limits = control.queue_batch(site.ctx, OPERATOR, FLOOR_1, "push_limits",
                                 limits={"alarm1": "30.00", "alarm2": "10.00", "overload_w": "4000"})
    prices = control.queue_batch(site.ctx, OPERATOR, FLOOR_1, "push_tariff")
    site.dispatcher.run_once()
    assert set(site.states(limits.batch_id).values()) == {"confirmed"}
    assert set(site.states(prices.batch_id).values()) == {"confirmed"}
    assert (site.meter(3).alarm1_fen, site.meter(3).alarm2_fen, site.meter(3).overload_w) == (3000, 1000, 4000)


@pytest.fixture
def api(site):
    """The JSON API on a real WSGI server (waitress) on loopback, in front of the simulated site."""
    import flask
    from waitress import create_server

    from billing.api import create_api_client, payment_api
    app = flask.Flask("control-api")
    app.register_blueprint(payment_api(site.ctx))
    tokens = {"payment": create_api_client(site.ctx, "pay-kiosk", "admin"),
              "control": create_api_client(site.ctx, "bms", "admin", scopes=("control",))}
    server = create_server(app, host="127.0.0.1", port=0, threads=4)
    th = threading.Thread(target=server.run, daemon=True)
    th.start()

    def call(method: str, path: str, body=None, token: str = "control", lang: str = "en"):
        return json_call(f"http://127.0.0.1:{server.effective_port}/api/v1{path}", method, body,
                         {"Authorization": f"Bearer {tokens[token]}", "Accept-Language": lang})
    yield call
    server.close()
    server.task_dispatcher.shutdown(timeout=5)
    th.join(5)


@on_both_engines
def test_a_payment_client_cannot_cut_power_through_the_api_and_a_control_client_can(site, api):
    trip = {"meters": [number(1), number(2)], "action": "trip", "reason": "BMS: fire drill"}
    status, body = api("POST", "/commands", trip, token="payment", lang="zh-CN")
    assert (status, body["code"]) == (403, "scope_missing") and "control" in body["message"]
    assert "权限范围" in body["message"] and site.commands() == 0
    status, body = api("POST", "/commands", trip)
    assert status == 202 and body["batch"]["meters"] == 2
    site.dispatcher.run_once()
    status, body = api("GET", f"/commands/{body['batch']['id']}")
    assert status == 200 and body["batch"]["finished"]
    assert {m["meter_address"]: m["state"] for m in body["meters"]} == {number(1): "confirmed", number(2): "confirmed"}
    assert not site.meter(1).relay_closed


def test_the_api_asks_again_before_tripping_a_meter_that_keeps_power_and_refuses_bad_selections(site, api):
    status, body = api("POST", "/commands", {"building": "Dorm C", "floor": 2, "action": "trip", "reason": "x"})
    assert (status, body["code"]) == (409, "confirm_required") and body["warnings"][0]["meters"] == [number(5)]
    for bad in ({"meters": ["12"], "action": "trip"}, {"meters": "202611220001", "action": "close"},
                {"building": "Dorm C", "floor": "２", "action": "close"}, {"action": "close"},
                {"meters": [number(1)], "action": "explode"}):
        status, body = api("POST", "/commands", bad)
        assert status in (400, 422) and body["code"] and body["message"], bad
    assert site.commands() == 0
