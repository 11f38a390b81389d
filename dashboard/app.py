"""The Dash application: shell layout per request, pages from dashboard/pages/, Flask routes (/healthz, /lang)."""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Callable

import dash
from dash import html
from flask import Response, redirect, request

from dashboard.app_config import SHELL_HOOKS
from dashboard.components.shell import navbar, register_nav_callbacks, site_clock
from dashboard.i18n import COOKIE, LANGUAGES, request_lang, t
from dashboard.ids import App
from dashboard.inputs import install_callback_checks
from dashboard.services import site_zone
from dashboard.websecurity import local_target, referrer_path, same_origin_request, security_event

_HERE = Path(__file__).resolve().parent
# Bootstrap before our own stylesheets: Dash links the files of assets/ before those of its subfolders, so
# assets/vendor/bootstrap came last and won every tie with our rules (wattline.css's CJK font list, the
# phone wrapping rules). Linked here first and left out of the assets Dash links itself.
BOOTSTRAP_CSS = ["/assets/vendor/bootstrap/bootstrap.min.css", "/assets/vendor/bootstrap-icons/bootstrap-icons.min.css"]

# Without the auth layer (dashboard/auth.py puts its own under SHELL_HOOKS): nobody signed in, all allowed.
NO_AUTH: dict[str, Callable] = {"current_user_name": lambda: None, "allowed": lambda permission: True,
                                "csrf_token": lambda: ""}


def create_app(health: Callable[[], dict], services: object | None = None) -> dash.Dash:
    """`health` returns the /healthz body; `services` is what pages call (the runtime)."""
    app = dash.Dash(
        __name__, title="Wattline", update_title=None, serve_locally=True, use_pages=True,
        pages_folder=str(_HERE / "pages"), assets_folder=str(_HERE.parent / "assets"),
        external_stylesheets=BOOTSTRAP_CSS, assets_ignore=r"^bootstrap(-icons)?\.min\.css$",
        suppress_callback_exceptions=True,
    )
    app.server.config["WATTLINE_HEALTH"] = health
    app.server.config["WATTLINE_SERVICES"] = services

    def layout():
        lang = request_lang()
        # texts assets/refusals.js shows when a callback fails without a message of the server's own
        texts = {"data-callback-failed": t("app.callback_failed", lang),
                 "data-server-unreachable": t("app.server_unreachable", lang),
                 "data-sign-in": t("auth.submit", lang), "data-close": t("app.close", lang)}
        hooks = app.server.config.get(SHELL_HOOKS, NO_AUTH)
        return html.Div([navbar(lang, hooks["current_user_name"](), hooks["allowed"], hooks["csrf_token"]()),
                         dash.page_container,
                         site_clock(lang, site_zone())],
                        id=App.ROOT, lang="zh-CN" if lang == "zh" else "en", **texts)

    app.layout = layout
    register_nav_callbacks(app)
    install_callback_checks(app)

    billing = getattr(services, "billing", None)
    if billing is not None:  # payment API and customers' QR pages: their own auth (bearer token, signed URL)
        from billing.api import payment_api
        from dashboard.selfservice import customer_pages
        from reports.api import ReportsApi
        from reports.registry import ReportEnv
        cfg = getattr(services, "cfg", None)
        reports_env = ReportEnv(billing) if cfg is None else \
            ReportEnv(billing, cfg.poll_interval_s, cfg.analytics.line_loss_limit)
        extensions = [ReportsApi(reports_env)]
        if getattr(services, "workorders", None) is not None:   # the ticket feed (workorders.api)
            from workorders.api import WorkOrdersApi
            extensions.append(WorkOrdersApi(services.workorders))
        app.server.register_blueprint(payment_api(billing, extensions=extensions))
        app.server.register_blueprint(customer_pages(billing, services.qr_key))
        app.server.config.setdefault("WATTLINE_PUBLIC_ROUTES", set()).update({"/api/v1/", "/c/", "/c"})
    if getattr(services, "field", None) is not None:  # the phone's uploads, evidence files, terminal reports
        from dashboard.field_routes import field_routes
        app.server.register_blueprint(field_routes(lambda: services.field))

    @app.server.route("/healthz")
    def healthz():  # noqa: ANN202
        body = health()
        code = 200 if body.get("status") != "down" else 503
        return Response(json.dumps(body, default=_json_default), status=code, mimetype="application/json")

    @app.server.route("/lang/<code>")
    def switch_language(code: str):  # noqa: ANN202
        """Switch the UI language (kept per operator by the auth layer, per browser by a cookie). Only a
        switch from this site's own pages (or typed in) counts: a link on another site changes nothing."""
        if code not in LANGUAGES:
            code = "en"
        resp = redirect(local_target(request.args.get("next") or referrer_path()))
        if not same_origin_request(navigation=True):
            security_event("request.cross_site", request.path)
            return resp
        resp.set_cookie(COOKIE, code, max_age=365 * 86400, httponly=True, samesite="Lax")
        for hook in app.server.config.get("WATTLINE_ON_LANGUAGE", []):
            hook(code)
        return resp

    return app


def _json_default(v):
    if isinstance(v, (dt.datetime, dt.date)):
        return v.isoformat()
    return str(v)
