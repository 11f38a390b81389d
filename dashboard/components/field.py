"""The worker's phone pages as builders: my orders, one order (customer, meter, confirmation, operating card,
materials and fees, evidence), messages, and the office's list of workers' terminals. Narrow by design: one column
at 390 px, long words allowed to break, no table wider than the screen."""
from __future__ import annotations

import datetime as dt
from urllib.parse import quote

import dash_bootstrap_components as dbc
from dash import dcc, html

from core.clock import site_time
from core.formatting import format_money
from dashboard.i18n import t
from dashboard.ids import FieldOrder as FO, Messages as MS, Terminals as TM, Work as W

FLAG_COLOR = {"overdue": "danger", "due_soon": "warning"}
APP_VERSION = "web-1"


def _when(moment: dt.datetime | None, zone: dt.tzinfo) -> str:
    return site_time(moment, zone).strftime("%Y-%m-%d %H:%M") if moment else "-"


def type_name(types: dict[str, dict], key: str, lang: str) -> str:
    row = types.get(key)
    return (row[f"name_{lang}"] if row else key) or key


def field_root(lang: str, csrf: str, defer_bytes: int, chunk_bytes: int, report_seen: bool = True) -> html.Div:
    """What assets/field.js reads: the session's form token, the upload sizes, its texts in the page's language;
    the phone reports itself (terminal) while this is on the page, unless `report_seen` is False (an office
    desk writing a message is no worker's phone)."""
    texts = {f"data-t-{k}": t(f"field.js.{k}", lang) for k in (
        "queued", "sending", "sent", "failed", "retry", "large", "none_queued", "camera_missing", "scanned",
        "refused", "offline")}
    return html.Div(id=W.FIELD, className="d-none", **{
        "data-csrf": csrf, "data-defer-bytes": str(defer_bytes), "data-chunk-bytes": str(chunk_bytes),
        "data-app-version": APP_VERSION, "data-seen": "1" if report_seen else "0"}, **texts)


def _flag(flag: str | None, lang: str, ident: str | None = None):
    if not flag:
        return None
    return dbc.Badge(t(f"workorder.flag.{flag}", lang), color=FLAG_COLOR[flag], className="ms-1",
                     **({"id": ident} if ident else {}))


# --- my orders ---------------------------------------------------------------------------------------------
FIRST_CARDS = 30   # drawn with the page; the rest on "more" (React drawing 200 cards took most of the phone's 2 s)


def order_card(r: dict, types: dict[str, dict], lang: str, zone: dt.tzinfo) -> html.A:
    """One order of the list: plain elements (no Link, no Badge components), a full navigation to the order."""
    place = " · ".join(x for x in (r.get("building_name"), r.get("room_name"), r.get("location")) if x)
    flag = r.get("flag")
    lines = [type_name(types, r["type"], lang) + " · " + t(f"workorder.priority.{r['priority']}", lang),
             r.get("customer_name") or "-", place, t("field.due", lang, when=_when(r["due_at"], zone))]
    return html.A([
        html.Strong(r["number"]), " ",
        html.Span(t(f"workorder.state.{r['state']}", lang), className="badge bg-secondary"), " ",
        html.Span(t(f"workorder.flag.{flag}", lang), className=f"badge bg-{FLAG_COLOR[flag]}") if flag else None,
        html.Div(html.Small([x for line in lines if line for x in (line, html.Br())][:-1]), className="text-break"),
    ], href=f"/work/order?id={r['id']}", id=W.order_card(r["id"]),
        className="list-group-item list-group-item-action" + (f" border-start border-4 border-{FLAG_COLOR[flag]}"
                                                              if flag else ""))


def orders_list(rows: list[dict], types: dict[str, dict], lang: str, zone: dt.tzinfo, unread: int,
                first: int | None = None) -> list:
    """The worker's orders, soonest due first, due soon and overdue flagged: the first `first` drawn, the rest
    kept in the page (a store the browser does not draw) and added below them, in order, by the "more" button
    (dashboard/pages/work.py: in the browser, no request)."""
    head = html.Div([
        html.H1(t("field.my_orders", lang), className="h4 mb-0"),
        dcc.Link([t("messages.nav", lang), " ", dbc.Badge(str(unread), color="primary", pill=True) if unread else None],
                 href="/messages", id=W.MESSAGES_LINK),
    ], className="d-flex justify-content-between align-items-baseline mb-2")
    first = FIRST_CARDS if first is None else first
    shown = [order_card(r, types, lang, zone) for r in rows[:first]]
    rest = [order_card(r, types, lang, zone) for r in rows[first:]]
    more = html.Button(t("field.more", lang, n=len(rest)), id=W.MORE, type="button", hidden=not rest,
                       className="btn btn-outline-primary w-100 mt-2")
    empty = dbc.Alert(t("field.no_orders", lang), color="light", id=W.EMPTY) if not rows else None
    return [head, empty, html.Div(shown, className="list-group", id=W.LIST), more, dcc.Store(id=W.REST, data=rest)]


