"""The Dash application and its Flask routes (/healthz). Pages live in dashboard/pages/."""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Callable

import dash
from flask import Response

_HERE = Path(__file__).resolve().parent


def create_app(health: Callable[[], dict]) -> dash.Dash:
    """`health` returns the /healthz body; the status page shows the same figures."""
    app = dash.Dash(
        __name__, title="Wattline", update_title=None, serve_locally=True, use_pages=True,
        pages_folder=str(_HERE / "pages"), assets_folder=str(_HERE.parent / "assets"),
        external_stylesheets=[], suppress_callback_exceptions=True,
    )
    app.server.config["WATTLINE_HEALTH"] = health
    app.layout = dash.html.Div(dash.page_container, id="app-root")

    @app.server.route("/healthz")
    def healthz():  # noqa: ANN202
        body = health()
        code = 200 if body.get("status") != "down" else 503
        return Response(json.dumps(body, default=_json_default), status=code, mimetype="application/json")

    return app


def _json_default(v):
    if isinstance(v, (dt.datetime, dt.date)):
        return v.isoformat()
    return str(v)
