"""Batch operations (/control, relay.batch or relay.command; ?meter=<number> lists and selects that one meter):
select meters by building, floor, state, account, tariff, by number or by hand in the grid; send an action to them
after a confirmation naming it and the count (billing.control checks every permission, asks again on warnings and
audits); export the selected meters' live state (抄表导出, audited)."""
from __future__ import annotations

import re

import dash
import dash_bootstrap_components as dbc
from dash import ALL, Input, Output, State, ctx as dash_ctx, dcc, html, no_update
from dash.exceptions import PreventUpdate

from billing import control
from billing.errors import BillingError
from core import permissions as P
from core.clock import show_local, site_time, utcnow
from dashboard import access, inputs
from dashboard.auth import forbidden_page, guarded_callback
from dashboard.components.control import (
    batches_table, confirm_text, control_page, control_workbook, grid_rows, linked_text, selected_text, warnings_body,
)
from dashboard.components.workbook import exported_message
from dashboard.i18n import request_lang, t
from dashboard.ids import Control as ID
from dashboard.services import actor, billing, site_zone
from storage import audit
from storage.batches import recent_batches

dash.register_page(__name__, path="/control", title="Wattline", name="control")
_NUMBER = re.compile(r"[0-9]{12}")
RELAY = (P.RELAY_BATCH, P.RELAY_COMMAND)   # either opens the page; the service decides per batch


def _tariffs() -> dict[int, str]:
    from billing.tariffs import tariff_list
    return {int(x["id"]): x.get("display_name") or x["name"] for x in tariff_list(billing())}


def _batches() -> list[dict]:
    with billing().engine.connect() as conn:
        return recent_batches(conn, 15)


def _live(lang: str, tariffs: dict[int, str] | None = None) -> tuple[list[dict], object]:
    df = control.live_meters(billing())
    return grid_rows(df, lang, tariffs if tariffs is not None else _tariffs()), df


def layout(meter: str | None = None, **_query):
    lang = request_lang()
    denied = forbidden_page(access.CONTROL, lang)
    if denied is not None:
        return denied
    tariffs = _tariffs()
    rows, df = _live(lang, tariffs)
    selected, linked = _linked_meter(rows, meter, lang)
    buildings = sorted({b for b in df["building"].dropna()})
    floors = sorted({int(f) for f in df["floor"].dropna()})
    return control_page(selected or rows, lang, buildings=buildings, floors=floors, tariffs=tariffs,
                        selected=selected, batches=_batches(), zone=site_zone(), linked=linked)


def _linked_meter(rows: list[dict], meter, lang: str) -> tuple[list[dict], object]:
    """?meter=<number> (the overview's side panel, the meters grid): the grid lists and selects that meter alone,
    so the actions act on it; a number that names no controllable meter is said, and nothing is selected."""
    if meter is None or meter == "":
        return [], None
    number = inputs.key_text(meter, 12)
    chosen = [r for r in rows if r["address"] == number] if number else []
    if chosen:
        return chosen, linked_text(number, lang)
    return [], html.Span(t("control.linked_unknown", lang, meter=inputs.shown(meter)), className="text-warning")


def _addresses(selected) -> list[str]:
    """The meter numbers of the grid's selected rows (the browser's: only 12-digit numbers are taken)."""
    if not isinstance(selected, list):
        return []
    found = (r.get("address") for r in selected if isinstance(r, dict))
    return list(dict.fromkeys(a for a in found if isinstance(a, str) and _NUMBER.fullmatch(a)))


def _matches(row: dict, building, floor, state, account, tariff) -> bool:
    if building is not None and row["building"] != building:
        return False
    if floor is not None and row["floor"] != floor:
        return False
    if state is not None and row["state"] != state:
        return False
    if tariff is not None and row["tariff_id"] != tariff:
        return False
    if account:
        text = account.strip().casefold()
        return bool(text) and (str(row["account_id"] or "") == text or text in (row["account"] or "").casefold())
    return True


# ---------------------------------------------------------------------------------------------
# Callbacks: wiring only

