"""Shared fixtures: real database engines (DuckDB file, PostgreSQL), free loopback ports, a fixed clock."""
from __future__ import annotations

import datetime as dt
import os
import socket

import pytest
import sqlalchemy as sa

from storage.engine import dispose, open_engine
from storage.migrations import migrate

PG_BASE_URL = os.environ.get("WATTLINE_TEST_PG_URL")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
_pg_url: str | None = None


def _pg_database() -> str:
    """A database of this test process's own (created on first use, dropped at exit), so suites
    run side by side on one server never drop each other's tables."""
    global _pg_url
    if _pg_url is None:
        _pg_url = _new_database(f"{_base_name()}_{os.getpid()}")
    return _pg_url


def _base_name() -> str:
    return sa.engine.make_url(PG_BASE_URL).database or "wattline_test"


def _new_database(name: str) -> str:
    """Create the database `name` afresh on the test server, dropped when the process exits; its URL."""
    import atexit
    base = sa.engine.make_url(PG_BASE_URL)
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    atexit.register(drop)
    return base.set(database=name).render_as_string(hide_password=False)


def _reset_postgres(url: str) -> None:
    eng = sa.create_engine(url)
    with eng.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    eng.dispose()


_own_databases: list[str] = []


def _need_postgres() -> None:
    if not PG_BASE_URL:
        if IN_CI:
            pytest.fail("CI must run the PostgreSQL tests: WATTLINE_TEST_PG_URL is not set (.ci/run starts it)")
        pytest.skip("no PostgreSQL (set WATTLINE_TEST_PG_URL, e.g. `source .ci/postgres.sh; start_postgres`)")


def own_pg_database() -> str:
    """A PostgreSQL database of its own (dropped at exit), for a serving runtime a test module keeps for its
    tests: its background jobs never share a database with the tests that run after it in this process."""
    _need_postgres()
    _own_databases.append(f"{_base_name()}_{os.getpid()}_{len(_own_databases) + 1}")
    return _new_database(_own_databases[-1])


def engine_url(kind: str, tmp_path) -> str:
    if kind == "duckdb":
        return f"duckdb:///{tmp_path / 'test.duckdb'}"
    _need_postgres()
    url = _pg_database()
    _reset_postgres(url)
    return url


@pytest.fixture(params=["duckdb", pytest.param("postgresql", marks=pytest.mark.postgres)])
def any_engine(request, tmp_path):
    """A migrated, empty database on each engine of the matrix."""
    engine = open_engine(engine_url(request.param, tmp_path))
    migrate(engine)
    yield engine
    dispose(engine)


@pytest.fixture
def duck_engine(tmp_path):
    engine = open_engine(f"duckdb:///{tmp_path / 'test.duckdb'}")
    migrate(engine)
    yield engine
    dispose(engine)


@pytest.fixture
def fixed_now():
    return dt.datetime(2026, 11, 21, 8, 0, 0)


# Ports for servers a test starts (the simulator, the app): never from the kernel's ephemeral range, where
# any outgoing connection of another xdist worker may take the port between our check and the server's bind
# (a simulator restarted on its port met "address already in use" that way). Each worker draws from its own
# slice below that range and walks it, so no two workers and no two tests of one worker share a port.
def _ephemeral_low() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _worker_slice() -> tuple[int, int]:
    low, high = 10000, max(_ephemeral_low(), 12000)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(worker[2:]) if worker[2:].isdigit() else 0
    count = max(int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1), index + 1)
    size = (high - low) // count
    return low + index * size, low + (index + 1) * size


_next_port: list[int] = []


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_block(n: int) -> int:
    """A base port with n consecutive free ports after it, from this worker's slice."""
    start, end = _worker_slice()
    if not _next_port:
        _next_port.append(start + (os.getpid() * 7919) % max(end - start - n, 1))
    for _ in range(2 * (end - start)):
        base = _next_port[0]
        if base + n >= end:
            base = start
        _next_port[0] = base + n
        if all(_bindable(p) for p in range(base, base + n)):
            return base
    raise RuntimeError("no free port block")


def free_port() -> int:
    return free_port_block(1)


# --- Chromium for browser tests ----------------------------------------------------------------
# The system's chromium (Debian package), driven by Playwright; never a downloaded browser. In CI
# (CI=true) a missing chromium fails the test: browser tests must run there, not skip.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def chromium_path() -> str:
    import shutil
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if IN_CI:
            pytest.fail("CI must run browser tests: chromium is not installed (.ci/run installs it)")
        pytest.skip("no chromium on this machine")
    return path


@pytest.fixture(scope="module")
def browser():
    """One Chromium per test module."""
    executable = chromium_path()
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield b
        b.close()


# --- the order files are handed to xdist workers ------------------------------------------------
# `make test` runs whole files per worker (--dist loadfile --no-loadscope-reorder): the slowest files go first,
# so the two workers end near each other instead of one starting a long Chromium walk when the other is done.
# Longest first, by the durations of the last whole-suite run (docs/BENCHMARKS.md "Test suite"); files not listed
# keep pytest's order after them.
SLOW_FILES_FIRST = ("test_console_errors_roles.py", "test_console_errors.py", "test_fuzz_inputs.py",
                    "test_fuzz_callbacks.py", "test_dispatch_crash.py", "test_page_layout.py",
                    "test_analysis_browser.py", "test_workorders_browser.py", "test_control_browser.py",
                    "test_overview_browser.py", "test_app.py", "test_auth_browser.py", "test_refusals.py")


def pytest_collection_modifyitems(session, config, items) -> None:
    rank = {name: i for i, name in enumerate(SLOW_FILES_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
