"""Sign-in over real HTTP against a running demo Runtime: the route guard, cookies, login and logout,
lockout, and every guarded Dash callback called directly as every demo role."""
from __future__ import annotations

import datetime as dt
import json
import re
import threading
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from operators.service import DEFAULT_ROLE_PERMISSIONS, MAX_FAILED_LOGINS, ROLES, demo_password
from dashboard.auth import GUARDED_CALLBACKS
from dashboard import access
from dashboard.i18n import t
from storage.schema import audit_log
from tests.webclient import WebClient, base_url, db_snapshot, start_demo_runtime

DEMO = demo_password()


@pytest.fixture(scope="module")
def rt(tmp_path_factory):
    runtime = start_demo_runtime(tmp_path_factory.mktemp("auth-web"))
    yield runtime
    runtime.stop()


@pytest.fixture
def anonymous(rt):
    return WebClient(base_url(rt))


def signed_in(rt, username: str, password: str = DEMO) -> WebClient:
    client = WebClient(base_url(rt))
    r = client.login(username, password)
    assert r.status == 302, (username, r.status, r.text[-500:])
    return client


def _audit_rows(rt, after_id: int = 0) -> list[dict]:
    with rt.engine.connect() as conn:
        q = sa.select(audit_log).where(audit_log.c.id > after_id).order_by(audit_log.c.id)
        return [dict(r) for r in conn.execute(q).mappings()]


def _last_audit_id(rt) -> int:
    with rt.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.coalesce(sa.func.max(audit_log.c.id), 0))).scalar_one()


# --- the guard ------------------------------------------------------------------------------------
def test_an_anonymous_callback_request_is_answered_401_json(anonymous):
    r = anonymous.post_json("/_dash-update-component", {"output": "x.children", "inputs": []})
    assert r.status == 401 and r.json()["error"] == "login_required"
    for path in ("/_dash-layout", "/_dash-dependencies"):
        assert anonymous.get(path).status == 401


def test_an_anonymous_page_request_redirects_to_the_login_page_and_back(anonymous):
    r = anonymous.get("/admin/users?tab=2", follow=False)
    assert r.status == 302
    location = urllib.parse.urlsplit(r.location)
    assert location.path == "/login"
    assert urllib.parse.parse_qs(location.query)["next"] == ["/admin/users?tab=2"]
    assert anonymous.get("/", follow=False).location.startswith("/login")


def test_the_page_asked_for_keeps_all_its_query_parameters_through_the_login(anonymous):
    r = anonymous.get("/meters?building=Building%201&state=opened", follow=False)
    asked = urllib.parse.parse_qs(urllib.parse.urlsplit(r.location).query)["next"]
    assert asked == ["/meters?building=Building%201&state=opened"]


def test_static_files_the_login_page_and_health_need_no_login(rt, anonymous):
    index = signed_in(rt, "worker").get("/").text
    suite = re.search(r'src="(/_dash-component-suites/[^"]+)"', index).group(1)
    for path in (suite, "/assets/vendor/bootstrap/bootstrap.min.css", "/assets/wattline.css", "/_favicon.ico",
                 "/healthz", "/login"):
        r = anonymous.get(path, follow=False)
        assert r.status == 200, (path, r.status)


def test_a_cross_site_post_is_refused_even_with_a_session(rt):
    client = signed_in(rt, "admin")
    r = client.request("POST", "/_dash-update-component", data=b"{}",
                       headers={"Content-Type": "application/json", "Origin": "http://evil.example"})
    assert r.status == 403 and r.json()["error"] == "cross_origin"


# --- signing in and out -----------------------------------------------------------------------------
def test_the_session_cookie_is_httponly_and_samesite_lax(rt):
    client = WebClient(base_url(rt))
    r = client.login("analyst", DEMO)
    cookies = [c for c in r.headers.get_all("Set-Cookie") if c.startswith("wattline_session=")]
    assert cookies, r.headers
    attributes = {a.strip().split("=")[0].lower(): a for a in cookies[-1].split(";")[1:]}
    assert "httponly" in attributes and attributes["samesite"].strip() == "SameSite=Lax"
    assert rt.dash_app.server.config["REMEMBER_COOKIE_HTTPONLY"] is True
    assert rt.dash_app.server.config["REMEMBER_COOKIE_SAMESITE"] == "Lax"


def test_logging_out_ends_the_session_on_the_server_even_for_a_copied_cookie(rt):
    client = signed_in(rt, "manager")
    stolen = client.cookie("wattline_session").value
    assert client.get("/", follow=False).status == 200
    r = client.logout()
    assert r.status == 302 and r.location.startswith("/login")
    replay = WebClient(base_url(rt))
    replay.request("GET", "/healthz")  # the jar learns the host before the cookie is set by hand
    replay.jar.set_cookie(_cookie("wattline_session", stolen, urllib.parse.urlsplit(base_url(rt)).hostname))
    assert replay.get("/", follow=False).location.startswith("/login")
    assert replay.post_json("/_dash-update-component", {"output": "x.children"}).status == 401
    assert any(r["action"] == "auth.logout" and r["operator"] == "manager" for r in _audit_rows(rt))


