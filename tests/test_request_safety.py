"""Requests that must not be turned against the site, over real HTTP against a demo Runtime: redirects
off the site, cross-site sign-out and language switches, cookie POSTs from nowhere, unknown API and
customer paths, oversized and over-nested bodies, security headers, and the sign-in and API rate limits."""
from __future__ import annotations

import base64
import hashlib
import http.client
import json
import re
import socket
import urllib.parse

import pytest
import sqlalchemy as sa

from billing.api import create_api_client
from core.config import LimitsConfig
from operators.service import demo_password
from dashboard import access
from dashboard.i18n import t
from dashboard.websecurity import local_target
from storage.schema import audit_log
from tests.webclient import WebClient, base_url, signed_in_client, start_demo_runtime

DEMO = demo_password()
EVIL = "evil.example"

# Each of these took a browser to evil.example on the demo (or would have): after the server decodes the
# query once, browsers drop tabs/newlines and read backslashes as slashes.
ATTACKS = [
    "/\t/evil.example/phish", "/\n/evil.example", "/\r\n/evil.example", "\t//evil.example", "/%09/evil.example",
    "/%2509/evil.example", "/\\evil.example", "/%5Cevil.example", "/%255Cevil.example", "\\\\evil.example",
    "//evil.example/x", "///evil.example", "/\\/evil.example", "https://evil.example/", "http:evil.example",
    "javascript:alert(1)", "JavaScript:alert(1)", " /evil", "evil.example", "/\x00/evil.example",
    "/\u2028/evil.example", "", None, "/" + "a" * 3000,
]
LOCAL = ["/", "/audit", "/meters?building=Building%201&state=opened", "/sell?meter=202611210005", "/c/m1.x",
         "/accounts#receipt", "/records?q=%E7%8E%8B"]


@pytest.mark.parametrize("target", ATTACKS, ids=repr)
def test_a_redirect_target_that_could_leave_the_site_is_replaced_by_the_home_page(target):
    assert local_target(target) == "/"


@pytest.mark.parametrize("target", LOCAL)
def test_a_redirect_target_on_this_site_is_kept(target):
    assert local_target(target) == target


# --- over HTTP ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def rt(tmp_path_factory):
    runtime = start_demo_runtime(tmp_path_factory.mktemp("request-safety"))
    yield runtime
    runtime.stop()


def _actions(rt, action: str) -> list[dict]:
    with rt.engine.connect() as conn:
        q = sa.select(audit_log).where(audit_log.c.action == action).order_by(audit_log.c.id)
        return [dict(r) for r in conn.execute(q).mappings()]


def _raw_query(target: str) -> str:
    """`target` as a query value, percent-encoded once, as a link on another site would carry it."""
    return urllib.parse.quote(target, safe="")


@pytest.mark.parametrize("target", [a for a in ATTACKS if a], ids=repr)
def test_the_language_switch_never_redirects_to_another_site(rt, target):
    r = WebClient(base_url(rt)).get(f"/lang/en?next={_raw_query(target)}", follow=False,
                                    headers={"Sec-Fetch-Site": "none"})
    assert r.status == 302 and r.location == "/", (target, r.location)


def test_the_demo_reports_open_redirects_no_longer_work(rt):
    client = WebClient(base_url(rt))
    assert client.get("/lang/en?next=/%09/evil.example/phish", follow=False).location == "/"
    r = client.login("manager", DEMO, next_path="/\t/evil.example/x")
    assert r.status == 302 and r.location == access.DASHBOARD.path   # a manager's home, not the attacker's site


@pytest.mark.parametrize("target", ["/\t/evil.example/x", "/\\evil.example", "//evil.example", "https://evil.example",
                                    "javascript:alert(1)"], ids=repr)
def test_signing_in_never_redirects_to_another_site(rt, target):
    client = WebClient(base_url(rt))
    page = client.get(f"/login?next={_raw_query(target)}").text
    assert EVIL not in page and "javascript" not in page
    assert client.login("analyst", DEMO, next_path=target).location == access.DASHBOARD.path  # the analyst's home


