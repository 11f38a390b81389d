"""My work (/work): a field worker's home page; '/' leads a worker here (dashboard.access.home_path)."""
from __future__ import annotations

import dash
import dash_bootstrap_components as dbc

from dashboard import access
from dashboard.auth import forbidden_page, signed_in
from dashboard.components.work import work_home
from dashboard.i18n import request_lang, t
from dashboard.ids import Shared

dash.register_page(__name__, path=access.WORK.path, title="Wattline", name="work")


def layout(**_query):
    lang = request_lang()
    denied = forbidden_page(access.WORK, lang)
    if denied is not None:
        return denied
    op = signed_in()
    if op is None:  # only without sign-in installed: the guard sends strangers to /login
        return dbc.Container(dbc.Alert(t("auth.login_required", lang), color="warning"), id=Shared.FORBIDDEN)
    return work_home(op, lang)
