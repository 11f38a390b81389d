"""Accounts (/accounts, 开户/销户): the opening form, the account search and detail (meters, balances,
entries, closing progress, add a meter, carry an old meter's balance over, close), the customer card,
and the query of openings and closings. Pure builders; component ids come from dashboard.ids.Accounts."""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass

import dash_ag_grid as dag
import dash_bootstrap_components as dbc
from dash import dcc, html

from core.formatting import format_money
from dashboard.components.cashier import field, state_badge, when
from dashboard.components.grid import grid_locale
from dashboard.i18n import t
from dashboard.ids import Accounts as ID

STATUSES = ("open", "closing", "closed")


# ---------------------------------------------------------------------------------------------
def room_meter_options(meters: list[dict], lang: str) -> tuple[list[dict], list[str]]:
    """Checklist options of a room's meters (those an account cannot take are disabled) and the ones to tick."""
    options = [{"label": f"{m['address']} · {t('cashier.state.' + m['status'], lang)}", "value": m["address"],
                "disabled": not m["openable"]} for m in meters]
    return options, [m["address"] for m in meters if m["openable"]]


def open_form(buildings: list[str], tariffs: list[dict], lang: str) -> html.Div:
    tariff_options = [{"label": f"{x['name']} ({t('tariffs.mode.' + x['mode'], lang)})", "value": x["id"]}
                      for x in tariffs]
    return html.Div([
        dbc.Row([
            field(t("accounts.building", lang), dcc.Dropdown(id=ID.BUILDING, options=buildings,
                                                            placeholder=t("accounts.choose", lang)), ID.BUILDING,
                  xs=12, md=4),
            field(t("accounts.room", lang),
                  dcc.Dropdown(id=ID.ROOM, options=[], placeholder=t("accounts.choose", lang)), ID.ROOM, xs=12, md=4),
            field(t("accounts.tariff", lang), dcc.Dropdown(id=ID.TARIFF, options=tariff_options,
                                                          placeholder=t("accounts.default_tariff", lang)),
                  ID.TARIFF, xs=12, md=4),
        ], className="g-2 mb-2"),
        dbc.Row([
            field(t("accounts.meters", lang), dbc.Checklist(id=ID.ROOM_METERS, options=[], value=[]), ID.ROOM_METERS,
                  xs=12, md=6),
            field(t("accounts.extra_meters", lang), dbc.Input(id=ID.EXTRA_METERS, autoComplete="off"),
                  ID.EXTRA_METERS, xs=12, md=6),
        ], className="g-2 mb-2"),
        dbc.Row([
            field(t("accounts.holder", lang), dbc.Input(id=ID.HOLDER, autoComplete="off"), ID.HOLDER, xs=12, md=4),
            field(t("accounts.phone", lang), dbc.Input(id=ID.PHONE, type="tel", autoComplete="off"), ID.PHONE,
                  xs=12, md=4),
            field(t("accounts.national_id", lang), dbc.Input(id=ID.NATIONAL_ID, autoComplete="off", maxLength=18),
                  ID.NATIONAL_ID, xs=12, md=4),
        ], className="g-2 mb-2"),
        dbc.Button(t("accounts.open_button", lang), id=ID.OPEN, color="success", className="mb-3"),
        html.Div(id=ID.OPEN_RESULT, role="status"),
    ], className="pt-3")


def account_rows(rows: list[dict], lang: str) -> list[dict]:
    """billing.accounts.find_accounts rows for the grid (phone masked)."""
    from billing.pii import mask_phone
    return [{"id": r["id"], "holder": r["holder_name"], "phone": mask_phone(r["phone"]),
             "room": r["room"] or "", "building": r["building"] or "",
             "status": t(f"cashier.state.{r['status']}", lang)} for r in rows]


