"""The worker's side of work orders (workorders/field.py), on a real DuckDB file (and PostgreSQL where marked): the
customer's QR confirmation at arrival and completion (forged, another customer's or another district's code
refused with nothing written), the signature kept as evidence, the rating; a worker kept out of another worker's
order (refused and audited); messages with attachments, read state and reminders; terminals and the online rate.
Over HTTP against a demo site: the callback endpoint and the upload route refuse another worker's order."""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import json

import pytest
import sqlalchemy as sa

from billing import qr
from core.config import EvidenceConfig
from storage.schema import audit_log, evidence, message, terminal, terminal_seen, work_order, work_order_confirmation
from tests.workorder_support import QR_KEY, work_site
from workorders.deadlines import Calendar
from workorders.errors import WorkOrderError
from workorders.evidence import EvidenceStore, FieldError
from workorders.field import FieldService, online_rates

NOW = dt.datetime(2026, 12, 2, 2, 0, 0)   # 10:00 in Shanghai, a Wednesday


def signature_png() -> str:
    from PIL import Image, ImageDraw
    img = Image.new("RGBA", (300, 120), (255, 255, 255, 0))
    ImageDraw.Draw(img).line([(10, 100), (80, 20), (150, 90), (290, 30)], fill=(0, 0, 0, 255), width=3)
    out = io.BytesIO()
    img.save(out, "PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


def photo() -> bytes:
    from PIL import Image
    out = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 10, 10)).save(out, "JPEG")
    return out.getvalue()


@pytest.fixture
def fs(any_engine, tmp_path):
    site = work_site(any_engine, NOW)
    store = EvidenceStore(any_engine, EvidenceConfig(), site.clock, root=tmp_path / "evidence")
    svc = FieldService(any_engine, site.service, store, clock=site.clock)
    return site, svc


def count(engine, table, *where) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table).where(*where)).scalar_one()


def on_site(site, kind="temporary", who="wang", account="A"):
    """An order of `kind` for the customer in Dorm `account`, dispatched to `who`, accepted."""
    svc = site.service
    o = svc.create(site.manager, type=kind, description="No power in the room", account=site.accounts[account]).order
    svc.dispatch(site.manager, o["id"], site.ids[who])
    svc.act(site.worker(who), o["id"], "accept")
    return o


def token(account_id: int) -> str:
    return qr.sign(QR_KEY, "account", account_id)


def test_arrival_and_completion_confirmed_by_the_customers_qr_code_signature_and_rating(fs):
    site, svc = fs
    o = on_site(site)
    worker = site.worker("wang")
    # the code as the camera reads it: the customer page's address
    arrived = svc.confirm(worker, o["id"], "arrival", f"http://site.example/c/{token(site.accounts['A'])}",
                          lat=31.2, lon=121.4)
    assert arrived.order["state"] == "on_site"
    done = svc.confirm(worker, o["id"], "completion", token(site.accounts["A"]), signature=signature_png(),
                       rating="5")
    assert done.order["state"] == "completed" and done.signature_id is not None
    view = svc.order(worker, o["id"])
    stages = {c["stage"]: c for c in view["confirmations"]}
    assert set(stages) == {"arrival", "completion"} and stages["completion"]["rating"] == 5
    assert stages["arrival"]["lat"] == 31.2 and stages["completion"]["account_id"] == site.accounts["A"]
    sig = next(e for e in view["evidence"] if e["id"] == done.signature_id)
    assert (sig["kind"], sig["mime"]) == ("signature", "image/png")
    assert svc.evidence.path_of(sig["sha256"]).exists()
    assert [e["action"] for e in view["events"]][-2:] == ["arrive", "complete"]


@pytest.mark.parametrize("code, error", [
    ("forged", "qr_forged"), ("other_customer", "qr_other_customer"), ("garbage", "qr_forged")])
def test_a_forged_or_another_customers_qr_code_is_refused_and_nothing_is_written(fs, code, error):
    site, svc = fs
    o = on_site(site)
    good = token(site.accounts["A"])
    typed = {"forged": good[:-3] + ("AAA" if not good.endswith("AAA") else "BBB"),
             "other_customer": token(site.accounts["B"]), "garbage": "=HYPERLINK(\"x\")\x00"}[code]
    with pytest.raises(WorkOrderError) as exc:
        svc.confirm(site.worker("wang"), o["id"], "arrival", typed)
    assert exc.value.code == error and exc.value.message("zh")
    assert count(site.engine, work_order_confirmation) == 0
    with site.engine.connect() as conn:
        assert conn.execute(sa.select(work_order.c.state).where(work_order.c.id == o["id"])).scalar_one() == "accepted"


