"""Notifications: customers told once per episode in their language, quiet hours, operators' digests, the outbox's
retries, dead letters and resend, and the http backend against a real local server."""
from __future__ import annotations

import datetime as dt
import http.server
import json
import threading
from dataclasses import replace

import pytest
import sqlalchemy as sa

from billing.alarm_engine import AlarmEngine
from billing.settings import alarm_amounts
from collectors.dispatch import SettledCommand
from core.events import EventBus
from core.config import ConfigError, SmsConfig, load_config, site_zone
from notify.backends import HttpBackend, LogBackend, SendFailed, SendResult, build_backend
from notify.outbox import Outbox, messages, quiet_until, state_counts
from notify.rules import NotificationRules
from storage.alarms import AlarmChange, AlarmChanges
from storage.schema import (account, account_meter, audit_log, building, bus, command, gateway, ledger_entry, meter,
                            meter_state, notification, room)

ZONE = site_zone("+08:00")
NOON = dt.datetime(2026, 11, 21, 4, 0)        # 12:00 at the site
NIGHT = dt.datetime(2026, 11, 21, 15, 0)      # 23:00 at the site; the quiet hours end at 07:00 = 23:00 UTC
SMS = SmsConfig(quiet_hours="22:00-07:00", alarm_numbers=("13900000001",))


def _site(conn, meters: int = 1, buildings: tuple[str, ...] = ("Block A",), language: str | None = "en"):
    """Buildings with one room and one meter each per index, gateway GW-1; the first `meters` rooms' meters each
    on an open account with a phone. Returns the meter ids."""
    gw = conn.execute(gateway.insert().values(name="GW-1", host="127.0.0.1", framing="socket")
                      .returning(gateway.c.id)).scalar()
    bid = conn.execute(bus.insert().values(gateway_id=gw, bus_no=1, port=1502).returning(bus.c.id)).scalar()
    ids = []
    for b_name in buildings:
        b = conn.execute(building.insert().values(name=b_name).returning(building.c.id)).scalar()
        for i in range(meters):
            r = conn.execute(room.insert().values(building_id=b, floor=1, name=f"{101 + i}")
                             .returning(room.c.id)).scalar()
            m = conn.execute(meter.insert().values(address=f"{len(ids) + 1:012d}", bus_id=bid, unit=len(ids) + 1,
                                                   profile="p", room_id=r, status="opened", created_at=NOON)
                             .returning(meter.c.id)).scalar()
            a = conn.execute(account.insert().values(room_id=r, holder_name="Li", phone="138 0013 8000",
                                                     phone_digits="13800138000", opened_at=NOON, operator="t",
                                                     language=language).returning(account.c.id)).scalar()
            conn.execute(account_meter.insert().values(account_id=a, meter_id=m, base_purchase_count=0,
                                                       added_at=NOON, operator="t"))
            ids.append(m)
    return ids


class Recorder:
    """A backend that keeps what it was given and fails as told (a list of SendFailed or None per call)."""
    name = "test"

    def __init__(self, failures=()):
        self.sent, self.failures = [], list(failures)

    def send(self, number, text):
        failure = self.failures.pop(0) if self.failures else None
        if failure is not None:
            raise failure
        self.sent.append((number, text))
        return SendResult(reference=str(len(self.sent)))

    def close(self):
        pass


class Clock:
    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now


_ids = iter(range(1, 10**6))


def _opened(at, *events):
    """AlarmChanges as the alarm engine publishes them: (kind, subject kind, subject id[, balance])."""
    return AlarmChanges(at, tuple(AlarmChange(next(_ids), e[0], 1, e[1], e[2], True, None,
                                              (("balance", e[3]),) if len(e) > 3 else ()) for e in events))


def _balance(engine, mid, yuan, at):
    with engine.begin() as conn:
        conn.execute(meter_state.delete().where(meter_state.c.meter_id == mid))
        conn.execute(meter_state.insert().values(meter_id=mid, ts=at, balance=yuan, comm_state="online",
                                                 updated_at=at))


