"""Sign-in for the dashboard: Flask-Login sessions over operators.service, the /login page, a guard on
every route that is not public, and server-side permission checks for Dash callbacks.

Pages register each callback that changes state (or hands out data) with `guarded_callback`
instead of `dash.callback`:

    @guarded_callback("billing.sell", P.SALE_CREATE,
                      Output("sell-result", "children"), Input("sell-button", "n_clicks"),
                      State("sell-amount", "value"), prevent_initial_call=True)
    def sell(n_clicks, amount): ...

The permission is one name, None (any signed-in operator) or a tuple of names (any one of them
will do, e.g. `access.SELL.any_of` for finding a meter, which selling, refunding and reversing all
need). It is checked on the server before Dash runs the function: a request from an operator
without it is answered 403 (JSON: error, permission, callback, and a message in the operator's
language naming the permission as the Permissions page does), the function never runs, and the
refusal is written to the operation log as `permission.denied`. The browser shows that message
(assets/refusals.js); pages hide the controls their operator may not use. `GUARDED_CALLBACKS` lists
every such callback by name, so tests can call each one as each role. Code that is not a callback
(a Flask route, a helper) calls `require(permission)`.

Public routes (no sign-in): the set in `app.server.config["WATTLINE_PUBLIC_ROUTES"]`; an entry
ending in "/" is a prefix, any other an exact path. Later features add theirs, e.g.
`app.server.config["WATTLINE_PUBLIC_ROUTES"].add("/api/v1/")` for a route with its own token auth.
"""
from __future__ import annotations

import functools
import hmac
import json
import secrets
from dataclasses import dataclass
from typing import Callable
from urllib.parse import quote, urlsplit

import dash
import dash_bootstrap_components as dbc
from flask import Flask, Response, current_app, has_request_context, redirect, request, session
from flask_limiter import Limiter, RequestLimit
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user
from markupsafe import escape

from core.config import LimitsConfig
from operators.service import Accounts, LoginRefused, Operator
from dashboard import access
from dashboard.app_config import SHELL_HOOKS
from dashboard.i18n import COOKIE, permission_label, request_lang, t
from dashboard.ids import Login, Shared, Shell
from dashboard.websecurity import (SECURITY_LOG, local_target, note_rate_limited, retry_after, same_origin_request,
                                   security_event)

PUBLIC_ROUTES = "WATTLINE_PUBLIC_ROUTES"
ACCOUNTS = "WATTLINE_ACCOUNTS"
DEFAULT_PUBLIC_ROUTES = frozenset({
    "/_dash-component-suites/", "/assets/", "/_favicon.ico",  # static files Dash serves
    "/login", "/logout", "/healthz", "/lang/",
})
JSON_PREFIXES = ("/_", "/api/")  # Dash's XHR routes and the API answer 401 JSON, never a redirect
UPDATE_COMPONENT = "/_dash-update-component"


# --- the callback registry ---------------------------------------------------------------------
# One permission; None: any signed-in operator (e.g. changing one's own password); a tuple: any one of these.
Permission = str | tuple[str, ...] | None


def holds(may: Callable[[str | None], bool], permission: Permission) -> bool:
    """Does `may` (an Operator's or a role's check) grant `permission` (one name, None or any of a tuple)?"""
    if isinstance(permission, tuple):
        return any(may(p) for p in permission)
    return may(permission)


@dataclass(frozen=True)
class GuardedCallback:
    name: str                 # stable, e.g. "admin.users.add"
    permission: Permission
    output: str               # Dash's callback id: the "output" of a /_dash-update-component body
    changes_state: bool       # False for callbacks that only hand out data (queries, exports)
    module: str

    def open_to(self, may: Callable[[str | None], bool]) -> bool:
        return holds(may, self.permission)


GUARDED_CALLBACKS: dict[str, GuardedCallback] = {}
_BY_OUTPUT: dict[str, GuardedCallback] = {}


class PermissionDenied(Exception):
    def __init__(self, permission: Permission, target: str):
        self.permission = permission
        self.target = target
        super().__init__(f"{target} needs {permission}")


