"""Bulk appends of readings, device history and the latest-state table, and the time-series queries on them."""
from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import sqlalchemy as sa

from storage.engine import is_duckdb
from storage.schema import (
    BOOL_KEYS, CANONICAL_KEYS, DEVICE_FLOAT_KEYS, DEVICE_INT_KEYS, DEVICE_READINGS_COLUMNS, DEVICE_SIGNAL_BITS,
    FLOAT_KEYS, HISTORY_DEVICE_KEYS, INT_KEYS, METER_STATE_COLUMNS, PHASE_KEYS, READING_STATUS_BITS,
    READINGS_COLUMNS, device_readings, meter_state, readings,
)

# Frames handed to storage carry money as integer fen in `balance_fen` (exact, cheap to move in
# bulk); storage turns it into NUMERIC(14,2) `balance`.


def _frame_for(df: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    """The given columns that belong to the table, with dtypes DuckDB and psycopg take as they are.

    Absent columns are not materialised: the INSERT selects NULL for them. Numpy dtypes are kept
    where a column has no nulls (scanning them is cheaper than pandas' masked arrays).
    """
    out = {}
    for col in columns:
        src = "balance_fen" if col == "balance" else col
        if src not in df:
            continue
        s = df[src]
        if col in FLOAT_KEYS:
            if s.dtype != np.float64:
                s = pd.to_numeric(s, errors="coerce").astype("float64")
        elif col in INT_KEYS or col in ("meter_id", "miss_count", "alarm_level", "balance", "status", "signals"):
            if not pd.api.types.is_integer_dtype(s) or isinstance(s.dtype, pd.api.extensions.ExtensionDtype):
                s = pd.array(s, dtype="Int64")
                if not s.isna().any():
                    s = s.to_numpy(dtype="int64")
        elif col in BOOL_KEYS:
            if s.dtype != np.bool_:
                s = pd.array(s, dtype="boolean")
                if not s.isna().any():
                    s = s.to_numpy(dtype=bool)
        out[src] = s.values if isinstance(s, pd.Series) else s
    return pd.DataFrame(out, copy=False)


def _select_list(columns: tuple[str, ...], present: set[str] | None = None) -> str:
    """SELECT expressions in table order: fen to NUMERIC for balance, NULL for absent columns."""
    parts = []
    for c in columns:
        src = "balance_fen" if c == "balance" else c
        if present is not None and src not in present:
            parts.append(f'NULL AS "{c}"')
        elif c == "balance":
            parts.append("CAST(CAST(balance_fen AS DECIMAL(18,0)) * 0.01 AS DECIMAL(14,2)) AS balance")
        else:
            parts.append(f'"{c}"')
    return ", ".join(parts)


def append_readings(conn: sa.Connection, df: pd.DataFrame) -> int:
    """Append rows (ts, meter_id, canonical keys, balance_fen) to readings in one bulk write."""
    if df.empty:
        return 0
    if "status" not in df:
        df = df.assign(**pack_status(df))
    return _bulk_write(conn, "readings", READINGS_COLUMNS, _frame_for(df, READINGS_COLUMNS))


def pack_status(df: pd.DataFrame) -> dict:
    """{'status': int array} from whichever flag columns the frame has (none: no status column)."""
    flags = [(name, bit) for name, bit in READING_STATUS_BITS.items() if name in df]
    if not flags:
        return {}
    status = np.zeros(len(df), dtype="int64")
    for name, bit in flags:
        status |= pd.array(df[name], dtype="boolean").fillna(False).to_numpy(dtype=bool).astype("int64") << bit
    return {"status": status}


def append_device_history(conn: sa.Connection, df: pd.DataFrame) -> int:
    """Append the rows of a readings frame (ts, meter_id, canonical keys, `extra` JSON, balance_fen) that are
    device history (`history_mask`) to device_readings in one bulk write; the signal flags are packed."""
    if df.empty:
        return 0
    mask = history_mask(df)
    if not mask.any():
        return 0
    if not mask.all():
        df = df[mask]
    if "signals" not in df:
        df = df.assign(**pack_signals(df))
    return _bulk_write(conn, "device_readings", DEVICE_READINGS_COLUMNS, _frame_for(df, DEVICE_READINGS_COLUMNS))


def history_mask(df: pd.DataFrame) -> np.ndarray:
    """Rows that are device history: a device key (THD, reactive power, temperatures, tap, signals ...) read,
    or, on a meter without a balance, per-phase values or own keys. A prepaid meter's readings are not."""
    def read(cols) -> np.ndarray:
        out = np.zeros(len(df), dtype=bool)
        for c in cols:
            if c in df:
                out |= df[c].notna().to_numpy()
        return out
    device = read(HISTORY_DEVICE_KEYS)
    no_balance = ~read(("balance_fen",))
    return device | (no_balance & read((*PHASE_KEYS, "extra")))


def pack_signals(df: pd.DataFrame) -> dict:
    """{'signals': Int64 array} from whichever signal columns the frame has: null on a row that read none."""
    flags = [(name, bit) for name, bit in DEVICE_SIGNAL_BITS.items() if name in df]
    if not flags:
        return {}
    packed = np.zeros(len(df), dtype="int64")
    seen = np.zeros(len(df), dtype=bool)
    for name, bit in flags:
        col = pd.array(df[name], dtype="boolean")
        seen |= ~col.isna()
        packed |= col.fillna(False).to_numpy(dtype=bool).astype("int64") << bit
    if seen.all():
        return {"signals": packed}
    return {"signals": pd.arrays.IntegerArray(packed, ~seen)}


def unpack_signals(signals: int | None) -> dict[str, bool | None]:
    return {name: None if signals is None else bool(signals >> bit & 1) for name, bit in DEVICE_SIGNAL_BITS.items()}


def unpack_status(status: int | None) -> dict[str, bool]:
    if status is None:
        return {}
    return {name: bool(status >> bit & 1) for name, bit in READING_STATUS_BITS.items()}


def upsert_meter_state(conn: sa.Connection, df: pd.DataFrame) -> int:
    """Insert or replace whole meter_state rows: columns absent from `df` become null."""
    if df.empty:
        return 0
    return _bulk_write(conn, "meter_state", METER_STATE_COLUMNS, _frame_for(df, METER_STATE_COLUMNS),
                       upsert_key="meter_id")


def _bulk_write(conn: sa.Connection, table: str, columns: tuple[str, ...], frame: pd.DataFrame,
                upsert_key: str | None = None) -> int:
    """DuckDB scans the DataFrame in place; PostgreSQL gets COPY into a temp table. Both then run
    one INSERT ... SELECT (and ON CONFLICT for upserts) inside the caller's transaction."""
    select = _select_list(columns, set(frame.columns))
    conflict = ""
    if upsert_key:
        updates = ", ".join(f'"{c}" = excluded."{c}"' for c in columns if c != upsert_key)
        conflict = f" ON CONFLICT ({upsert_key}) DO UPDATE SET {updates}"
    insert = f"INSERT INTO {table} ({', '.join(columns)}) SELECT {select} FROM {{src}}{conflict}"
    if is_duckdb(conn.engine):
        raw = conn.connection.driver_connection
        name = f"_wl_{table}_frame"
        raw.register(name, frame)
        try:
            raw.execute(insert.format(src=name))
        finally:
            raw.unregister(name)
    else:
        tmp = f"_wl_{table}_tmp"
        # CREATE TABLE AS copies no NOT NULL constraint: columns we do not send stay null here.
        conn.execute(sa.text(f"CREATE TEMP TABLE {tmp} ON COMMIT DROP AS SELECT * FROM {table} WITH NO DATA"))
        if "balance_fen" in frame.columns:
            conn.execute(sa.text(f"ALTER TABLE {tmp} ADD COLUMN balance_fen BIGINT"))
        _copy_rows(conn, tmp, tuple(frame.columns), frame)
        conn.execute(sa.text(insert.format(src=tmp)))
        conn.execute(sa.text(f"DROP TABLE {tmp}"))
    return len(frame)


def _copy_rows(conn: sa.Connection, table: str, copy_cols: tuple[str, ...], frame: pd.DataFrame) -> None:
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


_DEVICE_TYPED = DEVICE_FLOAT_KEYS + DEVICE_INT_KEYS


def device_history(conn: sa.Connection, meter_id: int, start: dt.datetime, end: dt.datetime,
                   keys: tuple[str, ...] | list[str] | None = None) -> pd.DataFrame:
    """A device's history in time order: ts and one column per key (typed columns, signal flags, a site's own
    profile keys from the JSON). keys=None: every typed column and signal flag, and every own key seen.

    A canonical key that `readings` keeps (voltage_a, energy_total ...) is not here: readings_between has it."""
    if keys is not None:
        kept = set(_DEVICE_TYPED) | set(DEVICE_SIGNAL_BITS)
        refused = [k for k in keys if k in CANONICAL_KEYS and k not in kept]
        if refused:
            raise ValueError(f"device history does not keep {', '.join(refused)}: readings does (readings_between)")
    typed = [k for k in _DEVICE_TYPED if keys is None or k in keys]
    want_signals = keys is None or any(k in DEVICE_SIGNAL_BITS for k in keys)
    own = None if keys is None else [k for k in keys if k not in CANONICAL_KEYS and k not in DEVICE_SIGNAL_BITS]
    cols = [device_readings.c.ts, *(device_readings.c[k] for k in typed)]
    if want_signals:
        cols.append(device_readings.c.signals)
    if own is None or own:
        cols.append(device_readings.c.extra)
    q = (sa.select(*cols).where(device_readings.c.meter_id == meter_id, device_readings.c.ts >= start,
                                device_readings.c.ts < end)
         .order_by(device_readings.c.ts))
    frame = pd.DataFrame(conn.execute(q).all(), columns=[c.name for c in cols])
    if want_signals:
        flags = [unpack_signals(None if pd.isna(v) else int(v)) for v in frame.pop("signals")]
        names = [k for k in DEVICE_SIGNAL_BITS if keys is None or k in keys]
        for name in names:
            frame[name] = pd.array([f[name] for f in flags], dtype="boolean")
    if "extra" in frame:
        extras = [json.loads(v) if isinstance(v, str) else {} for v in frame.pop("extra")]
        for name in own if own is not None else sorted({k for e in extras for k in e} - set(DEVICE_SIGNAL_BITS)):
            frame[name] = [e.get(name) for e in extras]
    if keys is not None:
        frame = frame[["ts", *keys]]
    return frame
