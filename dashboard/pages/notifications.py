"""Notifications (/notifications, notification.view): every SMS and its status, filtered by state; the dead
letters resent by an operator holding notification.resend (audited)."""
from __future__ import annotations

import dash
from dash import Input, Output, State

from core import permissions as P
from dashboard import access, inputs
from dashboard.auth import allowed, forbidden_page, guarded_callback, source_address
from dashboard.components.cashier import notice
from dashboard.components.notifications import counts_line, message_rows, notifications_page
from dashboard.i18n import request_lang, t
from dashboard.ids import Notifications as ID
from dashboard.services import operator_name, runtime, site_zone
from notify.outbox import NOTIFY_JOB, STATES, messages, state_counts

RESEND = P.NOTIFICATION_RESEND
dash.register_page(__name__, path="/notifications", title="Wattline", name="notifications")


def _read(state: str | None):
    with runtime().engine.connect() as conn:
        return messages(conn, state=state or None), state_counts(conn)


def layout(**_query):
    lang = request_lang()
    denied = forbidden_page(access.NOTIFICATIONS, lang)
    if denied is not None:
        return denied
    rows, counts = _read(None)
    return notifications_page(message_rows(rows, site_zone(), lang), counts, lang, may_resend=allowed(RESEND))


@guarded_callback("notifications.list", access.NOTIFICATIONS,
                  output={"rows": Output(ID.GRID, "rowData"), "counts": Output(ID.COUNTS, "children")},
                  inputs={"state": Input(ID.STATE, "value"), "_tick": Input(ID.REFRESH, "n_intervals")},
                  changes_state=False, prevent_initial_call=True)
def show(state, _tick):
    """The messages of the chosen state (all for anything else), newest first."""
    lang = request_lang()
    rows, counts = _read(state if state in STATES else None)
    return {"rows": message_rows(rows, site_zone(), lang), "counts": counts_line(counts, lang)}


@guarded_callback("notifications.resend", RESEND,
                  output={"result": Output(ID.RESULT, "children"), "rows": Output(ID.GRID, "rowData"),
                          "counts": Output(ID.COUNTS, "children")},
                  inputs={"n_clicks": Input(ID.RESEND, "n_clicks")},
                  state={"selected": State(ID.GRID, "selectedRows"), "state": State(ID.STATE, "value")},
                  prevent_initial_call=True)
def resend(n_clicks, selected, state):
    """The selected dead letters back to the outbox, each audited; others selected are named, not touched."""
    if not n_clicks:
        raise dash.exceptions.PreventUpdate
    lang = request_lang()
    rows = selected if isinstance(selected, list) else []
    ids = inputs.record_ids([r.get("id") for r in rows if isinstance(r, dict)])[:500]
    if not ids:
        return {"result": notice(t("notifications.pick", lang)), "rows": dash.no_update, "counts": dash.no_update}
    outbox = runtime().notifications
    done = [i for i in ids if outbox.resend(i, operator_name(), source=source_address())]
    if done:
        runtime().jobs.wake(NOTIFY_JOB)
    skipped = len(ids) - len(done)
    text = t("notifications.resent", lang, n=len(done)) + (
        " " + t("notifications.not_dead", lang, n=skipped) if skipped else "")
    found, counts = _read(state if state in STATES else None)
    return {"result": notice(text, "success" if done else "warning"),
            "rows": message_rows(found, site_zone(), lang), "counts": counts_line(counts, lang)}
