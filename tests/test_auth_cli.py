"""The `user` command line and what serving says about operators, as a user runs them (subprocesses)."""
from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from operators.service import ROLES, Accounts, LoginRefused
from storage.engine import dispose, open_engine
from tests.conftest import free_port, free_port_block

ROOT = Path(__file__).resolve().parent.parent


def run_app(*args, cwd, env_extra=None, stdin: str | None = None, timeout=60):
    env = {**os.environ, "WATTLINE_CONFIG": "", **(env_extra or {})}
    return subprocess.run([sys.executable, str(ROOT / "app.py"), *args], cwd=cwd, env=env, input=stdin,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def site(tmp_path):
    """The working directory and environment of a site with its own database file."""
    return tmp_path, {"WATTLINE_DATABASE_URL": f"duckdb:///{tmp_path / 'site.duckdb'}"}


def _accounts(tmp_path):
    engine = open_engine(f"duckdb:///{tmp_path / 'site.duckdb'}")
    return Accounts(engine, clock=lambda: dt.datetime(2026, 11, 21, 8, 0)), engine


def test_user_add_reads_the_password_from_stdin_and_the_operator_can_sign_in(site):
    cwd, env = site
    out = run_app("user", "add", "boss", "--role", "admin", "--role", "analyst", "--name", "The Boss",
                  "--password-stdin", cwd=cwd, env_extra=env, stdin="boss-password-1\n")
    assert out.returncode == 0, out.stderr
    assert "boss" in out.stdout and "boss-password-1" not in out.stdout + out.stderr
    accounts, engine = _accounts(cwd)
    try:
        op = accounts.authenticate("boss", "boss-password-1", "test")
        assert op.roles == ("admin", "analyst") and op.display_name == "The Boss" and not op.must_change_password
        assert accounts.operation_log(action="operator.add")[0]["source"] == "cli"
    finally:
        dispose(engine)


def test_user_add_refuses_a_password_shorter_than_eight_characters(site):
    cwd, env = site
    out = run_app("user", "add", "boss", "--role", "admin", "--password-stdin", cwd=cwd, env_extra=env,
                  stdin="short\n")
    assert out.returncode == 2 and "at least 8 characters" in out.stderr and "Traceback" not in out.stderr
    assert "boss" not in run_app("user", "list", cwd=cwd, env_extra=env).stdout


def test_user_add_refuses_an_unknown_role(site):
    cwd, env = site
    out = run_app("user", "add", "boss", "--role", "overlord", "--password-stdin", cwd=cwd, env_extra=env,
                  stdin="long-enough-1\n")
    assert out.returncode == 2 and "Unknown role: overlord" in out.stderr


def test_user_passwd_sets_a_new_password_and_clears_a_lockout(site):
    cwd, env = site
    assert run_app("user", "add", "boss", "--role", "admin", "--password-stdin", cwd=cwd, env_extra=env,
                   stdin="old-password-1\n").returncode == 0
    accounts, engine = _accounts(cwd)
    for _ in range(5):
        with pytest.raises(LoginRefused):
            accounts.authenticate("boss", "wrong-password", "test")
    dispose(engine)
    out = run_app("user", "passwd", "boss", "--password-stdin", cwd=cwd, env_extra=env, stdin="new-password-1\n")
    assert out.returncode == 0, out.stderr
    accounts, engine = _accounts(cwd)
    try:
        assert accounts.authenticate("boss", "new-password-1", "test").username == "boss"
    finally:
        dispose(engine)


def test_user_list_shows_each_operator_with_roles(site):
    cwd, env = site
    for name, role in (("anna", "cashier"), ("bo", "worker")):
        run_app("user", "add", name, "--role", role, "--password-stdin", cwd=cwd, env_extra=env, stdin="pass-word-1\n")
    lines = run_app("user", "list", cwd=cwd, env_extra=env).stdout.splitlines()
    assert lines[0].split()[:2] == ["username", "roles"]
    assert [line.split()[:3] for line in lines[1:]] == [["anna", "cashier", "yes"], ["bo", "worker", "yes"]]


def _serve_until_up(args, cwd, env_extra, port, tries=3):
    """Start app.py on `port` and wait for its sign-in page. Another test process may take a free port between
    our pick and the server's bind (parallel workers): then the server says so and we try another port."""
    env = {**os.environ, "WATTLINE_CONFIG": "", **env_extra}
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--port", str(port), *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=2) as r:
                return proc, r.read().decode()
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.3)
    proc.kill()
    output = proc.stdout.read() if proc.stdout else ""
    if tries > 1 and "address already in use" in output.lower():
        return _serve_until_up(args, cwd, env_extra, free_port(), tries - 1)
    raise AssertionError("the server did not come up: " + output)


def _stop(proc) -> str:
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    return out


def test_serving_without_an_operator_says_how_to_create_the_first_one(site):
    cwd, env = site
    proc, login_page = _serve_until_up([], cwd, env, free_port())
    output = _stop(proc)
    assert "python app.py user add admin --role admin" in output
    assert 'id="login-no-operator"' in login_page and "python app.py user add admin --role admin" in login_page


def test_serving_without_a_public_address_says_how_to_set_it(site):
    cwd, env = site
    proc, _ = _serve_until_up([], cwd, env, free_port())
    output = _stop(proc)
    assert "[site] public_url" in output and "QR" in output


def test_the_demo_prints_its_operators_and_their_password(tmp_path):
    (tmp_path / "demo.toml").write_text(
        f'[demo]\ndatabase_url = "duckdb:///{tmp_path / "demo.duckdb"}"\nbase_port = {free_port_block(20)}\n'
        f'state_file = "{tmp_path / "field.json"}"\nhistory_days = 1\npoll_interval_s = 3600\n')
    proc, login_page = _serve_until_up(["--demo", "--config", str(tmp_path / "demo.toml")], tmp_path,
                                       {"DEMO_PASSWORD": "demo-pass-42"}, free_port())
    output = _stop(proc)
    assert ", ".join(ROLES) in output and "demo-pass-42" in output
    assert 'id="login-no-operator"' not in login_page
