"""Overview (managers): placeholder until the live overview lands; shows the data-plane status."""
from __future__ import annotations

import dash
from flask import current_app

from dashboard.components.status import status_page
from dashboard.i18n import request_lang

dash.register_page(__name__, path="/", title="Wattline", name="overview")


def layout(**_query):
    return status_page(current_app.config["WATTLINE_HEALTH"](), request_lang())
