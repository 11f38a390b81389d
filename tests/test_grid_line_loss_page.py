"""The line-loss page (/grid/line-loss) on the demo site, through its callback as the browser calls it: the four
areas' rows with a chart, one area with its least-correlated meters, bad days refused in the operator's language
with nothing run, and the page closed to a worker (no report.view)."""
from __future__ import annotations

import datetime as dt
import json

import pytest

from dashboard.ids import GridLineLoss as ID

from tests.phone_fit import phone_problems
from tests.webclient import signed_in_client, start_demo_runtime


@pytest.fixture(scope="module")
def rt(tmp_path_factory):
    runtime = start_demo_runtime(tmp_path_factory.mktemp("lineloss"))
    yield runtime
    runtime.stop()


def _query(client, **form):
    values = {f"{ID.QUERY}.n_clicks": 1, f"{ID.AREA}.value": form.get("area", "all"),
              f"{ID.FROM}.value": form.get("first"), f"{ID.TO}.value": form.get("last"),
              f"{ID.BY}.value": form.get("by", "day")}
    return client.callback("grid.line_loss.query", values)


def _days(rt) -> tuple[str, str]:
    today = rt.billing.local(rt.billing.now()).date()
    return (today - dt.timedelta(days=1)).isoformat(), today.isoformat()


def test_the_page_shows_every_area_per_day_with_a_chart(rt):
    client = signed_in_client(rt, "manager")
    page = client.page("/grid/line-loss")
    assert page.status == 200 and ID.QUERY in page.text and "Area B1" in page.text
    first, last = _days(rt)
    r = _query(client, first=first, last=last)
    assert r.status == 200
    out = r.json()["response"]
    table = json.dumps(out[ID.TABLE], ensure_ascii=False)
    assert all(f"Area B{n}" in table for n in (1, 2, 3, 4))
    assert len(out[ID.CHART]["figure"]["data"]) == 4


def test_one_area_has_its_least_correlated_meters(rt):
    client = signed_in_client(rt, "manager")
    first, last = _days(rt)
    areas = {o["label"]: o["value"] for o in _dropdown_options(client)}
    r = _query(client, area=areas["Area B2"], first=first, last=last, by="month")
    out = r.json()["response"]
    assert "Area B2" in json.dumps(out[ID.TABLE]) and "Area B1" not in json.dumps(out[ID.TABLE])
    assert ID.HINTS in out


def _dropdown_options(client) -> list[dict]:
    text = client.page("/grid/line-loss").text
    body = json.loads(text)["response"]
    found = []

    def walk(node):
        if isinstance(node, dict):
            props = node.get("props", {})
            if props.get("id") == ID.AREA:
                found.extend(props["options"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
    walk(body)
    return found


@pytest.mark.parametrize("first, last", [("2026-13-01", "2026-12-01"), ("２０２６-11-01", "2026-11-02"),
                                         ("2026-11-05", "2026-11-01"), ("2024-01-01", "2026-11-01"), (None, None)])
def test_bad_days_are_refused_in_the_operators_language_and_nothing_runs(rt, first, last):
    client = signed_in_client(rt, "manager")
    out = _query(client, first=first, last=last).json()["response"]
    assert "text-danger" in json.dumps(out[ID.RESULT]) and ID.TABLE not in out


def test_a_worker_may_neither_open_the_page_nor_run_it(rt):
    client = signed_in_client(rt, "worker")
    assert ID.QUERY not in client.page("/grid/line-loss").text
    first, last = _days(rt)
    assert _query(client, first=first, last=last).status == 403


@pytest.mark.parametrize("locale", ["en-US", "zh-CN"])
def test_on_a_phone_the_page_and_its_results_fit_390_px(rt, browser, locale):
    from tests.webclient import base_url, browser_signed_in
    context, page = browser_signed_in(browser, rt, "manager", width=390, locale=locale)
    try:
        page.goto(base_url(rt) + "/grid/line-loss")
        page.wait_for_selector(f"#{ID.QUERY}")
        page.click(f"#{ID.QUERY}")
        page.wait_for_selector(f"#{ID.TABLE} table")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        assert phone_problems(page, f"/grid/line-loss {locale}", f"#{ID.TABLE} table") == []   # rows stacked
    finally:
        context.close()


def test_the_managers_dashboard_has_yesterdays_line_loss_card(rt):
    from dashboard.i18n import t
    page = signed_in_client(rt, "manager").page("/dashboard")
    day = rt.billing.local(rt.billing.now()).date() - dt.timedelta(days=1)
    assert page.status == 200, page.text[-2000:]
    i = page.text.find("Line loss on")
    assert t("line_loss.card_title", "en", day=day.isoformat()) in page.text, page.text[i - 100:i + 200] and "/grid/line-loss" in page.text
    assert all(f"Area B{n}" in page.text for n in (1, 2, 3, 4))
