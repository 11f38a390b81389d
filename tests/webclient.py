"""A small HTTP client for tests against a running Runtime: cookies, the login form, Dash callbacks.

    client = WebClient(f"http://127.0.0.1:{rt.cfg.port}")
    client.login("admin", DEMO_PASSWORD)
    status, body = client.callback("admin.users.add", {"users-new-username.value": "eve", ...})

`callback` finds the callback's spec in /_dash-dependencies by the id in
dashboard.auth.GUARDED_CALLBACKS (or a raw Dash output id) and posts the body the browser would."""
from __future__ import annotations

import http.cookiejar
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

DEMO_PASSWORD_DEFAULT = "wattline-demo"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # noqa: ANN002, ANN003
        return None


class Response:
    def __init__(self, status: int, headers, body: bytes, url: str):
        self.status, self.headers, self.body, self.url = status, headers, body, url

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self):
        return json.loads(self.body)

    @property
    def location(self) -> str | None:
        return self.headers.get("Location")


class WebClient:
    def __init__(self, base: str):
        self.base = base.rstrip("/")
        self.jar = http.cookiejar.CookieJar()
        cookies = urllib.request.HTTPCookieProcessor(self.jar)
        self._follow = urllib.request.build_opener(cookies)
        self._stay = urllib.request.build_opener(cookies, _NoRedirect())
        self._deps: list[dict] | None = None

    # --- plain HTTP ---------------------------------------------------------------------------
    def request(self, method: str, path: str, *, data: bytes | None = None, headers: dict | None = None,
                follow: bool = True, origin: bool = True) -> Response:
        headers = dict(headers or {})
        if origin and method not in ("GET", "HEAD", "OPTIONS") and not any(h.lower() == "origin" for h in headers):
            headers["Origin"] = self.base  # as a browser sends with every POST from our own pages
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        opener = self._follow if follow else self._stay
        try:
            with opener.open(req, timeout=30) as r:
                return Response(r.status, r.headers, r.read(), r.url)
        except urllib.error.HTTPError as e:
            return Response(e.code, e.headers, e.read(), e.url)

    def get(self, path: str, follow: bool = True, **kw) -> Response:
        return self.request("GET", path, follow=follow, **kw)

    def post_json(self, path: str, body: Any) -> Response:
        return self.request("POST", path, data=json.dumps(body).encode(),
                            headers={"Content-Type": "application/json", "Accept": "application/json"})

    def post_form(self, path: str, fields: dict, follow: bool = False) -> Response:
        return self.request("POST", path, data=urllib.parse.urlencode(fields).encode(),
                            headers={"Content-Type": "application/x-www-form-urlencoded"}, follow=follow)

    def cookie(self, name: str) -> http.cookiejar.Cookie | None:
        return next((c for c in self.jar if c.name == name), None)

    # --- signing in -----------------------------------------------------------------------------
    def csrf_token(self) -> str:
        page = self.get("/login").text
        m = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert m, "no CSRF token on /login"
        return m.group(1)

    def login(self, username: str, password: str, next_path: str = "/") -> Response:
        """Post the login form; returns the answer (a 302 on success, the form again otherwise)."""
        token = self.csrf_token()
        return self.post_form("/login", {"csrf_token": token, "username": username, "password": password,
                                         "next": next_path})

    def logout(self) -> Response:
        """Press the sign-out button (a POST with the form token that GET /logout shows)."""
        page = self.get("/logout").text
        m = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert m, "no sign-out form on /logout"
        return self.post_form("/logout", {"csrf_token": m.group(1)})

    # --- Dash callbacks ---------------------------------------------------------------------------
    def dependencies(self) -> list[dict]:
        if self._deps is None:
            r = self.get("/_dash-dependencies")
            assert r.status == 200, (r.status, r.text[:200])
            self._deps = r.json()
        return self._deps

    def callback_spec(self, output: str) -> dict:
        for spec in self.dependencies():
            if spec["output"] == output:
                return spec
        raise KeyError(f"no callback with output {output!r} in /_dash-dependencies")

    def callback(self, name_or_output: str, values: dict[str, Any] | None = None,
                 changed: list[str] | None = None) -> Response:
        """Call one callback as the browser would. `values` maps "id.property" to the value of each
        input and state (missing ones are None); `changed` defaults to the first input."""
        from dashboard.auth import GUARDED_CALLBACKS
        output = GUARDED_CALLBACKS[name_or_output].output if name_or_output in GUARDED_CALLBACKS else name_or_output
        spec = self.callback_spec(output)
        return self.post_json("/_dash-update-component", callback_body(spec, values or {}, changed))

    def page(self, path: str, search: str = "", headers: dict | None = None) -> Response:
        """The content Dash's page router renders for `path` (what the browser gets after navigating)."""
        spec = next(s for s in self.dependencies() if s["output"].startswith(".._pages_content.children"))
        body = callback_body(spec, {"_pages_location.pathname": path, "_pages_location.search": search})
        return self.request("POST", "/_dash-update-component", data=json.dumps(body).encode(),
                            headers={"Content-Type": "application/json", **(headers or {})})