# --- one order -----------------------------------------------------------------------------------------
def map_link(order: dict, lang: str):
    """A geo: URI (the phone's own map app, no tiles from here) by coordinates, else by the address as a query."""
    label = order.get("location") or order.get("customer_name") or order["number"]
    if order.get("lat") is not None and order.get("lon") is not None:
        href = f"geo:{order['lat']:.6f},{order['lon']:.6f}?q={order['lat']:.6f},{order['lon']:.6f}({quote(label)})"
    elif order.get("location"):
        href = f"geo:0,0?q={quote(order['location'])}"
    else:
        return None
    return html.A(t("field.open_map", lang), href=href, id=FO.MAP_LINK, className="btn btn-outline-secondary btn-sm")


def _meter(meter: dict | None, lang: str, zone: dt.tzinfo):
    if meter is None:
        return None
    relay = meter.get("relay_closed")
    relay_text = t("field.relay_on", lang) if relay else t("field.relay_off", lang) if relay is not None else "-"
    balance = format_money(meter["balance"]) if meter.get("balance") is not None else "-"
    return dbc.Card(dbc.CardBody([
        html.H2(t("field.meter", lang), className="h6"),
        html.Div(t("field.meter_line", lang, address=meter["address"], balance=balance, relay=relay_text),
                 className="text-break"),
        html.Div(t("field.meter_read", lang, when=_when(meter.get("ts"), zone),
                   comm=t(f"field.comm.{meter.get('comm_state') or 'unknown'}", lang)), className="small text-muted"),
    ]), className="mb-2", id=FO.METER)


# which of the worker's own transitions each state offers (the core decides whether they are allowed)
WORKER_ACTIONS = {"dispatched": ("accept", "decline"), "accepted": ("hold",), "on_site": ("hold",),
                  "on_hold": ("release",), "rejected": ("rework",)}


def _actions(order: dict, lang: str):
    names = WORKER_ACTIONS.get(order["state"], ())
    if not names:
        return None
    needs_reason = any(n in ("decline", "hold") for n in names)
    return html.Div([
        dbc.Input(id=FO.REASON, placeholder=t("field.reason", lang), maxLength=500, type="text",
                  className="mb-1" if needs_reason else "d-none"),
        html.Div([dbc.Button(t(f"workorder.action.{n}", lang), id={"type": FO.ACTION, "action": n},
                             color="primary" if n in ("accept", "rework", "release") else "outline-secondary",
                             size="sm", className="me-1 mb-1") for n in names]),
    ], className="mb-2")


def _confirm_panel(order: dict, lang: str):
    """Arrival (accepted) or completion (on site): the customer's QR code, scanned or typed; at completion the
    customer's signature and rating too."""
    stage = {"accepted": "arrival", "on_site": "completion"}.get(order["state"])
    if stage is None:
        return None
    parts = [
        html.H2(t(f"field.confirm_{stage}", lang), className="h6"),
        html.P(t("field.confirm_help", lang), className="small text-muted mb-1"),
        dbc.InputGroup([
            dbc.Input(id=FO.QR_INPUT, placeholder=t("field.qr_placeholder", lang), type="text", maxLength=300,
                      autoComplete="off"),
            dbc.Button(t("field.scan", lang), id=FO.SCAN, color="outline-secondary", className="d-none"),
        ], className="mb-1"),
        html.Div(t("field.scan_typed", lang), id=FO.SCAN_NOTE, className="small text-muted mb-1"),
        html.Video(id=FO.SCAN_VIDEO, className="d-none w-100 mb-1", muted=True),
        dcc.Store(id=FO.STAGE, data=stage),
    ]
    if stage == "completion":
        parts += [
            html.Label(t("field.signature", lang), className="form-label small mb-0"),
            html.Canvas(id=FO.SIGNATURE, className="field-signature border rounded w-100 mb-1", height=160),
            dbc.Button(t("field.signature_clear", lang), id=FO.SIGNATURE_CLEAR, color="link", size="sm",
                       className="p-0 mb-1"),
            html.Label(t("field.rating", lang), className="form-label small mb-0 d-block"),
            dbc.RadioItems(id=FO.RATING, inline=True, className="mb-1",
                           options=[{"label": str(n), "value": n} for n in range(1, 6)]),
        ]
    else:
        parts.append(dbc.RadioItems(id=FO.RATING, options=[], className="d-none"))
    parts += [dbc.Button(t(f"field.confirm_{stage}_button", lang), id=FO.CONFIRM, color="success",
                         className="w-100"),
              dcc.Store(id=FO.CONFIRM_REQUEST)]
    return dbc.Card(dbc.CardBody(parts), className="mb-2", id=FO.CONFIRM_PANEL)


