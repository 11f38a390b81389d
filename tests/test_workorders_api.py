"""The external ticket feed over a real WSGI server (waitress) on loopback: POST /api/v1/workorders with the token
scope `workorders` answers 201 with the new order and 200 with the same order for a repeated external id (once also
when the repeats race), refuses a bad token, another scope, a forged QR, an unknown account, a bad type and hostile
bodies with JSON in the client's language and nothing written; GET /api/v1/workorders/<number> answers the state
and the events; both paths are in the OpenAPI description."""
from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from types import SimpleNamespace

import pytest
import sqlalchemy as sa

from billing import qr
from billing.api import SCOPES, create_api_client
from dashboard.app import create_app
from dashboard.auth import install_auth
from operators.service import Accounts
from storage.engine import dispose, open_engine
from storage.schema import audit_log, work_order
from tests.billing_support import make_ctx
from tests.webclient import json_call
from tests.workorder_support import METER_B, QR_KEY, copied_site, serving, template_file, work_site

NOW = dt.datetime(2026, 11, 21, 2, 0)


class Api:
    def __init__(self, base: str, tokens: dict, site):
        self.base, self.tokens, self.site = base, tokens, site

    def call(self, method: str, path: str, body=None, client: str = "tickets", lang: str | None = None,
             token: str | None = None):
        headers = {"Authorization": f"Bearer {token if token is not None else self.tokens[client]}"}
        if lang:
            headers["Accept-Language"] = lang
        return json_call(self.base + path, method, body, headers)

    def post(self, body, **kw):
        return self.call("POST", "/workorders", body, **kw)


@contextmanager
def _api(site):
    """The JSON API with the work-order intake, behind the dashboard's login guard, on a loopback server."""
    ctx = make_ctx(site.engine, site.clock)
    tokens = {"tickets": create_api_client(ctx, "hotline", "admin", scopes=["workorders"]),
              "payment": create_api_client(ctx, "wechat-pay", "admin", scopes=["payment"]),
              "all": create_api_client(ctx, "demo", "admin", scopes=list(SCOPES))}
    app = create_app(lambda: {"status": "ok"},
                     services=SimpleNamespace(billing=ctx, qr_key=QR_KEY, workorders=site.service))
    install_auth(app, Accounts(site.engine, clock=site.clock), b"s" * 32)   # the login guard on: the API passes it
    with serving(app.server) as base:
        yield Api(base + "/api/v1", tokens, site)


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    return template_file(tmp_path_factory, NOW)


@pytest.fixture
def api(template, tmp_path):
    with copied_site(template, tmp_path, NOW) as site, _api(site) as client:
        yield client


def _orders(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(work_order)).scalar_one()


def test_a_ticket_becomes_an_order_and_its_repeat_answers_the_same_order(api):
    body = {"external_id": "HL-2026-0001", "type": "repair", "account": str(api.site.accounts["A"]),
            "description": "No power since 9 o'clock", "priority": "urgent"}
    status, first = api.post(body)
    assert status == 201 and first["created"] is True
    order = first["order"]
    assert (order["state"], order["type"], order["priority"], order["external_id"]) == (
        "created", "repair", "urgent", "HL-2026-0001")
    assert order["number"].startswith("WO20261121-") and order["due_at"] == "2026-11-21T06:00:00Z"
    status, again = api.post({**body, "description": "called again"})
    assert (status, again["order"], again["created"]) == (200, order, False)
    assert _orders(api.site.engine) == 1
    status, read = api.call("GET", f"/workorders/{order['number']}")
    assert status == 200 and read["order"] == order
    assert [(e["action"], e["to_state"], e["by"]) for e in read["events"]] == [("create", "created", "api:hotline")]


def test_the_order_s_state_and_events_follow_its_lifecycle(api):
    site = api.site
    _, made = api.post({"external_id": "HL-7", "type": "meter_removal", "qr": qr.sign(QR_KEY, "meter", METER_B),
                        "description": "moving out"})
    oid = made["order"]["id"]
    site.service.dispatch(site.manager, oid, site.ids["sun"])
    site.service.act(site.worker("sun"), oid, "accept")
    status, read = api.call("GET", f"/workorders/{made['order']['number']}", client="all")
    assert status == 200 and read["order"]["state"] == "accepted"
    assert [e["action"] for e in read["events"]] == ["create", "dispatch", "accept"]
    assert read["events"][2]["at"].endswith("Z")


def test_repeats_of_one_external_id_at_once_make_one_order(api):
    body = {"external_id": "HL-race", "type": "repair", "account": str(api.site.accounts["B"]), "description": "x"}
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda _: api.post(body), range(6)))
    assert sorted(s for s, _ in answers) == [200] * 5 + [201]
    assert len({a["order"]["id"] for _, a in answers}) == 1
    assert _orders(api.site.engine) == 1


@pytest.mark.parametrize("token", ["", "nonsense", "Bearer"])
def test_a_bad_token_is_refused_with_nothing_written(api, token):
    status, body = api.post({"external_id": "x", "type": "repair", "account": "1", "description": "x"}, token=token)
    assert status == 401 and body["code"] == "api_unauthorized"
    assert _orders(api.site.engine) == 0


