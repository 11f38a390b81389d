"""Queries of the transformer areas (grid/): their model, the registers of their meters at period boundaries
(line loss) and the monitoring points' voltage, current and THD series (power quality)."""
from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import pandas as pd
import sqlalchemy as sa

from storage.engine import is_duckdb
from storage.schema import area_meter, building, device_readings, frozen_register, meter, readings, transformer_area

AREA_COLUMNS = ("id", "name", "building", "rating_kva", "nominal_voltage", "connection_group", "master_meter_id",
                "master_address", "terminal_meter_id", "terminal_address", "ct_ratio")


def areas(conn: sa.Connection) -> pd.DataFrame:
    """Every transformer area with its nameplate, master meter (and CT ratio) and terminal, by name."""
    master, terminal = meter.alias("master"), meter.alias("terminal")
    q = (sa.select(transformer_area.c.id, transformer_area.c.name, building.c.name.label("building"),
                   transformer_area.c.rating_kva, transformer_area.c.nominal_voltage,
                   transformer_area.c.connection_group, transformer_area.c.master_meter_id,
                   master.c.address.label("master_address"), transformer_area.c.terminal_meter_id,
                   terminal.c.address.label("terminal_address"), transformer_area.c.ct_ratio)
         .select_from(transformer_area.outerjoin(building, building.c.id == transformer_area.c.building_id)
                      .outerjoin(master, master.c.id == transformer_area.c.master_meter_id)
                      .outerjoin(terminal, terminal.c.id == transformer_area.c.terminal_meter_id))
         .order_by(transformer_area.c.name))
    return pd.DataFrame(conn.execute(q).mappings().all(), columns=list(AREA_COLUMNS))


KEY_SPAN = 8192      # a (meter, bucket) pair packed in one BIGINT: meter_id * KEY_SPAN + bucket + 1


def _bucket_sql(conn: sa.Connection, boundaries: Sequence[dt.datetime], span_s: float) -> tuple[str, dict]:
    """A CTE `rb` of the readings around the boundaries B_0..B_n: meter_id, s (seconds since B_0), v (the total
    register) and k, the bucket: k is the last boundary at or before the reading (-1 before B_0, n at or after
    B_n). Uniform boundaries (days of a zone without a clock change) by arithmetic; others by a join with them."""
    b0 = boundaries[0]
    offsets = [(b - b0).total_seconds() for b in boundaries]
    steps = {offsets[i + 1] - offsets[i] for i in range(len(offsets) - 1)}
    params = {"b0": b0, "lo": b0 - dt.timedelta(seconds=span_s),
              "hi": boundaries[-1] + dt.timedelta(seconds=span_s)}
    readings_in = ("SELECT meter_id, extract(epoch FROM ts - CAST(:b0 AS TIMESTAMP)) AS s, ts, energy_total AS v "
                   "FROM readings WHERE ts >= :lo AND ts < :hi AND energy_total IS NOT NULL "
                   "AND meter_id IN (SELECT meter_id FROM m)")
    last = len(boundaries) - 1
    if len(steps) == 1:
        step = steps.pop()
        params["step"] = step
        bucket = f"LEAST(CAST(floor(x.s / :step) AS BIGINT), {last})"
        return f"rb AS (SELECT x.meter_id, x.s, x.v, {bucket} AS k FROM ({readings_in}) x)", params
    rows = []
    for i, b in enumerate(boundaries):
        rows.append(f"({i}, CAST(:bs{i} AS TIMESTAMP))")
        params[f"bs{i}"] = b
    rows.append(f"(-1, CAST(:lo AS TIMESTAMP))")
    values = "VALUES " + ", ".join(rows)
    if is_duckdb(conn.engine):   # an as-of join finds each reading's bucket in one merge
        join = "ASOF JOIN bb ON x.ts >= bb.b_start"
    else:
        join = ("JOIN (SELECT k, b_start, lead(b_start) OVER (ORDER BY k) AS b_end FROM bb) bb "
                "ON x.ts >= bb.b_start AND (bb.b_end IS NULL OR x.ts < bb.b_end)")
    return (f"bb(k, b_start) AS ({values}),\n"
            f"rb AS (SELECT x.meter_id, x.s, x.v, bb.k FROM ({readings_in}) x {join})"), params


