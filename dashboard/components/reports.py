"""Builders of the report centre's pages: the filter form a report's spec asks for, grid columns and rows from its
typed columns, the chart per period, and the day-end settlement's printable handover sheet."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import dash_bootstrap_components as dbc
import pandas as pd
import plotly.graph_objects as go
from dash import dcc, html

from core.clock import show_local
from dashboard.components.analysis_layout import data_grid
from dashboard.components.cashier import field
from dashboard.components.figures import base_layout
from dashboard.components.grid import NUMBER_COLUMN
from dashboard.components.tables import STACK, labelled_cells
from dashboard.i18n import t
from reports.render import yes_no
from reports.spec import CHANNELS, Column, ReportSpec

_NUMERIC = ("money", "kwh", "number", "int", "percent")


def filter_form(ids, spec: ReportSpec, applied: dict, lang: str, *, buildings: list[str], may_export: bool) -> dbc.Row:
    """The inputs `spec` takes (from/to, by, group, place, operator, channel, meter), Show and Export."""
    takes = spec.takes
    cols = []
    if spec.ranged:
        cols += [field(t("report.param.from", lang), dbc.Input(id=ids.FROM, type="date", value=applied.get("from")),
                       ids.FROM, xs=6, md=2),
                 field(t("report.param.to", lang), dbc.Input(id=ids.TO, type="date", value=applied.get("to")),
                       ids.TO, xs=6, md=2)]
    cols.append(_choice(ids.BY, "by", [(b, t(f"report.by.{b}", lang)) for b in spec.by], applied.get("by"), lang,
                        shown=bool(spec.by)))
    groups = [("", t("report.group.none", lang))] * (spec.default_group is None) + \
        [(g, t(f"report.group.{g}", lang)) for g in spec.groups]
    cols.append(_choice(ids.GROUP, "group", groups, applied.get("group") or "", lang, shown=bool(spec.groups)))
    place = "place" in takes or "building" in takes
    cols.append(_choice(ids.BUILDING, "building", [("", "—")] + [(b, b) for b in buildings],
                        applied.get("building") or "", lang, shown=place))
    cols.append(_text(ids.FLOOR, "floor", applied.get("floor"), lang, shown="place" in takes, inputmode="numeric"))
    cols.append(_text(ids.ROOM, "room", applied.get("room"), lang, shown="place" in takes))
    cols.append(_text(ids.OPERATOR, "operator", applied.get("operator"), lang, shown="operator" in takes))
    cols.append(_choice(ids.CHANNEL, "channel", [("", "—")] + [(c, c) for c in CHANNELS], applied.get("channel") or "",
                        lang, shown="channel" in takes))
    cols.append(_text(ids.METER, "meter", applied.get("meter"), lang, shown="meter" in takes, inputmode="numeric"))
    cols.append(dbc.Col([dbc.Button(t("report.run", lang), id=ids.QUERY, color="primary", className="me-2"),
                         dbc.Button(t("report.export_xlsx", lang), id=ids.EXPORT, color="outline-secondary")
                         if may_export else html.Span(id=ids.EXPORT, hidden=True)],
                        xs=12, md=3, className="d-flex align-items-end"))
    return dbc.Row(cols, className="g-2 mb-2")


def _choice(cid: str, name: str, options: list[tuple[str, str]], value, lang: str, *, shown: bool) -> dbc.Col:
    select = dbc.Select(id=cid, options=[{"label": label, "value": v} for v, label in options],
                        value=value if value is not None else (options[0][0] if options else None))
    return field(t(f"report.param.{name}", lang), select, cid, xs=6, md=2,
                 style=None if shown else {"display": "none"})


def _text(cid: str, name: str, value, lang: str, *, shown: bool, inputmode: str | None = None) -> dbc.Col:
    box = dbc.Input(id=cid, type="text", value=value or "", maxLength=100, inputmode=inputmode)
    return field(t(f"report.param.{name}", lang), box, cid, xs=6, md=2, style=None if shown else {"display": "none"})


def form_values(spec: ReportSpec, first, last, by, group, building, floor, room, operator, channel, meter) -> dict:
    """The form's values as a report's raw parameters (strings; what the spec does not take is left out)."""
    raw = {"from": first, "to": last, "by": by, "group": group, "building": building, "floor": floor, "room": room,
           "operator": operator, "channel": channel, "meter": meter}
    takes = set(spec.takes) | ({"building", "floor", "room"} if "place" in spec.takes else set())
    return {k: (v.strip() if isinstance(v, str) else v) for k, v in raw.items() if k in takes and v not in (None, "")}


def grid_columns(columns: tuple[Column, ...], lang: str) -> list[dict]:
    out = []
    for c in columns:
        col = {"field": c.key, "headerName": t(f"report.col.{c.key}", lang), "minWidth": 90}
        if c.kind in _NUMERIC:
            col.update(NUMBER_COLUMN)
        if c.kind == "money":
            col["valueFormatter"] = {"function": "wlMoney(params.value)"}     # the wire's fen, as everywhere
        elif c.kind in ("kwh", "number"):
            col["valueFormatter"] = {"function": "wlEnergy(params.value, 2)"}
        out.append(col)
    return out


def grid_value(column: Column, value, words: dict[bool, str]):
    """A value as the grid holds it: money as integer fen, kWh as a float, times and days as text, yes / no."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    if column.kind == "money":
        return int((Decimal(value) * 100).to_integral_value())
    if column.kind in ("kwh", "number"):
        return round(float(value), 2)
    if column.kind == "bool":
        return words[bool(value)]
    if column.kind == "datetime" and isinstance(value, dt.datetime):
        return show_local(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def grid_rows(columns: tuple[Column, ...], rows: list[dict], lang: str) -> list[dict]:
    words = yes_no(lang)
    return [{c.key: grid_value(c, r.get(c.key), words) for c in columns} for r in rows]


def totals_row(columns: tuple[Column, ...], totals: dict | None, lang: str) -> list[dict]:
    if totals is None:
        return []
    first, words = columns[0].key, yes_no(lang)
    return [{first: t("report.total", lang), **{c.key: grid_value(c, totals.get(c.key), words)
                                                 for c in columns if c.total}}]


def report_grid(grid_id: str, columns, rows, totals, lang: str):
    return data_grid(grid_id, grid_rows(columns, rows, lang), grid_columns(columns, lang), lang,
                     pinned_bottom=totals_row(columns, totals, lang))


def period_frame(rows: list[dict], value: str) -> pd.DataFrame:
    """period, value summed per period (a group's rows added up): what period_figure draws."""
    frame = pd.DataFrame([{"period": r.get("period"), "value": float(r.get(value) or 0)} for r in rows],
                         columns=["period", "value"])
    return frame.groupby("period", as_index=False, sort=True)["value"].sum()


def period_figure(frame: pd.DataFrame, title: str) -> go.Figure:
    """Bars per period (frame: period, value)."""
    fig = go.Figure(go.Bar(x=frame["period"].astype(str), y=frame["value"], marker_color="#2c7be5",
                           hovertemplate="%{x}: %{y:,.2f}<extra></extra>"))
    fig.update_layout(**base_layout(title=dict(text=title, font=dict(size=13)), height=260))
    fig.update_xaxes(type="category")
    return fig


def empty_figure() -> go.Figure:
    fig = go.Figure()
    fig.update_layout(**base_layout(height=260))
    return fig


def handover_sheet(rows: list[dict], day: dt.date, lang: str, sheet_id: str) -> html.Div:
    """The printable shift handover (交班单) of one day: per cashier the counts, the money and the cash to hand
    over, then signature lines (printed through assets/print.css, as the receipts)."""
    def money(v) -> str:
        return f"{Decimal(v or 0):,.2f}"

    labels = [t(f"report.col.{k}", lang) for k in
              ("operator", "sales", "refunds", "reversals", "net", "correction", "to_hand_over")]
    body = [html.Tr(labelled_cells(labels, [
                r["operator"], f"{money(r['sales'])} ({r['sales_count']})",
                f"{money(r['refunds'])} ({r['refunds_count']})", f"{money(r['reversals'])} ({r['reversals_count']})",
                money(r["net"]), money(r["correction"]), money(r["to_hand_over"])]))
            for r in rows]
    head = html.Tr([html.Th(label) for label in labels])
    signatures = html.Div([html.Span(f"{t(k, lang)}: ________________") for k in
                           ("report.signature_cashier", "report.signature_receiver", "report.signature_date")],
                          className="receipt-sign")
    return html.Div(html.Div([
        html.Div([html.Span(t("report.handover_title", lang)), html.Span(day.isoformat())], className="receipt-head"),
        html.Div(html.Table([html.Thead(head), html.Tbody(body)], className=f"receipt-table handover-table {STACK}"),
                 style={"overflowX": "auto"}),
        signatures], className="receipt-copy handover-copy"), className="receipt-sheet", id=sheet_id)
