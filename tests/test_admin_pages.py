"""The operator pages over real HTTP as the demo admin: /admin/users and /admin/roles callbacks do
their change, write the operation log with before/after and source, and refuse bad input."""
from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from operators.service import demo_password
from dashboard.i18n import t
from storage.schema import audit_log
from tests.webclient import WebClient, base_url, db_snapshot, start_demo_runtime

DEMO = demo_password()


@pytest.fixture(scope="module")
def rt(tmp_path_factory):
    runtime = start_demo_runtime(tmp_path_factory.mktemp("admin"))
    yield runtime
    runtime.stop()


@pytest.fixture(scope="module")
def admin(rt):
    client = WebClient(base_url(rt))
    assert client.login("admin", DEMO).status == 302
    return client


def _last_log(rt, action: str) -> dict:
    with rt.engine.connect() as conn:
        row = conn.execute(sa.select(audit_log).where(audit_log.c.action == action)
                           .order_by(audit_log.c.id.desc()).limit(1)).mappings().first()
    assert row is not None, f"no {action} in the operation log"
    return dict(row)


def _add(admin, username: str, roles: list[str], password: str = "first-password", **more):
    return admin.callback("admin.users.add", {"users-add.n_clicks": 1, "users-new-username.value": username,
                                              "users-new-password.value": password, "users-new-roles.value": roles,
                                              **more})


def _selected(username: str) -> list[dict]:
    return [{"username": username}]


def _login(rt, username: str, password: str) -> WebClient:
    client = WebClient(base_url(rt))
    client.login(username, password)
    return client


def test_the_operators_page_lists_every_operator_for_an_admin(admin):
    page = json.dumps(admin.page("/admin/users").json(), ensure_ascii=False)
    assert '"users-grid"' in page and all(f'"username": "{r}"' in page or f'"username":"{r}"' in page
                                          for r in ("admin", "cashier", "worker"))


def test_the_operators_page_is_refused_to_a_cashier(rt):
    page = _login(rt, "cashier", DEMO).page("/admin/users").text
    assert "forbidden-page" in page and "users-grid" not in page


def test_an_admin_adds_an_operator_with_roles_and_the_log_says_who_from_where(rt, admin):
    r = _add(admin, "clerk1", ["cashier", "analyst"], **{"users-new-name.value": "Clerk One"})
    assert r.status == 200 and t("admin.added", "en", username="clerk1") in r.text
    op = rt.accounts.operator("clerk1")
    assert op.roles == ("analyst", "cashier") and op.display_name == "Clerk One" and op.must_change_password
    row = _last_log(rt, "operator.add")
    assert (row["operator"], row["target"], row["source"]) == ("admin", "clerk1", "127.0.0.1")
    assert json.loads(row["after"])["roles"] == ["analyst", "cashier"]


def test_adding_an_operator_with_a_short_password_shows_why_and_adds_nobody(rt, admin):
    before = db_snapshot(rt.engine)
    r = _add(admin, "clerk2", ["cashier"], password="short")
    assert r.status == 200 and t("auth.error.password_too_short", "en", n=8) in r.text
    assert rt.accounts.operator("clerk2") is None and db_snapshot(rt.engine) == before


def test_a_deactivated_operator_is_signed_out_at_once_and_can_be_activated_again(rt, admin):
    _add(admin, "clerk3", ["manager"])
    rt.accounts.set_password("clerk3", "clerk3-password", by="test", source="test", must_change_password=False)
    clerk = _login(rt, "clerk3", "clerk3-password")
    assert clerk.get("/audit", follow=False).status == 200
    r = admin.callback("admin.users.set_active", {"users-deactivate.n_clicks": 1,
                                                  "users-grid.selectedRows": _selected("clerk3")})
    assert r.status == 200 and t("admin.deactivated", "en", username="clerk3") in r.text
    assert clerk.get("/audit", follow=False).location.startswith("/login")
    assert "login-error" in _login(rt, "clerk3", "clerk3-password").login("clerk3", "clerk3-password").text
    row = _last_log(rt, "operator.deactivate")
    assert json.loads(row["before"]) == {"active": True} and json.loads(row["after"]) == {"active": False}
    r = admin.callback("admin.users.set_active", {"users-activate.n_clicks": 1,
                                                  "users-grid.selectedRows": _selected("clerk3")},
                       changed=["users-activate.n_clicks"])
    assert r.status == 200 and rt.accounts.operator("clerk3").active