def test_a_client_of_another_scope_is_refused(api):
    status, body = api.post({"external_id": "x", "type": "repair", "account": "1", "description": "x"},
                            client="payment", lang="zh")
    assert status == 403 and body["code"] == "scope_missing"
    status, body = api.call("GET", "/workorders/WO20261121-000001", client="payment")
    assert status == 403
    assert _orders(api.site.engine) == 0


@pytest.mark.parametrize("change, status, code", [
    ({"qr": "a1.AAAAAAAAAAAAAAAAAAAAAA", "account": None}, 422, "qr_forged"),
    ({"account": "999999"}, 404, "account_unknown"),
    ({"account": "１"}, 404, "account_unknown"),
    ({"type": "rocket"}, 400, "type_unknown"),
    ({"type": ["repair"]}, 400, "field_invalid"),
    ({"priority": "asap"}, 400, "priority_unknown"),
    ({"external_id": None}, 400, "external_id_missing"),
    ({"external_id": "x" * 81}, 400, "external_id_invalid"),
    ({"external_id": 5}, 400, "field_invalid"),
    ({"account": None}, 400, "customer_missing"),
    ({"description": "\x00\x07"}, 400, "description_missing"),
    ({"description": 12.5}, 400, "field_invalid"),
    ({"amount": "50"}, 400, "field_unknown"),
])
def test_a_bad_ticket_is_refused_in_the_client_s_language_with_nothing_written(api, change, status, code):
    body = {"external_id": "HL-bad", "type": "repair", "account": str(api.site.accounts["A"]), "description": "x",
            **change}
    body = {k: v for k, v in body.items() if v is not None}
    got, answer = api.post(body, lang="zh-CN")
    assert (got, answer["code"]) == (status, code)
    assert answer["message"] and not answer["message"].isascii()     # in Chinese, as asked
    assert _orders(api.site.engine) == 0


@pytest.mark.parametrize("raw", [b"not json", b"[1, 2]", b"null", b"\xff\xfe", b'{"type": "repair"'])
def test_a_body_that_is_not_a_json_object_is_refused(api, raw):
    status, body = api.post(raw)
    assert status == 400 and body["code"] == "body_invalid"


def test_an_unknown_number_answers_404_and_the_call_is_logged(api):
    for number in ("WO19990101-000001", "x" * 30, "%00"):
        status, body = api.call("GET", f"/workorders/{number}")
        assert status == 404 and body["code"] in ("order_unknown", "api_not_found")
    with api.site.engine.connect() as conn:
        logged = conn.execute(sa.select(audit_log.c.action, audit_log.c.operator)
                              .where(audit_log.c.action == "api.get_workorder")).all()
    assert logged and {op for _, op in logged} == {"api:hotline"}


def test_both_paths_are_in_the_openapi_description(api):
    status, doc = json_call(api.base + "/openapi.json")
    assert status == 200
    post = doc["paths"]["/workorders"]["post"]
    assert set(post["responses"]) >= {"200", "201", "401", "403", "404", "422"}
    props = post["requestBody"]["content"]["application/json"]["schema"]["properties"]
    assert set(props["type"]["enum"]) == {"repair", "new_connection", "meter_install", "meter_removal", "acceptance",
                                          "fee_collection", "safety_inspection", "contract_inspection", "temporary"}
    assert "get" in doc["paths"]["/workorders/{number}"]


@pytest.mark.postgres
def test_repeats_of_one_external_id_at_once_make_one_order_on_postgresql(tmp_path):
    from tests.conftest import engine_url
    from storage.migrations import migrate
    engine = open_engine(engine_url("postgresql", tmp_path))
    migrate(engine)
    try:
        with _api(work_site(engine, NOW)) as client:
            body = {"external_id": "HL-pg", "type": "repair", "account": str(client.site.accounts["B"]),
                    "description": "x"}
            with ThreadPoolExecutor(6) as pool:
                answers = list(pool.map(lambda _: client.post(body), range(6)))
        assert sorted(s for s, _ in answers) == [200] * 5 + [201]
        assert _orders(engine) == 1
    finally:
        dispose(engine)


def test_a_ticket_for_a_district_without_a_customer_becomes_an_order_about_that_place(api):
    site = api.site
    status, made = api.post({"external_id": "HL-place-1", "type": "safety_inspection",
                             "district": f"building:{site.buildings['B']}", "description": "Meter boxes of Dorm B"})
    assert status == 201
    with site.engine.connect() as conn:
        row = conn.execute(sa.select(work_order.c.building_id, work_order.c.account_id)
                           .where(work_order.c.id == made["order"]["id"])).one()
    assert tuple(row) == (site.buildings["B"], None)


@pytest.mark.parametrize("district, customer, code", [
    ("building:999999", None, "district_invalid"), ("street:1", None, "district_invalid"),
    ("building:{A}", "B", "customer_other_district"),
])
def test_a_ticket_with_a_bad_district_or_a_customer_outside_it_is_refused(api, district, customer, code):
    site = api.site
    body = {"external_id": f"HL-bad-{code}", "type": "repair", "description": "x",
            "district": district.format(A=site.buildings["A"])}
    if customer:
        body["account"] = str(site.accounts[customer])
    status, answer = api.post(body)
    assert (status, answer["code"]) == (422, code) and answer["message"]
    assert _orders(site.engine) == 0
