"""Figure builders of the analysis pages and the managers' dashboard: DataFrames in, go.Figure out, every time
axis already in site time (the services convert), texts in the operator's language."""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from tsdownsample import MinMaxLTTBDownsampler

from dashboard.components.figures import base_layout
from dashboard.i18n import t

POINT_BUDGET = 1500     # points per trace: about one per pixel column of a wide screen, more than a phone shows
ESTIMATED_PATTERN = "/"  # hatched: energy spread over a comm gap (energy.derive marks it estimated)
GAP_COLOR = "#dc3545"
PALETTE = ("#0d6efd", "#20c997", "#fd7e14", "#6f42c1", "#d63384", "#198754", "#0dcaf0", "#ffc107", "#6c757d",
           "#6610f2")
GRAINS = ("15min", "hour", "day", "month")
_GRAIN_SECONDS = {"15min": 900, "hour": 3600, "day": 86400, "month": 86400 * 31}


def _empty(fig: go.Figure, lang: str, key: str = "analysis.no_data") -> go.Figure:
    fig.add_annotation(text=t(key, lang), showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper",
                       font=dict(size=13, color="#6c757d"))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig


def _legend() -> dict:
    # above the plot, horizontal: a legend at the side takes a phone's width
    return dict(showlegend=True, legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0, xanchor="left"))


def downsample(ts: pd.Series, values: pd.Series, budget: int = POINT_BUDGET) -> np.ndarray:
    """Positions of at most `budget` points that draw `values` over `ts` as the full series looks (MinMaxLTTB
    keeps every peak and dip a pixel column would show); all positions when they fit. NaN values are left out."""
    known = np.flatnonzero(values.notna().to_numpy())
    if len(known) <= budget:
        return known
    x = ts.iloc[known].to_numpy(dtype="datetime64[ns]").astype(np.int64)
    y = values.iloc[known].to_numpy(dtype=float)
    return known[MinMaxLTTBDownsampler().downsample(x, y, n_out=budget)]


def grain_for(days: int, asked: str, budget: int = POINT_BUDGET) -> str:
    """The grain to draw `days` days at: `asked`, or the next coarser one when `asked` would send more than
    `budget` points per trace (hourly over a year would be 8,760)."""
    i = GRAINS.index(asked) if asked in GRAINS else GRAINS.index("day")
    while i < len(GRAINS) - 1 and days * 86400 / _GRAIN_SECONDS[GRAINS[i]] > budget:
        i += 1
    return GRAINS[i]


def history_figure(rows: pd.DataFrame, lang: str, budget: int = POINT_BUDGET) -> go.Figure:
    """One meter's readings: the total energy register (left axis), the balance and power (right axis), and a
    red mark at each reading that came after a comm gap. `rows`: ts (site time), energy_total, balance,
    power_total, comm_gap. Each trace keeps at most `budget` points (downsample)."""
    fig = go.Figure(layout=base_layout(height=320, **_legend()))
    if rows.empty:
        return _empty(fig, lang)
    traces = (("energy_total", "analysis.history.chart_energy", "y", PALETTE[0]),
              ("balance", "analysis.history.chart_balance", "y2", PALETTE[1]),
              ("power_total", "analysis.history.chart_power", "y2", PALETTE[2]))
    for col, key, axis, color in traces:
        values = pd.to_numeric(rows[col], errors="coerce")
        keep = downsample(rows["ts"], values, budget)
        if len(keep):
            fig.add_trace(go.Scatter(x=rows["ts"].iloc[keep], y=values.iloc[keep], name=t(key, lang), yaxis=axis,
                                       mode="lines", line=dict(color=color, width=1.5)))
    gaps = rows[rows["comm_gap"].astype(bool)]
    if len(gaps):
        fig.add_trace(go.Scatter(x=gaps["ts"], y=pd.to_numeric(gaps["energy_total"], errors="coerce"),
                                 name=t("analysis.history.chart_gap", lang), mode="markers",
                                 marker=dict(color=GAP_COLOR, symbol="x", size=9)))
    fig.update_layout(yaxis=dict(title=t("analysis.history.chart_energy", lang)),
                      yaxis2=dict(overlaying="y", side="right", showgrid=False, rangemode="tozero"))
    return fig


