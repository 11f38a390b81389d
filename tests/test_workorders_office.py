"""The work-order office over real HTTP on a demo site (its 90 days of orders): the list and its filters, a new
order at the counter (account number, forged QR refused), dispatch, hold and cancel with reasons, review (reject
with a reason, approve, archive), the customer's follow-up call and its hostile input, the KPI page and its
audited XLSX (opened with openpyxl), the managers' dashboard card; a worker refused and the refusal logged."""
from __future__ import annotations

import base64
import io

import openpyxl
import pytest
import sqlalchemy as sa

from billing import qr
from dashboard.i18n import t
from storage import audit
from storage.schema import work_order, work_order_followup
from tests.webclient import signed_in_client, start_demo_runtime


@pytest.fixture(scope="module")
def rt(tmp_path_factory):
    runtime = start_demo_runtime(tmp_path_factory.mktemp("wo_office"))
    yield runtime
    runtime.stop()


@pytest.fixture(scope="module")
def manager(rt):
    return signed_in_client(rt, "manager")


@pytest.fixture(scope="module")
def worker(rt):
    return signed_in_client(rt, "worker")


def _orders(rt, **where) -> list[dict]:
    q = sa.select(work_order).order_by(work_order.c.id)
    for k, v in where.items():
        q = q.where(work_order.c[k] == v)
    with rt.engine.connect() as conn:
        return [dict(r) for r in conn.execute(q).mappings()]


def _one(rt, order_id: int) -> dict:
    return _orders(rt, id=order_id)[0]


def _count(rt) -> int:
    with rt.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(work_order)).scalar_one()


def _move(client, number: str, button: str, reason=None, worker=None):
    r = client.callback("workorder.move", {f"wod-{button}.n_clicks": 1, "wod-number.data": number,
                                           "wod-reason.value": reason, "wod-worker.value": worker},
                        changed=[f"wod-{button}.n_clicks"])
    return r


def _said(r) -> str:
    assert r.status == 200, r.text[:300]
    return str(r.json()["response"]["wod-result"]["children"])


def _denials(rt, target_prefix: str) -> list[dict]:
    with rt.engine.connect() as conn:
        return [e for e in audit.entries(conn, action="permission.denied", limit=50)
                if (e["target"] or "").startswith(target_prefix)]


# --- the demo's orders and the list ---------------------------------------------------------------------------
def test_the_demo_seeds_ninety_days_of_orders_in_every_state(rt):
    states = {o["state"] for o in _orders(rt)}
    assert {"created", "dispatched", "accepted", "on_site", "on_hold", "completed", "rejected", "approved",
            "archived", "cancelled"} <= states
    mine = [o for o in _orders(rt) if o["state"] in ("dispatched", "accepted", "on_site")]
    with rt.engine.connect() as conn:
        worker_id = conn.execute(sa.text("SELECT id FROM operator WHERE username = 'worker'")).scalar_one()
    assert any(o["assigned_to"] == worker_id for o in mine)   # the worker's phone has work on first start


def test_the_list_shows_orders_to_the_office_and_refuses_a_worker(manager, worker):
    page = manager.page("/workorders").text
    assert "wol-grid" in page and t("wo_office.heading", "en") in page
    refused = worker.page("/workorders").text
    assert "wol-grid" not in refused and t("auth.forbidden_page", "en") in refused


def test_the_list_filters_by_state_and_by_overdue(rt, manager):
    r = manager.callback("workorders.search", {"wol-search.n_clicks": 1, "wol-state.value": "on_hold"})
    rows = r.json()["response"]["wol-grid"]["rowData"]
    assert rows and {row["state"] for row in rows} == {t("workorder.state.on_hold", "en")}
    r = manager.callback("workorders.search", {"wol-search.n_clicks": 1, "wol-due.value": "overdue"})
    rows = r.json()["response"]["wol-grid"]["rowData"]
    assert all(row["flag"] == t("workorder.flag.overdue", "en") for row in rows)


