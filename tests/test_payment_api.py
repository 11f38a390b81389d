"""The payment API over a real WSGI server (waitress) on loopback, on both engines: bearer tokens, idempotent
sales under 20 concurrent identical requests, JSON errors in the caller's language, audit, OpenAPI."""
from __future__ import annotations

import datetime as dt
import json
import threading
import urllib.error
import urllib.request
from types import SimpleNamespace

import pytest
import sqlalchemy as sa

from billing import accounts
from billing.api import create_api_client, openapi_document, revoke_api_client
from operators.service import Accounts
from dashboard.app import create_app
from dashboard.auth import install_auth
from storage.schema import audit_log, ledger_entry

from tests.webclient import json_call
from tests.billing_support import NATIONAL_ID, Clock, address, flat_tariff, load_site, make_ctx, prepaid_site, \
    write_reading

QR_KEY = b"q" * 32


class Api:
    def __init__(self, base: str, token: str, ctx):
        self.base, self.token, self.ctx = base, token, ctx

    def call(self, method: str, path: str, body=None, token: str | None = "default", lang: str | None = None):
        headers = {}
        if token:
            headers["Authorization"] = f"Bearer {self.token if token == 'default' else token}"
        if lang:
            headers["Accept-Language"] = lang
        return json_call(self.base + path, method, body, headers)


@pytest.fixture
def api(any_engine, fixed_now):
    from waitress import create_server
    clock = Clock(fixed_now)
    load_site(any_engine, prepaid_site(15020), fixed_now)
    ctx = make_ctx(any_engine, clock)
    flat_tariff(ctx)
    for n in (1, 2, 3, 4):
        write_reading(any_engine, address(n), balance="100.00", purchase_count=3, ts=fixed_now - dt.timedelta(minutes=5))
    accounts.open_account(ctx, holder_name="王小明", meter_addresses=[address(1), address(2)], operator="cashier",
                          national_id=NATIONAL_ID)
    token = create_api_client(ctx, "wechat-pay", "admin")
    app = create_app(lambda: {"status": "ok"}, services=SimpleNamespace(billing=ctx, qr_key=QR_KEY))
    operators = Accounts(any_engine, clock=clock)
    operators.seed()
    install_auth(app, operators, b"s" * 32)  # the dashboard's login guard is on: the API must pass it
    server = create_server(app.server, host="127.0.0.1", port=0, threads=24)

    def serve():
        try:
            server.run()
        except OSError:  # the listening socket closed under select() at shutdown
            pass

    th = threading.Thread(target=serve, daemon=True)
    th.start()
    yield Api(f"http://127.0.0.1:{server.effective_port}/api/v1", token, ctx)
    server.close()
    server.task_dispatcher.shutdown(timeout=5)
    th.join(5)


def _entries(engine) -> list:
    with engine.connect() as conn:
        return conn.execute(sa.select(ledger_entry.c.receipt_no, ledger_entry.c.request_id)).all()


def test_a_sale_through_the_api_returns_its_entry_and_command_state(api):
    status, body = api.call("POST", "/sales", {"meter_address": address(1), "amount": "50.00", "request_id": "wx-1"})
    assert status == 201 and body["replayed"] is False
    sale = body["sale"]
    assert (sale["amount"], sale["state"], sale["purchase_count"], sale["request_id"]) == ("50.00", "pending", 4, "wx-1")
    assert sale["command"] == {"state": "queued", "result": None}
    status, again = api.call("GET", f"/sales/{sale['receipt_no']}")
    assert status == 200 and again["sale"]["receipt_no"] == sale["receipt_no"]


