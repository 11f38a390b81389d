"""Default parameters (/admin/parameters, settings.edit): the site's defaults and poll intervals; a change is
checked, audited with before and after (billing.parameters) and put to work without a restart (serve.parameters)."""
from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, State
from dash.exceptions import PreventUpdate

from billing.errors import BillingError
from billing.parameters import FIELDS
from billing.tariffs import tariff_list
from core import permissions as P
from dashboard import access, inputs
from dashboard.auth import forbidden_page, guarded_callback
from dashboard.components.settings import parameters_page, refused
from dashboard.i18n import request_lang, t
from dashboard.ids import Parameters as ID
from dashboard.services import actor, billing, runtime

dash.register_page(__name__, path="/admin/parameters", title="Wattline", name="parameters")


def layout(**_query):
    lang = request_lang()
    denied = forbidden_page(access.PARAMETERS, lang)
    if denied is not None:
        return denied
    tariffs = [(tr["id"], tr.get("display_name") or tr["name"]) for tr in tariff_list(billing())
               if not tr.get("retired_at")]
    return parameters_page(runtime().parameters.current(), tariffs, lang)


@guarded_callback("admin.parameters.save", P.SETTINGS_EDIT,
                  output={"result": Output(ID.RESULT, "children")},
                  inputs={"n_clicks": Input(ID.SAVE, "n_clicks")},
                  state={f: State(ID.field(f), "value") for f in FIELDS}, prevent_initial_call=True)
def save(n_clicks, **form):
    if not n_clicks:
        raise PreventUpdate
    lang = request_lang()
    typed = {f: ("" if v is None else inputs.text(v)) for f, v in form.items()}
    try:
        _params, changed = runtime().parameters.save(actor(), typed)
    except BillingError as exc:
        field = getattr(exc, "field", None)
        text = exc.message(lang)
        if field:
            text = f"{t(f'parameters.{field}', lang)}: {text}"
        return {"result": refused(text, exc.code)}
    if not changed:
        return {"result": dbc.Alert(t("parameters.unchanged", lang), color="secondary", className="py-2 mb-2")}
    names = ", ".join(t(f"parameters.{f}", lang) for f in changed)
    return {"result": dbc.Alert(t("parameters.saved", lang, fields=names), color="success", className="py-2 mb-2")}