def guarded_callback(name: str, permission: Permission | access.PageAccess, *args, changes_state: bool = True,
                     **kwargs):
    """`dash.callback` that runs only for a signed-in operator holding `permission` (see the module
    docstring; a page's access rule: whoever may open the page). Re-registering a name (Dash re-imports
    page modules per app) replaces the entry."""
    if isinstance(permission, access.PageAccess):
        permission = permission.any_of or None
    if isinstance(permission, (list, tuple)):
        permission = tuple(permission) if len(permission) > 1 else (permission[0] if permission else None)

    def decorate(func: Callable) -> Callable:
        @functools.wraps(func)
        def checked(*a, **kw):
            require(permission, f"callback {name}")  # second line of defence behind the guard
            return func(*a, **kw)

        dash.callback(*args, **kwargs)(checked)
        entry = GuardedCallback(name, permission, _callback_id(args, kwargs), changes_state, func.__module__)
        old = GUARDED_CALLBACKS.get(name)
        if old is not None:
            _BY_OUTPUT.pop(old.output, None)
        GUARDED_CALLBACKS[name] = entry
        _BY_OUTPUT[entry.output] = entry
        return func
    return decorate


def _callback_id(args: tuple, kwargs: dict) -> str:
    """The id Dash gives the callback (the `output` field of its update request)."""
    from dash._grouping import flatten_grouping
    from dash._utils import create_callback_id
    from dash.dependencies import Output, handle_grouped_callback_args
    output, inputs, _state, _indices, _initial = handle_grouped_callback_args(args, dict(kwargs))
    if isinstance(output, Output):
        return create_callback_id(output, inputs)
    flat = flatten_grouping(output)
    return create_callback_id(flat, inputs, no_output=not flat)


# --- who is signed in ----------------------------------------------------------------------------
class SessionUser(UserMixin):
    """Flask-Login's user: the operator behind one session token (the id kept in the cookie)."""

    def __init__(self, op: Operator, token: str):
        self.op = op
        self.token = token

    def get_id(self) -> str:
        return self.token

    @property
    def is_active(self) -> bool:
        return self.op.active

    @property
    def language(self) -> str | None:  # read by dashboard.i18n.request_lang
        return self.op.language


def _auth_installed() -> bool:
    return hasattr(current_app, "login_manager")


def signed_in() -> Operator | None:
    """The signed-in operator of this request, or None."""
    if not _auth_installed():
        return None
    user = current_user
    return user.op if user and user.is_authenticated else None


def allowed(permission: Permission) -> bool:
    """May the signed-in operator do `permission`? (Without auth installed: yes, as before.)"""
    if not _auth_installed():
        return True
    op = signed_in()
    return op is not None and holds(op.may, permission)


def current_user_name() -> str | None:
    op = signed_in()
    return op.display_name if op else None


def session_token() -> str | None:
    """The signed-in browser's session token (to keep it when the operator changes the password)."""
    return current_user.token if signed_in() is not None else None


def source_address() -> str | None:
    return request.remote_addr


def accounts() -> Accounts:
    return current_app.config[ACCOUNTS]


def require(permission: Permission, target: str) -> Operator:
    """The signed-in operator if they may do `permission`; else the refusal is logged and
    PermissionDenied raised (answered 403 JSON)."""
    op = signed_in()
    if op is not None and holds(op.may, permission):
        return op
    if _auth_installed():
        accounts().record_denied(op.username if op else "-", _logged(permission), target, source_address())
    raise PermissionDenied(permission, target)


def forbidden_page(permission: str | None | access.PageAccess, lang: str):
    """What a page shows to an operator who may not open it (None: they may). `permission` is one
    permission or the page's rule in dashboard.access (the one the navbar reads)."""
    if permission.open_to(allowed) if isinstance(permission, access.PageAccess) else allowed(permission):
        return None
    return dbc.Container(dbc.Alert(t("auth.forbidden_page", lang), color="warning"), id=Shared.FORBIDDEN)


