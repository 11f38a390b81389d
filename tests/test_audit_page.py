"""The operation-log page over real HTTP: queries by operator, action and time (the site's, Asia/Shanghai here);
the XLSX export holds exactly the rows the query showed, in words and site time, and is itself logged."""
from __future__ import annotations

import base64
import datetime as dt
import io

import pytest

from operators.service import demo_password
from dashboard.i18n import t
from tests.webclient import WebClient, base_url, start_demo_runtime

DEMO = demo_password()
T0 = dt.datetime(2026, 3, 1, 8, 0)    # stored UTC: 16:00 at the site
ZONE = "Asia/Shanghai (UTC+08:00)"


@pytest.fixture(scope="module")
def rt(tmp_path_factory):
    runtime = start_demo_runtime(tmp_path_factory.mktemp("audit"), timezone="Asia/Shanghai")
    # A known history: three changes by two operators an hour apart, long before the demo started.
    real = runtime.accounts.clock
    for i, (who, username) in enumerate([("admin", "auditee1"), ("manager", "auditee2"), ("admin", "auditee3")]):
        runtime.accounts.clock = lambda i=i: T0 + dt.timedelta(hours=i)
        runtime.accounts.add_operator(username, None, "first-password", ["cashier"], by=who, source="10.0.0.9")
    runtime.accounts.clock = real
    yield runtime
    runtime.stop()


@pytest.fixture(scope="module")
def manager(rt):
    client = WebClient(base_url(rt))
    assert client.login("manager", DEMO).status == 302
    return client


def _query(client, **values):
    r = client.callback("audit.query", {"audit-search.n_clicks": 1, **{f"audit-{k}.value": v for k, v in values.items()}})
    assert r.status == 200, r.text[:300]
    out = r.json()["response"]
    return out["audit-grid"]["rowData"], out["audit-applied"]["data"]


def test_the_page_shows_the_latest_entries_to_a_manager(manager):
    page = manager.page("/audit").text
    assert "audit-grid" in page and t("audit.actions.operator.add", "en") in page


def test_the_query_filters_by_operator(manager):
    rows, _ = _query(manager, operator="manager")
    assert rows and {r["operator"] for r in rows} == {"manager"}
    assert "auditee2" in {r["target"] for r in rows}


def test_the_query_filters_by_action_or_a_family_of_actions(manager):
    rows, _ = _query(manager, action="operator.add")
    assert rows and {r["action_code"] for r in rows} == {"operator.add"}
    assert {r["action"] for r in rows} == {t("audit.actions.operator.add", "en")}
    family, _ = _query(manager, action="auth.")
    assert family and all(r["action_code"].startswith("auth.") for r in family)
    assert "auth.login" in {r["action_code"] for r in family}


def test_the_query_filters_by_a_time_range_in_site_time(manager):
    rows, applied = _query(manager, since="2026-03-01T16:30", until="2026-03-01T18:00")
    assert [(r["operator"], r["target"], r["ts"]) for r in rows] == [("manager", "auditee2", "2026-03-01 17:00:00")]
    assert applied == {"operator": None, "action": None, "since": "2026-03-01T16:30", "until": "2026-03-01T18:00"}


def test_an_event_stored_at_eight_utc_is_shown_at_sixteen(manager):
    rows, _ = _query(manager, operator="admin", action="operator.add", since="2026-03-01T16:00",
                     until="2026-03-01T16:01")
    assert [(r["target"], r["ts"]) for r in rows] == [("auditee1", "2026-03-01 16:00:00")]


def test_a_time_that_is_not_one_is_answered_with_a_message(manager):
    r = manager.callback("audit.query", {"audit-search.n_clicks": 1, "audit-since.value": "yesterday-ish"})
    assert r.status == 200 and t("audit.bad_time", "en", value="yesterday-ish") in r.text
    assert "audit-grid" not in r.json()["response"]


def test_the_xlsx_export_opens_with_openpyxl_and_holds_the_rows_the_query_showed(rt, manager):
    from openpyxl import load_workbook
    shown, applied = _query(manager, operator="admin", action="operator.add", since="2026-03-01T00:00",
                            until="2026-03-02T00:00")   # the site's day: 2026-02-28 16:00 UTC onwards
    assert [r["target"] for r in shown] == ["auditee3", "auditee1"]
    r = manager.callback("audit.export", {"audit-export.n_clicks": 1, "audit-applied.data": applied})
    assert r.status == 200
    download = r.json()["response"]["audit-download"]["data"]
    assert download["filename"].startswith(t("audit.filename", "en")) and download["filename"].endswith(".xlsx")
    book = load_workbook(io.BytesIO(base64.b64decode(download["content"])))
    sheet = book[t("audit.sheet", "en")]
    header, *rows = list(sheet.values)
    assert list(header) == [t("clock.column", "en", name=t("audit.col_ts", "en"), zone=ZONE)] + [
        t(f"audit.col_{c}", "en") for c in ("operator", "action", "target", "before", "after", "source")]
    added = t("audit.actions.operator.add", "en")
    assert [(row[0], row[1], row[2], row[3], row[6]) for row in rows] == [
        (dt.datetime(2026, 3, 1, 18, 0), "admin", added, "auditee3", "10.0.0.9"),
        (dt.datetime(2026, 3, 1, 16, 0), "admin", added, "auditee1", "10.0.0.9")]
    assert [row[5] for row in rows] == [s["after"] for s in shown]
    query = dict(book[t("audit.filters_sheet", "en")].iter_rows(values_only=True, max_col=2))
    assert query[t("audit.since", "en")] == "2026-03-01T00:00" and query[t("audit.action", "en")] == added
    assert t("clock.note", "en", zone=ZONE) in query
    logged, _ = _query(manager, action="audit.export")
    assert logged[0]["operator"] == "manager"
    assert t("audit.field_line", "en", field=t("audit.field.rows", "en"), value=2) in logged[0]["after"].split("\n")


def test_the_export_speaks_the_operator_language(rt):
    from openpyxl import load_workbook
    client = WebClient(base_url(rt))
    client.login("admin", DEMO)
    client.get("/lang/zh?next=/audit", follow=False, headers={"Sec-Fetch-Site": "none"})  # typed in: counts
    try:
        r = client.callback("audit.export", {"audit-export.n_clicks": 1, "audit-applied.data": {}})
        data = r.json()["response"]["audit-download"]["data"]
        book = load_workbook(io.BytesIO(base64.b64decode(data["content"])))
        assert t("audit.sheet", "zh") in book.sheetnames
        assert next(book[t("audit.sheet", "zh")].values)[0] == t("clock.column", "zh", name=t("audit.col_ts", "zh"),
                                                                  zone=ZONE)
    finally:
        client.get("/lang/en?next=/", follow=False, headers={"Sec-Fetch-Site": "none"})