def test_a_balance_crossing_alarm_1_three_times_in_an_hour_sends_one_message(any_engine):
    """Through the real alarm engine: each time the balance goes above the alarm 1 amount by more than its
    margin the event closes, and the next fall opens a new one; the holder hears of the first only."""
    with any_engine.begin() as conn:
        [mid] = _site(conn)
        alarm1, alarm2 = alarm_amounts(conn)
    events = EventBus()
    alarms = AlarmEngine(any_engine, events)
    NotificationRules(any_engine, SMS, ZONE).subscribe(events)
    low, high = alarm1 - 1, alarm1 + 5            # above alarm 2, and the close margin (1.00) cleared
    assert low > alarm2
    for minute in (0, 20, 40):
        at = NOON + dt.timedelta(minutes=minute)
        _balance(any_engine, mid, low, at)
        assert alarms.evaluate(at).opened
        _balance(any_engine, mid, high, at + dt.timedelta(minutes=10))
        assert alarms.evaluate(at + dt.timedelta(minutes=10)).closed
    with any_engine.begin() as conn:
        [msg] = messages(conn)
    assert (msg["kind"], msg["phone"], msg["recipient"]) == ("alarm1", "138 0013 8000", "customer")
    assert msg["text"] == (f"Block A 101: your electricity balance is ¥{low:,.2f} (11-21 12:00), at or below the "
                           "first alarm amount. Please buy electricity soon.")
    # two hours later a new fall is a new episode, and a new message
    _balance(any_engine, mid, low, NOON + dt.timedelta(hours=3))
    alarms.evaluate(NOON + dt.timedelta(hours=3))
    with any_engine.begin() as conn:
        assert [m["kind"] for m in messages(conn)] == ["alarm1", "alarm1"]


def test_an_alarm_announced_twice_is_told_once(any_engine):
    with any_engine.begin() as conn:
        [mid] = _site(conn)
    rules = NotificationRules(any_engine, SMS, ZONE, rearm=dt.timedelta(0))
    opened = _opened(NOON, ("alarm2", "meter", mid, "3.00"))
    rules.on_alarm(opened)
    rules.on_alarm(opened)
    with any_engine.begin() as conn:
        assert [m["kind"] for m in messages(conn)] == ["alarm2"]


def test_a_balance_falling_through_both_alarms_at_once_tells_only_the_more_severe(any_engine):
    with any_engine.begin() as conn:
        [mid] = _site(conn)
    rules = NotificationRules(any_engine, SMS, ZONE)
    rules.on_alarm(_opened(NOON, ("alarm1", "meter", mid, "4.00"), ("alarm2", "meter", mid, "4.00")))
    with any_engine.begin() as conn:
        assert [(m["kind"], "¥4.00" in m["text"]) for m in messages(conn)] == [("alarm2", True)]


def test_quiet_hours_hold_a_customer_message_and_let_arrears_through(any_engine):
    with any_engine.begin() as conn:
        mid, other = _site(conn, meters=2)
    clock = Clock(NIGHT)
    rules = NotificationRules(any_engine, SMS, ZONE, clock=clock)
    rules.on_alarm(_opened(NIGHT, ("alarm1", "meter", mid, "90.00"), ("arrears", "meter", other, "0.00")))
    backend = Recorder()
    outbox = Outbox(any_engine, backend, zone=ZONE, quiet=SMS.quiet_window(), clock=clock)
    outbox.send_due()
    assert [text.split(":")[1].strip()[:18] for _, text in backend.sent] == ["your balance has r"]
    with any_engine.begin() as conn:
        held = messages(conn, state="queued")
    assert [(m["kind"], m["held"], m["next_attempt_at"]) for m in held] == [("alarm1", True, dt.datetime(2026, 11, 21, 23))]
    clock.now = dt.datetime(2026, 11, 21, 23, 0, 1)          # 07:00:01 at the site
    assert outbox.send_due().sent == 1
    assert "first alarm amount" in backend.sent[-1][1]


def test_quiet_hours_pass_midnight_and_end_in_the_site_time_zone():
    window = SmsConfig(quiet_hours="22:00-07:00").quiet_window()
    assert quiet_until(dt.datetime(2026, 11, 21, 13, 59), window, ZONE) is None         # 21:59
    assert quiet_until(dt.datetime(2026, 11, 21, 14, 0), window, ZONE) == dt.datetime(2026, 11, 21, 23)
    assert quiet_until(dt.datetime(2026, 11, 21, 20, 0), window, ZONE) == dt.datetime(2026, 11, 21, 23)  # 04:00
    assert quiet_until(dt.datetime(2026, 11, 21, 23, 0), window, ZONE) is None          # 07:00
    assert quiet_until(NIGHT, None, ZONE) is None