# --- installing it on the app --------------------------------------------------------------------
def install_auth(app: dash.Dash, accounts_: Accounts, secret_key: bytes, *, secure_cookies: bool = False,
                 limiter: Limiter | None = None, limits: LimitsConfig | None = None) -> None:
    """Sign-in, the route guard and the language hook on `app`'s Flask server. With a `limiter`
    (dashboard.websecurity), sign-in attempts are limited per client address and per user name."""
    server: Flask = app.server
    server.secret_key = secret_key
    server.config.update(
        SESSION_COOKIE_NAME="wattline_session", SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=secure_cookies, REMEMBER_COOKIE_HTTPONLY=True, REMEMBER_COOKIE_SAMESITE="Lax",
        REMEMBER_COOKIE_SECURE=secure_cookies,
    )
    server.config[ACCOUNTS] = accounts_
    server.config.setdefault(PUBLIC_ROUTES, set()).update(DEFAULT_PUBLIC_ROUTES)
    server.config.setdefault("WATTLINE_ON_LANGUAGE", []).append(_save_language)
    server.config[SECURITY_LOG] = _record_security_event

    manager = LoginManager()
    manager.init_app(server)

    @manager.user_loader
    def load_user(token: str):  # noqa: ANN202
        op = accounts_.session_operator(token)
        return SessionUser(op, token) if op else None

    server.before_request(_guard)
    server.register_error_handler(PermissionDenied, _denied_response)
    login_view = _login
    if limiter is not None and limits is not None:
        login_view = limiter.limit(limits.login_per_address, methods=["POST"], on_breach=_login_rate_limited)(login_view)
        login_view = limiter.limit(limits.login_per_user, key_func=_login_user_key, methods=["POST"],
                                   on_breach=_login_rate_limited)(login_view)
    server.add_url_rule("/login", "wattline_login", login_view, methods=["GET", "POST"])
    server.add_url_rule("/logout", "wattline_logout", _logout, methods=["GET", "POST"])

    # what the shell's navbar shows (dashboard.app reads these from the server's configuration)
    server.config[SHELL_HOOKS] = {"current_user_name": current_user_name, "allowed": allowed,
                                  "csrf_token": csrf_token}


def is_public(path: str) -> bool:
    for route in current_app.config.get(PUBLIC_ROUTES, DEFAULT_PUBLIC_ROUTES):
        if path == route or (route.endswith("/") and path.startswith(route)):
            return True
    return False


def _wants_json(path: str) -> bool:
    return path.startswith(JSON_PREFIXES) or request.accept_mimetypes.best == "application/json"


def _json(status: int, **body) -> Response:
    return Response(json.dumps(body, ensure_ascii=False), status=status, mimetype="application/json")


def _guard():  # noqa: ANN202
    path = request.path
    if is_public(path):
        return None
    if request.method not in ("GET", "HEAD", "OPTIONS") and not same_origin_request():
        # a signed-in browser sends its cookie on any site's form or fetch: only our own pages may change things
        security_event("request.cross_origin", path, method=request.method)
        return _json(403, error="cross_origin", message=t("auth.cross_origin", request_lang()))
    op = signed_in()
    if op is None:
        if _wants_json(path):
            return _json(401, error="login_required", message=t("auth.login_required", request_lang()), login="/login")
        return redirect("/login?next=" + quote(_this_target(), safe="/"))  # the whole target, its & too
    if op.must_change_password and not _wants_json(path) and path != "/account":
        return redirect("/account")
    if path == access.OVERVIEW.path and request.method in ("GET", "HEAD") and not access.OVERVIEW.open_to(op.may):
        return redirect(access.home_path(op.may))  # "/" is every operator's landing page after login
    if path == UPDATE_COMPONENT and request.method == "POST":
        body = request.get_json(silent=True)
        output = body.get("output") if isinstance(body, dict) else None
        entry = _BY_OUTPUT.get(output) if isinstance(output, str) else None  # other shapes: refused by Dash's view
        if entry is not None and not entry.open_to(op.may):
            accounts().record_denied(op.username, _logged(entry.permission), f"callback {entry.name}",
                                     source_address())
            return _denied_response(PermissionDenied(entry.permission, f"callback {entry.name}"), entry.name)
    return None


def _logged(permission: Permission) -> str | None:
    """The permission as the operation log's permission.denied row names it ("a|b": any one of them)."""
    return "|".join(permission) if isinstance(permission, tuple) else permission


def denied_message(permission: Permission, lang: str) -> str:
    """What a refused operator reads: the permission as the Permissions page names it, and its code."""
    if isinstance(permission, tuple):
        quote_ = "“{}”（{}）" if lang == "zh" else "“{}” ({})"
        labels = ("、" if lang == "zh" else ", ").join(quote_.format(permission_label(p, lang), p) for p in permission)
        return t("auth.denied_any", lang, labels=labels)
    return t("auth.denied", lang, label=permission_label(permission or "-", lang), permission=permission or "-")


