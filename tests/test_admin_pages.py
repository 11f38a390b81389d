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


# --- site setup (/site) -------------------------------------------------------------------------------------
def _site_call(client, name: str, **values):
    return client.callback(name, {f"{k}": v for k, v in values.items()})


def _words(response) -> str:
    """The answer's text as the page shows it (JSON escapes quotes and Chinese)."""
    return json.dumps(response.json(), ensure_ascii=False)


def _options(response, key: str) -> list[dict]:
    return response.json()["response"][key]["options"]


def test_the_site_setup_page_shows_the_topology_and_the_profiles_to_an_admin(admin):
    page = admin.page("/site").text
    assert "site-grid-meters" in page and "acrel-ddsy1352" in page and "site-upload" in page


def test_a_cashier_is_refused_the_site_setup_page_and_its_actions_and_the_refusal_is_logged(rt):
    cashier = _login(rt, "cashier", DEMO)
    assert "forbidden-page" in cashier.page("/site").text
    before = db_snapshot(rt.engine)
    r = cashier.callback("site.meter_retire", {"site-retire-confirm.submit_n_clicks": 1,
                                               "site-meter.value": "202611210001"})
    assert r.status == 403 and r.json()["permission"] == "site.edit"
    assert db_snapshot(rt.engine) == before
    row = _last_log(rt, "permission.denied")
    assert (row["operator"], row["target"]) == ("cashier", "callback site.meter_retire")


def test_an_admin_builds_a_room_and_a_gateway_adds_a_meter_moves_it_and_retires_it(rt, admin):
    r = admin.callback("site.building_save", {"site-building-save.n_clicks": 1, "site-building.value": "",
                                              "site-building-name.value": "Block Z"})
    assert r.status == 200 and t("site.saved_building", "en", name="Block Z") in _words(r)
    building_id = next(o["value"] for o in _options(r, "site-building") if o["label"] == "Block Z")
    rooms = []
    for name in ("Z-101", "Z-102"):
        r = admin.callback("site.room_save", {"site-room-save.n_clicks": 1, "site-room.value": "",
                                              "site-room-building.value": building_id, "site-room-name.value": name,
                                              "site-room-floor.value": "1"})
        rooms.append(next(o["value"] for o in _options(r, "site-room") if o["label"] == f"Block Z / {name}"))
    r = admin.callback("site.gateway_save", {"site-gw-save.n_clicks": 1, "site-gateway.value": "",
                                             "site-gw-name.value": "GW-Z", "site-gw-host.value": "10.9.9.9",
                                             "site-gw-framing.value": "socket", "site-gw-timeout.value": "1",
                                             "site-gw-retries.value": "1", "site-gw-buses.value": "1:6001"})
    gateway_id = next(o["value"] for o in _options(r, "site-gateway") if o["label"].startswith("GW-Z"))
    meter = {"site-meter.value": "202699990001", "site-meter-gateway.value": gateway_id, "site-meter-bus.value": "1",
             "site-meter-unit.value": "1", "site-meter-profile.value": "acrel-ddsy1352",
             "site-meter-room.value": rooms[0]}
    r = admin.callback("site.meter_add", {"site-meter-add.n_clicks": 1, **meter})
    assert t("site.meter_added", "en", address="202699990001") in _words(r)
    r = admin.callback("site.meter_move", {"site-meter-move.n_clicks": 1, **meter, "site-meter-room.value": rooms[1]})
    assert t("site.meter_moved", "en", address="202699990001") in _words(r)
    moved = _last_log(rt, "site.meter_move")
    assert (moved["operator"], moved["source"]) == ("admin", "127.0.0.1")
    assert (json.loads(moved["before"])["room"], json.loads(moved["after"])["room"]) == ("Z-101", "Z-102")
    r = admin.callback("site.meter_retire", {"site-retire-confirm.submit_n_clicks": 1, **meter})
    assert t("site.meter_retired", "en", address="202699990001") in _words(r)
    assert json.loads(_last_log(rt, "site.meter_retire")["after"]) == {"status": "removed"}


def test_a_meter_with_a_full_width_unit_is_refused_in_chinese_and_nothing_is_written(rt, admin):
    before = db_snapshot(rt.engine)
    typed_in = {"Sec-Fetch-Site": "none"}    # as a switch typed into the address bar
    admin.get("/lang/zh?next=/", follow=False, headers=typed_in)
    try:
        r = admin.callback("site.meter_add", {"site-meter-add.n_clicks": 1, "site-meter.value": "202699990002",
                                              "site-meter-gateway.value": "1", "site-meter-bus.value": "1",
                                              "site-meter-unit.value": "５",
                                              "site-meter-profile.value": "acrel-ddsy1352"})
    finally:
        admin.get("/lang/en?next=/", follow=False, headers=typed_in)
    assert r.status == 200 and "全角" in _words(r) and t("site.refused", "zh") in _words(r), _words(r)
    assert db_snapshot(rt.engine) == before


def _upload(text: str) -> str:
    import base64
    return "data:text/csv;base64," + base64.b64encode(text.encode()).decode()


