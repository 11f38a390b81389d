"""Issue 12's later pieces over HTTP and in Chromium against a demo site: a blocked phone's upload and report refused
with nothing stored (and the order page saying so) until the office unblocks it, only a dispatcher blocking through
the terminals page's callback; message attachments picked from the writer's files; the office saving an operating
card and creating an order for a district; and the worker adding a material line on a phone (390 x 844) with the
fee totals following, a comma refused on screen, and removing the line again."""
from __future__ import annotations

import hashlib
import io
import json
import re

import pytest
import sqlalchemy as sa

from storage.schema import audit_log, card_item, evidence, message, operator, terminal, work_order, \
    work_order_material
from tests.webclient import base_url, signed_in_client, start_demo_runtime

PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    rt = start_demo_runtime(tmp_path_factory.mktemp("additions-demo"))
    yield rt
    rt.stop()


def count(engine, table, *where) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table).where(*where)).scalar_one()


def photo() -> bytes:
    from PIL import Image
    out = io.BytesIO()
    Image.new("RGB", (40, 30), (20, 160, 10)).save(out, "JPEG")
    return out.getvalue()


def _csrf(client) -> str:
    layout = client.page("/work").text
    m = re.search(r'"data-csrf": ?"([^"]+)"', layout)
    assert m
    return m.group(1)


def _own_order(rt, username="worker") -> int:
    with rt.engine.connect() as conn:
        return conn.execute(sa.select(work_order.c.id).join(operator, operator.c.id == work_order.c.assigned_to)
                            .where(operator.c.username == username, work_order.c.state.in_(("on_site", "accepted")))
                            .order_by(work_order.c.id).limit(1)).scalar_one()


def _seen(client, token):
    return client.request("POST", "/_field/seen", data=b"{}", headers={"Content-Type": "application/json",
                                                                        "X-CSRF-Token": token})


def _block(client, terminal_id, *, block=True, reason="Phone lost on the site"):
    button = "terminals-block" if block else "terminals-unblock"
    return client.callback("terminals.block", {"terminals-pick.value": str(terminal_id),
                                               "terminals-reason.value": reason, "terminals-days.value": "30",
                                               f"{button}.n_clicks": 1}, changed=[f"{button}.n_clicks"])


def test_a_blocked_phones_upload_is_refused_with_nothing_stored_and_unblocking_restores_it(demo):
    worker = signed_in_client(demo, "worker")
    token = _csrf(worker)
    tid = _seen(worker, token).json()["terminal"]
    own = _own_order(demo)
    data = photo()
    headers = {"Content-Type": "application/json", "X-CSRF-Token": token}

    def start(upload_id):
        return worker.request("POST", "/_field/uploads", data=json.dumps(
            {"upload_id": upload_id, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "kind": "photo",
             "order_id": own}).encode(), headers=headers)

    manager = signed_in_client(demo, "manager")
    r = _block(manager, tid)
    assert r.status == 200 and "text-success" in r.text
    before = count(demo.engine, evidence)
    refused = start("blocked-phone-upload-1")
    assert refused.status == 403 and refused.json()["error"] == "terminal_blocked" and refused.json()["message"]
    assert _seen(worker, token).status == 403
    assert worker.get(f"/_field/uploads/blocked-phone-upload-1").status == 403
    assert count(demo.engine, evidence) == before
    page = worker.page("/work/order", f"?id={own}").text
    assert "field-order-blocked" in page and "field-confirm" not in page
    # the office unblocks: the same phone uploads again
    assert "text-success" in _block(manager, tid, block=False, reason="").text
    assert start("blocked-phone-upload-2").status == 200
    put = worker.request("PUT", "/_field/uploads/blocked-phone-upload-2?offset=0", data=data,
                         headers={"X-CSRF-Token": token, "Content-Type": "application/octet-stream"})
    assert put.json()["evidence_id"] is not None and count(demo.engine, evidence) == before + 1
    with demo.engine.connect() as conn:
        assert conn.execute(sa.select(terminal.c.state).where(terminal.c.id == tid)).scalar_one() == "active"


def test_a_worker_cannot_block_a_phone_through_the_callback_endpoint(demo):
    worker = signed_in_client(demo, "worker")
    tid = _seen(worker, _csrf(worker)).json()["terminal"]
    r = _block(worker, tid)
    assert r.status in (401, 403)
    with demo.engine.connect() as conn:
        assert conn.execute(sa.select(terminal.c.state).where(terminal.c.id == tid)).scalar_one() == "active"
    assert count(demo.engine, audit_log, audit_log.c.operator == "worker",
                 audit_log.c.action == "permission.denied", audit_log.c.target == "callback terminals.block") >= 1