def _denied_response(exc: PermissionDenied, name: str | None = None) -> Response:
    lang = request_lang()
    permission = list(exc.permission) if isinstance(exc.permission, tuple) else exc.permission
    return _json(403, error="forbidden", permission=permission,
                 callback=name or exc.target.removeprefix("callback "), message=denied_message(exc.permission, lang))


def _this_target() -> str:
    return request.full_path.rstrip("?") if request.query_string else request.path


def _safe_next(target: str | None) -> str:
    """Only a path on this site (dashboard.websecurity.local_target), and never back to the login or logout page."""
    target = local_target(target)
    if urlsplit(target).path in ("/login", "/logout"):
        return "/"
    return target


def csrf_token() -> str:
    """This browser session's form token (the login form, the sign-out button)."""
    token = session.get("csrf")
    if not token:
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


def _csrf_ok(sent: str | None) -> bool:
    token = session.get("csrf")
    return bool(token and sent and hmac.compare_digest(token, sent))


# --- /login and /logout --------------------------------------------------------------------------
def _login():  # noqa: ANN202
    lang = request_lang()
    if request.method == "GET":
        if signed_in() is not None:
            return redirect(_safe_next(request.args.get("next")))
        notice = t("auth.logged_out", lang) if request.args.get("bye") else None
        return _login_page(lang, request.args.get("next"), notice=notice)
    next_target = request.form.get("next")
    username = request.form.get("username", "")
    if not _csrf_ok(request.form.get("csrf_token")):
        return _login_page(lang, next_target, error=t("auth.csrf", lang), username=username, status=400)
    service = accounts()
    try:
        op = service.authenticate(username, request.form.get("password", ""), source_address())
    except LoginRefused as exc:
        return _login_page(lang, next_target, error=t(f"auth.error.{exc.key}", lang, **exc.params),
                           username=username, status=401)
    token = service.start_session(op, source_address())
    session.clear()  # a fresh session (and CSRF token) for the signed-in operator
    login_user(SessionUser(op, token))
    target = _safe_next(next_target)   # no page asked for: the operator's landing page (dashboard.access.home_path)
    resp = redirect("/account" if op.must_change_password else access.home_path(op.may) if target == "/" else target)
    if op.language:
        # The operator's saved language wins over what this browser showed before.
        resp.set_cookie(COOKIE, op.language, max_age=365 * 86400, httponly=True, samesite="Lax")
    else:
        service.set_language(op, lang, source_address())
    return resp


def _login_user_key() -> str:
    """The user name a sign-in attempt is for (any spelling of it shares one bucket)."""
    return "user:" + (request.form.get("username") or "").strip().casefold()[:100]


def _login_rate_limited(limit: RequestLimit) -> Response:
    """The sign-in form again, saying how long to wait; 429 with Retry-After. Nothing is checked."""
    lang = request_lang()
    note_rate_limited(limit, "login")
    seconds = retry_after(limit)
    resp = _login_page(lang, request.form.get("next"), error=t("auth.rate_limited", lang, seconds=seconds),
                       username=request.form.get("username", "")[:100], status=429)
    resp.headers["Retry-After"] = str(seconds)
    return resp


def _logout():  # noqa: ANN202
    """GET only shows a sign-out button: a link or an image on any page must not sign anybody out.
    The button posts the session's form token."""
    lang = request_lang()
    if signed_in() is None:
        return redirect("/login")
    if request.method == "GET":
        return _logout_page(lang)
    if not _csrf_ok(request.form.get("csrf_token")):
        security_event("auth.csrf_refused", request.path)
        return _logout_page(lang, error=t("auth.logout_expired", lang), status=400)
    accounts().end_session(current_user.token, current_user.op, source_address())
    logout_user()
    session.clear()
    return redirect("/login?bye=1")


def _record_security_event(action: str, target: str, details: dict) -> None:
    """SECURITY_LOG writer: the operation log, as the signed-in operator (or "-")."""
    op = signed_in() if has_request_context() else None
    accounts().record(op.username if op else "-", action, target, source_address(), after=details or None)