def _outputs(output: str) -> list[dict] | dict:
    def one(part: str) -> dict:
        ident, prop = part.rsplit(".", 1)
        return {"id": ident.replace("\\.", "."), "property": prop.split("@", 1)[0]}

    if output.startswith("..") and output.endswith(".."):
        return [one(p) for p in output[2:-2].split("...")]
    return one(output)


def callback_body(spec: dict, values: dict[str, Any], changed: list[str] | None = None) -> dict:
    def dep(d: dict) -> dict:
        return {"id": d["id"], "property": d["property"], "value": values.get(f"{d['id']}.{d['property']}")}

    inputs = [dep(d) for d in spec["inputs"]]
    if changed is None:
        changed = [f"{spec['inputs'][0]['id']}.{spec['inputs'][0]['property']}"] if spec["inputs"] else []
    return {"output": spec["output"], "outputs": _outputs(spec["output"]), "inputs": inputs,
            "state": [dep(d) for d in spec["state"]], "changedPropIds": changed}


# --- a demo Runtime for a test module ----------------------------------------------------------
# Tables the collector writes on its own schedule; a snapshot meant to show "nothing changed"
# leaves them out.
# notification: the SMS sender job sends (and marks) the messages the alarm engine's first cycle had queued.
# device_readings: the collector's history of terminals and master meters; frozen_register: the line_loss job's
# midnight registers; grid_automation / grid_action: the automatic voltage control job's settings of areas it meets
# first and its log (capacitor steps, holds), written on its own 30 s schedule.
COLLECTOR_TABLES = frozenset({"readings", "meter_state", "bus_state", "poll_cycle", "alarm_event", "schema_version",
                              "notification", "notify_episode", "device_readings", "frozen_register",
                              "grid_automation", "grid_action"})


def start_demo_runtime(tmp, poll_interval_s: float = 3600.0, database_url: str | None = None, **server):
    """A demo Runtime (one day of history, slow polls) serving on a free port; stop it with .stop().
    `database_url`: the demo's database (default a DuckDB file in `tmp`; tests.conftest.engine_url gives a
    PostgreSQL one).
    `server`: more Config fields (secure_cookies, trusted_proxy, limits, public_url). Unless `limits` is
    given, sign-in and API rates are loose: a test module signs in from one address more often than a
    person does (the default rates are tested in tests/test_request_safety.py)."""
    from core.config import Config, DemoConfig, LimitsConfig
    from serve.runtime import Runtime
    from tests.conftest import free_port, free_port_block
    server.setdefault("limits", LimitsConfig(login_per_address="10000/minute", login_per_user="10000/minute",
                                             api_per_address="10000/minute", api_per_client="10000/minute"))
    base_port = free_port_block(20)
    if database_url is None and set(server) <= _SEEDING_NEUTRAL:
        _copy_demo_template(tmp, base_port, server.get("timezone"))
    cfg = Config(database_url=f"duckdb:///{tmp / 'site.duckdb'}", port=free_port(),
                 master_key_file=str(tmp / "master.key"), qr_key_file=str(tmp / "qr.key"),
                 demo=DemoConfig(database_url=database_url or f"duckdb:///{tmp / 'demo.duckdb'}",
                                 base_port=base_port,
                                 state_file=str(tmp / "field.json"), history_days=1,
                                 poll_interval_s=poll_interval_s), **server)
    rt = Runtime(cfg, demo=True).start()
    rt.serve_in_thread()
    settle_demo_commands(rt)
    settle_first_jobs(rt)
    return rt


def settle_first_jobs(rt, timeout_s: float = 120.0) -> None:
    """Wait until the scheduler's jobs that run at start (the full poll among them, seconds after the start's own
    cycle, and what its changes wake: rollups, reconciliation, alarms, the AVC) have run and none is running, so a
    test's before/after snapshot never sees a background cycle land in between."""
    import time
    # the scheduler's own status (in memory; /healthz's body would add a database summary to every look)
    status = (lambda: rt.jobs.status()) if rt.jobs is not None else (lambda: [])
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        jobs = {j.name: j for j in status()}
        if (jobs["poll"].runs if "poll" in jobs else 1) >= 1 and not any(j.running for j in jobs.values()):
            time.sleep(0.3)   # a job the last one woke starts
            if not any(j.running for j in status()):
                return
        time.sleep(0.05)
    raise AssertionError(f"the demo's first jobs did not settle in {timeout_s:.0f} s")


