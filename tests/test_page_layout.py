"""Every page fits the screen it is opened on, in Chromium: a phone (390x844) and a desktop (1400x900),
English and Chinese, as an administrator (every page), as a cashier (the cashier's pages) and as a customer
(the page of a meter's QR code); every page as opened is measured by the console walks (`layout_problems` here,
called from tests/test_console_errors.py on both screens), the states they do not open here. The page
itself never scrolls sideways; a grid may scroll inside its own box, but no other box hides part of its
content sideways (a table whose last column is out of sight). Also: the overview's floors, the permissions
matrix on a phone, grid column labels, and the meter panel's link to the cashier desk."""
from __future__ import annotations

import datetime as dt
import os

import pytest
import sqlalchemy as sa

from billing import ledger, qr
from billing.credit import Actor
from billing.tariffs import add_tariff_version, tariff_list
from operators.service import DEFAULT_ROLE_PERMISSIONS
from dashboard import access
from dashboard.i18n import t
from storage.schema import meter
from tests.webclient import base_url, signed_in_client, start_demo_runtime

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1400, "height": 900}
SOLD_METER = "202611210001"

# The page's own overflow, naming the element that reaches furthest right (outside any box that scrolls
# or clips), and every box that hides part of its content sideways. Grids (AG Grid) scroll in their own
# box; text cut with an ellipsis and visually hidden labels are meant to be cut.
_MEASURE = """
() => {
  const doc = document.documentElement;
  const screen = doc.clientWidth;
  const name = (el) => el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") +
      (typeof el.className === "string" && el.className.trim()
          ? "." + el.className.trim().split(/\\s+/).slice(0, 3).join(".") : "");
  const where = (el) => {
    const path = [];
    for (let p = el; p && p !== document.body && path.length < 5; p = p.parentElement) path.push(name(p));
    return path.join(" < ");
  };
  const scrolls = (el) => ["auto", "scroll", "hidden", "clip"].includes(getComputedStyle(el).overflowX);
  const insideBox = (el) => {
    for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) if (scrolls(p)) return true;
    return false;
  };
  const grid = (el) => el.closest("[class*='ag-']") !== null;
  let widest = null;
  if (doc.scrollWidth > screen) {
    for (const el of document.body.querySelectorAll("*")) {
      const r = el.getBoundingClientRect();
      const right = r.right + window.scrollX;
      if ((r.width === 0 && r.height === 0) || right <= screen + 0.5 || insideBox(el)) continue;
      if (!widest || right > widest.right) widest = {right: Math.round(right), element: where(el)};
    }
  }
  const hidden = [];
  for (const el of document.body.querySelectorAll("*")) {
    if (!scrolls(el) || grid(el) || el.clientWidth <= 1 || el.offsetParent === null) continue;
    const style = getComputedStyle(el);
    if (style.textOverflow === "ellipsis" || el.closest(".visually-hidden")) continue;
    if (el.scrollWidth > el.clientWidth + 1) hidden.push({element: where(el), shown: el.clientWidth, content: el.scrollWidth});
  }
  return {width: doc.scrollWidth, screen: screen, widest: widest, hidden: hidden};
}
"""


def seed_layout_data(runtime) -> None:
    """What the issue found cut off on a phone needs data: a meter's latest entries, a scheduled tiered version
    (also seeded by the console walks' demo, tests/test_console_errors.py, which measure every page on a phone)."""
    ctx = runtime.billing
    cashier = Actor("layout-test", frozenset({"sale.create"}))
    for amount in ("20.00", "30.00"):
        ledger.sell(ctx, SOLD_METER, amount, cashier, request_id=os.urandom(8).hex())
    tiered = next(x for x in tariff_list(ctx) if x["mode"] == "tiered")
    add_tariff_version(ctx, tiered["id"], "layout-test", tiers=[(200, "0.56"), (400, "0.61"), (None, "0.86")],
                       valid_from=ctx.now() + dt.timedelta(days=10))


@pytest.fixture(scope="module")
def rt(tmp_path_factory):
    runtime = start_demo_runtime(tmp_path_factory.mktemp("layout"))
    seed_layout_data(runtime)
    yield runtime
    runtime.stop()


def _page_paths() -> list[str]:
    import dash
    return sorted({p["path"] for p in dash.page_registry.values() if "<" not in p["path"]})


def _may_open(path: str, role: str) -> bool:
    rule = next((p for p in access.PAGES if p.path == path), None)
    return rule is None or rule.open_with(DEFAULT_ROLE_PERMISSIONS[role])


def _signed_in_page(browser, rt, username: str, viewport: dict):
    context = browser.new_context(viewport=viewport)
    client = signed_in_client(rt, username)  # the session cookie of a real sign-in, handed to the browser
    context.add_cookies([{"name": c.name, "value": c.value, "url": base_url(rt)} for c in client.jar])
    return context, context.new_page()