def energy_figure(df: pd.DataFrame, lang: str, *, by: str) -> go.Figure:
    """Energy per period, one bar trace per place (stacked). `df`: period (site time), label (the place's name),
    key (what a click on its bar opens: customdata), energy_kwh, estimated, gap. Estimated bars are hatched; a
    period with a gap and no energy gets a red mark on the axis."""
    fig = go.Figure(layout=base_layout(height=340, barmode="stack", hovermode="closest", **_legend()))
    if df.empty:
        return _empty(fig, lang)
    fig.update_yaxes(title_text=t("analysis.kwh", lang), rangemode="tozero")
    for i, (label, part) in enumerate(df.groupby("label", sort=False)):
        estimated = part["estimated"].astype(bool)
        fig.add_trace(go.Bar(
            x=part["period"], y=part["energy_kwh"], name=str(label), customdata=part["key"],
            marker=dict(color=PALETTE[i % len(PALETTE)],
                        pattern=dict(shape=[ESTIMATED_PATTERN if e else "" for e in estimated])),
            hovertemplate="%{x}<br>" + str(label) + ": %{y:.2f} kWh<extra></extra>"))
    gaps = df[df["gap"].astype(bool) & ~(df["energy_kwh"] > 0)]
    if len(gaps):
        fig.add_trace(go.Scatter(x=gaps["period"].drop_duplicates(), y=[0] * gaps["period"].nunique(),
                                 name=t("analysis.energy.gap", lang), mode="markers",
                                 marker=dict(color=GAP_COLOR, symbol="x", size=9), hoverinfo="skip"))
    if by == "month":
        fig.update_xaxes(dtick="M1", tickformat="%Y-%m")
    return fig


def compare_curves_figure(curves: dict[str, pd.DataFrame], lang: str) -> go.Figure:
    """Load curves laid over one day: `curves` maps a label to a frame of minute (minutes after local midnight)
    and kw; the first is drawn strongest (today)."""
    fig = go.Figure(layout=base_layout(height=300, **_legend()))
    if all(c.empty for c in curves.values()):
        return _empty(fig, lang)
    for i, (label, frame) in enumerate(curves.items()):
        hours = frame["minute"] / 60.0
        fig.add_trace(go.Scatter(x=hours, y=frame["kw"], name=label, mode="lines",
                                 line=dict(color=PALETTE[i], width=2.5 if i == 0 else 1.5,
                                           dash="solid" if i == 0 else "dot")))
    fig.update_xaxes(range=[0, 24], dtick=3, ticksuffix=":00")
    fig.update_yaxes(title_text="kW", rangemode="tozero")
    return fig


def daily_bars_figure(df: pd.DataFrame, value: str, lang: str, *, title_key: str, color: str = PALETTE[0],
                      key: str | None = None) -> go.Figure:
    """One bar a day: `df` has day (site date) and `value`; `key`, if given, is the column a click sends."""
    fig = go.Figure(layout=base_layout(height=260, hovermode="closest", title=dict(text=t(title_key, lang),
                                                                                   font=dict(size=13))))
    fig.update_layout(margin=dict(l=48, r=12, t=40, b=36))
    if df.empty:
        return _empty(fig, lang)
    fig.add_trace(go.Bar(x=df["day"], y=df[value], marker_color=color,
                         customdata=df[key] if key else None))
    fig.update_xaxes(type="date", tickformat="%m-%d")
    fig.update_yaxes(rangemode="tozero")
    return fig


def top_figure(df: pd.DataFrame, lang: str, *, title_key: str) -> go.Figure:
    """The largest consumers, largest on top: `df` has label, key (a click's customdata) and energy_kwh."""
    fig = go.Figure(layout=base_layout(height=60 + 24 * max(len(df), 3), hovermode="closest",
                                       title=dict(text=t(title_key, lang), font=dict(size=13))))
    fig.update_layout(margin=dict(l=96, r=12, t=40, b=36))
    if df.empty:
        return _empty(fig, lang)
    ordered = df.sort_values("energy_kwh")
    fig.add_trace(go.Bar(x=ordered["energy_kwh"], y=ordered["label"].astype(str), orientation="h",
                         customdata=ordered["key"], marker_color=PALETTE[0],
                         hovertemplate="%{y}: %{x:.2f} kWh<extra></extra>"))
    fig.update_xaxes(title_text=t("analysis.kwh", lang))
    return fig


