"""kill -9 of the billing process at random points during a batch of sales, restarted each time: every sale is
applied exactly once on the meters, the meters' counts equal the ledger's, no money is lost or doubled.

The simulated field runs as its own process (`app.py simulate`), so killing the billing process does not
touch the meters; the billing process (tests/crash_driver.py) sells 50 sales with fixed request ids and
dispatches them, and is killed with SIGKILL ten times at random moments after it is ready.
"""
from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from decimal import Decimal
from functools import partial
from pathlib import Path

import pytest
import sqlalchemy as sa

from billing import accounts, ledger, settlement
from billing.context import utcnow
from collectors.dispatch import Dispatcher
from collectors.oneshot import read_meter
from collectors.poller import FieldIO
from collectors.profiles import ProfileRegistry
from simulator.secure import TEST_MASTER_KEY
from simulator.site import demo_site, find_free_base_port
from storage.engine import dispose, open_engine
from storage.migrations import migrate
from storage.outbox import insert_command, meters_transaction, meters_with_work, next_command_seq
from storage.schema import command, ledger_entry, meter

from tests.billing_support import NATIONAL_ID, flat_tariff, load_site, make_ctx
from tests.conftest import engine_url
from tests.crash_driver import amount_of

ROOT = Path(__file__).resolve().parent.parent
SALES = 50
KILLS = 10


def _wait_for(proc: subprocess.Popen, word: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if word in line:
            return
        if not line and proc.poll() is not None:
            raise AssertionError(f"process ended before {word}: {proc.returncode}")
    raise AssertionError(f"no {word} within {timeout} s")


@pytest.fixture
def simulator(tmp_path):
    base = find_free_base_port(20)
    proc = subprocess.Popen(
        [sys.executable, "app.py", "simulate", "--site", "demo", "--base-port", str(base),
         "--state-file", str(tmp_path / "field.json"), "--key-hex", TEST_MASTER_KEY.hex()],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        _wait_for(proc, "simulating", 60)
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _read(site, address: str) -> dict:
    for g in site.gateways:
        for b in g.buses:
            for m in b.meters:
                if m.address == address:
                    return read_meter(g.host, b.port, m.unit, ProfileRegistry().get(m.profile), g.framing, timeout_s=2)
    raise KeyError(address)


@pytest.mark.parametrize("kind", ["duckdb", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_kill_9_during_a_batch_of_sales_never_loses_or_doubles_money(kind, tmp_path, simulator):
    url = engine_url(kind, tmp_path)
    site = demo_site(base_port=simulator)
    rooms = [m for m in site.meters() if m.profile == "acrel-ddsy1352" and m.prepaid_enabled]
    chosen = [rooms[i] for i in (0, 31, 62, 95, 130)]          # five meters on five different buses
    addresses = [m.address for m in chosen]

    # setup: topology, accounts, and a remote trip so the rooms use no power while the test runs
    engine = open_engine(url)
    migrate(engine)
    ctx = make_ctx(engine, utcnow)
    load_site(engine, site, utcnow())
    flat_tariff(ctx)
    for m in chosen:
        accounts.open_account(ctx, holder_name="测试", meter_addresses=[m.address], operator="setup",
                              national_id=NATIONAL_ID, purchase_counts={m.address: m.purchase_count})
    with engine.connect() as conn:
        ids = dict(conn.execute(sa.select(meter.c.address, meter.c.id).where(meter.c.address.in_(addresses))).all())
    with meters_transaction(engine, list(ids.values())) as conn:
        for mid in ids.values():
            insert_command(conn, meter_id=mid, kind="trip", purpose="relay", payload={},
                           counter=next_command_seq(conn, mid),
                           operator="setup", now=utcnow())
    with FieldIO(ProfileRegistry()) as fio:
        Dispatcher(engine, fio, TEST_MASTER_KEY, utcnow, on_settled=partial(settlement.settle_command, ctx)).run_once()
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(command)
                            .where(command.c.state != "acked")).scalar() == 0
    before = {a: _read(site, a) for a in addresses}
    assert all(not r["relay_closed"] for r in before.values())
    dispose(engine)  # DuckDB: the driver process must be the only one with the file open

    cmd = [sys.executable, "-m", "tests.crash_driver", url, TEST_MASTER_KEY.hex(), ",".join(addresses), str(SALES)]
    rng = random.Random(4)
    t0 = time.monotonic()
    for _ in range(KILLS):
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        _wait_for(proc, "READY", 60)
        time.sleep(rng.uniform(0.0, 0.9))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert "DONE" in proc.stdout, proc.stdout[-2000:]
    elapsed = time.monotonic() - t0

    engine = open_engine(url)
    try:
        with engine.connect() as conn:
            entries = conn.execute(sa.select(ledger_entry.c.request_id, ledger_entry.c.state, ledger_entry.c.amount,
                                             ledger_entry.c.purchase_count, meter.c.address)
                                   .join_from(ledger_entry, meter)
                                   .where(ledger_entry.c.request_id.like("crash-%"))).all()
            assert meters_with_work(conn) == []
            resent = conn.execute(sa.select(sa.func.count()).select_from(command).where(
                command.c.result == "ALREADY_APPLIED")).scalar_one()
        after = {a: _read(site, a) for a in addresses}
    finally:
        dispose(engine)
    assert len(entries) == SALES and {e.request_id for e in entries} == {f"crash-{i}" for i in range(SALES)}
    assert {e.state for e in entries} == {"confirmed"}
    for m in chosen:
        mine = sorted((e for e in entries if e.address == m.address), key=lambda e: e.purchase_count)
        sold = sum((amount_of(int(e.request_id.split("-")[1])) for e in mine), Decimal("0"))
        assert sum((e.amount for e in mine), Decimal("0")) == sold
        assert [e.purchase_count for e in mine] == list(range(m.purchase_count + 1, m.purchase_count + len(mine) + 1))
        assert after[m.address]["purchase_count"] == m.purchase_count + len(mine), "each sale applied exactly once"
        gained = Decimal(str(after[m.address]["balance"])) - Decimal(str(before[m.address]["balance"]))
        assert gained == sold, "no yuan lost or doubled"
    print(f"\n{kind}: {KILLS} kills + 1 clean run, {SALES} sales on {len(chosen)} meters, {resent} resends "
          f"answered ALREADY_APPLIED, {elapsed:.1f} s")
