"""The payment API (/api/v1): bearer-token clients sell to meters and look up meters and receipts.

Its own authentication (Authorization: Bearer <token>; only the token's SHA-256 is stored), not the
operators' sign-in. POST /sales is idempotent by request_id: a repeated id returns the first
result and never sells twice (the ledger's request_id is unique and the sale runs under the
meter's lock). Errors are JSON {code, message}, the message in the Accept-Language (en / zh).
Every call is written to the operation log as api.<endpoint> by "api:<client name>".
"""
from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
from decimal import Decimal

from flask import Blueprint, Response, g, request

from billing.context import BillingContext
from billing.credit import Actor
from billing.errors import BillingError
from billing.ledger import EntryView, get_entry, sell
from billing.views import meter_summary, meters_list
from core import permissions as P
from storage import audit
from storage import billing as store

PREFIX = "/api/v1"
NOT_FOUND = {"meter_unknown", "entry_unknown", "account_unknown"}
CONFLICT = {"request_id_reused"}
FORBIDDEN = {"permission_denied"}
MALFORMED = {"amount_not_a_number", "amount_missing", "amount_too_precise", "amount_zero", "amount_negative",
             "amount_too_large", "amount_too_long", "amount_decimal_comma", "amount_thousands_separator",
             "amount_exponent", "request_id_invalid", "request_id_missing", "body_invalid", "filter_invalid"}
# What a payment client may do: its token's scope, as the gate (billing.credit) checks it for every sale.
PAYMENT_SCOPE = frozenset({P.SALE_CREATE})
MAX_WAIT_S = 10.0
MAX_PAGE, MAX_PAGE_SIZE = 1_000_000, 500
_RECEIPT_NO = re.compile(r"[A-Za-z0-9-]{1,30}")   # S20261121-000042, K00000001 ...
_ADDRESS = re.compile(r"[0-9]{12}")


# ---------------------------------------------------------------------------------------------
# clients

def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_api_client(ctx: BillingContext, name: str, operator: str, token: str | None = None,
                      remote: str | None = None) -> str:
    """Register a client; returns its token (shown once: only the hash is kept)."""
    name = " ".join(str(name or "").split())
    if not name or len(name) > 100 or not name.isprintable():
        raise BillingError("api_client_name_invalid")
    token = token or secrets.token_urlsafe(32)
    if len(token) < 16:
        raise BillingError("api_token_too_short")
    now = ctx.now()
    with ctx.engine.begin() as conn:
        if store.api_client_by_name(conn, name) is not None:
            raise BillingError("api_client_exists", name=name)
        store.insert_api_client(conn, name=name, token_hash=hash_token(token), created_by=operator, created_at=now)
        audit.record(conn, operator=operator, action="billing.api_client_add", target=f"api_client:{name}", ts=now,
                     source=remote)
    return token


def revoke_api_client(ctx: BillingContext, name: str, operator: str, remote: str | None = None) -> bool:
    """Revoke the client of this name; False when there is no active one (a name no client can have included)."""
    if not isinstance(name, str) or not name or len(name) > 100 or not name.isprintable():
        return False
    now = ctx.now()
    with ctx.engine.begin() as conn:
        done = store.revoke_api_client(conn, name, now)
        audit.record(conn, operator=operator, action="billing.api_client_revoke", target=f"api_client:{name}", ts=now, source=remote,
                     after={"revoked": done})
    return done


def ensure_api_client(ctx: BillingContext, name: str, token: str, operator: str) -> None:
    """The demo's client: created with this token, or its token replaced if it changed."""
    with ctx.engine.begin() as conn:
        row = store.api_client_by_name(conn, name)
        if row is not None and row["token_hash"] == hash_token(token) and row["revoked_at"] is None:
            return
        if row is not None:
            from storage.schema import api_client
            conn.execute(api_client.update().where(api_client.c.id == row["id"]).values(
                token_hash=hash_token(token), revoked_at=None))
            audit.record(conn, operator=operator, action="billing.api_client_token", target=f"api_client:{name}",
                         ts=ctx.now())
            return
    create_api_client(ctx, name, operator, token)


# ---------------------------------------------------------------------------------------------

def _lang() -> str:
    best = request.accept_languages.best_match(["en", "zh", "zh-CN", "zh-TW"]) if request.accept_languages else None
    return "zh" if best and best.startswith("zh") else "en"