def _cookie(name: str, value: str, host: str):
    import http.cookiejar
    return http.cookiejar.Cookie(0, name, value, None, False, host, False, False, "/", True, False, None, False,
                                 None, None, {"HttpOnly": None})


def test_a_login_form_without_its_csrf_token_is_refused(rt, anonymous):
    r = anonymous.post_form("/login", {"username": "admin", "password": DEMO, "next": "/"})
    assert r.status == 400
    assert anonymous.get("/", follow=False).location.startswith("/login")


def test_a_wrong_password_is_answered_in_the_browser_language(rt, anonymous):
    token = anonymous.csrf_token()
    r = anonymous.request("POST", "/login", data=urllib.parse.urlencode(
        {"csrf_token": token, "username": "cashier", "password": "not-the-password"}).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded", "Accept-Language": "zh-CN,zh;q=0.9"},
        follow=False)
    assert r.status == 401 and t("auth.error.bad_credentials", "zh") in r.text and 'id="login-error"' in r.text


def test_login_returns_to_the_page_asked_for_but_never_to_another_site(rt):
    client = WebClient(base_url(rt))
    assert client.login("manager", DEMO, next_path="/audit").location == "/audit"
    client = WebClient(base_url(rt))
    assert client.login("manager", DEMO, next_path="//evil.example/x").location == access.DASHBOARD.path  # home


def test_five_wrong_passwords_lock_the_login_for_fifteen_minutes(rt):
    rt.accounts.add_operator("locky", None, "locky-password", ["analyst"], by="test", source="test",
                             must_change_password=False)
    client = WebClient(base_url(rt))
    for _ in range(MAX_FAILED_LOGINS - 1):
        assert t("auth.error.bad_credentials", "en") in client.login("locky", "wrong-password").text
    locked = t("auth.error.locked", "en", minutes=15)
    assert locked in client.login("locky", "wrong-password").text
    assert locked in client.login("locky", "locky-password").text  # even the right password
    last = _audit_rows(rt, _last_audit_id(rt) - 3)
    assert [r["action"] for r in last if r["target"] == "locky"][-2:] == ["auth.locked", "auth.login_failed"]
    real_clock = rt.accounts.clock
    rt.accounts.clock = lambda: real_clock() + dt.timedelta(minutes=15, seconds=1)
    try:
        assert client.login("locky", "locky-password").status == 302
    finally:
        rt.accounts.clock = real_clock


def _at_once(clients: list[WebClient], username: str, password: str) -> list:
    """Every client posts the login form in its own thread, all released together."""
    tokens = [c.csrf_token() for c in clients]
    start = threading.Barrier(len(clients))

    def attempt(i: int):
        start.wait()
        return clients[i].post_form("/login", {"csrf_token": tokens[i], "username": username,
                                               "password": password, "next": "/"})
    with ThreadPoolExecutor(len(clients)) as pool:
        return list(pool.map(attempt, range(len(clients))))


def test_forty_wrong_passwords_at_once_are_each_answered_counted_and_logged(rt):
    rt.accounts.add_operator("storm", None, "storm-password", ["analyst"], by="test", source="test",
                             must_change_password=False)
    first = _last_audit_id(rt)
    answers = _at_once([WebClient(base_url(rt)) for _ in range(40)], "storm", "wrong-password")
    assert sorted(r.status for r in answers) == [401] * 40
    rows = [r for r in _audit_rows(rt, first) if r["target"] == "storm"]
    failed = [json.loads(r["after"]) for r in rows if r["action"] == "auth.login_failed"]
    assert len(rows) == 40 and [r["action"] for r in rows].count("auth.locked") == 1
    assert sorted(f["failed_logins"] for f in failed if f["reason"] == "wrong password") == [1, 2, 3, 4]
    assert sum(f["reason"] == "locked" for f in failed) == 40 - MAX_FAILED_LOGINS
    locked = WebClient(base_url(rt)).login("storm", "storm-password")
    assert locked.status == 401 and t("auth.error.locked", "en", minutes=15) in locked.text


def test_right_passwords_at_the_same_moment_all_sign_in(rt):
    for _ in range(3):
        answers = _at_once([WebClient(base_url(rt)) for _ in range(2)], "cashier", DEMO)
        assert [r.status for r in answers] == [302, 302]


def test_the_language_an_operator_chooses_is_kept_on_the_operator(rt):
    client = signed_in(rt, "analyst")
    client.get("/lang/zh?next=/status", follow=False, headers={"Referer": base_url(rt) + "/status"})
    assert rt.accounts.operator("analyst").language == "zh"
    elsewhere = WebClient(base_url(rt))  # another browser, asking for English
    r = elsewhere.login("analyst", DEMO)
    assert any(c.startswith("wl_lang=zh") for c in r.headers.get_all("Set-Cookie"))
    layout = elsewhere.request("GET", "/_dash-layout", headers={"Accept-Language": "en"}).json()
    assert t("nav.overview", "zh") in json.dumps(layout, ensure_ascii=False)
    client.get("/lang/en?next=/status", follow=False, headers={"Sec-Fetch-Site": "same-origin"})
    assert rt.accounts.operator("analyst").language == "en"


