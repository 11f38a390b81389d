"""Bad input on the worker's phone pages and the terminals page: an order id beyond the id column (from the page's
address or its store) is "no such order" in the worker's language, with nothing written and nothing asked of the
database; the line callbacks of an order (a step's, a material's: pattern-matching outputs) answer what the browser
sends with the line's own message, and a request naming the pattern itself instead of a line is refused with a
message (not Dash's 500); the terminals page's window of days given a list or an object shows the 30-day view."""
from __future__ import annotations

import datetime as dt
import json
import re

import pytest
import sqlalchemy as sa

from storage.schema import audit_log, operator, work_order, work_order_material, work_order_step
from tests.webclient import signed_in_client, start_demo_runtime
from tests.workorder_support import work_site
from workorders.errors import WorkOrderError
from workorders.evidence import EvidenceStore
from workorders.field import FieldService

NOW = dt.datetime(2026, 12, 2, 2, 0, 0)
HUGE = 10 ** 40


def count(engine, table, *where) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table).where(*where)).scalar_one()


# --- the service, on each engine -----------------------------------------------------------------------------
@pytest.mark.parametrize("order_id", [HUGE, 2 ** 63, 2 ** 31, "99999999999999999999", -1, 0, True, "５０", [1],
                                      {"id": 1}])
def test_an_order_id_naming_no_row_is_no_such_order_in_both_languages_and_nothing_is_logged(any_engine, tmp_path,
                                                                                            order_id):
    from core.config import EvidenceConfig
    site = work_site(any_engine, NOW)
    svc = FieldService(any_engine, site.service, EvidenceStore(any_engine, EvidenceConfig(), site.clock,
                                                               root=tmp_path / "evidence"), clock=site.clock)
    before = count(any_engine, audit_log)
    for call in (lambda: svc.order(site.worker(), order_id), lambda: svc.act(site.worker(), order_id, "accept")):
        with pytest.raises(WorkOrderError) as err:
            call()
        assert err.value.code == "order_unknown"
        assert "no work order" in err.value.message("en") and "没有工单" in err.value.message("zh")
    assert count(any_engine, audit_log) == before


# --- over HTTP against a demo site -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    rt = start_demo_runtime(tmp_path_factory.mktemp("bad-input-demo"))
    yield rt
    rt.stop()


@pytest.fixture(scope="module")
def worker(demo):
    return signed_in_client(demo, "worker")


@pytest.fixture(scope="module")
def repair(demo) -> dict:
    """An accepted repair order of the demo's worker, with its card's steps and materials."""
    from billing.credit import Actor
    from operators.service import DEFAULT_ROLE_PERMISSIONS
    from storage.schema import account

    def actor(name):
        return Actor(name, DEFAULT_ROLE_PERMISSIONS[name], address="127.0.0.1")
    svc = demo.workorders
    with demo.engine.connect() as conn:
        account_id = conn.execute(sa.select(account.c.id).order_by(account.c.id).limit(1)).scalar_one()
        worker_id = conn.execute(sa.select(operator.c.id).where(operator.c.username == "worker")).scalar_one()
    o = svc.create(actor("manager"), type="repair", description="Socket sparks", account=account_id).order
    svc.dispatch(actor("manager"), o["id"], worker_id)
    svc.act(actor("worker"), o["id"], "accept")
    with demo.engine.connect() as conn:
        step = conn.execute(sa.select(work_order_step.c.id).where(work_order_step.c.order_id == o["id"])
                            .order_by(work_order_step.c.id).limit(1)).scalar_one()
        material = conn.execute(sa.select(work_order_material.c.id).where(work_order_material.c.order_id == o["id"])
                                .order_by(work_order_material.c.id).limit(1)).scalar_one()
    return {"id": o["id"], "step": step, "material": material}


@pytest.mark.parametrize("bad", [str(HUGE), str(2 ** 63), "99999999999999999999"])
def test_the_order_page_with_an_id_beyond_the_id_column_says_there_is_no_such_order(demo, worker, bad):
    denied = audit_log.c.action == "workorder.denied"
    before = count(demo.engine, audit_log, denied)
    assert worker.get(f"/work/order?id={bad}").status == 200
    r = worker.page("/work/order", f"?id={bad}")
    assert r.status == 200, r.text[-300:]
    assert "field-order-message-none" in r.text and "There is no work order" in r.text
    assert count(demo.engine, audit_log, denied) == before   # names no row: no one's order was looked at


@pytest.mark.parametrize("bad", [HUGE, 2 ** 63, "99999999999999999999", [1], {"id": 1}])
def test_the_order_body_and_its_files_redrawn_for_an_id_beyond_the_id_column_say_there_is_no_such_order(worker, bad):
    body = worker.callback("field.render", {"field-order-version.data": 1, "field-order-id.data": bad})
    assert body.status == 200 and "field-order-message-none" in body.text and "no work order" in body.text
    files = worker.callback("field.evidence", {"field-order-uploaded.data": 1, "field-order-id.data": bad})
    assert files.status == 200 and "text-danger" in files.text and "no work order" in files.text


