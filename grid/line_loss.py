"""Line loss per transformer area and period: supply (the master meter with its CT ratio) against sales (its
customer meters), on registers of the same instants (local midnight), classified; and the meters whose use moved
least with the loss."""
from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import sqlalchemy as sa

from storage import grid as store

BY = ("day", "month")
CLASSES = ("qualified", "high", "negative", "not_computable")
DEFAULT_LIMIT = 0.10            # a loss rate above this is high ([analytics] line_loss_limit)
TOLERANCE_S = 15 * 60           # a reading this long after midnight still counts as the midnight register
SPAN_S = 12 * 3600              # readings around midnight at most this far apart are interpolated between
COLUMNS = ("period", "area", "supply_kwh", "sales_kwh", "loss_kwh", "loss_rate", "class", "interpolated",
           "missing_meters")


@dataclass(frozen=True)
class LineLossSettings:
    limit: float = DEFAULT_LIMIT
    tolerance_s: float = TOLERANCE_S
    span_s: float = SPAN_S


def local_midnight(day: dt.date, tz: dt.tzinfo) -> dt.datetime:
    """The site's local midnight starting `day`, as naive UTC (how the database keeps times)."""
    return dt.datetime.combine(day, dt.time(0), tzinfo=tz).astimezone(dt.timezone.utc).replace(tzinfo=None)


def period_starts(first: dt.date, last: dt.date, by: str) -> list[dt.date]:
    """The local days each period starts on, and the day after the last: days, or months clipped to the range."""
    if by not in BY:
        raise ValueError(f"by must be one of {', '.join(BY)}")
    days = pd.date_range(first, last + dt.timedelta(days=1), freq="D").date
    if by == "day":
        return list(days)
    return [d for d in days if d == first or d.day == 1 or d == days[-1]]


def period_label(day: dt.date, by: str) -> str:
    return day.isoformat() if by == "day" else day.strftime("%Y-%m")


def classify(supply: float | None, loss_rate: float | None, computable: bool, limit: float) -> str:
    if not computable or supply is None or loss_rate is None:
        return "not_computable"
    if loss_rate < 0:
        return "negative"
    return "high" if loss_rate > limit else "qualified"


def line_loss(engine: sa.Engine, tz: dt.tzinfo, first: dt.date, last: dt.date, by: str = "day",
              settings: LineLossSettings = LineLossSettings(), area_ids: Sequence[int] | None = None,
              use_frozen: bool = True) -> pd.DataFrame:
    """One row per area and period (local days, both ends inclusive; months clipped to the range): COLUMNS.
    loss_rate is a fraction of the supply. A period is not computable when a register of the area's master meter
    or of any of its customer meters is unknown at either end (missing_meters names them, the master meter first;
    "-" stands for an area without a master meter), or when the supply is not positive. The registers come from
    the frozen midnight registers where the line_loss job froze them (use_frozen), from the readings otherwise."""
    starts = period_starts(first, last, by)
    boundaries = [local_midnight(d, tz) for d in starts]
    periods = len(starts) - 1
    with engine.connect() as conn:
        areas = store.areas(conn)
        if area_ids is not None:
            areas = areas[areas["id"].isin([int(a) for a in area_ids])]
        sums, missing = _boundary_registers(conn, starts, boundaries, settings,
                                            None if area_ids is None else list(areas["id"]), use_frozen)
        meters = store.area_meters(conn, list(areas["id"]))
    need = meters.groupby(["area_id", "role"]).size().unstack(fill_value=0).reindex(
        index=areas["id"], columns=["master", "customer"], fill_value=0)
    at = sums.set_index(["area_id", "k"]).reindex(
        pd.MultiIndex.from_product([areas["id"], range(periods + 1)], names=["area_id", "k"]))
    known = (at["masters_known"].fillna(0).to_numpy() == 1) & \
        (at["customers_known"].fillna(0).to_numpy() == need["customer"].reindex(
            at.index.get_level_values("area_id")).to_numpy()) & \
        (need["master"].reindex(at.index.get_level_values("area_id")).to_numpy() == 1)
    n_areas = len(areas)
    shape = (n_areas, periods + 1)
    known = known.reshape(shape)
    supply_reg = at["supply_reg"].astype(float).to_numpy().reshape(shape)
    sales_reg = at["sales_reg"].astype(float).fillna(0.0).to_numpy().reshape(shape)
    interp = at["interpolated"].fillna(False).astype(bool).to_numpy().reshape(shape)
    complete = known[:, :-1] & known[:, 1:]
    supply = np.where(complete, supply_reg[:, 1:] - supply_reg[:, :-1], np.nan)
    sales = np.where(complete, sales_reg[:, 1:] - sales_reg[:, :-1], np.nan)
    loss = supply - sales
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(supply > 0, loss / supply, np.nan)
    names = _missing_names(areas, need, meters, missing, at, periods)
    area_names = np.repeat(areas["name"].to_numpy(), periods)
    out = pd.DataFrame({
        "k": np.tile(np.arange(periods), n_areas), "area": area_names,
        "supply_kwh": supply.ravel().round(2), "sales_kwh": sales.ravel().round(2), "loss_kwh": loss.ravel().round(2),
        "loss_rate": rate.ravel().round(4),
        "class": _classes(supply.ravel(), rate.ravel(), complete.ravel(), settings.limit),
        "interpolated": (interp[:, :-1] | interp[:, 1:]).ravel(),
        "missing_meters": names})
    out = out.sort_values(["k", "area"], kind="stable").reset_index(drop=True)
    labels = [period_label(d, by) for d in starts[:-1]]
    out.insert(0, "period", [labels[k] for k in out["k"]])
    return out.drop(columns="k")[list(COLUMNS)]