def test_the_message_form_offers_the_writers_files_and_sends_the_picked_ones(demo):
    own = _own_order(demo)
    eid = demo.field.evidence.store_bytes(
        demo.field.uploader(_actor("worker")), photo()[:-2] + b"\x00\xff\xd9", kind="photo", order_id=own,
        name="box.jpg")
    worker = signed_in_client(demo, "worker")
    page = worker.page("/messages").text
    assert f'"value":"{eid}"' in page.replace(" ", "") and "box.jpg" in page
    before = count(demo.engine, message)
    r = worker.callback("messages.send", {"messages-send.n_clicks": 1, "messages-to.value": "manager",
                                          "messages-subject.value": "Box", "messages-body.value": "See photo",
                                          "messages-attach.value": [str(eid)], "messages-version.data": 0})
    assert r.status == 200 and "text-success" in r.text
    assert count(demo.engine, message) == before + 1
    r = worker.callback("messages.send", {"messages-send.n_clicks": 1, "messages-to.value": "manager",
                                          "messages-subject.value": "Box", "messages-body.value": "x",
                                          "messages-attach.value": [{"x": 1}], "messages-version.data": 0})
    assert "text-danger" in r.text and count(demo.engine, message) == before + 1


def _actor(username):
    from billing.credit import Actor
    from operators.service import DEFAULT_ROLE_PERMISSIONS
    return Actor(username, DEFAULT_ROLE_PERMISSIONS[username if username != "manager" else "manager"])


def test_the_office_saves_a_card_and_creates_an_order_for_a_district(demo):
    manager = signed_in_client(demo, "manager")
    page = manager.page("/workorders").text
    assert "wol-card-text" in page and "wol-new-district" in page
    r = manager.callback("workorders.card_save", {"wol-card-save.n_clicks": 1, "wol-card-type.value": "temporary",
                                                  "wol-card-text.value": "step | Look | 查看\nstep | 2,5 | x | y"})
    assert "text-danger" in r.text and "2" in r.text
    r = manager.callback("workorders.card_save", {"wol-card-save.n_clicks": 1, "wol-card-type.value": "temporary",
                                                  "wol-card-text.value": "step | Look | 查看\nhazard | Wet | 潮湿"})
    assert "text-success" in r.text
    assert count(demo.engine, card_item, card_item.c.type == "temporary") == 2
    from storage.schema import building
    with demo.engine.connect() as conn:
        bid = conn.execute(sa.select(building.c.id).order_by(building.c.id).limit(1)).scalar_one()
    r = manager.callback("workorders.create", {"wol-new-create.n_clicks": 1, "wol-new-type.value": "temporary",
                                               "wol-new-priority.value": "normal", "wol-new-customer.value": "",
                                               "wol-new-description.value": "Stairwell lights",
                                               "wol-new-district.value": f"building:{bid}"})
    assert "text-success" in r.text
    with demo.engine.connect() as conn:
        row = conn.execute(sa.select(work_order.c.building_id, work_order.c.account_id)
                           .where(work_order.c.description == "Stairwell lights")).one()
    assert tuple(row) == (bid, None)


# --- Chromium on a phone ----------------------------------------------------------------------------------------
def _phone(browser, rt, username="worker"):
    from operators.service import demo_password
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True, locale="en-US",
                                  device_scale_factor=2)
    context.set_default_timeout(20000)
    page = context.new_page()
    page.goto(base_url(rt) + "/login")
    page.fill("#login-username", username)
    page.fill("#login-password", demo_password())
    page.click("#login-submit")
    page.wait_for_url("**/work")
    return context, page


def _accepted_repair(rt) -> int:
    from storage.schema import account
    svc = rt.workorders
    with rt.engine.connect() as conn:
        account_id = conn.execute(sa.select(account.c.id).order_by(account.c.id).limit(1)).scalar_one()
        worker_id = conn.execute(sa.select(operator.c.id).where(operator.c.username == "worker")).scalar_one()
    o = svc.create(_actor("manager"), type="repair", description="Breaker trips at night", account=account_id).order
    svc.dispatch(_actor("manager"), o["id"], worker_id)
    svc.act(_actor("worker"), o["id"], "accept")
    return o["id"]


