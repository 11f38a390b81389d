"""No page logs an error nor reaches another host: every registered page, as every role on the pages its navbar
offers (the administrator on all of them in both languages), loads and is used a little (a search, a row chosen, a
tab, a form's mode: what fires callbacks) in Chromium without a console error, an uncaught exception, a refused or
failed callback request, two elements sharing an id (Dash then reads the wrong one: Find once ignored its status
filter so), a request to another host (sites are often offline: no CDN, web font or call home) or anything the
content security policy blocks; and each page as opened fits the desktop it is opened on and, in the same visit, a
phone (390x844: the page does not scroll sideways, no box hides content sideways). The customer pages without a
code are friendly pages too."""
from __future__ import annotations

import urllib.parse
from typing import Callable

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from operators.service import DEFAULT_ROLE_PERMISSIONS, demo_password
from dashboard import access
from dashboard.i18n import t
from tests.test_page_layout import DESKTOP, PHONE, layout_problems, seed_layout_data
from tests.webclient import base_url, start_demo_runtime

LOCAL_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}
# Chromium reports a blocked script, style, image or frame both as a console error and as a securitypolicyviolation
# event on the document; the event names the directive and what it blocked.
COLLECT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (e) => {
    (window.__cspViolations = window.__cspViolations || []).push(e.violatedDirective + " " + e.blockedURI);
});
"""

DEMO = demo_password()

# Elements that share an id. Left out: the ids react-aria makes up for dash-bootstrap-components' tab links (2.0.4
# gives every link of a dbc.Tabs the same "...-tab-null" id, an accessibility flaw of the library, not one of ours).
_DUPLICATE_IDS = """() => {
    const seen = {}, twice = new Set();
    for (const el of document.querySelectorAll("[id]")) {
        if (el.id.startsWith("react-aria")) { continue; }
        if (seen[el.id]) { twice.add(el.id); } seen[el.id] = true;
    }
    return [...twice];
}"""


@pytest.fixture(scope="module")
def rt(tmp_path_factory):
    runtime = start_demo_runtime(tmp_path_factory.mktemp("console"))
    seed_layout_data(runtime)   # what the phone layout needs shown (a meter's latest entries, a scheduled version)
    yield runtime
    runtime.stop()


def _external(url: str) -> bool:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme in ("http", "https") and parts.hostname not in LOCAL_HOSTS


def _page_paths() -> list[str]:
    import dash
    return sorted({p["path"] for p in dash.page_registry.values() if "<" not in p["path"]})


def _reachable(role: str) -> list[str]:
    """The pages a role's navbar offers (dashboard.access), and the pages every operator may open."""
    rules = {rule.path: rule for rule in access.PAGES}
    held = DEFAULT_ROLE_PERMISSIONS[role]
    return [path for path in _page_paths() if path not in rules or rules[path].open_with(held)]


# ---------------------------------------------------------------------------------------------
# a little use of each page: each step only where its control is shown to the operator
def _click(page, selector: str) -> None:
    if page.locator(selector).count():
        page.locator(selector).first.click()
        page.wait_for_load_state("networkidle")


def _fill(page, selector: str, text: str) -> None:
    if page.locator(selector).count():
        page.fill(selector, text)


def _choose_first(page, selector: str) -> None:
    """The first option of a dcc.Dropdown."""
    if page.locator(selector).count():
        page.click(selector)
        page.keyboard.press("ArrowDown")
        page.keyboard.press("Enter")
        page.wait_for_load_state("networkidle")


def _overview(page) -> None:
    page.wait_for_selector(".ov-tile")
    _click(page, ".ov-tile")
    page.wait_for_selector("#ov-panel-body")


def _meters(page) -> None:
    page.wait_for_selector("#meters-grid .ag-row")
    _click(page, "#meters-refresh")


def _sell(page) -> None:
    _fill(page, "#sell-search", "B1-1")
    _click(page, "#sell-find")
    _click(page, "[id*='sell-pick']")
    _fill(page, "#sell-search", "B9-999")
    _click(page, "#sell-find")
    _click(page, "#sell-more .accordion-button")


def _accounts(page) -> None:
    _click(page, f"#acc-tabs >> text={_tab(page, 'accounts.tab_find')}")
    _fill(page, "#acc-search", "B1-1")
    _click(page, "#acc-find")
    _click(page, "#acc-grid .ag-row")
    _click(page, "[id*='acc-entry']")
    _click(page, f"#acc-tabs >> text={_tab(page, 'accounts.tab_events')}")
    _click(page, "#acc-ev-search")
    _click(page, f"#acc-tabs >> text={_tab(page, 'accounts.tab_approvals')}")
    _click(page, "#acc-approval-refresh")
    _click(page, f"#acc-tabs >> text={_tab(page, 'accounts.tab_open')}")
    _choose_first(page, "#acc-building")
    _choose_first(page, "#acc-room")


def _records(page) -> None:
    _click(page, "#rec-search")


def _reconciliation(page) -> None:
    _click(page, "#recon-run")


def _tariffs(page) -> None:
    if page.locator("#tar-target").is_visible():
        options = page.locator("#tar-target option").all()
        if len(options) > 1:
            page.select_option("#tar-target", index=1)
            page.wait_for_load_state("networkidle")
        page.select_option("#tar-target", "new")
        page.check("#tar-mode input[value=tou]", force=True)
        page.wait_for_load_state("networkidle")


