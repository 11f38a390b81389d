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
        import atexit
        base = sa.engine.make_url(PG_BASE_URL)
        name = f"{base.database or 'wattline_test'}_{os.getpid()}"
        admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))

        def drop() -> None:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
        atexit.register(drop)
        _pg_url = base.set(database=name).render_as_string(hide_password=False)
    return _pg_url


def _reset_postgres(url: str) -> None:
    eng = sa.create_engine(url)
    with eng.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    eng.dispose()


def engine_url(kind: str, tmp_path) -> str:
    if kind == "duckdb":
        return f"duckdb:///{tmp_path / 'test.duckdb'}"
    if not PG_BASE_URL:
        if IN_CI:
            pytest.fail("CI must run the PostgreSQL tests: WATTLINE_TEST_PG_URL is not set (.ci/run starts it)")
        pytest.skip("no PostgreSQL (set WATTLINE_TEST_PG_URL, e.g. `source .ci/postgres.sh; start_postgres`)")
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_port_block(n: int) -> int:
    """A base port with n consecutive free ports after it."""
    for _ in range(200):
        base = free_port()
        if base + n >= 65535:
            continue
        ok = True
        for p in range(base, base + n):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", p))
                except OSError:
                    ok = False
                    break
        if ok:
            return base
    raise RuntimeError("no free port block")


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