def share_figure(df: pd.DataFrame, lang: str, *, title_key: str) -> go.Figure:
    """Each place's share of the energy: `df` has label, key and energy_kwh."""
    fig = go.Figure(layout=base_layout(height=300, hovermode="closest", title=dict(text=t(title_key, lang),
                                                                                   font=dict(size=13)),
                                       showlegend=True, legend=dict(orientation="h", y=-0.05, x=0)))
    fig.update_layout(margin=dict(l=12, r=12, t=40, b=12))
    if df.empty or not (df["energy_kwh"] > 0).any():
        return _empty(fig, lang)
    fig.add_trace(go.Pie(labels=df["label"].astype(str), values=df["energy_kwh"], customdata=df["key"], hole=0.45,
                         sort=False, textinfo="percent", marker=dict(colors=list(PALETTE))))
    return fig


def load_figure(load: pd.DataFrame, lang: str) -> go.Figure:
    """Average power per step over the range: `load` has period (site time), kw, estimated; estimated steps are
    drawn as open markers on the line."""
    fig = go.Figure(layout=base_layout(height=300))
    if load.empty:
        return _empty(fig, lang)
    fig.add_trace(go.Scatter(x=load["period"], y=load["kw"], mode="lines", line=dict(color=PALETTE[0], width=1.5),
                             name="kW"))
    estimated = load[load["estimated"].astype(bool)]
    if len(estimated):
        fig.add_trace(go.Scatter(x=estimated["period"], y=estimated["kw"], mode="markers",
                                 name=t("analysis.energy.estimated", lang),
                                 marker=dict(symbol="circle-open", color=PALETTE[2], size=7)))
    fig.update_yaxes(title_text="kW", rangemode="tozero")
    return fig


def heatmap_figure(heat: pd.DataFrame, lang: str) -> go.Figure:
    """kWh by hour of day (x) and day (y): `heat` is indexed by day with columns 0..23."""
    fig = go.Figure(layout=base_layout(height=max(260, 60 + 14 * len(heat)), hovermode="closest"))
    if heat.empty or heat.isna().all().all():
        return _empty(fig, lang)
    fig.add_trace(go.Heatmap(z=heat.to_numpy(), x=[f"{h:02d}:00" for h in heat.columns],
                             y=[pd.Timestamp(d).strftime("%Y-%m-%d") for d in heat.index], colorscale="YlOrRd",
                             colorbar=dict(title=dict(text=t("analysis.kwh", lang)), thickness=10),
                             hovertemplate="%{y} %{x}: %{z:.2f} kWh<extra></extra>"))
    fig.update_yaxes(autorange="reversed", type="category")
    return fig


TOU_COLUMNS = ("energy_sharp", "energy_peak", "energy_flat", "energy_valley")
TOU_COLORS = ("#dc3545", "#fd7e14", "#0d6efd", "#20c997")


def tou_figure(tou: pd.DataFrame, lang: str) -> go.Figure:
    """Energy per day split into sharp, peak, flat and valley (stacked)."""
    fig = go.Figure(layout=base_layout(height=300, barmode="stack", **_legend()))
    if tou.empty:
        return _empty(fig, lang)
    for col, color in zip(TOU_COLUMNS, TOU_COLORS):
        fig.add_trace(go.Bar(x=tou["period"], y=tou[col], name=t(f"analysis.col.{col}", lang), marker_color=color))
    fig.update_xaxes(type="date", tickformat="%m-%d")
    fig.update_yaxes(title_text=t("analysis.kwh", lang), rangemode="tozero")
    return fig


def periods_figure(periods: pd.DataFrame, lang: str) -> go.Figure:
    """The range against the one before it and the same days a year earlier: `periods` has label, energy_kwh,
    days_with_data; a period without data shows an empty bar named so."""
    fig = go.Figure(layout=base_layout(height=280, hovermode="closest"))
    if periods.empty:
        return _empty(fig, lang)
    fig.add_trace(go.Bar(x=periods["label"], y=periods["energy_kwh"], marker_color=[PALETTE[0], PALETTE[8],
                                                                                      PALETTE[3]][:len(periods)],
                         text=[f"{v:,.0f}" if d else t("analysis.insights.no_data_short", lang)
                               for v, d in zip(periods["energy_kwh"], periods["days_with_data"])],
                         textposition="outside"))
    fig.update_yaxes(title_text=t("analysis.kwh", lang), rangemode="tozero")
    return fig