@pytest.mark.parametrize("signature, rating, error", [
    (None, 5, "signature_missing"), ("data:image/png;base64,AAAA", 5, "signature_invalid"),
    ("data:image/svg+xml;base64,PHN2Zz4=", 5, "signature_invalid"), ("sig", 0, "rating_invalid"),
    ("sig", "５", "rating_invalid"), ("sig", "4.5", "rating_invalid"), ("sig", True, "rating_invalid"),
    ("sig", None, "rating_invalid"),
])
def test_completion_without_a_readable_signature_or_a_rating_is_refused_with_nothing_written(fs, signature,
                                                                                               rating, error):
    site, svc = fs
    o = on_site(site)
    svc.confirm(site.worker("wang"), o["id"], "arrival", token(site.accounts["A"]))
    with pytest.raises(FieldError) as exc:
        svc.confirm(site.worker("wang"), o["id"], "completion", token(site.accounts["A"]),
                    signature=signature_png() if signature == "sig" else signature, rating=rating)
    assert exc.value.code == error and exc.value.message("zh") != exc.value.message("en")
    assert count(site.engine, work_order_confirmation, work_order_confirmation.c.stage == "completion") == 0
    assert count(site.engine, evidence) == 0


def test_a_type_that_needs_a_photo_completes_only_with_one_and_the_signature_is_not_a_photo(fs):
    site, svc = fs
    o = on_site(site, kind="repair")
    worker = site.worker("wang")
    svc.confirm(worker, o["id"], "arrival", token(site.accounts["A"]))
    with pytest.raises(WorkOrderError) as exc:
        svc.confirm(worker, o["id"], "completion", token(site.accounts["A"]), signature=signature_png(), rating=4)
    assert exc.value.code == "photo_required"
    assert count(site.engine, evidence) == 0   # the signature was not kept for a completion that did not happen
    who = svc.uploader(worker)
    svc.evidence.store_bytes(who, photo(), kind="photo", order_id=o["id"])
    assert svc.confirm(worker, o["id"], "completion", token(site.accounts["A"]), signature=signature_png(),
                       rating=4).order["state"] == "completed"


def test_a_worker_can_neither_see_nor_change_another_workers_order_and_each_refusal_is_audited(fs):
    site, svc = fs
    o = on_site(site, who="zhao")
    wang = site.worker("wang")
    before = count(site.engine, audit_log, audit_log.c.operator == "wang")
    with pytest.raises(WorkOrderError) as exc:
        svc.order(wang, o["id"])
    assert exc.value.code == "order_unknown"
    with pytest.raises(WorkOrderError):
        svc.confirm(wang, o["id"], "arrival", token(site.accounts["A"]))
    with pytest.raises(WorkOrderError):
        svc.act(wang, o["id"], "hold", reason="x")
    with pytest.raises(FieldError) as up:
        svc.evidence.start(svc.uploader(wang), upload_id="other-order-00001", size=100, sha256="a" * 64,
                           kind="photo", order_id=o["id"])
    assert up.value.code == "order_not_found"
    with pytest.raises(WorkOrderError):
        svc.send_message(wang, "boss", "about it", "look", order_id=o["id"])
    assert count(site.engine, audit_log, audit_log.c.operator == "wang") >= before + 4
    assert count(site.engine, audit_log, audit_log.c.operator == "wang",
                 audit_log.c.action == "workorder.denied") >= 3
    assert count(site.engine, work_order_confirmation) == 0 and count(site.engine, message) == 0
    # zhao's own file is not wang's to read either
    zhao = svc.uploader(site.worker("zhao"))
    eid = svc.evidence.store_bytes(zhao, photo(), kind="photo", order_id=o["id"])
    with pytest.raises(FieldError) as exc:
        svc.evidence.file_for(svc.uploader(wang), eid)
    assert exc.value.code == "order_not_found"
    assert svc.evidence.file_for(svc.uploader(site.manager), eid)[0]["id"] == eid   # the office reads any