def _shown(visible: bool) -> dict | None:
    # Hidden, not left out: the page's callbacks name these ids as outputs and states, and Dash refuses (a
    # console error) a callback with a missing one. The server refuses the action itself whatever is shown.
    return None if visible else {"display": "none"}


def find_panel(lang: str, *, may_open: bool = True, may_close: bool = True, may_enter: bool = True) -> html.Div:
    status = [{"label": t("accounts.any_status", lang), "value": ""}] + [
        {"label": t(f"cashier.state.{s}", lang), "value": s} for s in STATUSES]
    grid = dag.AgGrid(
        id=ID.GRID, rowData=[], getRowId="params.data.id",
        columnDefs=[{"field": "id", "headerName": t("accounts.col_id", lang), "maxWidth": 90},
                    {"field": "holder", "headerName": t("accounts.col_holder", lang)},
                    {"field": "room", "headerName": t("accounts.col_room", lang)},
                    {"field": "building", "headerName": t("accounts.col_building", lang)},
                    {"field": "phone", "headerName": t("accounts.col_phone", lang)},
                    {"field": "status", "headerName": t("accounts.col_status", lang)}],
        defaultColDef={"sortable": True, "resizable": True, "minWidth": 90},
        columnSize="responsiveSizeToFit",
        dashGridOptions={"rowSelection": {"mode": "singleRow", "checkboxes": False, "enableClickSelection": True},
                         "localeText": grid_locale(lang), "animateRows": False},
        style={"height": "260px", "width": "100%"}, className="ag-theme-quartz mb-3")
    return html.Div([
        dbc.Row([
            dbc.Col(dbc.Input(id=ID.SEARCH, type="search", autoComplete="off",
                              placeholder=t("accounts.search_placeholder", lang)), xs=12, md=6),
            dbc.Col(dbc.Select(id=ID.STATUS, options=status, value="open"), xs=7, md=3),
            dbc.Col(dbc.Button(t("accounts.search", lang), id=ID.FIND, color="primary", className="w-100"),
                    xs=5, md=3),
        ], className="g-2 mb-2"),
        grid,
        html.Div(html.P(t("accounts.pick_account", lang), className="text-muted small"), id=ID.DETAIL),
        html.Div(actions_panel(lang, may_open=may_open, may_close=may_close, may_enter=may_enter), id=ID.ACTIONS,
                 style={"display": "none"}),
        dcc.Interval(id=ID.TICK, interval=1500, disabled=True),
    ], className="pt-3")