def _steps(steps: list[dict], lang: str, editable: bool):
    if not steps:
        return None
    items = []
    for s in steps:
        text = s[f"text_{lang}"] or s["text_en"]
        if s["kind"] == "hazard":
            items.append(html.Li([dbc.Badge(t("field.hazard", lang), color="danger", className="me-1"), text],
                                 className="list-group-item small"))
            continue
        items.append(html.Li([
            dbc.Checkbox(id={"type": FO.STEP_DONE, "step": s["id"]}, value=bool(s["done"]), label=text,
                         disabled=not editable),
            dbc.InputGroup([
                dbc.Input(id={"type": FO.STEP_VALUE, "step": s["id"]}, value=s.get("value") or "", maxLength=200,
                          placeholder=t("field.step_value", lang), size="sm", disabled=not editable),
            ], size="sm", className="mt-1") if s["needs_value"] else dbc.Input(
                id={"type": FO.STEP_VALUE, "step": s["id"]}, value="", className="d-none"),
            dbc.Button(t("field.save", lang), id={"type": FO.STEP_SAVE, "step": s["id"]}, size="sm",
                       color="link", className="p-0", disabled=not editable),
            html.Span(id={"type": FO.STEP_MESSAGE, "step": s["id"]}, className="small ms-1"),
        ], className="list-group-item"))
    return html.Div([html.H2(t("field.card", lang), className="h6"), html.Ul(items, className="list-group mb-2")])


def _new_line(catalogue: list[dict], lang: str) -> html.Div:
    """A new material line: picked from the type's catalogue (its unit price shown) or typed by name."""
    picks = [{"label": t("field.new_line_typed", lang), "value": ""}] + [
        {"label": f"{i[f'text_{lang}'] or i['text_en']} ({i.get('unit') or '-'}) · {format_money(i['unit_price'] or 0)}",
         "value": str(i["id"])} for i in catalogue]
    return html.Div([
        html.H3(t("field.new_line", lang), className="h6 mt-2"),
        dbc.Select(id=FO.NEW_PICK, options=picks, value="", className="mb-1", size="sm"),
        dbc.Input(id=FO.NEW_NAME, placeholder=t("field.new_line_name", lang), maxLength=300, size="sm",
                  className="mb-1"),
        dbc.InputGroup([
            dbc.Input(id=FO.NEW_QTY, placeholder=t("field.new_line_qty", lang), inputMode="decimal", maxLength=20),
            dbc.Input(id=FO.NEW_PRICE, placeholder=t("field.new_line_price", lang), inputMode="decimal",
                      maxLength=20),
            dbc.Button(t("field.new_line_add", lang), id=FO.NEW_ADD, color="outline-primary"),
        ], size="sm"),
    ], className="field-new-line")


