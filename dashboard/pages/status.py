"""The data-plane status page (the landing page until the overview replaces it).

Page modules are imported by Dash only; builders live in dashboard/components/."""
from __future__ import annotations

import dash
from flask import current_app

from dashboard.components.status import status_page
from dashboard.i18n import LANGUAGES

dash.register_page(__name__, path="/", title="Wattline", name="status")


def layout(lang: str = "en", **_query):
    lang = lang if lang in LANGUAGES else "en"
    return status_page(current_app.config["WATTLINE_HEALTH"](), lang)
