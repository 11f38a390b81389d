"""The data-plane status page: what /healthz reports, for people.

Page modules are imported by Dash only; builders live in dashboard/components/."""
from __future__ import annotations

import dash
from flask import current_app

from dashboard.components.status import status_page
from dashboard.i18n import request_lang

dash.register_page(__name__, path="/status", title="Wattline", name="status")


def layout(**_query):
    return status_page(current_app.config["WATTLINE_HEALTH"](), request_lang())