def test_a_reset_password_must_be_changed_at_the_next_sign_in(rt, admin):
    _add(admin, "clerk4", ["cashier"])
    r = admin.callback("admin.users.reset_password", {"users-reset.n_clicks": 1,
                                                      "users-grid.selectedRows": _selected("clerk4"),
                                                      "users-temp-password.value": "temporary-4"})
    assert r.status == 200 and t("admin.reset_done", "en", username="clerk4") in r.text
    assert WebClient(base_url(rt)).login("clerk4", "temporary-4").location == "/account"
    assert rt.accounts.operator("clerk4").must_change_password
    assert _last_log(rt, "operator.password_reset")["target"] == "clerk4"


def test_assigning_roles_gives_the_operator_their_permissions(rt, admin):
    _add(admin, "clerk5", ["worker"])
    r = admin.callback("admin.users.set_roles", {"users-set-roles.n_clicks": 1,
                                                 "users-grid.selectedRows": _selected("clerk5"),
                                                 "users-roles.value": ["analyst", "manager"]})
    assert r.status == 200 and t("admin.roles_saved", "en", username="clerk5") in r.text
    assert "audit.view" in rt.accounts.operator("clerk5").permissions
    row = _last_log(rt, "operator.roles")
    assert json.loads(row["before"]) == {"roles": ["worker"]}
    assert json.loads(row["after"]) == {"roles": ["analyst", "manager"]}


def test_a_change_without_a_selected_operator_says_so(admin):
    r = admin.callback("admin.users.set_roles", {"users-set-roles.n_clicks": 1, "users-grid.selectedRows": [],
                                                 "users-roles.value": ["analyst"]})
    assert r.status == 200 and t("auth.error.select_operator", "en") in r.text


def test_saving_the_matrix_changes_what_a_role_may_do_and_logs_before_and_after(rt, admin):
    rows = [{"permission": "audit.view", "worker": True}, {"permission": "meter.view", "worker": True}]
    r = admin.callback("admin.roles.save", {"roles-save.n_clicks": 1, "roles-grid.rowData": rows})
    assert r.status == 200 and t("admin.matrix_saved", "en", roles=t("admin.role.worker", "en")) in r.text
    worker = _login(rt, "worker", DEMO)
    assert worker.callback("audit.query", {"audit-search.n_clicks": 1}).status == 200
    row = _last_log(rt, "role.permissions")
    assert row["target"] == "worker" and json.loads(row["before"]) == {"permissions": ["workorder.execute"]}
    assert json.loads(row["after"]) == {"permissions": ["audit.view", "meter.view", "workorder.execute"]}
    rows = [{"permission": "audit.view", "worker": False}, {"permission": "meter.view", "worker": False}]
    admin.callback("admin.roles.save", {"roles-save.n_clicks": 1, "roles-grid.rowData": rows})
    assert worker.callback("audit.query", {"audit-search.n_clicks": 1}).status == 403


def test_the_matrix_keeps_the_right_to_manage_operators_somewhere_and_writes_nothing(rt, admin):
    before = db_snapshot(rt.engine)
    r = admin.callback("admin.roles.save", {"roles-save.n_clicks": 1,
                                            "roles-grid.rowData": [{"permission": "user.manage", "admin": False}]})
    assert r.status == 200 and t("auth.error.last_manager", "en") in r.text
    assert db_snapshot(rt.engine) == before


def test_the_admin_pages_speak_chinese(rt):
    client = WebClient(base_url(rt))
    client.login("admin", DEMO)
    typed_in = {"Sec-Fetch-Site": "none"}    # as a switch typed into the address bar (from another site: ignored)
    client.get("/lang/zh?next=/", follow=False, headers=typed_in)
    try:
        users = json.dumps(client.page("/admin/users").json(), ensure_ascii=False)
        roles = json.dumps(client.page("/admin/roles").json(), ensure_ascii=False)
        assert t("admin.users_heading", "zh") in users and t("admin.add_heading", "zh") in users
        assert t("admin.roles_heading", "zh") in roles and t("admin.permissions.sale.refund", "zh") in roles
        assert t("admin.role.cashier", "zh") in roles
    finally:
        client.get("/lang/en?next=/", follow=False, headers=typed_in)