def test_many_meters_lost_in_one_cycle_send_one_digest_per_building(any_engine):
    with any_engine.begin() as conn:
        ids = _site(conn, meters=12, buildings=("Block A", "Block B"))
    rules = NotificationRules(any_engine, replace(SMS, alarm_numbers=("13900000001", "13900000002")), ZONE)
    rules.on_alarm(_opened(NOON, *(("lost_contact", "meter", m) for m in ids)))
    with any_engine.begin() as conn:
        texts = sorted((m["phone"], m["text"]) for m in messages(conn))
    assert texts == [(phone, f"Wattline报警 11-21 12:00：{b}有12块电表失联。")  # the operators' language: zh
                     for phone in ("13900000001", "13900000002") for b in ("Block A", "Block B")]


def test_a_lost_gateway_and_a_tamper_bit_reach_the_alarm_numbers_once(any_engine):
    with any_engine.begin() as conn:
        [mid] = _site(conn)
        gw = conn.execute(sa.select(gateway.c.id)).scalar()
    rules = NotificationRules(any_engine, SMS, ZONE)
    opened = _opened(NOON, ("lost_contact", "gateway", gw), ("tamper", "meter", mid), ("lost_contact", "meter", mid))
    rules.on_alarm(opened)
    rules.on_alarm(opened)                                     # announced again: the same episodes
    with any_engine.begin() as conn:
        kinds = sorted((m["kind"], m["recipient"]) for m in messages(conn))
    assert kinds == [("gateway_lost", "operator"), ("tamper", "operator")]


def test_failed_commands_of_one_batch_send_the_operators_one_message(any_engine):
    with any_engine.begin() as conn:
        ids = _site(conn, meters=3)
        cids = [conn.execute(command.insert().values(meter_id=m, kind="trip", payload="{}", state="failed",
                                                     batch_id="B-7", purpose="relay", created_at=NOON)
                             .returning(command.c.id)).scalar() for m in ids]
    rules = NotificationRules(any_engine, SMS, ZONE)
    for cid, mid in zip(cids, ids):
        rules.on_settled(SettledCommand(cid, mid, "trip", "relay", "failed", None, "no answer", NOON))
    with any_engine.begin() as conn:
        [msg] = messages(conn)
    assert msg["text"] == "Wattline报警 11-21 12:00：批次B-7中电表000000000001的命令失败（no answer），其余见批次页面。"


def test_operators_read_their_alarms_in_the_configured_language(any_engine):
    with any_engine.begin() as conn:
        _site(conn)
        gw = conn.execute(sa.select(gateway.c.id)).scalar()
    rules = NotificationRules(any_engine, replace(SMS, operator_language="en"), ZONE)
    rules.on_alarm(_opened(NOON, ("lost_contact", "gateway", gw)))
    with any_engine.begin() as conn:
        [msg] = messages(conn)
    assert (msg["language"], msg["text"]) == (
        "en", "Wattline alarm 11-21 12:00: gateway GW-1 lost contact (none of its buses answers).")


def _sale(conn, mid, at):
    acc = conn.execute(sa.select(account_meter.c.account_id).where(account_meter.c.meter_id == mid)).scalar()
    entry = conn.execute(ledger_entry.insert().values(
        receipt_no="S2026112100000001", kind="sale", amount="50.00", account_id=acc, meter_id=mid, purchase_count=1,
        operator="cashier", source="desk", created_at=at, state="confirmed", confirmed_at=at, balance_after="150.00")
        .returning(ledger_entry.c.id)).scalar()
    return conn.execute(command.insert().values(meter_id=mid, kind="recharge", payload="{}", state="acked",
                                                purpose="sale", ledger_entry_id=entry, created_at=at)
                        .returning(command.c.id)).scalar()