def test_a_message_with_an_attachment_is_read_by_its_recipient_only(fs):
    site, svc = fs
    o = on_site(site)
    wang = site.worker("wang")
    eid = svc.evidence.store_bytes(svc.uploader(wang), photo(), kind="photo", order_id=o["id"])
    mid = svc.send_message(wang, "boss", "Broken seal", "The meter's seal is broken.\nPhoto attached.",
                           order_id=str(o["id"]), attachments=[str(eid)])
    inbox = svc.messages(site.manager)
    assert [(m["id"], m["sender"], m["attachments"], m["read_at"]) for m in inbox] == [(mid, "wang", [eid], None)]
    assert inbox[0]["body"] == "The meter's seal is broken.\nPhoto attached."
    assert svc.unread(site.manager) == 1
    # the office reads the attachment; another worker cannot mark it read, nor read the file
    assert svc.evidence.file_for(svc.uploader(site.manager), eid)[0]["id"] == eid
    with pytest.raises(FieldError):
        svc.mark_read(site.worker("zhao"), mid)
    assert svc.mark_read(site.manager, mid) is True and svc.unread(site.manager) == 0


@pytest.mark.parametrize("to, subject, body, attachments, error", [
    ("nobody", "s", "b", (), "recipient_unknown"), ("wang", "s", "b", (), "recipient_unknown"),
    ("boss", " \x00\t", "b", (), "subject_missing"), ("boss", "s", "\x07", (), "body_missing"),
    ("boss", "s", "b", ("999999",), "evidence_not_found"), (["boss"], "s", "b", (), "recipient_unknown"),
])
def test_a_message_with_a_wrong_part_is_refused_and_nothing_is_written(fs, to, subject, body, attachments, error):
    site, svc = fs
    with pytest.raises(FieldError) as exc:
        svc.send_message(site.worker("wang"), to, subject, body, attachments=attachments)
    assert exc.value.code == error
    assert count(site.engine, message) == 0


def test_deadline_reminders_appear_once_in_the_workers_messages(fs):
    site, svc = fs
    s = site.service
    o = s.create(site.manager, type="repair", description="x", priority="urgent", account=site.accounts["A"],
                 now=NOW).order
    s.dispatch(site.manager, o["id"], site.ids["wang"], now=NOW)
    assert svc.copy_reminders(NOW) == 0
    soon = o["due_at"] - dt.timedelta(minutes=30)
    assert svc.copy_reminders(soon) == 1 and svc.copy_reminders(soon) == 0
    assert svc.copy_reminders(o["due_at"] + dt.timedelta(minutes=1)) == 1
    rows = svc.messages(site.worker("wang"))
    assert [m["kind"] for m in rows] == ["reminder", "reminder"]
    from dashboard.components.field import message_text
    subjects = {message_text(m, "zh")[0] for m in rows}
    assert subjects == {f"工单 {o['number']} 即将到期", f"工单 {o['number']} 已超期"}


def test_a_phone_is_registered_once_then_seen_with_its_location_by_quarter_hours(fs):
    site, svc = fs
    key = "k" * 40
    t1 = svc.seen("wang", key, user_agent="Mozilla/5.0 (Android 14)", app_version="web-1", now=NOW)
    t2 = svc.seen("wang", key, lat=31.23, lon=121.47, now=NOW + dt.timedelta(minutes=5))
    t3 = svc.seen("wang", key, now=NOW + dt.timedelta(minutes=20))
    assert t1 == t2 == t3 and count(site.engine, terminal) == 1
    assert count(site.engine, terminal_seen) == 2          # 02:00 and 02:15
    row = svc.terminals(now=NOW + dt.timedelta(minutes=20))[0]
    assert (row["operator"], row["app_version"], row["lat"], row["last_seen_at"]) == (
        "wang", "web-1", 31.23, NOW + dt.timedelta(minutes=20))
    assert svc.seen("wang", "short", now=NOW) is None and svc.seen("wang", "\x00" * 30, now=NOW) is None
    # the phone handed to another worker is another terminal
    assert svc.seen("zhao", key, now=NOW) != t1 and count(site.engine, terminal) == 2


def test_the_online_rate_is_the_share_of_working_quarter_hours_seen():
    zone = dt.timezone(dt.timedelta(hours=8))
    cal = Calendar(zone, (dt.time(8), dt.time(18)), frozenset({1, 2, 3, 4, 5}))
    start = dt.datetime(2026, 11, 30, 0, 0)     # Monday 08:00 local
    end = dt.datetime(2026, 12, 1, 0, 0)        # Tuesday 08:00 local: one working day of 40 quarter hours
    seen = [("wang", start + dt.timedelta(minutes=15 * i)) for i in range(30)]      # 30 of them
    seen += [("wang", dt.datetime(2026, 11, 30, 14, 0))]                          # 22:00 local: not working time
    seen += [("zhao", start)]
    rates = online_rates(seen, cal, start, end)
    assert rates == {"wang": pytest.approx(0.75), "zhao": pytest.approx(1 / 40)}
    assert online_rates(seen, cal, end, end) == {}