def test_a_worker_adds_a_material_line_on_a_phone_and_the_totals_follow(browser, demo):
    order_id = _accepted_repair(demo)
    context, page = _phone(browser, demo)
    try:
        page.goto(base_url(demo) + f"/work/order?id={order_id}")
        page.wait_for_selector("#field-material-new-add")
        totals_before = page.inner_text("#field-order-totals")
        # a comma is refused on screen, nothing written
        page.fill("#field-material-new-name", "Cable tie")
        page.fill("#field-material-new-qty", "2,5")
        page.fill("#field-material-new-price", "1.20")
        page.click("#field-material-new-add")
        page.wait_for_selector("#field-order-message .alert-danger")
        assert "dot" in page.inner_text("#field-order-message")
        assert count(demo.engine, work_order_material, work_order_material.c.order_id == order_id,
                     work_order_material.c.added_by.is_not(None)) == 0
        # picked from the catalogue: the breaker at its card price, two of them
        with demo.engine.connect() as conn:
            breaker = conn.execute(sa.select(card_item.c.id).where(card_item.c.type == "repair",
                                                                   card_item.c.text_en == "Breaker 32 A")).scalar_one()
        page.select_option("#field-material-new-pick", value=str(breaker))
        page.fill("#field-material-new-name", "")
        page.fill("#field-material-new-qty", "2")
        page.fill("#field-material-new-price", "")
        page.click("#field-material-new-add")
        page.wait_for_selector("#field-order-message .alert-success")
        page.wait_for_function("(before) => document.getElementById('field-order-totals') && "
                               "document.getElementById('field-order-totals').innerText !== before", arg=totals_before)
        assert "76.00" in page.inner_text("#field-order-totals")
        assert page.evaluate("document.scrollingElement.scrollWidth") <= PHONE["width"]
        with demo.engine.connect() as conn:
            line = conn.execute(sa.select(work_order_material).where(
                work_order_material.c.order_id == order_id, work_order_material.c.added_by == "worker")).mappings().one()
        assert (line["text_en"], str(line["quantity"]), str(line["unit_price"])) == ("Breaker 32 A", "2.000", "38.00")
        # and removed again
        page.click(f"#{_pattern_id('field-material-remove', line['id'])}")
        page.wait_for_function("() => !document.querySelector('[id*=\"field-material-remove\"]')")
        assert count(demo.engine, work_order_material, work_order_material.c.order_id == order_id,
                     work_order_material.c.added_by.is_not(None)) == 0
    finally:
        context.close()


def _pattern_id(kind: str, line_id: int) -> str:
    """The DOM id Dash gives a pattern-matching id {"material": N, "type": kind}, escaped for a CSS selector."""
    raw = json.dumps({"material": line_id, "type": kind}, separators=(",", ":"))
    return re.sub(r'([{}":,])', r"\\\1", raw)


def test_a_worker_uploads_a_file_with_a_message_on_a_phone_and_the_office_gets_its_link(browser, demo):
    from storage.schema import message_attachment
    context, page = _phone(browser, demo)
    try:
        page.goto(base_url(demo) + "/messages")
        page.wait_for_selector("#field-evidence-file", state="attached")
        page.set_input_files("#field-evidence-file", files=[{"name": "note.jpg", "mimeType": "image/jpeg",
                                                              "buffer": photo()[:-2] + b"\x01\xff\xd9"}])
        page.click("#field-evidence-send")
        page.wait_for_selector("#messages-attach >> text=note.jpg")
        with demo.engine.connect() as conn:
            eid = conn.execute(sa.select(evidence.c.id).where(evidence.c.name == "note.jpg",
                                                              evidence.c.order_id.is_(None))).scalar_one()
        page.select_option("#messages-to", value="manager")
        page.fill("#messages-subject", "Meter room door")
        page.fill("#messages-body", "The lock is broken, photo attached.")
        page.click("#messages-send")
        page.wait_for_selector("#messages-result .text-success")
        assert page.evaluate("document.scrollingElement.scrollWidth") <= PHONE["width"]
        with demo.engine.connect() as conn:
            mid = conn.execute(sa.select(message.c.id).where(message.c.subject == "Meter room door")).scalar_one()
            files = conn.execute(sa.select(message_attachment.c.evidence_id)
                                 .where(message_attachment.c.message_id == mid)).scalars().all()
        assert files == [eid]
    finally:
        context.close()
    office = signed_in_client(demo, "manager")
    text = json.dumps(office.page("/messages").json())     # the answer escapes "/" as \u002f
    assert "Meter room door" in text and f"/_field/evidence/{eid}" in text
    assert office.get(f"/_field/evidence/{eid}").status == 200
    assert signed_in_client(demo, "worker2").get(f"/_field/evidence/{eid}").status == 404


def test_a_blocked_phone_is_told_so_on_its_pages_until_the_office_unblocks_it(browser, demo):
    from dashboard.i18n import t
    context, page = _phone(browser, demo)
    try:
        # the phone reported itself on /work and got its device cookie: its terminal
        for _ in range(100):
            key = next((c["value"] for c in context.cookies() if c["name"] == "wattline_device"), None)
            if key:
                break
            page.wait_for_timeout(100)
        tid = demo.field.terminal_of("worker", key)["id"]
        manager = _actor("manager")
        demo.field.set_terminal_state(manager, tid, blocked=True, reason="Reported stolen")
        page.reload()
        page.wait_for_selector("#field-blocked")
        assert page.inner_text("#field-blocked") == t("field.error.terminal_blocked", "en")
        page.goto(base_url(demo) + f"/work/order?id={_own_order(demo)}")
        page.wait_for_selector("#field-order-blocked")
        assert page.locator("#field-material-new-add").count() == 0
        demo.field.set_terminal_state(manager, tid, blocked=False)
        page.reload()
        page.wait_for_selector("#field-order-state")
        assert page.locator("#field-order-blocked").count() == 0
    finally:
        context.close()
