"""The command line and the serving process as a user runs them: subprocesses, real sockets, real files."""
from __future__ import annotations

import csv
import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from core.config import Config, DemoConfig
from serve.runtime import Runtime
from simulator.field import run_field_in_thread
from simulator.site import BusSpec, GatewaySpec, MeterSpec, SiteSpec
from tests.conftest import free_port, free_port_block

ROOT = Path(__file__).resolve().parent.parent
KM_HEX = "0123456789ABCDEFFEDCBA98765432100F1E2D3C4B5A6978"


def run_app(*args, cwd, env_extra=None, timeout=60):
    env = {**os.environ, "WATTLINE_CONFIG": "", **(env_extra or {})}
    return subprocess.run([sys.executable, str(ROOT / "app.py"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def one_meter(tmp_path):
    port = free_port_block(1)
    site = SiteSpec("cli", [GatewaySpec("GW", buses=[BusSpec(1, port, meters=[
        MeterSpec(address="202611210001", unit=5, profile="acrel-ddsy1352", building="B", room="101",
                  balance_fen=1000, purchase_count=7, command_seq=2)])])])
    with run_field_in_thread(site) as ft:
        yield ft.field, port


def test_read_meter_prints_canonical_values_as_json(one_meter, tmp_path):
    field, port = one_meter
    out = run_app("read-meter", "--host", "127.0.0.1", "--port", str(port), "--unit", "5",
                  "--profile", "acrel-ddsy1352", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    values = json.loads(out.stdout)
    assert values["meter_type"] == 7 and values["purchase_count"] == 7
    assert values["balance"] == "10.00" and 180 < values["voltage_a"] < 260


def test_read_meter_of_a_unit_nobody_answers_fails_with_a_clear_message(one_meter, tmp_path):
    field, port = one_meter
    out = run_app("read-meter", "--host", "127.0.0.1", "--port", str(port), "--unit", "9", "--timeout", "0.3",
                  "--profile", "acrel-ddsy1352", cwd=tmp_path)
    assert out.returncode == 2 and "error:" in out.stderr and "Traceback" not in out.stderr


def test_send_command_recharges_and_a_resend_is_already_applied(one_meter, tmp_path):
    field, port = one_meter
    args = ["send-command", "--host", "127.0.0.1", "--port", str(port), "--unit", "5", "--profile",
            "acrel-ddsy1352", "--meter-address", "202611210001", "--key-hex", KM_HEX,
            "recharge", "--amount", "50.00", "--count", "8"]
    first = run_app(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    printed = json.loads(first.stdout)
    assert (printed["result"], printed["answered_command"], printed["answered_counter"]) == ("APPLIED", "RECHARGE", 8)
    assert field.meter("202611210001").balance_fen >= 5900  # 10.00 + 50.00, less what it used since
    again = run_app(*args, cwd=tmp_path)
    assert json.loads(again.stdout)["result"] == "ALREADY_APPLIED"
    assert field.meter("202611210001").purchase_count == 8


def test_send_command_relay_trip_opens_the_relay(one_meter, tmp_path):
    field, port = one_meter
    out = run_app("send-command", "--host", "127.0.0.1", "--port", str(port), "--unit", "5", "--profile",
                  "acrel-ddsy1352", "--meter-address", "202611210001", "--key-hex", KM_HEX,
                  "relay", "--action", "trip", "--seq", "3", cwd=tmp_path)
    assert json.loads(out.stdout)["result"] == "APPLIED", out.stderr
    assert field.meter("202611210001").relay_closed is False


def test_send_command_with_a_bad_amount_sends_nothing(one_meter, tmp_path):
    field, port = one_meter
    out = run_app("send-command", "--host", "127.0.0.1", "--port", str(port), "--unit", "5", "--profile",
                  "acrel-ddsy1352", "--meter-address", "202611210001", "--key-hex", KM_HEX,
                  "recharge", "--amount", "12.345", "--count", "8", cwd=tmp_path)
    assert out.returncode == 2 and "error:" in out.stderr
    assert field.meter("202611210001").purchase_count == 7


def test_import_with_a_bad_row_names_it_and_writes_nothing(tmp_path):
    path = tmp_path / "site.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["building", "room", "gateway", "host", "framing", "bus", "port", "unit", "profile",
                    "meter_address"])
        w.writerow(["B1", "101", "GW", "127.0.0.1", "socket", "1", "15020", "1", "acrel-ddsy1352", "202611210001"])
        w.writerow(["B1", "102", "GW", "127.0.0.1", "socket", "1", "15020", "2", "acrel-ddsy1352", "2026"])
    env = {"WATTLINE_DATABASE_URL": f"duckdb:///{tmp_path / 'site.duckdb'}"}
    out = run_app("import", str(path), cwd=tmp_path, env_extra=env)
    assert out.returncode == 2
    assert "row 3, column meter_address" in out.stderr and "nothing was imported" in out.stderr
    with path.open("a", newline="") as f:
        pass
    rows = path.read_text().splitlines()
    path.write_text("\n".join(rows[:2]) + "\n")
    ok = run_app("import", str(path), cwd=tmp_path, env_extra=env)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["meters"] == 1


def test_init_db_creates_the_schema_and_reports_its_version(tmp_path):
    out = run_app("init-db", cwd=tmp_path, env_extra={"WATTLINE_DATABASE_URL": f"duckdb:///{tmp_path / 'x.duckdb'}"})
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["schema_version"] >= 1 and (tmp_path / "x.duckdb").exists()


def test_simulate_keeps_meter_registers_across_a_restart(tmp_path):
    base = free_port_block(20)
    (tmp_path / "data").mkdir()
    key_file = tmp_path / "data" / "master.key"
    key_file.write_text(KM_HEX + "\n")
    key_file.chmod(0o600)
    cmd = ["simulate", "--site", "demo", "--base-port", str(base), "--state-file", str(tmp_path / "field.json")]

    def start():
        p = subprocess.Popen([sys.executable, str(ROOT / "app.py"), *cmd], cwd=tmp_path, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, env={**os.environ, "WATTLINE_CONFIG": ""})
        deadline = time.time() + 60
        while time.time() < deadline:
            probe = run_app("read-meter", "--host", "127.0.0.1", "--port", str(base), "--unit", "1",
                            "--timeout", "0.5", "--profile", "acrel-ddsy1352", cwd=tmp_path)
            if probe.returncode == 0:
                return p, json.loads(probe.stdout)
            time.sleep(0.5)
        p.kill()
        raise AssertionError("simulator did not answer: " + (p.stdout.read() if p.stdout else ""))

    proc, before = start()
    try:
        address = None
        from simulator.site import demo_site
        address = demo_site(base_port=base).gateways[0].buses[0].meters[0].address
        sent = run_app("send-command", "--host", "127.0.0.1", "--port", str(base), "--unit", "1", "--profile",
                       "acrel-ddsy1352", "--meter-address", address, "--key-hex", KM_HEX, "recharge",
                       "--amount", "12.34", "--count", str(before["purchase_count"] + 1), cwd=tmp_path)
        assert json.loads(sent.stdout)["result"] == "APPLIED", sent.stdout + sent.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    proc, after = start()
    try:
        assert after["purchase_count"] == before["purchase_count"] + 1
        assert after["energy_total"] >= before["energy_total"]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


@pytest.fixture
def demo_runtime(tmp_path):
    cfg = Config(
        database_url=f"duckdb:///{tmp_path / 'site.duckdb'}", port=free_port(),
        master_key_file=str(tmp_path / "master.key"),
        demo=DemoConfig(database_url=f"duckdb:///{tmp_path / 'demo.duckdb'}", base_port=free_port_block(20),
                        state_file=str(tmp_path / "field.json"), history_days=2),
    )
    rt = Runtime(cfg, demo=True).start()
    rt.serve_in_thread()
    yield rt
    rt.stop()


def _get(rt, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{rt.cfg.port}{path}", timeout=10) as r:
        return r.status, r.read().decode()


def test_healthz_reports_the_demo_site_after_its_first_poll(demo_runtime):
    deadline = time.time() + 60
    while time.time() < deadline:
        status, body = _get(demo_runtime, "/healthz")
        h = json.loads(body)
        if h["last_poll"]:
            break
        time.sleep(0.5)
    assert status == 200 and h["status"] == "ok" and h["database"]["engine"] == "duckdb"
    assert h["meters"] == 488 and h["meters_online"] == 488 and h["meters_lost"] == 0
    assert h["scheduler_running"] is True and h["last_poll"]["duration_s"] > 0
    assert [j["name"] for j in h["jobs"]][:4] == ["poll", "state_poll", "reconcile", "tariff_push"]
    assert all(j["next_run"] for j in h["jobs"]) and h["jobs"][0]["interval_s"] == demo_runtime.cfg.poll_interval_s
    assert demo_runtime.demo_info.backfill_rows == 488 * 2 * 48


def test_the_status_page_speaks_english_and_chinese(demo_runtime):
    from dashboard.components.status import status_page
    from dashboard.i18n import t
    h = demo_runtime.health()
    en, zh = str(status_page(h, "en", dt.UTC)), str(status_page(h, "zh", dt.UTC))
    assert t("status.meters", "en") in en and t("status.meters", "zh") in zh
    assert _get(demo_runtime, "/lang/zh?next=/status")[0] == 200


def _rendered_dom(url: str, tmp_path) -> str:
    """The page as Chromium renders it, after Dash's scripts ran, signed in as the demo admin
    (no network but loopback)."""
    import shutil
    from urllib.parse import urlsplit

    from playwright.sync_api import sync_playwright
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        if os.environ.get("CI"):
            pytest.fail("CI must run browser tests: chromium is not installed (.ci/run installs it)")
        pytest.skip("no chromium on this machine")
    parts = urlsplit(url)
    base = f"{parts.scheme}://{parts.netloc}"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        page = browser.new_page()
        page.goto(base + "/login")
        page.fill("input[name=username]", "admin")
        page.fill("input[name=password]", os.environ.get("DEMO_PASSWORD", "wattline-demo"))
        page.click("#login-submit")
        page.wait_for_load_state("networkidle")
        page.goto(url)
        page.wait_for_load_state("networkidle")
        try:
            page.wait_for_selector("#status-page", timeout=15000)
        except Exception:  # the assertions show what rendered instead
            pass
        dom = page.content()
        browser.close()
    return dom


@pytest.mark.parametrize("lang, label", [("en", "Meters"), ("zh", "电表数")])
def test_the_status_page_renders_each_language_in_chromium(demo_runtime, tmp_path, lang, label):
    deadline = time.time() + 60
    while time.time() < deadline and not demo_runtime.health()["last_poll"]:
        time.sleep(0.3)
    dom = _rendered_dom(f"http://127.0.0.1:{demo_runtime.cfg.port}/lang/{lang}?next=/status", tmp_path)
    assert 'id="status-page"' in dom, dom[-2000:]
    assert label in dom
    assert re.search(r'id="status-meters"[^>]*>488<', dom)
