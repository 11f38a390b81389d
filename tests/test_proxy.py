"""Behind a reverse proxy with HTTPS: [server] trusted_proxy and secure_cookies."""
from __future__ import annotations

import re
import urllib.error
import urllib.parse
import urllib.request

import pytest
import sqlalchemy as sa

from core.config import ConfigError, load_config
from storage.schema import audit_log
from tests.webclient import base_url, start_demo_runtime

SITE = "energy.example.edu"
CLIENT = "203.0.113.9"
FORWARDED = {"X-Forwarded-For": CLIENT, "X-Forwarded-Proto": "https", "X-Forwarded-Host": SITE}


class _Stay(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # noqa: ANN002, ANN003
        return None


def _send(rt, method, path, headers, data=None):
    req = urllib.request.Request(base_url(rt) + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.build_opener(_Stay()).open(req, timeout=30) as r:
            return r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


def _login(rt, password, headers):
    """GET /login then POST it with the session cookie it set, as a browser behind the proxy would."""
    _status, got, page = _send(rt, "GET", "/login", headers)
    set_cookie = got.get_all("Set-Cookie") or []
    session = next(c for c in set_cookie if c.startswith("wattline_session="))
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    body = urllib.parse.urlencode({"csrf_token": token, "username": "cashier", "password": password,
                                   "next": "/sell"}).encode()
    status, answered, _ = _send(rt, "POST", "/login", {**headers, "Cookie": session.split(";")[0],
                                                       "Content-Type": "application/x-www-form-urlencoded",
                                                       "Origin": f"https://{SITE}"}, body)
    return session, status, answered


def _sources(rt, action):
    with rt.engine.connect() as conn:
        return [r.source for r in conn.execute(sa.select(audit_log.c.source).where(audit_log.c.action == action))]


@pytest.fixture(scope="module")
def proxied(tmp_path_factory):
    rt = start_demo_runtime(tmp_path_factory.mktemp("proxy"), secure_cookies=True, trusted_proxy="127.0.0.1")
    yield rt
    rt.stop()


@pytest.fixture(scope="module")
def direct(tmp_path_factory):
    rt = start_demo_runtime(tmp_path_factory.mktemp("direct"))
    yield rt
    rt.stop()


def test_behind_a_trusted_proxy_the_client_address_scheme_and_host_are_the_browsers(proxied):
    session, status, _ = _login(proxied, "wrong password", FORWARDED)
    assert "Secure" in session and "HttpOnly" in session
    assert status == 401 and _sources(proxied, "auth.login_failed")[-1] == CLIENT
    session, status, answered = _login(proxied, "wattline-demo", FORWARDED)
    assert status == 302 and answered["Location"].endswith("/sell")
    assert _sources(proxied, "auth.login")[-1] == CLIENT
    signed_in = answered.get_all("Set-Cookie")
    cookie = next(c for c in signed_in if c.startswith("wattline_session=")).split(";")[0]
    # a POST from the browser's https page passes the same-origin check (405: the page takes no POST)
    status, _, body = _send(proxied, "POST", "/sell", {**FORWARDED, "Cookie": cookie, "Origin": f"https://{SITE}"},
                            b"")
    assert status == 405, body[:200]


def test_without_a_trusted_proxy_forwarded_headers_are_not_believed(direct):
    session, status, _ = _login(direct, "wrong password", FORWARDED)
    assert "Secure" not in session and status == 401
    assert _sources(direct, "auth.login_failed")[-1] == "127.0.0.1"
    status, _, body = _send(direct, "POST", "/sell", {**FORWARDED, "Origin": f"https://{SITE}"}, b"")
    assert status == 403 and "cross_origin" in body


@pytest.mark.parametrize("text, message", [
    ('[server]\ntrusted_proxy = "nginx"\n', "is not an IP address"),
    ('[server]\nsecure_cookies = "yes"\n', "secure_cookies = 'yes' is not a valid value"),
])
def test_bad_proxy_settings_are_refused_with_their_key(tmp_path, text, message):
    path = tmp_path / "wattline.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(path, env={})
    assert message in str(err.value) and str(path) in str(err.value)


def test_proxy_settings_are_read_from_the_server_section(tmp_path):
    path = tmp_path / "wattline.toml"
    path.write_text('[server]\nsecure_cookies = true\ntrusted_proxy = "10.0.0.2"\n', encoding="utf-8")
    cfg = load_config(path, env={})
    assert (cfg.secure_cookies, cfg.trusted_proxy) == (True, "10.0.0.2")
    assert (load_config(None, env={}).secure_cookies, load_config(None, env={}).trusted_proxy) == (False, None)