def test_a_language_link_on_another_site_changes_nothing(rt):
    client = signed_in_client(rt, "operator")
    before = len(_actions(rt, "request.cross_site"))
    for headers in ({"Sec-Fetch-Site": "cross-site"}, {"Referer": f"http://{EVIL}/page"}, {}):
        r = client.get("/lang/zh?next=/status", follow=False, headers=headers)
        assert r.status == 302 and not r.headers.get_all("Set-Cookie"), headers
    assert rt.accounts.operator("operator").language != "zh"
    assert client.cookie("wl_lang") is None
    assert len(_actions(rt, "request.cross_site")) == before + 3
    client.get("/lang/zh?next=/status", follow=False, headers={"Referer": base_url(rt) + "/status"})
    assert rt.accounts.operator("operator").language == "zh" and client.cookie("wl_lang").value == "zh"


def test_opening_the_sign_out_address_signs_nobody_out(rt):
    client = signed_in_client(rt, "worker")
    page = client.get("/logout")
    assert page.status == 200 and 'id="logout-form"' in page.text and 'method="post"' in page.text
    assert client.get("/status", follow=False).status == 200
    refused = client.post_form("/logout", {"csrf_token": "forged"})
    assert refused.status == 400 and t("auth.logout_expired", "en") in refused.text
    assert client.get("/status", follow=False).status == 200
    assert client.logout().location == "/login?bye=1"
    assert client.get("/status", follow=False).location.startswith("/login")


def test_the_navbar_signs_out_with_a_form_carrying_the_token(rt):
    client = signed_in_client(rt, "analyst")
    form = _component(client.get("/_dash-layout").json(), "logout-form")["props"]
    assert (form["action"], form["method"]) == ("/logout", "post")
    token = _component(form, "logout-csrf")["props"]
    assert token["type"] == "hidden" and token["name"] == "csrf_token"
    assert client.post_form("/logout", {"csrf_token": token["value"]}).location == "/login?bye=1"


def _component(tree, ident: str) -> dict | None:
    """The component with this id anywhere in a Dash layout (JSON)."""
    if isinstance(tree, dict):
        if tree.get("props", {}).get("id") == ident:
            return tree
        children = list(tree.values())
    elif isinstance(tree, list):
        children = tree
    else:
        return None
    return next((found for c in children if (found := _component(c, ident)) is not None), None)


def test_a_cookie_post_with_neither_origin_nor_referer_is_refused(rt):
    client = signed_in_client(rt, "admin")
    body = json.dumps({"output": "x.children", "inputs": []}).encode()
    r = client.request("POST", "/_dash-update-component", data=body, origin=False,
                       headers={"Content-Type": "application/json"})
    assert r.status == 403 and r.json() == {"error": "cross_origin", "message": t("auth.cross_origin", "en")}
    assert _actions(rt, "request.cross_origin")[-1]["operator"] == "admin"
    from_our_page = client.request("POST", "/_dash-update-component", data=body, origin=False,
                                   headers={"Content-Type": "application/json", "Referer": base_url(rt) + "/"})
    assert from_our_page.status != 403


# --- unknown paths ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/api/v1/nothing", "/api/v1/meters/202611210005/x", "/api/v1", "/api/v1/"])
def test_an_unknown_api_path_is_a_json_404_in_the_clients_language(rt, path):
    r = WebClient(base_url(rt)).get(path, headers={"Accept-Language": "zh-CN"})
    assert r.status == 404 and r.headers["Content-Type"].startswith("application/json")
    assert r.json() == {"code": "api_not_found", "message": t("billing.error.api_not_found", "zh")}


@pytest.mark.parametrize("path", ["/c/", "/c/m202611210001.x/extra", "/c/a1.b/qr.png/more"])
def test_an_unknown_customer_path_is_a_404_not_the_dashboard(rt, path):
    r = WebClient(base_url(rt)).get(path)
    assert r.status == 404 and "_dash-config" not in r.text


def test_a_wrong_method_on_the_api_is_a_json_405_in_the_clients_language(rt):
    r = WebClient(base_url(rt)).request("POST", "/api/v1/meters", data=b"{}",
                                        headers={"Accept-Language": "zh-CN", "Content-Type": "application/json"})
    assert r.status == 405 and "GET" in r.headers["Allow"]
    assert r.json() == {"code": "api_method_not_allowed", "message": t("billing.error.api_method_not_allowed", "zh")}