def _save_language(code: str) -> None:
    """WATTLINE_ON_LANGUAGE hook: the signed-in operator's choice is kept on the operator."""
    op = signed_in()
    if op is not None:
        accounts().set_language(op, code, source_address())


def _logout_page(lang: str, *, error: str | None = None, status: int = 200) -> Response:
    message = (f'<div class="alert alert-danger" role="alert" id="{Login.LOGOUT_ERROR}">{escape(error)}</div>'
               if error else "")
    sign_out = escape(t("nav.logout", lang))
    body = f"""<h2 class="h5 card-title mb-3">{escape(t("auth.logout_title", lang))}</h2>
    {message}
    <form method="post" action="/logout" id="{Shell.LOGOUT_FORM}">
      <input type="hidden" name="csrf_token" value="{escape(csrf_token())}">
      <button class="btn btn-primary w-100" type="submit" id="{Login.LOGOUT_SUBMIT}">{sign_out}</button>
    </form>
    <p class="mt-3 mb-0"><a href="/">{escape(t("auth.logout_stay", lang))}</a></p>"""
    return _card_page(lang, t("auth.logout_title", lang), body, status)


def _card_page(lang: str, title: str, body: str, status: int) -> Response:
    """The small centred card the sign-in and sign-out pages share (no script: CSP allows none here)."""
    other = "zh" if lang == "en" else "en"
    html = f"""<!DOCTYPE html>
<html lang="{'zh-CN' if lang == 'zh' else 'en'}">
<head>
<meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)} · {escape(t("app.title", lang))}</title>
<link rel="stylesheet" href="/assets/vendor/bootstrap/bootstrap.min.css">
<link rel="stylesheet" href="/assets/wattline.css">
</head>
<body class="bg-light">
<main class="container" style="max-width: 26rem; padding-top: 10vh">
  <div class="d-flex justify-content-between align-items-baseline mb-3">
    <h1 class="h4 mb-0">{escape(t("app.title", lang))}</h1>
    <a href="/lang/{other}?next={quote(request.path)}" id="{Shell.LANG_SWITCH}">{escape(t("lang.switch", lang))}</a>
  </div>
  <div class="card shadow-sm"><div class="card-body">
    {body}
  </div></div>
</main>
</body>
</html>"""
    resp = Response(html, status=status, mimetype="text/html")
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _login_page(lang: str, next_target: str | None, *, error: str | None = None, notice: str | None = None,
                username: str = "", status: int = 200) -> Response:
    other = "zh" if lang == "en" else "en"
    messages = []
    if not accounts().has_operators():
        messages.append(f'<div class="alert alert-warning" id="{Login.NO_OPERATOR}">'
                        f'{escape(t("auth.no_operator", lang))}'
                        f'<pre class="mb-0 mt-2"><code>python app.py user add admin --role admin</code></pre></div>')
    if notice:
        messages.append(f'<div class="alert alert-info" id="{Login.NOTICE}">{escape(notice)}</div>')
    if error:
        messages.append(f'<div class="alert alert-danger" role="alert" id="{Login.ERROR}">{escape(error)}</div>')
    body = f"""<h2 class="h5 card-title mb-3">{escape(t("auth.login_title", lang))}</h2>
    {''.join(messages)}
    <form method="post" action="/login" id="{Login.FORM}">
      <input type="hidden" name="csrf_token" value="{escape(csrf_token())}">
      <input type="hidden" name="next" value="{escape(_safe_next(next_target))}">
      <div class="mb-3">
        <label class="form-label" for="{Login.USERNAME}">{escape(t("auth.username", lang))}</label>
        <input class="form-control" id="{Login.USERNAME}" name="username" value="{escape(username)}"
               autocomplete="username" autofocus required>
      </div>
      <div class="mb-3">
        <label class="form-label" for="{Login.PASSWORD}">{escape(t("auth.password", lang))}</label>
        <input class="form-control" id="{Login.PASSWORD}" name="password" type="password"
               autocomplete="current-password" required>
      </div>
      <button class="btn btn-primary w-100" type="submit" id="{Login.SUBMIT}">{escape(t("auth.submit", lang))}</button>
    </form>"""
    return _card_page(lang, t("auth.login_title", lang), body, status)
