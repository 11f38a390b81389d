"""A transformer area on the simulator for the telecontrol and automatic voltage control tests: its terminal (9 tap
positions, at 5), two room meters (one in arrears) and a master meter, polled and commanded over loopback by the
real collector and dispatcher, every clock (field, collector, dispatcher, billing) driven by the test."""
from __future__ import annotations

import calendar
import datetime as dt
from functools import partial

import sqlalchemy as sa

from billing import settlement
from billing.credit import Actor
from collectors.cycle import CollectorService
from collectors.dispatch import Dispatcher
from collectors.poller import FieldIO
from collectors.profiles import ProfileRegistry
from core.events import ALARM_CHANGED, EventBus
from grid import control
from grid.avc import AutomaticVoltageControl
from operators.service import DEFAULT_ROLE_PERMISSIONS
from simulator.field import run_field_in_thread
from simulator.secure import TEST_MASTER_KEY
from simulator.site import BusSpec, GatewaySpec, MeterSpec, SiteSpec
from storage import grid_control as store
from storage.engine import dispose, open_engine
from storage.migrations import migrate
from storage.schema import command, gateway, transformer_area
from tests.billing_support import Clock, flat_tariff, load_site, make_ctx
from tests.conftest import engine_url, free_port_block

TTU, MASTER, ROOM_OK, ROOM_OWING = "202612030001", "202612030002", "202612030011", "202612030012"
START = dt.datetime(2026, 12, 2, 19, 0)     # 03:00 on the site's clock (UTC+8): a night without load


def operator(name: str = "olga") -> Actor:
    return Actor(name, DEFAULT_ROLE_PERMISSIONS["operator"], address="127.0.0.1")


def cashier(name: str = "cathy") -> Actor:
    return Actor(name, DEFAULT_ROLE_PERMISSIONS["cashier"], address="127.0.0.1")


def area_site(base_port: int) -> SiteSpec:
    area = dict(building="Block G", area="Area G")
    return SiteSpec("grid", [GatewaySpec("GW-G", buses=[
        BusSpec(1, base_port, meters=[
            MeterSpec(TTU, 1, "wattline-ttu", tap_count=9, tap_position=5, **area),
            MeterSpec(MASTER, 2, "eastron-sdm630", **area)]),
        BusSpec(2, base_port + 1, meters=[
            MeterSpec(ROOM_OK, 1, "acrel-ddsy1352", floor=1, room="G-101", balance_fen=5000, character=0.0, **area),
            MeterSpec(ROOM_OWING, 2, "acrel-ddsy1352", floor=1, room="G-102", balance_fen=0, character=0.0,
                      **area)]),
    ])])


class GridSite:
    """The area, its database and the services, each step driven by hand."""

    def __init__(self, engine, field, ctx, collector, dispatcher, clock):
        self.engine, self.field, self.ctx = engine, field, ctx
        self.collector, self.dispatcher, self.clock = collector, dispatcher, clock
        self.events = EventBus()
        self.alarm_changes = []       # what the automation published on ALARM_CHANGED
        self.events.subscribe(ALARM_CHANGED, self.alarm_changes.append)
        self.avc = AutomaticVoltageControl(ctx, events=self.events)
        with engine.connect() as conn:
            self.area_id = conn.execute(sa.select(transformer_area.c.id)).scalar_one()

    @property
    def terminal(self):
        return self.field.meter(TTU)

    def poll(self) -> None:
        self.collector.run_cycle()

    def tick(self, seconds: float = 0) -> dict:
        """Time goes on; the queued commands go out, the field is polled, the automation looks (as served)."""
        self.clock.advance(seconds=seconds)
        self.dispatcher.run_once()
        self.poll()
        return self.avc.run_once()

    def commands(self, kind: str | None = None) -> list[dict]:
        q = sa.select(command).order_by(command.c.id)
        if kind:
            q = q.where(command.c.kind == kind)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(q).mappings()]

    def settings(self, **values) -> None:
        with self.engine.begin() as conn:
            control.automation_row(conn, self.area_id, self.clock.now)
            store.update_automation(conn, self.area_id, **values)

    def actions(self, **kw):
        return control.actions(self.ctx, self.area_id, **kw)


def grid_site(kind: str, tmp_path):
    engine = open_engine(engine_url(kind, tmp_path))
    migrate(engine)
    clock = Clock(START)
    field_t = [calendar.timegm(START.timetuple())]
    try:
        spec = area_site(free_port_block(2))
        load_site(engine, spec, clock.now)
        with engine.begin() as conn:
            conn.execute(gateway.update().values(timeout_s=0.8, retries=0))
            conn.execute(transformer_area.update().values(nominal_voltage=220.0, rating_kva=630.0))
        ctx = make_ctx(engine, clock)
        flat_tariff(ctx)

        def field_clock() -> float:      # the simulator's time follows the test's clock
            return field_t[0] + (clock.now - START).total_seconds()
        with run_field_in_thread(spec, clock=field_clock, master_key=TEST_MASTER_KEY) as ft, \
                FieldIO(ProfileRegistry()) as fio:
            collector = CollectorService(engine, fio, clock=clock)
            dispatcher = Dispatcher(engine, fio, TEST_MASTER_KEY, clock, send_timeout_s=1.0, max_attempts=3,
                                    backoff_s=0, on_settled=partial(settlement.settle_command, ctx))
            collector.run_cycle()
            yield GridSite(engine, ft.field, ctx, collector, dispatcher, clock)
    finally:
        dispose(engine)
