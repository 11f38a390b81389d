"""Figure builders of the analysis pages and the managers' dashboard, on small frames."""
from __future__ import annotations

import numpy as np
import pandas as pd

from dashboard.components.analysis import (POINT_BUDGET, compare_curves_figure, daily_bars_figure, downsample,
                                           energy_figure, grain_for, heatmap_figure, history_figure, load_figure,
                                           periods_figure, share_figure, top_figure, tou_figure)


def history_rows(n: int, gap_at: int | None = None) -> pd.DataFrame:
    ts = pd.date_range("2026-11-20 00:00", periods=n, freq="min")
    return pd.DataFrame({"ts": ts, "energy_total": 100 + np.arange(n) * 0.01, "balance": 50.0,
                         "power_total": np.sin(np.arange(n) / 50.0) + 1.0,
                         "comm_gap": [i == gap_at for i in range(n)]})


def test_history_figure_marks_each_comm_gap_in_red_at_its_reading():
    fig = history_figure(history_rows(30, gap_at=12), "en")
    gap = [tr for tr in fig.data if tr.name == "Comm gap"]
    assert len(gap) == 1 and list(gap[0].x) == [pd.Timestamp("2026-11-20 00:12")]
    assert {tr.name for tr in fig.data} >= {"Total energy register (kWh)", "Balance (¥)", "Power (kW)"}


def test_history_figure_never_sends_more_points_per_trace_than_the_budget_and_keeps_the_peak():
    rows = history_rows(20_000)
    rows.loc[12_345, "power_total"] = 99.0
    fig = history_figure(rows, "zh")
    assert all(len(tr.x) <= POINT_BUDGET for tr in fig.data)
    power = next(tr for tr in fig.data if tr.name == "功率（kW）")
    assert max(power.y) == 99.0


def test_history_figure_of_no_readings_says_so():
    fig = history_figure(history_rows(0), "en")
    assert not fig.data and fig.layout.annotations[0].text == "No readings in this range."


def test_downsample_keeps_every_point_that_fits():
    s = pd.Series([1.0, np.nan, 3.0])
    assert list(downsample(pd.Series(pd.date_range("2026-01-01", periods=3, freq="h")), s, 10)) == [0, 2]


def test_grain_for_coarsens_only_when_the_asked_grain_would_exceed_the_budget():
    assert grain_for(7, "hour") == "hour"             # 168 bars
    assert grain_for(365, "hour") == "day"            # 8,760 would not fit
    assert grain_for(90, "15min") == "day"            # 8,640 quarters, 2,160 hours: neither fits
    assert grain_for(3650 * 2, "day") == "month"


def energy_frame() -> pd.DataFrame:
    days = pd.to_datetime(["2026-11-01", "2026-11-02", "2026-11-03"])
    return pd.DataFrame({"period": list(days) * 2, "label": ["Building 1"] * 3 + ["Building 2"] * 3,
                         "key": ["Building 1"] * 3 + ["Building 2"] * 3,
                         "energy_kwh": [10.0, 12.0, 0.0, 5.0, 6.5, 7.0],
                         "estimated": [False, True, False, False, False, False],
                         "gap": [False, False, True, False, False, False]})


def test_energy_figure_stacks_a_trace_per_place_hatches_estimated_bars_and_marks_gaps():
    fig = energy_figure(energy_frame(), "en", by="day")
    bars = [tr for tr in fig.data if tr.type == "bar"]
    assert [b.name for b in bars] == ["Building 1", "Building 2"] and fig.layout.barmode == "stack"
    assert list(bars[0].marker.pattern.shape) == ["", "/", ""]
    assert list(bars[0].customdata) == ["Building 1"] * 3        # what a click opens
    gap = next(tr for tr in fig.data if tr.name == "Gap")
    assert list(gap.x) == [pd.Timestamp("2026-11-03")]


def test_compare_curves_figure_lays_days_over_the_same_hours():
    today = pd.DataFrame({"minute": [0, 15, 30], "kw": [1.0, 2.0, 3.0]})
    fig = compare_curves_figure({"Today": today, "Yesterday": today.assign(kw=1.0)}, "en")
    assert [tr.name for tr in fig.data] == ["Today", "Yesterday"] and list(fig.data[0].x) == [0, 0.25, 0.5]
    assert tuple(fig.layout.xaxis.range) == (0, 24)


def test_daily_top_and_share_figures_carry_what_a_click_opens():
    days = pd.DataFrame({"day": pd.to_datetime(["2026-11-01", "2026-11-02"]), "count": [3, 0]})
    assert list(daily_bars_figure(days, "count", "en", title_key="analysis.dash.alarms_by_day").data[0].y) == [3, 0]
    top = pd.DataFrame({"label": ["B1-101", "B1-102"], "key": ["r1", "r2"], "energy_kwh": [4.0, 9.0]})
    fig = top_figure(top, "zh", title_key="analysis.dash.top")
    assert list(fig.data[0].y) == ["B1-101", "B1-102"] and list(fig.data[0].customdata) == ["r1", "r2"]
    assert fig.layout.title.text == "近 30 天用电最多"
    pie = share_figure(top, "en", title_key="analysis.dash.share")
    assert list(pie.data[0].customdata) == ["r1", "r2"]
    assert share_figure(top.assign(energy_kwh=0.0), "en", title_key="analysis.dash.share").layout.annotations


def test_load_figure_marks_estimated_steps_with_open_markers():
    load = pd.DataFrame({"period": pd.date_range("2026-11-20", periods=4, freq="h"), "kw": [1.0, 2.0, 3.0, 1.5],
                         "estimated": [False, True, False, False]})
    fig = load_figure(load, "en")
    assert len(fig.data[0].x) == 4
    marked = next(tr for tr in fig.data if tr.name == "Estimated")
    assert list(marked.y) == [2.0] and marked.marker.symbol == "circle-open"


def test_heatmap_figure_puts_hours_across_and_days_down():
    heat = pd.DataFrame([[1.0] * 24, [2.0] * 24], index=pd.to_datetime(["2026-11-20", "2026-11-21"]),
                        columns=range(24))
    fig = heatmap_figure(heat, "en")
    assert list(fig.data[0].x)[:2] == ["00:00", "01:00"] and list(fig.data[0].y) == ["2026-11-20", "2026-11-21"]
    assert heatmap_figure(heat.iloc[0:0], "en").layout.annotations


def test_tou_figure_stacks_sharp_peak_flat_valley_in_the_operators_language():
    tou = pd.DataFrame({"period": pd.to_datetime(["2026-11-20"]), "energy_sharp": [1.0], "energy_peak": [2.0],
                        "energy_flat": [3.0], "energy_valley": [4.0]})
    fig = tou_figure(tou, "zh")
    assert [tr.name for tr in fig.data] == ["尖电量（千瓦时）", "峰电量（千瓦时）", "平电量（千瓦时）", "谷电量（千瓦时）"]
    assert fig.layout.barmode == "stack"


def test_periods_figure_names_a_period_without_data_instead_of_drawing_zero():
    periods = pd.DataFrame({"label": ["this", "previous", "last year"], "energy_kwh": [120.0, 100.0, 0.0],
                            "days_with_data": [7, 7, 0]})
    fig = periods_figure(periods, "en")
    assert list(fig.data[0].text) == ["120", "100", "no data"]