def test_the_same_request_id_sent_20_times_at_once_sells_once(api):
    start = threading.Barrier(20)
    answers = []

    def client():
        start.wait()
        answers.append(api.call("POST", "/sales", {"meter_address": address(1), "amount": 30, "request_id": "dup-7"}))

    threads = [threading.Thread(target=client) for _ in range(20)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(status for status, _ in answers) == [200] * 19 + [201]
    assert len({body["sale"]["receipt_no"] for _, body in answers}) == 1
    assert [r.request_id for r in _entries(api.ctx.engine)] == ["dup-7"]


def test_a_request_id_reused_for_another_sale_is_a_conflict(api):
    api.call("POST", "/sales", {"meter_address": address(1), "amount": "10", "request_id": "r-1"})
    status, body = api.call("POST", "/sales", {"meter_address": address(2), "amount": "10", "request_id": "r-1"})
    assert (status, body["code"]) == (409, "request_id_reused")


@pytest.mark.parametrize("lang, words", [("zh-CN,zh;q=0.9", "金额"), ("en-US", "amount")])
def test_errors_are_json_with_a_code_and_a_message_in_the_callers_language(api, lang, words):
    status, body = api.call("POST", "/sales", {"meter_address": address(1), "amount": "12.345", "request_id": "x"},
                            lang=lang)
    assert status == 400 and body["code"] == "amount_too_precise" and words in body["message"].lower()
    assert _entries(api.ctx.engine) == []


@pytest.mark.parametrize("body, status, code", [
    ({"meter_address": address(1), "amount": "0", "request_id": "a"}, 400, "amount_zero"),
    ({"meter_address": address(1), "amount": "-5", "request_id": "a"}, 400, "amount_negative"),
    ({"meter_address": address(1), "amount": "five", "request_id": "a"}, 400, "amount_not_a_number"),
    ({"meter_address": address(1), "amount": "5000", "request_id": "a"}, 422, "above_hoarding_limit"),
    ({"meter_address": "000000000000", "amount": "5", "request_id": "a"}, 404, "meter_unknown"),
    ({"meter_address": address(3), "amount": "5", "request_id": "a"}, 422, "meter_not_opened"),
    ({"meter_address": address(1), "amount": "5"}, 400, "request_id_missing"),
    (b"not json", 400, "body_invalid"),
])
def test_every_bad_sale_request_gets_its_code_and_writes_nothing(api, body, status, code):
    got, answer = api.call("POST", "/sales", body)
    assert (got, answer["code"]) == (status, code) and answer["message"]
    assert _entries(api.ctx.engine) == []


@pytest.mark.parametrize("raw_amount, code", [
    ('"1e30"', "amount_exponent"), ("1e30", "amount_exponent"), ('"1E+28"', "amount_exponent"),
    ("1E+28", "amount_exponent"), (str(10 ** 40), "amount_too_large"), ('"50,5"', "amount_decimal_comma"),
    ('"1,000"', "amount_thousands_separator"), ('"\u0665"', "amount_not_a_number"), ("null", "amount_missing"),
    ("[50]", "amount_not_a_number"), ('"100000.01"', "amount_too_large"),
])
def test_an_amount_the_api_cannot_read_exactly_is_a_400_with_its_code_never_a_500(api, raw_amount, code):
    body = f'{{"meter_address": "{address(1)}", "amount": {raw_amount}, "request_id": "odd-1"}}'.encode()
    status, answer = api.call("POST", "/sales", body, lang="zh-CN")
    assert (status, answer["code"]) == (400, code) and answer["message"] and "{" not in answer["message"]
    assert _entries(api.ctx.engine) == []


def test_a_missing_unknown_or_revoked_token_is_refused(api):
    assert api.call("GET", "/meters", token=None)[0] == 401
    status, body = api.call("GET", "/meters", token="not-a-real-token-at-all")
    assert (status, body["code"]) == (401, "api_unauthorized")
    revoke_api_client(api.ctx, "wechat-pay", "admin")
    assert api.call("GET", "/meters")[0] == 401


def test_a_meter_can_be_looked_up_with_its_account_and_known_balance(api):
    status, body = api.call("GET", f"/meters/{address(1)}")
    meter = body["meter"]
    assert status == 200 and meter["status"] == "opened" and meter["balance"] == "100.00"
    assert meter["account"]["holder"] == "王**" and meter["purchase_count"] == 3
    assert api.call("GET", "/meters/999999999999")[0] == 404


def test_the_api_gives_times_in_utc_with_a_z_whatever_the_sites_zone(api, fixed_now):
    from zoneinfo import ZoneInfo
    api.ctx.tz = ZoneInfo("Asia/Shanghai")      # pages show 8 hours later; machines keep UTC
    _, body = api.call("POST", "/sales", {"meter_address": address(2), "amount": "5.00", "request_id": "wx-utc"})
    assert body["sale"]["created_at"] == fixed_now.isoformat(timespec="seconds") + "Z"
    _, looked_up = api.call("GET", f"/meters/{address(2)}")
    read_at = fixed_now - dt.timedelta(minutes=5)
    assert looked_up["meter"]["balance_read_at"] == read_at.isoformat(timespec="seconds") + "Z"
    assert "UTC with a trailing Z" in openapi_document()["info"]["description"]


def test_meters_are_listed_by_building_and_state_page_by_page(api):
    status, body = api.call("GET", "/meters?building=Dorm%20A&state=opened&page=1&page_size=1")
    assert status == 200 and body["total"] == 2 and len(body["items"]) == 1
    assert body["items"][0]["meter_address"] == address(1)
    _, page2 = api.call("GET", "/meters?building=Dorm%20A&state=opened&page=2&page_size=1")
    assert page2["items"][0]["meter_address"] == address(2)
    _, none = api.call("GET", "/meters?building=Nowhere")
    assert none["total"] == 0
    status, bad = api.call("GET", "/meters?state=sold")
    assert (status, bad["code"]) == (400, "filter_invalid")


def test_every_api_call_is_written_to_the_operation_log(api):
    api.call("GET", f"/meters/{address(1)}")
    api.call("GET", "/meters", token=None)
    api.call("POST", "/sales", {"meter_address": address(1), "amount": "5", "request_id": "log-1"})
    with api.ctx.engine.connect() as conn:
        rows = conn.execute(sa.select(audit_log.c.operator, audit_log.c.action)
                            .where(audit_log.c.action.like("api.%")).order_by(audit_log.c.id)).all()
        sale = conn.execute(sa.select(audit_log.c.operator).where(audit_log.c.action == "billing.sale")).scalar_one()
    assert [tuple(r) for r in rows] == [("api:wechat-pay", "api.get_meter"), ("api:anonymous", "api.list_meters"),
                                        ("api:wechat-pay", "api.create_sale")]
    assert sale == "api:wechat-pay"


def test_the_openapi_document_is_valid_json_listing_the_six_endpoints(api):
    status, doc = api.call("GET", "/openapi.json", token=None)
    payment = json.loads(json.dumps(openapi_document()))   # the payment and control API without the extensions
    assert status == 200 and doc["openapi"].startswith("3.")
    assert set(payment["paths"]) == {"/sales", "/sales/{receipt_no}", "/meters", "/meters/{address}", "/commands",
                                     "/commands/{batch_id}"}
    assert {p: doc["paths"][p] for p in payment["paths"]} == payment["paths"]
    assert set(doc["paths"]) - set(payment["paths"]) == {"/reports/{name}"}   # this app serves the reports too
    assert set(doc["paths"]["/sales"]) == {"post"} and doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"

    def refs(node):
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "$ref":
                    yield v
                else:
                    yield from refs(v)
        elif isinstance(node, list):
            for v in node:
                yield from refs(v)
    for ref in refs(doc):
        section, kind, name = ref.lstrip("#/").split("/")
        assert name in doc[section][kind], ref


def test_customer_pages_pass_the_login_guard_and_refuse_forged_tokens(api):
    base = api.base.rsplit("/api/v1", 1)[0]
    try:
        urllib.request.urlopen(f"{base}/c/a1.AAAAAAAAAAAAAAAAAAAAAA", timeout=10)
        raise AssertionError("a forged token must not be served")
    except urllib.error.HTTPError as exc:
        assert exc.code == 404 and "/login" not in exc.geturl()


def test_api_clients_are_added_and_revoked_from_the_command_line(tmp_path, monkeypatch, capsys):
    import app
    monkeypatch.setenv("WATTLINE_DATABASE_URL", f"duckdb:///{tmp_path / 'cli.duckdb'}")
    monkeypatch.setenv("WATTLINE_MASTER_KEY", "0123456789ABCDEFFEDCBA98765432100F1E2D3C4B5A6978")
    assert app.main(["api-client", "add", "shop"]) == 0
    token = capsys.readouterr().out.strip().splitlines()[-1]
    assert len(token) >= 32
    assert app.main(["api-client", "add", "shop"]) == 2        # the name is taken
    assert "already exists" in capsys.readouterr().err
    assert app.main(["api-client", "revoke", "shop"]) == 0
    assert app.main(["api-client", "list"]) == 0 and "revoked" in capsys.readouterr().out
