"""The control page (batch operations) and the batch view: builders only (dashboard/pages/control.py wires them).

Grid rows carry money as integer fen (`balance_fen`, shown by assets/formatting.js wlMoney); the export writes exact
Decimals; times are the site's local time.
"""
from __future__ import annotations

import datetime as dt

import dash_ag_grid as dag
import dash_bootstrap_components as dbc
import pandas as pd
from dash import dcc, html

from billing.control import ACTIONS, CANCELLED_BY, METER_STATES, BatchView
from core.clock import show_local, site_time, zone_label
from core.money import from_fen
from core.workbook import DATETIME, MONEY, ExportWorkbook
from dashboard.components.grid import NUMBER_COLUMN, grid_locale
from dashboard.components.tables import STACK, labelled_cells
from dashboard.i18n import t
from dashboard.ids import Control as ID
from storage.overview import MAP_STATES

COLUMNS = ("address", "building", "floor", "room", "state", "balance", "relay", "keep_power", "alarm", "comm",
           "account", "tariff")
RELAY_ACTIONS = ("trip", "close", "keep_power_on", "keep_power_off")
STATE_COLOR = {"queued": "secondary", "sent": "info", "confirmed": "success", "failed": "danger",
               "expired": "warning", "cancelled": "dark"}


def _yes_no(value, lang: str):
    if value is None or pd.isna(value):
        return None
    return t("control.yes" if bool(value) else "control.no", lang)


def _relay(value, lang: str):
    if value is None or pd.isna(value):
        return None
    return t("meters.relay_closed" if bool(value) else "meters.relay_open", lang)


def _comm(value, lang: str) -> str:
    return t(f"control.comm_{value if value in ('online', 'lost') else 'unknown'}", lang)


def grid_rows(df: pd.DataFrame, lang: str, tariffs: dict[int, str]) -> list[dict]:
    """billing.control.live_meters as the grid's rowData (JSON-ready)."""
    rows = []
    for r in df.to_dict("records"):
        tid = r.get("tariff_id")
        tid = None if tid is None or pd.isna(tid) else int(tid)
        account = r.get("account_id")
        account = None if account is None or pd.isna(account) else int(account)
        fen = r.get("balance_fen")
        rows.append({
            "row_id": str(int(r["meter_id"])), "meter_id": int(r["meter_id"]), "address": str(r["address"]),
            "building": r["building"], "floor": None if pd.isna(r["floor"]) else int(r["floor"]), "room": r["room"],
            "state": r["state"], "state_label": t(f"overview.state_{r['state']}", lang),
            "balance_fen": None if fen is None or pd.isna(fen) else int(fen),
            "relay": _relay(r.get("relay_closed"), lang), "keep_power": _yes_no(r.get("keep_power"), lang),
            "alarm_level": None if pd.isna(r.get("alarm_level")) else int(r["alarm_level"]),
            "comm": _comm(r.get("comm_state"), lang),
            "account": None if account is None else f"{account} {r.get('holder_name') or ''}".strip(),
            "account_id": account, "tariff": tariffs.get(tid) if tid is not None else None, "tariff_id": tid,
        })
    return rows


def column_defs(lang: str) -> list[dict]:
    head = {c: t(f"control.col_{c}", lang) for c in COLUMNS}
    return [
        {"field": "address", "headerName": head["address"], "pinned": "left", "minWidth": 150},
        {"field": "building", "headerName": head["building"], "minWidth": 100},
        {"field": "floor", "headerName": head["floor"], "minWidth": 70, **NUMBER_COLUMN},
        {"field": "room", "headerName": head["room"], "minWidth": 90},
        {"field": "state_label", "headerName": head["state"], "minWidth": 130,
         "cellClass": {"function": "'mg-state st-' + params.data.state"}},
        {"field": "balance_fen", "headerName": head["balance"], "minWidth": 110, **NUMBER_COLUMN,
         "valueFormatter": {"function": "wlMoney(params.value)"},
         "filterValueGetter": {"function": "params.data.balance_fen == null ? null : params.data.balance_fen / 100"}},
        {"field": "relay", "headerName": head["relay"], "minWidth": 80},
        {"field": "keep_power", "headerName": head["keep_power"], "minWidth": 80},
        {"field": "alarm_level", "headerName": head["alarm"], "minWidth": 70, **NUMBER_COLUMN},
        {"field": "comm", "headerName": head["comm"], "minWidth": 90},
        {"field": "account", "headerName": head["account"], "minWidth": 110},
        {"field": "tariff", "headerName": head["tariff"], "minWidth": 100},
    ]


