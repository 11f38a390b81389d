"""One work order in the office (/workorders/order?number=...): its header and due flag, the events timeline (who,
when, where, note), the operating card's steps, materials, fees, the field side's evidence as thumbnails, the
follow-up calls; and the office's moves: dispatch (to the nearest available worker by default, or one picked by
hand), hold, release, cancel with a reason; approve, reject with a reason, archive; record the customer's
follow-up call (回访). Every move goes through WorkOrderService.act (permission, transition, event, operation log)."""
from __future__ import annotations

from decimal import Decimal

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, State, ctx, dcc, html
from dash.exceptions import PreventUpdate

from core import permissions as P
from core.clock import show_time
from core.formatting import format_money
from dashboard import access, inputs
from dashboard.auth import allowed, forbidden_page, guarded_callback
from dashboard.components.tables import STACK, labelled_cells
from dashboard.components.workorders_office import type_names
from dashboard.i18n import request_lang, t
from dashboard.ids import WorkOrder as ID
from dashboard.services import actor, site_zone, workorders
from workorders.errors import WorkOrderError
from workorders.office import FOLLOWUP_OUTCOMES, Office
from workorders.service import choose_worker

dash.register_page(__name__, path=access.WORKORDER.path, title="Wattline", name="workorder")
FIELD_EVIDENCE = "/_field/evidence/"     # dashboard.field_routes: the file, checked for the signed-in operator
MOVES = {ID.DISPATCH: "dispatch", ID.HOLD: "hold", ID.RELEASE: "release", ID.CANCEL: "cancel",
         ID.APPROVE: "approve", ID.REJECT: "reject", ID.ARCHIVE: "archive"}
REVIEW_MOVES = ("approve", "reject", "archive")


def _row(label: str, value) -> html.Tr:
    return html.Tr([html.Th(label, className="text-muted fw-normal pe-3"), html.Td(value)])


def _header(view: dict, types: dict[str, str], workers: dict[int, str], lang: str, zone) -> html.Div:
    o = view["order"]
    flag = view.get("flag")
    badge = dbc.Badge(t(f"workorder.flag.{flag}", lang), color="danger" if flag == "overdue" else "warning",
                      className="ms-2") if flag else None
    return html.Div([
        html.H1([o["number"], " ", dbc.Badge(t(f"workorder.state.{o['state']}", lang), color="secondary"), badge],
                className="h4"),
        html.Div(dbc.Table(html.Tbody([
            _row(t("wo_office.col.type", lang), types.get(o["type"], o["type"])),
            _row(t("wo_office.col.priority", lang), t(f"workorder.priority.{o['priority']}", lang)),
            _row(t("wo_office.col.customer", lang), " ".join(x for x in (o.get("customer_name"),
                                                                          o.get("customer_phone")) if x) or "—"),
            _row(t("wo_office.detail.place", lang), o.get("location") or "—"),
            _row(t("wo_office.detail.description", lang), o["description"]),
            _row(t("wo_office.col.worker", lang), workers.get(o["assigned_to"], "—")),
            _row(t("wo_office.col.created_at", lang), show_time(o["created_at"], zone, "minutes")),
            _row(t("wo_office.col.due_at", lang), show_time(o["due_at"], zone, "minutes")),
            _row(t("wo_office.detail.reason", lang), o.get("reason") or "—"),
        ]), size="sm", borderless=True, className=f"mb-2 {STACK}"), className="table-responsive"),
    ], id=ID.HEADER)


def _timeline(events: list[dict], lang: str, zone) -> html.Div:
    items = [html.Li([
        html.Strong(t(f"workorder.action.{e['action']}", lang)), " · ",
        t(f"workorder.state.{e['to_state']}", lang), " · ", e["actor"], " · ",
        html.Span(show_time(e["ts"], zone, "minutes"), className="text-muted"),
        html.Span(f" ({e['lat']:.5f}, {e['lon']:.5f})", className="text-muted") if e.get("lat") is not None else None,
        html.Div(e["note"], className="small") if e.get("note") else None,
    ], className="mb-1") for e in events]
    return html.Div([html.H2(t("wo_office.detail.timeline", lang), className="h6"),
                     html.Ol(items, className="small ps-3")], id=ID.TIMELINE)


