"""Energy rollups' SQL: readings for the derivation, the upkeep's state, additive and replacing writes of the
15-minute / hourly / daily rollups, and the grouped queries the analysis reads (never raw readings per request,
except the bounded stopped-register check)."""
from __future__ import annotations

import datetime as dt

import pandas as pd
import sqlalchemy as sa

from storage.engine import is_duckdb
from storage.frames import read_frame
from storage.schema import (
    ENERGY_ROLLUP_COLUMNS, account_meter, area_meter, building, energy_15min, energy_day, energy_hour, energy_upkeep, meter, meter_tariff, readings, room,
    tariff_version, transformer_area,
)
from storage.timeseries import _bulk_write, _copy_rows

ROLLUPS = {"15min": (energy_15min, "ts"), "hour": (energy_hour, "ts"), "day": (energy_day, "day")}
_REGISTERS = ("energy_total", "energy_sharp", "energy_peak", "energy_flat", "energy_valley", "power_total")
UPKEEP_COLUMNS = tuple(c.name for c in energy_upkeep.columns)


def energy_readings(conn: sa.Connection, start: dt.datetime | None, end: dt.datetime | None,
                    meter_ids: list[int] | None = None) -> pd.DataFrame:
    """meter_id, ts, the energy registers and power_total of readings with an energy register in [start, end)."""
    q = sa.select(readings.c.meter_id, readings.c.ts, *[readings.c[c] for c in _REGISTERS]).where(
        readings.c.energy_total.is_not(None))
    if start is not None:
        q = q.where(readings.c.ts >= start)
    if end is not None:
        q = q.where(readings.c.ts < end)
    if meter_ids is not None:
        q = q.where(readings.c.meter_id.in_(meter_ids))
    return read_frame(conn, q.order_by(readings.c.meter_id, readings.c.ts))


def readings_span(conn: sa.Connection) -> tuple[dt.datetime | None, dt.datetime | None]:
    """The first and last reading time with an energy register."""
    row = conn.execute(sa.select(sa.func.min(readings.c.ts), sa.func.max(readings.c.ts))
                       .where(readings.c.energy_total.is_not(None))).one()
    return row[0], row[1]


def count_readings(conn: sa.Connection, start: dt.datetime, end: dt.datetime) -> int:
    return conn.execute(sa.select(sa.func.count()).select_from(readings)
                        .where(readings.c.ts >= start, readings.c.ts < end)).scalar_one()


def tariff_fingerprint(conn: sa.Connection) -> tuple:
    """Changes whenever a meter's tariff, a tariff version or a meter's count epoch (a swap) changes: rows are
    only ever added to these tables, so their highest ids and counts tell."""
    return tuple(conn.execute(sa.select(
        sa.select(sa.func.max(meter_tariff.c.id)).scalar_subquery(),
        sa.select(sa.func.count()).select_from(meter_tariff).scalar_subquery(),
        sa.select(sa.func.max(tariff_version.c.id)).scalar_subquery(),
        sa.select(sa.func.max(account_meter.c.id)).scalar_subquery(),
        sa.select(sa.func.count()).select_from(account_meter).scalar_subquery())).one())


def all_meter_ids(conn: sa.Connection) -> list[int]:
    return list(conn.execute(sa.select(meter.c.id).order_by(meter.c.id)).scalars())


# ---------------------------------------------------------------------------------------------
# The upkeep's state

def upkeep_state(conn: sa.Connection, meter_ids: list[int] | None = None) -> pd.DataFrame:
    q = sa.select(energy_upkeep)
    if meter_ids is not None:
        q = q.where(energy_upkeep.c.meter_id.in_(meter_ids))
    return read_frame(conn, q)


def upkeep_watermark(conn: sa.Connection) -> dt.datetime | None:
    """The latest reading time folded into the rollups (None: never built)."""
    return conn.execute(sa.select(sa.func.max(energy_upkeep.c.ts))).scalar()


def save_upkeep_state(conn: sa.Connection, frame: pd.DataFrame) -> None:
    """Insert or replace per-meter rows (meter_id, ts, registers, power_total)."""
    if len(frame):
        _bulk_write(conn, "energy_upkeep", UPKEEP_COLUMNS, frame[list(UPKEEP_COLUMNS)], upsert_key="meter_id")


def clear_upkeep_state(conn: sa.Connection) -> None:
    conn.execute(energy_upkeep.delete())


# ---------------------------------------------------------------------------------------------
# Rollup writes

def _columns(grain: str) -> tuple[str, ...]:
    _table, key = ROLLUPS[grain]
    return ("meter_id", key, *ENERGY_ROLLUP_COLUMNS)