def _json(status: int, body: dict, headers: dict | None = None) -> Response:
    return Response(json.dumps(body, ensure_ascii=False, default=str), status=status,
                    mimetype="application/json", headers=headers)


def _error(status: int, code: str, **params) -> Response:
    g.api_error = code
    return _json(status, {"code": code, "message": BillingError(code, **params).message(_lang())})


def _billing_error(exc: BillingError) -> Response:
    status = (404 if exc.code in NOT_FOUND else 409 if exc.code in CONFLICT else 403 if exc.code in FORBIDDEN
              else 400 if exc.code in MALFORMED else 422)
    g.api_error = exc.code
    return _json(status, {"code": exc.code, "message": exc.message(_lang())})


def sale_json(view: EntryView) -> dict:
    e = view.as_json()
    return {"receipt_no": e["receipt_no"], "kind": e["kind"], "meter_address": e["meter_address"],
            "amount": e["amount"], "purchase_count": e["purchase_count"], "state": e["state"],
            "created_at": e["created_at"], "confirmed_at": e["confirmed_at"], "balance_after": e["balance_after"],
            "failure": e["failure"], "request_id": e["request_id"], "reverses_receipt_no": e["reverses_receipt_no"],
            "command": {"state": e["command_state"], "result": e["command_result"]}}


def payment_api(ctx: BillingContext) -> Blueprint:
    bp = Blueprint("payment_api", __name__, url_prefix=PREFIX)

    @bp.before_request
    def authenticate():  # noqa: ANN202
        g.api_client = None
        g.api_error = None
        g.api_started = time.perf_counter()
        if request.path == f"{PREFIX}/openapi.json":
            return None
        header = request.headers.get("Authorization", "")
        token = header[7:].strip() if header[:7].lower() == "bearer " else ""
        row = None
        if token:
            with ctx.engine.connect() as conn:
                row = store.api_client_by_hash(conn, hash_token(token))
        if row is None or row["revoked_at"] is not None:
            resp = _error(401, "api_unauthorized")
            resp.headers["WWW-Authenticate"] = 'Bearer realm="wattline"'
            return resp
        g.api_client = row["name"]
        return None

    @bp.after_request
    def record(resp: Response) -> Response:
        try:
            with ctx.engine.begin() as conn:
                audit.record(conn, operator=f"api:{g.get('api_client') or 'anonymous'}",
                             action=f"api.{request.endpoint.rsplit('.', 1)[-1] if request.endpoint else 'unknown'}",
                             target=request.path[:200], ts=ctx.now(), source=request.remote_addr,
                             after={"method": request.method, "status": resp.status_code,
                                    "code": g.get("api_error")})
        except Exception:  # the answer stands even if the log write fails; the sale itself was logged in its own transaction
            pass
        return resp

    @bp.errorhandler(BillingError)
    def billing_error(exc: BillingError):  # noqa: ANN202
        return _billing_error(exc)

    @bp.errorhandler(404)
    def not_found(_exc):  # noqa: ANN202
        return _error(404, "api_not_found")

    @bp.errorhandler(405)
    def not_allowed(_exc):  # noqa: ANN202
        return _error(405, "api_method_not_allowed")

    @bp.post("/sales")
    def create_sale():  # noqa: ANN202
        try:
            body = json.loads(request.get_data(as_text=True) or "null", parse_float=Decimal)
        except ValueError:
            raise BillingError("body_invalid") from None
        if not isinstance(body, dict):
            raise BillingError("body_invalid")
        if body.get("request_id") in (None, ""):
            raise BillingError("request_id_missing")
        client = Actor(f"api:{g.api_client}", PAYMENT_SCOPE, address=request.remote_addr, channel="api")
        view = sell(ctx, str(body.get("meter_address") or ""), body.get("amount"), client,
                    request_id=str(body["request_id"]))
        wait = body.get("wait_s")
        if isinstance(wait, (int, Decimal)) and not isinstance(wait, bool) and wait > 0:
            view = _wait_settled(ctx, view, min(float(wait), MAX_WAIT_S))
        status = 200 if view.replayed else 201
        return _json(status, {"sale": sale_json(view), "replayed": view.replayed},
                     {"Location": f"{PREFIX}/sales/{view.receipt_no}"})

    @bp.get("/sales/<receipt_no>")
    def get_sale(receipt_no: str):  # noqa: ANN202
        if not _RECEIPT_NO.fullmatch(receipt_no):  # names no entry; and PostgreSQL cannot be asked about a NUL
            raise BillingError("entry_unknown", receipt=_shown(receipt_no))
        return _json(200, {"sale": sale_json(get_entry(ctx, receipt_no))})

    @bp.get("/meters/<address>")
    def get_meter(address: str):  # noqa: ANN202
        if not _ADDRESS.fullmatch(address):
            raise BillingError("meter_unknown", meter=_shown(address))
        return _json(200, {"meter": meter_summary(ctx, address)})

    @bp.get("/meters")
    def list_meters():  # noqa: ANN202
        page = _whole_number("page", 1, MAX_PAGE)
        size = _whole_number("page_size", 50, MAX_PAGE_SIZE)
        building = request.args.get("building") or None
        if building is not None and not building.isprintable():
            raise BillingError("filter_invalid", name="building", value=_shown(building))
        return _json(200, meters_list(ctx, building=building, status=request.args.get("state") or None, page=page,
                                      page_size=size))

    @bp.get("/openapi.json")
    def openapi():  # noqa: ANN202
        return _json(200, openapi_document())

    return bp


