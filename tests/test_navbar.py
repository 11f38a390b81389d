"""The navbar: each operator sees links to exactly the pages their role lets them open (read from the
database, so a change on /admin/roles shows at once), grouped in dropdowns so an admin's bar is one row,
and "/" sends an operator without the Overview to a page they may open."""
from __future__ import annotations

import json

import plotly
import pytest

from operators.service import DEFAULT_ROLE_PERMISSIONS, ROLES, demo_password
from dashboard import access
from dashboard.components.shell import NAV, NavGroup, nav_pages, navbar
from dashboard.i18n import t
from dashboard.ids import Shell
from tests.webclient import WebClient, base_url, start_demo_runtime

DEMO = demo_password()


@pytest.fixture(scope="module")
def rt(tmp_path_factory):
    runtime = start_demo_runtime(tmp_path_factory.mktemp("navbar"))
    yield runtime
    runtime.stop()


def signed_in(rt, username: str) -> WebClient:
    client = WebClient(base_url(rt))
    assert client.login(username, DEMO).status == 302
    return client


def _nodes(node):
    if isinstance(node, dict):
        yield node
        for v in node.values():
            yield from _nodes(v)
    elif isinstance(node, list):
        for v in node:
            yield from _nodes(v)


def _page_links(layout: dict) -> set[str]:
    """The pages the navbar links: top-level links (id nav-…) and dropdown entries."""
    hrefs = set()
    for node in _nodes(layout):
        props = node.get("props") if isinstance(node.get("props"), dict) else {}
        ident = props.get("id")
        if "href" in props and ((isinstance(ident, str) and ident.startswith("nav-"))
                                or (isinstance(ident, dict) and ident.get("type") == Shell.NAV_ITEM)):
            hrefs.add(props["href"])
    return hrefs


def _groups(layout: dict) -> set[str]:
    return {n["props"]["id"]["group"] for n in _nodes(layout) if isinstance(n.get("props"), dict)
            and isinstance(n["props"].get("id"), dict) and n["props"]["id"].get("type") == Shell.NAV_GROUP}


def _expected(permissions) -> set[str]:
    return {p.path for p in nav_pages() if p.page.open_with(permissions)}


def _layout(component) -> dict:
    return json.loads(json.dumps(component, cls=plotly.utils.PlotlyJSONEncoder))


# --- the navbar as a component ------------------------------------------------------------------------
def test_every_page_with_an_access_rule_is_linked_once_from_the_navbar():
    linked = [p.page for p in nav_pages()]
    assert len(linked) == len(set(linked)) and set(linked) == set(access.PAGES)


def test_a_dropdown_with_no_page_the_operator_may_open_is_not_shown():
    worker = _layout(navbar("en", "w", DEFAULT_ROLE_PERMISSIONS["worker"].__contains__))
    assert _page_links(worker) == {access.WORK.path, access.MESSAGES.path, access.STATUS.path}
    assert _groups(worker) == {"workorders", "system"}   # the messages, in the work orders' group
    admin = _layout(navbar("en", "a", DEFAULT_ROLE_PERMISSIONS["admin"].__contains__))
    assert _groups(admin) == {g.name for g in NAV if isinstance(g, NavGroup)}


def test_the_brand_leads_each_operator_to_a_page_they_may_open():
    for role in ROLES:
        may = DEFAULT_ROLE_PERMISSIONS[role].__contains__
        home = access.home_path(may)
        assert next(p for p in access.PAGES if p.path == home).open_to(may)
        brand = next(n for n in _nodes(_layout(navbar("en", role, may))) if n.get("type") == "NavbarBrand")
        assert brand["props"]["href"] == home
    assert access.home_path(DEFAULT_ROLE_PERMISSIONS["worker"].__contains__) == access.WORK.path


# --- over HTTP, as each demo role ---------------------------------------------------------------------
@pytest.mark.parametrize("role", ROLES)
def test_the_navbar_links_exactly_the_pages_a_role_may_open(rt, role):
    layout = signed_in(rt, role).get("/_dash-layout").json()
    assert _page_links(layout) == _expected(DEFAULT_ROLE_PERMISSIONS[role])


@pytest.mark.parametrize("role", ROLES)
def test_each_page_refuses_exactly_the_roles_whose_navbar_hides_it(rt, role):
    client = signed_in(rt, role)
    shown = _page_links(client.get("/_dash-layout").json())
    for page in nav_pages():
        refused = "forbidden-page" in client.page(page.path).text
        assert refused == (page.path not in shown), (role, page.path)


def test_a_worker_sees_no_overview_or_meters_link_and_lands_on_a_page_it_may_open(rt):
    client = WebClient(base_url(rt))
    r = client.login("worker", DEMO)
    assert r.status == 302 and r.location == access.WORK.path   # straight to the worker's home
    assert client.get("/", follow=False).location == access.WORK.path   # and "/" leads there too
    assert "forbidden-page" not in client.page(r.location).text
    links = _page_links(client.get("/_dash-layout").json())
    assert access.OVERVIEW.path not in links and access.METERS.path not in links


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_a_workers_home_page_lists_the_workers_orders_and_links_the_messages(rt, lang):
    worker = signed_in(rt, "worker")
    worker.get(f"/lang/{lang}?next=/", follow=False, headers={"Sec-Fetch-Site": "none"})  # typed in: counts
    nodes = list(_nodes(worker.page(access.WORK.path).json()))
    props = [n["props"] for n in nodes if isinstance(n.get("props"), dict)]
    texts = {p["children"] for p in props if isinstance(p.get("children"), str)}
    assert not any(p.get("id") == "forbidden-page" for p in props)
    assert t("field.my_orders", lang) in texts
    assert access.MESSAGES.path in {p.get("href") for p in props}


