"""Issue 12's later pieces on a real DuckDB file (PostgreSQL too where the engine matters): lines a worker adds to an
order and removes again (the totals, an order event, the operation log; bad quantities and prices refused with
nothing written); a manager blocking a worker's phone (its reports refused) and unblocking it; message attachments
that never give a worker another worker's order evidence; the office editing a type's operating card (new orders
copy it, existing ones keep theirs); the district of an order without a customer (another district's QR refused);
and migration 12 on a database of version 11."""
from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal

import pytest
import sqlalchemy as sa

from billing import qr
from billing.errors import BillingError
from core.config import EvidenceConfig
from storage.schema import audit_log, card_item, message, terminal_seen, work_order, work_order_event, \
    work_order_material
from tests.workorder_support import QR_KEY, work_site
from workorders.errors import WorkOrderError
from workorders.evidence import EvidenceStore, FieldError
from workorders.field import FieldService

NOW = dt.datetime(2026, 12, 2, 2, 0, 0)   # 10:00 in Shanghai, a Wednesday


@pytest.fixture
def fs(duck_engine, tmp_path):
    site = work_site(duck_engine, NOW)
    store = EvidenceStore(duck_engine, EvidenceConfig(), site.clock, root=tmp_path / "evidence")
    return site, FieldService(duck_engine, site.service, store, clock=site.clock)


def count(engine, table, *where) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table).where(*where)).scalar_one()


def accepted(site, kind="repair", who="wang", account="A"):
    svc = site.service
    o = svc.create(site.manager, type=kind, description="No power in the room", account=site.accounts[account]).order
    svc.dispatch(site.manager, o["id"], site.ids[who])
    svc.act(site.worker(who), o["id"], "accept")
    return o


def photo() -> bytes:
    from PIL import Image
    out = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 10, 10)).save(out, "JPEG")
    return out.getvalue()


# --- lines a worker adds ------------------------------------------------------------------------------------
def test_a_worker_adds_a_catalogue_line_and_the_totals_an_order_event_and_the_log_follow(fs):
    site, _ = fs
    svc = site.service
    o = accepted(site)
    wang = site.worker("wang")
    breaker = next(i for i in svc.material_catalogue("repair") if i["text_en"].startswith("Breaker"))
    before = svc.order_view(wang, o["id"])["totals"]
    line = svc.add_material_line(wang, o["id"], card_item_id=str(breaker["id"]), quantity="2")
    assert (line["text_zh"], line["quantity"], line["unit_price"], line["added_by"]) == (
        "断路器 32A", Decimal("2.000"), Decimal("38.00"), "wang")
    after = svc.order_view(wang, o["id"])["totals"]
    assert after["materials"] == before["materials"] + Decimal("76.00")
    assert after["total"] == before["total"] + Decimal("76.00")
    events = svc.events(o["id"])
    assert (events[-1]["action"], events[-1]["from_state"], events[-1]["to_state"], events[-1]["actor"]) == (
        "material_add", "accepted", "accepted", "wang")
    assert "76.00" in events[-1]["note"]
    assert count(site.engine, audit_log, audit_log.c.action == "workorder.material_add") == 1


def test_lines_added_and_removed_on_site_are_no_visit_in_the_kpis(fs):
    """A line added or removed is an order event that leaves the state as it was: the KPIs count one arrival on site,
    not one per line (the managers' visits per order and first-time fix read these counts)."""
    from storage.workorder_kpis import order_facts
    site, _ = fs
    svc = site.service
    o = accepted(site)
    wang = site.worker("wang")
    svc.act(wang, o["id"], "arrive", lat=31.2, lon=121.5)
    first = svc.add_material_line(wang, o["id"], name="Fuse", quantity="1", unit_price="5")
    svc.add_material_line(wang, o["id"], name="Cable tie", quantity="2", unit_price="0.5")
    svc.remove_material_line(wang, o["id"], first["id"])
    assert [e["action"] for e in svc.events(o["id"])][-3:] == ["material_add", "material_add", "material_remove"]
    with site.engine.connect() as conn:
        facts = order_facts(conn).set_index("id")
    assert (facts.loc[o["id"], "visits"], facts.loc[o["id"], "rejections"]) == (1, 0)