def test_a_search_text_that_is_not_printable_is_answered_with_a_message(manager):
    r = manager.callback("workorders.search", {"wol-search.n_clicks": 1, "wol-text.value": "WO\x00\x07"})
    assert r.status == 200
    out = r.json()["response"]
    assert t("workorder.error.search_invalid", "en") in str(out["wol-count"]["children"])


# --- a new order at the counter ---------------------------------------------------------------------------------
def _create(client, **values):
    return client.callback("workorders.create", {"wol-new-create.n_clicks": 1, "wol-new-type.value": "repair",
                                                 "wol-new-priority.value": "normal",
                                                 **{f"wol-new-{k}.value": v for k, v in values.items()}})


def test_a_customers_request_by_account_number_makes_an_order(rt, manager):
    with rt.engine.connect() as conn:
        account = conn.execute(sa.text("SELECT min(id) FROM account WHERE status = 'open'")).scalar_one()
    r = _create(manager, customer=str(account), description="No power in the kitchen")
    said = str(r.json()["response"]["wol-new-result"]["children"])
    number = said.split("Work order ", 1)[1].split(" ", 1)[0]
    made = _orders(rt, number=number)[0]
    assert made["account_id"] == account and made["source"] == "counter" and made["state"] == "created"


def test_a_forged_qr_code_at_the_counter_is_refused_and_nothing_is_written(rt, manager):
    with rt.engine.connect() as conn:
        account = conn.execute(sa.text("SELECT min(id) FROM account WHERE status = 'open'")).scalar_one()
    forged = qr.sign(b"\x01" * 32, "account", account)
    before = _count(rt)
    r = _create(manager, customer=forged, description="Meter dark")
    assert t("workorder.error.qr_forged", "en") in str(r.json()["response"]["wol-new-result"]["children"])
    assert _count(rt) == before


@pytest.mark.parametrize("description", [None, "", "   ", 42])
def test_an_order_without_a_description_is_refused(rt, manager, description):
    before = _count(rt)
    r = _create(manager, description=description)
    assert r.status == 200
    assert t("workorder.error.description_missing", "en") in str(r.json()["response"]["wol-new-result"]["children"])
    assert _count(rt) == before


def test_a_worker_cannot_create_an_order_through_the_callback_and_the_refusal_is_logged(rt, worker):
    before = _count(rt)
    r = _create(worker, description="let me in")
    assert r.status == 403 and _count(rt) == before


# --- dispatch, hold, cancel -------------------------------------------------------------------------------------
def test_dispatch_to_a_chosen_worker_then_hold_and_cancel_with_reasons(rt, manager):
    order = next(o for o in _orders(rt, state="created"))
    with rt.engine.connect() as conn:
        worker3 = conn.execute(sa.text("SELECT id FROM operator WHERE username = 'worker3'")).scalar_one()
    assert "wod-header" in manager.page("/workorders/order", f"?number={order['number']}").text
    said = _said(_move(manager, order["number"], "dispatch", worker=str(worker3)))
    assert t("workorder.state.dispatched", "en") in said
    assert _one(rt, order["id"])["assigned_to"] == worker3
    said = _said(_move(manager, order["number"], "hold"))
    assert t("workorder.error.reason_required", "en") in said and _one(rt, order["id"])["state"] == "dispatched"
    _said(_move(manager, order["number"], "hold", reason="Customer away until Monday"))
    assert _one(rt, order["id"])["state"] == "on_hold"
    _said(_move(manager, order["number"], "cancel", reason="Customer withdrew"))
    assert _one(rt, order["id"])["state"] == "cancelled"


def test_a_worker_number_that_is_not_one_is_refused(rt, manager):
    order = next(o for o in _orders(rt, state="created"))
    said = _said(_move(manager, order["number"], "dispatch", worker="1e9"))
    assert t("workorder.error.worker_unknown", "en") in said and _one(rt, order["id"])["state"] == "created"


