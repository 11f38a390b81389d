"""History backfill: shape, monotone energy, and purchases that explain the balance, joined to the live registers."""

import numpy as np
import pandas as pd
import pytest

from simulator.field import Field
from simulator.history import READING_COLUMNS, backfill
from simulator.site import demo_site

END = pd.Timestamp("2026-11-21 08:00")  # UTC, naive


@pytest.fixture(scope="module")
def site():
    return demo_site()


@pytest.fixture(scope="module")
def history(site):
    return backfill(site, days=14, end=END, seed=3)


@pytest.fixture(scope="module")
def rooms(history):
    readings, _ = history
    return readings[readings["balance_fen"].notna()]


def test_backfill_has_one_row_per_meter_per_half_hour(site, history):
    readings, _ = history
    assert list(readings.columns) == list(READING_COLUMNS)
    assert len(readings) == 488 * 14 * 48
    assert readings["ts"].nunique() == 14 * 48
    assert readings["ts"].max() == END and readings["ts"].dt.tz is None
    assert (readings.groupby("meter_address").size() == 14 * 48).all()


def test_backfill_money_columns_are_integers_not_floats(history):
    readings, purchases = history
    assert readings["balance_fen"].dtype == "Int64" and readings["purchase_count"].dtype == "Int64"
    assert purchases["amount_fen"].dtype == np.int64


def test_backfill_energy_registers_never_decrease(rooms):
    ordered = rooms.sort_values(["meter_address", "ts"])
    same_meter = ordered["meter_address"].eq(ordered["meter_address"].shift())
    for key in ("energy_total", "energy_sharp", "energy_peak", "energy_flat", "energy_valley"):
        steps = ordered[key].diff()[same_meter]
        assert (steps >= 0).all(), key


def test_backfill_ends_at_the_meters_current_registers(site, history):
    readings, _ = history
    live = Field(site, clock=lambda: END.timestamp())
    last = readings[readings["ts"] == END].set_index("meter_address")
    for address in ("202611210001", "202611210250", "202611210480"):
        meter = live.meter(address)
        assert last.loc[address, "energy_total"] == pytest.approx(int(meter.energy_total * 100) / 100, abs=0.011)
        assert last.loc[address, "energy_peak"] == int(meter.energy_peak * 100) / 100
        assert last.loc[address, "balance_fen"] == meter.balance_fen
        assert last.loc[address, "purchase_count"] == meter.purchase_count
    master = live.meter("202611218001")
    assert last.loc["202611218001", "energy_total"] == pytest.approx(master.energy_total, abs=0.01)


@pytest.fixture(scope="module")
def steps(rooms, history):
    """Per room and interval: balance change, purchase count change, energy used, and purchases in the interval."""
    _, purchases = history
    ordered = rooms.sort_values(["meter_address", "ts"]).reset_index(drop=True)
    by_meter = ordered.groupby("meter_address")
    frame = pd.DataFrame({"meter_address": ordered["meter_address"], "ts": ordered["ts"],
                          "balance_change": by_meter["balance_fen"].diff(),
                          "count_change": by_meter["purchase_count"].diff(),
                          "kwh": by_meter["energy_total"].diff()}).dropna()
    bucket = purchases.assign(ts=purchases["ts"].dt.ceil("30min"))
    paid = bucket.groupby(["meter_address", "ts"]).agg(paid=("amount_fen", "sum"), n=("amount_fen", "size"))
    frame = frame.join(paid, on=["meter_address", "ts"]).fillna({"paid": 0, "n": 0})
    frame["cost"] = frame["paid"] - frame["balance_change"]
    return frame


def test_backfill_balance_only_rises_by_a_purchase(steps):
    assert (steps["cost"] >= 0).all()
    assert (steps.loc[steps["paid"] == 0, "balance_change"] <= 0).all()


def test_backfill_purchase_count_steps_match_the_purchases_in_each_interval(steps):
    assert (steps["count_change"] == steps["n"]).all()


def test_backfill_balance_falls_by_energy_times_the_flat_price(site, steps):
    # buildings 1-2 pay a flat 0.60 yuan/kWh; unopened rooms pay nothing
    charged = {m.address for m in site.meters() if m.building in ("Building 1", "Building 2") and m.prepaid_enabled}
    flat = steps[steps["meter_address"].isin(charged)]
    assert flat["kwh"].sum() > 1000
    assert np.allclose(flat["cost"], flat["kwh"] * 60, atol=2.5)


def test_backfill_purchase_counts_are_consecutive_and_end_at_the_current_count(site, history):
    _, purchases = history
    live = Field(site, clock=lambda: END.timestamp())
    for address, group in purchases.groupby("meter_address"):
        counts = group.sort_values("ts")["purchase_count_after"].to_numpy()
        assert (np.diff(counts) == 1).all()
        assert counts[-1] == live.meter(address).purchase_count


def test_backfill_rooms_tripped_now_have_used_nothing_since_the_trip(rooms):
    last = rooms[rooms["ts"] == END]
    tripped = last.loc[~last["relay_closed"].astype(bool), "meter_address"]
    assert len(tripped) > 10
    tail = rooms[rooms["meter_address"].isin(tripped) & ~rooms["relay_closed"].astype(bool)]
    assert (tail["power_total"] == 0).all()


def test_backfill_master_meter_power_is_its_rooms_plus_line_loss(site, history):
    readings, _ = history
    at = readings[readings["ts"] == END - pd.Timedelta(hours=12)]
    building = [m.address for m in site.meters() if m.building == "Building 1" and m.profile == "acrel-ddsy1352"]
    rooms_kw = at[at["meter_address"].isin(building)]["power_total"].sum()
    master_kw = at.loc[at["meter_address"] == "202611218001", "power_total"].iloc[0]
    assert 1.02 * rooms_kw - 0.5 <= master_kw <= 1.06 * rooms_kw + 0.5


def test_backfill_is_the_same_for_the_same_seed(site):
    a, pa = backfill(site, days=2, end=END, seed=9)
    b, pb = backfill(site, days=2, end=END, seed=9)
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(pa, pb)


def test_backfill_of_90_days_makes_about_two_million_rows(site):
    readings, purchases = backfill(site, days=90, end=END)
    assert len(readings) == 488 * 90 * 48
    assert len(purchases) > 1000


def test_the_live_meters_go_on_counting_the_month_where_the_backfill_leaves_it(site):
    """A meter's monthly tier counter continues the history's month (here counted from its first reading, 7 November)
    instead of starting again at 0 when the field starts in the middle of the month."""
    live = Field(site, clock=lambda: END.timestamp())
    readings, _ = backfill(site, days=14, end=END, seed=3, field=live)
    tiered = [m.address for m in site.meters() if m.building == "Building 4" and m.prepaid_enabled][:5]
    for address in tiered:
        energy = readings.loc[readings["meter_address"] == address, "energy_total"]
        meter = live.meter(address)
        assert meter.month_key == 2026 * 12 + 10
        assert meter.monthly_kwh == pytest.approx(energy.iloc[-1] - energy.iloc[0], abs=0.02)
        assert meter.monthly_kwh > 50