def test_a_confirmed_sale_sends_a_purchase_confirmation_in_the_accounts_language(any_engine):
    with any_engine.begin() as conn:
        [mid] = _site(conn, language="zh")
        cid = _sale(conn, mid, NOON)
    rules = NotificationRules(any_engine, SMS, ZONE)
    event = SettledCommand(cid, mid, "recharge", "sale", "acked", "APPLIED", None, NOON)
    rules.on_settled(event)
    rules.on_settled(event)                                    # a second delivery of the event: one message
    with any_engine.begin() as conn:
        [msg] = messages(conn)
    assert msg["text"] == "Block A 101：购电¥50.00已于11-21 12:00到账，剩余金额¥150.00，收据号S2026112100000001。"


def test_no_purchase_confirmation_when_the_site_turned_it_off(any_engine):
    with any_engine.begin() as conn:
        [mid] = _site(conn)
        cid = _sale(conn, mid, NOON)
    rules = NotificationRules(any_engine, replace(SMS, purchase_confirmation=False), ZONE)
    rules.on_settled(SettledCommand(cid, mid, "recharge", "sale", "acked", "APPLIED", None, NOON))
    with any_engine.begin() as conn:
        assert messages(conn) == []


def _one_message(engine, rules_clock=NOON):
    with engine.begin() as conn:
        [mid] = _site(conn)
    NotificationRules(engine, SMS, ZONE).on_alarm(_opened(rules_clock, ("alarm2", "meter", mid, "40.00")))


def test_a_failing_backend_is_retried_with_backoff_and_the_message_dies_after_the_last_attempt(any_engine):
    _one_message(any_engine)
    clock = Clock(NOON)
    backend = Recorder([SendFailed("HTTP 500", retryable=True)] * 3)
    outbox = Outbox(any_engine, backend, zone=ZONE, clock=clock, retry_delays_s=(30, 120), max_attempts=3)
    waits = []
    for _ in range(3):
        outbox.send_due()
        with any_engine.begin() as conn:
            [msg] = messages(conn)
        waits.append((msg["state"], msg["attempts"], (msg["next_attempt_at"] - clock.now).total_seconds()))
        assert outbox.send_due().sent == 0                     # not due again before its next attempt
        clock.now = msg["next_attempt_at"]
    assert waits[:2] == [("failed", 1, 30.0), ("failed", 2, 120.0)]
    assert (msg["state"], msg["attempts"], msg["last_error"]) == ("dead", 3, "HTTP 500")
    assert backend.sent == []


def test_a_refused_message_dies_at_once_and_an_operator_resends_it(any_engine):
    _one_message(any_engine)
    backend = Recorder([SendFailed("+CMS ERROR: 21 short message transfer rejected", retryable=False)])
    outbox = Outbox(any_engine, backend, zone=ZONE, clock=Clock(NOON))
    assert outbox.send_due().dead == 1
    with any_engine.begin() as conn:
        [dead] = messages(conn, state="dead")
    assert outbox.resend(dead["id"], "operator", source="127.0.0.1")
    assert not outbox.resend(dead["id"], "operator")           # queued now: nothing to resend
    assert outbox.send_due().sent == 1
    with any_engine.begin() as conn:
        assert state_counts(conn)["sent"] == 1
        log = conn.execute(sa.select(audit_log).where(audit_log.c.action == "notification.resend")).mappings().all()
    assert [(r["operator"], r["target"]) for r in log] == [("operator", f"notification:{dead['id']}")]
    assert json.loads(log[0]["before"])["state"] == "dead"


def test_a_message_left_sending_by_a_crash_is_sent_again(any_engine):
    _one_message(any_engine)
    with any_engine.begin() as conn:
        conn.execute(notification.update().values(state="sending", attempts=1))
    outbox = Outbox(any_engine, Recorder(), zone=ZONE, clock=Clock(NOON))
    assert outbox.recover() == 1
    assert outbox.send_due().sent == 1


# -- the http backend against a real local server
class _Gateway(http.server.BaseHTTPRequestHandler):
    answers: list = []          # per request: a status code, or "never" (no answer within the client's timeout)
    seen: list = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.seen.append((self.headers["Authorization"], json.loads(body)))
        answer = self.answers.pop(0) if self.answers else 200
        if answer == "never":
            threading.Event().wait(1.0)
            return
        self.send_response(answer)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(json.dumps({"id": f"m{len(self.seen)}"}).encode())

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def http_gateway():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Gateway)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/sms"
    server.shutdown()
    server.server_close()


