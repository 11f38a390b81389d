"""The lost-contact reports (失联表 / 失联通讯管理机) over real poll cycles: simulator on loopback -> collector ->
meter_state and bus_state -> the reports. A silent meter and a gateway that stops answering, since when (site
time), for how long, and the meters the gateway takes with it."""
from __future__ import annotations

import datetime as dt

import pytest

from billing.context import BillingContext
from collectors.cycle import CollectorService
from collectors.poller import FieldIO
from collectors.profiles import ProfileRegistry
from collectors.topology_import import import_topology
from reports.registry import ReportEnv
from reports.render import json_rows, run_report
from simulator.field import run_field_in_thread
from storage.schema import gateway

from tests.conftest import free_port_block
from tests.test_collector_cycle import small_site


@pytest.fixture
def polled(any_engine, fixed_now):
    """Seven meters on GW-A (two buses) and GW-B (one bus); cycles a minute apart from fixed_now."""
    site = small_site(free_port_block(3))
    rows = [{k: "" if v is None else str(v) for k, v in r.items()} for r in site.topology_rows()]
    import_topology(any_engine, rows, set(ProfileRegistry().names()), fixed_now)
    with any_engine.begin() as conn:
        conn.execute(gateway.update().values(timeout_s=0.8, retries=0))
    clock = iter(fixed_now + dt.timedelta(minutes=m) for m in range(60))
    with run_field_in_thread(site) as ft, FieldIO(ProfileRegistry()) as fio:
        yield ft.field, CollectorService(any_engine, fio, lost_after=3, clock=lambda: next(clock)), any_engine


def test_lost_meters_and_gateways_say_since_when_how_long_and_what_the_gateway_takes(polled, fixed_now):
    field, service, engine = polled
    service.run_cycle()                                     # minute 0: all online
    field.set_meter_offline("202611210002", True)
    field.set_gateway_down("GW-B", True)
    for _ in range(3):                                      # minutes 1-3: GW-B lost at once, meter 2 after 3 misses
        service.run_cycle()
    ctx = BillingContext(engine, b"\0" * 32, clock=lambda: fixed_now + dt.timedelta(hours=2, minutes=1))
    env = ReportEnv(ctx)
    meters = run_report(env, "lost-meters", {}, "en")
    assert [(r["meter"], r["gateway"], r["cause"]) for r in meters.rows] == [
        ("202611210006", "GW-B", "its bus is lost (gateway)"), ("202611210007", "GW-B", "its bus is lost (gateway)"),
        ("202611210002", "GW-A", "the meter itself")]
    gw_lost = fixed_now + dt.timedelta(hours=8, minutes=1)  # the site's clock (+08:00)
    assert [r["lost_since"] for r in meters.rows] == [gw_lost, gw_lost, fixed_now + dt.timedelta(hours=8, minutes=3)]
    assert [r["lost_hours"] for r in meters.rows] == [2.0, 2.0, round(118 / 60, 2)]
    assert meters.rows[0]["building"] == "Dorm A" and meters.rows[0]["room"] == "A-106"
    assert json_rows(meters, ctx.tz)[0]["lost_since"] == "2026-11-21T16:01:00+08:00"
    gateways = run_report(env, "lost-gateways", {}, "zh")
    assert [(r["gateway"], r["lost_buses"], r["buses"], r["meters_taken"], r["meters"], r["lost_hours"])
            for r in gateways.rows] == [("GW-B", 1, 1, 2, "202611210006 202611210007", 2.0)]
    assert gateways.totals == {"meters_taken": 2}
    assert [r["meter"] for r in run_report(env, "lost-meters", {"building": "Dorm B"}, "en").rows] == []
    field.set_gateway_down("GW-B", False)
    field.set_meter_offline("202611210002", False)
    service.run_cycle()
    assert run_report(env, "lost-meters", {}, "en").rows == []
    assert run_report(env, "lost-gateways", {}, "en").rows == []