# --- over HTTP: the callback endpoint and the upload route --------------------------------------------------
@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from tests.webclient import start_demo_runtime
    rt = start_demo_runtime(tmp_path_factory.mktemp("field-demo"))
    yield rt
    rt.stop()


def _client(rt, user):
    from tests.webclient import signed_in_client
    return signed_in_client(rt, user)


def _orders(rt, username: str, state: str) -> list[int]:
    from storage.schema import operator
    with rt.engine.connect() as conn:
        return list(conn.execute(sa.select(work_order.c.id).join(operator, operator.c.id == work_order.c.assigned_to)
                                 .where(operator.c.username == username, work_order.c.state == state)
                                 .order_by(work_order.c.id)).scalars())


def _others_order(rt) -> int:
    from storage.schema import operator
    with rt.engine.connect() as conn:
        return conn.execute(sa.select(work_order.c.id).join(operator, operator.c.id == work_order.c.assigned_to)
                            .where(operator.c.username != "worker", work_order.c.state == "on_site")
                            .order_by(work_order.c.id).limit(1)).scalar_one()


def _csrf(client) -> str:
    import re
    page = client.get("/work").text  # the shell; the token is in the page's layout, fetched by Dash
    layout = client.page("/work").text
    m = re.search(r'"data-csrf": ?"([^"]+)"', layout)
    assert m, page[:200]
    return m.group(1)


def test_a_worker_cannot_see_or_change_another_workers_order_through_the_callback_endpoint(demo):
    other = _others_order(demo)
    client = _client(demo, "worker")
    page = client.page("/work/order", f"?id={other}").text
    assert "field-order-message-none" in page and "field-confirm" not in page
    r = client.callback("field.confirm", {"field-confirm-request.data": {"n": 1, "signature": None},
                                          "field-confirm-qr.value": "a1.xxxxxxxxxxxxxxxxxxxxxx",
                                          "field-confirm-stage.data": "arrival", "field-order-id.data": other})
    assert r.status == 200 and "danger" in r.text
    r = client.callback("field.act", {"field-order-id.data": other, "field-order-reason.value": "mine now"},
                        changed=['{"action":"hold","type":"field-order-action"}.n_clicks'])
    assert r.status in (200, 204)
    with demo.engine.connect() as conn:
        state = conn.execute(sa.select(work_order.c.state).where(work_order.c.id == other)).scalar_one()
        denied = conn.execute(sa.select(sa.func.count()).select_from(audit_log).where(
            audit_log.c.operator == "worker", audit_log.c.action.in_(("workorder.denied", "permission.denied")),
            audit_log.c.target.like(f"%{other}%") | audit_log.c.target.like("work_order:%"))).scalar_one()
    assert state == "on_site" and denied >= 2