def test_an_uploaded_file_is_previewed_row_by_row_writing_nothing_then_imported(rt, admin):
    header = "building,floor,room,gateway,host,framing,bus,port,unit,profile,meter_address\n"
    bad = header + ("Block Y,1,Y-101,GW-Y,10.9.9.8,socket,1,6101,1,acrel-ddsy1352,2026999\n"
                    "Block Y,1,Y-102,GW-Y,10.9.9.8,socket,1,6101,300,acrel-ddsy1352,202699980002\n")
    before = db_snapshot(rt.engine)
    r = admin.callback("site.import_check", {"site-upload.contents": _upload(bad), "site-upload.filename": "y.csv"})
    assert r.status == 200
    assert t("site.issue.not_meter_number", "en", value="2026999") in _words(r)
    assert t("site.issue.out_of_range", "en", value=300, low=1, high=247) in _words(r)
    assert '"row": 2' in _words(r) and '"row": 3' in _words(r)
    r = admin.callback("site.import", {"site-import.n_clicks": 1, "site-upload.contents": _upload(bad),
                                       "site-upload.filename": "y.csv"})
    assert db_snapshot(rt.engine) == before
    good = bad.replace(",2026999\n", ",202699980001\n").replace(",300,", ",2,")
    r = admin.callback("site.import_check", {"site-upload.contents": _upload(good), "site-upload.filename": "y.csv"})
    assert t("site.preview_ok", "en", n=2, format="CSV", encoding="utf-8") in _words(r)
    r = admin.callback("site.import", {"site-import.n_clicks": 1, "site-upload.contents": _upload(good),
                                       "site-upload.filename": "y.csv"})
    assert t("site.imported", "en", rows=2, meters=2, gateways=1, rooms=2) in _words(r)
    assert _last_log(rt, "topology.import")["target"] == "upload y.csv"


def test_a_gateway_test_reads_a_demo_meter_and_says_when_the_port_is_closed(rt, admin):
    from storage.topology import poll_targets
    from tests.conftest import free_port
    with rt.engine.connect() as conn:
        target = next(m for m in poll_targets(conn) if m["profile"] == "acrel-ddsy1352")
    form = {"site-test.n_clicks": 1, "site-gw-host.value": target["host"], "site-gw-framing.value": target["framing"],
            "site-gw-timeout.value": "1", "site-test-port.value": str(target["port"]),
            "site-test-unit.value": str(target["unit"]), "site-test-profile.value": "acrel-ddsy1352"}
    r = admin.callback("site.gateway_test", form)
    assert r.status == 200 and t("site.test_ok", "en") in _words(r)
    r = admin.callback("site.gateway_test", {**form, "site-test-port.value": str(free_port())})
    assert t("site.test_unreachable", "en") in _words(r)


def test_a_broken_profile_file_is_shown_with_its_line_number(admin):
    import base64
    text = '[profile]\nname = "x"\nmodel = "X"\nkind = "prepaid-1p"\nword_order = "big"\nmailbx = 5\n'
    r = admin.callback("site.profile_check", {
        "site-profile-upload.contents": "data:application/toml;base64," + base64.b64encode(text.encode()).decode(),
        "site-profile-upload.filename": "x.toml"})
    assert r.status == 200 and t("site.profile_line", "en", line=6) in _words(r) and "mailbx" in _words(r)


# --- default parameters and one meter's settings (issue 10) -------------------------------------------------------
def _parameters_form(rt, **changed) -> dict:
    from billing.parameters import FIELDS
    from dashboard.components.settings import _shown
    from dashboard.ids import Parameters
    current = rt.parameters.current()
    values = {f"{Parameters.field(f)}.value": _shown(f, current) for f in FIELDS}
    values.update({f"{Parameters.field(f)}.value": v for f, v in changed.items()})
    return {"params-save.n_clicks": 1, **values}


def test_the_parameters_page_reschedules_the_state_poll_and_logs_before_and_after(rt, admin):
    assert "params-state-poll-interval-s" in json.dumps(admin.page("/admin/parameters").json())
    r = admin.callback("admin.parameters.save", _parameters_form(rt, state_poll_interval_s="45"))
    assert r.status == 200 and t("parameters.state_poll_interval_s", "en") in _words(r)
    assert next(s.interval_s for s in rt.jobs.status() if s.name == "state_poll") == 45.0
    row = _last_log(rt, "settings.parameter")
    assert (json.loads(row["after"]), row["operator"]) == ({"state_poll_interval_s": 45.0}, "admin")


def test_the_parameters_page_refuses_a_decimal_comma_with_the_fields_name_and_writes_nothing(rt, admin):
    before = db_snapshot(rt.engine)
    r = admin.callback("admin.parameters.save", _parameters_form(rt, alarm1="50,5"))
    text = json.dumps(r.json(), ensure_ascii=False)
    assert r.status == 200 and t("parameters.alarm1", "en") in text and "amount_decimal_comma" in text
    assert db_snapshot(rt.engine) == before


def test_the_meter_settings_page_shows_ours_beside_the_meters_and_refuses_alarm2_above_alarm1(rt, admin):
    import sqlalchemy as sa
    from storage.schema import meter
    with rt.engine.connect() as conn:
        number = conn.execute(sa.select(meter.c.address).where(meter.c.profile == "acrel-ddsy1352")
                              .order_by(meter.c.id).limit(1)).scalar()
    page = json.dumps(admin.page("/meter-settings", f"?meter={number}").json(), ensure_ascii=False)
    assert t("meter_settings.ours", "en") in page and t("meter_settings.meters", "en") in page
    before = db_snapshot(rt.engine)
    r = admin.callback("meter_settings.push", {"mset-push.n_clicks": 1, "mset-meter.value": number,
                                               "mset-alarm1.value": "10", "mset-alarm2.value": "20",
                                               "mset-overload.value": "5000"})
    assert r.status == 200 and "alarm2_above_alarm1" in _words(r)
    assert db_snapshot(rt.engine) == before
    r = admin.callback("meter_settings.push", {"mset-push.n_clicks": 1, "mset-meter.value": number,
                                               "mset-alarm1.value": "30", "mset-alarm2.value": "10",
                                               "mset-overload.value": "5000"})
    assert r.status == 200 and _last_log(rt, "meter.settings_push")["target"] == f"meter:{number}"