def test_an_operator_who_may_open_the_overview_lands_on_it(rt):
    client = WebClient(base_url(rt))
    r = client.login("analyst", DEMO)
    assert client.get(r.location, follow=False).status == 200


def test_a_permission_an_admin_grants_shows_its_links_in_that_roles_navbar_at_once(rt):
    worker = signed_in(rt, "worker")
    assert access.RECORDS.path not in _page_links(worker.get("/_dash-layout").json())
    admin = signed_in(rt, "admin")
    rows = [{"permission": "report.view", "worker": True}, {"permission": "meter.view", "worker": True}]
    try:
        r = admin.callback("admin.roles.save", {"roles-save.n_clicks": 1, "roles-grid.rowData": rows})
        assert r.status == 200 and t("admin.matrix_saved", "en", roles=t("admin.role.worker", "en")) in r.text
        layout = worker.get("/_dash-layout").json()  # the same session: permissions are read per request
        granted = DEFAULT_ROLE_PERMISSIONS["worker"] | {"report.view", "meter.view"}
        assert _page_links(layout) == _expected(granted)
        assert {access.RECORDS.path, access.OVERVIEW.path} <= _page_links(layout) and "billing" in _groups(layout)
        assert worker.get("/", follow=False).status == 200  # the Overview is now its landing page
    finally:
        rt.accounts.set_role_permissions({"worker": {"report.view": False, "meter.view": False}}, by="test",
                                         source="test")
    assert _page_links(worker.get("/_dash-layout").json()) == _expected(DEFAULT_ROLE_PERMISSIONS["worker"])


# --- Chromium -----------------------------------------------------------------------------------------
def _browser_login(browser, rt, username: str, viewport: dict, lang: str = "en"):
    context = browser.new_context(locale="en-US", viewport=viewport)
    context.set_default_timeout(15000)
    page = context.new_page()
    base = base_url(rt)
    page.goto(base + "/login")
    page.fill("#login-username", username)
    page.fill("#login-password", DEMO)
    page.click("#login-submit")
    page.wait_for_selector("#nav-collapse", state="attached")
    if lang != "en":
        page.goto(f"{base}/lang/{lang}?next=/status")
        page.wait_for_selector(f"#nav-collapse:has-text('{t('nav.billing', lang)}')")
    return context, page


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_admin_navbar_fits_one_row_on_a_1280px_desktop(rt, browser, lang):
    context, page = _browser_login(browser, rt, "admin", {"width": 1280, "height": 800}, lang)
    try:
        tops = page.eval_on_selector_all(
            ".navbar .navbar-brand, #nav-collapse .navbar-nav > .nav-item",
            "els => els.map(e => Math.round(e.getBoundingClientRect().top))")
        assert len(tops) >= 8 and max(tops) - min(tops) <= 4, tops
    finally:
        if lang != "en":  # the choice is kept on the operator: give the other tests their English back
            page.goto(base_url(rt) + "/lang/en?next=/status")
        context.close()


def test_a_page_in_a_dropdown_opens_from_it_and_is_highlighted_with_its_group(rt, browser):
    context, page = _browser_login(browser, rt, "admin", {"width": 1280, "height": 800})
    try:
        billing = page.locator(f"#nav-collapse .dropdown-toggle:has-text('{t('nav.billing', 'en')}')")
        billing.click()
        page.click(f"#nav-collapse .dropdown-menu.show a[href='{access.RECORDS.path}']")
        page.wait_for_url("**" + access.RECORDS.path)
        page.wait_for_selector(f"#nav-collapse a.dropdown-item.active[href='{access.RECORDS.path}']", state="attached")
        page.wait_for_selector(f"#nav-collapse .dropdown-toggle.active:has-text('{t('nav.billing', 'en')}')")
        page.click("#nav-home")
        page.wait_for_selector("#nav-home.active")
        page.wait_for_selector("#nav-collapse .dropdown-toggle.active", state="detached")
    finally:
        context.close()


def test_on_a_phone_the_navbar_collapses_behind_the_toggler(rt, browser):
    context, page = _browser_login(browser, rt, "admin", {"width": 390, "height": 844})
    try:
        assert page.is_visible("#nav-toggler") and not page.is_visible("#nav-home")
        page.click("#nav-toggler")
        page.wait_for_selector("#nav-home", state="visible")
        page.click(f"#nav-collapse .dropdown-toggle:has-text('{t('nav.system', 'en')}')")
        page.click(f"#nav-collapse .dropdown-menu.show a[href='{access.AUDIT.path}']")
        page.wait_for_url("**" + access.AUDIT.path)
        page.wait_for_selector("#nav-home", state="hidden")  # opening a page folds the menu again
    finally:
        context.close()