@guarded_callback("control.rows", access.CONTROL,
                  output={"rows": Output(ID.GRID, "rowData"), "selected": Output(ID.GRID, "selectedRows"),
                          "numbers": Output(ID.NUMBERS_MESSAGE, "children"), "linked": Output(ID.LINKED, "children")},
                  inputs={"building": Input(ID.BUILDING, "value"), "floor": Input(ID.FLOOR, "value"),
                          "state": Input(ID.STATE, "value"), "account": Input(ID.ACCOUNT, "value"),
                          "tariff": Input(ID.TARIFF, "value"), "pick": Input(ID.SELECT_NUMBERS, "n_clicks")},
                  state={"typed": State(ID.NUMBERS, "value")}, changes_state=False, prevent_initial_call=True)
def filter_rows(building, floor, state, account, tariff, pick, typed):
    """The filters narrow the grid (its header box then selects every filtered row); numbers select exactly those."""
    lang = request_lang()
    rows, _df = _live(lang)
    if dash_ctx.triggered_id == ID.SELECT_NUMBERS:
        typed_numbers = re.split(r"[\s,，;；]+", (inputs.text(typed) or "")[:80_000])
        numbers = [n for n in dict.fromkeys(typed_numbers) if n][:control.MAX_NUMBERS]
        known = {r["address"]: r for r in rows}
        unknown = [inputs.shown(n) for n in numbers if n not in known]
        chosen = [known[n] for n in numbers if n in known]
        said = [html.Span(t("control.numbers_selected", lang, count=len(chosen)))]
        if unknown:
            said.append(html.Div(t("control.unknown_numbers", lang, count=len(unknown),
                                   numbers=", ".join(unknown[:10])), className="text-warning"))
        return {"rows": chosen, "selected": chosen, "numbers": said, "linked": None}
    floor = floor if isinstance(floor, int) and not isinstance(floor, bool) else None
    tariff = tariff if isinstance(tariff, int) and not isinstance(tariff, bool) else None
    shown = [r for r in rows if _matches(r, inputs.key_text(building), floor, inputs.key_text(state, 20),
                                         inputs.key_text(account), tariff)]
    return {"rows": shown, "selected": [], "numbers": None, "linked": None}


@guarded_callback("control.count", access.CONTROL, Output(ID.COUNT, "children"), Input(ID.GRID, "selectedRows"),
                  changes_state=False, prevent_initial_call=True)
def count_selected(selected):
    return selected_text(len(_addresses(selected)), request_lang())


@guarded_callback("control.queue", RELAY,
                  output={"open": Output(ID.CONFIRM, "is_open"), "body": Output(ID.CONFIRM_BODY, "children"),
                          "pending": Output(ID.PENDING, "data"), "anyway": Output(ID.SEND_ANYWAY, "style"),
                          "send": Output(ID.SEND, "style"), "message": Output(ID.MESSAGE, "children"),
                          "batches": Output(ID.BATCHES, "children"), "reason": Output(ID.REASON, "value"),
                          "reason_invalid": Output(ID.REASON, "invalid")},
                  inputs={"asked": Input(ID.action(ALL), "n_clicks"), "send": Input(ID.SEND, "n_clicks"),
                          "anyway": Input(ID.SEND_ANYWAY, "n_clicks"), "close": Input(ID.CLOSE_CONFIRM, "n_clicks")},
                  state={"pending": State(ID.PENDING, "data"), "selected": State(ID.GRID, "selectedRows"),
                         "reason": State(ID.REASON, "value"), "alarm1": State(ID.ALARM1, "value"),
                         "alarm2": State(ID.ALARM2, "value"), "overload": State(ID.OVERLOAD, "value")},
                  prevent_initial_call=True)