def _qr(page) -> None:
    _choose_first(page, "#qr-building")
    _click(page, "#qr-show")


def _audit(page) -> None:
    _click(page, "#audit-search")


def _users(page) -> None:
    page.wait_for_selector("#users-grid .ag-row")
    _click(page, "#users-grid .ag-row")


USE: dict[str, Callable] = {"/": _overview, "/meters": _meters, "/sell": _sell, "/accounts": _accounts,
                            "/records": _records, "/reconciliation": _reconciliation, "/tariffs": _tariffs,
                            "/qr": _qr, "/audit": _audit, "/admin/users": _users}


def _tab(page, key: str) -> str:
    lang = "zh" if page.evaluate("document.documentElement.lang || document.getElementById('app-root').lang")\
        .startswith("zh") else "en"
    return t(key, lang)


# ---------------------------------------------------------------------------------------------
def _signed_in(rt, browser, username: str, lang: str):
    context = browser.new_context(viewport=DESKTOP, accept_downloads=True)
    context.set_default_timeout(20000)
    page = context.new_page()
    problems: list[str] = []
    # sites are often offline: no request may leave for another host (CDN, web font, call home), and nothing the
    # content security policy blocks (Chromium reports it as a console error and a securitypolicyviolation event)
    page.add_init_script(COLLECT_VIOLATIONS)
    page.on("request", lambda r: problems.append(f"{page.url} requested another host: {r.url}")
            if _external(r.url) else None)
    page.on("console", lambda m: problems.append(f"{page.url} console {m.type}: {m.text[:300]}")
            if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"{page.url} uncaught: {e}"))
    page.on("response", lambda r: problems.append(f"{page.url} {r.status} from {r.url}")
            if r.status >= 400 and "/_dash-" in r.url else None)
    page.goto(base_url(rt) + "/login")
    page.fill("#login-username", username)
    page.fill("#login-password", DEMO)
    page.click("#login-submit")
    page.wait_for_load_state("networkidle")
    page.goto(f"{base_url(rt)}/lang/{lang}?next=/status")
    page.wait_for_load_state("networkidle")
    return context, page, problems


# After a viewport change: CSS applies at once, but a Plotly graph redraws to its box's new width from a resize
# handler of its own. Wait (checked on each animation frame) until every graph shown matches its box; a graph that
# never does is measured as it is after the wait's limit, and the measure names it.
_RESIZED = """() => [...document.querySelectorAll(".js-plotly-plot")].filter((g) => g.offsetParent !== null)
    .every((g) => {
        const svg = g.querySelector(".main-svg");
        return !svg || Math.abs(svg.getBoundingClientRect().width - g.getBoundingClientRect().width) <= 1;
    })"""


def _settle_resize(page) -> None:
    try:
        page.wait_for_function(_RESIZED, timeout=5000)
    except PlaywrightTimeout:   # measured as it is: the measure names what is wide
        pass
    page.wait_for_load_state("networkidle")


def _walk(rt, browser, username: str, paths: list[str], lang: str) -> list[str]:
    context, page, problems = _signed_in(rt, browser, username, lang)
    try:
        for path in paths:
            page.goto(base_url(rt) + path)
            page.wait_for_selector("#_pages_content > *")
            page.wait_for_load_state("networkidle")
            if path == "/":
                page.wait_for_selector(".ov-tile")
            # the page as opened fits the desktop and a phone, checked in this visit (one navigation, two layouts)
            problems += layout_problems(page, f"1400x900 {lang} {username} {path}")
            page.set_viewport_size(PHONE)
            _settle_resize(page)
            problems += layout_problems(page, f"390x844 {lang} {username} {path}")
            page.set_viewport_size(DESKTOP)
            _settle_resize(page)
            USE.get(path, lambda _page: None)(page)
            page.wait_for_timeout(300)   # a callback the last step fired answers before the next page
            problems += [f"{path}: blocked by the content security policy: {v}"
                         for v in page.evaluate("window.__cspViolations || []")]
            twice = page.evaluate(_DUPLICATE_IDS)
            if twice:
                problems.append(f"{path}: ids used twice: {twice}")
            refused = page.locator("#refusal-alert")
            if refused.count():
                problems.append(f"{path}: refusal shown: {refused.inner_text()}")
    finally:
        page.goto(f"{base_url(rt)}/lang/en?next=/status")
        context.close()
    return problems


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_every_page_used_by_the_administrator_logs_no_error(rt, browser, lang):
    paths = _page_paths()
    assert {"/", "/sell", "/accounts", "/tariffs", "/admin/users"} <= set(paths)
    problems = _walk(rt, browser, "admin", paths, lang)
    assert problems == [], "\n".join(problems)


@pytest.mark.parametrize("path, key", [("/c/", "billing.customer.no_token"), ("/c/not-a-code", "billing.customer.bad_token"),
                                       ("/c", "billing.customer.no_token")])
def test_the_customer_pages_without_a_valid_code_are_friendly_pages_with_no_error(rt, browser, path, key):
    context = browser.new_context(locale="zh-CN", extra_http_headers={"Accept-Language": "zh-CN,zh;q=0.9"})
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" and "404" not in m.text else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    try:
        page.goto(base_url(rt) + path)
        assert page.inner_text("#customer-notice h1") == t(key, "zh")
        assert "Error loading layout" not in page.content() and problems == []
    finally:
        context.close()