def _options(values, label=str) -> list[dict]:
    return [{"label": label(v), "value": v} for v in values]


def control_page(rows: list[dict], lang: str, *, buildings: list[str], floors: list[int], tariffs: dict[int, str],
                 selected: list[dict], batches: list[dict], zone: dt.tzinfo, linked=None) -> dbc.Container:
    """`linked`: what the page says of the meter its link (?meter=) named, under the selection's count."""
    any_ = t("control.any", lang)
    filters = dbc.Row([
        dbc.Col([dbc.Label(t("control.building", lang), html_for=ID.BUILDING, className="small mb-0"),
                 dcc.Dropdown(id=ID.BUILDING, options=_options(buildings), placeholder=any_)], xs=6, md=2),
        dbc.Col([dbc.Label(t("control.floor", lang), html_for=ID.FLOOR, className="small mb-0"),
                 dcc.Dropdown(id=ID.FLOOR, options=_options(floors), placeholder=any_)], xs=6, md=2),
        dbc.Col([dbc.Label(t("control.map_state", lang), html_for=ID.STATE, className="small mb-0"),
                 dcc.Dropdown(id=ID.STATE, options=[{"label": t(f"overview.state_{s}", lang), "value": s}
                                                    for s in MAP_STATES], placeholder=any_)], xs=6, md=2),
        dbc.Col([dbc.Label(t("control.account", lang), html_for=ID.ACCOUNT, className="small mb-0"),
                 dbc.Input(id=ID.ACCOUNT, type="text", maxLength=100, size="sm", debounce=True)], xs=6, md=2),
        dbc.Col([dbc.Label(t("control.tariff", lang), html_for=ID.TARIFF, className="small mb-0"),
                 dcc.Dropdown(id=ID.TARIFF, options=[{"label": n, "value": i} for i, n in tariffs.items()],
                              placeholder=any_)], xs=12, md=4),
    ], className="g-2 mb-2")
    numbers = html.Details([
        html.Summary(t("control.numbers", lang), className="small"),
        html.P(t("control.numbers_help", lang), className="small text-muted mb-1"),
        dbc.Textarea(id=ID.NUMBERS, rows=3, maxLength=80_000, className="mb-1"),
        dbc.Button(t("control.select_numbers", lang), id=ID.SELECT_NUMBERS, size="sm", color="secondary",
                   outline=True),
        html.Div(id=ID.NUMBERS_MESSAGE, role="status", className="small mt-1"),
    ], className="mb-2")
    grid = dag.AgGrid(
        id=ID.GRID, rowData=rows, columnDefs=column_defs(lang), selectedRows=selected,
        defaultColDef={"sortable": True, "filter": True, "resizable": True},
        getRowId="params.data.row_id", columnSize="responsiveSizeToFit",
        dashGridOptions={"localeText": grid_locale(lang), "animateRows": False,
                         "rowSelection": {"mode": "multiRow", "selectAll": "filtered", "headerCheckbox": True,
                                          "checkboxes": True, "enableClickSelection": False}},
        style={"height": "55vh", "width": "100%"}, className="ag-theme-quartz mb-2",
    )
    actions = html.Div([dbc.Button(t(f"control.action.{a}", lang), id=ID.action(a), size="sm",
                                   color="danger" if a == "trip" else "primary", outline=a != "trip",
                                   className="me-1 mb-1") for a in ACTIONS],
                       className="d-flex flex-wrap")
    form = dbc.Row([
        dbc.Col([dbc.Label(t("control.alarm1", lang), html_for=ID.ALARM1, className="small mb-0"),
                 dbc.Input(id=ID.ALARM1, type="text", inputMode="decimal", maxLength=20, size="sm")], xs=4, md=2),
        dbc.Col([dbc.Label(t("control.alarm2", lang), html_for=ID.ALARM2, className="small mb-0"),
                 dbc.Input(id=ID.ALARM2, type="text", inputMode="decimal", maxLength=20, size="sm")], xs=4, md=2),
        dbc.Col([dbc.Label(t("control.overload_w", lang), html_for=ID.OVERLOAD, className="small mb-0"),
                 dbc.Input(id=ID.OVERLOAD, type="text", inputMode="numeric", maxLength=20, size="sm")], xs=4, md=2),
    ], className="g-2 mb-2")
    confirm = dbc.Modal([
        dbc.ModalHeader(dbc.ModalTitle(t("control.confirm_title", lang))),
        dbc.ModalBody([
            html.Div(id=ID.CONFIRM_BODY),
            # the reason is asked here, beside what it is for (required for trip and keep power: billing.control)
            dbc.Label(t("control.reason", lang), html_for=ID.REASON, className="small mb-0"),
            dbc.Input(id=ID.REASON, type="text", maxLength=300, size="sm"),
            dbc.FormText(t("control.reason_help", lang)),
        ]),
        dbc.ModalFooter([
            dbc.Button(t("control.cancel", lang), id=ID.CLOSE_CONFIRM, color="secondary", outline=True),
            dbc.Button(t("control.confirm_again", lang), id=ID.SEND_ANYWAY, color="danger", style={"display": "none"}),
            dbc.Button(t("control.confirm_yes", lang), id=ID.SEND, color="primary"),
        ]),
    ], id=ID.CONFIRM, is_open=False)
    return dbc.Container([
        html.H1(t("control.heading", lang), className="h4"),
        html.H2(t("control.select_heading", lang), className="h6"),
        filters, numbers,
        html.Div(selected_text(len(selected), lang), id=ID.COUNT, role="status", className="fw-semibold small mb-1"),
        html.Div(linked, id=ID.LINKED, role="status", className="small mb-1"),
        grid,
        form, actions,
        html.Div([dbc.Button(t("control.export", lang), id=ID.EXPORT, size="sm", color="secondary", outline=True),
                  html.Span(id=ID.EXPORT_MESSAGE, role="status", className="small ms-2")], className="my-2"),
        html.Div(id=ID.MESSAGE, role="status", className="mb-2"),
        confirm, dcc.Store(id=ID.PENDING), dcc.Download(id=ID.DOWNLOAD),
        html.H2(t("control.batches", lang), className="h6 mt-3"),
        html.Div(batches_table(batches, lang, zone), id=ID.BATCHES),
    ], fluid=True, id=ID.PAGE)


