"""Sign-in speed: the real server (app.py under waitress, its own process) on a fresh site, one sign-in alone
and ten operators signing in at the same moment.

A sign-in is what the browser does after the form is filled in: POST /login (CSRF token and cookie from a
GET /login before, not timed) until the redirect has arrived, then the landing page's HTML. Ten at once
are ten distinct operators from ten threads released together; the figure is the wall time until all ten
have their landing page. The site's sign-in rate limit per client address is raised in the benchmark's
configuration (every client here is 127.0.0.1); the per-user limit stays as shipped.

Usage: .venv/bin/python bench/signin.py [--alone 9] [--concurrent 10] [--rounds 3] [--old-hashes]
  --old-hashes  store the operators' hashes with argon2-cffi's defaults (t=3, 64 MiB, p=4), as sites created
                before issue 8 have them: the first round measures the sign-in that verifies and rehashes them.
"""
from __future__ import annotations

import argparse
import http.cookiejar
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from argon2 import PasswordHasher  # noqa: E402

from operators import service as operators  # noqa: E402
from operators.service import Accounts  # noqa: E402
from serve.runtime import utcnow  # noqa: E402
from storage.engine import dispose, open_engine  # noqa: E402
from storage.migrations import migrate  # noqa: E402

PASSWORD = "bench-sign-in-9"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN201
        return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def seed_site(folder: Path, users: int, old_hashes: bool) -> str:
    """A fresh database with `users` operators (cashiers, password set, nothing to change at first sign-in)."""
    url = f"duckdb:///{folder / 'site.duckdb'}"
    engine = open_engine(url)
    try:
        migrate(engine)
        accounts = Accounts(engine, clock=utcnow)
        accounts.seed()
        old = PasswordHasher()  # argon2-cffi's defaults: what every hash was made with before issue 8
        saved = operators.hash_password
        if old_hashes:
            operators.hash_password = old.hash
        try:
            for i in range(users):
                accounts.add_operator(f"bench{i:02d}", None, PASSWORD, ["cashier"], by="bench", source="bench",
                                      language="en", must_change_password=False)
        finally:
            operators.hash_password = saved
    finally:
        dispose(engine)
    return url


def start_server(folder: Path, url: str, port: int) -> subprocess.Popen:
    cfg = folder / "site.toml"
    cfg.write_text(f"""[database]
url = "{url}"
[server]
port = {port}
[keys]
master_key_file = "{folder / 'master.key'}"
qr_key_file = "{folder / 'qr.key'}"
[site]
public_url = "http://127.0.0.1:{port}"
[limits]
login_per_address = "10000/minute"
""", encoding="utf-8")
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--config", str(cfg)], cwd=folder,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server stopped: {proc.stderr.read()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                return proc
        except (urllib.error.URLError, OSError):
            time.sleep(0.3)
    proc.kill()
    raise SystemExit("the server did not answer /healthz within 120 s")


class Browser:
    """One browser's cookies; `prepare` loads the form, `sign_in` submits it (timed by the caller)."""

    def __init__(self, base: str):
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar), _NoRedirect)
        self.token = ""

    def prepare(self) -> None:
        with self.opener.open(self.base + "/login", timeout=60) as r:
            self.token = CSRF.search(r.read().decode()).group(1)

    def sign_in(self, username: str) -> None:
        body = urllib.parse.urlencode({"username": username, "password": PASSWORD, "csrf_token": self.token,
                                       "next": "/"}).encode()
        try:
            self.opener.open(self.base + "/login", data=body, timeout=60)
            raise SystemExit(f"sign-in of {username} was not redirected (refused?)")
        except urllib.error.HTTPError as exc:  # the 302 (redirects are not followed by this opener)
            if exc.code != 302:
                raise SystemExit(f"sign-in of {username} answered {exc.code}") from None
            target = exc.headers["Location"]
        if "/login" in target or "/account" in target:
            raise SystemExit(f"sign-in of {username} was sent to {target}")
        with self.opener.open(urllib.parse.urljoin(self.base, target), timeout=60) as r:
            r.read()


def one_alone(base: str, username: str) -> float:
    b = Browser(base)
    b.prepare()
    t0 = time.perf_counter()
    b.sign_in(username)
    return time.perf_counter() - t0


def at_once(base: str, usernames: list[str]) -> tuple[float, list[float]]:
    browsers = [Browser(base) for _ in usernames]
    for b in browsers:
        b.prepare()
    start = threading.Barrier(len(usernames) + 1)
    each: list[float] = [0.0] * len(usernames)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        start.wait()
        t0 = time.perf_counter()
        try:
            browsers[i].sign_in(usernames[i])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        each[i] = time.perf_counter() - t0

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(usernames))]
    for th in threads:
        th.start()
    start.wait()
    t0 = time.perf_counter()
    for th in threads:
        th.join()
    wall = time.perf_counter() - t0
    if errors:
        raise SystemExit(f"{len(errors)} of {len(usernames)} sign-ins failed: {errors[0]}")
    return wall, each


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--alone", type=int, default=9, help="sign-ins one after another (median reported)")
    ap.add_argument("--concurrent", type=int, default=10, help="operators signing in at the same moment")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of concurrent sign-ins")
    ap.add_argument("--old-hashes", action="store_true", help="hashes as sites before issue 8 stored them")
    args = ap.parse_args()

    h = operators._hasher
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"argon2id parameters of new hashes: t={h.time_cost} m={h.memory_cost} KiB p={h.parallelism}")
    users = [f"bench{i:02d}" for i in range(args.concurrent)]
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        url = seed_site(folder, args.concurrent, args.old_hashes)
        port = _free_port()
        proc = start_server(folder, url, port)
        base = f"http://127.0.0.1:{port}"
        try:
            if args.old_hashes:
                wall, each = at_once(base, users)
                print(f"first sign-in of {len(users)} at once on old hashes (verify + rehash): wall {wall:.2f} s, "
                      f"each median {statistics.median(each):.2f} s, max {max(each):.2f} s")
            one_alone(base, users[0])  # warm-up: first request imports and renders
            alone = [one_alone(base, users[i % len(users)]) for i in range(args.alone)]
            print(f"sign-in alone ({args.alone}): median {statistics.median(alone):.3f} s, "
                  f"min {min(alone):.3f} s, max {max(alone):.3f} s")
            for r in range(args.rounds):
                wall, each = at_once(base, users)
                print(f"{len(users)} at once, round {r + 1}: all done in {wall:.2f} s "
                      f"(each: median {statistics.median(each):.2f} s, max {max(each):.2f} s)")
            print(f"load average after: {os.getloadavg()[0]:.1f}")
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    main()
