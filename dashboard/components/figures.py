"""Figure builders: DataFrames in, go.Figure out; system fonts with CJK fallbacks, no web fonts."""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio

from dashboard.i18n import t

# The same stack as assets/wattline.css: Latin system fonts first, then the CJK fonts Windows,
# macOS and Linux ship, so Chinese axis titles render without downloading anything.
FONT_FAMILY = ('system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, "PingFang SC", '
               '"Hiragino Sans GB", "Microsoft YaHei", "Noto Sans CJK SC", "Source Han Sans SC", '
               '"WenQuanYi Micro Hei", sans-serif')


TEMPLATE = "wattline"
TRACE_TYPES = ("bar", "heatmap", "pie", "scatter")     # the kinds of trace our charts draw
_UNUSED_SUBPLOTS = ("polar", "ternary", "scene", "geo", "mapbox", "map")


def _register_template() -> None:
    """Plotly's "plotly_white" cut to what our charts use: its layout without the subplot kinds we never draw
    (polar, ternary, 3-D, maps) and its defaults for our trace kinds only. Charts look the same; a figure copies
    (Plotly deep-copies the template into each one) and sends about half the bytes, a quarter of the time."""
    full = pio.templates["plotly_white"].to_plotly_json()
    pio.templates[TEMPLATE] = go.layout.Template({
        "layout": {k: v for k, v in full["layout"].items() if k not in _UNUSED_SUBPLOTS},
        "data": {k: v for k, v in full["data"].items() if k in TRACE_TYPES}})


_register_template()


def base_layout(**extra) -> dict:
    """Layout every Wattline chart starts from: our fonts, tight margins, a plain white plot."""
    layout = dict(font=dict(family=FONT_FAMILY, size=12), margin=dict(l=48, r=12, t=28, b=36),
                  template=TEMPLATE, hovermode="x unified", showlegend=False)
    layout.update(extra)
    return layout


GAP_STEPS = 3   # a step this many times the usual poll interval is a gap (lost contact): the line breaks there
POINT_SIZE = 5  # a reading with no neighbour on the line (alone between gaps, or the only one) shows as a dot


def with_gaps(df: pd.DataFrame, x: str = "ts", y: str = "power_total") -> pd.DataFrame:
    """`df` sorted by `x`, with an empty row (y NaN) in every gap longer than GAP_STEPS times the median step,
    so a line chart breaks where readings are missing instead of drawing across the silence."""
    df = df.sort_values(x, kind="stable").reset_index(drop=True)
    if len(df) < 3:
        return df
    steps = df[x].diff()
    usual = steps.median()
    gaps = steps > usual * GAP_STEPS
    if not gaps.any() or not usual > pd.Timedelta(0):
        return df
    breaks = pd.DataFrame({x: df[x][gaps] - steps[gaps] / 2, y: float("nan")})
    return pd.concat([df[[x, y]], breaks]).sort_values(x, kind="stable").reset_index(drop=True)


def lone_points(values: pd.Series) -> list[bool]:
    """Which values have no known neighbour before or after them (a line segment of one point draws nothing)."""
    known = values.notna().tolist()
    return [k and not (i > 0 and known[i - 1]) and not (i + 1 < len(known) and known[i + 1])
            for i, k in enumerate(known)]


def power_curve_figure(df: pd.DataFrame, lang: str) -> go.Figure:
    """A meter's power over time. `df`: columns ts (site-local time) and power_total (kW).

    An empty frame gives an empty chart that says there is no data rather than a blank box; a gap in the
    readings breaks the line; a reading alone (the only one, or between gaps) shows as a dot."""
    fig = go.Figure(layout=base_layout(height=220))
    fig.update_yaxes(title_text=t("overview.power_kw", lang), rangemode="tozero")
    if df.empty or df["power_total"].isna().all():
        fig.add_annotation(text=t("overview.no_readings", lang), showarrow=False, x=0.5, y=0.5,
                           xref="paper", yref="paper", font=dict(size=13, color="#6c757d"))
        fig.update_xaxes(visible=False)
        fig.update_yaxes(visible=False)
        return fig
    line = with_gaps(df)
    lone = lone_points(line["power_total"])
    fig.add_trace(go.Scatter(x=line["ts"], y=line["power_total"], mode="lines+markers" if any(lone) else "lines",
                             marker=dict(size=[POINT_SIZE if one else 0 for one in lone], color="#0d6efd"),
                             line=dict(width=1.6, color="#0d6efd"), connectgaps=False,
                             fill="tozeroy", fillcolor="rgba(13,110,253,0.12)", name=t("overview.power_kw", lang),
                             hovertemplate="%{y:.3f} kW<extra></extra>"))
    fig.update_xaxes(tickformat="%H:%M")
    return fig