# --- bodies ---------------------------------------------------------------------------------------------
def _api_token(rt) -> str:
    return create_api_client(rt.billing, f"limits-{len(_actions(rt, 'billing.api_client_add'))}", "test")


def test_an_api_body_above_its_limit_is_a_json_413(rt):
    body = json.dumps({"meter_address": "202611210005", "amount": "1.00", "request_id": "big",
                       "note": "x" * (70 * 1024)}).encode()
    r = WebClient(base_url(rt)).request("POST", "/api/v1/sales", data=body, headers={
        "Authorization": f"Bearer {_api_token(rt)}", "Content-Type": "application/json", "Accept-Language": "zh-CN"})
    assert r.status == 413
    assert r.json() == {"code": "body_too_large", "message": t("http.body_too_large", "zh", limit="64 KiB")}


def test_an_api_body_sent_in_chunks_is_cut_off_at_its_limit(rt):
    conn = http.client.HTTPConnection("127.0.0.1", rt.cfg.port, timeout=30)
    chunks = (b'{"pad": "' + b"y" * 8192 for _ in range(12))  # 96 KiB, no Content-Length
    conn.request("POST", "/api/v1/sales", body=chunks, encode_chunked=True,
                 headers={"Authorization": f"Bearer {_api_token(rt)}", "Content-Type": "application/json"})
    resp = conn.getresponse()
    assert resp.status == 413 and json.loads(resp.read())["code"] == "body_too_large"
    conn.close()


def test_a_body_of_200_megabytes_is_refused_before_it_is_read(rt):
    with socket.create_connection(("127.0.0.1", rt.cfg.port), timeout=30) as s:
        s.sendall(b"POST /api/v1/sales HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 209715200\r\n\r\n" + b"[" * 4096)
        answer = s.recv(4096).decode("latin-1")
    assert answer.startswith("HTTP/1.1 413"), answer[:200]


def test_json_nested_100000_deep_is_a_400_with_a_message_not_a_500(rt):
    admin = signed_in_client(rt, "admin")
    r = admin.request("POST", "/_dash-update-component", data=b"[" * 100_000 + b"]" * 100_000,
                      headers={"Content-Type": "application/json"})
    assert r.status == 400 and r.json() == {"error": "too_deep", "message": t("http.too_deep", "en")}
    api = WebClient(base_url(rt)).request("POST", "/api/v1/sales", data=b"[" * 30_000 + b"]" * 30_000, headers={
        "Authorization": f"Bearer {_api_token(rt)}", "Content-Type": "application/json", "Accept-Language": "zh-CN"})
    assert api.status == 400 and api.json() == {"code": "body_too_deep", "message": t("http.too_deep", "zh")}


# --- headers ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/login", "/logout", "/api/v1/openapi.json", "/api/v1/nothing", "/c/x",
                                  "/assets/wattline.css", "/healthz", "/lang/en"])
def test_every_response_carries_the_security_headers(rt, path):
    r = WebClient(base_url(rt)).get(path, follow=False)
    csp = r.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp and "http" not in csp
    assert r.headers["X-Frame-Options"] == "DENY" and r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Referrer-Policy"] in ("same-origin", "no-referrer")


def test_the_dashboard_page_allows_exactly_dashs_inline_scripts(rt):
    page = signed_in_client(rt, "admin").get("/")
    csp = page.headers["Content-Security-Policy"]
    html = re.sub(r"<!--.*?-->", "", page.text, flags=re.S)  # e.g. the warning for Internet Explorer
    inline = re.findall(r"<script(?![^>]*\bsrc=)(?![^>]*application/json)[^>]*>(.*?)</script>", html, re.S)
    assert inline
    for script in inline:
        digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in csp


# --- rate limits ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tight(tmp_path_factory):
    """Small limits, behind a trusted proxy on 127.0.0.1: each test is its own client address."""
    runtime = start_demo_runtime(tmp_path_factory.mktemp("tight-limits"), trusted_proxy="127.0.0.1",
                                 limits=LimitsConfig(login_per_address="6/minute", login_per_user="3/minute",
                                                     api_per_address="5/minute", api_per_client="3/minute"))
    yield runtime
    runtime.stop()


def _from(address: str, **more) -> dict:
    return {"X-Forwarded-For": address, **more}