def _register(conn: sa.Connection, name: str, frame: pd.DataFrame, ddl: str) -> str:
    """`frame` visible to SQL as `name` in this transaction (DuckDB: the frame itself; PostgreSQL: a temp table
    of the given column DDL, filled by COPY)."""
    if is_duckdb(conn.engine):
        conn.connection.driver_connection.register(name, frame)
    else:
        conn.execute(sa.text(f"CREATE TEMP TABLE {name} ({ddl}) ON COMMIT DROP"))
        _copy_rows(conn, name, tuple(frame.columns), frame)
    return name


def _unregister(conn: sa.Connection, name: str) -> None:
    if is_duckdb(conn.engine):
        conn.connection.driver_connection.unregister(name)
    else:
        conn.execute(sa.text(f"DROP TABLE {name}"))


def add_to_rollup(conn: sa.Connection, grain: str, frame: pd.DataFrame) -> None:
    """Add `frame`'s rows (meter_id, key, energy, flags) to the rollup: energy summed and flags or-ed into the rows
    that exist, the others inserted: one MERGE, whatever the number of rows."""
    if frame.empty:
        return
    table, key = ROLLUPS[grain]
    t = table.name
    cols = _columns(grain)
    key_type = "DATE" if key == "day" else "TIMESTAMP"
    ddl = ", ".join(["meter_id INTEGER", f"{key} {key_type}", *[f"{c} DOUBLE PRECISION" for c in
                                                                 ENERGY_ROLLUP_COLUMNS[:5]],
                     "estimated BOOLEAN", "gap BOOLEAN"])
    first = pd.Timestamp(frame[key].min())
    first = first.date() if key == "day" else first.to_pydatetime()
    name = _register(conn, "_wl_energy_add", frame[list(cols)], ddl)
    sums = ", ".join(f"{c} = {t}.{c} + f.{c}" for c in ENERGY_ROLLUP_COLUMNS[:5])
    try:
        conn.execute(sa.text(
            f"MERGE INTO {t} USING {name} f ON {t}.meter_id = f.meter_id AND {t}.{key} = f.{key} "
            f"AND {t}.{key} >= :first "
            f"WHEN MATCHED THEN UPDATE SET {sums}, estimated = {t}.estimated OR f.estimated, gap = {t}.gap OR f.gap "
            f"WHEN NOT MATCHED THEN INSERT ({', '.join(cols)}) VALUES ({', '.join('f.' + c for c in cols)})"),
            {"first": first})
    finally:
        _unregister(conn, name)


def order_rollups_by_time(conn: sa.Connection) -> None:
    """DuckDB: rewrite the rollups in time order after a rebuild (it writes meter by meter), so the upkeep's and
    the reports' time filters skip whole row groups by their min/max; PostgreSQL has its indexes."""
    if not is_duckdb(conn.engine):
        return
    for table, key in ROLLUPS.values():
        conn.execute(sa.text(f"CREATE TEMP TABLE _wl_sorted AS SELECT * FROM {table.name} ORDER BY {key}, meter_id"))
        conn.execute(sa.text(f"DELETE FROM {table.name}"))
        conn.execute(sa.text(f"INSERT INTO {table.name} SELECT * FROM _wl_sorted"))
        conn.execute(sa.text("DROP TABLE _wl_sorted"))


def insert_rollup_rows(conn: sa.Connection, grain: str, frame: pd.DataFrame) -> None:
    if len(frame):
        table, _key = ROLLUPS[grain]
        cols = _columns(grain)
        _bulk_write(conn, table.name, cols, frame[list(cols)])


def delete_rollups_between(conn: sa.Connection, start: dt.datetime, end: dt.datetime, first_day: dt.date,
                           last_day: dt.date) -> None:
    """Every rollup row of [start, end) (UTC; the 15-minute and hourly ones) and of the local days first..last."""
    for table in (energy_15min, energy_hour):
        conn.execute(table.delete().where(table.c.ts >= start, table.c.ts < end))
    conn.execute(energy_day.delete().where(energy_day.c.day >= first_day, energy_day.c.day <= last_day))


def prune_quarters(conn: sa.Connection, before: dt.datetime) -> None:
    """15-minute rows older than the retention ([analytics] fine_days): hourly and daily ones stay."""
    conn.execute(energy_15min.delete().where(energy_15min.c.ts < before))


# ---------------------------------------------------------------------------------------------
# Reads for the analysis

def _place_columns():
    """(from clause, {name: column}) joining a meter to its room, floor and building (a room-less meter's building
    is its transformer area's)."""
    area_building = building.alias("area_building")
    joined = (meter.outerjoin(room, room.c.id == meter.c.room_id)
              .outerjoin(building, building.c.id == room.c.building_id)
              .outerjoin(area_meter, area_meter.c.meter_id == meter.c.id)
              .outerjoin(transformer_area, transformer_area.c.id == area_meter.c.area_id)
              .outerjoin(area_building, area_building.c.id == transformer_area.c.building_id))
    cols = {"building": sa.func.coalesce(building.c.name, area_building.c.name), "floor": room.c.floor,
            "room": room.c.name, "meter": meter.c.address}
    return joined, cols


