"""The phone's HTTP routes beside Dash's (under /_field/, answered in JSON): resumable evidence uploads, evidence
files, and the terminal's report of itself.

Signed-in session (the auth layer's guard: JSON 401 under "/_"), same-origin (the guard) and the session's form
token in the X-CSRF-Token header on every change (dashboard.auth.csrf_token, put on the worker's pages). A worker
reaches only their own orders and files: anything else is a 404 like a file that does not exist, written to the
operation log.

    POST /_field/uploads               {"upload_id", "size", "sha256", "kind", "order_id", "step", "name", "lat", "lon"}
    GET  /_field/uploads/<upload_id>   where it stands: {"upload_id", "size", "received", "evidence_id"}
    PUT  /_field/uploads/<upload_id>?offset=N   the bytes from N (409 with "received" when N is not the server's)
    GET  /_field/evidence/<id>         the file (its sniffed type; attachment unless an image or media)
    POST /_field/seen                  {"app_version", "lat", "lon"}: this phone was seen (registered the first time)

A phone the office blocked (its device cookie names a blocked terminal of the signed-in worker) is refused every
one of these: 403 {"error": "terminal_blocked", "message"}, nothing stored.
"""
from __future__ import annotations

import hmac
import json
import secrets

from flask import Blueprint, Response, request, send_file, session

from core import permissions as P
from dashboard.i18n import request_lang, t
from workorders.evidence import FieldError

FIELD_PREFIX = "/_field"
DEVICE_COOKIE = "wattline_device"
CSRF_HEADER = "X-CSRF-Token"
_ANY_FIELD = (P.WORKORDER_EXECUTE, P.WORKORDER_DISPATCH, P.WORKORDER_REVIEW)


def _json(status: int, **body) -> Response:
    resp = Response(json.dumps(body, ensure_ascii=False, default=str), status=status, mimetype="application/json")
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _refused(exc: FieldError) -> Response:
    return _json(exc.status, error=exc.code, message=exc.message(request_lang()), **{
        k: v for k, v in exc.params.items() if k == "received"})


def _state(state) -> Response:
    return _json(200, upload_id=state.upload_id, size=state.size, received=state.received,
                 evidence_id=state.evidence_id)


def device_blocked(field_service) -> bool:
    """Whether this request comes from a phone the office blocked (the signed-in worker's device cookie)."""
    from dashboard.auth import signed_in
    op = signed_in()
    key = request.cookies.get(DEVICE_COOKIE)
    return bool(op is not None and key and field_service().device_blocked(op.username, key))


def field_routes(field_service) -> Blueprint:
    """`field_service()` returns the serving process's workorders.field.FieldService."""
    from dashboard.auth import require, signed_in
    from dashboard.services import actor

    bp = Blueprint("field_routes", __name__, url_prefix=FIELD_PREFIX)

    def who():
        require(_ANY_FIELD, f"route {request.path[:80]}")
        return field_service().uploader(actor())

    def csrf_ok() -> bool:
        token, sent = session.get("csrf"), request.headers.get(CSRF_HEADER)
        return bool(token and sent and hmac.compare_digest(token, sent))

    @bp.before_request
    def _checks():  # noqa: ANN202
        if request.method not in ("GET", "HEAD") and not csrf_ok():
            from dashboard.websecurity import security_event
            security_event("auth.csrf_refused", request.path)
            return _json(403, error="csrf", message=t("field.error.csrf", request_lang()))
        if device_blocked(field_service):
            return _json(403, error="terminal_blocked", message=t("field.error.terminal_blocked", request_lang()))
        return None

    @bp.errorhandler(FieldError)
    def _field_error(exc: FieldError):  # noqa: ANN202
        return _refused(exc)

    @bp.post("/uploads")
    def start_upload():  # noqa: ANN202
        uploader = who()
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            raise FieldError("bad_upload_id")
        state = field_service().evidence.start(
            uploader, upload_id=body.get("upload_id"), size=body.get("size"), sha256=body.get("sha256"),
            kind=body.get("kind"), order_id=body.get("order_id"), step=body.get("step"), name=body.get("name"),
            lat=body.get("lat"), lon=body.get("lon"))
        return _state(state)

    @bp.get("/uploads/<upload_id>")
    def upload_status(upload_id: str):  # noqa: ANN202
        return _state(field_service().evidence.status(who(), upload_id))

    @bp.put("/uploads/<upload_id>")
    def upload_chunk(upload_id: str):  # noqa: ANN202
        uploader = who()
        store = field_service().evidence
        if request.content_length is not None and request.content_length > store.cfg.chunk_bytes:
            raise FieldError("chunk_too_large", 413, limit=f"{store.cfg.chunk_bytes // 1024} KiB")
        data = request.get_data(cache=False)
        return _state(store.put_chunk(uploader, upload_id, request.args.get("offset"), data))

    @bp.get("/evidence/<evidence_id>")
    def evidence_file(evidence_id: str):  # noqa: ANN202
        row, path = field_service().evidence.file_for(who(), evidence_id)
        inline = row["mime"].split("/")[0] in ("image", "audio", "video")
        resp = send_file(path, mimetype=row["mime"], as_attachment=not inline,
                         download_name=row["name"] or f"evidence-{row['id']}", conditional=True, max_age=0)
        resp.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
        resp.headers["Cache-Control"] = "private, no-store"
        return resp

    @bp.post("/seen")
    def seen():  # noqa: ANN202
        op = signed_in()
        require(_ANY_FIELD, "route /_field/seen")
        body = request.get_json(silent=True)
        body = body if isinstance(body, dict) else {}
        key = request.cookies.get(DEVICE_COOKIE) or ""
        new_key = None
        if len(key) < 20:
            key = new_key = secrets.token_urlsafe(32)
        tid = field_service().seen(op.username, key, user_agent=request.headers.get("User-Agent"),
                                   app_version=body.get("app_version"), lat=body.get("lat"), lon=body.get("lon"))
        if tid is None:  # a cookie that is not one of ours: a fresh key
            key = new_key = secrets.token_urlsafe(32)
            tid = field_service().seen(op.username, key, user_agent=request.headers.get("User-Agent"),
                                       app_version=body.get("app_version"), lat=body.get("lat"), lon=body.get("lon"))
        resp = _json(200, terminal=tid)
        if new_key:
            resp.set_cookie(DEVICE_COOKIE, new_key, max_age=5 * 365 * 86400, httponly=True, samesite="Strict",
                            secure=request.is_secure)
        return resp

    return bp