def actions_panel(lang: str, *, may_open: bool = True, may_close: bool = True, may_enter: bool = True) -> html.Div:
    """Add a meter, carry an old meter's balance over, the customer card (account.open; a balance typed in:
    transfer.entered), close the account (account.close): each shown only to an operator who may do it."""
    add = dbc.Card(dbc.CardBody([
        html.H3(t("accounts.add_meter", lang), className="h6"),
        dbc.InputGroup([dbc.Input(id=ID.ADD_METER, autoComplete="off"),
                        dbc.Button(t("accounts.add_button", lang), id=ID.ADD, color="primary")]),
    ]), className="mb-2", style=_shown(may_open), id=ID.ADD_BOX)
    entered_option = [{"label": t("accounts.transfer_entered", lang), "value": "entered"}] if may_enter else []
    transfer = dbc.Card(dbc.CardBody([
        html.H3(t("accounts.transfer", lang), className="h6"),
        dbc.Row([
            field(t("accounts.old_meter", lang), dbc.Input(id=ID.OLD_METER, autoComplete="off"), ID.OLD_METER,
                  xs=12, md=6),
            field(t("accounts.new_meter", lang), dcc.Dropdown(id=ID.NEW_METER, options=[], clearable=False),
                  ID.NEW_METER, xs=12, md=6),
        ], className="g-2 mb-2"),
        dbc.RadioItems(id=ID.TRANSFER_MODE, value="read", inline=True, className="mb-2", options=[
            {"label": t("accounts.transfer_read", lang), "value": "read"}] + entered_option,
            style=_shown(may_enter)),
        dbc.Row([
            field(t("cashier.amount", lang), dbc.Input(id=ID.TRANSFER_AMOUNT, inputMode="decimal", autoComplete="off"),
                  ID.TRANSFER_AMOUNT, xs=12, md=4),
            field(t("cashier.reason", lang), dbc.Input(id=ID.TRANSFER_REASON, autoComplete="off"),
                  ID.TRANSFER_REASON, xs=12, md=8),
        ], className="g-2 mb-2", style=_shown(may_enter)),
        html.P(t("accounts.transfer_help", lang), className="form-text"),
        dbc.Button(t("accounts.transfer_button", lang), id=ID.TRANSFER, color="primary"),
    ]), className="mb-2", style=_shown(may_open), id=ID.TRANSFER_BOX)
    card = dbc.Card(dbc.CardBody([
        html.H3(t("accounts.card", lang), className="h6"),
        html.P(t("accounts.card_help", lang), className="form-text"),
        dbc.Button([html.I(className="bi bi-qr-code me-1"), t("accounts.card_button", lang)], id=ID.CARD,
                   color="secondary", outline=True),
        html.Div(id=ID.CARD_PREVIEW, className="mt-2"),
        dcc.Store(id=ID.CARD_SVG), dcc.Store(id=ID.CARD_SAVED),
    ]), className="mb-2", style=_shown(may_open), id=ID.CARD_BOX)
    close = dbc.Card(dbc.CardBody([
        html.H3(t("accounts.close", lang), className="h6"),
        html.P(t("accounts.close_help", lang), className="form-text"),
        dbc.Input(id=ID.CLOSE_REASON, autoComplete="off", placeholder=t("cashier.reason", lang), className="mb-2"),
        dcc.ConfirmDialogProvider(dbc.Button(t("accounts.close_button", lang), id=ID.CLOSE, color="danger"),
                                  id=ID.CLOSE_CONFIRM, message=t("accounts.close_confirm", lang)),
        html.Hr(),
        html.H4(t("accounts.by_hand", lang), className="h6"),
        html.P(t("accounts.by_hand_help", lang), className="form-text"),
        dbc.Row([
            field(t("accounts.by_hand_meter", lang), dbc.Input(id=ID.HAND_METER, autoComplete="off",
                                                               inputMode="numeric"), ID.HAND_METER, xs=12, md=6),
            field(t("accounts.by_hand_amount", lang), dbc.Input(id=ID.HAND_AMOUNT, autoComplete="off",
                                                                inputMode="decimal"), ID.HAND_AMOUNT, xs=12, md=6),
            field(t("cashier.reason", lang), dbc.Input(id=ID.HAND_REASON, autoComplete="off"), ID.HAND_REASON,
                  xs=12),
        ], className="g-2 mb-2"),
        dcc.ConfirmDialogProvider(dbc.Button(t("accounts.by_hand_button", lang), id=ID.HAND, color="danger",
                                             outline=True),
                                  id=ID.HAND_CONFIRM, message=t("accounts.by_hand_confirm", lang)),
    ]), className="mb-2 border-danger", style=_shown(may_close), id=ID.CLOSE_BOX)
    return html.Div([
        html.Div(id=ID.ACTION_RESULT, role="status"),
        dbc.Row([dbc.Col([add, card], xs=12, lg=6), dbc.Col([transfer, close], xs=12, lg=6)], className="g-2"),
        html.Div(id=ID.RECEIPT, className="mt-2"),
        dcc.Store(id=ID.PRINTED),
    ])