def queue(asked, send, anyway, close, pending, selected, reason, alarm1, alarm2, overload):
    """An action button asks (nothing written); Send queues through billing.control (which may answer with
    warnings: then Send anyway); the service checks the permissions and audits."""
    lang = request_lang()
    trigger = dash_ctx.triggered_id
    unchanged = {"open": no_update, "body": no_update, "pending": no_update, "anyway": no_update, "send": no_update,
                 "message": no_update, "batches": no_update, "reason": no_update, "reason_invalid": no_update}
    addresses = _addresses(selected)
    if trigger == ID.CLOSE_CONFIRM:
        return {**unchanged, "open": False, "pending": None}
    if isinstance(trigger, dict) and trigger.get("type") == ID.action("")["type"]:
        action = trigger.get("action")
        if not isinstance(action, str) or action not in control.ACTIONS or not dash_ctx.triggered[0].get("value"):
            raise PreventUpdate
        if not addresses:
            return {**unchanged, "message": dbc.Alert(t("control.none_selected", lang), color="warning",
                                                      className="py-2")}
        return {**unchanged, "open": True, "body": confirm_text(action, len(addresses), lang),
                "pending": {"action": action}, "anyway": {"display": "none"}, "send": {}, "reason_invalid": False}
    if trigger not in (ID.SEND, ID.SEND_ANYWAY):
        raise PreventUpdate
    action = inputs.mapping(pending).get("action")
    if not isinstance(action, str) or action not in control.ACTIONS:
        return {**unchanged, "open": False}
    limits = {"alarm1": inputs.text(alarm1), "alarm2": inputs.text(alarm2), "overload_w": inputs.text(overload)}
    try:
        done = control.queue_batch(billing(), actor(), control.Selection(meters=tuple(addresses)), action,
                                   inputs.text(reason), limits=limits if action == "push_limits" else None,
                                   confirm=trigger == ID.SEND_ANYWAY, single=_single(addresses))
    except BillingError as exc:
        if exc.code == "reason_required":   # said in the dialog, beside the reason field; nothing queued
            return {**unchanged, "reason_invalid": True, "body": [
                html.P(confirm_text(action, len(addresses), lang)),
                html.Div(dbc.Alert(exc.message(lang), color="danger", className="py-2 small"),
                         **{"data-code": exc.code})]}
        return {**unchanged, "open": False, "message": html.Div(dbc.Alert(
            t("control.refused", lang, message=exc.message(lang)), color="danger", className="py-2"),
            **{"data-code": exc.code})}
    if done.batch_id is None:
        return {**unchanged, "open": True, "body": warnings_body(action, len(done.meters), done.warnings, lang),
                "anyway": {}, "send": {"display": "none"}}
    return {**unchanged, "open": False, "pending": None, "batches": batches_table(_batches(), lang, site_zone()),
            "reason": "", "reason_invalid": False,   # kept with this batch; the next action asks its own
            "message": html.Div(dbc.Alert([
                t("control.queued", lang, batch=done.batch_id, count=len(done.meters)), " ",
                dcc.Link(t("control.view_batch", lang), href=f"/control/batch?id={done.batch_id}")],
                color="success", className="py-2"), **{"data-batch": done.batch_id})}


def _single(addresses: list[str]) -> bool:
    """One meter, by an operator who may command one meter but not batches: relay.command decides."""
    who = actor()
    return len(addresses) == 1 and not who.may(P.RELAY_BATCH) and who.may(P.RELAY_COMMAND)


@guarded_callback("control.export", P.RELAY_BATCH,
                  output={"file": Output(ID.DOWNLOAD, "data"), "message": Output(ID.EXPORT_MESSAGE, "children")},
                  inputs={"n_clicks": Input(ID.EXPORT, "n_clicks")}, state={"selected": State(ID.GRID, "selectedRows")},
                  changes_state=False, prevent_initial_call=True)
def export_selected(n_clicks, selected):
    """抄表导出: the selected meters as the database holds them now (not as the browser sent them); audited."""
    if not n_clicks:
        raise PreventUpdate
    lang = request_lang()
    wanted = set(_addresses(selected))
    if not wanted:
        return {"file": no_update, "message": html.Span(t("control.none_selected", lang), className="text-warning")}
    df = control.live_meters(billing())
    df = df[df["address"].isin(wanted)]
    rows = grid_rows(df, lang, _tariffs())
    zone = site_zone()
    book = control_workbook(rows, lang, zone, dict(zip(df["meter_id"].astype(int), df["last_seen"])))
    now = utcnow()
    who = actor()
    with billing().engine.begin() as conn:
        audit.record(conn, operator=who.username[:100], action="control.export", target=None, ts=now,
                     after={"meters": len(rows)}, source=who.address)
    stamp = show_local(site_time(now, zone), "stamp")
    return {"file": dcc.send_bytes(book.to_bytes(), f"meter-reading-{stamp}.xlsx"),
            "message": exported_message(t("control.exported", lang, count=len(rows)), book, lang)}