def _materials(materials: list[dict], totals: dict, lang: str, editable: bool, catalogue: list[dict] = ()):
    rows = []
    for m in materials:
        if m["kind"] == "tool":
            rows.append(html.Li([dbc.Badge(t("field.tool", lang), color="info", className="me-1"),
                                 m[f"text_{lang}"] or m["text_en"]], className="list-group-item small"))
            continue
        rows.append(html.Li([
            html.Div([m[f"text_{lang}"] or m["text_en"], html.Span(f" ({m.get('unit') or '-'})",
                                                                    className="text-muted")], className="small"),
            html.Div([
                dbc.Input(id={"type": FO.MATERIAL_QTY, "material": m["id"]}, value=str(m["quantity"].normalize()
                          if hasattr(m["quantity"], "normalize") else m["quantity"]), size="sm", inputMode="decimal",
                          className="field-qty", disabled=not editable, maxLength=20),
                html.Span("×", className="mx-1"),
                dbc.Input(id={"type": FO.MATERIAL_PRICE, "material": m["id"]}, value=f"{m['unit_price']:.2f}",
                          size="sm", inputMode="decimal", className="field-qty", disabled=not editable, maxLength=20),
                dbc.Button(t("field.save", lang), id={"type": FO.MATERIAL_SAVE, "material": m["id"]}, size="sm",
                           color="link", className="p-0 ms-1", disabled=not editable),
                dbc.Button(t("field.remove", lang), id={"type": FO.MATERIAL_REMOVE, "material": m["id"]},
                           size="sm", color="link", className="p-0 ms-2 text-danger")
                if editable and m.get("added_by") else None,
            ], className="d-flex align-items-center"),
            html.Div(id={"type": FO.MATERIAL_MESSAGE, "material": m["id"]}, className="small"),
        ], className="list-group-item"))
    fee = html.Div([
        html.H3(t("field.collect_fee", lang), className="h6 mt-2"),
        dbc.InputGroup([
            dbc.Input(id=FO.FEE_AMOUNT, placeholder="0.00", inputMode="decimal", maxLength=20),
            dbc.Select(id=FO.FEE_METHOD, value="cash", options=[
                {"label": t(f"field.method.{k}", lang), "value": k} for k in ("cash", "card", "transfer")]),
            dbc.Button(t("field.collect", lang), id=FO.FEE_COLLECT, color="outline-primary"),
        ], size="sm"),
    ]) if editable else None
    return html.Div([
        html.H2(t("field.materials", lang), className="h6"),
        html.Ul(rows, className="list-group mb-1") if rows else None,
        totals_line(totals, lang),
        _new_line(list(catalogue), lang) if editable else None,
        fee,
    ], className="mb-2")


def totals_line(totals: dict, lang: str) -> html.Div:
    return html.Div(t("field.totals", lang, materials=format_money(totals["materials"]),
                      services=format_money(totals["services"]), total=format_money(totals["total"]),
                      collected=format_money(totals["collected"]), outstanding=format_money(totals["outstanding"])),
                    id=FO.TOTALS, className="small text-break")


def evidence_list(rows: list[dict], lang: str, zone: dt.tzinfo) -> list:
    if not rows:
        return [html.P(t("field.no_evidence", lang), className="small text-muted mb-1")]
    items = []
    for e in rows:
        href = f"/_field/evidence/{e['id']}"
        thumb = (html.Img(src=href, className="field-thumb me-2", alt=e.get("name") or e["kind"])
                 if e["mime"].startswith("image/") else None)
        exif = (t("field.exif_time", lang, when=e["taken_at"].strftime("%Y-%m-%d %H:%M")) if e.get("taken_at")
                else "")
        items.append(html.Li(html.A([thumb, html.Span([
            t(f"field.kind.{e['kind']}", lang), f" · {_when(e['received_at'], zone)} · {e['uploaded_by']}",
            html.Br(), html.Span(exif, className="text-muted")], className="small text-break")],
            href=href, className="d-flex align-items-center text-reset"),
            className="list-group-item"))
    return [html.Ul(items, className="list-group mb-1")]


def _evidence(view: dict, lang: str, zone: dt.tzinfo, editable: bool):
    steps = [s for s in view["steps"] if s["kind"] == "step"]
    upload = html.Div([
        html.Div(id=FO.FILE_SLOT, className="mb-1"),   # assets/field.js puts the file input here (Dash has none)
        dbc.Select(id=FO.FILE_STEP, value="", className="mb-1", options=[{"label": t("field.no_step", lang),
                                                                            "value": ""}] +
                   [{"label": f"{s['seq']}. {(s[f'text_{lang}'] or s['text_en'])[:40]}", "value": str(s["seq"])}
                    for s in steps]),
        html.Div([
            dbc.Button(t("field.send_now", lang), id=FO.SEND_NOW, color="primary", size="sm", className="me-1 mb-1"),
            dbc.Button(t("field.send_later", lang), id=FO.SEND_LATER, color="outline-secondary", size="sm",
                       className="me-1 mb-1"),
            dbc.Button(t("field.send_queued", lang), id=FO.SEND_QUEUED, color="outline-primary", size="sm",
                       className="mb-1"),
        ]),
        html.Ul(id=FO.QUEUE, className="list-unstyled small mb-1"),
        html.Div(id=FO.UPLOAD_STATUS, className="small", role="status"),
    ]) if editable else None
    return html.Div([
        html.H2(t("field.evidence", lang), className="h6"),
        html.Div(evidence_list(view["evidence"], lang, zone), id=FO.EVIDENCE_LIST),
        upload,
        dcc.Store(id=FO.UPLOADED, data=0),
    ], className="mb-2", id=FO.EVIDENCE)