def account_detail(detail: dict, lang: str, *, may_sell: bool = True) -> html.Div:
    """billing.desk.account_detail: the account, its meters and balances, closing progress, entries; a link to
    the desk for each meter of an open account when the operator may use the desk."""
    a = detail["account"]
    closing = detail["closing"]
    facts = [
        (t("accounts.col_id", lang), str(a.id)),
        (t("accounts.holder", lang), a.holder_name),
        (t("accounts.phone", lang), _masked_phone(a.phone)),
        (t("accounts.national_id", lang), html.Span(a.national_id_masked or "—", id=ID.NATIONAL_ID_SHOWN)),
        (t("accounts.room", lang), f"{a.building} {a.room}".strip() or "—"),
        (t("accounts.col_status", lang), html.Span(state_badge(a.status, lang), id=ID.DETAIL_STATUS,
                                                   **{"data-state": a.status})),
        (t("accounts.opened", lang), f"{when(a.opened_at)} · {a.operator}"),
    ]
    if a.closed_at:
        facts.append((t("accounts.closed", lang), when(a.closed_at)))
    meters = dbc.Table([
        html.Thead(html.Tr([html.Th(t("cashier.meter", lang)),
                            html.Th(t("cashier.balance", lang), className="text-end"),
                            html.Th(t("cashier.read_at", lang)), html.Th("")]
                           + ([html.Th(t("accounts.closing_step", lang))] if closing else []))),
        html.Tbody([html.Tr([
            html.Td(m.address, className="font-monospace"), html.Td(format_money(m.balance), className="text-end"),
            html.Td(when(m.reading_ts) if m.reading_ts else t("cashier.never_read", lang)),
            html.Td(dcc.Link(t("cashier.sell_button", lang), href=f"/sell?meter={m.address}")
                    if a.status == "open" and may_sell else ""),
        ] + ([html.Td(html.Span(state_badge(closing.get(m.address), lang), className="acc-closing-step",
                                **{"data-state": closing.get(m.address, "")}))] if closing else []))
            for m in a.meters]),
    ], size="sm", responsive=True, className="small")
    entries = detail["entries"]
    entry_table = dbc.Table([
        html.Thead(html.Tr([html.Th(t(f"cashier.col_{c}", lang)) for c in ("time", "kind", "amount", "receipt")]
                           + [html.Th(t("cashier.meter", lang), className="entry-meter-col"),
                              html.Th(t("cashier.col_state", lang))])),
        html.Tbody([html.Tr([
            html.Td(when(e["created_at"])), html.Td(t(f"billing.kind.{e['kind']}", lang)),
            html.Td(format_money(e["amount"]), className="text-end"),
            html.Td([dbc.Button(e["receipt_no"], id=ID.entry(e["receipt_no"]), color="link",
                                size="sm", className="p-0 font-monospace")]
                    # on a phone the meter column is left out; an account of several meters names it here
                    + ([html.Div(e["meter_address"], className="d-sm-none font-monospace text-muted")]
                       if len(a.meters) > 1 else []), className="entry-receipt"),
            html.Td(e["meter_address"], className="font-monospace entry-meter-col"),
            html.Td([state_badge(e["state"], lang)] + ([state_badge(e["command_state"], lang)]
                                                      if e["state"] == "pending" and e["command_state"] else [])),
        ]) for e in entries]),
    ], size="sm", striped=True, responsive=True, className="small text-nowrap latest-entries") if entries else \
        html.P(t("cashier.no_entries", lang), className="text-muted small")
    return html.Div(dbc.Card([
        dbc.CardHeader(t("accounts.detail", lang, id=a.id), className="fw-semibold"),
        dbc.CardBody([
            html.Dl([x for k, v in facts for x in (html.Dt(k, className="col-5 col-md-3 fw-normal text-muted"),
                                                    html.Dd(v, className="col-7 col-md-9 mb-1"))],
                    className="row small mb-2"),
            html.H3(t("accounts.meters", lang), className="h6"), meters,
            html.H3(t("accounts.entries", lang), className="h6"), entry_table,
        ]),
    ], className="mb-3"), id=ID.DETAIL_CARD, **{"data-account": str(a.id)})