def _login_attempt(rt, username: str, address: str, password: str = "wrong-password"):
    client = WebClient(base_url(rt))
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login", headers=_from(address)).text)
    return client.request("POST", "/login", data=urllib.parse.urlencode(
        {"csrf_token": token.group(1), "username": username, "password": password, "next": "/"}).encode(),
        headers=_from(address, **{"Content-Type": "application/x-www-form-urlencoded"}), follow=False)


def test_sign_in_attempts_for_one_user_name_are_limited_from_any_address(tight):
    statuses = [_login_attempt(tight, "cashier", f"198.51.100.{n}").status for n in range(1, 5)]
    assert statuses == [401, 401, 401, 429]
    r = _login_attempt(tight, "CASHIER ", "198.51.100.9", DEMO)  # another spelling, the right password
    assert r.status == 429 and int(r.headers["Retry-After"]) >= 1
    assert t("auth.rate_limited", "en", seconds=r.headers["Retry-After"]) in r.text
    logged = [json.loads(row["after"]) for row in _actions(tight, "request.rate_limited")]
    assert [(row["scope"], row["address"]) for row in logged if row["key"] == "user:cashier"] == \
        [("login", "198.51.100.4")]  # one row per limit window, not one per refused request


def test_sign_in_attempts_from_one_address_are_limited_across_user_names(tight):
    statuses = [_login_attempt(tight, f"nobody-{n}", "203.0.113.50").status for n in range(7)]
    assert statuses == [401] * 6 + [429]
    assert _login_attempt(tight, "nobody-7", "203.0.113.51").status == 401  # another address is not held up


def test_the_api_answers_429_json_with_retry_after_per_token(tight):
    token = _api_token(tight)
    client = WebClient(base_url(tight))
    headers = {"Authorization": f"Bearer {token}", "Accept-Language": "zh-CN"}
    statuses = [client.get("/api/v1/meters/202611210005", headers=_from(f"192.0.2.{n}", **headers)).status
                for n in range(1, 5)]
    assert statuses == [200, 200, 200, 429]
    r = client.get("/api/v1/meters/202611210005", headers=_from("192.0.2.99", **headers))
    seconds = r.headers["Retry-After"]
    assert r.status == 429 and int(seconds) >= 1
    assert r.json() == {"code": "rate_limited", "message": t("http.rate_limited", "zh", seconds=seconds)}


def test_the_api_limit_per_address_cannot_be_dodged_with_a_made_up_forwarded_for(tight):
    client = WebClient(base_url(tight))
    # Guessing tokens, each a bucket of its own, from one address. The trusted proxy appends the real
    # address to X-Forwarded-For; whatever the client wrote before it is not believed.
    statuses = [client.get("/api/v1/meters/202611210005", headers=_from(
        f"10.9.9.{n}, 192.0.2.200", Authorization=f"Bearer guessed-token-{n:04d}")).status for n in range(6)]
    assert statuses == [401] * 5 + [429]


# --- the address QR codes lead to -------------------------------------------------------------------------
def test_qr_labels_lead_to_the_public_address_whatever_host_the_request_names(rt):
    from billing import desk
    from dashboard.auth import GUARDED_CALLBACKS
    from dashboard.ids import QrLabels
    from tests.webclient import callback_body
    admin = signed_in_client(rt, "admin")
    spec = admin.callback_spec(GUARDED_CALLBACKS["qr.labels"].output)
    body = callback_body(spec, {f"{QrLabels.SHOW}.n_clicks": 1, f"{QrLabels.BUILDING}.value": "Building 1"})
    r = admin.request("POST", "/_dash-update-component", data=json.dumps(body).encode(), headers={
        "Host": EVIL, "Origin": f"http://{EVIL}", "Content-Type": "application/json"})
    assert r.status == 200, r.text[:300]
    answer = json.dumps(r.json())  # Dash escapes "/" in its JSON
    shown = {base64.b64decode(b) for b in re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", answer)}
    expected = {label["png"] for label in desk.label_sheet(rt.billing, rt.qr_key, rt.public_url, "Building 1", "test")}
    forged = {label["png"] for label in desk.label_sheet(rt.billing, rt.qr_key, f"http://{EVIL}/", "Building 1", "t")}
    assert rt.public_url == f"http://127.0.0.1:{rt.cfg.port}"
    assert shown and shown == expected and not shown & forged
