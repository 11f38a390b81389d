"""Sites are often offline: no page may load anything from another host (no CDN, web font, call home). Here: the
page and the stylesheets name no other host, and the overview renders under the content security policy; every page
in Chromium is checked by the console walks (tests/test_console_errors.py)."""
from __future__ import annotations

import os
import re
import time
import urllib.request
from pathlib import Path

import pytest

from core.config import DemoConfig
from tests.conftest import CHROMIUM_ARGS, chromium_path
from tests.test_console_errors import COLLECT_VIOLATIONS, _external
from tests.webclient import start_demo_runtime

ROOT = Path(__file__).resolve().parent.parent
DEMO_PASSWORD = os.environ.get("DEMO_PASSWORD", "wattline-demo")
# Namespace identifiers inside inline SVG are names, not fetches.
NAMESPACES = re.compile(r"https?://www\.w3\.org/[0-9]{4}/(svg|xlink|xhtml)")
URL = re.compile(r"""(?:src|href)\s*=\s*["']?(https?://[^"' >]+)|url\(\s*["']?(https?://[^"')]+)""", re.I)


@pytest.fixture(scope="module")
def runtime(tmp_path_factory):
    rt = start_demo_runtime(tmp_path_factory.mktemp("offline"), poll_interval_s=DemoConfig().poll_interval_s)
    deadline = time.time() + 60
    while time.time() < deadline and not rt.health()["last_poll"]:
        time.sleep(0.3)
    yield rt
    rt.stop()


def _login_if_asked(page, base: str) -> None:
    if "/login" in page.url and page.locator("input[name=username]").count():
        page.fill("input[name=username]", "admin")
        page.fill("input[name=password]", DEMO_PASSWORD)
        page.locator("form button[type=submit], form input[type=submit]").first.click()
        page.wait_for_load_state("networkidle")


def test_html_and_stylesheets_name_no_other_host(runtime):
    base = f"http://127.0.0.1:{runtime.cfg.port}"
    with urllib.request.urlopen(base + "/login" if _has_login(base) else base + "/", timeout=10) as r:
        html = r.read().decode()
    sources = {"index.html": html}
    for css in sorted((ROOT / "assets").rglob("*.css")):
        sources[str(css.relative_to(ROOT))] = css.read_text(encoding="utf-8", errors="replace")
    offenders = []
    for name, text in sources.items():
        text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)  # comments (licence headers) fetch nothing
        text = NAMESPACES.sub("", text)
        for m in URL.finditer(text):
            url = m.group(1) or m.group(2)
            if _external(url):
                offenders.append((name, url))
    assert offenders == []


def _has_login(base: str) -> bool:
    try:
        with urllib.request.urlopen(base + "/login", timeout=10) as r:
            return r.status == 200
    except Exception:
        return False


def test_the_overview_renders_under_the_content_security_policy_and_requests_nothing_from_another_host(runtime):
    """The policy is sent, and the overview (its tiles drawn by the site's own scripts from live polls) renders under
    it without a violation or a request to another host. Every other page, in both languages and as every role, is
    checked for the same by the console walks (tests/test_console_errors.py), in the same visit as their errors."""
    from playwright.sync_api import sync_playwright

    base = f"http://127.0.0.1:{runtime.cfg.port}"
    violations: list[str] = []
    requested: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.add_init_script(COLLECT_VIOLATIONS)
        page.on("console", lambda msg: violations.append(msg.text) if "Content Security Policy" in msg.text else None)
        page.on("request", lambda req: requested.append(req.url))
        assert "frame-ancestors 'none'" in (page.context.request.get(base + "/login").headers
                                            ["content-security-policy"])
        page.goto(base + "/")
        _login_if_asked(page, base)
        page.goto(base + "/")
        page.wait_for_selector(".ov-tile", timeout=20000)
        page.wait_for_load_state("networkidle")
        tiles = page.locator(".ov-tile").count()
        violations += page.evaluate("window.__cspViolations || []")
        browser.close()
    assert tiles > 0 and violations == []
    assert [u for u in requested if _external(u)] == [] and any("/_dash-update-component" in u for u in requested)
