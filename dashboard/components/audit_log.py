"""Builders for the operation-log page (/audit): query form, grid rows, the XLSX workbook."""
from __future__ import annotations

import datetime as dt

import dash_ag_grid as dag
import dash_bootstrap_components as dbc
from dash import dcc, html

from core.clock import site_time, utc_time, zone_label
from core.workbook import DATETIME, ExportWorkbook
from dashboard import inputs
from dashboard.components.audit_text import action_label, entry_words, family_label
from dashboard.components.grid import grid_locale
from dashboard.i18n import t
from dashboard.ids import Audit as ID


COLUMNS = ("ts", "operator", "action", "target", "before", "after", "source")
# before / after: one "field: value" line each, the row as tall as its longest change
# (padded so the first line sits where the one-line cells beside it have their text)
_CHANGE_COLUMN = {c: {"wrapText": True, "autoHeight": True, "minWidth": 200,
                      "cellStyle": {"whiteSpace": "pre-line", "lineHeight": "1.5", "paddingTop": "8px",
                                    "paddingBottom": "8px"}} for c in ("before", "after")}


class BadFilter(ValueError):
    """A time in the query form that is not a date or a date and time."""


def parse_filters(operator: str | None, action: str | None, since: str | None, until: str | None) -> dict:
    """The query's filters as plain JSON (kept in a dcc.Store so the export repeats the query shown); times
    as typed, in the site's time."""
    def when(text: str | None) -> str | None:
        try:
            found = inputs.moment(text)  # a date and time within the years a clock converts
        except inputs.BadValue as exc:
            raise BadFilter(str(exc)) from None
        return found.isoformat(timespec="minutes") if found else None

    return {"operator": operator or None, "action": action or None, "since": when(since), "until": when(until)}


def query_args(filters: dict | None, zone: dt.tzinfo) -> dict:
    """Keyword arguments for Accounts.operation_log from stored filters (checked again: they came
    back from the browser); the site's times as the log's naive UTC."""
    f = parse_filters(*(None if not filters else filters.get(k) for k in ("operator", "action", "since", "until")))
    return {"operator": f["operator"] if isinstance(f["operator"], str) else None,
            "action": f["action"] if isinstance(f["action"], str) else None,
            "since": utc_time(dt.datetime.fromisoformat(f["since"]), zone) if f["since"] else None,
            "until": utc_time(dt.datetime.fromisoformat(f["until"]), zone) if f["until"] else None}


def grid_rows(entries: list[dict], lang: str, zone: dt.tzinfo) -> list[dict]:
    """Rows as people read them (dashboard.components.audit_text): site time, words for codes."""
    return [{"id": e["id"], **entry_words(e, lang, zone)} for e in entries]


def action_options(actions: list[str], lang: str) -> list[dict]:
    """Each action, and each family of them ("operator." for operator.add, operator.roles ...), by name."""
    families = sorted({a.split(".", 1)[0] + "." for a in actions if "." in a})
    return ([{"label": family_label(f, lang), "value": f} for f in families]
            + sorted(({"label": action_label(a, lang), "value": a} for a in actions), key=lambda o: o["label"]))


def audit_page(rows: list[dict], operators: list[str], actions: list[str], lang: str,
               zone: dt.tzinfo) -> dbc.Container:
    form = dbc.Row([
        dbc.Col([dbc.Label(t("audit.operator", lang), html_for=ID.OPERATOR),
                 dcc.Dropdown(id=ID.OPERATOR, options=operators, placeholder=t("audit.any", lang))], md=2),
        dbc.Col([dbc.Label(t("audit.action", lang), html_for=ID.ACTION),
                 dcc.Dropdown(id=ID.ACTION, options=action_options(actions, lang),
                              placeholder=t("audit.any", lang))], md=3),
        dbc.Col([dbc.Label(t("audit.since", lang), html_for=ID.SINCE),
                 dbc.Input(id=ID.SINCE, type="datetime-local")], md=2),
        dbc.Col([dbc.Label(t("audit.until", lang), html_for=ID.UNTIL),
                 dbc.Input(id=ID.UNTIL, type="datetime-local")], md=2),
        # the buttons wrap rather than push the page wider (English at 1400 px overflowed by 1 px in md=2)
        dbc.Col([dbc.Button(t("audit.search", lang), id=ID.SEARCH, color="primary"),
                 dbc.Button(t("audit.export", lang), id=ID.EXPORT, color="outline-secondary")],
                md=3, className="d-flex flex-wrap align-items-end gap-2 text-nowrap"),
    ], className="g-2 mb-2")
    grid = dag.AgGrid(
        id=ID.GRID, rowData=grid_rows(rows, lang, zone), getRowId="params.data.id",
        columnDefs=[{"field": c, "headerName": t(f"audit.col_{c}", lang), **_CHANGE_COLUMN.get(c, {})}
                    for c in COLUMNS],
        defaultColDef={"sortable": True, "resizable": True, "minWidth": 110, "wrapText": False},
        columnSize="responsiveSizeToFit",
        dashGridOptions={"pagination": True, "paginationPageSize": 50, "localeText": grid_locale(lang)},
        style={"height": "70vh", "width": "100%"})
    return dbc.Container([
        html.H1(t("audit.heading", lang), className="h4"),
        form,
        html.Div(id=ID.RESULT),
        html.P(t("audit.count", lang, n=len(rows)), id=ID.COUNT, className="text-muted small mb-1"),
        grid,
        dcc.Store(id=ID.APPLIED, data=parse_filters(None, None, None, None)),
        dcc.Download(id=ID.DOWNLOAD),
    ], fluid=True, id=ID.PAGE)


def workbook(entries: list[dict], filters: dict, lang: str, zone: dt.tzinfo) -> ExportWorkbook:
    """The rows as the page shows them, in a workbook: a header in the operator's language, times as Excel
    date-times in the site's zone (named in the time column's header); a second sheet names the filters."""
    book = ExportWorkbook()
    headers = [t(f"audit.col_{c}", lang) for c in COLUMNS]
    headers[0] = t("clock.column", lang, name=headers[0], zone=zone_label(zone))
    ws = book.add_sheet(t("audit.sheet", lang), headers, widths=(20, 16, 24, 24, 40, 40, 16), formats={0: DATETIME})
    for e in entries:
        words = entry_words(e, lang, zone)
        ws.append([site_time(e["ts"], zone), *(words[c] for c in COLUMNS[1:])])
    meta = book.add_sheet(t("audit.filters_sheet", lang))
    shown = {"operator": filters.get("operator"),
             "action": _action_shown(filters.get("action"), lang),
             "since": filters.get("since"), "until": filters.get("until")}
    for key in ("operator", "action", "since", "until"):
        meta.append([t(f"audit.{key}", lang), shown[key] or t("audit.any", lang)])
    meta.append([t("clock.note", lang, zone=zone_label(zone))])
    return book


def _action_shown(action, lang: str) -> str | None:
    if not isinstance(action, str) or not action:
        return None
    return family_label(action, lang) if action.endswith(".") else action_label(action, lang)