def _masked_phone(phone: str | None) -> str:
    from billing.pii import mask_phone
    return mask_phone(phone) or "—"


def events_panel(buildings: list[str], operators: list[str], lang: str) -> html.Div:
    grid = dag.AgGrid(
        id=ID.EV_GRID, rowData=[], getRowId="params.data.id",
        columnDefs=[{"field": "id", "headerName": t("accounts.col_id", lang), "maxWidth": 90},
                    {"field": "when", "headerName": t("accounts.col_when", lang), "minWidth": 160},
                    {"field": "holder", "headerName": t("accounts.col_holder", lang)},
                    {"field": "room", "headerName": t("accounts.col_room", lang)},
                    {"field": "building", "headerName": t("accounts.col_building", lang)},
                    {"field": "meters", "headerName": t("accounts.meters", lang), "minWidth": 140},
                    {"field": "operator", "headerName": t("accounts.col_operator", lang)},
                    {"field": "status", "headerName": t("accounts.col_status", lang)}],
        defaultColDef={"sortable": True, "resizable": True, "filter": True, "minWidth": 90},
        columnSize="responsiveSizeToFit",
        dashGridOptions={"localeText": grid_locale(lang), "animateRows": False, "pagination": True,
                         "paginationPageSize": 50},
        style={"height": "60vh", "width": "100%"}, className="ag-theme-quartz")
    return html.Div([
        dbc.Row([
            field(t("accounts.event", lang), dbc.Select(id=ID.EV_KIND, value="opened", options=[
                {"label": t("accounts.event_opened", lang), "value": "opened"},
                {"label": t("accounts.event_closed", lang), "value": "closed"}]), ID.EV_KIND, xs=6, md=2),
            field(t("records.from", lang), dbc.Input(id=ID.EV_FROM, type="date"), ID.EV_FROM, xs=6, md=2),
            field(t("records.to", lang), dbc.Input(id=ID.EV_TO, type="date"), ID.EV_TO, xs=6, md=2),
            field(t("accounts.building", lang), dcc.Dropdown(id=ID.EV_BUILDING, options=buildings,
                                                            placeholder=t("records.any", lang)), ID.EV_BUILDING,
                  xs=6, md=2),
            field(t("accounts.col_operator", lang), dcc.Dropdown(id=ID.EV_OPERATOR, options=operators,
                                                                placeholder=t("records.any", lang)),
                  ID.EV_OPERATOR, xs=6, md=2),
            field(t("records.text", lang), dbc.Input(id=ID.EV_TEXT, type="search", autoComplete="off"), ID.EV_TEXT,
                  xs=6, md=2),
        ], className="g-2 mb-2"),
        dbc.Button(t("accounts.search", lang), id=ID.EV_SEARCH, color="primary", className="mb-2"),
        html.Div(id=ID.EV_COUNT, className="text-muted small mb-1", role="status"),
        grid,
    ], className="pt-3")


def event_rows(rows: list[dict], event: str, lang: str) -> list[dict]:
    return [{"id": r["id"], "when": when(r["opened_at"] if event == "opened" else r["closed_at"]),
             "holder": r["holder_name"], "room": r["room"] or "", "building": r["building"] or "",
             "meters": " ".join(r["meters"]),
             "operator": (r["operator"] if event == "opened" else r["closed_by"]) or "",
             "status": t(f"cashier.state.{r['status']}", lang)} for r in rows]