# --- what each role may see and do (the navbar per role: tests/test_navbar.py) --------------------------
def test_every_guarded_callback_is_one_the_app_serves(rt):
    outputs = {spec["output"] for spec in signed_in(rt, "admin").dependencies()}
    assert GUARDED_CALLBACKS and {c.output for c in GUARDED_CALLBACKS.values()} <= outputs
    assert {"account.change_password", "admin.users.add", "admin.users.set_active", "admin.users.reset_password",
            "admin.users.set_roles", "admin.roles.save", "audit.query", "audit.export"} <= set(GUARDED_CALLBACKS)


def _example(name: str, role: str) -> dict:
    """Inputs that make each of this module's callbacks do its work (others get n_clicks=1)."""
    target = [{"username": "matrix-target"}]
    examples = {
        "account.change_password": {"account-save.n_clicks": 1, "account-current.value": DEMO,
                                    "account-new.value": DEMO, "account-confirm.value": DEMO},
        "admin.users.add": {"users-add.n_clicks": 1, "users-new-username.value": f"added-by-{role}",
                            "users-new-password.value": "first-password", "users-new-roles.value": ["cashier"]},
        "admin.users.set_active": {"users-deactivate.n_clicks": 1, "users-grid.selectedRows": target},
        "admin.users.reset_password": {"users-reset.n_clicks": 1, "users-grid.selectedRows": target,
                                       "users-temp-password.value": "temporary-password"},
        "admin.users.set_roles": {"users-set-roles.n_clicks": 1, "users-grid.selectedRows": target,
                                  "users-roles.value": ["analyst"]},
        "admin.roles.save": {"roles-save.n_clicks": 1, "roles-grid.rowData": [{"permission": "meter.view",
                                                                              "analyst": True}]},
        "audit.query": {"audit-search.n_clicks": 1},
        "audit.export": {"audit-export.n_clicks": 1},
    }
    return examples.get(name, {})


def _a_click(client: WebClient, cb) -> dict:
    return {f"{d['id']}.{d['property']}": 1 for d in client.callback_spec(cb.output)["inputs"][:1]}


@pytest.mark.parametrize("role", ROLES)
def test_each_role_may_call_exactly_the_callbacks_its_permissions_allow(rt, role):
    if rt.accounts.operator("matrix-target") is None:
        rt.accounts.add_operator("matrix-target", None, "target-password", ["cashier"], by="test", source="test")
    client = signed_in(rt, role)
    allowed_perms = DEFAULT_ROLE_PERMISSIONS[role]
    denied = [c for c in GUARDED_CALLBACKS.values() if not c.open_to(lambda p: p is None or p in allowed_perms)]
    allowed = [c for c in GUARDED_CALLBACKS.values() if c not in denied]

    before, last_id = db_snapshot(rt.engine), _last_audit_id(rt)
    for cb in denied:
        values = _example(cb.name, role) or _a_click(client, cb)
        r = client.callback(cb.name, values)
        assert r.status == 403, (role, cb.name, r.status, r.text[:300])
        named = list(cb.permission) if isinstance(cb.permission, tuple) else cb.permission  # any of several: a list
        assert r.json()["error"] == "forbidden" and r.json()["permission"] == named
    assert db_snapshot(rt.engine) == before, f"a denied call by {role} wrote something"
    logged = _audit_rows(rt, last_id)
    assert [(r["action"], r["operator"], r["target"]) for r in logged] == \
        [("permission.denied", role, f"callback {cb.name}") for cb in denied]

    for cb in allowed:
        values = _example(cb.name, role)
        mine = bool(values)  # other pages' callbacks get a click and no data: only the gate is checked
        r = client.callback(cb.name, values or _a_click(client, cb))
        assert r.status not in (401, 403), (role, cb.name, r.status, r.text[:300])
        if mine:
            assert r.status == 200, (role, cb.name, r.status, r.text[:300])


def test_an_operator_whose_password_was_reset_may_only_change_it(rt):
    admin = signed_in(rt, "admin")
    r = admin.callback("admin.users.add", {"users-add.n_clicks": 1, "users-new-username.value": "fresh",
                                           "users-new-password.value": "given-by-admin",
                                           "users-new-roles.value": ["manager"]})
    assert r.status == 200 and "fresh" in r.text
    fresh = WebClient(base_url(rt))
    assert fresh.login("fresh", "given-by-admin").location == "/account"
    assert fresh.get("/audit", follow=False).location == "/account"
    assert fresh.callback("audit.query", {"audit-search.n_clicks": 1}).status == 403
    r = fresh.callback("account.change_password", {"account-save.n_clicks": 1, "account-current.value": "given-by-admin",
                                                   "account-new.value": "chosen-by-me", "account-confirm.value": "chosen-by-me"})
    assert r.status == 200 and t("auth.account.changed", "en") in r.text
    assert fresh.callback("audit.query", {"audit-search.n_clicks": 1}).status == 200
    assert fresh.get("/audit", follow=False).status == 200