def selected_text(count: int, lang: str) -> str:
    if count == 1:
        return t("control.selected_one", lang)
    return t("control.selected", lang, count=count) if count else t("control.none_selected", lang)


def linked_text(meter: str, lang: str) -> str:
    return t("control.linked", lang, meter=meter)


def confirm_text(action: str, count: int, lang: str) -> str:
    if count == 1:
        return t("control.confirm_one", lang, action=t(f"control.action.{action}", lang))
    return t("control.confirm_text", lang, action=t(f"control.action.{action}", lang), count=count)


def warnings_body(action: str, count: int, warnings, lang: str) -> list:
    return [html.P(confirm_text(action, count, lang)),
            *[dbc.Alert(t(f"control.warning.{w.code}", lang, count=len(w.meters),
                          meters=", ".join(w.meters[:10]) + (" …" if len(w.meters) > 10 else "")),
                        color="warning", className="small") for w in warnings]]


def batches_table(batches: list[dict], lang: str, zone: dt.tzinfo):
    if not batches:
        return html.P(t("control.no_batches", lang), className="text-muted small")
    header = [t(f"control.col_{c}", lang) for c in ("batch", "action", "operator", "created", "meters")]
    head = html.Thead(html.Tr([html.Th(h) for h in header]))
    body = html.Tbody([html.Tr(labelled_cells(header, [
        html.Td(dcc.Link(b["id"], href=f"/control/batch?id={b['id']}"), className="text-break"),
        t(f"control.action.{b['action']}", lang), b["operator"],
        show_local(site_time(b["created_at"], zone), "minutes"), b["meters"],
    ])) for b in batches])
    return html.Div(dbc.Table([head, body], size="sm", striped=True, className=f"small {STACK}"),
                    className="table-responsive")


