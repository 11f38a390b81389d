"""The Dash application and its Flask routes (/healthz); layouts are built per request for i18n."""
from __future__ import annotations

import datetime as dt
import json
from typing import Callable

import dash
import dash_bootstrap_components as dbc
from dash import html
from flask import Response, request

from dashboard.i18n import t


def create_app(health: Callable[[], dict]) -> dash.Dash:
    """`health` returns the /healthz body; it is also what the status page shows."""
    app = dash.Dash(
        __name__, title="Wattline", update_title=None, serve_locally=True,
        assets_folder=_assets_folder(), external_stylesheets=[], suppress_callback_exceptions=True,
    )

    def layout():
        lang = request.args.get("lang", "en") if request else "en"
        lang = lang if lang in ("en", "zh") else "en"
        return status_page(health(), lang)

    app.layout = layout

    @app.server.route("/healthz")
    def healthz():  # noqa: ANN202
        body = health()
        code = 200 if body.get("status") != "down" else 503
        return Response(json.dumps(body, default=_json_default), status=code, mimetype="application/json")

    return app


def status_page(h: dict, lang: str) -> html.Div:
    last = h.get("last_poll") or {}
    other = "zh" if lang == "en" else "en"
    card = lambda label, value: dbc.Col(dbc.Card(dbc.CardBody([  # noqa: E731
        html.Div(label, className="text-muted small"), html.Div(str(value), className="fs-4 fw-semibold")])))
    return dbc.Container([
        html.Div([html.H1(t("app.title", lang), className="h3 mb-0"),
                  html.A(t("lang.switch", lang), href=f"?lang={other}", className="ms-auto")],
                 className="d-flex align-items-center my-3"),
        html.P(t("app.tagline", lang), className="text-muted"),
        html.H2(t("status.heading", lang), className="h5"),
        dbc.Row([
            card(t("status.meters", lang), h.get("meters", 0)),
            card(t("status.online", lang), h.get("meters_online", 0)),
            card(t("status.lost", lang), h.get("meters_lost", 0)),
            card(t("status.buses_lost", lang), h.get("buses_lost", 0)),
        ], className="g-2 mb-3"),
        html.P([f"{t('status.last_poll', lang)}: ",
                last.get("finished_at") or t("status.never", lang),
                f" · {t('status.duration', lang)}: {last['duration_s']:.2f} s" if last.get("duration_s") is not None else "",
                f" · {t('status.scheduler', lang)}: ",
                t("status.running" if h.get("scheduler_running") else "status.stopped", lang)]),
    ], fluid=True, id="status-page")


def _assets_folder() -> str:
    from pathlib import Path
    return str(Path(__file__).resolve().parent.parent / "assets")


def _json_default(v):
    if isinstance(v, (dt.datetime, dt.date)):
        return v.isoformat()
    return str(v)
