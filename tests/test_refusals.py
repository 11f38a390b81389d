"""Refusals the operator sees: a page hides the controls its operator may not use, and a callback the server
still refuses (the role changed while the page was open) shows the server's message, naming the permission
as the Permissions page does, in the operator's language. Through the callback endpoint and in Chromium (the
system's) against one demo site for the module."""
from __future__ import annotations

import pytest

from operators.service import demo_password
from dashboard.i18n import t
from tests.webclient import WebClient, base_url, browser_signed_in, start_demo_runtime

DEMO = demo_password()
PASSWORD = "refusal-password-1"


@pytest.fixture(scope="module")
def rt(tmp_path_factory):
    runtime = start_demo_runtime(tmp_path_factory.mktemp("refusals"))
    yield runtime
    runtime.stop()


def _operator(rt, username: str, roles: list[str], language: str = "en") -> str:
    if rt.accounts.operator(username) is None:
        rt.accounts.add_operator(username, None, PASSWORD, roles, by="test", source="test", language=language,
                                 must_change_password=False)
    rt.accounts.set_roles(username, roles, by="test", source="test")
    return username


def _client(rt, username: str, password: str = PASSWORD) -> WebClient:
    client = WebClient(base_url(rt))
    assert client.login(username, password).status == 302
    return client


def _ids(layout) -> set[str]:
    """Every string id in a rendered page (the body Dash's page router answers)."""
    found = set()

    def walk(node):
        if isinstance(node, dict):
            ident = node.get("id") if not isinstance(node.get("props"), dict) else node["props"].get("id")
            if isinstance(ident, str):
                found.add(ident)
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
    walk(layout)
    return found


def _page_ids(client: WebClient, path: str) -> set[str]:
    r = client.page(path)
    assert r.status == 200, (path, r.status)
    return _ids(r.json())


# ---------------------------------------------------------------------------------------------
# the server's answer
def test_a_refused_callback_names_the_permission_as_the_permissions_page_does_in_english(rt):
    r = _client(rt, "cashier", DEMO).callback("meters.export", {"meters-export-request.data": {"ids": [1]}})
    body = r.json()
    assert r.status == 403 and body["permission"] == "meter.export"
    assert t("admin.permissions.meter.export", "en") in body["message"] and "meter.export" in body["message"]


def test_a_refused_callback_names_the_permission_in_chinese_for_a_chinese_operator(rt):
    _operator(rt, "kassen-zh", ["cashier"], language="zh")
    r = _client(rt, "kassen-zh").callback("meters.export", {"meters-export-request.data": {"ids": [1]}})
    assert r.status == 403
    assert r.json()["message"] == t("auth.denied", "zh", label=t("admin.permissions.meter.export", "zh"),
                                    permission="meter.export")


def test_a_callback_open_to_several_permissions_names_each_when_refused(rt):
    r = _client(rt, "analyst", DEMO).callback("sell.find", {"sell-find.n_clicks": 1, "sell-search.value": "B1-101"})
    body = r.json()
    assert r.status == 403 and body["permission"] == ["sale.create", "sale.refund", "sale.reverse"]
    for permission in body["permission"]:
        assert t(f"admin.permissions.{permission}", "en") in body["message"]


def test_a_refund_refused_by_the_credit_gate_names_the_permission_by_its_label(rt):
    from billing.errors import BillingError
    message = BillingError("permission_denied", permission="sale.refund").message("zh")
    assert t("admin.permissions.sale.refund", "zh") in message and "sale.refund" in message


def _batch_request(rt, count: int, action: str = "trip") -> dict:
    """The control page's Send, as the browser posts it: `count` demo meters selected in the grid."""
    import sqlalchemy as sa

    from storage.schema import meter
    with rt.engine.connect() as conn:
        numbers = list(conn.execute(sa.select(meter.c.address).where(meter.c.profile.like("acrel-d%sy1352"))
                                    .order_by(meter.c.id).limit(count)).scalars())
    return {"control-pending.data": {"action": action}, "control-send.n_clicks": 1, "control-reason.value": "test",
            "control-grid.selectedRows": [{"address": n} for n in numbers]}


def _counts(rt, username: str) -> tuple[int, int]:
    """(commands, permission.denied rows of `username`)."""
    import sqlalchemy as sa

    from storage.schema import audit_log, command
    with rt.engine.connect() as conn:
        return (conn.execute(sa.select(sa.func.count()).select_from(command)).scalar_one(),
                conn.execute(sa.select(sa.func.count()).select_from(audit_log).where(
                    audit_log.c.action == "permission.denied", audit_log.c.operator == username)).scalar_one())


