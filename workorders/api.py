"""The external ticket feed: POST /api/v1/workorders and GET /api/v1/workorders/<number> (token scope `workorders`),
registered on the JSON API's blueprint (billing.api.payment_api(ctx, extensions=...)) so it shares its
authentication, operation log and errors in the client's language; and its part of the OpenAPI description."""
from __future__ import annotations

import json
import re

from flask import Blueprint, g, request

from core.clock import iso_utc
from workorders import model as M
from workorders.errors import WorkOrderError
from workorders.service import WorkOrderService

API_SCOPE = "workorders"
NOT_FOUND = {"order_unknown", "account_unknown", "meter_unknown", "customer_unknown"}
FORBIDDEN = {"permission_denied"}
UNPROCESSABLE = {"qr_forged", "customer_other_district", "qr_unavailable", "district_invalid"}
_NUMBER = re.compile(r"[A-Za-z0-9-]{1,20}")
FIELDS = ("external_id", "type", "account", "qr", "district", "description", "priority", "pole_number", "location")


def order_json(order: dict) -> dict:
    return {"id": order["id"], "number": order["number"], "state": order["state"], "type": order["type"],
            "priority": order["priority"], "due_at": iso_utc(order["due_at"]), "external_id": order["external_id"]}


def event_json(event: dict) -> dict:
    return {"action": event["action"], "from_state": event["from_state"], "to_state": event["to_state"],
            "at": iso_utc(event["ts"]), "by": event["actor"], "note": event["note"]}


class WorkOrdersApi:
    """The intake routes and their OpenAPI paths, for billing.api.payment_api(ctx, extensions=...)."""

    def __init__(self, service: WorkOrderService):
        self.service = service

    def routes(self, bp: Blueprint, helpers) -> None:
        service = self.service

        def refused(exc: WorkOrderError):
            status = (404 if exc.code in NOT_FOUND else 403 if exc.code in FORBIDDEN
                      else 422 if exc.code in UNPROCESSABLE else 400)
            g.api_error = exc.code
            return helpers.json(status, {"code": exc.code, "message": exc.message(helpers.lang())})

        @bp.post("/workorders")
        def create_workorder():  # noqa: ANN202
            helpers.require_scope(API_SCOPE)
            try:
                body = json.loads(request.get_data(as_text=True) or "null")
            except ValueError:
                body = None
            try:
                if not isinstance(body, dict):
                    raise WorkOrderError("body_invalid")
                unknown = sorted(k for k in body if k not in FIELDS)
                if unknown:
                    raise WorkOrderError("field_unknown", field=str(unknown[0])[:40])
                for key in FIELDS:
                    value = body.get(key)
                    if value is not None and (not isinstance(value, str) if key != "account"
                                              else isinstance(value, bool) or not isinstance(value, (str, int))):
                        raise WorkOrderError("field_invalid", field=key)
                if body.get("external_id") in (None, ""):
                    raise WorkOrderError("external_id_missing")
                if body.get("type") not in M.TYPE_KEYS:
                    raise WorkOrderError("type_unknown", type=str(body.get("type") or "")[:30])
                district = body.get("district") or None
                if body.get("account") in (None, "") and body.get("qr") in (None, "") and district is None:
                    raise WorkOrderError("customer_missing")
                # a customer with a district must be in it; without a customer the district is the order's place
                done = service.create(_client(helpers), type=body["type"], description=body.get("description"),
                                      priority=body.get("priority"), source="api", account=body.get("account"),
                                      qr_token=body.get("qr"), external_id=body["external_id"],
                                      pole_number=body.get("pole_number"), location=body.get("location"),
                                      district=district, check_district=district is not None)
            except WorkOrderError as exc:
                return refused(exc)
            return helpers.json(201 if done.created else 200, {"order": order_json(done.order),
                                                                 "created": done.created},
                                {"Location": f"/api/v1/workorders/{done.order['number']}"})

        @bp.get("/workorders/<number>")
        def get_workorder(number: str):  # noqa: ANN202
            helpers.require_scope(API_SCOPE)
            try:
                if not _NUMBER.fullmatch(number):
                    raise WorkOrderError("order_unknown", order=number[:20])
                view = service.order_view(_client(helpers), number=number)
            except WorkOrderError as exc:
                return refused(exc)
            return helpers.json(200, {"order": order_json(view["order"]),
                                      "events": [event_json(e) for e in view["events"]]})

    def openapi_paths(self, lang_parameter: dict, error: dict) -> dict:
        order = {"type": "object", "properties": {
            "id": {"type": "integer"}, "number": {"type": "string", "example": "WO20261202-000042"},
            "state": {"type": "string", "enum": list(M.STATES)}, "type": {"type": "string", "enum": list(M.TYPE_KEYS)},
            "priority": {"type": "string", "enum": list(M.PRIORITIES)},
            "due_at": {"type": "string", "format": "date-time", "example": "2026-12-05T08:00:00Z"},
            "external_id": {"type": "string", "nullable": True}}}
        answer = {"type": "object", "properties": {"order": order, "created": {"type": "boolean"}}}
        request_body = {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["external_id", "type", "description"], "properties": {
                "external_id": {"type": "string", "maxLength": 80,
                                "description": "the ticket's id in the sending system: a repeat answers the same "
                                               "order (200), never a second one"},
                "type": {"type": "string", "enum": list(M.TYPE_KEYS)},
                "account": {"type": "string", "description": "the customer's account number (or give qr)"},
                "qr": {"type": "string", "description": "the customer's signed QR token (a5.xxxx or m<meter>.xxxx); "
                                                        "a forged or altered one answers 422 qr_forged"},
                "district": {"type": "string", "example": "building:3",
                             "description": "building:<id> or area:<id> (a transformer area). Without account or qr: "
                                            "an order about that place (a customer's QR code on site must be from "
                                            "there); with one: the customer must be in it (else 422 "
                                            "customer_other_district)"},
                "description": {"type": "string", "maxLength": 1000},
                "priority": {"type": "string", "enum": list(M.PRIORITIES), "default": M.DEFAULT_PRIORITY},
                "pole_number": {"type": "string", "maxLength": 40},
                "location": {"type": "string", "maxLength": 300}}}}}}
        return {
            "/workorders": {"post": {
                "operationId": "createWorkOrder", "summary": "A ticket from the hotline or the marketing system "
                                                             "becomes a work order (scope workorders)",
                "parameters": [lang_parameter], "requestBody": request_body,
                "responses": {"201": {"description": "created", "content": {"application/json": {"schema": answer}}},
                              "200": {"description": "this external_id was taken in before: the same order",
                                      "content": {"application/json": {"schema": answer}}},
                              "400": error, "401": error, "403": error, "404": error, "422": error}}},
            "/workorders/{number}": {"get": {
                "operationId": "getWorkOrder", "summary": "A work order's state and its events (scope workorders)",
                "parameters": [{"name": "number", "in": "path", "required": True, "schema": {"type": "string"}},
                               lang_parameter],
                "responses": {"200": {"description": "the order and its events", "content": {"application/json": {
                    "schema": {"type": "object", "properties": {"order": order, "events": {"type": "array", "items": {
                        "type": "object", "properties": {
                            "action": {"type": "string"}, "from_state": {"type": "string", "nullable": True},
                            "to_state": {"type": "string"}, "at": {"type": "string", "format": "date-time"},
                            "by": {"type": "string"}, "note": {"type": "string", "nullable": True}}}}}}}}},
                    "401": error, "403": error, "404": error}}},
        }


def _client(helpers):
    """The calling client as the service takes it (billing.api builds it from the token's scopes)."""
    return helpers.client()
