"""Signing in with Chromium (Playwright, the system's chromium): each demo role's navbar, Chinese
labels after switching, the localized wrong-password message, and the admin grids' own controls."""
from __future__ import annotations


import pytest

from operators.service import DEFAULT_ROLE_PERMISSIONS, ROLES, demo_password
from dashboard.components.shell import nav_pages
from dashboard.i18n import t
from tests.webclient import base_url, start_demo_runtime

DEMO = demo_password()


@pytest.fixture(scope="module")
def rt(tmp_path_factory):
    runtime = start_demo_runtime(tmp_path_factory.mktemp("auth-browser"))
    yield runtime
    runtime.stop()


@pytest.fixture
def page(browser):
    context = browser.new_context(locale="en-US")
    context.set_default_timeout(15000)
    yield context.new_page()
    context.close()


def _login(page, base: str, username: str, password: str = DEMO) -> None:
    page.goto(base + "/login")
    page.fill("#login-username", username)
    page.fill("#login-password", password)
    page.click("#login-submit")


def test_each_demo_role_sees_the_navbar_links_it_may_open(rt, browser):
    base = base_url(rt)
    for role in ROLES:
        context = browser.new_context(locale="en-US")
        page = context.new_page()
        _login(page, base, role)
        page.wait_for_selector("#nav-collapse .navbar-nav")
        # top-level links and the entries of the dropdowns (in the page, folded until opened)
        shown = set(page.eval_on_selector_all("#nav-collapse .me-auto a[href]:not(.dropdown-toggle)",
                                              "els => els.map(e => e.getAttribute('href'))"))
        expected = {p.path for p in nav_pages() if p.page.open_with(DEFAULT_ROLE_PERMISSIONS[role])}
        assert shown == expected, role
        context.close()


def test_switching_to_chinese_shows_chinese_labels(rt, page):
    base = base_url(rt)
    _login(page, base, "admin")
    page.wait_for_selector("#lang-switch")
    page.click("#lang-switch")
    try:
        page.wait_for_selector(f"#nav-home:has-text('{t('nav.overview', 'zh')}')")
        page.goto(base + "/admin/users")
        page.wait_for_selector(f"h1:has-text('{t('admin.users_heading', 'zh')}')")
        page.wait_for_selector(f".ag-header-cell-text:has-text('{t('admin.col_username', 'zh')}')")
        page.click(f"#nav-collapse .dropdown-toggle:has-text('{t('nav.system', 'zh')}')")  # its entries fold into it
        page.wait_for_selector(f".dropdown-menu.show a[href='/admin/users']:has-text('{t('nav.users', 'zh')}')")
    finally:
        page.goto(base + "/lang/en?next=/status")


def test_a_wrong_password_shows_the_error_in_the_chosen_language(rt, page):
    base = base_url(rt)
    page.goto(base + "/login")
    page.click("#lang-switch")
    page.wait_for_selector(f"#login-submit:has-text('{t('auth.submit', 'zh')}')")
    page.fill("#login-username", "cashier")
    page.fill("#login-password", "not-the-password")
    page.click("#login-submit")
    assert page.inner_text("#login-error").strip() == t("auth.error.bad_credentials", "zh")


def test_an_admin_ticks_a_permission_in_the_matrix_and_saves_it(rt, page):
    base = base_url(rt)
    _login(page, base, "admin")
    page.wait_for_selector("#nav-home")
    page.goto(base + "/admin/roles")
    cell = page.locator(".ag-center-cols-container .ag-row[row-id='meter.view'] [col-id='worker'] input")
    cell.click()
    page.click("#roles-save")
    page.wait_for_selector(f"#roles-result:has-text('{t('admin.role.worker', 'en')}')")
    try:
        assert "meter.view" in rt.accounts.role_matrix()["worker"]
    finally:
        rt.accounts.set_role_permissions({"worker": {"meter.view": False}}, by="test", source="test")


def test_an_admin_selects_an_operator_in_the_grid_and_resets_the_password(rt, page):
    base = base_url(rt)
    _login(page, base, "admin")
    page.wait_for_selector("#nav-home")
    page.goto(base + "/admin/users")
    page.click(".ag-center-cols-container .ag-row[row-id='analyst'] [col-id='username']")
    page.fill("#users-temp-password", "temporary-analyst")
    page.click("#users-reset")
    page.wait_for_selector(f"#users-result:has-text('{t('admin.reset_done', 'en', username='analyst')}')")
    try:
        assert rt.accounts.operator("analyst").must_change_password
    finally:
        rt.accounts.set_password("analyst", DEMO, by="test", source="test", must_change_password=False)