def test_a_typed_line_reads_full_width_digits_and_its_own_unit_price(fs):
    site, _ = fs
    o = accepted(site)
    line = site.service.add_material_line(site.worker("wang"), o["id"], name="Cable tie", quantity="２．５",
                                          unit_price="１.20", unit="pc")
    assert (line["text_en"], line["quantity"], line["unit_price"], line["kind"]) == (
        "Cable tie", Decimal("2.500"), Decimal("1.20"), "material")
    assert site.service.order_view(site.worker("wang"), o["id"])["totals"]["materials"] == Decimal("3.00")


@pytest.mark.parametrize("quantity, price, name, error", [
    ("2,5", "1", "Tie", "quantity_invalid"), ("0", "1", "Tie", "quantity_positive"),
    ("-1", "1", "Tie", "quantity_invalid"), ("1e3", "1", "Tie", "quantity_invalid"),
    ("100000", "1", "Tie", "quantity_invalid"), ("1.0001", "1", "Tie", "quantity_invalid"),
    (None, "1", "Tie", "quantity_invalid"), ("1", "99999999999", "Tie", "amount_too_large"),
    ("1", "4,50", "Tie", "amount_decimal_comma"), ("1", "1", "=HYPERLINK(\"x\")", "material_name_missing"),
    ("1", "1", "\x00\x07", "material_name_missing"), ("1", "1", None, "material_name_missing"),
])
def test_a_bad_new_line_is_refused_with_nothing_written(fs, quantity, price, name, error):
    site, _ = fs
    o = accepted(site)
    lines = count(site.engine, work_order_material)
    with pytest.raises((WorkOrderError, BillingError)) as exc:
        site.service.add_material_line(site.worker("wang"), o["id"], name=name, quantity=quantity, unit_price=price)
    assert exc.value.code == error and exc.value.message("en") and exc.value.message("zh")
    assert count(site.engine, work_order_material) == lines
    assert count(site.engine, work_order_event, work_order_event.c.action == "material_add") == 0


def test_a_worker_removes_a_line_they_added_but_not_the_cards_own(fs):
    site, _ = fs
    svc = site.service
    o = accepted(site)
    wang = site.worker("wang")
    line = svc.add_material_line(wang, o["id"], name="Fuse", quantity="1", unit_price="5")
    card_line = next(m for m in svc.order_view(wang, o["id"])["materials"] if not m["added_by"])
    with pytest.raises(WorkOrderError) as exc:
        svc.remove_material_line(wang, o["id"], card_line["id"])
    assert exc.value.code == "material_from_card"
    svc.remove_material_line(wang, o["id"], line["id"])
    assert all(m["id"] != line["id"] for m in svc.order_view(wang, o["id"])["materials"])
    assert svc.events(o["id"])[-1]["action"] == "material_remove"
    assert count(site.engine, audit_log, audit_log.c.action == "workorder.material_remove") == 1


def test_another_worker_can_neither_add_nor_remove_a_line_and_the_refusal_is_logged(fs):
    site, _ = fs
    svc = site.service
    o = accepted(site)
    line = svc.add_material_line(site.worker("wang"), o["id"], name="Fuse", quantity="1", unit_price="5")
    for change in (lambda: svc.add_material_line(site.worker("zhao"), o["id"], name="Fuse", quantity="1"),
                   lambda: svc.remove_material_line(site.worker("zhao"), o["id"], line["id"])):
        with pytest.raises(WorkOrderError) as exc:
            change()
        assert exc.value.code == "permission_denied"
    assert count(site.engine, work_order_material, work_order_material.c.added_by.is_not(None)) == 1
    assert count(site.engine, audit_log, audit_log.c.operator == "zhao",
                 audit_log.c.action == "permission.denied") == 2