def test_a_worker_cannot_dispatch_or_approve_through_the_callback_and_it_is_logged(rt, worker):
    done = _orders(rt, state="completed")[0]
    r = _move(worker, done["number"], "approve")
    assert r.status == 403
    assert _one(rt, done["id"])["state"] == "completed"
    assert any(e["operator"] == "worker" for e in _denials(rt, "callback workorder.move"))


# --- review -----------------------------------------------------------------------------------------------------
def test_the_review_queue_lists_completed_orders_first(manager):
    page = manager.page("/workorders/review").text
    assert "wor-grid" in page and t("workorder.state.completed", "en") in page


def test_reject_needs_a_reason_then_sends_the_order_back(rt, manager):
    done = _orders(rt, state="completed")[-1]
    said = _said(_move(manager, done["number"], "reject", reason="  "))
    assert t("workorder.error.reason_required", "en") in said and _one(rt, done["id"])["state"] == "completed"
    _said(_move(manager, done["number"], "reject", reason="Seal photo missing"))
    after = _one(rt, done["id"])
    assert after["state"] == "rejected" and after["reason"] == "Seal photo missing"


def test_approve_then_archive(rt, manager):
    done = _orders(rt, state="completed")[0]
    _said(_move(manager, done["number"], "approve"))
    assert _one(rt, done["id"])["state"] == "approved"
    _said(_move(manager, done["number"], "archive"))
    assert _one(rt, done["id"])["state"] == "archived"
    said = _said(_move(manager, done["number"], "approve"))
    assert t("workorder.state.archived", "en").lower() in said.lower()     # an archived order moves no more


# --- the follow-up call -----------------------------------------------------------------------------------------
def _call(client, number, **values):
    r = client.callback("workorder.followup", {"wod-call-save.n_clicks": 1, "wod-number.data": number,
                                               **{f"wod-call-{k}.value": v for k, v in values.items()}})
    assert r.status == 200, r.text[:300]
    return str(r.json()["response"]["wod-call-result"]["children"])


def _calls(rt, order_id) -> list[dict]:
    with rt.engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(work_order_followup)
                                              .where(work_order_followup.c.order_id == order_id)).mappings()]


def test_a_follow_up_call_is_recorded_with_its_rating_and_logged(rt, manager):
    order = _orders(rt, state="approved")[0]
    before = len(_calls(rt, order["id"]))
    said = _call(manager, order["number"], outcome="reached", rating="5", note="=HYPERLINK(\"x\")")
    assert t("wo_office.call.saved", "en") in said
    calls = _calls(rt, order["id"])
    assert len(calls) == before + 1
    new = max(calls, key=lambda c: c["id"])
    assert (new["satisfaction"], new["outcome"], new["note"], new["called_by"]) == (
        5, "reached", "=HYPERLINK(\"x\")", "manager")
    with rt.engine.connect() as conn:
        logged = audit.entries(conn, action="workorder.followup", limit=5)
    assert logged and logged[0]["target"] == f"work_order:{order['number']}"


@pytest.mark.parametrize("values, key", [
    ({"outcome": "reached", "rating": "五"}, "workorder.error.followup_rating_invalid"),
    ({"outcome": "reached", "rating": "50,5"}, "workorder.error.followup_rating_invalid"),
    ({"outcome": "reached", "rating": "６"}, "workorder.error.followup_rating_invalid"),
    ({"outcome": "no_answer", "rating": "4"}, "workorder.error.followup_rating_unreached"),
    ({"outcome": "=cmd|' /C calc'!A0"}, "workorder.error.followup_outcome_unknown"),
    ({"outcome": ["reached"]}, "workorder.error.followup_outcome_unknown"),
    ({"outcome": "reached", "at": "2999-01-01T10:00"}, "workorder.error.followup_time_future"),
    ({"outcome": "reached", "at": "1999-01-01T10:00"}, "workorder.error.followup_time_invalid"),
])
def test_a_follow_up_call_with_hostile_input_is_refused_and_nothing_is_written(rt, manager, values, key):
    order = _orders(rt, state="approved")[-1]
    before = _calls(rt, order["id"])
    said = _call(manager, order["number"], **values)
    assert t(key, "en", state="", days=0).split("{")[0][:30] in said
    assert _calls(rt, order["id"]) == before


