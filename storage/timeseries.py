"""Bulk appends of readings and the latest-state table, and the time-series queries on them."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import sqlalchemy as sa

from storage.engine import is_duckdb
from storage.schema import (
    BOOL_KEYS, FLOAT_KEYS, INT_KEYS, METER_STATE_COLUMNS, READINGS_COLUMNS, meter_state, readings,
)

# Frames handed to storage carry money as integer fen in `balance_fen` (exact, cheap to move in
# bulk); storage turns it into NUMERIC(14,2) `balance`.


def _frame_for(df: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    """Columns in table order with stable dtypes; absent ones as nulls."""
    out = {}
    n = len(df)
    for col in columns:
        if col == "balance":
            src = df["balance_fen"] if "balance_fen" in df else pd.Series([pd.NA] * n, index=df.index)
            out["balance_fen"] = pd.array(src, dtype="Int64")
        elif col in df:
            s = df[col]
            if col in FLOAT_KEYS:
                s = pd.to_numeric(s, errors="coerce").astype("float64")
            elif col in INT_KEYS or col in ("meter_id", "miss_count", "alarm_level"):
                s = pd.array(s, dtype="Int64")
            elif col in BOOL_KEYS:
                s = pd.array(s, dtype="boolean")
            out[col] = s
        else:
            if col in FLOAT_KEYS:
                out[col] = np.full(n, np.nan)
            elif col in INT_KEYS:
                out[col] = pd.array([pd.NA] * n, dtype="Int64")
            elif col in BOOL_KEYS:
                out[col] = pd.array([pd.NA] * n, dtype="boolean")
            else:
                out[col] = pd.Series([None] * n, dtype="object")
    return pd.DataFrame(out, index=range(n)) if n else pd.DataFrame(out)


def _select_list(columns: tuple[str, ...]) -> str:
    return ", ".join(
        "CAST(CAST(balance_fen AS DECIMAL(18,0)) * 0.01 AS DECIMAL(14,2))" if c == "balance" else f'"{c}"'
        for c in columns
    )


def append_readings(conn: sa.Connection, df: pd.DataFrame) -> int:
    """Append rows (ts, meter_id, canonical keys, balance_fen) to readings in one bulk write."""
    if df.empty:
        return 0
    frame = _frame_for(df, READINGS_COLUMNS)
    if is_duckdb(conn.engine):
        _duckdb_insert(conn, "readings", READINGS_COLUMNS, frame)
    else:
        _pg_copy(conn, "readings", READINGS_COLUMNS, frame)
    return len(frame)


def upsert_meter_state(conn: sa.Connection, df: pd.DataFrame) -> int:
    """Insert or replace meter_state rows (every column given; absent ones become null)."""
    if df.empty:
        return 0
    frame = _frame_for(df, METER_STATE_COLUMNS)
    cols = METER_STATE_COLUMNS
    updates = ", ".join(f'"{c}" = excluded."{c}"' for c in cols if c != "meter_id")
    if is_duckdb(conn.engine):
        raw = conn.connection.driver_connection
        raw.register("_wl_state_frame", frame)
        try:
            raw.execute(
                f"INSERT INTO meter_state ({', '.join(cols)}) SELECT {_select_list(cols)} "
                f"FROM _wl_state_frame ON CONFLICT (meter_id) DO UPDATE SET {updates}"
            )
        finally:
            raw.unregister("_wl_state_frame")
    else:
        tmp = "_wl_state_tmp"
        conn.execute(sa.text(
            f"CREATE TEMP TABLE IF NOT EXISTS {tmp} (LIKE meter_state INCLUDING DEFAULTS) ON COMMIT DROP"))
        conn.execute(sa.text(f"ALTER TABLE {tmp} ADD COLUMN IF NOT EXISTS balance_fen BIGINT"))
        copy_cols = tuple("balance_fen" if c == "balance" else c for c in cols)
        _copy_text(conn, tmp, copy_cols, frame)
        conn.execute(sa.text(
            f"INSERT INTO meter_state ({', '.join(cols)}) SELECT {_select_list(cols)} FROM {tmp} "
            f"ON CONFLICT (meter_id) DO UPDATE SET {updates}"))
        conn.execute(sa.text(f"DROP TABLE {tmp}"))
    return len(frame)


def _duckdb_insert(conn: sa.Connection, table: str, columns: tuple[str, ...], frame: pd.DataFrame) -> None:
    raw = conn.connection.driver_connection
    name = f"_wl_{table}_frame"
    raw.register(name, frame)
    try:
        raw.execute(f"INSERT INTO {table} ({', '.join(columns)}) SELECT {_select_list(columns)} FROM {name}")
    finally:
        raw.unregister(name)


def _pg_copy(conn: sa.Connection, table: str, columns: tuple[str, ...], frame: pd.DataFrame) -> None:
    """COPY ... FROM STDIN in text format; `balance` travels as fen and is converted by the server."""
    copy_cols = tuple("balance_fen" if c == "balance" else c for c in columns)
    target = table
    if "balance" in columns and table in ("readings",):
        # readings has no balance_fen column: stage through a temp table with the fen column.
        tmp = "_wl_readings_tmp"
        conn.execute(sa.text(
            f"CREATE TEMP TABLE IF NOT EXISTS {tmp} (LIKE readings) ON COMMIT DROP"))
        conn.execute(sa.text(f"ALTER TABLE {tmp} ADD COLUMN IF NOT EXISTS balance_fen BIGINT"))
        _copy_text(conn, tmp, copy_cols, frame)
        conn.execute(sa.text(
            f"INSERT INTO readings ({', '.join(columns)}) SELECT {_select_list(columns)} FROM {tmp}"))
        conn.execute(sa.text(f"DROP TABLE {tmp}"))
        return
    _copy_text(conn, target, copy_cols, frame)


def _copy_text(conn: sa.Connection, table: str, copy_cols: tuple[str, ...], frame: pd.DataFrame) -> None:
    """COPY FROM STDIN row by row through psycopg's adapters (handles quoting, NULLs, types)."""
    columns = [_python_values(frame[c]) for c in frame.columns]
    raw = conn.connection.driver_connection
    with raw.cursor() as cur:
        with cur.copy(f"COPY {table} ({', '.join(copy_cols)}) FROM STDIN") as cp:
            for row in zip(*columns):
                cp.write_row(row)


def _python_values(s: pd.Series) -> list:
    if pd.api.types.is_datetime64_any_dtype(s):
        return [None if pd.isna(v) else v.to_pydatetime() for v in s]
    return [None if (v is None or v is pd.NA or (isinstance(v, float) and v != v)) else v for v in s.tolist()]


# ---------------------------------------------------------------------------------------------
# Queries

def readings_between(conn: sa.Connection, meter_id: int, start: dt.datetime, end: dt.datetime,
                     columns: tuple[str, ...] = ("power_total", "energy_total", "balance")) -> pd.DataFrame:
    cols = [readings.c.ts] + [readings.c[c] for c in columns]
    q = (sa.select(*cols).where(readings.c.meter_id == meter_id, readings.c.ts >= start, readings.c.ts < end)
         .order_by(readings.c.ts))
    return pd.DataFrame(conn.execute(q).all(), columns=["ts", *columns])


def readings_count(conn: sa.Connection) -> int:
    return conn.execute(sa.select(sa.func.count()).select_from(readings)).scalar_one()


def meter_states(conn: sa.Connection) -> pd.DataFrame:
    return pd.DataFrame(conn.execute(sa.select(meter_state)).mappings().all(), columns=list(METER_STATE_COLUMNS))
