"""The JSON API (/api/v1): bearer-token clients sell to meters, look up meters and receipts (scope `payment`), and
send batch commands to meters (scope `control`: POST /commands, GET /commands/<batch>, billing.control).

Its own authentication (Authorization: Bearer <token>; only the token's SHA-256 is stored), not the
operators' sign-in. POST /sales is idempotent by request_id: a repeated id returns the first
result and never sells twice (the ledger's request_id is unique and the sale runs under the
meter's lock). Errors are JSON {code, message}, the message in the Accept-Language (en / zh). A client holds
only the scopes it was given (api_client.scopes; NULL: payment, as every client of before); a payment client
cannot cut power.
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

from billing import control
from billing.context import BillingContext
from billing.credit import Actor
from billing.errors import BillingError
from billing.ledger import EntryView, get_entry, sell
from billing.views import meter_summary, meters_list
from core import permissions as P
from storage import audit
from storage import billing as store

PREFIX = "/api/v1"
NOT_FOUND = {"meter_unknown", "entry_unknown", "account_unknown", "batch_unknown"}
CONFLICT = {"request_id_reused"}
FORBIDDEN = {"permission_denied", "scope_missing"}
MALFORMED = {"selection_meters_invalid", "selection_both", "selection_missing", "selection_floor_invalid",
             "limits_invalid", "action_unknown", "nothing_selected", "too_many_numbers", "amount_not_a_number", "amount_missing", "amount_too_precise", "amount_zero", "amount_negative",
             "amount_too_large", "amount_too_long", "amount_decimal_comma", "amount_thousands_separator",
             "amount_exponent", "request_id_invalid", "request_id_missing", "body_invalid", "filter_invalid"}
# What a payment client may do: its token's scope, as the gate (billing.credit) checks it for every sale.
PAYMENT_SCOPE = frozenset({P.SALE_CREATE})
# What a control client may do: batch relay commands, price and settings pushes (billing.control checks them).
CONTROL_SCOPE = frozenset({P.RELAY_BATCH, P.TARIFF_PUSH, P.SETTINGS_PUSH})
# What a report client may do: read reports (GET /reports/<name>, reports.api); it cannot sell nor send commands.
REPORTS_SCOPE = frozenset({P.REPORT_VIEW})
# What a ticket feed may do: take in work orders and read their state (POST/GET /workorders, workorders.api).
WORKORDERS_SCOPE = frozenset({P.WORKORDER_DISPATCH})
SCOPES: dict[str, frozenset[str]] = {"payment": PAYMENT_SCOPE, "control": CONTROL_SCOPE, "reports": REPORTS_SCOPE,
                                     "workorders": WORKORDERS_SCOPE}
DEFAULT_SCOPES = ("payment",)
MAX_WAIT_S = 10.0
MAX_PAGE, MAX_PAGE_SIZE = 1_000_000, 500
_RECEIPT_NO = re.compile(r"[A-Za-z0-9-]{1,30}")   # S20261121-000042, K00000001 ...
_ADDRESS = re.compile(r"[0-9]{12}")
_BATCH = re.compile(r"[A-Za-z0-9-]{1,40}")


# ---------------------------------------------------------------------------------------------
# clients

def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def scopes_text(scopes) -> str:
    """Scopes as stored: known names, space-separated, in SCOPES order; BillingError api_scope_invalid otherwise."""
    wanted = set(scopes or DEFAULT_SCOPES)
    if not wanted or wanted - set(SCOPES):
        raise control.ControlError("scope_invalid", scopes=", ".join(sorted(str(w) for w in wanted)),
                                   known=", ".join(SCOPES))
    return " ".join(name for name in SCOPES if name in wanted)


def client_scopes(row: dict) -> tuple[str, ...]:
    return tuple((row.get("scopes") or " ".join(DEFAULT_SCOPES)).split())


def scope_permissions(scopes) -> frozenset[str]:
    return frozenset().union(*(SCOPES.get(s, frozenset()) for s in scopes))


def create_api_client(ctx: BillingContext, name: str, operator: str, token: str | None = None,
                      remote: str | None = None, scopes=DEFAULT_SCOPES) -> str:
    """Register a client holding `scopes` (payment, control); returns its token (shown once: only the hash is kept)."""
    scopes = scopes_text(scopes)
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
        store.insert_api_client(conn, name=name, token_hash=hash_token(token), created_by=operator, created_at=now,
                                scopes=scopes)
        audit.record(conn, operator=operator, action="billing.api_client_add", target=f"api_client:{name}", ts=now,
                     source=remote, after={"scopes": scopes})
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


def ensure_api_client(ctx: BillingContext, name: str, token: str, operator: str, scopes=tuple(SCOPES)) -> None:
    """The demo's client (every scope): created with this token, or its token and scopes replaced if they changed."""
    scopes = scopes_text(scopes)
    with ctx.engine.begin() as conn:
        row = store.api_client_by_name(conn, name)
        if (row is not None and row["token_hash"] == hash_token(token) and row["revoked_at"] is None
                and row.get("scopes") == scopes):
            return
        if row is not None:
            from storage.schema import api_client
            conn.execute(api_client.update().where(api_client.c.id == row["id"]).values(
                token_hash=hash_token(token), revoked_at=None, scopes=scopes))
            audit.record(conn, operator=operator, action="billing.api_client_token", target=f"api_client:{name}",
                         ts=ctx.now())
            return
    create_api_client(ctx, name, operator, token, scopes=scopes.split())


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
    status = getattr(exc, "http_status", None) or (404 if exc.code in NOT_FOUND else 409 if exc.code in CONFLICT else 403 if exc.code in FORBIDDEN
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


class ApiHelpers:
    """What an extension's routes share with this API's own: the scope check, the client's language, JSON."""
    require_scope = staticmethod(lambda scope: _require_scope(scope))
    lang = staticmethod(lambda: _lang())
    json = staticmethod(lambda status, body, headers=None: _json(status, body, headers))
    client = staticmethod(lambda: _client())    # the calling client as an Actor (its scopes' permissions)


def payment_api(ctx: BillingContext, extensions=()) -> Blueprint:
    """The JSON API. `extensions`: objects with routes(bp, ApiHelpers) and openapi_paths(lang, error) (the reports
    API, reports.api.ReportsApi): their routes share this blueprint's authentication, operation log and errors."""
    bp = Blueprint("payment_api", __name__, url_prefix=PREFIX)
    for extension in extensions:
        extension.routes(bp, ApiHelpers)

    @bp.before_request
    def authenticate():  # noqa: ANN202
        g.api_client = None
        g.api_scopes = ()
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
        g.api_scopes = client_scopes(row)
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
        body = _body()
        if body.get("request_id") in (None, ""):
            raise BillingError("request_id_missing")
        client = _client()
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

    @bp.post("/commands")
    def create_commands():  # noqa: ANN202
        _require_scope("control")
        body = _body()
        selection = _selection(body)
        limits = body.get("limits") if body.get("action") == "push_limits" else None
        if limits is not None and not isinstance(limits, dict):
            raise control.ControlError("limits_invalid")
        done = control.queue_batch(ctx, _client(), selection, body.get("action"), body.get("reason"),
                                   limits=limits, confirm=body.get("confirm") is True)
        if done.batch_id is None:
            lang = _lang()
            from core.text import t
            warnings = [{"code": w.code, "meters": list(w.meters),
                         "message": t(f"control.warning.{w.code}", lang, count=len(w.meters),
                                      meters=", ".join(w.meters[:10]))} for w in done.warnings]
            g.api_error = "confirm_required"
            return _json(409, {"code": "confirm_required", "message": " ".join(w["message"] for w in warnings),
                               "warnings": warnings, "meters": len(done.meters)})
        return _json(202, batch_json(control.batch_view(ctx, done.batch_id)),
                     {"Location": f"{PREFIX}/commands/{done.batch_id}"})

    @bp.get("/commands/<batch_id>")
    def get_commands(batch_id: str):  # noqa: ANN202
        _require_scope("control")
        if not _BATCH.fullmatch(batch_id):
            raise control.ControlError("batch_unknown", batch=_shown(batch_id))
        return _json(200, batch_json(control.batch_view(ctx, batch_id)))

    @bp.get("/openapi.json")
    def openapi():  # noqa: ANN202
        return _json(200, openapi_document(extensions))

    return bp


def _client() -> Actor:
    """The calling client as billing's services take it: the permissions of its scopes."""
    return Actor(f"api:{g.api_client}", scope_permissions(g.get("api_scopes") or ()), address=request.remote_addr,
                 channel="api")


def _require_scope(scope: str) -> None:
    if scope not in (g.get("api_scopes") or ()):
        raise control.ControlError("scope_missing", scope=scope)


def _body() -> dict:
    try:
        body = json.loads(request.get_data(as_text=True) or "null", parse_float=Decimal)
    except ValueError:
        raise BillingError("body_invalid") from None
    if not isinstance(body, dict):
        raise BillingError("body_invalid")
    return body


def _selection(body: dict) -> control.Selection:
    """meters: a list of 12-digit numbers; or building (text) with an optional floor (a whole number)."""
    meters, building, floor = body.get("meters"), body.get("building"), body.get("floor")
    if meters is not None:
        if (not isinstance(meters, list) or not meters or len(meters) > control.MAX_NUMBERS
                or not all(isinstance(m, str) and _ADDRESS.fullmatch(m) for m in meters)):
            raise control.ControlError("selection_meters_invalid", most=control.MAX_NUMBERS)
        if building is not None or floor is not None:
            raise control.ControlError("selection_both")
        return control.Selection(meters=tuple(dict.fromkeys(meters)))
    if not isinstance(building, str) or not building.strip() or len(building) > 100 or not building.isprintable():
        raise control.ControlError("selection_missing")
    if floor is not None and (isinstance(floor, bool) or not isinstance(floor, int) or not -100 <= floor <= 1000):
        raise control.ControlError("selection_floor_invalid")
    return control.Selection(building=building.strip(), floor=floor)


def batch_json(view: control.BatchView) -> dict:
    b = view.batch
    return {"batch": {"id": b["id"], "action": b["action"], "reason": b["reason"], "operator": b["operator"],
                      "created_at": _utc(b["created_at"]), "meters": b["meters"], "counts": view.counts,
                      "finished": not view.open},
            "meters": [{"meter_address": r["address"], "state": r["state"], "result": r["result"], "error": r["error"],
                        "attempts": r["attempts"], "at": _utc(r["at"])} for r in view.rows]}


def _utc(moment) -> str | None:
    return None if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%SZ")


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

def openapi_document(extensions=()) -> dict:
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
    batch = {"type": "object", "properties": {
        "batch": {"type": "object", "properties": {
            "id": {"type": "string", "example": "ctl-3f2a9c1b7d4e"},
            "action": {"type": "string", "enum": list(control.ACTIONS)},
            "reason": {"type": "string", "nullable": True}, "operator": {"type": "string"},
            "created_at": {"type": "string", "format": "date-time"}, "meters": {"type": "integer"},
            "counts": {"type": "object", "additionalProperties": {"type": "integer"},
                       "description": "meters per state: " + ", ".join(control.METER_STATES)},
            "finished": {"type": "boolean", "description": "no meter is queued or sent any more"}}},
        "meters": {"type": "array", "items": {"type": "object", "properties": {
            "meter_address": {"type": "string"},
            "state": {"type": "string", "enum": list(control.METER_STATES),
                      "description": "confirmed: the meter applied it (a relay command: its relay bits were read "
                                     "back and agree); failed: result says why (UNREACHABLE, NO_ANSWER, "
                                     "NOT_EXECUTED, ...)"},
            "result": {"type": "string", "nullable": True}, "error": {"type": "string", "nullable": True},
            "attempts": {"type": "integer"}, "at": {"type": "string", "format": "date-time"}}}}}}
    lang = {"name": "Accept-Language", "in": "header", "required": False,
            "schema": {"type": "string", "example": "zh-CN"}, "description": "language of error messages (en, zh)"}
    return {
        "openapi": "3.0.3",
        "info": {"title": "Wattline API", "version": "1.1.0",
                 "description": "Sell electricity to prepaid meters and look up meters and receipts (token scope "
                                "`payment`); send batch commands to meters: trip, close, keep power, price and "
                                "settings pushes (token scope `control`, separate: a payment client cannot cut "
                                "power; a call outside the token's scopes answers 403 scope_missing); read the "
                                "reports (token scope `reports`: GET /reports/{name}, read only; a report client "
                                "cannot sell, a payment client cannot read reports). Amounts are "
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
            "/commands": {"post": {
                "operationId": "createCommands", "summary": "Queue one action to a selection of meters (scope control)",
                "description": "The selection is `meters` (numbers) or `building` with an optional `floor`. A reason "
                               "is required for trip and keep_power_on. Tripping a meter that keeps power, or "
                               "closing one in arrears without keep power, answers 409 confirm_required with the "
                               "warnings: send again with \"confirm\": true to proceed.",
                "parameters": [lang],
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["action"], "properties": {
                        "meters": {"type": "array", "maxItems": control.MAX_NUMBERS,
                                   "items": {"type": "string", "pattern": "^[0-9]{12}$"}},
                        "building": {"type": "string"}, "floor": {"type": "integer"},
                        "action": {"type": "string", "enum": list(control.ACTIONS)},
                        "reason": {"type": "string", "maxLength": 300},
                        "limits": {"type": "object", "description": "push_limits: the thresholds",
                                   "properties": {"alarm1": money, "alarm2": money,
                                                  "overload_w": {"type": "integer", "example": 6000}}},
                        "confirm": {"type": "boolean", "default": False}}}}}},
                "responses": {
                    "202": {"description": "queued; the batch and each meter's state",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Batch"}}}},
                    "409": {"description": "confirm_required: warnings to confirm", "content": {"application/json": {
                        "schema": {"type": "object", "properties": {
                            "code": {"type": "string"}, "message": {"type": "string"},
                            "warnings": {"type": "array", "items": {"type": "object"}}}}}}},
                    "400": error, "401": error, "403": error, "404": error, "422": error}}},
            "/commands/{batch_id}": {"get": {
                "operationId": "getCommands", "summary": "A batch and each meter's state (scope control)",
                "parameters": [{"name": "batch_id", "in": "path", "required": True, "schema": {"type": "string"}},
                               lang],
                "responses": {"200": {"description": "the batch", "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/Batch"}}}}, "401": error, "403": error, "404": error}}},
            "/meters/{address}": {"get": {
                "operationId": "getMeter", "summary": "One meter: account, known balance, last reading",
                "parameters": [{"name": "address", "in": "path", "required": True,
                                "schema": {"type": "string", "pattern": "^[0-9]{12}$"}}, lang],
                "responses": {"200": {"description": "the meter", "content": {"application/json": {"schema": {
                    "type": "object", "properties": {"meter": {"$ref": "#/components/schemas/Meter"}}}}}},
                    "401": error, "404": error}}},
            **{path: item for extension in extensions for path, item in extension.openapi_paths(lang, error).items()},
        },
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Sale": sale, "Meter": meter, "Batch": batch, "Error": {"type": "object", "required": ["code", "message"],
                                                               "properties": {"code": {"type": "string"},
                                                                              "message": {"type": "string"}}}},
            "responses": {"Error": {"description": "an error", "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/Error"}}}}},
        },
    }