# --- terminals ----------------------------------------------------------------------------------------------
def test_a_blocked_phone_is_refused_its_reports_and_unblocking_restores_them(fs):
    site, svc = fs
    key = "d" * 40
    tid = svc.seen("wang", key, now=NOW)
    svc.set_terminal_state(site.manager, tid, blocked=True, reason="Phone reported lost")
    assert svc.device_blocked("wang", key)
    with pytest.raises(FieldError) as exc:
        svc.seen("wang", key, now=NOW + dt.timedelta(minutes=20))
    assert exc.value.code == "terminal_blocked" and exc.value.status == 403
    assert count(site.engine, terminal_seen) == 1                     # the blocked quarter hour is not counted
    row = svc.terminals(now=NOW)[0]
    assert (row["state"], row["state_reason"], row["state_by"]) == ("blocked", "Phone reported lost", "boss")
    svc.set_terminal_state(site.manager, str(tid), blocked=False)
    assert not svc.device_blocked("wang", key)
    assert svc.seen("wang", key, now=NOW + dt.timedelta(minutes=20)) == tid
    with site.engine.connect() as conn:
        logged = conn.execute(sa.select(audit_log.c.action).where(audit_log.c.target == f"terminal {tid}")
                              .order_by(audit_log.c.id)).scalars().all()
    assert logged == ["terminal.register", "terminal.block", "terminal.unblock"]


def test_only_the_office_blocks_a_phone_and_only_with_a_reason(fs):
    site, svc = fs
    tid = svc.seen("wang", "e" * 40, now=NOW)
    with pytest.raises(FieldError) as exc:
        svc.set_terminal_state(site.worker("zhao"), tid, blocked=True, reason="mine")
    assert exc.value.code == "terminal_denied"
    for reason in (None, " ", "\x00\t"):
        with pytest.raises(FieldError) as exc:
            svc.set_terminal_state(site.manager, tid, blocked=True, reason=reason)
        assert exc.value.code == "terminal_reason_missing"
    for bad in ("x", -1, True, None, "99999"):
        with pytest.raises(FieldError):
            svc.set_terminal_state(site.manager, bad, blocked=True, reason="lost")
    assert svc.terminals(now=NOW)[0]["state"] == "active"
    assert count(site.engine, audit_log, audit_log.c.operator == "zhao", audit_log.c.action == "permission.denied") == 1


# --- message attachments ------------------------------------------------------------------------------------
def test_a_worker_never_gets_another_workers_order_evidence_as_an_attachment(fs):
    site, svc = fs
    o = accepted(site)
    eid = svc.evidence.store_bytes(svc.uploader(site.worker("wang")), photo(), kind="photo", order_id=o["id"],
                                   name="seal.jpg")
    # the office may see it, but may not pass it to a worker who does not work on that order
    with pytest.raises(FieldError) as exc:
        svc.send_message(site.manager, "sun", "Look", "This one", attachments=[eid])
    assert exc.value.code == "attachment_not_for_recipient" and "seal.jpg" in exc.value.message("en")
    assert count(site.engine, message) == 0
    # to the order's own worker it goes, and the link opens for them
    mid = svc.send_message(site.manager, "wang", "Look", "This one", attachments=[str(eid)])
    assert svc.messages(site.worker("wang"))[0]["attachments"] == [eid]
    assert svc.evidence.file_for(svc.uploader(site.worker("wang")), eid)[0]["id"] == eid
    with pytest.raises(FieldError):
        svc.evidence.file_for(svc.uploader(site.worker("sun")), eid)
    assert mid