def test_a_cashier_calling_the_batch_callback_directly_is_refused_nothing_queued_and_audited(rt):
    commands, denied = _counts(rt, "cashier")
    r = _client(rt, "cashier", DEMO).callback("control.queue", _batch_request(rt, 3), changed=["control-send.n_clicks"])
    assert r.status == 403 and r.json()["permission"] == ["relay.batch", "relay.command"]
    assert _counts(rt, "cashier") == (commands, denied + 1)


def test_an_operator_queues_a_batch_from_the_control_page_and_its_view_lists_the_meters(rt):
    commands, _ = _counts(rt, "operator")
    client = _client(rt, "operator", DEMO)
    r = client.callback("control.queue", _batch_request(rt, 2, "keep_power_off"), changed=["control-send.n_clicks"])
    assert r.status == 200, r.text[:300]
    batch = r.json()["response"]["control-message"]["children"]["props"]["data-batch"]
    assert _counts(rt, "operator")[0] == commands + 2
    view = client.callback("control.batch.refresh", {"control-batch-tick.n_intervals": 1,
                                                     "control-batch-id.data": batch})
    assert view.status == 200 and view.text.count('"data-meter"') == 2
    page = client.page("/control/batch", search=f"?id={batch}")
    assert page.status == 200 and "control-batch-body" in page.text


# ---------------------------------------------------------------------------------------------
# controls an operator may not use are not shown
def test_the_meters_export_button_is_shown_only_to_an_operator_who_may_export(rt):
    assert "meters-export" not in _page_ids(_client(rt, "cashier", DEMO), "/meters")
    assert "meters-export" in _page_ids(_client(rt, "analyst", DEMO), "/meters")


def test_the_records_export_button_is_shown_only_to_an_operator_who_may_export(rt):
    rt.accounts.set_role_permissions({"worker": {"report.view": True}}, by="test", source="test")
    try:
        _operator(rt, "records-reader", ["worker"])
        assert "rec-export" not in _page_ids(_client(rt, "records-reader"), "/records")
    finally:
        rt.accounts.set_role_permissions({"worker": {"report.view": False}}, by="test", source="test")
    assert "rec-export" in _page_ids(_client(rt, "cashier", DEMO), "/records")


def test_an_operator_who_may_only_sell_sees_no_refund_or_reversal_form(rt):
    rt.accounts.set_role_permissions({"worker": {"sale.create": True}}, by="test", source="test")
    try:
        _operator(rt, "seller-only", ["worker"])
        ids = _page_ids(_client(rt, "seller-only"), "/sell")
    finally:
        rt.accounts.set_role_permissions({"worker": {"sale.create": False}}, by="test", source="test")
    assert {"sell-search", "sell-sell"} <= ids
    assert not ids & {"sell-refund", "sell-reverse", "sell-refund-amount", "sell-reverse-receipt"}


def test_an_operator_who_may_only_refund_finds_a_meter_and_sees_no_sale_form(rt):
    rt.accounts.set_role_permissions({"worker": {"sale.refund": True}}, by="test", source="test")
    try:
        _operator(rt, "refunder-only", ["worker"])
        client = _client(rt, "refunder-only")
        ids = _page_ids(client, "/sell")
        found = client.callback("sell.find", {"sell-find.n_clicks": 1, "sell-search.value": "B1-101"})
    finally:
        rt.accounts.set_role_permissions({"worker": {"sale.refund": False}}, by="test", source="test")
    assert {"sell-search", "sell-refund"} <= ids and not ids & {"sell-sell", "sell-amount", "sell-reverse"}
    assert found.status == 200


def test_the_account_actions_an_operator_may_not_take_are_hidden(rt):
    rt.accounts.set_role_permissions({"worker": {"account.close": True}}, by="test", source="test")
    try:
        _operator(rt, "closer-only", ["worker"])
        client = _client(rt, "closer-only")
        page = client.page("/accounts").json()
        found = client.callback("accounts.find", {"acc-find.n_clicks": 1, "acc-search.value": "B1-1",
                                                  "acc-status.value": "open"})
    finally:
        rt.accounts.set_role_permissions({"worker": {"account.close": False}}, by="test", source="test")
    hidden = {ident for ident, style in _styles(page).items() if style == {"display": "none"}}
    assert found.status == 200 and found.json()["response"]["acc-grid"]["rowData"]
    assert "acc-open" not in _ids(page)                                  # no opening tab
    assert {"acc-card-box", "acc-add-box", "acc-transfer-box"} <= hidden and "acc-close-box" not in hidden