def approval_list(requests: list, lang: str) -> html.Div:
    """billing.transfers.transfers_awaiting: each entered transfer waiting for a second operator."""
    if not requests:
        return html.P(t("accounts.no_approvals", lang), className="text-muted small", id=ID.NO_APPROVALS)
    cols = ("request", "account", "old_meter", "new_meter", "amount", "reason", "requested_by")
    return dbc.Table([
        html.Thead(html.Tr([html.Th(t(f"accounts.approval_col.{c}", lang)) for c in cols])),
        html.Tbody([html.Tr([
            html.Td(str(r.id), className="font-monospace"),
            html.Td(f"{r.account_id} · {r.holder} · {r.room}".strip(" ·")),
            html.Td([html.Span(r.old_address, className="font-monospace me-1"),
                     html.Span(t("accounts.old_meter_unknown", lang), className="badge text-bg-light")
                     if not r.old_known else ""]),
            html.Td(r.new_address, className="font-monospace"),
            html.Td(format_money(r.amount), className="text-end"),
            html.Td(r.reason),
            html.Td(f"{r.requested_by} · {when(r.requested_at)}"),
        ], **{"data-request": str(r.id)}) for r in requests]),
    ], size="sm", striped=True, responsive=True, className="small", id=ID.APPROVAL_TABLE)


def approval_options(requests: list) -> list[dict]:
    return [{"label": f"{r.id} · {r.old_address} → {r.new_address} · {format_money(r.amount)}", "value": r.id}
            for r in requests]


def approvals_panel(requests: list, lang: str) -> html.Div:
    """Entered transfers above the site's approval amount: a second operator approves or rejects each."""
    return html.Div([
        html.P(t("accounts.approvals_help", lang), className="form-text"),
        html.Div(approval_list(requests, lang), id=ID.APPROVAL_LIST),
        dbc.Row([
            field(t("accounts.approval_pick", lang),
                  dcc.Dropdown(id=ID.APPROVAL_PICK, options=approval_options(requests),
                               placeholder=t("accounts.choose", lang)), ID.APPROVAL_PICK, xs=12, md=5),
            field(t("accounts.approval_note", lang), dbc.Input(id=ID.APPROVAL_NOTE, autoComplete="off"),
                  ID.APPROVAL_NOTE, xs=12, md=7),
        ], className="g-2 mb-2"),
        dbc.Button(t("accounts.approve_button", lang), id=ID.APPROVE, color="success", className="me-2"),
        dbc.Button(t("accounts.reject_button", lang), id=ID.REJECT, color="danger", outline=True, className="me-2"),
        dbc.Button(t("accounts.approvals_refresh", lang), id=ID.APPROVAL_REFRESH, color="secondary", outline=True),
        html.Div(id=ID.APPROVAL_RESULT, role="status", className="mt-2"),
    ], className="pt-3")


def accounts_page(lang: str, *, may_open: bool, may_find: bool = True, approvals: list | None = None,
                  buildings: list[str], tariffs: list[dict], operators: list[str], may_close: bool = True,
                  may_enter: bool = True) -> dbc.Container:
    """The page's tabs by what the operator may do; `approvals` (None: not theirs to decide) the waiting requests."""
    tabs = []
    if may_open:
        tabs.append(dbc.Tab(open_form(buildings, tariffs, lang), label=t("accounts.tab_open", lang), tab_id="open"))
    if may_find:
        tabs += [dbc.Tab(find_panel(lang, may_open=may_open, may_close=may_close, may_enter=may_enter), label=t("accounts.tab_find", lang), tab_id="find"),
                 dbc.Tab(events_panel(buildings, operators, lang), label=t("accounts.tab_events", lang),
                         tab_id="events")]
    if approvals is not None:
        label = t("accounts.tab_approvals", lang) + (f" ({len(approvals)})" if approvals else "")
        tabs.append(dbc.Tab(approvals_panel(approvals, lang), label=label, tab_id=ID.APPROVALS))
    active = "open" if may_open else "find" if may_find else ID.APPROVALS
    return dbc.Container([
        html.H1(t("accounts.heading", lang), className="h4"),
        dbc.Tabs(tabs, id=ID.TABS, active_tab=active),
        dcc.Store(id=ID.SELECTED),
    ], fluid=True, id=ID.PAGE)