def batch_page(batch_id: str, lang: str) -> dbc.Container:
    return dbc.Container([
        dcc.Link(t("control.back", lang), href="/control", className="small"),
        html.H1(t("control.batch_heading", lang, batch=batch_id), className="h5 mt-2"),
        dcc.Store(id=ID.BATCH_ID, data=batch_id),
        html.Div([dbc.Button(t("control.cancel_queued", lang), id=ID.BATCH_CANCEL, size="sm", color="secondary",
                             outline=True, className="me-1"),
                  dbc.Button(t("control.retry_failed", lang), id=ID.BATCH_RETRY, size="sm", color="primary")],
                 className="mb-2"),
        html.Div(id=ID.BATCH_MESSAGE, role="status", className="small mb-2"),
        html.Div(id=ID.BATCH_BODY),
        dcc.Interval(id=ID.BATCH_TICK, interval=2000, n_intervals=0),
    ], fluid=True, id=ID.BATCH_PAGE)


def batch_body(view: BatchView, lang: str, zone: dt.tzinfo) -> list:
    b = view.batch
    meta = t("control.batch_meta", lang, action=t(f"control.action.{b['action']}", lang), operator=b["operator"],
             created=show_local(site_time(b["created_at"], zone), "seconds"), meters=b["meters"],
             reason=b["reason"] or "—")
    counts = t("control.batch_counts", lang, **{s: view.counts.get(s, 0) for s in METER_STATES})
    header = [t(f"control.col_{c}", lang) for c in
              ("address", "building", "floor", "room", "state", "result", "error", "attempts", "at")]
    head = html.Thead(html.Tr([html.Th(h) for h in header]))
    body = html.Tbody([html.Tr(labelled_cells(header, [
        r["address"], r["building"], r["floor"], r["room"],
        dbc.Badge(t(f"control.state.{r['state']}", lang), color=STATE_COLOR[r["state"]],
                  className=f"cb-state cb-{r['state']}"),
        *_result_cells(r, lang), r["attempts"],
        show_local(site_time(r["at"], zone), "seconds") if r["at"] is not None else "",
    ]), **{"data-meter": r["address"], "data-state": r["state"]}) for r in view.rows])
    return [html.P(meta, className="small text-muted mb-1"), html.P(counts, className="fw-semibold small"),
            html.Div(dbc.Table([head, body], size="sm", className=f"small {STACK}"), className="table-responsive")]


def _result_cells(row: dict, lang: str) -> list:
    """The meter's result and why. A cancelled command is stored expired with result CANCELLED (the outbox's
    states are unchanged): the badge already says Cancelled, so the result stays empty and the why names who."""
    error = row["error"] or ""
    if row["state"] == "cancelled":
        who = error[len(CANCELLED_BY):] if error.startswith(CANCELLED_BY) else ""
        return [html.Td(""), html.Td(t("control.cancelled_by", lang, operator=who or "—"), className="text-break")]
    return [html.Td(row["result"] or ""), html.Td(error, className="text-break")]


def control_workbook(rows: list[dict], lang: str, zone: dt.tzinfo, read_at: dict[int, dt.datetime]) -> ExportWorkbook:
    """抄表导出: the selected meters' live state, one row each, balance as an exact number in yuan."""
    book = ExportWorkbook()
    headers = [t(f"control.col_{c}", lang) for c in COLUMNS]
    headers.append(t("clock.column", lang, name=t("meters.col_last_seen", lang), zone=zone_label(zone)))
    ws = book.add_sheet(t("control.export_sheet", lang), headers, widths=(15, 12, 7, 10, 16, 12, 10, 9, 8, 10, 16, 12, 20),
                        formats={5: MONEY, 12: DATETIME}, freeze="B2")
    for r in rows:
        seen = read_at.get(r["meter_id"])
        ws.append([r["address"], r["building"], r["floor"], r["room"], r["state_label"],
                   None if r["balance_fen"] is None else from_fen(r["balance_fen"]), r["relay"], r["keep_power"],
                   r["alarm_level"], r["comm"], r["account"], r["tariff"],
                   None if seen is None or pd.isna(seen) else site_time(pd.Timestamp(seen).to_pydatetime(), zone)])
    return book
