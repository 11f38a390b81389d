"""Builders of the work-order office pages: KPI tiles, the charts (orders by type per month, repair completion
time by month), the statistics tables (工单分类统计表, 工器具领用统计表, 材料分类统计表) and their XLSX workbook."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

from urllib.parse import quote

import dash_ag_grid as dag
import dash_bootstrap_components as dbc
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from dash import html

from core.clock import EMPTY, show_time
from core.workbook import INTEGER, MONEY, PERCENT, ExportWorkbook
from dashboard import access
from dashboard.components.analysis import PALETTE
from dashboard.components.figures import base_layout
from dashboard.components.grid import grid_locale
from dashboard.components.tables import STACK, labelled_cells
from dashboard.i18n import t
from dashboard.ids import WorkOrderKpis as ID
from workorders.kpis import Kpis, KpiReport

RATES = ("completion_rate", "overdue_rate", "satisfaction_rate", "online_rate", "first_time_fix_rate",
         "reopen_rate")
TILES = ("orders", "completion_rate", "overdue_rate", "satisfaction_rate", "online_rate", "visits",
         "first_response_h", "first_time_fix_rate", "reopen_rate")
ORDER_PATH = access.WORKORDER.path
DASH_TILES = ("orders", "completion_rate", "overdue_rate", "satisfaction_rate")
TYPE_COLUMNS = ("orders", "completed", "open", "on_hold", "cancelled", "overdue")


def type_names(types: list[dict], lang: str) -> dict[str, str]:
    """Order type key -> its name in `lang` (a type no longer listed shows its key)."""
    return {r["key"]: r["name_zh"] if lang == "zh" else r["name_en"] for r in types}


def kpi_text(name: str, value) -> str:
    """A KPI as a tile shows it: rates in percent, hours with one decimal, counts whole; nothing to rate: a dash."""
    if value is None or (isinstance(value, float) and value != value):
        return EMPTY
    if name in RATES:
        return f"{value * 100:.1f}%"
    if name == "first_response_h":
        return f"{value:.1f} h"
    return f"{int(value):,}"


def kpi_tiles(kpis: Kpis, lang: str, names: tuple[str, ...] = TILES) -> dbc.Row:
    values = kpis.as_dict()
    return dbc.Row([dbc.Col(dbc.Card(dbc.CardBody(html.Div([
        html.Div(t(f"wo_kpi.name.{n}", lang), className="small text-muted"),
        html.Div(kpi_text(n, values[n]), className="h5 mb-0"),
    ], title=t(f"wo_kpi.tip.{n}", lang))), id=ID.kpi(n)), xs=6, md=4, xl=True, className="mb-2") for n in names],
        className="g-2")


_TEMPLATES: dict[str, dict] = {}


def _light_figure(data: list[dict], layout: dict) -> go.Figure:
    """A figure from plain trace and layout dicts without Plotly's per-property validation (the template's
    objects cost ten times the rest of the page's builders): the named template is resolved once to the dict
    Plotly would send, so the chart looks and serialises exactly as a validated one."""
    name = layout.get("template")
    if isinstance(name, str):
        if name not in _TEMPLATES:
            _TEMPLATES[name] = pio.templates[name].to_plotly_json()
        layout = {**layout, "template": _TEMPLATES[name]}
    return go.Figure({"data": data, "layout": layout}, _validate=False)


def months_figure(by_month: pd.DataFrame, names: dict[str, str], lang: str) -> go.Figure:
    """Orders created per month, stacked by type: `by_month` has period, type, created."""
    layout = base_layout(height=300, barmode="stack", hovermode="x unified", showlegend=True,
                         legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0),
                         title=dict(text=t("wo_kpi.chart_months", lang), font=dict(size=13)),
                         margin=dict(l=48, r=12, t=72, b=36))
    if by_month.empty:
        return _empty(layout, lang)
    data = [{"type": "bar", "x": rows["period"].tolist(), "y": rows["created"].tolist(), "name": names.get(key, key),
             "marker": {"color": PALETTE[i % len(PALETTE)]}}
            for i, (key, rows) in enumerate(by_month.groupby("type", sort=True))]
    return _light_figure(data, {**layout, "xaxis": {"type": "category"}})


def repair_figure(hours: pd.DataFrame, lang: str) -> go.Figure:
    """Mean repair completion time per month: `hours` has month, hours, orders."""
    layout = base_layout(height=300, hovermode="x unified",
                         title=dict(text=t("wo_kpi.chart_repair", lang), font=dict(size=13)),
                         margin=dict(l=48, r=12, t=40, b=36))
    if hours.empty:
        return _empty(layout, lang)
    data = [{"type": "bar", "x": hours["month"].tolist(), "y": hours["hours"].round(1).tolist(),
             "marker": {"color": PALETTE[2]}, "customdata": hours["orders"].tolist(),
             "hovertemplate": "%{x}: %{y} h (%{customdata})<extra></extra>"}]
    return _light_figure(data, {**layout, "xaxis": {"type": "category"},
                                "yaxis": {"title": {"text": t("wo_kpi.hours", lang)}, "rangemode": "tozero"}})


def _empty(layout: dict, lang: str) -> go.Figure:
    return _light_figure([], {**layout, "xaxis": {"visible": False}, "yaxis": {"visible": False}, "annotations": [
        {"text": t("wo_kpi.no_orders", lang), "showarrow": False, "x": 0.5, "y": 0.5, "xref": "paper", "yref": "paper",
         "font": {"size": 13, "color": "#6c757d"}}]})


# --- statistics tables: one set of rows for the page and the export ---------------------------------------
def type_rows(report: KpiReport, lang: str) -> tuple[list[str], list[list]]:
    """工单分类统计表: header and rows (a totals row last)."""
    names = type_names(report.types, lang)
    header = [t("wo_kpi.col.type", lang), *(t(f"wo_kpi.col.{c}", lang) for c in TYPE_COLUMNS),
              t("wo_kpi.col.completion_rate", lang), t("wo_kpi.col.hours", lang)]
    rows = [[names.get(r["type"], r["type"]), *(int(r[c]) for c in TYPE_COLUMNS),
             None if pd.isna(r["completion_rate"]) else float(r["completion_rate"]),
             None if pd.isna(r["hours"]) else round(float(r["hours"]), 1)]
            for r in report.by_type.to_dict("records")]
    table = report.by_type
    sums = [int(table[c].sum()) if len(table) else 0 for c in TYPE_COLUMNS]
    live = sums[0] - sums[4]
    rows.append([t("wo_kpi.total", lang), *sums, (sums[1] / live) if live else None, None])
    return header, rows


def item_rows(items: pd.DataFrame, lang: str, *, money: bool) -> tuple[list[str], list[list]]:
    """工器具领用统计表 (money False) or 材料分类统计表: class, item, unit, orders, quantity (, amount); totals last."""
    header = [t("wo_kpi.col.class", lang), t("wo_kpi.col.item", lang), t("wo_kpi.col.unit", lang),
              t("wo_kpi.col.orders_using", lang), t("wo_kpi.col.quantity", lang)]
    if money:
        header.append(t("wo_kpi.col.amount", lang))
    rows = []
    for r in items.to_dict("records"):
        row = [r["item_class"] or EMPTY, r["text_zh"] if lang == "zh" else r["text_en"], r["unit"] or "",
               int(r["orders"]), Decimal(str(r["quantity"] or 0)).normalize()]
        if money:
            row.append(Decimal(str(r["amount"] or 0)).quantize(Decimal("0.01")))
        rows.append(row)
    total = [t("wo_kpi.total", lang), "", "", None, None]
    if money:
        total.append(sum((r[5] for r in rows), Decimal("0.00")))
    rows.append(total)
    return header, rows


def counts_rows(counts: pd.DataFrame, names: dict[str, str], lang: str) -> tuple[list[str], list[list]]:
    header = [t("wo_kpi.col.period", lang), t("wo_kpi.col.type", lang), t("wo_kpi.col.created", lang),
              t("wo_kpi.col.completed", lang)]
    return header, [[r["period"], names.get(r["type"], r["type"]), int(r["created"]), int(r["completed"])]
                    for r in counts.to_dict("records")]


def _cell(value, percent: bool) -> str:
    if value is None:
        return EMPTY
    if percent and isinstance(value, float):
        return f"{value * 100:.1f}%"
    if isinstance(value, Decimal):  # fixed point: a normalized 2440 is 2.44E+3
        return f"{value:,f}"
    return str(value)


def stats_table(header: list[str], rows: list[list], table_id: str | None = None, *,
                percent_col: int | None = None) -> html.Div:
    """A statistics table: on a phone each row stacks as "column: value" lines (dashboard.components.tables);
    between a phone and a desktop it scrolls inside its own box (never the page)."""
    body = [html.Tr(labelled_cells(header, [_cell(v, i == percent_col) for i, v in enumerate(r)])) for r in rows]
    table = dbc.Table([html.Thead(html.Tr([html.Th(h) for h in header])), html.Tbody(body)],
                      bordered=False, striped=True, size="sm", className=f"mb-0 wo-stats {STACK}")
    return html.Div(table, className="table-responsive mb-3", **({"id": table_id} if table_id else {}))


def kpi_workbook(report: KpiReport, lang: str, zone_text: str, exported_at: dt.datetime) -> ExportWorkbook:
    """The KPI page as a workbook: the KPIs, orders by type, per month and quarter, tools and materials."""
    book = ExportWorkbook()
    period = f"{report.first_day.isoformat()} – {report.last_day.isoformat()}"
    preamble = [[t("wo_kpi.heading", lang)], [t("wo_kpi.period", lang), period],
                [t("wo_kpi.exported_at", lang), exported_at.strftime("%Y-%m-%d %H:%M"), zone_text]]
    # rates in a percent column, counts and hours in the next: a workbook formats a column, not a cell
    sheet = book.add_sheet(t("wo_kpi.sheet.kpis", lang), [t("wo_kpi.col.kpi", lang), t("wo_kpi.col.rate", lang),
                                                          t("wo_kpi.col.value", lang)],
                           widths=(34, 12, 14), formats={1: PERCENT}, preamble=preamble)
    values = report.kpis.as_dict()
    for name in TILES:
        value = values[name]
        if name in RATES:
            sheet.append([t(f"wo_kpi.name.{name}", lang), value, None])
        else:
            sheet.append([t(f"wo_kpi.name.{name}", lang), None, None if value is None else round(float(value), 2)])
    names = type_names(report.types, lang)
    header, rows = type_rows(report, lang)
    s = book.add_sheet(t("wo_kpi.sheet.types", lang), header, widths=(28, 10, 10, 10, 10, 10, 10, 14, 14),
                       formats={7: PERCENT}, preamble=preamble[:2])
    for r in rows[:-1]:
        s.append(r)
    s.append(rows[-1], bold=True)
    for key, frame in (("months", report.by_month), ("quarters", report.by_quarter)):
        header, rows = counts_rows(frame, names, lang)
        s = book.add_sheet(t(f"wo_kpi.sheet.{key}", lang), header, widths=(12, 28, 10, 10), formats={2: INTEGER},
                           preamble=preamble[:2])
        for r in rows:
            s.append(r)
    for key, frame, money in (("tools", report.tools, False), ("materials", report.materials, True)):
        header, rows = item_rows(frame, lang, money=money)
        s = book.add_sheet(t(f"wo_kpi.sheet.{key}", lang), header, widths=(16, 30, 8, 12, 12, 14),
                           formats={5: MONEY}, preamble=preamble[:2])
        for r in rows[:-1]:
            s.append(r)
        s.append(rows[-1], bold=True)
    repair = report.kpis.repair_hours_by_month
    s = book.add_sheet(t("wo_kpi.sheet.repair", lang), [t("wo_kpi.col.month", lang), t("wo_kpi.col.hours", lang),
                                                        t("wo_kpi.col.orders", lang)], widths=(12, 14, 10),
                       preamble=preamble[:2])
    for r in repair.to_dict("records"):
        s.append([r["month"], round(float(r["hours"]), 1), int(r["orders"])])
    return book


# --- the order list and the review queue ------------------------------------------------------------------
ORDER_FIELDS = ("number", "type", "priority", "state", "flag", "customer", "building", "worker", "created_at",
                "due_at")
QUEUE_FIELDS = ("number", "type", "state", "customer", "worker", "completed_at", "due_at", "called")


def order_link(number: str) -> str:
    return f"{ORDER_PATH}?number={quote(number)}"


def order_grid_rows(rows: list[dict], types: dict[str, str], zone, lang: str) -> list[dict]:
    """Grid rows of WorkOrderService.search (or the review queue): texts in `lang`, times in the site's zone; the
    number a link to the order (markdown, a plain link: the page opens with the order's own checks)."""
    out = []
    for r in rows:
        flag = r.get("flag")
        out.append({
            "id": r["id"], "number": f"[{r['number']}]({order_link(r['number'])})",
            "type": types.get(r["type"], r["type"]), "priority": t(f"workorder.priority.{r['priority']}", lang)
            if r.get("priority") else "",
            "state": t(f"workorder.state.{r['state']}", lang),
            "flag": t(f"workorder.flag.{flag}", lang) if flag else "",
            "customer": r.get("customer_name") or "", "building": r.get("building_name") or "",
            "worker": r.get("worker_name") or r.get("worker") or "",
            "created_at": show_time(r.get("created_at"), zone, "minutes"),
            "completed_at": show_time(r.get("completed_at"), zone, "minutes"),
            "due_at": show_time(r.get("due_at"), zone, "minutes"),
            "called": t("wo_office.yes", lang) if r.get("called") else t("wo_office.no", lang),
        })
    return out


def order_grid(grid_id: str, rows: list[dict], fields: tuple[str, ...], lang: str) -> dag.AgGrid:
    columns = [{"field": f, "headerName": t(f"wo_office.col.{f}", lang),
                **({"cellRenderer": "markdown", "minWidth": 190, "pinned": "left"} if f == "number" else {})}
               for f in fields]
    return dag.AgGrid(
        id=grid_id, rowData=rows, columnDefs=columns, getRowId="params.data.id",
        defaultColDef={"sortable": True, "resizable": True, "filter": True, "minWidth": 110},
        columnSize="autoSize",
        dashGridOptions={"localeText": grid_locale(lang), "animateRows": False, "enableCellTextSelection": True,
                         "pagination": True, "paginationPageSize": 50, "domLayout": "autoHeight"},
        style={"width": "100%"}, className="ag-theme-quartz")


def options(values, label) -> list[dict]:
    return [{"label": label(v), "value": v} for v in values]


def dash_card(kpis: Kpis, lang: str) -> dbc.Card:
    """The managers' dashboard's work-order card: the last 30 days' main KPIs and a link to the KPI page."""
    return dbc.Card(dbc.CardBody([
        html.Div([html.H2(t("wo_kpi.dash_heading", lang), className="h6 mb-2 me-auto"),
                  html.A(t("wo_kpi.dash_more", lang), href=access.WORKORDER_KPIS.path, className="small")],
                 className="d-flex flex-wrap"),
        kpi_tiles(kpis, lang, DASH_TILES),
    ]), id=ID.DASH_CARD, className="mb-2")