def meters_with_place(conn: sa.Connection) -> pd.DataFrame:
    """Every meter: meter_id, meter (address), profile, building, floor, room, has_room."""
    joined, cols = _place_columns()
    q = (sa.select(meter.c.id.label("meter_id"), *[c.label(n) for n, c in cols.items()], meter.c.profile,
                   meter.c.room_id.is_not(None).label("has_room"))
         .select_from(joined).order_by(meter.c.id))
    return read_frame(conn, q)


def grouped_energy(conn: sa.Connection, grain: str, lo, hi, meter_ids: list[int] | None,
                   group: tuple[str, ...] = (), month: bool = False) -> pd.DataFrame:
    """Sums of a rollup over [lo, hi) per period and place: period, the `group` columns (building, floor, room,
    meter), the energy columns, estimated, gap (any row). `month`: periods are months (the daily rollup)."""
    table, key = ROLLUPS[grain]
    col = table.c[key]
    # PostgreSQL truncates a DATE as a timestamp with time zone: truncate a plain timestamp, back to a date
    period = (sa.cast(sa.func.date_trunc("month", sa.cast(col, sa.DateTime)), sa.Date) if month else col).label(
        "period")
    joined, cols = _place_columns()
    keys = [period, *[cols[g].label(g) for g in group]]
    q = (sa.select(*keys, *[sa.func.sum(table.c[c]).label(c) for c in ENERGY_ROLLUP_COLUMNS[:5]],
                   sa.func.bool_or(table.c.estimated).label("estimated"), sa.func.bool_or(table.c.gap).label("gap"))
         .select_from(table.join(joined, meter.c.id == table.c.meter_id) if group else table)
         .where(col >= lo, col < hi).group_by(*keys))
    if meter_ids is not None:
        q = q.where(table.c.meter_id.in_(meter_ids))
    return read_frame(conn, q)


def meter_energy(conn: sa.Connection, grain: str, lo, hi, meter_ids: list[int] | None,
                 keys: list | None = None) -> pd.DataFrame:
    """Per meter: energy_kwh summed over [lo, hi) (or over the given `keys` only: UTC hour starts of the hourly
    rollup), rows (how many periods), estimated, gap."""
    table, key = ROLLUPS[grain]
    col = table.c[key]
    q = (sa.select(table.c.meter_id, sa.func.sum(table.c.energy_kwh).label("energy_kwh"),
                   sa.func.count().label("periods"), sa.func.bool_or(table.c.estimated).label("estimated"),
                   sa.func.bool_or(table.c.gap).label("gap"))
         .where(col >= lo, col < hi).group_by(table.c.meter_id))
    if keys is not None:
        q = q.where(col.in_(keys))
    if meter_ids is not None:
        q = q.where(table.c.meter_id.in_(meter_ids))
    return read_frame(conn, q)


def rollup_frame(conn: sa.Connection, grain: str, lo, hi, meter_ids: list[int] | None = None) -> pd.DataFrame:
    """The rollup's rows over [lo, hi) as they are (meter_id, key, energy, flags)."""
    table, key = ROLLUPS[grain]
    q = sa.select(*[table.c[c] for c in _columns(grain)]).where(table.c[key] >= lo, table.c[key] < hi)
    if meter_ids is not None:
        q = q.where(table.c.meter_id.in_(meter_ids))
    return read_frame(conn, q.order_by(table.c.meter_id, table.c[key]))


def stopped_registers(conn: sa.Connection, start: dt.datetime, end: dt.datetime,
                      min_power_kw: float, min_readings: int = 3) -> pd.DataFrame:
    """Meters whose energy register did not move over their readings in [start, end) while every one of those
    readings showed power above `min_power_kw` (at least `min_readings` of them): meter_id, readings, first_ts,
    last_ts, energy_total, power_kw (average), expected_kwh (average power x hours)."""
    r = readings.c
    q = (sa.select(r.meter_id, sa.func.count().label("readings"), sa.func.min(r.ts).label("first_ts"),
                   sa.func.max(r.ts).label("last_ts"), sa.func.max(r.energy_total).label("energy_total"),
                   sa.func.avg(r.power_total).label("power_kw"))
         .where(r.ts >= start, r.ts < end, r.energy_total.is_not(None), r.power_total.is_not(None))
         .group_by(r.meter_id)
         .having(sa.and_(sa.func.count() >= min_readings, sa.func.max(r.energy_total) == sa.func.min(r.energy_total),
                         sa.func.min(r.power_total) > min_power_kw)))
    df = read_frame(conn, q)
    if len(df):
        hours = (pd.to_datetime(df["last_ts"]) - pd.to_datetime(df["first_ts"])).dt.total_seconds() / 3600.0
        df["expected_kwh"] = df["power_kw"].astype(float) * hours.to_numpy()
    else:
        df["expected_kwh"] = pd.Series(dtype=float)
    return df
