"""Engines from a URL: DuckDB (one connection per process, a cursor per pooled connection) or PostgreSQL."""
from __future__ import annotations

import os
import random
import threading
import time
from pathlib import Path
from typing import Callable, TypeVar

import sqlalchemy as sa

T = TypeVar("T")


class StorageError(RuntimeError):
    """The database cannot be opened or is not in a state this code can use."""


def is_duckdb(engine: sa.Engine) -> bool:
    return engine.dialect.name == "duckdb"


def engine_name(engine: sa.Engine) -> str:
    return "duckdb" if is_duckdb(engine) else engine.dialect.name


def open_engine(url: str) -> sa.Engine:
    """Open the database named by `url`.

    DuckDB allows one writing process per file. Inside this process we open the file once and
    hand every pooled SQLAlchemy connection its own cursor of that one connection, so threads
    (web, scheduler, collector) never share a cursor and never open the file twice.
    """
    if url.startswith("duckdb:"):
        return _open_duckdb(url)
    if url.startswith("postgresql"):
        return sa.create_engine(url, pool_pre_ping=True, pool_size=8, max_overflow=8)
    raise StorageError(f"unsupported database URL {url!r}: use duckdb:///path or postgresql+psycopg://...")


def _open_duckdb(url: str) -> sa.Engine:
    import duckdb
    from duckdb_engine import ConnectionWrapper

    path = sa.engine.make_url(url).database or ":memory:"
    if path != ":memory:":
        # the site's data (accounts, national IDs encrypted, the ledger): readable by its owner only
        Path(path).parent.mkdir(parents=True, mode=0o700, exist_ok=True)
    try:
        root = duckdb.connect(path)
    except duckdb.IOException as exc:  # another process holds the write lock
        raise StorageError(
            f"cannot open {path}: {exc}. DuckDB allows one writing process per file; "
            "stop the other Wattline process or point --config at another database."
        ) from exc
    if path != ":memory:":
        _owner_only(path)
    lock = threading.Lock()

    def cursor() -> ConnectionWrapper:
        with lock:  # creating cursors is not thread-safe on the parent connection
            return ConnectionWrapper(root.cursor())

    engine = sa.create_engine(
        "duckdb:///:memory:", creator=cursor,
        poolclass=sa.pool.QueuePool, pool_size=8, max_overflow=16, pool_timeout=60,
    )
    engine.info = {"duckdb_root": root, "path": path}  # type: ignore[attr-defined]
    return engine


def _owner_only(path: str) -> None:
    """Mode 0600 for the database file and its write-ahead log as they are now. A WAL DuckDB creates
    later gets the process's umask: the serving process sets 077 (serve.runtime)."""
    for name in (path, path + ".wal"):
        try:
            os.chmod(name, 0o600)
        except FileNotFoundError:
            pass


def run_transaction(engine: sa.Engine, work: Callable[[sa.Connection], T], *, attempts: int = 40) -> T:
    """`work(conn)` in one transaction, run again from the start when the database reports a
    write-write conflict (DuckDB's optimistic concurrency) or a serialization failure (PostgreSQL).
    `work` must read what it decides on through `conn`, so a rerun sees the winner's commit."""
    for attempt in range(attempts):
        try:
            with engine.begin() as conn:
                return work(conn)
        except sa.exc.DBAPIError as exc:
            if not is_conflict(exc) or attempt == attempts - 1:
                raise
        time.sleep(random.uniform(0, 0.002 * (attempt + 1)))  # let the winner commit before the rerun
    raise AssertionError("unreachable")


def dispose(engine: sa.Engine) -> None:
    """Close the pool and, on DuckDB, the file (its write lock goes with it)."""
    engine.dispose()
    root = getattr(engine, "info", {}).get("duckdb_root")
    if root is not None:
        try:
            root.close()
        except Exception:  # already closed
            pass


def is_conflict(exc: BaseException) -> bool:
    """A DuckDB optimistic-concurrency conflict (or a PostgreSQL serialization failure): retry the transaction."""
    text = str(getattr(exc, "orig", exc))
    return ("Conflict on" in text or "write-write conflict" in text or "could not serialize" in text
            or "deadlock detected" in text)


def is_unique_violation(exc: BaseException) -> bool:
    """A unique key refused the write: IntegrityError on PostgreSQL; on DuckDB a commit-time
    TransactionException (another transaction committed the same key first)."""
    if isinstance(exc, sa.exc.IntegrityError):
        return True
    text = str(getattr(exc, "orig", exc))
    return "UNIQUE constraint" in text or "Duplicate key" in text or "duplicate key" in text
