"""One clock: with the site in Asia/Shanghai, every page and export shows what happened at 08:00 UTC as 16:00,
and every page names the zone once (the line under the page, dashboard.components.shell.site_clock).

A demo site over real HTTP; the events at 08:00 UTC are made through the services with their clocks set."""
from __future__ import annotations

import base64
import datetime as dt
import io
import json
import time

import pytest
import sqlalchemy as sa

from billing import ledger
from billing.credit import Actor
from operators.service import demo_password
from dashboard.components.shell import nav_pages
from dashboard.i18n import LANGUAGES, t
from storage.schema import account, account_meter, meter, meter_state
from tests.webclient import WebClient, base_url, start_demo_runtime

T0 = dt.datetime(2026, 3, 1, 8, 0)          # stored, naive UTC
SITE_T0 = "2026-03-01 16:00"                # as the site reads it
ZONE = "Asia/Shanghai (UTC+08:00)"


@pytest.fixture(scope="module")
def rt(tmp_path_factory):
    runtime = start_demo_runtime(tmp_path_factory.mktemp("clock"), timezone="Asia/Shanghai")
    deadline = time.time() + 60
    while time.time() < deadline and not runtime.health()["last_poll"]:
        time.sleep(0.2)
    yield runtime
    runtime.stop()


@pytest.fixture(scope="module")
def admin(rt):
    client = WebClient(base_url(rt))
    assert client.login("admin", demo_password()).status == 302
    return client


@pytest.fixture(scope="module")
def sale_at_eight_utc(rt):
    """A sale the billing service records at 08:00 UTC (its clock set), to a read meter with an open account."""
    with rt.engine.connect() as conn:
        address = conn.execute(
            sa.select(meter.c.address)
            .join_from(meter, account_meter, sa.and_(account_meter.c.meter_id == meter.c.id,
                                                     account_meter.c.removed_at.is_(None)))
            .join(account, account.c.id == account_meter.c.account_id)
            .join(meter_state, meter_state.c.meter_id == meter.c.id)
            .where(account.c.status == "open", meter_state.c.balance < 500)
            .order_by(meter.c.address).limit(1)).scalar_one()
    real = rt.billing.clock
    rt.billing.clock = lambda: T0
    try:
        return ledger.sell(rt.billing, address, "10.00", Actor("admin", frozenset({"sale.create"})))
    finally:
        rt.billing.clock = real


def _response(r) -> dict:
    assert r.status == 200, r.text[:400]
    return r.json()["response"]


def _xlsx(download: dict):
    from openpyxl import load_workbook
    return load_workbook(io.BytesIO(base64.b64decode(download["content"])))


def test_the_records_grid_shows_a_sale_made_at_eight_utc_at_sixteen(admin, sale_at_eight_utc):
    out = _response(admin.callback("records.query", {"rec-search.n_clicks": 1, "rec-from.value": "2026-03-01",
                                                     "rec-to.value": "2026-03-01", "rec-kinds.value": ["sale"]}))
    rows = out["rec-grid"]["rowData"]
    assert [(r["receipt_no"], r["created_at"]) for r in rows] == [(sale_at_eight_utc.receipt_no, f"{SITE_T0}:00")]


def test_the_records_export_writes_sixteen_under_a_header_naming_the_zone(admin, sale_at_eight_utc):
    out = _response(admin.callback("records.export", {"rec-export-request.data": {"ids": [sale_at_eight_utc.id],
                                                                                  "filter": {}}}))
    header, row = list(_xlsx(out["rec-download"]["data"])[t("records.sheet", "en")].values)
    assert header[0] == t("clock.column", "en", name=t("records.col_created_at", "en"), zone=ZONE)
    assert row[0] == dt.datetime(2026, 3, 1, 16, 0) and row[1] == sale_at_eight_utc.receipt_no


def test_the_records_source_is_a_word_not_a_code(admin, sale_at_eight_utc):
    out = _response(admin.callback("records.query", {"rec-search.n_clicks": 1, "rec-from.value": "2026-03-01",
                                                     "rec-to.value": "2026-03-01", "rec-kinds.value": ["sale"]}))
    assert {r["source"] for r in out["rec-grid"]["rowData"]} == {t("source.desk", "en")}


def test_the_operators_page_shows_an_operator_added_at_eight_utc_at_sixteen(rt, admin):
    real = rt.accounts.clock
    rt.accounts.clock = lambda: T0
    try:
        rt.accounts.add_operator("clockwork", None, "first-password-1", ["analyst"], by="admin", source="test")
    finally:
        rt.accounts.clock = real
    page = json.loads(admin.page("/admin/users").text)
    rows = _find(page, "users-grid")["props"]["rowData"]
    assert next(r for r in rows if r["username"] == "clockwork")["created_at"] == SITE_T0


def test_the_status_page_shows_the_last_poll_in_site_time(rt, admin):
    finished = dt.datetime.fromisoformat(rt.health()["last_poll"]["finished_at"])   # ISO UTC with Z
    assert finished.utcoffset() == dt.timedelta(0)
    page = json.loads(admin.page("/status").text)
    shown = _find(page, "status-last-poll")["props"]["children"]
    assert shown == (finished + dt.timedelta(hours=8)).strftime("%Y-%m-%d %H:%M:%S")


def test_the_meters_export_names_the_zone_and_writes_the_last_reading_in_site_time(rt, admin):
    with rt.engine.connect() as conn:
        meter_id, last_seen = conn.execute(sa.select(meter_state.c.meter_id, meter_state.c.last_seen)
                                           .where(meter_state.c.last_seen.is_not(None)).limit(1)).one()
    out = _response(admin.callback("meters.export", {"meters-export-request.data": {"ids": [meter_id], "filter": {}}}))
    header, row = list(_xlsx(out["meters-download"]["data"])[t("meters.sheet", "en")].values)
    at = header.index(t("clock.column", "en", name=t("meters.col_last_seen", "en"), zone=ZONE))
    assert abs(row[at] - (last_seen + dt.timedelta(hours=8))) < dt.timedelta(seconds=1)


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_page_names_the_zone_once(rt, lang):
    client = WebClient(base_url(rt))
    assert client.login("admin", demo_password()).status == 302
    client.get(f"/lang/{lang}?next=/", follow=False, headers={"Sec-Fetch-Site": "none"})
    note = t("clock.note", lang, zone=ZONE)
    assert _texts(json.loads(client.get("/_dash-layout").text)).count(note) == 1
    for page in nav_pages():
        texts = _texts(json.loads(client.page(page.path).text))
        assert not [s for s in texts if ZONE in s or "UTC" in s], page.path


def test_the_customer_page_names_the_zone(rt):
    from billing import qr
    with rt.engine.connect() as conn:
        account_id = conn.execute(sa.select(account.c.id).where(account.c.status == "open").limit(1)).scalar_one()
    page = WebClient(base_url(rt)).get(f"/c/{qr.sign(rt.qr_key, 'account', account_id)}?lang=zh").text
    assert page.count(t("clock.note", "zh", zone=ZONE)) == 1


def _find(tree, ident: str) -> dict:
    """The component with id `ident` in a Dash JSON tree."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if node.get("props", {}).get("id") == ident:
                return node
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    raise AssertionError(f"no component {ident!r}")


def _texts(tree) -> list[str]:
    """Every string in a Dash JSON tree."""
    out, stack = [], [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            out.append(node)
        elif isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return out
