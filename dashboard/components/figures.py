"""Figure builders: DataFrames in, go.Figure out; system fonts with CJK fallbacks, no web fonts."""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from dashboard.i18n import t

# The same stack as assets/wattline.css: Latin system fonts first, then the CJK fonts Windows,
# macOS and Linux ship, so Chinese axis titles render without downloading anything.
FONT_FAMILY = ('system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, "PingFang SC", '
               '"Hiragino Sans GB", "Microsoft YaHei", "Noto Sans CJK SC", "Source Han Sans SC", '
               '"WenQuanYi Micro Hei", sans-serif')


def base_layout(**extra) -> dict:
    """Layout every Wattline chart starts from: our fonts, tight margins, a plain white plot."""
    layout = dict(font=dict(family=FONT_FAMILY, size=12), margin=dict(l=48, r=12, t=28, b=36),
                  template="plotly_white", hovermode="x unified", showlegend=False)
    layout.update(extra)
    return layout


def power_curve_figure(df: pd.DataFrame, lang: str) -> go.Figure:
    """A meter's power over time. `df`: columns ts (site-local time) and power_total (kW).

    An empty frame gives an empty chart that says there is no data rather than a blank box."""
    fig = go.Figure(layout=base_layout(height=220))
    fig.update_yaxes(title_text=t("overview.power_kw", lang), rangemode="tozero")
    if df.empty or df["power_total"].isna().all():
        fig.add_annotation(text=t("overview.no_readings", lang), showarrow=False, x=0.5, y=0.5,
                           xref="paper", yref="paper", font=dict(size=13, color="#6c757d"))
        fig.update_xaxes(visible=False)
        fig.update_yaxes(visible=False)
        return fig
    fig.add_trace(go.Scatter(x=df["ts"], y=df["power_total"], mode="lines", line=dict(width=1.6, color="#0d6efd"),
                             fill="tozeroy", fillcolor="rgba(13,110,253,0.12)", name=t("overview.power_kw", lang),
                             hovertemplate="%{y:.3f} kW<extra></extra>"))
    fig.update_xaxes(tickformat="%H:%M")
    return fig