def test_the_files_a_worker_may_attach_are_their_own_orders_and_the_office_sees_all(fs):
    site, svc = fs
    mine = accepted(site, who="wang")
    theirs = accepted(site, who="sun", account="B")
    own = svc.evidence.store_bytes(svc.uploader(site.worker("wang")), photo(), kind="photo", order_id=mine["id"])
    other = svc.evidence.store_bytes(svc.uploader(site.worker("sun")), photo()[:-2] + b"\xff\xd9", kind="photo",
                                     order_id=theirs["id"])
    assert [f["id"] for f in svc.attachable(site.worker("wang"))] == [own]
    assert {f["id"] for f in svc.attachable(site.manager)} == {own, other}
    assert svc.attachable(site.worker("wang"))[0]["number"] == mine["number"]


# --- operating cards ----------------------------------------------------------------------------------------
CARD = """step | Check the fuse | 检查保险丝
step | Measure the voltage (V) | 测量电压（V） | value
hazard | Live parts | 带电部位
tool | Voltage tester | 验电笔 | instruments | pc | 1
material | Fuse 10 A | 保险丝 10A | switchgear | pc | ０ | 6.80
service | Fuse replacement | 更换保险丝服务 | service | job | 1 | 30.00
"""


def test_an_edited_card_goes_to_new_orders_while_existing_orders_keep_theirs(any_engine):
    site = work_site(any_engine, NOW)
    svc = site.service
    old = svc.create(site.manager, type="repair", description="before", account=site.accounts["A"]).order
    old_steps = [s["text_en"] for s in svc.order_view(site.manager, old["id"])["steps"]]
    saved = svc.save_card(site.manager, "repair", CARD)
    assert [(i["seq"], i["kind"]) for i in saved] == [(1, "step"), (2, "step"), (3, "hazard"), (4, "tool"),
                                                      (5, "material"), (6, "service")]
    assert saved[1]["needs_value"] and saved[4]["unit_price"] == Decimal("6.80") and saved[4]["quantity"] == 0
    new = svc.create(site.manager, type="repair", description="after", account=site.accounts["A"]).order
    view = svc.order_view(site.manager, new["id"])
    assert [s["text_en"] for s in view["steps"]] == ["Check the fuse", "Measure the voltage (V)", "Live parts"]
    assert [m["text_en"] for m in view["materials"]] == ["Voltage tester", "Fuse 10 A", "Fuse replacement"]
    assert view["totals"]["services"] == Decimal("30.00")
    assert [s["text_en"] for s in svc.order_view(site.manager, old["id"])["steps"]] == old_steps
    with any_engine.connect() as conn:
        row = conn.execute(sa.select(audit_log).where(audit_log.c.action == "workorder.card")).mappings().one()
    assert "Fuse 10 A" in row["after"] and "Cable 2.5" in row["before"]


@pytest.mark.parametrize("text, error", [
    ("stp | a | b", "card_line_kind"), ("step | a", "card_line_fields"),
    ("step | a | b\nmaterial | x | y | c | m | 2,5 | 1", "card_line_quantity"),
    ("material | x | y | c | m | 1 | 4,50", "card_line_price"),
    ("material | x | y | c | m | 1 | 99999999999", "card_line_price"),
    ("step | =cmd | b", "card_line_text"), ("step |  | b", "card_line_text"),
    ("step | a | b | maybe", "card_line_value"), ("  \n \n", "card_empty"), ("step | a | b\n" * 101, "card_too_long"),
    (None, "card_empty"), (["step | a | b"], "card_empty"), ("step | a | b" + " " * 20001, "card_too_long"),
])
def test_a_card_with_a_bad_line_is_refused_naming_the_line_and_nothing_changes(fs, text, error):
    site, _ = fs
    before = count(site.engine, card_item, card_item.c.type == "repair")
    with pytest.raises(WorkOrderError) as exc:
        site.service.save_card(site.manager, "repair", text)
    assert exc.value.code == error and exc.value.message("zh")
    if "line" in exc.value.params:
        assert str(exc.value.params["line"]) in exc.value.message("en")
    assert count(site.engine, card_item, card_item.c.type == "repair") == before