def _registers_sql(conn: sa.Connection, boundaries: Sequence[dt.datetime], tolerance_s: float, span_s: float,
                   area_ids: Sequence[int] | None, every_meter: bool = False) -> tuple[str, dict]:
    """CTEs ending in `reg`: per meter of the areas (their master meter and customer meters; not the terminal nor
    a removed meter) and boundary B_k, its total register, and whether it was interpolated. The register at B_k
    is the first reading at or after B_k within tolerance_s, else the value interpolated between the last reading
    before and the first after, if they are at most span_s apart; else there is no row (unknown)."""
    if len(boundaries) + 2 >= KEY_SPAN:
        raise ValueError(f"at most {KEY_SPAN - 3} periods at once")
    buckets, params = _bucket_sql(conn, boundaries, span_s)
    offsets = ", ".join(f"({k}, {float((b - boundaries[0]).total_seconds())!r})" for k, b in enumerate(boundaries))
    params.update(tol=tolerance_s, span=span_s)
    if is_duckdb(conn.engine):
        first = "arg_min(v, s) AS first_v, min(s) AS first_s"
        last = "arg_max(rk.v, rk.s) AS last_v, max(rk.s) AS last_s"
    else:
        first = "(array_agg(v ORDER BY s))[1] AS first_v, min(s) AS first_s"
        last = "(array_agg(rk.v ORDER BY rk.s DESC))[1] AS last_v, max(rk.s) AS last_s"
    materialized = "MATERIALIZED"     # read twice (the sums and the missing meters): computed once
    meters = _area_meters_sql(area_ids, params, every_meter)
    sql = f"""
WITH {meters},
{buckets},
rk AS (SELECT CAST(meter_id AS BIGINT) * {KEY_SPAN} + k + 1 AS key, s, v FROM rb),
g AS (SELECT key, {first} FROM rk GROUP BY key),
bs(k, b_s) AS (VALUES {offsets}),
gb AS (
  SELECT x.*, bs.b_s
  FROM (SELECT key, CAST((key - key % {KEY_SPAN}) / {KEY_SPAN} AS BIGINT) AS meter_id,
               CAST(key % {KEY_SPAN} AS INTEGER) - 1 AS k, first_v, first_s
        FROM g WHERE key % {KEY_SPAN} > 0) x JOIN bs ON bs.k = x.k),
late AS (SELECT * FROM gb WHERE first_s - b_s > :tol),
prev AS (
  SELECT late.key, {last}
  FROM rk JOIN late ON rk.key = late.key - 1
  GROUP BY late.key),
reg AS {materialized} (
  SELECT meter_id, k, first_v AS v, FALSE AS interpolated FROM gb WHERE first_s - b_s <= :tol
  UNION ALL
  SELECT late.meter_id, late.k,
         prev.last_v + (late.first_v - prev.last_v) * (late.b_s - prev.last_s) / (late.first_s - prev.last_s), TRUE
  FROM late JOIN prev ON prev.key = late.key
  WHERE late.first_s - prev.last_s <= :span)"""
    return sql, params