def _open(page, rt, path: str) -> None:
    page.goto(base_url(rt) + path)
    page.wait_for_load_state("networkidle")
    if path == "/":
        page.wait_for_selector(".ov-tile", timeout=20000)
    elif path.startswith("/sell?meter="):
        page.wait_for_selector("#sell-meter-card table", timeout=20000)


def layout_problems(page, label: str) -> list[str]:
    m = page.evaluate(_MEASURE)
    out = []
    if m["width"] > m["screen"]:
        widest = m["widest"] or {"element": "?", "right": m["width"]}
        out.append(f"{label}: the page is {m['width']} px wide on a {m['screen']} px screen; "
                   f"furthest right: {widest['element']} (right edge at {widest['right']} px)")
    out += [f"{label}: {h['element']} shows {h['shown']} px of its {h['content']} px wide content" for h in m["hidden"]]
    return out


def _walk(browser, rt, viewport: dict, lang: str, role: str, paths: list[str] | None = None) -> list[str]:
    """Every page `role` may open (or only `paths`), then the cashier desk with a meter, an account shown and the
    overview's side panel; problems named with the screen, the language, the role and the page."""
    size = f"{viewport['width']}x{viewport['height']}"
    problems: list[str] = []
    if role == "customer":  # the customer's page from the meter's QR code, without sign-in (most often a phone)
        context = browser.new_context(viewport=viewport)
        page = context.new_page()
        token = qr.sign(rt.qr_key, "meter", SOLD_METER)
        page.goto(f"{base_url(rt)}/c/{token}?lang={lang}")
        page.wait_for_load_state("networkidle")
        problems += layout_problems(page, f"{size} {lang} customer /c/<meter token>")
        context.close()
        return problems
    if paths is None:
        paths = [p for p in _page_paths() if _may_open(p, role)]
    paths = paths + [f"/sell?meter={SOLD_METER}"]
    context, page = _signed_in_page(browser, rt, role, viewport)
    page.goto(f"{base_url(rt)}/lang/{lang}?next=/status")
    for path in paths:
        _open(page, rt, path)
        problems += layout_problems(page, f"{size} {lang} {role} {path}")
    if _may_open(access.ACCOUNTS.path, role):  # an account's meters and entries, found by its meter
        _open(page, rt, access.ACCOUNTS.path)
        page.get_by_role("tab", name=t("accounts.tab_find", lang)).click()
        page.fill("#acc-search", SOLD_METER)
        page.click("#acc-find")
        page.locator("#acc-grid .ag-row").first.click()
        page.wait_for_selector("#acc-detail table.latest-entries", timeout=20000)
        problems += layout_problems(page, f"{size} {lang} {role} /accounts with an account shown")
    # the overview's side panel, opened from the first tile
    _open(page, rt, "/")
    page.locator(".ov-tile").first.click()
    page.wait_for_selector("#ov-panel-balance", timeout=20000)
    problems += layout_problems(page, f"{size} {lang} {role} / with a meter's panel open")
    context.close()
    return problems


# Every page as every role opens it is measured on the desktop (1400x900) and on the phone (390x844) by the console
# walks (tests/test_console_errors.py and test_console_errors_roles.py: the administrator and the cashier in both
# languages, the other roles in one), in the same visit that checks its errors: a walk over every page costs a
# Chromium and a server second a page. Here, on the phone in both languages (a label's length differs by language,
# and 390 px is where it shows): the customer's page and the states the console walks do not open the same way (the
# cashier desk with a meter, an account shown, the overview's meter panel).
@pytest.mark.parametrize("role", ["admin", "cashier", "customer"])
@pytest.mark.parametrize("lang", ["en", "zh"], ids=["phone-390x844-en", "phone-390x844-zh"])
def test_no_page_is_wider_than_the_screen_nor_hides_content_sideways(browser, rt, lang, role):
    problems = _walk(browser, rt, PHONE, lang, role, paths=[])
    assert problems == [], "\n".join(problems)


@pytest.mark.parametrize("role", ["admin", "customer"])
def test_on_a_desktop_the_customer_page_and_a_shown_account_meter_panel_and_sell_card_fit(browser, rt, role):
    problems = _walk(browser, rt, DESKTOP, "en", role, paths=[])
    assert problems == [], "\n".join(problems)