def _card(steps: list[dict], lang: str) -> html.Div:
    header = [t(f"wo_office.detail.card_{c}", lang) for c in ("done", "item", "value")]
    rows = [html.Tr(labelled_cells(header, [
        "✓" if s["done"] else "",
        html.Td(s["text_zh"] if lang == "zh" else s["text_en"],
                className="text-danger" if s["kind"] == "hazard" else None),
        s.get("value") or ""])) for s in steps]
    return html.Div([html.H2(t("wo_office.detail.card", lang), className="h6"),
                     html.Div(dbc.Table(html.Tbody(rows), size="sm", striped=True, className=STACK),
                              className="table-responsive")],
                    id=ID.CARD)


def _materials(view: dict, lang: str) -> html.Div:
    header = [t(f"wo_office.detail.material_{c}", lang) for c in ("kind", "item", "quantity", "unit_price")]
    rows = [html.Tr(labelled_cells(header, [
        t(f"wo_office.kind.{m['kind']}", lang), m["text_zh"] if lang == "zh" else m["text_en"],
        f"{Decimal(m['quantity']).normalize():f} {m.get('unit') or ''}", format_money(m["unit_price"])]))
            for m in view["materials"]]
    totals = view.get("totals") or {}
    fees = [html.Li(f"{format_money(f['amount'])} · {f['method']} · {f['collected_by']}") for f in view["fees"]]
    return html.Div([
        html.H2(t("wo_office.detail.materials", lang), className="h6"),
        html.Div(dbc.Table(html.Tbody(rows), size="sm", striped=True, className=STACK), className="table-responsive"),
        html.P(" · ".join(f"{t(f'wo_office.total.{k}', lang)} {format_money(v)}" for k, v in totals.items()
                          if k in ("materials", "services", "total", "collected", "outstanding")),
               className="small", id=ID.FEES),
        html.Ul(fees, className="small") if fees else None,
    ], id=ID.MATERIALS)


def _evidence(rows: list[dict], lang: str, zone) -> html.Div:
    def one(e):
        link = f"{FIELD_EVIDENCE}{e['id']}"
        kind = t("wo_office.evidence." + e["kind"], lang)
        caption = f"{kind} · {show_time(e['received_at'], zone, 'minutes')}"
        if e["mime"].startswith("image/"):
            body = html.Img(src=link, alt=caption, className="img-thumbnail", style={"maxWidth": "160px"})
        else:
            body = html.Span(e.get("name") or e["mime"])
        return html.Figure([html.A(body, href=link),
                            html.Figcaption(caption, className="small text-muted")], className="me-2")
    return html.Div([html.H2(t("wo_office.detail.evidence", lang), className="h6"),
                     html.Div([one(e) for e in rows] or t("wo_office.detail.no_evidence", lang),
                              className="d-flex flex-wrap small")], id=ID.EVIDENCE)


def _followups(rows: list[dict], lang: str, zone) -> html.Div:
    items = [html.Li(" · ".join(x for x in (
        show_time(f["called_at"], zone, "minutes"), f["called_by"], t(f"wo_office.outcome.{f['outcome']}", lang),
        f"{f['satisfaction']}/5" if f.get("satisfaction") else None, f.get("note")) if x)) for f in rows]
    return html.Div([html.H2(t("wo_office.detail.followups", lang), className="h6"),
                     html.Ul(items, className="small") if items else html.P(t("wo_office.detail.no_followups", lang),
                                                                           className="small text-muted")],
                    id=ID.FOLLOWUPS)


def _suggested(order: dict, workers: list[dict]) -> int | None:
    """The worker dispatch picks when none is chosen: WorkOrderService's own rule (district, nearest, least load)."""
    return choose_worker(order, workers, {})