def area_boundary_registers(conn: sa.Connection, boundaries: Sequence[dt.datetime], *, tolerance_s: float,
                            span_s: float, area_ids: Sequence[int] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per area and boundary k with any register known: the master meter's register times its CT ratio
    (supply_reg), the sum of its customer meters' registers (sales_reg), how many of each role are known, and
    whether one was interpolated; and, where some of the area's meters are not known at a boundary (but some are),
    which (area_id, k, address, role). The energy between two boundaries is the difference of the sums where every
    meter of the area is known at both (area_meters says how many there are)."""
    sql, params = _registers_sql(conn, boundaries, tolerance_s, span_s, area_ids)
    return _sums_and_missing(conn, sql + "," + _AGG_SQL, params)


_AGG_SQL = """
agg AS (
  SELECT m.area_id, reg.k,
         sum(reg.v * m.ct_ratio) FILTER (WHERE m.role = 'master') AS supply_reg,
         sum(reg.v) FILTER (WHERE m.role = 'customer') AS sales_reg,
         count(*) FILTER (WHERE m.role = 'master') AS masters_known,
         count(*) FILTER (WHERE m.role = 'customer') AS customers_known,
         bool_or(reg.interpolated) AS interpolated
  FROM reg JOIN m ON m.meter_id = reg.meter_id GROUP BY m.area_id, reg.k),
need AS (SELECT area_id, count(*) AS meters FROM m GROUP BY area_id),
short AS (
  SELECT agg.area_id, agg.k FROM agg JOIN need ON need.area_id = agg.area_id
  WHERE agg.masters_known + agg.customers_known < need.meters)
SELECT 'sum' AS row_kind, area_id, k, supply_reg, sales_reg, masters_known, customers_known, interpolated,
       CAST(NULL AS VARCHAR) AS address, CAST(NULL AS VARCHAR) AS role
FROM agg
UNION ALL
SELECT 'missing', short.area_id, short.k, NULL, NULL, NULL, NULL, NULL, m.address, m.role
FROM short JOIN m ON m.area_id = short.area_id
LEFT JOIN reg ON reg.meter_id = m.meter_id AND reg.k = short.k
WHERE reg.meter_id IS NULL"""


def _sums_and_missing(conn: sa.Connection, sql: str, params: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    frame = pd.DataFrame(conn.execute(sa.text(sql), params).mappings().all(),
                         columns=["row_kind", "area_id", "k", "supply_reg", "sales_reg", "masters_known",
                                  "customers_known", "interpolated", "address", "role"])
    sums = frame.loc[frame["row_kind"] == "sum"].drop(columns=["row_kind", "address", "role"])
    missing = frame.loc[frame["row_kind"] == "missing", ["area_id", "k", "address", "role"]]
    return sums.reset_index(drop=True), missing.reset_index(drop=True)


def _area_meters_sql(area_ids: Sequence[int] | None, params: dict, every_meter: bool = False) -> str:
    if every_meter:     # the frozen registers: every meter's, so an area's later change of meters keeps them valid
        return """m AS (
  SELECT mt.id AS meter_id, mt.address, CAST(NULL AS INTEGER) AS area_id, 'customer' AS role, 1.0 AS ct_ratio
  FROM meter mt WHERE mt.status <> 'removed')"""
    where_area = ""
    if area_ids is not None:
        where_area = ("AND a.id IN (" + ", ".join(f":a{i}" for i in range(len(area_ids))) + ")") if area_ids else \
            "AND FALSE"
        params.update({f"a{i}": int(v) for i, v in enumerate(area_ids)})
    return f"""m AS (
  SELECT mt.id AS meter_id, mt.address, a.id AS area_id,
         CASE WHEN mt.id = a.master_meter_id THEN 'master' ELSE 'customer' END AS role,
         COALESCE(a.ct_ratio, 1.0) AS ct_ratio
  FROM meter mt JOIN area_meter am ON am.meter_id = mt.id JOIN transformer_area a ON a.id = am.area_id
  WHERE mt.status <> 'removed' AND (a.terminal_meter_id IS NULL OR mt.id <> a.terminal_meter_id) {where_area})"""


def frozen_days(conn: sa.Connection, first: dt.date, last: dt.date) -> set[dt.date]:
    """The local days in first..last whose midnight registers are frozen."""
    q = sa.select(frozen_register.c.day).where(frozen_register.c.day >= first, frozen_register.c.day <= last) \
        .distinct()
    return {d if isinstance(d, dt.date) else pd.Timestamp(d).date() for d in conn.execute(q).scalars()}


def frozen_boundary_registers(conn: sa.Connection, days: Sequence[dt.date],
                              area_ids: Sequence[int] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """area_boundary_registers from the frozen registers of these days (k: the day's index in `days`)."""
    params: dict = {}
    values = ", ".join(f"({k}, CAST(:d{k} AS DATE))" for k in range(len(days)))
    params.update({f"d{k}": d for k, d in enumerate(days)})
    sql = f"""
WITH {_area_meters_sql(area_ids, params)},
dk(k, day) AS (VALUES {values}),
reg AS (
  SELECT f.meter_id, dk.k, f.energy_total AS v, f.interpolated
  FROM frozen_register f JOIN dk ON dk.day = f.day
  WHERE f.meter_id IN (SELECT meter_id FROM m)),""" + _AGG_SQL
    return _sums_and_missing(conn, sql, params)


def freeze_registers(conn: sa.Connection, boundaries: Sequence[dt.datetime], days: Sequence[dt.date], *,
                     tolerance_s: float, span_s: float, now: dt.datetime) -> int:
    """Replace the frozen registers of these days (their midnights: `boundaries`) by the registers the readings
    give now (every meter's that is not removed, as line loss takes them: a meter that joins an area later has its
    registers already); the rows written."""
    sql, params = _registers_sql(conn, boundaries, tolerance_s, span_s, None, every_meter=True)
    values = ", ".join(f"({k}, CAST(:d{k} AS DATE))" for k in range(len(days)))
    params.update({f"d{k}": d for k, d in enumerate(days)}, now=now)
    conn.execute(frozen_register.delete().where(frozen_register.c.day.in_(list(days))))
    sql = sql.replace("WITH m AS (", "WITH dk(k, day) AS (VALUES " + values + "),\nm AS (", 1)
    result = conn.execute(sa.text(
        "INSERT INTO frozen_register (meter_id, day, energy_total, interpolated, frozen_at) " + sql +
        "\nSELECT reg.meter_id, dk.day, reg.v, reg.interpolated, CAST(:now AS TIMESTAMP) "
        "FROM reg JOIN dk ON dk.k = reg.k WHERE reg.v IS NOT NULL"), params)
    return result.rowcount


def meter_registers(conn: sa.Connection, boundaries: Sequence[dt.datetime], *, tolerance_s: float,
                    span_s: float, area_ids: Sequence[int]) -> pd.DataFrame:
    """Per meter of the areas and boundary k, its register where known (v, CT ratio not applied), with its number,
    area, role, CT ratio and whether the value was interpolated."""
    sql, params = _registers_sql(conn, boundaries, tolerance_s, span_s, area_ids)
    sql += ("\nSELECT m.meter_id, m.address, m.area_id, m.role, m.ct_ratio, reg.k, reg.v, reg.interpolated "
            "FROM reg JOIN m ON m.meter_id = reg.meter_id")
    return pd.DataFrame(conn.execute(sa.text(sql), params).mappings().all(),
                        columns=["meter_id", "address", "area_id", "role", "ct_ratio", "k", "v", "interpolated"])


def area_meters(conn: sa.Connection, area_ids: Sequence[int] | None = None) -> pd.DataFrame:
    """The meters line loss counts per area: its master meter and customer meters (not its terminal, not removed)."""
    role = sa.case((meter.c.id == transformer_area.c.master_meter_id, "master"), else_="customer").label("role")
    q = (sa.select(meter.c.id.label("meter_id"), meter.c.address, transformer_area.c.id.label("area_id"), role)
         .join(area_meter, area_meter.c.meter_id == meter.c.id)
         .join(transformer_area, transformer_area.c.id == area_meter.c.area_id)
         .where(meter.c.status != "removed",
                sa.or_(transformer_area.c.terminal_meter_id.is_(None),
                       meter.c.id != transformer_area.c.terminal_meter_id)))
    if area_ids is not None:
        q = q.where(transformer_area.c.id.in_([int(a) for a in area_ids]))
    return pd.DataFrame(conn.execute(q).mappings().all(), columns=["meter_id", "address", "area_id", "role"])


# ---------------------------------------------------------------------------------------------
# Power quality: the monitoring points' series
POINT_READING_KEYS = ("voltage_a", "voltage_b", "voltage_c", "current_a", "current_b", "current_c", "pf_total")
POINT_DEVICE_KEYS = ("thd_u_a", "thd_u_b", "thd_u_c", "thd_i_a", "thd_i_b", "thd_i_c")


def point_readings(conn: sa.Connection, meter_ids: Sequence[int], start: dt.datetime,
                   end: dt.datetime) -> pd.DataFrame:
    """Voltage, current and power factor of the points in [start, end) (naive UTC), by meter then time."""
    q = (sa.select(readings.c.meter_id, readings.c.ts, *(readings.c[k] for k in POINT_READING_KEYS))
         .where(readings.c.meter_id.in_([int(m) for m in meter_ids]), readings.c.ts >= start, readings.c.ts < end)
         .order_by(readings.c.meter_id, readings.c.ts))
    return pd.DataFrame(conn.execute(q).mappings().all(), columns=["meter_id", "ts", *POINT_READING_KEYS])


def point_harmonics(conn: sa.Connection, meter_ids: Sequence[int], start: dt.datetime,
                    end: dt.datetime) -> pd.DataFrame:
    """THD of voltage and current per phase (device history: master meters and terminals) in [start, end)."""
    q = (sa.select(device_readings.c.meter_id, device_readings.c.ts, *(device_readings.c[k] for k in POINT_DEVICE_KEYS))
         .where(device_readings.c.meter_id.in_([int(m) for m in meter_ids]), device_readings.c.ts >= start,
                device_readings.c.ts < end)
         .order_by(device_readings.c.meter_id, device_readings.c.ts))
    return pd.DataFrame(conn.execute(q).mappings().all(), columns=["meter_id", "ts", *POINT_DEVICE_KEYS])


def area_points(conn: sa.Connection, area_id: int) -> pd.DataFrame:
    """The area's monitoring points: its terminal and master meter (three-phase) and its prepaid meters
    (single-phase: voltage_a), with their numbers and profiles."""
    area = transformer_area
    kind = sa.case((meter.c.id == area.c.terminal_meter_id, "terminal"),
                   (meter.c.id == area.c.master_meter_id, "master"), else_="customer").label("kind")
    q = (sa.select(meter.c.id.label("meter_id"), meter.c.address, meter.c.profile, kind)
         .join(area_meter, area_meter.c.meter_id == meter.c.id)
         .join(area, area.c.id == area_meter.c.area_id)
         .where(area.c.id == int(area_id), meter.c.status != "removed").order_by(meter.c.address))
    return pd.DataFrame(conn.execute(q).mappings().all(), columns=["meter_id", "address", "profile", "kind"])


def master_ct_ratio(conn: sa.Connection, meter_id: int) -> float | None:
    """The CT ratio of the area this meter is the master meter of (1 where the area gives none); None when the
    meter is no area's master meter."""
    row = conn.execute(sa.select(transformer_area.c.ct_ratio).where(
        transformer_area.c.master_meter_id == int(meter_id)).limit(1)).first()
    return None if row is None else float(row[0] if row[0] is not None else 1.0)