def test_a_floor_of_twenty_rooms_is_one_row_on_a_desktop_and_even_rows_on_a_phone(browser, rt):
    rows_per_floor = """() => Array.from(document.querySelectorAll(".ov-tiles")).map(f => {
        const tops = Array.from(f.children).map(t => Math.round(t.getBoundingClientRect().top));
        const rows = [...new Set(tops)];
        return {tiles: tops.length, rows: rows.map(top => tops.filter(x => x === top).length)};
    })"""
    for viewport, expected in ((DESKTOP, [20]), (PHONE, [5, 5, 5, 5])):
        context, page = _signed_in_page(browser, rt, "admin", viewport)
        _open(page, rt, "/")
        floors = page.evaluate(rows_per_floor)
        context.close()
        assert floors and all(f["tiles"] == 20 for f in floors)  # the demo site: 20 rooms on every floor
        assert all(f["rows"] == expected for f in floors), (viewport, floors[:3])


def test_the_permissions_matrix_on_a_phone_shows_role_columns_beside_the_permission(browser, rt):
    context, page = _signed_in_page(browser, rt, "admin", PHONE)
    _open(page, rt, "/admin/roles")
    page.wait_for_selector("#roles-grid .ag-header-cell[col-id='admin']")
    on_screen = page.evaluate("""() => Array.from(document.querySelectorAll("#roles-grid .ag-header-cell"))
        .filter(h => { const r = h.getBoundingClientRect(); return r.width > 0 && r.left >= 0 && r.right <= innerWidth; })
        .map(h => h.getAttribute("col-id"))""")
    context.close()
    assert "permission" in on_screen and {"admin", "manager"} <= set(on_screen), on_screen


@pytest.mark.parametrize("path, grid", [("/records", "rec-grid"), ("/meters", "meters-grid")])
def test_every_grid_column_label_starts_where_its_column_starts(browser, rt, path, grid):
    """A right-aligned header put the amount's filter button at its column's left edge, far from its label:
    the column read as an empty, unlabelled one."""
    context, page = _signed_in_page(browser, rt, "admin", DESKTOP)
    _open(page, rt, path)
    page.wait_for_selector(f"#{grid} .ag-header-cell-text")
    headers = page.evaluate(f"""() => Array.from(document.querySelectorAll("#{grid} .ag-header-row-column .ag-header-cell"))
        .filter(h => h.getBoundingClientRect().width > 0).map(h => {{
            const text = h.querySelector(".ag-header-cell-text");
            return {{col: h.getAttribute("col-id"), label: text ? text.innerText.trim() : "",
                    gap: text ? Math.round(text.getBoundingClientRect().left - h.getBoundingClientRect().left) : -1}};
        }})""")
    context.close()
    assert headers
    unlabelled = [h for h in headers if not h["label"] or not 0 <= h["gap"] <= 24]
    assert unlabelled == [], unlabelled


def test_the_meter_panel_leads_an_operator_who_may_sell_to_the_cashier_desk_for_that_meter(browser, rt):
    context, page = _signed_in_page(browser, rt, "cashier", PHONE)
    _open(page, rt, "/")
    page.locator(f".ov-tile[aria-label*='{SOLD_METER}']").click()
    link = page.locator("#ov-panel-sell")
    link.wait_for(timeout=20000)
    assert link.get_attribute("href") == f"/sell?meter={SOLD_METER}"
    link.click()
    page.wait_for_selector("#sell-meter-card", timeout=20000)
    assert page.locator("#sell-address").inner_text() == SOLD_METER
    context.close()


def test_the_meter_panel_has_no_sell_link_for_an_operator_who_may_not_sell(rt):
    with rt.engine.connect() as conn:
        meter_id = conn.execute(sa.select(meter.c.id).where(meter.c.address == SOLD_METER)).scalar_one()
    selected = {"ov-map.selected": {"meter": meter_id, "at": 1}}
    manager = signed_in_client(rt, "manager")  # meter.view, not sale.create
    assert "sale.create" not in DEFAULT_ROLE_PERMISSIONS["manager"]
    r = manager.callback("overview.meter", selected)
    assert r.status == 200 and "ov-panel-balance" in r.text and "ov-panel-sell" not in r.text
    r = signed_in_client(rt, "cashier").callback("overview.meter", selected)
    assert r.status == 200 and "ov-panel-sell" in r.text


def test_our_stylesheets_come_after_bootstraps_so_the_sites_chinese_font_list_is_in_force(browser, rt):
    """Dash linked assets/vendor/bootstrap last, and Bootstrap's own font list replaced ours (no CJK fonts)."""
    context, page = _signed_in_page(browser, rt, "cashier", PHONE)
    _open(page, rt, "/sell")
    sheets = page.evaluate("""() => Array.from(document.querySelectorAll("link[rel=stylesheet]"))
        .map(l => new URL(l.href).pathname)""")
    font = page.evaluate("() => getComputedStyle(document.body).fontFamily")
    context.close()
    assert sheets.index("/assets/vendor/bootstrap/bootstrap.min.css") < sheets.index("/assets/wattline.css")
    assert sheets.count("/assets/vendor/bootstrap/bootstrap.min.css") == 1
    assert "Microsoft YaHei" in font and "Noto Sans CJK SC" in font
