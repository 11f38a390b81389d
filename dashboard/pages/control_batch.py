"""One batch's progress (/control/batch?id=<id>): each meter's state read from the database every 2 s (so it survives a
reload and a server restart), cancel what is still queued, retry what failed (billing.control checks and audits)."""
from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, State, ctx as dash_ctx
from dash.exceptions import PreventUpdate

from billing import control
from billing.errors import BillingError
from dashboard import access, inputs
from dashboard.auth import forbidden_page, guarded_callback
from dashboard.components.control import batch_body, batch_page
from dashboard.i18n import request_lang, t
from dashboard.ids import Control as ID
from dashboard.services import actor, billing, site_zone

dash.register_page(__name__, path="/control/batch", title="Wattline", name="control-batch")
RELAY = access.CONTROL.any_of
MOVING_MS, SETTLED_MS = 2000, 30000


def layout(id: str | None = None, **_query):  # noqa: A002  (the query string's name)
    lang = request_lang()
    denied = forbidden_page(access.CONTROL, lang)
    if denied is not None:
        return denied
    return batch_page(inputs.key_text(id, 40) or "", lang)


@guarded_callback("control.batch.refresh", access.CONTROL,
                  output={"body": Output(ID.BATCH_BODY, "children"), "stop": Output(ID.BATCH_TICK, "disabled"),
                          "every": Output(ID.BATCH_TICK, "interval")},
                  inputs={"tick": Input(ID.BATCH_TICK, "n_intervals")}, state={"batch": State(ID.BATCH_ID, "data")},
                  changes_state=False)
def refresh(tick, batch):
    lang = request_lang()
    try:
        view = control.batch_view(billing(), inputs.key_text(batch, 40) or "")
    except BillingError as exc:
        return {"body": dbc.Alert(exc.message(lang), color="warning"), "stop": True, "every": SETTLED_MS}
    # still moving: every 2 s; settled: every 30 s (a retry here, or from another page or the API, shows in time)
    moving = view.counts.get("queued", 0) + view.counts.get("sent", 0)
    return {"body": batch_body(view, lang, site_zone()), "stop": False, "every": MOVING_MS if moving else SETTLED_MS}


@guarded_callback("control.batch.act", RELAY,
                  output={"message": Output(ID.BATCH_MESSAGE, "children"),
                          "every": Output(ID.BATCH_TICK, "interval", allow_duplicate=True)},
                  inputs={"cancel": Input(ID.BATCH_CANCEL, "n_clicks"), "retry": Input(ID.BATCH_RETRY, "n_clicks")},
                  state={"batch": State(ID.BATCH_ID, "data")}, prevent_initial_call=True)
def act(cancel, retry, batch):
    """Cancel the queued commands, or queue the failed ones again; the service checks the permissions and audits."""
    if dash_ctx.triggered_id not in (ID.BATCH_CANCEL, ID.BATCH_RETRY) or not dash_ctx.triggered[0].get("value"):
        raise PreventUpdate
    lang = request_lang()
    batch = inputs.key_text(batch, 40) or ""
    try:
        if dash_ctx.triggered_id == ID.BATCH_CANCEL:
            said = t("control.cancelled_n", lang, count=control.cancel_queued(billing(), actor(), batch))
        else:
            said = t("control.retried_n", lang, count=control.retry_failed(billing(), actor(), batch))
    except BillingError as exc:
        return {"message": dbc.Alert(t("control.refused", lang, message=exc.message(lang)), color="danger",
                                     className="py-2"), "every": dash.no_update}
    return {"message": dbc.Alert(said, color="success", className="py-2"), "every": MOVING_MS}