def test_a_worker_may_not_edit_a_card_and_the_refusal_is_logged(fs):
    site, _ = fs
    with pytest.raises(WorkOrderError) as exc:
        site.service.save_card(site.worker("wang"), "repair", CARD)
    assert exc.value.code == "permission_denied"
    assert count(site.engine, audit_log, audit_log.c.action == "permission.denied",
                 audit_log.c.operator == "wang") == 1
    with pytest.raises(WorkOrderError) as exc:
        site.service.save_card(site.manager, "no_such_type", CARD)
    assert exc.value.code == "type_unknown"


# --- the district of an order without a customer ------------------------------------------------------------
def test_an_order_without_a_customer_refuses_another_districts_qr_on_site(fs):
    site, svc = fs
    core = site.service
    o = core.create(site.manager, type="safety_inspection", description="Check the boxes of Dorm A",
                    district=f"building:{site.buildings['A']}").order
    assert (o["account_id"], o["building_id"], o["area_id"]) == (None, site.buildings["A"], None)
    core.dispatch(site.manager, o["id"], site.ids["wang"])
    core.act(site.worker("wang"), o["id"], "accept")
    with pytest.raises(WorkOrderError) as exc:
        svc.confirm(site.worker("wang"), o["id"], "arrival", qr.sign(QR_KEY, "account", site.accounts["B"]))
    assert exc.value.code == "customer_other_district"
    with site.engine.connect() as conn:
        assert conn.execute(sa.select(work_order.c.state).where(work_order.c.id == o["id"])).scalar_one() == "accepted"
    done = svc.confirm(site.worker("wang"), o["id"], "arrival", qr.sign(QR_KEY, "account", site.accounts["A"]))
    assert done.order["state"] == "on_site"


def test_an_order_by_transformer_area_keeps_the_area_and_a_bad_district_is_refused(fs):
    site, _ = fs
    core = site.service
    o = core.create(site.manager, type="repair", description="Area B feeder",
                    district=("area", site.areas["B"])).order
    assert (o["building_id"], o["area_id"]) == (None, site.areas["B"])
    for bad in ("building:999999", "street:1", "area:x", ("building",), 5):
        with pytest.raises(WorkOrderError) as exc:
            core.create(site.manager, type="repair", description="x", district=bad)
        assert exc.value.code == "district_invalid"
    assert core.districts()["building"] == {site.buildings["A"]: "Dorm A", site.buildings["B"]: "Dorm B"}


# --- migration 12 --------------------------------------------------------------------------------------------
def test_a_version_11_database_gains_the_added_line_and_terminal_columns(tmp_path):
    from storage.engine import dispose, open_engine
    from storage.migrations import HEAD, migrate
    from storage.schema import schema_version
    engine = open_engine(f"duckdb:///{tmp_path / 'v11.duckdb'}")
    try:
        migrate(engine)
        with engine.begin() as conn:     # as version 11 left it
            for table, column in (("work_order_material", "added_by"), ("terminal", "state_reason"),
                                  ("terminal", "state_by"), ("terminal", "state_at")):
                conn.execute(sa.text(f"ALTER TABLE {table} DROP COLUMN {column}"))
            conn.execute(schema_version.delete())
            conn.execute(schema_version.insert().values(version=11, applied_at=NOW, description="v11"))
        assert migrate(engine) == HEAD and migrate(engine) == HEAD
        with engine.connect() as conn:
            assert 12 in conn.execute(sa.select(schema_version.c.version)).scalars().all()
            cols = set(conn.execute(sa.text(
                "SELECT table_name || '.' || column_name FROM information_schema.columns "
                "WHERE table_name IN ('work_order_material', 'terminal')")).scalars())
        assert {"work_order_material.added_by", "terminal.state_reason", "terminal.state_by",
                "terminal.state_at"} <= cols
    finally:
        dispose(engine)