def _whole_number(name: str, default: int, highest: int) -> int:
    """A query parameter that is a whole number from 1 to `highest` in ASCII digits (absent: `default`); else
    filter_invalid (400). int() would take "٥", "５０", " 5" and "1_0", and a huge page overflows the query."""
    text = request.args.get(name)
    if text is None:
        return default
    if not (text.isascii() and text.isdigit() and len(text) <= len(str(highest))) or not 1 <= int(text) <= highest:
        raise BillingError("filter_invalid", name=name, value=_shown(text))
    return int(text)


def _shown(text: str) -> str:
    """A value as a message may quote it: printable, at most 40 characters."""
    return "".join(ch if ch.isprintable() else "?" for ch in text[:40])


def _wait_settled(ctx: BillingContext, view: EntryView, wait_s: float) -> EntryView:
    deadline = time.monotonic() + wait_s
    while view.state == "pending" and time.monotonic() < deadline:
        time.sleep(0.1)
        view = get_entry(ctx, view.receipt_no)
    return view


# ---------------------------------------------------------------------------------------------

def openapi_document() -> dict:
    error = {"$ref": "#/components/responses/Error"}
    money = {"type": "string", "pattern": r"^-?[0-9]+\.[0-9]{2}$", "example": "50.00"}
    sale = {"type": "object", "properties": {
        "receipt_no": {"type": "string", "example": "S20261121-000042"},
        "kind": {"type": "string", "enum": ["sale", "refund", "reversal", "transfer_in", "closing_refund"]},
        "meter_address": {"type": "string", "pattern": "^[0-9]{12}$"},
        "amount": money, "purchase_count": {"type": "integer"},
        "state": {"type": "string", "enum": ["pending", "confirmed", "failed"]},
        "created_at": {"type": "string", "format": "date-time", "example": "2026-03-01T08:00:00Z"},
        "confirmed_at": {"type": "string", "format": "date-time", "nullable": True},
        "balance_after": {**money, "nullable": True}, "failure": {"type": "string", "nullable": True},
        "request_id": {"type": "string", "nullable": True},
        "reverses_receipt_no": {"type": "string", "nullable": True},
        "command": {"type": "object", "properties": {
            "state": {"type": "string", "enum": ["queued", "sent", "acked", "failed", "expired"]},
            "result": {"type": "string", "nullable": True}}}}}
    meter = {"type": "object", "properties": {
        "meter_address": {"type": "string"}, "status": {"type": "string", "enum": ["not_opened", "opened", "removed"]},
        "building": {"type": "string"}, "room": {"type": "string"},
        "account": {"type": "object", "nullable": True, "properties": {
            "id": {"type": "integer"}, "status": {"type": "string"}, "holder": {"type": "string"}}},
        "balance": {**money, "nullable": True},
        "balance_read_at": {"type": "string", "format": "date-time", "nullable": True, "example": "2026-03-01T08:00:00Z"},
        "purchase_count": {"type": "integer", "nullable": True}, "comm_state": {"type": "string", "nullable": True},
        "relay_closed": {"type": "boolean", "nullable": True},
        "pending_receipts": {"type": "array", "items": {"type": "string"}}}}
    lang = {"name": "Accept-Language", "in": "header", "required": False,
            "schema": {"type": "string", "example": "zh-CN"}, "description": "language of error messages (en, zh)"}
    return {
        "openapi": "3.0.3",
        "info": {"title": "Wattline payment API", "version": "1.0.0",
                 "description": "Sell electricity to prepaid meters and look up meters and receipts. Amounts are "
                                "yuan with two decimals (send them as strings to keep them exact). Times are "
                                "ISO 8601 in UTC with a trailing Z (2026-03-01T08:00:00Z), whatever the site's "
                                "time zone; the web pages show them in the site's zone."},
        "servers": [{"url": PREFIX}],
        "security": [{"bearerAuth": []}],
        "paths": {
            "/sales": {"post": {
                "operationId": "createSale", "summary": "Sell to a meter (idempotent by request_id)",
                "parameters": [lang],
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["meter_address", "amount", "request_id"], "properties": {
                        "meter_address": {"type": "string", "pattern": "^[0-9]{12}$"},
                        "amount": {"oneOf": [money, {"type": "number", "multipleOf": 0.01}]},
                        "request_id": {"type": "string", "pattern": r"^[A-Za-z0-9._:\-]{1,64}$"},
                        "wait_s": {"type": "number", "maximum": MAX_WAIT_S,
                                   "description": "wait up to this many seconds for the meter's answer"}}}}}},
                "responses": {
                    "201": {"description": "sold; the RECHARGE command is on its way",
                            "content": {"application/json": {"schema": {"type": "object", "properties": {
                                "sale": {"$ref": "#/components/schemas/Sale"}, "replayed": {"type": "boolean"}}}}}},
                    "200": {"description": "this request_id was sold before: the first result",
                            "content": {"application/json": {"schema": {"type": "object", "properties": {
                                "sale": {"$ref": "#/components/schemas/Sale"}, "replayed": {"type": "boolean"}}}}}},
                    "400": error, "401": error, "403": error, "404": error, "409": error, "422": error}}},
            "/sales/{receipt_no}": {"get": {
                "operationId": "getSale", "summary": "A ledger entry by receipt number",
                "parameters": [{"name": "receipt_no", "in": "path", "required": True, "schema": {"type": "string"}},
                               lang],
                "responses": {"200": {"description": "the entry", "content": {"application/json": {"schema": {
                    "type": "object", "properties": {"sale": {"$ref": "#/components/schemas/Sale"}}}}}},
                    "401": error, "404": error}}},
            "/meters": {"get": {
                "operationId": "listMeters", "summary": "Meters, filtered and paged",
                "parameters": [
                    {"name": "building", "in": "query", "schema": {"type": "string"}},
                    {"name": "state", "in": "query", "schema": {"type": "string",
                                                                "enum": ["not_opened", "opened", "removed"]}},
                    {"name": "page", "in": "query",
                     "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 1}},
                    {"name": "page_size", "in": "query",
                     "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE, "default": 50}}, lang],
                "responses": {"200": {"description": "one page", "content": {"application/json": {"schema": {
                    "type": "object", "properties": {
                        "page": {"type": "integer"}, "page_size": {"type": "integer"}, "total": {"type": "integer"},
                        "items": {"type": "array", "items": {"type": "object"}}}}}}},
                    "400": error, "401": error}}},
            "/meters/{address}": {"get": {
                "operationId": "getMeter", "summary": "One meter: account, known balance, last reading",
                "parameters": [{"name": "address", "in": "path", "required": True,
                                "schema": {"type": "string", "pattern": "^[0-9]{12}$"}}, lang],
                "responses": {"200": {"description": "the meter", "content": {"application/json": {"schema": {
                    "type": "object", "properties": {"meter": {"$ref": "#/components/schemas/Meter"}}}}}},
                    "401": error, "404": error}}},
        },
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Sale": sale, "Meter": meter, "Error": {"type": "object", "required": ["code", "message"],
                                                               "properties": {"code": {"type": "string"},
                                                                              "message": {"type": "string"}}}},
            "responses": {"Error": {"description": "an error", "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/Error"}}}}},
        },
    }
