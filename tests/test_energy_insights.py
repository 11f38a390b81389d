"""The insights tabs and the managers' dashboard figures from the rollups, on both engines (the site of
tests/test_energy_analysis.py: two buildings, a heater room, 40 days of half-hourly readings from 2026-11-01)."""
from __future__ import annotations

import datetime as dt

import pytest

from billing.context import BillingContext
from energy.analysis import Place, energy_report
from energy.insights import heatmap, load_curve, period_comparison, places_compared, top_consumers, tou_split
from energy.manager import manager_figures
from tests.billing_support import PII_KEY
from tests.test_energy_analysis import HEATER, NOW, TZ, site  # noqa: F401  (the fixture)

FIRST, LAST = dt.date(2026, 11, 10), dt.date(2026, 11, 16)


def _site_total(engine, place: Place = Place()) -> float:
    return float(energy_report(engine, TZ, FIRST, LAST, by="day", group="site", place=place)["energy_kwh"].sum())


def test_every_tab_adds_up_to_the_same_energy(site):  # noqa: F811
    total = _site_total(site)
    load, grain = load_curve(site, TZ, FIRST, LAST)
    assert grain == "15min" and load["kw"].sum() * 0.25 == pytest.approx(total, rel=1e-6)
    heat = heatmap(site, TZ, FIRST, LAST)
    assert list(heat.columns) == list(range(24)) and len(heat) == 7
    assert heat.sum().sum() == pytest.approx(total, rel=1e-6)
    tou = tou_split(site, TZ, FIRST, LAST)
    assert tou.drop(columns="period").sum().sum() == pytest.approx(total, rel=1e-3)
    places, group = places_compared(site, TZ, FIRST, LAST)
    assert group == "building" and list(places["building"]) == ["Building 1", "Building 2"]
    assert places["energy_kwh"].sum() == pytest.approx(total, rel=1e-6)


def test_inside_a_building_the_floors_are_compared_and_the_heater_room_tops_the_list(site):  # noqa: F811
    floors, group = places_compared(site, TZ, FIRST, LAST, Place(building="Building 1"))
    assert group == "floor" and sorted(floors["floor"]) == [1, 2]
    assert floors["energy_kwh"].sum() == pytest.approx(_site_total(site, Place(building="Building 1")), rel=1e-6)
    top = top_consumers(site, TZ, FIRST, LAST, n=3)
    assert len(top) == 3 and top["room"].iloc[0] == HEATER


def test_the_period_comparison_says_what_exists_before_and_a_year_back(site):  # noqa: F811
    periods = period_comparison(site, TZ, FIRST, LAST).set_index("which")
    assert periods.loc["this", "days_with_data"] == 7
    assert periods.loc["previous", "first"] == dt.date(2026, 11, 3)
    assert periods.loc["previous", "days_with_data"] == 7
    earlier = period_comparison(site, TZ, dt.date(2026, 11, 4), LAST).set_index("which")
    assert earlier.loc["previous", "days_with_data"] == 3             # 10-22 .. 11-03: readings began 11-01
    assert periods.loc["last_year", "days_with_data"] == 0 and periods.loc["last_year", "energy_kwh"] == 0
    assert periods.loc["last_year", "first"] == dt.date(2025, 11, 10)


def test_the_managers_dashboard_figures_cover_thirty_days_and_today_so_far(site):  # noqa: F811
    ctx = BillingContext(site, PII_KEY, clock=lambda: NOW, tz=TZ)
    today = ctx.local(NOW).date()                                    # 2026-12-01, 16:00 in Shanghai
    f = manager_figures(ctx, today)
    assert len(f.energy) == 30 and f.energy["day"].iloc[-1].date() == today
    assert len(f.sales) == 30 and f.sales["net"].sum() == 0 and len(f.alarms) == 30
    assert f.curves["today"]["minute"].max() == 15 * 60 + 45        # up to the quarter 15:45-16:00, none after
    assert len(f.curves["yesterday"]) == 96 and len(f.curves["last_week"]) == 96
    assert f.top["room"].iloc[0] == HEATER and len(f.top) == 10
    assert f.share["energy_kwh"].sum() == pytest.approx(
        float(f.energy["energy_kwh"].sum()), rel=1e-6)


def test_the_dashboards_days_top_rooms_and_shares_are_the_energy_reports_figures(site):  # noqa: F811
    """manager_figures reads the daily rollup once, by room, for its bars, top consumers and shares: each is what
    energy_report gives for the site by day, the rooms by month and the buildings by month."""
    ctx = BillingContext(site, PII_KEY, clock=lambda: NOW, tz=TZ)
    today = ctx.local(NOW).date()
    first = today - dt.timedelta(days=29)
    f = manager_figures(ctx, today)
    days = energy_report(site, TZ, first, today, by="day", group="site").set_index("period")
    bars = f.energy.set_index("day").loc[days.index]
    assert bars["energy_kwh"].to_numpy() == pytest.approx(days["energy_kwh"].to_numpy(), rel=1e-9)
    assert list(bars["estimated"]) == list(days["estimated"]) and list(bars["gap"]) == list(days["gap"])
    assert f.energy.set_index("day").drop(index=days.index)["energy_kwh"].isna().all()
    rooms = energy_report(site, TZ, first, today, by="month", group="room")
    rooms = rooms.groupby(["building", "floor", "room"])["energy_kwh"].sum().sort_values(ascending=False)
    assert list(f.top["room"]) == [r for _b, _f, r in rooms.index[:10]]
    assert f.top["energy_kwh"].to_numpy() == pytest.approx(rooms.to_numpy()[:10], rel=1e-9)
    buildings = energy_report(site, TZ, first, today, by="month", group="building").groupby("building")["energy_kwh"]
    assert dict(zip(f.share["building"], f.share["energy_kwh"])) == pytest.approx(buildings.sum().to_dict(), rel=1e-9)