def test_a_time_that_is_no_time_is_answered_in_the_operators_language(rt, manager):
    order = _orders(rt, state="approved")[-1]
    assert t("wo_office.call.bad_time", "en", value="yesterday-ish") in _call(
        manager, order["number"], outcome="reached", at="yesterday-ish")


def test_a_call_before_the_work_is_done_is_refused(rt, manager):
    order = _orders(rt, state="dispatched")[0]
    said = _call(manager, order["number"], outcome="reached")
    assert t("workorder.error.followup_not_done", "en", state="dispatched") in said
    assert _calls(rt, order["id"]) == []


# --- KPIs -------------------------------------------------------------------------------------------------------
def test_the_kpi_page_shows_the_figures_and_the_statistics_tables(manager):
    page = manager.page("/workorders/kpis").text
    for name in ("completion_rate", "overdue_rate", "satisfaction_rate", "online_rate", "first_time_fix_rate"):
        assert f"wok-kpi-{name}" in page
    for sheet in ("types", "tools", "materials"):
        assert t(f"wo_kpi.sheet.{sheet}", "en") in page


@pytest.mark.parametrize("first, last, key", [("2026-13-01", "2026-12-01", "wo_kpi.bad_date"),
                                              ("2026-12-01", "2026-11-01", "workorder.error.range_reversed"),
                                              ("2000-01-01", "2026-12-01", "workorder.error.range_too_long")])
def test_a_bad_period_is_answered_with_a_message(manager, first, last, key):
    r = manager.callback("workorder.kpis", {"wok-query.n_clicks": 1, "wok-from.value": first, "wok-to.value": last})
    assert r.status == 200
    said = str(r.json()["response"]["wok-result"]["children"])
    assert t(key, "en", value=first, days=732).split("\"")[0][:25] in said


def test_the_kpi_export_opens_in_excel_with_every_table_and_is_logged(rt, manager):
    r = manager.callback("workorder.kpis.export", {"wok-export.n_clicks": 1,
                                                    "wok-applied.data": {"from": "2026-09-01", "to": "2026-12-31"}})
    assert r.status == 200, r.text[:300]
    download = r.json()["response"]["wok-download"]["data"]
    book = openpyxl.load_workbook(io.BytesIO(base64.b64decode(download["content"])))
    assert [t(f"wo_kpi.sheet.{k}", "en") for k in ("kpis", "types", "months", "quarters", "tools", "materials",
                                                    "repair")] == book.sheetnames
    types = book[t("wo_kpi.sheet.types", "en")]
    header = [c.value for c in types[3]]
    assert header[0] == t("wo_kpi.col.type", "en")
    last = [c.value for c in list(types.iter_rows())[-1]]
    assert last[0] == t("wo_kpi.total", "en") and last[1] > 0
    materials = book[t("wo_kpi.sheet.materials", "en")]
    assert materials.cell(row=3, column=6).value == t("wo_kpi.col.amount", "en")
    with rt.engine.connect() as conn:
        logged = audit.entries(conn, action="report.export", limit=5)
    assert any(e["target"] == "work_order:kpis" and e["operator"] == "manager" for e in logged)


def test_a_worker_may_not_export_the_kpis(rt, worker):
    r = worker.callback("workorder.kpis.export", {"wok-export.n_clicks": 1,
                                                   "wok-applied.data": {"from": "2026-09-01", "to": "2026-12-31"}})
    assert r.status == 403


def test_the_managers_dashboard_has_the_work_order_card(manager):
    page = manager.page("/dashboard").text
    assert "wok-dash-card" in page and t("wo_kpi.dash_heading", "en") in page