EDITABLE = ("accepted", "on_site", "rejected")


def order_body(view: dict, types: dict[str, dict], lang: str, zone: dt.tzinfo) -> list:
    o = view["order"]
    editable = o["state"] in EDITABLE
    confirmed = [t(f"field.confirmed_{c['stage']}", lang, when=_when(c["confirmed_at"], zone)) +
                 (f" · {'★' * c['rating']}" if c.get("rating") else "") for c in view.get("confirmations", [])]
    return [
        html.Div([
            html.H1(o["number"], className="h5 mb-0 text-break"),
            dbc.Badge(t(f"workorder.state.{o['state']}", lang), color="secondary", id=FO.STATE, className="ms-1"),
            _flag(view.get("flag"), lang, FO.FLAG),
        ], className="d-flex flex-wrap align-items-center gap-1"),
        html.Div(type_name(types, o["type"], lang) + " · " + t(f"workorder.priority.{o['priority']}", lang) + " · " +
                 t("field.due", lang, when=_when(o["due_at"], zone)), className="small mb-1"),
        html.P(o["description"], className="small text-break mb-2"),
        html.Div([html.Div(c, className="small text-success") for c in confirmed]) if confirmed else None,
        _actions(o, lang),
        dbc.Card(dbc.CardBody([
            html.H2(t("field.customer", lang), className="h6"),
            html.Div(o.get("customer_name") or "-", className="text-break"),
            html.A(o["customer_phone"], href=f"tel:{o['customer_phone']}") if o.get("customer_phone") else None,
            html.Div(o.get("location") or "", className="small text-muted text-break"),
            html.Div(o.get("pole_number") and t("field.pole", lang, pole=o["pole_number"]), className="small"),
            map_link(o, lang),
        ]), className="mb-2"),
        _meter(view.get("meter"), lang, zone),
        _confirm_panel(o, lang),
        _steps(view["steps"], lang, editable),
        _materials(view["materials"], view["totals"], lang, editable, view.get("catalogue") or ()),
        _evidence(view, lang, zone, editable or o["state"] in ("on_hold", "completed")),
    ]


# --- messages ----------------------------------------------------------------------------------------------
def message_text(m: dict, lang: str) -> tuple[str, str]:
    """(subject, body) as shown: a reminder is written in the reader's language from its stage and order."""
    if m["kind"] == "reminder":
        stage, _, number = m["subject"].partition("|")
        return (t(f"messages.reminder_{stage}", lang, number=number),
                t("messages.reminder_body", lang, number=number, due=m["body"]))
    return m["subject"], m["body"]


def messages_list(rows: list[dict], me: str, lang: str, zone: dt.tzinfo) -> list:
    if not rows:
        return [html.P(t("messages.none", lang), className="text-muted")]
    items = []
    for m in rows:
        subject, body = message_text(m, lang)
        unread = m["recipient"] == me and m["read_at"] is None
        who = (t("messages.from", lang, name=m["sender"] if m["sender"] != "system" else t("messages.system", lang))
               if m["recipient"] == me else t("messages.to", lang, name=m["recipient"]))
        files = [html.A(t("messages.attachment", lang, n=i + 1), href=f"/_field/evidence/{eid}",
                        className="me-2") for i, eid in enumerate(m["attachments"])]
        items.append(html.Li([
            html.Div([html.Strong(subject, className="text-break"),
                      dbc.Badge(t("messages.unread", lang), color="primary", className="ms-1") if unread else None,
                      dbc.Badge(t("messages.reminder", lang), color="warning", className="ms-1")
                      if m["kind"] == "reminder" else None]),
            html.Div(f"{who} · {_when(m['sent_at'], zone)}", className="small text-muted"),
            html.Div(body, className="small text-break", style={"whiteSpace": "pre-wrap"}),
            html.Div(dcc.Link(t("messages.order", lang), href=f"/work/order?id={m['order_id']}")
                     if m.get("order_id") else None, className="small"),
            html.Div(files, className="small") if files else None,
            dbc.Button(t("messages.mark_read", lang), id={"type": MS.READ, "message": m["id"]}, size="sm",
                       color="link", className="p-0") if unread else None,
        ], className="list-group-item", id=MS.item(m["id"])))
    return [html.Ul(items, className="list-group")]