def _boundary_registers(conn, starts: list[dt.date], boundaries: list[dt.datetime], settings: LineLossSettings,
                        area_ids: list[int] | None, use_frozen: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per area and boundary, the register sums and the meters missing (storage.grid.area_boundary_registers):
    from the frozen registers where the line_loss job froze that midnight, from the readings otherwise."""
    frozen = store.frozen_days(conn, starts[0], starts[-1]) if use_frozen else set()
    stored = [k for k, d in enumerate(starts) if d in frozen]
    live = [k for k, d in enumerate(starts) if d not in frozen]
    parts = []
    if stored:
        parts.append((stored, store.frozen_boundary_registers(conn, [starts[k] for k in stored], area_ids)))
    if live:
        parts.append((live, store.area_boundary_registers(conn, [boundaries[k] for k in live],
                                                          tolerance_s=settings.tolerance_s, span_s=settings.span_s,
                                                          area_ids=area_ids)))
    sums, missing = [], []
    for ks, (s, m) in parts:
        index = np.asarray(ks)
        sums.append(s.assign(k=index[s["k"].astype(int).to_numpy()]) if len(s) else s)
        missing.append(m.assign(k=index[m["k"].astype(int).to_numpy()]) if len(m) else m)
    return pd.concat(sums, ignore_index=True), pd.concat(missing, ignore_index=True)


def freeze_days(engine: sa.Engine, tz: dt.tzinfo, first: dt.date, last: dt.date, now: dt.datetime,
                settings: LineLossSettings = LineLossSettings()) -> int:
    """Freeze the midnight registers of the local days first..last (each day's starting midnight) from the
    readings: line loss then reads them instead of the readings. Returns the registers written."""
    days = list(pd.date_range(first, last, freq="D").date)
    if not days:
        return 0
    with engine.begin() as conn:
        return store.freeze_registers(conn, [local_midnight(d, tz) for d in days], days,
                                      tolerance_s=settings.tolerance_s, span_s=settings.span_s, now=now)


JOB = "line_loss"
REFREEZE_DAYS = 3     # the job freezes again the midnights of the last days, for readings that came in late


def attach_line_loss(engine: sa.Engine, tz: dt.tzinfo, clock, jobs, interval_s: float = 3600.0,
                     settings: LineLossSettings = LineLossSettings()) -> None:
    """The scheduler's `line_loss` job: freezes the midnight registers of the last REFREEZE_DAYS days whose
    midnight is at least span_s past (the readings after it are in)."""
    def run() -> dict:
        now = clock()
        today = now.replace(tzinfo=dt.timezone.utc).astimezone(tz).date()
        days = [today - dt.timedelta(days=i) for i in range(REFREEZE_DAYS, -1, -1)]
        days = [d for d in days if local_midnight(d, tz) + dt.timedelta(seconds=settings.span_s) <= now]
        if not days:
            return {"registers": 0}
        return {"from": days[0].isoformat(), "to": days[-1].isoformat(),
                "registers": freeze_days(engine, tz, days[0], days[-1], now, settings)}
    jobs.add(JOB, run, interval_s)


def _classes(supply: np.ndarray, rate: np.ndarray, complete: np.ndarray, limit: float) -> np.ndarray:
    out = np.full(len(supply), "not_computable", dtype=object)
    ok = complete & ~np.isnan(rate)
    out[ok & (rate < 0)] = "negative"
    out[ok & (rate >= 0) & (rate > limit)] = "high"
    out[ok & (rate >= 0) & (rate <= limit)] = "qualified"
    return out


def _missing_names(areas: pd.DataFrame, need: pd.DataFrame, meters: pd.DataFrame, missing: pd.DataFrame,
                   at: pd.DataFrame, periods: int) -> list[str]:
    """Per area and period (area-major), the numbers of the meters not known at either of its two boundaries, the
    master meter first; "-" first where the area has no master meter. A boundary where none of the area's meters
    is known lists them all."""
    at_boundary: dict[tuple[int, int], list[tuple[str, str]]] = {}
    for (area_id, k), group in missing.groupby(["area_id", "k"]):
        at_boundary[(int(area_id), int(k))] = list(zip(group["role"], group["address"]))
    none_known = at["masters_known"].isna()
    all_of = {int(a): list(zip(g["role"], g["address"])) for a, g in meters.groupby("area_id")}
    for area_id, k in at.index[none_known.to_numpy()]:
        at_boundary[(int(area_id), int(k))] = all_of.get(int(area_id), [])
    names = []
    for area_id in areas["id"]:
        area_id = int(area_id)
        no_master = need.loc[area_id, "master"] != 1
        for k in range(periods):
            gone = set(at_boundary.get((area_id, k), ())) | set(at_boundary.get((area_id, k + 1), ()))
            ordered = [a for _, a in sorted(gone, key=lambda ra: (ra[0] != "master", ra[1]))]
            names.append(" ".join((["-"] if no_master else []) + ordered))
    return names


def least_correlated_meters(engine: sa.Engine, tz: dt.tzinfo, area_id: int, first: dt.date, last: dt.date,
                            count: int = 5, settings: LineLossSettings = LineLossSettings()) -> pd.DataFrame:
    """The area's customer meters whose daily use moved least with its daily loss over the days (the lowest
    Pearson correlation first; a meter whose use did not move at all first of all): a hint for a bypassed meter
    or a meter mapped to the wrong area. Columns: meter, correlation, days, kwh. Only days where every meter of
    the area is known count; at least 3 are needed."""
    starts = period_starts(first, last, "day")
    boundaries = [local_midnight(d, tz) for d in starts]
    with engine.connect() as conn:
        regs = store.meter_registers(conn, boundaries, tolerance_s=settings.tolerance_s, span_s=settings.span_s,
                                     area_ids=[area_id])
    empty = pd.DataFrame(columns=["meter", "correlation", "days", "kwh"])
    masters = regs.loc[regs["role"] == "master"]
    if masters.empty:
        return empty
    table = regs.loc[regs["role"] == "customer"].pivot_table(index="k", columns="address", values="v")
    table = table.reindex(range(len(boundaries))).diff().iloc[1:]          # row k+1: the energy of day k
    supply = masters.set_index("k")["v"].reindex(range(len(boundaries))).diff().iloc[1:] * \
        float(masters["ct_ratio"].iloc[0])
    days = table.notna().all(axis=1) & supply.notna()
    table, loss = table[days], (supply - table.sum(axis=1))[days]
    if len(loss) < 3:
        return empty
    corr = table.apply(lambda col: col.corr(loss) if col.std() > 0 else np.nan)
    out = pd.DataFrame({"meter": corr.index, "correlation": corr.to_numpy().round(3), "days": len(loss),
                        "kwh": table.sum().to_numpy().round(2)})
    return out.sort_values(["correlation", "meter"], na_position="first").head(count).reset_index(drop=True)


def site_hints(engine: sa.Engine, tz: dt.tzinfo, first: dt.date, last: dt.date, count: int = 5,
               settings: LineLossSettings = LineLossSettings()) -> pd.DataFrame:
    """least_correlated_meters of every transformer area, with an `area` column first."""
    with engine.connect() as conn:
        areas = store.areas(conn)
    frames = [least_correlated_meters(engine, tz, int(a), first, last, count, settings).assign(area=name)
              for a, name in zip(areas["id"], areas["name"])]
    columns = ["area", "meter", "correlation", "days", "kwh"]
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)


def area_choices(engine: sa.Engine) -> list[tuple[int, str]]:
    """Every transformer area as (id, name), by name: the pages' choices."""
    with engine.connect() as conn:
        areas = store.areas(conn)
    return [(int(i), str(n)) for i, n in zip(areas["id"], areas["name"])]
