"""The energy insights of one place over a range, in one call (the insights page's tabs): load curve, hour x day
heatmap, time-of-use split, top consumers, the places inside it compared, and the range against the one before it
and the same days a year earlier (what exists: the demo keeps 90 days)."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandas as pd

from energy.analysis import Place, energy_report, site_meters

TOP = 15
POINT_BUDGET = 1500
_GRAINS = (("15min", 900), ("hour", 3600), ("day", 86400))


@dataclass(frozen=True)
class Insights:
    load: pd.DataFrame        # period, kw (average over the step), estimated, gap
    grain: str                # the load curve's step
    heatmap: pd.DataFrame     # day x hour (0..23) of kWh
    tou: pd.DataFrame         # period (day), energy_sharp, energy_peak, energy_flat, energy_valley
    top: pd.DataFrame         # building, floor, room, energy_kwh (largest first)
    places: pd.DataFrame      # the places one level down: building | floor, energy_kwh
    place_group: str          # "building" or "floor" (or "room" inside a floor)
    periods: pd.DataFrame     # which ("this", "previous", "last_year"), first, last, energy_kwh, days_with_data


def load_grain(days: int) -> str:
    """The finest step that keeps the load curve within POINT_BUDGET points."""
    return next((g for g, s in _GRAINS if days * 86400 / s <= POINT_BUDGET), "day")


def _total(engine, tz, first: dt.date, last: dt.date, place: Place, meters=None) -> tuple[float, int]:
    df = energy_report(engine, tz, first, last, by="day", group="site", place=place, meters=meters)
    return float(df["energy_kwh"].sum()), int((df["energy_kwh"] > 0).sum())


def _year_back(day: dt.date) -> dt.date:
    return day.replace(year=day.year - 1) if not (day.month == 2 and day.day == 29) else day.replace(
        year=day.year - 1, day=28)


def load_curve(engine, tz, first_day: dt.date, last_day: dt.date, place: Place = Place(), meters=None) -> tuple[pd.DataFrame, str]:
    """(period, kw, estimated, gap) at the finest step within POINT_BUDGET points, and that step."""
    grain = load_grain((last_day - first_day).days + 1)
    load = energy_report(engine, tz, first_day, last_day, by=grain, group="site", place=place, meters=meters)
    hours = {"15min": 0.25, "hour": 1.0, "day": 24.0}[grain]
    return pd.DataFrame({"period": load["period"], "kw": load["energy_kwh"] / hours, "estimated": load["estimated"],
                         "gap": load["gap"]}), grain


def heatmap(engine, tz, first_day: dt.date, last_day: dt.date, place: Place = Place(), meters=None) -> pd.DataFrame:
    """kWh per local day (rows) and hour of day (columns 0..23)."""
    hourly = energy_report(engine, tz, first_day, last_day, by="hour", group="site", place=place, meters=meters)
    return (hourly.assign(day=hourly["period"].dt.normalize(), hour=hourly["period"].dt.hour)
            .pivot_table(index="day", columns="hour", values="energy_kwh", aggfunc="sum")
            .reindex(columns=range(24)))


def tou_split(engine, tz, first_day: dt.date, last_day: dt.date, place: Place = Place(), meters=None) -> pd.DataFrame:
    daily = energy_report(engine, tz, first_day, last_day, by="day", group="site", place=place, meters=meters)
    return daily[["period", "energy_sharp", "energy_peak", "energy_flat", "energy_valley"]].reset_index(drop=True)


def top_consumers(engine, tz, first_day: dt.date, last_day: dt.date, place: Place = Place(),
                  n: int = TOP, meters=None) -> pd.DataFrame:
    rooms = energy_report(engine, tz, first_day, last_day, by="month", group="room", place=place, meters=meters)
    return (rooms.groupby(["building", "floor", "room"], dropna=False)["energy_kwh"].sum().reset_index()
            .sort_values("energy_kwh", ascending=False).head(n).reset_index(drop=True))


def places_compared(engine, tz, first_day: dt.date, last_day: dt.date,
                    place: Place = Place(), meters=None) -> tuple[pd.DataFrame, str]:
    """The places one level inside `place` (buildings of the site, floors of a building, rooms of a floor) with
    their energy, and which level that is."""
    group = "building" if place.building is None else "floor" if place.floor is None else "room"
    inside = energy_report(engine, tz, first_day, last_day, by="month", group=group, place=place, meters=meters)
    keys = ["building", "floor"] if group == "floor" else [group]
    return inside.groupby(keys, dropna=False)["energy_kwh"].sum().reset_index(), group


def period_comparison(engine, tz, first_day: dt.date, last_day: dt.date, place: Place = Place(), meters=None) -> pd.DataFrame:
    """This range, the one of the same length before it and the same days a year earlier: which, first, last,
    energy_kwh, days_with_data (0: nothing was read then)."""
    span = dt.timedelta(days=(last_day - first_day).days + 1)
    ranges = {"this": (first_day, last_day), "previous": (first_day - span, last_day - span),
              "last_year": (_year_back(first_day), _year_back(last_day))}
    rows = []
    for which, (a, b) in ranges.items():
        kwh, with_data = _total(engine, tz, a, b, place, meters)
        rows.append({"which": which, "first": a, "last": b, "energy_kwh": kwh, "days_with_data": with_data})
    return pd.DataFrame(rows)


def insights(engine, tz: dt.tzinfo, first_day: dt.date, last_day: dt.date, place: Place = Place()) -> Insights:
    """Every tab at once (a report or a script); the page asks for the tab it shows. The meters' places are read
    once for the eight energy queries (`meters`: each function takes them, else reads them itself)."""
    meters = site_meters(engine)
    load, grain = load_curve(engine, tz, first_day, last_day, place, meters)
    places, group = places_compared(engine, tz, first_day, last_day, place, meters)
    return Insights(load, grain, heatmap(engine, tz, first_day, last_day, place, meters),
                    tou_split(engine, tz, first_day, last_day, place, meters),
                    top_consumers(engine, tz, first_day, last_day, place, meters=meters), places, group,
                    period_comparison(engine, tz, first_day, last_day, place, meters))