# The demo's first start seeds its database (topology, a day of readings, accounts, sales, a settings push the
# simulator takes): about 7 s of the 9 s a start takes. A test process seeds it once per site time zone in a
# template directory (started, settled and stopped like any demo) and every later demo starts on a copy of that
# directory (the DuckDB file, the simulator's state, the keys), as a restarted demo does ("history kept"). The
# copy's buses are moved to its own ports, so two demos of one module run side by side. Options that do not
# change what is seeded (below) share a template; a PostgreSQL demo (`database_url`) always seeds afresh.
_SEEDING_NEUTRAL = frozenset({"limits", "secure_cookies", "trusted_proxy", "timezone"})
_templates: dict[str | None, tuple[Any, int]] = {}


def _copy_demo_template(tmp, base_port: int, timezone: str | None) -> None:
    import shutil
    import tempfile
    from pathlib import Path

    import duckdb

    if timezone not in _templates:
        import atexit
        template = Path(tempfile.mkdtemp(prefix="wattline-demo-template-"))
        atexit.register(shutil.rmtree, template, ignore_errors=True)
        server = {"timezone": timezone} if timezone else {}
        rt = start_demo_runtime(template, database_url=f"duckdb:///{template / 'demo.duckdb'}", **server)
        for area in rt.demo_field.areas():   # the demo's area seeded out of the band (serve.demo_field) back in it:
            rt.field_thread.field.set_supply_offset(area["terminal"], 0.0)   # no AVC step a test did not ask for
        seeded_port = rt.cfg.demo.base_port
        rt.stop()
        _templates[timezone] = (template, seeded_port)
    template, seeded_port = _templates[timezone]
    tmp = Path(tmp)
    for f in template.iterdir():
        if f.is_file() and not (tmp / f.name).exists():
            shutil.copy2(f, tmp / f.name)
    with duckdb.connect(str(tmp / "demo.duckdb")) as conn:
        conn.execute("UPDATE bus SET port = port + ?", [base_port - seeded_port])


def settle_demo_commands(rt, timeout_s: float = 60.0) -> None:
    """The demo's first start queues a settings push (serve.billing.seed_demo) that the dispatcher sends in the
    background: send it here until nothing is queued or sent, so a test's before/after snapshot never sees it
    settle in between. (Queued before the first poll reported the meters' command sequence, its first send is
    renumbered and would wait the dispatcher's backoff: here it goes again at once.)"""
    import time

    import sqlalchemy as sa

    from storage.schema import command
    deadline = time.monotonic() + timeout_s
    backoff, rt.dispatcher.backoff_s = rt.dispatcher.backoff_s, 0.0
    try:
        while time.monotonic() < deadline:
            with rt.engine.connect() as conn:
                open_ = conn.execute(sa.select(sa.func.count()).select_from(command)
                                     .where(command.c.state.in_(("queued", "sent")))).scalar_one()
            if not open_:
                return
            rt.dispatcher.run_once()
            time.sleep(0.05)
    finally:
        rt.dispatcher.backoff_s = backoff
    raise AssertionError(f"the demo's commands did not settle in {timeout_s:.0f} s")


def base_url(rt) -> str:
    return f"http://127.0.0.1:{rt.cfg.port}"


def signed_in_client(rt, username: str, password: str | None = None) -> WebClient:
    """A client signed in to `rt` as `username` (the demo operators' password by default)."""
    from operators.service import demo_password
    client = WebClient(base_url(rt))
    r = client.login(username, password or demo_password())
    assert r.status == 302, (username, r.status, r.text[-500:])
    return client


def browser_signed_in(browser, rt, username: str, password: str | None = None, *, width: int = 1400,
                      locale: str | None = None):
    """A Chromium context and page signed in to `rt` through the login form (the demo operators' password by
    default); close the context when done."""
    from operators.service import demo_password
    options = {"viewport": {"width": width, "height": 900}, "accept_downloads": True}
    if locale:
        options["locale"] = locale
    context = browser.new_context(**options)
    context.set_default_timeout(20000)
    page = context.new_page()
    page.goto(base_url(rt) + "/login")
    page.fill("#login-username", username)
    page.fill("#login-password", password or demo_password())
    page.click("#login-submit")
    page.wait_for_load_state("networkidle")
    return context, page


def json_call(url: str, method: str = "GET", body=None, headers: dict | None = None) -> tuple[int, Any]:
    """One JSON request: (status, decoded answer), an HTTP error's status and body included. `body`: an object to
    encode, or bytes sent as they are."""
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    req = urllib.request.Request(url, data=data, method=method)
    for name, value in (headers or {}).items():
        req.add_header(name, value)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def db_snapshot(engine, exclude=COLLECTOR_TABLES | {"audit_log"}) -> dict[str, list[tuple]]:
    """Every row of every table but `exclude`, as sorted tuples of strings (to compare before/after)."""
    import sqlalchemy as sa

    from storage.schema import metadata
    out = {}
    with engine.connect() as conn:
        for table in metadata.sorted_tables:
            if table.name in exclude:
                continue
            out[table.name] = sorted(tuple(str(v) for v in row) for row in conn.execute(sa.select(table)))
    return out
