"""Request-level defences of the web server: same-site redirects and requests, rate limits, body limits, headers.

`install_request_guards(app, limits)` puts them on a Dash app's Flask server (serve.runtime does,
before the sign-in layer); the sign-in layer applies its own login limits with the limiter it returns.

- Request bodies: at most `limits.api_body_bytes` under /api/v1, `limits.body_bytes` elsewhere
  (413; JSON under /api/v1 and Dash's routes); the web server (waitress) is told the larger of the
  two, so a bigger body is refused before it is read. JSON nested deeper than Python parses is a 400.
- Unknown paths under /api/v1/ and /c/ are 404 (JSON under the API) instead of the page shell;
  the API's 405 is JSON too; each in the client's language.
- Rate limits (Flask-Limiter, in-memory: per serving process) on /api/v1 per client address and per
  bearer token; 429 with Retry-After. The address is the one the WSGI server resolved (behind a
  [server] trusted_proxy, waitress takes it from that proxy's X-Forwarded-For); no header is read here.
- Headers on every response: a Content-Security-Policy allowing only this site (Dash's inline scripts
  by hash, inline styles for Plotly), frame-ancestors 'none', X-Frame-Options, nosniff, Referrer-Policy.
"""
from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from urllib.parse import unquote, urlsplit

import dash
from flask import Flask, Response, current_app, request
from flask_limiter import Limiter, RequestLimit
from markupsafe import escape
from werkzeug.exceptions import RequestEntityTooLarge

from core.config import LimitsConfig
from dashboard.i18n import request_lang, t

_MAX_TARGET = 2000
API_PREFIX = "/api/v1"
API_BLUEPRINT = "payment_api"
CUSTOMER_PREFIX = "/c/"
CUSTOMER_BLUEPRINT = "customer_pages"


# --- where a redirect may lead ---------------------------------------------------------------------
def local_target(target: str | None, fallback: str = "/") -> str:
    """`target` if it is a path on this site, else `fallback`.

    Browsers drop tabs and newlines inside a URL and read a backslash as a slash, so "/\\t/evil.example"
    or "/\\\\evil.example" becomes "//evil.example", another site. Refused: anything that, as sent or
    percent-decoded (up to three times), has a control or other unprintable character, a backslash,
    a scheme or a host, does not start with "/", or starts with "//".
    """
    if not isinstance(target, str) or not target or len(target) > _MAX_TARGET:
        return fallback
    form = target
    for _ in range(4):
        if not _is_local_path(form):
            return fallback
        decoded = unquote(form)
        if decoded == form:
            return target
        form = decoded
    return fallback  # still percent-encoded after three rounds: nobody links like that


def _is_local_path(path: str) -> bool:
    if not path.startswith("/") or path.startswith("//") or "\\" in path:
        return False
    if not path.isprintable():  # controls (tab, CR, LF, NUL ...), line and paragraph separators
        return False
    parts = urlsplit(path)
    return not parts.scheme and not parts.netloc