def _styles(layout) -> dict[str, dict]:
    out = {}

    def walk(node):
        if isinstance(node, dict):
            props = node.get("props")
            if isinstance(props, dict) and isinstance(props.get("id"), str):
                out[props["id"]] = props.get("style")
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
    walk(layout)
    return out


# ---------------------------------------------------------------------------------------------
# Chromium
def _signed_in(rt, browser, username: str, password: str = PASSWORD):
    return browser_signed_in(browser, rt, username, password)


def test_a_cashier_sees_no_export_button_on_the_meters_page(rt, browser):
    context, page = _signed_in(rt, browser, "cashier", DEMO)
    try:
        page.goto(base_url(rt) + "/meters")
        page.wait_for_selector("#meters-grid .ag-row")
        assert page.locator("#meters-export").count() == 0
        assert page.locator("#meters-refresh").count() == 1
    finally:
        context.close()


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_an_export_refused_after_the_role_changed_says_which_permission_it_needs(rt, browser, lang):
    username = _operator(rt, f"exporter-{lang}", ["analyst"], language=lang)
    context, page = _signed_in(rt, browser, username)
    downloads = []
    page.on("download", lambda d: downloads.append(d))
    try:
        page.goto(base_url(rt) + "/meters")
        page.wait_for_selector("#meters-grid .ag-row")
        rt.accounts.set_roles(username, ["cashier"], by="test", source="test")   # meter.export taken away
        page.click("#meters-export")
        alert = page.wait_for_selector("#refusal-alert")
        assert alert.get_attribute("data-permission") == "meter.export"
        assert alert.get_attribute("role") == "alert"
        text = alert.inner_text()
        assert t("admin.permissions.meter.export", lang) in text and "meter.export" in text
        page.click("#refusal-alert .btn-close")
        assert page.locator("#refusal-alert").count() == 0
        assert downloads == []
    finally:
        context.close()


def test_a_refund_refused_after_the_role_changed_shows_the_message_on_the_desk(rt, browser):
    username = _operator(rt, "desk-refunder", ["cashier"])
    context, page = _signed_in(rt, browser, username)
    try:
        page.goto(base_url(rt) + "/sell")
        page.fill("#sell-search", "B1-101")
        page.press("#sell-search", "Enter")
        page.wait_for_selector("#sell-meter-card")
        rt.accounts.set_roles(username, ["operator"], by="test", source="test")   # no desk permission left
        page.click("#sell-more >> text=" + t("cashier.refund", "en"))
        page.fill("#sell-refund-amount", "1")
        page.fill("#sell-refund-reason", "test")
        page.click("#sell-refund")
        alert = page.wait_for_selector("#refusal-alert")
        assert alert.get_attribute("data-permission") == "sale.refund"
        assert t("admin.permissions.sale.refund", "en") in alert.inner_text()
    finally:
        context.close()


def test_a_signed_out_operator_is_told_to_sign_in_with_a_link_back(rt, browser):
    username = _operator(rt, "signed-out", ["cashier"])
    context, page = _signed_in(rt, browser, username)
    try:
        page.goto(base_url(rt) + "/meters")
        page.wait_for_selector("#meters-grid .ag-row")
        context.clear_cookies()   # the session ended (signed out in another tab, expired)
        page.click("#meters-refresh")
        alert = page.wait_for_selector("#refusal-alert")
        assert alert.get_attribute("data-status") == "401"
        assert t("auth.login_required", "en") in alert.inner_text()
        assert page.get_attribute("#refusal-alert a", "href") == "/login?next=%2Fmeters"
    finally:
        context.close()


@pytest.mark.parametrize("failure, key", [("no answer", "app.server_unreachable"), ("500", "app.callback_failed")])
def test_a_callback_the_server_fails_or_never_answers_says_so_in_the_operators_language(rt, browser, failure, key):
    username = _operator(rt, "unlucky-zh", ["cashier"], language="zh")
    context, page = _signed_in(rt, browser, username)
    try:
        page.goto(base_url(rt) + "/meters")
        page.wait_for_selector("#meters-grid .ag-row")
        if failure == "500":
            page.route("**/_dash-update-component*", lambda route: route.fulfill(status=500, body="<html>boom</html>"))
        else:
            page.route("**/_dash-update-component*", lambda route: route.abort("connectionrefused"))
        page.click("#meters-refresh")
        alert = page.wait_for_selector("#refusal-alert")
        assert alert.inner_text().strip() == t(key, "zh")
    finally:
        context.close()