def _moves(view: dict, workers: list[dict], lang: str) -> dbc.Card:
    o = view["order"]
    suggested = _suggested(o, workers)
    names = {w["operator_id"]: w["display_name"] or w["username"] for w in workers}
    worker_options = ([{"label": t("wo_office.detail.nearest", lang, name=names[suggested]), "value": ""}]
                      if suggested is not None else []) + [
        {"label": names[w["operator_id"]], "value": str(w["operator_id"])} for w in workers
        if w["available"] and w["active"]]
    dispatch = allowed(P.WORKORDER_DISPATCH)
    review = allowed(P.WORKORDER_REVIEW)
    # every button is there for every office operator (the callback's inputs exist), those of moves they may not
    # make greyed out; the service refuses them all the same
    buttons = [dbc.Button(t("workorder.action.hold", lang), id=ID.HOLD, color="warning", outline=True,
                          disabled=not dispatch),
               dbc.Button(t("workorder.action.release", lang), id=ID.RELEASE, color="secondary", outline=True,
                          disabled=not dispatch),
               dbc.Button(t("workorder.action.cancel", lang), id=ID.CANCEL, color="danger", outline=True,
                          disabled=not dispatch),
               dbc.Button(t("workorder.action.approve", lang), id=ID.APPROVE, color="success", disabled=not review),
               dbc.Button(t("workorder.action.reject", lang), id=ID.REJECT, color="danger", disabled=not review),
               dbc.Button(t("workorder.action.archive", lang), id=ID.ARCHIVE, color="secondary", disabled=not review)]
    return dbc.Card(dbc.CardBody([
        html.H2(t("wo_office.detail.moves", lang), className="h6"),
        dbc.InputGroup([
            dbc.Select(id=ID.WORKER, options=worker_options, value="" if suggested is not None else None,
                       disabled=not dispatch),
            dbc.Button(t("workorder.action.dispatch", lang), id=ID.DISPATCH, color="primary", disabled=not dispatch),
        ], className="mb-2"),
        dbc.Input(id=ID.REASON, maxLength=500, placeholder=t("wo_office.detail.reason_hint", lang),
                  className="mb-2"),
        html.Div(buttons, className="d-flex flex-wrap gap-2"),
        html.Div(id=ID.RESULT, role="status", className="small mt-2"),
    ]), className="mb-3")


def _call_form(lang: str) -> dbc.Card:
    return dbc.Card(dbc.CardBody([
        html.H2(t("wo_office.call.heading", lang), className="h6"),
        dbc.Row([
            dbc.Col([dbc.Label(t("wo_office.call.at", lang), html_for=ID.CALL_AT),
                     dbc.Input(id=ID.CALL_AT, type="datetime-local")], xs=12, md=4),
            dbc.Col([dbc.Label(t("wo_office.call.outcome", lang), html_for=ID.CALL_OUTCOME),
                     dbc.Select(id=ID.CALL_OUTCOME, value="reached", options=[
                         {"label": t(f"wo_office.outcome.{o}", lang), "value": o} for o in FOLLOWUP_OUTCOMES])],
                    xs=12, md=4),
            dbc.Col([dbc.Label(t("wo_office.call.rating", lang), html_for=ID.CALL_RATING),
                     dbc.Select(id=ID.CALL_RATING, value="", options=[{"label": "—", "value": ""}] + [
                         {"label": f"{n}/5", "value": str(n)} for n in range(5, 0, -1)])], xs=12, md=4),
            dbc.Col([dbc.Label(t("wo_office.call.note", lang), html_for=ID.CALL_NOTE),
                     dbc.Input(id=ID.CALL_NOTE, maxLength=500)], xs=12),
        ], className="g-2 mb-2"),
        dbc.Button(t("wo_office.call.save", lang), id=ID.CALL_SAVE, color="primary"),
        html.Div(id=ID.CALL_RESULT, role="status", className="small mt-2"),
    ]), className="mb-3")