# --- where a request came from ---------------------------------------------------------------------
def _origin_of(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


def same_origin_request(*, navigation: bool = False) -> bool:
    """Did this request come from one of this site's own pages?

    Sec-Fetch-Site (sent by current browsers) decides when present: "same-origin" passes, and for a
    top-level `navigation` (a link such as /lang/zh) "none" too (typed in the address bar, a
    bookmark). Without it, the Origin header, else the Referer, must name this site (scheme and host
    as the browser saw them, behind a trusted proxy too). A request with neither is refused: a
    cross-site page can suppress the Referer, and a state change must not depend on its goodwill.
    """
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site:
        return fetch_site == "same-origin" or (navigation and fetch_site == "none")
    here = (request.scheme.lower(), request.host.lower())
    origin = request.headers.get("Origin")
    if origin:  # "null": a sandboxed or privacy-stripped context, never one of our pages
        return origin != "null" and _origin_of(origin) == here
    referer = request.headers.get("Referer")
    if referer:
        return _origin_of(referer) == here
    return False


def referrer_path() -> str | None:
    """The path and query of the Referer when it is a page of this site."""
    referer = request.referrer
    if not referer or _origin_of(referer) != (request.scheme.lower(), request.host.lower()):
        return None
    parts = urlsplit(referer)
    return parts.path + (f"?{parts.query}" if parts.query else "")


# --- security events -------------------------------------------------------------------------------
SECURITY_LOG = "WATTLINE_SECURITY_LOG"  # app config: callable(action, target, details) writing the operation log


def security_event(action: str, target: str, **details) -> None:
    """A refused request worth an operation-log row (the auth layer installs the writer)."""
    writer = current_app.config.get(SECURITY_LOG)
    if writer is not None:
        writer(action, target[:200], details)


# --- installing --------------------------------------------------------------------------------------
def install_request_guards(app: dash.Dash, limits: LimitsConfig) -> Limiter:
    """Body limits, the API's and customer pages' 404s, rate limits and security headers on `app`.
    Returns the rate limiter (the sign-in layer adds its login limits to it)."""
    server: Flask = app.server
    server.config["MAX_CONTENT_LENGTH"] = max(limits.body_bytes, limits.api_body_bytes)
    # first of all before-request hooks: nothing reads a body or runs a route it should not
    server.before_request_funcs.setdefault(None, []).insert(0, lambda: _check_request(limits))
    server.register_error_handler(RequestEntityTooLarge, lambda _e: _too_large(limits))
    server.register_error_handler(RecursionError, lambda _e: refusal(400, "too_deep"))
    server.after_request(lambda resp: _security_headers(app, resp))

    limiter = Limiter(client_address, app=server, storage_uri="memory://", strategy="moving-window",
                      on_breach=_rate_limited)
    if API_BLUEPRINT in server.blueprints:
        api = server.blueprints[API_BLUEPRINT]
        limiter.shared_limit(limits.api_per_address, scope="api-address")(api)
        limiter.shared_limit(limits.api_per_client, scope="api-client", key_func=api_client_key)(api)
    return limiter


# --- rate limits -------------------------------------------------------------------------------------
def client_address() -> str:
    """The client's address as the WSGI server resolved it (the trusted proxy's X-Forwarded-For, or the
    socket's peer); never a header read here, which any client could make up."""
    return request.remote_addr or "-"


def api_client_key() -> str:
    """One bucket per bearer token (its hash: the token itself is never kept); no token: the address."""
    header = request.headers.get("Authorization", "")
    token = header[7:].strip() if header[:7].lower() == "bearer " else ""
    if not token:
        return f"anonymous:{client_address()}"
    return "token:" + hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()[:32]


def retry_after(limit: RequestLimit) -> int:
    return max(1, math.ceil(limit.reset_at - time.time()))


_logged_lock = threading.Lock()


def note_rate_limited(limit: RequestLimit, scope: str) -> None:
    """The operation log gets one row per key and window when a limit is reached, not one per refused
    request: a flood must not turn into a flood of writes."""
    logged: dict[str, float] = current_app.extensions.setdefault("wattline_rate_limited", {})
    key = f"{scope}|{limit.key}"
    now = time.time()
    with _logged_lock:
        if logged.get(key, 0) > now:
            return
        for old in [k for k, until in logged.items() if until <= now]:
            del logged[old]
        logged[key] = limit.reset_at
    security_event("request.rate_limited", request.path, scope=scope, limit=str(limit.limit),
                   key=str(limit.request_args[0])[:120], address=client_address())


def _rate_limited(limit: RequestLimit) -> Response | None:
    """The API's limits. (Flask-Limiter calls this for every breach, then the route's own handler, whose
    answer wins: the sign-in form answers its own.)"""
    if not _is_api(request.path):
        return None
    note_rate_limited(limit, "api")
    seconds = retry_after(limit)
    resp = refusal(429, "rate_limited", seconds=seconds)
    resp.headers["Retry-After"] = str(seconds)
    return resp


# --- bodies, unknown paths, refusals -----------------------------------------------------------------
def _is_api(path: str) -> bool:
    return path == API_PREFIX or path.startswith(API_PREFIX + "/")


def _check_request(limits: LimitsConfig) -> Response | None:
    path = request.path
    api = _is_api(path)
    if api or path.startswith(CUSTOMER_PREFIX):
        owner = API_BLUEPRINT if api else CUSTOMER_BLUEPRINT
        code = getattr(request.routing_exception, "code", None)
        if code == 405:
            resp = refusal(405, "method_not_allowed")
            resp.headers["Allow"] = ", ".join(sorted(request.routing_exception.valid_methods or ()))
            return resp
        if code == 404 or (code is None and request.blueprint != owner):
            return refusal(404, "not_found")  # not the page shell Dash serves for any other path
    limit = limits.api_body_bytes if api else limits.body_bytes
    request.max_content_length = limit  # a body sent in chunks (no Content-Length) is cut off at this size
    if request.content_length is not None and request.content_length > limit:
        return _too_large(limits)
    return None


def _too_large(limits: LimitsConfig) -> Response:
    limit = limits.api_body_bytes if _is_api(request.path) else limits.body_bytes
    return refusal(413, "body_too_large", limit=_size(limit))


def _size(n: int) -> str:
    for unit, factor in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= factor:
            return f"{n / factor:g} {unit}"
    return f"{n} B"


_API_CODES = {404: "api_not_found", 405: "api_method_not_allowed"}  # the API's own codes (billing.error.*)
_CODES = {"too_deep": "body_too_deep"}


def refusal(status: int, key: str, **params) -> Response:
    """A request refused before any route ran: JSON under /api/v1 ({code, message}) and Dash's routes
    ({error, message}), a small page elsewhere; in the client's language."""
    lang = request_lang()
    path = request.path
    if _is_api(path):
        code = _API_CODES.get(status) if key in ("not_found", "method_not_allowed") else None
        message = t(f"billing.error.{code}", lang) if code else t(f"http.{key}", lang, **params)
        body = {"code": code or _CODES.get(key, key), "message": message}
        return Response(json.dumps(body, ensure_ascii=False), status=status, mimetype="application/json")
    message = t(f"http.{key}", lang, **params)
    if path.startswith("/_") or request.accept_mimetypes.best == "application/json":
        return Response(json.dumps({"error": key, "message": message}, ensure_ascii=False), status=status,
                        mimetype="application/json")
    html = (f'<!DOCTYPE html><html lang="{"zh-CN" if lang == "zh" else "en"}"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>{escape(t("app.title", lang))}</title>'
            f'<link rel="stylesheet" href="/assets/vendor/bootstrap/bootstrap.min.css"></head>'
            f'<body class="bg-light"><main class="container py-5"><div class="alert alert-warning" id="refusal">'
            f'{escape(message)}</div></main></body></html>')
    return Response(html, status=status, mimetype="text/html")


# --- headers -----------------------------------------------------------------------------------------
_CSP = ("default-src 'self'; script-src 'self'{hashes}; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; object-src 'none'; "
        "base-uri 'self'; form-action 'self'; frame-ancestors 'none'")


def content_security_policy(app: dash.Dash | None, html: bool) -> str:
    """No other host, ever; scripts from this site plus Dash's own inline scripts, allowed by their
    hashes (app.csp_hashes(): the renderer and the clientside callbacks); inline styles because Plotly
    writes <style> elements and style attributes."""
    hashes = " " + " ".join(app.csp_hashes()) if html and app is not None else ""
    return _CSP.format(hashes=hashes)


def _security_headers(app: dash.Dash, resp: Response) -> Response:
    html = resp.mimetype == "text/html"
    headers = resp.headers
    if "Content-Security-Policy" not in headers:
        headers["Content-Security-Policy"] = content_security_policy(app, html)
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "same-origin")
    return resp