def test_the_upload_route_refuses_another_workers_order_a_missing_token_and_resumes_without_a_duplicate(demo):
    client = _client(demo, "worker")
    token = _csrf(client)
    other = _others_order(demo)
    own = (_orders(demo, "worker", "on_site") or _orders(demo, "worker", "accepted"))[0]
    data = photo() + b""
    sha = hashlib.sha256(data).hexdigest()
    headers = {"Content-Type": "application/json", "X-CSRF-Token": token}

    def start(upload_id, order_id, hdrs=headers):
        return client.request("POST", "/_field/uploads", data=json.dumps(
            {"upload_id": upload_id, "size": len(data), "sha256": sha, "kind": "photo", "order_id": order_id}).encode(),
            headers=hdrs)

    r = start("http-other-order-01", other)
    assert r.status == 404 and r.json()["error"] == "order_not_found"
    r = start("http-no-token-0001", own, {"Content-Type": "application/json"})
    assert r.status == 403 and r.json()["error"] == "csrf"
    before = count(demo.engine, evidence)
    r = start("http-resume-000001", own)
    assert r.status == 200 and r.json()["received"] == 0
    put = lambda off, chunk: client.request("PUT", f"/_field/uploads/http-resume-000001?offset={off}", data=chunk,  # noqa: E731
                                            headers={"X-CSRF-Token": token, "Content-Type": "application/octet-stream"})
    assert put(0, data[:300]).json()["received"] == 300
    # the connection dropped after the first chunk: the phone asks and continues; a stale chunk gets the offset
    assert client.get("/_field/uploads/http-resume-000001").json()["received"] == 300
    stale = put(0, data[:300])
    assert stale.status == 409 and stale.json()["received"] == 300
    done = put(300, data[300:]).json()
    assert done["evidence_id"] is not None
    again = put(300, data[300:]).json()
    assert again["evidence_id"] == done["evidence_id"] and start("http-resume-000001", own).json()["evidence_id"] == \
        done["evidence_id"]
    assert count(demo.engine, evidence) == before + 1
    got = client.get(f"/_field/evidence/{done['evidence_id']}")
    assert got.status == 200 and got.body == data and got.headers["Content-Type"] == "image/jpeg"
    # another worker's evidence is not found for this worker, and the office reads it
    manager = _client(demo, "manager")
    assert manager.get(f"/_field/evidence/{done['evidence_id']}").status == 200
    assert _client(demo, "cashier").get(f"/_field/evidence/{done['evidence_id']}").status == 403
    # hostile offsets on an unfinished upload: a message, nothing written
    assert start("http-hostile-00001", own).status == 200
    for offset in ("%EF%BC%95", "-1", "1e3", "", "99999999999999999999"):
        r = client.request("PUT", f"/_field/uploads/http-hostile-00001?offset={offset}", data=b"x",
                           headers={"X-CSRF-Token": token, "Content-Type": "application/octet-stream"})
        assert r.status in (400, 409) and r.json()["message"], offset
    assert client.get("/_field/uploads/http-hostile-00001").json()["received"] == 0


def test_a_workers_phone_reports_itself_and_gets_a_device_cookie(demo):
    client = _client(demo, "worker")
    token = _csrf(client)
    before = count(demo.engine, terminal)
    r = client.request("POST", "/_field/seen", data=json.dumps({"app_version": "web-1", "lat": 31.2,
                                                                 "lon": "x"}).encode(),
                       headers={"Content-Type": "application/json", "X-CSRF-Token": token,
                                "User-Agent": "Mozilla/5.0 (Linux; Android 14) Mobile"})
    assert r.status == 200 and client.cookie("wattline_device") is not None
    again = client.request("POST", "/_field/seen", data=b"{}", headers={"Content-Type": "application/json",
                                                                         "X-CSRF-Token": token})
    assert again.json()["terminal"] == r.json()["terminal"] and count(demo.engine, terminal) == before + 1


# --- my orders: a long list --------------------------------------------------------------------------------
def _list_rows(n: int) -> list[dict]:
    due = dt.datetime(2026, 11, 21, 8, 0)
    return [{"id": 100 + i, "number": f"WO-{i:04d}", "type": "repair", "priority": "normal", "state": "dispatched",
             "flag": "overdue" if i < 3 else "due_soon" if i < 6 else None, "due_at": due + dt.timedelta(hours=i),
             "customer_name": "Zhang San", "building_name": "B1", "room_name": "101", "location": None}
            for i in range(n)]


def _by_id(tree, ident):
    if getattr(tree, "id", None) == ident:
        return tree
    children = getattr(tree, "children", None) if not isinstance(tree, list) else tree
    for child in children if isinstance(children, list) else [children] if children is not None else []:
        found = _by_id(child, ident)
        if found is not None:
            return found
    return None


def test_a_long_order_list_draws_its_first_cards_and_keeps_the_rest_in_due_order_for_more():
    from dashboard.components.field import FIRST_CARDS, orders_list
    from dashboard.ids import Work as W
    rows = _list_rows(FIRST_CARDS + 15)
    page = orders_list(rows, {}, "en", dt.UTC, 0)
    shown = [c.id for c in _by_id(page, W.LIST).children]
    rest = [c.id for c in _by_id(page, W.REST).data]
    assert shown + rest == [W.order_card(r["id"]) for r in rows] and len(shown) == FIRST_CARDS
    more = _by_id(page, W.MORE)
    assert not more.hidden and "15" in more.children
    # the flags stay on the cards drawn first (the soonest due: overdue, then due soon)
    assert "bg-danger" in str(_by_id(page, W.LIST).children[0].children)


def test_a_short_order_list_draws_every_card_and_hides_more():
    from dashboard.components.field import orders_list
    from dashboard.ids import Work as W
    page = orders_list(_list_rows(5), {}, "zh", dt.UTC, 0)
    assert len(_by_id(page, W.LIST).children) == 5 and _by_id(page, W.REST).data == []
    assert _by_id(page, W.MORE).hidden