def attachable_options(files: list[dict], lang: str, zone: dt.tzinfo) -> list[dict]:
    """The files one may attach, as a multi-select's options: order number, kind, name, when received."""
    return [{"label": " · ".join(x for x in (f.get("number") or t("messages.no_order", lang),
                                             t(f"field.kind.{f['kind']}", lang), (f.get("name") or "")[:40],
                                             _when(f["received_at"], zone)) if x),
             "value": str(f["id"])} for f in files]


def message_upload(lang: str) -> html.Div:
    """A file sent with the message: picked and uploaded by assets/field.js through /_field/uploads (the evidence
    store's type and size limits, resumable), then attached."""
    return html.Div([
        html.Div(t("messages.upload", lang), className="small text-muted"),
        html.Div(id=FO.FILE_SLOT, className="mb-1"),
        dbc.Button(t("messages.upload_send", lang), id=FO.SEND_NOW, color="outline-primary", size="sm",
                   className="mb-1"),
        html.Ul(id=FO.QUEUE, className="list-unstyled small mb-1"),
        html.Div(id=FO.UPLOAD_STATUS, className="small", role="status"),
        dcc.Store(id=FO.UPLOADED, data=0),
    ], className="mb-1")


def message_form(partners: list[tuple[str, str]], me: str, lang: str, files: list[dict] = ()) -> dbc.Card:
    return dbc.Card(dbc.CardBody([
        html.H2(t("messages.write", lang), className="h6"),
        dbc.Select(id=MS.TO, className="mb-1", options=[{"label": t("messages.pick", lang), "value": ""}] +
                   [{"label": f"{d} ({u})", "value": u} for u, d in partners if u != me], value=""),
        dbc.Input(id=MS.ORDER, placeholder=t("messages.order_id", lang), className="mb-1", maxLength=12,
                  inputMode="numeric"),
        dbc.Input(id=MS.SUBJECT, placeholder=t("messages.subject", lang), className="mb-1", maxLength=200),
        dbc.Textarea(id=MS.BODY, placeholder=t("messages.body", lang), className="mb-1", maxLength=4000, rows=3),
        dcc.Dropdown(id=MS.ATTACH, options=list(files), multi=True, placeholder=t("messages.attach", lang),
                     className="mb-1", searchable=True),
        message_upload(lang),
        dbc.Button(t("messages.send", lang), id=MS.SEND, color="primary", size="sm"),
        html.Div(id=MS.RESULT, className="small mt-1", role="status"),
    ]), className="mb-2")


# --- terminals ---------------------------------------------------------------------------------------------
def terminals_view(rows: list[dict], lang: str, zone: dt.tzinfo, days: int) -> list:
    """One card per terminal (a phone fits no wide table): worker, state, browser and version, last seen, where,
    and the worker's online rate."""
    if not rows:
        return [html.P(t("terminals.none", lang), className="text-muted")]
    items = []
    for r in rows:
        rate = r.get("online_rate")
        where = (html.A(f"{r['lat']:.5f}, {r['lon']:.5f}", href=f"geo:{r['lat']:.6f},{r['lon']:.6f}")
                 if r.get("lat") is not None else "-")
        items.append(html.Li([
            html.Div([html.Strong(r["operator"]),
                      dbc.Badge(t(f"terminals.state.{r['state']}", lang), color="success" if r["state"] == "active"
                                else "secondary", className="ms-1"),
                      html.Span(t("terminals.rate", lang, days=days,
                                  rate=f"{rate * 100:.1f} %" if rate is not None else "-"), className="ms-2 small")]),
            html.Div(t("terminals.seen", lang, when=_when(r["last_seen_at"], zone),
                       registered=_when(r["registered_at"], zone)), className="small"),
            html.Div([t("terminals.where", lang), " ", where, html.Span(
                f" ({_when(r.get('located_at'), zone)})" if r.get("located_at") else "")], className="small"),
            html.Div(f"{r.get('app_version') or '-'} · {r.get('user_agent') or '-'}",
                     className="small text-muted text-break"),
            html.Div(t("terminals.blocked_because", lang, by=r.get("state_by") or "-", when=_when(r.get("state_at"), zone),
                       reason=r.get("state_reason") or "-"), className="small text-danger text-break")
            if r["state"] == "blocked" else None,
        ], className="list-group-item"))
    return [html.Ul(items, className="list-group", id=TM.TABLE)]
