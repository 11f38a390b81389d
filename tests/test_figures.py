"""Figure builders on small frames: what a chart shows for no readings, one reading, and a gap in them."""
from __future__ import annotations

import math

import pandas as pd

from dashboard.components.figures import power_curve_figure, with_gaps


def _frame(times: list[str], kw: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"ts": pd.to_datetime(times), "power_total": kw})


def test_a_curve_with_no_readings_draws_nothing_and_says_so_in_chinese_too():
    fig = power_curve_figure(_frame([], []), "zh")
    assert len(fig.data) == 0 and fig.layout.annotations[0].text == "近 24 小时没有读数"


def test_a_curve_whose_readings_all_lack_power_is_treated_as_empty():
    fig = power_curve_figure(_frame(["2026-11-21 08:00", "2026-11-21 08:01"], [math.nan, math.nan]), "en")
    assert len(fig.data) == 0 and fig.layout.annotations[0].text == "No readings in the last 24 hours"


def test_a_single_reading_shows_as_a_dot():
    fig = power_curve_figure(_frame(["2026-11-21 08:00"], [1.5]), "en")
    (trace,) = fig.data
    assert list(trace.y) == [1.5] and "markers" in trace.mode and list(trace.marker.size) == [5]


def test_evenly_spaced_readings_draw_one_unbroken_line_without_dots():
    fig = power_curve_figure(_frame(["2026-11-21 08:00", "2026-11-21 08:01", "2026-11-21 08:02", "2026-11-21 08:03"],
                                    [1.0, 2.0, 3.0, 2.0]), "en")
    (trace,) = fig.data
    assert trace.mode == "lines" and list(trace.y) == [1.0, 2.0, 3.0, 2.0]


def test_an_hour_without_readings_breaks_the_line_instead_of_drawing_across_it():
    df = _frame(["2026-11-21 08:00", "2026-11-21 08:01", "2026-11-21 08:02", "2026-11-21 09:02", "2026-11-21 09:03"],
                [1.0, 1.1, 1.2, 2.0, 2.1])
    (trace,) = power_curve_figure(df, "en").data
    y = list(trace.y)
    assert len(y) == 6 and math.isnan(y[3]) and y[:3] == [1.0, 1.1, 1.2] and y[4:] == [2.0, 2.1]
    assert trace.connectgaps is False
    assert pd.Timestamp(trace.x[3]) == pd.Timestamp("2026-11-21 08:32")


def test_a_reading_alone_between_two_gaps_shows_as_a_dot():
    df = _frame(["2026-11-21 08:00", "2026-11-21 08:01", "2026-11-21 08:02", "2026-11-21 09:00",
                 "2026-11-21 10:00", "2026-11-21 10:01"], [1.0, 1.0, 1.0, 4.0, 2.0, 2.0])
    (trace,) = power_curve_figure(df, "en").data
    sizes = dict(zip([float(v) for v in trace.y], trace.marker.size))
    assert "markers" in trace.mode and sizes[4.0] == 5 and sizes[1.0] == 0 and sizes[2.0] == 0


def test_readings_out_of_order_are_drawn_in_time_order():
    df = _frame(["2026-11-21 08:02", "2026-11-21 08:00", "2026-11-21 08:01"], [3.0, 1.0, 2.0])
    assert list(with_gaps(df)["power_total"]) == [1.0, 2.0, 3.0]


def test_the_charts_template_draws_our_trace_kinds_exactly_as_plotly_white():
    """The 'wattline' template is plotly_white cut to the trace kinds our charts use (a cheaper copy per figure):
    its layout and its defaults for those kinds are plotly_white's."""
    import plotly.io as pio

    from dashboard.components.figures import TEMPLATE, TRACE_TYPES
    ours, white = pio.templates[TEMPLATE].to_plotly_json(), pio.templates["plotly_white"].to_plotly_json()
    assert set(ours["data"]) == set(TRACE_TYPES) and all(ours["data"][k] == white["data"][k] for k in TRACE_TYPES)
    assert ours["layout"] == {k: v for k, v in white["layout"].items() if k in ours["layout"]}
    assert {"xaxis", "yaxis", "colorway", "font", "plot_bgcolor"} <= set(ours["layout"])
