"""Builders of the line-loss page (/grid/line-loss): the loss rate per period and area as a chart, the rows as a
table, the meters of not computable periods and the least-correlated meters; pure functions of frames."""
from __future__ import annotations

import dash_bootstrap_components as dbc
import pandas as pd
import plotly.graph_objects as go
from dash import html

from dashboard.components.analysis import PALETTE
from dashboard.components.figures import base_layout
from dashboard.components.tables import STACK, labelled_cells
from dashboard.i18n import t


def loss_rate_figure(rows: pd.DataFrame, limit: float, lang: str) -> go.Figure:
    """The loss rate (%) per period, one line per area, the high limit dashed; not computable periods are gaps."""
    fig = go.Figure()
    for i, (area, group) in enumerate(rows.groupby("area", sort=True)):
        fig.add_trace(go.Scatter(x=group["period"].astype(str), y=group["loss_rate"] * 100, name=str(area),
                                 mode="lines+markers", line=dict(color=PALETTE[i % len(PALETTE)]),
                                 hovertemplate="%{x}: %{y:.2f} %<extra>" + str(area) + "</extra>"))
    fig.add_hline(y=limit * 100, line=dict(color="#d9534f", dash="dash", width=1),
                  annotation_text=t("line_loss.limit", lang, limit=f"{limit * 100:g}"), annotation_position="top left")
    fig.update_layout(**base_layout(title=dict(text=t("line_loss.chart_title", lang), font=dict(size=13)),
                                    height=300, showlegend=True, legend=dict(orientation="h", y=-0.2)))
    fig.update_xaxes(type="category")
    fig.update_yaxes(ticksuffix=" %")
    return fig


def _number(value, digits: int = 2) -> str:
    return "" if value is None or pd.isna(value) else f"{value:,.{digits}f}"


def rows_table(rows: pd.DataFrame, lang: str) -> dbc.Table:
    """Period, area, supply, sales, loss, loss rate, class (in words), interpolated."""
    header = [t(f"report.col.{h}", lang) for h in
              ("period", "area", "supply_kwh", "sales_kwh", "loss_kwh", "loss_rate", "class_text", "interpolated")]
    body = [html.Tr(labelled_cells(header, [
        r["period"], r["area"], _number(r["supply_kwh"]), _number(r["sales_kwh"]), _number(r["loss_kwh"]),
        "" if pd.isna(r["loss_rate"]) else f"{r['loss_rate'] * 100:.2f} %",
        html.Td(t(f"line_loss.class.{r['class']}", lang),
                className={"high": "text-danger", "negative": "text-warning",
                           "not_computable": "text-muted"}.get(r["class"], "")),
        t("report.yes", lang) if r["interpolated"] else ""]))
            for r in rows.to_dict("records")]
    return dbc.Table([html.Thead(html.Tr([html.Th(h) for h in header])), html.Tbody(body)],
                     size="sm", striped=True, responsive=True, className=f"small {STACK}")


def missing_list(rows: pd.DataFrame, lang: str) -> html.Div | None:
    """The not computable periods with the meters that lacked a midnight register."""
    gone = rows[rows["missing_meters"].astype(bool)]
    if gone.empty:
        return None
    items = [html.Li([html.Strong(f"{r['period']} · {r['area']}: "),
                      html.Span(t("line_loss.no_master", lang) if r["missing_meters"].startswith("-")
                                else r["missing_meters"], className="text-break")])
             for r in gone.head(200).to_dict("records")]
    return html.Div([html.H2(t("line_loss.missing_heading", lang), className="h6 mt-3"), html.Ul(items)])


def hints_table(hints: pd.DataFrame, lang: str) -> html.Div:
    """The meters whose daily use moved least with the loss (a hint for theft or a wrong mapping)."""
    if hints.empty:
        return html.P(t("line_loss.hints_none", lang), className="small text-muted")
    header = [t(f"report.col.{h}", lang) for h in ("area", "meter", "correlation", "days", "kwh")]
    body = [html.Tr(labelled_cells(header, [
        r["area"], r["meter"], "—" if pd.isna(r["correlation"]) else f"{r['correlation']:.3f}", r["days"],
        _number(r["kwh"])])) for r in hints.to_dict("records")]
    return html.Div([
        html.H2(t("line_loss.hints_heading", lang), className="h6 mt-3"),
        html.P(t("line_loss.hints_help", lang), className="small text-muted"),
        dbc.Table([html.Thead(html.Tr([html.Th(h) for h in header])), html.Tbody(body)],
                  size="sm", responsive=True, className=f"small {STACK}")])


def dash_card(rows: pd.DataFrame, day, lang: str, href: str) -> dbc.Card:
    """The managers' dashboard card: each area's line loss of one day (rate and class), linking to the page."""
    items = [html.Li([html.Strong(r["area"]), ": ",
                      html.Span("—" if pd.isna(r["loss_rate"]) else f"{r['loss_rate'] * 100:.2f} %"), " ",
                      html.Span(t(f"line_loss.class.{r['class']}", lang),
                                className={"qualified": "badge bg-success", "high": "badge bg-danger",
                                           "negative": "badge bg-warning text-dark"}.get(r["class"],
                                                                                          "badge bg-secondary"))])
             for r in rows.to_dict("records")]
    return dbc.Card(dbc.CardBody([
        html.H2(t("line_loss.card_title", lang, day=day.isoformat()), className="h6"),
        html.Ul(items, className="list-unstyled small mb-2") if items else
        html.P(t("line_loss.none", lang), className="small text-muted"),
        html.A(t("line_loss.card_link", lang), href=href, className="small"),
    ]), className="mb-2")
