"""Sites are often offline: no page may load anything from another host (no CDN, web font, call home)."""
from __future__ import annotations

import os
import re
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

from core.config import DemoConfig
from tests.conftest import CHROMIUM_ARGS, chromium_path
from tests.webclient import start_demo_runtime

ROOT = Path(__file__).resolve().parent.parent
LOCAL_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}
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


def _page_paths() -> list[str]:
    import dash
    paths = []
    for page in dash.page_registry.values():
        path = page["path"]
        if "<" not in path:  # templated paths need an argument; their pages are tested by their owners
            paths.append(path)
    return sorted(set(paths))


def _external(url: str) -> bool:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme in ("http", "https") and parts.hostname not in LOCAL_HOSTS


def _login_if_asked(page, base: str) -> None:
    if "/login" in page.url and page.locator("input[name=username]").count():
        page.fill("input[name=username]", "admin")
        page.fill("input[name=password]", DEMO_PASSWORD)
        page.locator("form button[type=submit], form input[type=submit]").first.click()
        page.wait_for_load_state("networkidle")


def _visit_every_page(page, base: str, paths: list[str]) -> Iterator[tuple[str, str]]:
    """Sign in as the demo admin, then open every page in English and in Chinese; yields (language, path)
    once each page has loaded."""
    page.goto(base + "/")
    _login_if_asked(page, base)
    for lang in ("en", "zh"):
        page.goto(f"{base}/lang/{lang}?next=/")
        for path in paths:
            page.goto(base + path)
            page.wait_for_load_state("networkidle")
            yield lang, path


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


# Chromium reports a blocked script, style, image or frame both as a console error and as a
# securitypolicyviolation event on the document; both are collected.
_COLLECT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (e) => {
    (window.__cspViolations = window.__cspViolations || []).push(e.violatedDirective + " " + e.blockedURI);
});
"""


def test_every_page_loads_under_the_content_security_policy_and_requests_nothing_from_another_host(runtime):
    """One walk over every page in both languages (each page load costs a second of Chromium): no policy violation,
    no request to another host, and the overview still renders its tiles under the policy."""
    from playwright.sync_api import sync_playwright
    base = f"http://127.0.0.1:{runtime.cfg.port}"
    violations: list[tuple[str, str]] = []
    requested: list[tuple[str, str]] = []
    paths = _page_paths()
    assert "/" in paths and "/status" in paths
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.add_init_script(_COLLECT_VIOLATIONS)
        page.on("console", lambda msg: violations.append((page.url, msg.text))
                if "Content Security Policy" in msg.text else None)
        page.on("request", lambda req: requested.append((page.url, req.url)))
        assert "frame-ancestors 'none'" in (page.context.request.get(base + "/login").headers
                                            ["content-security-policy"])
        for _lang, path in _visit_every_page(page, base, paths):
            violations.extend((path, v) for v in page.evaluate("window.__cspViolations || []"))
        assert violations == [], violations[:10]
        page.goto(base + "/")
        page.wait_for_selector(".ov-tile", timeout=20000)  # the overview still renders under the policy
        tiles = page.locator(".ov-tile").count()
        browser.close()
    assert tiles > 0
    assert len(requested) > len(paths), "the pages made no requests at all: nothing was rendered"
    external = sorted({(where, url) for where, url in requested if _external(url)})
    assert external == [], f"pages fetched from other hosts: {external[:10]}"