def sections(view: dict, lang: str) -> list:
    """Everything the page shows of the order (re-read and rebuilt after each move)."""
    service = workorders()
    zone = site_zone()
    types = type_names(service.order_types(active_only=False), lang)
    workers = service.workers()
    names = {w["operator_id"]: w["display_name"] or w["username"] for w in workers}
    office = Office(service)
    o = view["order"]
    return [
        _header(view, types, names, lang, zone),
        dbc.Row([
            dbc.Col([_timeline(view["events"], lang, zone), _followups(office.followups(o["id"]), lang, zone)],
                    xs=12, lg=5),
            dbc.Col([_card(view["steps"], lang), _materials(view, lang),
                     _evidence(office.evidence(o["id"]), lang, zone)], xs=12, lg=7),
        ], className="g-3"),
    ]


def layout(number=None, **_query):
    lang = request_lang()
    denied = forbidden_page(access.WORKORDER, lang)
    if denied is not None:
        return denied
    key = inputs.key_text(number, 20)
    try:
        view = workorders().order_view(actor(), number=key or "")
    except WorkOrderError as exc:
        return dbc.Container(dbc.Alert(exc.message(lang), color="warning"), id=ID.PAGE)
    return dbc.Container([
        html.Div(sections(view, lang), id=ID.SECTIONS),
        _moves(view, workorders().workers(), lang),
        _call_form(lang),
        dcc.Store(id=ID.NUMBER, data=view["order"]["number"]),
    ], fluid=True, id=ID.PAGE)


def _order_id(number) -> tuple[int, dict]:
    view = workorders().order_view(actor(), number=inputs.key_text(number, 20) or "")
    return view["order"]["id"], view


@guarded_callback("workorder.move", access.WORKORDER,
                  Output(ID.RESULT, "children"), Output(ID.SECTIONS, "children"),
                  *(Input(button, "n_clicks") for button in MOVES), State(ID.NUMBER, "data"),
                  State(ID.WORKER, "value"), State(ID.REASON, "value"), prevent_initial_call=True)
def move(*args):
    number, worker, reason = args[-3:]
    button = ctx.triggered_id
    if button not in MOVES or not any(args[:-3]):
        raise PreventUpdate
    lang = request_lang()
    action = MOVES[button]
    service = workorders()
    try:
        order_id, _ = _order_id(number)
        if action == "dispatch":
            chosen = inputs.record_id(worker) if worker not in (None, "") else None
            if worker not in (None, "") and chosen is None:
                raise WorkOrderError("worker_unknown")
            service.dispatch(actor(), order_id, chosen)
        else:
            service.act(actor(), order_id, action, reason=inputs.text(reason))
        _, view = _order_id(number)
    except WorkOrderError as exc:
        return html.Span(exc.message(lang), className="text-danger"), dash.no_update
    said = t("wo_office.detail.moved", lang, action=t(f"workorder.action.{action}", lang),
             state=t(f"workorder.state.{view['order']['state']}", lang))
    return html.Span(said, className="text-success"), sections(view, lang)


@guarded_callback("workorder.followup", access.WORKORDER,
                  Output(ID.CALL_RESULT, "children"), Output(ID.SECTIONS, "children", allow_duplicate=True),
                  Input(ID.CALL_SAVE, "n_clicks"), State(ID.NUMBER, "data"), State(ID.CALL_AT, "value"),
                  State(ID.CALL_OUTCOME, "value"), State(ID.CALL_RATING, "value"), State(ID.CALL_NOTE, "value"),
                  prevent_initial_call=True)
def followup(n, number, called_at, outcome, rating, note):
    if not n:
        raise PreventUpdate
    lang = request_lang()
    try:
        when = inputs.moment(called_at)
    except inputs.BadValue as exc:
        return html.Span(t("wo_office.call.bad_time", lang, value=str(exc)), className="text-danger"), dash.no_update
    try:
        order_id, _ = _order_id(number)
        Office(workorders()).record_followup(actor(), order_id, outcome=inputs.text(outcome),
                                             satisfaction=inputs.text(rating), called_at=when, note=inputs.text(note))
        _, view = _order_id(number)
    except WorkOrderError as exc:
        return html.Span(exc.message(lang), className="text-danger"), dash.no_update
    return html.Span(t("wo_office.call.saved", lang), className="text-success"), sections(view, lang)