def _line_body(client, name: str, key: str, line, values: dict) -> dict:
    """A step's or a material's callback as the browser sends it: every pattern id ({"type": ..., key: MATCH})
    names the line that was clicked, the output too (one value, not a list)."""
    from dashboard.auth import GUARDED_CALLBACKS
    spec = client.callback_spec(GUARDED_CALLBACKS[name].output)

    def concrete(ident: str):
        if not ident.startswith("{"):
            return ident
        return {k: (line if v == ["MATCH"] else v) for k, v in json.loads(ident).items()}

    def dep(d: dict) -> dict:
        kind = json.loads(d["id"])["type"] if d["id"].startswith("{") else d["id"]
        return {"id": concrete(d["id"]), "property": d["property"], "value": values.get(f"{kind}.{d['property']}")}
    ident, prop = spec["output"].rsplit(".", 1)
    first = spec["inputs"][0]
    changed = json.dumps(concrete(first["id"]), sort_keys=True, separators=(",", ":")) + "." + first["property"]
    return {"output": spec["output"], "outputs": {"id": concrete(ident), "property": prop},
            "inputs": [dep(d) for d in spec["inputs"]], "state": [dep(d) for d in spec["state"]],
            "changedPropIds": [changed]}


def _step(client, repair, *, order=None, line=None, value="230 V", done=True):
    return client.post_json("/_dash-update-component", _line_body(
        client, "field.step", "step", repair["step"] if line is None else line,
        {"field-step-save.n_clicks": 1, "field-step-done.value": done, "field-step-value.value": value,
         "field-order-id.data": repair["id"] if order is None else order}))


def _material(client, repair, *, order=None, line=None, qty="2", price="1.50"):
    return client.post_json("/_dash-update-component", _line_body(
        client, "field.material", "material", repair["material"] if line is None else line,
        {"field-material-save.n_clicks": 1, "field-material-qty.value": qty, "field-material-price.value": price,
         "field-order-id.data": repair["id"] if order is None else order}))


def _said(r) -> str:
    """The line's own answer: the Span's class and text."""
    assert r.status == 200, r.text[-300:]
    props = next(iter(r.json()["response"].values()))["children"]["props"]
    return f"{props['className']}: {props['children']}"


def test_a_steps_and_a_materials_line_answer_the_browsers_request_with_their_own_message(demo, worker, repair):
    assert _said(_step(worker, repair)).startswith("text-success")
    assert _said(_material(worker, repair)).startswith("text-success")
    with demo.engine.connect() as conn:
        qty = conn.execute(sa.select(work_order_material.c.quantity)
                           .where(work_order_material.c.id == repair["material"])).scalar_one()
    assert str(qty) == "2.000"
    # bad values in each field: the line says why, in the worker's language; nothing changes
    for bad in (HUGE, "99999999999999999999", [1, "a"], {"a": 1}, True, "５０"):
        for r in (_step(worker, repair, order=bad), _material(worker, repair, order=bad),
                  _step(worker, repair, line=bad), _material(worker, repair, line=bad)):
            assert _said(r).startswith("text-danger"), r.text[:300]
        r = _material(worker, repair, qty=bad)
        assert _said(r).startswith("text-danger"), r.text[:300]
    assert "no work order" in _said(_material(worker, repair, order=HUGE))
    assert re.search(r"(?i)quantit", _said(_material(worker, repair, qty="50,5")))
    with demo.engine.connect() as conn:
        assert str(conn.execute(sa.select(work_order_material.c.quantity)
                                .where(work_order_material.c.id == repair["material"])).scalar_one()) == "2.000"


def test_a_line_request_naming_the_pattern_instead_of_a_line_is_refused_with_a_message(worker, repair):
    """What no browser sends (the output's id the pattern itself, or another line's kind): 400 with a message
    in the operator's language, where Dash answered 500."""
    body = _line_body(worker, "field.step", "step", repair["step"], {"field-order-id.data": repair["id"]})
    broken = [{**body, "outputs": {"id": json.dumps({"step": ["MATCH"], "type": "field-step-message"}),
                                   "property": "children"}},
              {**body, "outputs": {"id": {"step": repair["step"], "type": "field-material-message"},
                                   "property": "children"}},
              {**body, "outputs": [body["outputs"]]},
              {**body, "outputs": None}]
    for b in broken:
        r = worker.post_json("/_dash-update-component", b)
        assert r.status == 400, (b["outputs"], r.status, r.text[:200])
        assert r.json()["message"].startswith("The page sent a request it cannot have built")


def test_the_terminals_window_given_a_list_or_an_object_shows_the_last_30_days(demo, worker):
    token = re.search(r'"data-csrf": ?"([^"]+)"', worker.page("/work").text).group(1)
    assert worker.request("POST", "/_field/seen", data=b"{}", headers={"Content-Type": "application/json",
                                                                       "X-CSRF-Token": token}).status < 300
    office = signed_in_client(demo, "admin")
    for bad in ([7], {"days": "7"}, ["7", "90"], "7 days", 7):
        r = office.callback("terminals.days", {"terminals-days.value": bad})
        assert r.status == 200, (bad, r.status, r.text[-300:])
        assert "online rate (30 days)" in r.text
    assert "online rate (90 days)" in office.callback("terminals.days", {"terminals-days.value": "90"}).text