def test_the_http_backend_posts_json_with_the_bearer_token(http_gateway):
    _Gateway.answers, _Gateway.seen = [200], []
    result = HttpBackend(http_gateway, "s3cret", timeout_s=2).send("13800138000", "余额不足")
    assert result.reference == "m1"
    assert _Gateway.seen == [("Bearer s3cret", {"to": "13800138000", "text": "余额不足"})]


def test_the_http_backend_retries_a_500_then_delivers(duck_engine, http_gateway):
    _Gateway.answers, _Gateway.seen = [500, 200], []
    _one_message(duck_engine)
    clock = Clock(NOON)
    outbox = Outbox(duck_engine, HttpBackend(http_gateway, "t", timeout_s=2), zone=ZONE, clock=clock)
    first = outbox.send_due()
    assert (first.failed, first.errors) == (1, ["HTTP 500 Internal Server Error"])
    clock.now = NOON + dt.timedelta(seconds=30)
    assert outbox.send_due().sent == 1
    with duck_engine.begin() as conn:
        [msg] = messages(conn)
    assert (msg["state"], msg["attempts"], msg["reference"], msg["backend"]) == ("sent", 2, "m2", "http")


def test_the_http_backend_calls_a_silent_server_a_retryable_timeout(http_gateway):
    _Gateway.answers = ["never"]
    with pytest.raises(SendFailed) as failed:
        HttpBackend(http_gateway, timeout_s=0.2).send("13800138000", "x")
    assert failed.value.retryable and "no answer" in failed.value.reason


def test_the_http_backend_does_not_retry_a_refusal(http_gateway):
    _Gateway.answers = [400]
    with pytest.raises(SendFailed) as failed:
        HttpBackend(http_gateway, timeout_s=2).send("13800138000", "x")
    assert not failed.value.retryable


def test_the_log_backend_writes_one_line_per_message(tmp_path):
    backend = build_backend(SmsConfig(), tmp_path)
    assert isinstance(backend, LogBackend)
    backend.send("13800138000", "剩余金额不足")
    assert json.loads((tmp_path / "sms.log").read_text(encoding="utf-8"))["text"] == "剩余金额不足"


# -- configuration
def _config(tmp_path, text):
    path = tmp_path / "site.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path, env={})


def test_the_sms_section_of_the_issue_is_read_as_written(tmp_path):
    cfg = _config(tmp_path, '[sms]\nbackend = "http"\nurl = "https://sms.example.com/send"\ntoken = "t"\n'
                            'quiet_hours = "22:00-07:00"\nalarm_numbers = ["13900000001"]\n'
                            'purchase_confirmation = false\ndevice = "/dev/ttyUSB0"\nbaud = 115200\npin = ""\n'
                            'operator_language = "en"\n')
    assert (cfg.sms.backend, cfg.sms.alarm_numbers, cfg.sms.purchase_confirmation) == ("http", ("13900000001",), False)
    assert cfg.sms.operator_language == "en" and _config(tmp_path, "").sms.operator_language == "zh"
    assert cfg.sms.quiet_window() == (dt.time(22), dt.time(7))


@pytest.mark.parametrize("text, words", [
    ('backend = "carrier-pigeon"', "sms.backend"),
    ('backend = "http"', "needs sms.url"),
    ('quiet_hours = "22:00-25:00"', "sms.quiet_hours"),
    ('quiet_hours = "late"', "sms.quiet_hours"),
    ('alarm_numbers = "13900000001"', "list of phone numbers"),
    ('alarm_numbers = ["call me"]', "not a phone number"),
    ('baud = "fast"', "sms.baud"),
    ('purchase_confirmation = "yes"', "true or false"),
    ('pin = "12ab"', "sms.pin"),
    ('operator_language = "fr"', "sms.operator_language"),
    ('operator_language = 1', "sms.operator_language"),
    ('colour = "red"', "unknown key sms.colour"),
])
def test_a_wrong_sms_setting_is_refused_with_a_message_that_names_it(tmp_path, text, words):
    with pytest.raises(ConfigError, match=words.replace(".", r"\.")):
        _config(tmp_path, f"[sms]\n{text}\n")
