"""System status (/status): what /healthz reports, for people, in the site's time.

Page modules are imported by Dash only; builders live in dashboard/components/."""
from __future__ import annotations

import dash
from flask import current_app

from dashboard.components.status import status_page
from dashboard.i18n import request_lang, t
from dashboard.services import site_zone


def title(**_path) -> str:
    """The browser tab says what the page is for, in the operator's language."""
    lang = request_lang()
    return f"{t('status.heading', lang)} · {t('app.title', lang)}"


dash.register_page(__name__, path="/status", title=title, name="status")


def layout(**_query):
    return status_page(current_app.config["WATTLINE_HEALTH"](), request_lang(), site_zone())
