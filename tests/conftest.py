"""Shared fixtures: real database engines (DuckDB file, PostgreSQL), free loopback ports, a fixed clock."""
from __future__ import annotations

import datetime as dt
import os
import socket

import pytest
import sqlalchemy as sa

from storage.engine import dispose, open_engine
from storage.migrations import migrate

PG_URL = os.environ.get("WATTLINE_TEST_PG_URL")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _reset_postgres(url: str) -> None:
    eng = sa.create_engine(url)
    with eng.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    eng.dispose()


def engine_url(kind: str, tmp_path) -> str:
    if kind == "duckdb":
        return f"duckdb:///{tmp_path / 'test.duckdb'}"
    if not PG_URL:
        if IN_CI:
            pytest.fail("CI must run the PostgreSQL tests: WATTLINE_TEST_PG_URL is not set (.ci/run starts it)")
        pytest.skip("no PostgreSQL (set WATTLINE_TEST_PG_URL, e.g. `source .ci/postgres.sh; start_postgres`)")
    _reset_postgres(PG_URL)
    return PG_URL


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