# ---------------------------------------------------------------------------------------------
# the customer card: an SVG the browser turns into a PNG (no imaging library on the server)
CARD_WIDTH = 600
_TEXT_X, _TEXT_RIGHT = 320, 580          # the text column, right of the QR code (20..300)
_MARGIN = 24                             # below the last line and the QR code
_FONT = ('font-family="system-ui, -apple-system, \'Segoe UI\', Roboto, \'PingFang SC\', \'Hiragino Sans GB\', '
         '\'Microsoft YaHei\', \'Noto Sans CJK SC\', sans-serif"')


@dataclass(frozen=True)
class CardSvg:
    svg: str
    width: int
    height: int


def _char_width(ch: str) -> float:
    """An upper bound of a character's advance in em in the fonts the card names: the server has no font metrics,
    so lines are measured with these and wrapped before they could reach the card's edge."""
    if unicodedata.east_asian_width(ch) in ("W", "F"):
        return 1.0
    if ch == " ":
        return 0.32
    if ch.isupper() or ch in "mwMW@%&":
        return 0.86
    return 0.62


def text_width(text: str, size: float) -> float:
    return sum(_char_width(ch) for ch in text) * size


def wrap_text(text: str, size: float, width: float) -> list[str]:
    """`text` in lines no wider than `width` (by text_width), broken at spaces where it can, else anywhere."""
    lines: list[str] = []
    line = ""
    for word in text.split(" "):
        candidate = f"{line} {word}" if line else word
        if text_width(candidate, size) <= width:
            line = candidate
            continue
        if line:
            lines.append(line)
        line = ""
        for ch in word:   # a word wider than the line (a long name without spaces): broken where it must be
            if text_width(line + ch, size) > width and line:
                lines.append(line)
                line = ""
            line += ch
    if line or not lines:
        lines.append(line)
    return lines


def card_svg(card: dict, lang: str, title: str) -> CardSvg:
    """The card: the QR code of the customer page at the left; the title, the holder (masked), the room and every
    meter at the right, each line measured and wrapped to the card's width; the card is as tall as its text."""
    from markupsafe import escape
    matrix = card["matrix"]
    scale = 280 / len(matrix)
    path = "".join(f"M{x},{y}h1v1h-1z" for y, row in enumerate(matrix) for x, dark in enumerate(row) if dark)
    width = _TEXT_RIGHT - _TEXT_X
    text: list[str] = []
    y = 20.0

    def add(value: str, size: float, gap: float, attrs: str = "") -> None:
        nonlocal y
        y += gap
        for line in wrap_text(value, size, width):
            y += size * 1.25
            text.append(f'<text x="{_TEXT_X}" y="{y:.1f}" font-size="{size:g}" {attrs}{_FONT}>{escape(line)}</text>')

    add(title, 24, 4, 'font-weight="600" ')
    add(t("accounts.card_scan", lang), 14, 4, 'fill="#5b6775" ')
    meters = card["meters"]
    for label, value, size in ((t("accounts.card_holder", lang), card["holder"], 20),
                               (t("accounts.room", lang), f"{card['building']} {card['room']}".strip() or "—", 20),
                               (t("accounts.meters", lang), " ".join(meters) or "—", 16)):
        add(label, 13, 14, 'fill="#5b6775" ')
        add(value, size, 2)
    height = int(max(30 + 280, y + 6) + _MARGIN)   # 6: a descender below the last baseline
    svg = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{CARD_WIDTH}" height="{height}" '
           f'viewBox="0 0 {CARD_WIDTH} {height}">'
           f'<rect x="0.5" y="0.5" width="{CARD_WIDTH - 1}" height="{height - 1}" rx="16" fill="#ffffff" '
           f'stroke="#c9d1d9"/>'
           f'<g transform="translate(20 30) scale({scale:.4f})" shape-rendering="crispEdges">'
           f'<path d="{path}" fill="#000"/></g>{"".join(text)}</svg>')
    return CardSvg(svg, CARD_WIDTH, height)
