"""A small site for the work-order tests: two buildings (each its own transformer area), a customer with an account
in each, a manager, two workers of Dorm A and one of Dorm B, and the work-order service on a fixed clock."""
from __future__ import annotations

import datetime as dt
import shutil
from contextlib import contextmanager
from dataclasses import dataclass

import sqlalchemy as sa

from billing.accounts import open_account
from billing.credit import Actor
from operators.service import DEFAULT_ROLE_PERMISSIONS, Accounts
from simulator.site import BusSpec, GatewaySpec, MeterSpec, SiteSpec
from storage.schema import building, transformer_area
from tests.billing_support import Clock, flat_tariff, load_site, make_ctx, write_reading
from workorders.service import WorkOrderService

QR_KEY = bytes(range(100, 132))
PASSWORD = "worker-pass-1"
METER_A, METER_B = "202612020001", "202612020002"


@dataclass
class WorkSite:
    engine: sa.Engine
    clock: Clock
    service: WorkOrderService
    accounts: dict          # "A" / "B" -> account id
    buildings: dict         # "A" / "B" -> building id
    areas: dict             # "A" / "B" -> transformer area id
    ids: dict               # username -> operator id

    def actor(self, username: str, role: str) -> Actor:
        return Actor(username, DEFAULT_ROLE_PERMISSIONS[role], address="127.0.0.1")

    @property
    def manager(self) -> Actor:
        return self.actor("boss", "manager")

    def worker(self, name: str = "wang") -> Actor:
        return self.actor(name, "worker")


def work_site(engine: sa.Engine, now: dt.datetime, **service_kw) -> WorkSite:
    clock = Clock(now)
    site = SiteSpec("wo", [GatewaySpec("GW-W", buses=[BusSpec(1, 1502, meters=[
        MeterSpec(address=METER_A, unit=1, profile="acrel-ddsy1352", building="Dorm A", floor=1, room="A-101",
                  area="Area A"),
        MeterSpec(address=METER_B, unit=2, profile="acrel-ddsy1352", building="Dorm B", floor=1, room="B-101",
                  area="Area B")])])])
    load_site(engine, site, now - dt.timedelta(days=1))
    ctx = make_ctx(engine, clock)
    flat_tariff(ctx)
    for addr in (METER_A, METER_B):
        write_reading(engine, addr, balance="50.00", purchase_count=1, ts=now - dt.timedelta(hours=1))
    accounts = {"A": open_account(ctx, holder_name="Li Lei", meter_addresses=[METER_A], operator="admin",
                                  phone="13800000001").id,
                "B": open_account(ctx, holder_name="Han Meimei", meter_addresses=[METER_B], operator="admin",
                                  phone="13800000002").id}
    ops = Accounts(engine, clock=clock)
    ops.seed()
    ids = {}
    for name, role in (("boss", "manager"), ("wang", "worker"), ("zhao", "worker"), ("sun", "worker"),
                       ("cashier", "cashier")):
        ids[name] = ops.add_operator(name, name.title(), PASSWORD, [role], by="admin", source=None,
                                     must_change_password=False).id
    with engine.connect() as conn:
        buildings = {n[-1]: i for i, n in conn.execute(sa.select(building.c.id, building.c.name)).all()}
        areas = {n[-1]: i for i, n in conn.execute(sa.select(transformer_area.c.id, transformer_area.c.name)).all()}
    service = WorkOrderService(engine, qr_key=QR_KEY, clock=clock, **service_kw)
    service.seed()
    boss = Actor("boss", DEFAULT_ROLE_PERMISSIONS["manager"])
    service.save_worker(boss, ids["wang"], phone="13900000001", districts=[("building", buildings["A"])])
    service.save_worker(boss, ids["zhao"], phone="13900000002", districts=[("building", buildings["A"])])
    service.save_worker(boss, ids["sun"], phone="13900000003", districts=[("building", buildings["B"])])
    return WorkSite(engine, clock, service, accounts, buildings, areas, ids)


def reopen(engine: sa.Engine, like: WorkSite, now: dt.datetime, **service_kw) -> WorkSite:
    """The same site on another database built from `like`'s (a copy of its file): a fresh service and clock."""
    clock = Clock(now)
    service = WorkOrderService(engine, qr_key=QR_KEY, clock=clock, **service_kw)
    return WorkSite(engine, clock, service, dict(like.accounts), dict(like.buildings), dict(like.areas), dict(like.ids))


def template_file(tmp_path_factory, now: dt.datetime) -> tuple[str, WorkSite]:
    """A DuckDB file holding the site, built once per test module (building it takes seconds: password hashes,
    accounts opened through billing); each test works on a copy."""
    from storage.engine import dispose, open_engine
    from storage.migrations import migrate
    path = tmp_path_factory.mktemp("workorder-site") / "site.duckdb"
    engine = open_engine(f"duckdb:///{path}")
    migrate(engine)
    site = work_site(engine, now)
    dispose(engine)
    return str(path), site


@contextmanager
def copied_site(template: tuple[str, WorkSite], tmp_path, now: dt.datetime, **service_kw):
    """A test's own copy of the module's site file (template_file), open on a fresh engine."""
    from storage.engine import dispose, open_engine
    path, like = template
    shutil.copy(path, tmp_path / "site.duckdb")
    engine = open_engine(f"duckdb:///{tmp_path / 'site.duckdb'}")
    try:
        yield reopen(engine, like, now, **service_kw)
    finally:
        dispose(engine)


@contextmanager
def serving(wsgi_app, threads: int = 6):
    """`wsgi_app` on a real WSGI server (waitress) on a loopback port; yields its base address."""
    import threading

    from waitress import create_server
    server = create_server(wsgi_app, host="127.0.0.1", port=0, threads=threads)

    def run():
        try:
            server.run()
        except OSError:     # the listening socket closed under select() at shutdown
            pass
    th = threading.Thread(target=run, daemon=True)
    th.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}"
    finally:
        server.close()
        server.task_dispatcher.shutdown(timeout=5)
        th.join(5)
