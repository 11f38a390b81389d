"""The reconciliation page: open mismatch alarms, and the shadow-billing report of meters more than 1 % off."""
from __future__ import annotations

import datetime as dt
import json
import os
from decimal import Decimal

import pytest
import sqlalchemy as sa

from billing.shadow import shadow_billing
from core.formatting import format_money
from dashboard.i18n import t
from storage.alarms import AlarmLevel, meter as meter_subject, open_alarm
from storage.schema import alarm_event, audit_log, meter, readings
from tests.webclient import WebClient, base_url, start_demo_runtime

PASSWORD = os.environ.get("DEMO_PASSWORD", "wattline-demo")


@pytest.fixture(scope="module")
def rt(tmp_path_factory):
    runtime = start_demo_runtime(tmp_path_factory.mktemp("recon"))
    yield runtime
    runtime.stop()


def _client(rt, who):
    c = WebClient(base_url(rt))
    c.login(who, PASSWORD)
    return c


def _a_billed_meter(rt):
    with rt.engine.connect() as conn:
        return conn.execute(sa.select(meter.c.id, meter.c.address).where(meter.c.status == "opened")
                            .order_by(meter.c.id).limit(1)).one()


def test_an_open_balance_mismatch_is_listed_for_an_analyst(rt):
    # (a count mismatch closes itself once meter and ledger agree; a balance rise waits for an operator)
    mid, address = _a_billed_meter(rt)
    with rt.engine.begin() as conn:
        open_alarm(conn, "balance_mismatch", meter_subject(mid), AlarmLevel.CRITICAL, "text",
                   {"text": "balance rose 20.00 without a purchase"}, rt.billing.now())
    page = _client(rt, "analyst").page("/reconciliation").text
    assert "Balance rise without a purchase" in page and address in page
    assert "balance rose 20.00 without a purchase" in page


def test_a_role_without_report_view_may_not_open_the_report(rt):
    page = _client(rt, "operator").page("/reconciliation").text
    assert "Shadow billing" not in page and "recon-shadow-grid" not in page


def _shadow_day(rt, mid, day):
    """The shadow-billing figures of one meter for one local day, straight from billing.shadow."""
    start = dt.datetime.combine(day, dt.time()).replace(tzinfo=rt.billing.tz).astimezone(dt.UTC).replace(tzinfo=None)
    days = shadow_billing(rt.engine, start, start + dt.timedelta(days=1), rt.billing.tz, [mid])
    return next(s for s in days if s.day == day)


def test_shadow_billing_lists_a_meter_whose_balance_fell_more_than_its_use(rt):
    mid, address = _a_billed_meter(rt)
    # Yesterday (site time), a day the backfill wrote whole: a poll the running site makes meanwhile adds to today
    # only, so the day's last reading stays the one changed here.
    today = dt.datetime.now(dt.UTC).astimezone(rt.billing.tz).date()
    day = today - dt.timedelta(days=1)
    day_end = dt.datetime.combine(today, dt.time()).replace(tzinfo=rt.billing.tz).astimezone(dt.UTC).replace(tzinfo=None)
    with rt.engine.connect() as conn:
        last = conn.execute(sa.select(sa.func.max(readings.c.ts))
                            .where(readings.c.meter_id == mid, readings.c.ts < day_end)).scalar()
    # The day's own rounding (registers are 0.01 kWh, money 0.01 yuan) leaves a cent or so either way.
    before = _shadow_day(rt, mid, day).difference
    with rt.engine.begin() as conn:
        # The meter deducted 5 yuan more than its readings and tariff explain in the last half hour.
        conn.execute(readings.update().where(readings.c.meter_id == mid, readings.c.ts == last)
                     .values(balance=readings.c.balance - 5))
    assert _shadow_day(rt, mid, day).difference == before + Decimal("5.00")
    resp = _client(rt, "analyst").callback("reconciliation.shadow", {
        "recon-first-day.date": day.isoformat(), "recon-last-day.date": day.isoformat()})
    assert resp.status == 200, resp.text
    rows = resp.json()["response"]["recon-shadow-grid"]["rowData"]
    flagged = {r["meter_address"]: r for r in rows}
    assert address in flagged, sorted(flagged)
    # the page shows that day, 5.00 more deducted than expected (plus the day's own rounding)
    assert flagged[address]["worst_day"] == day.isoformat()
    assert flagged[address]["difference"] == format_money(before + Decimal("5.00"), sign=True)


def test_a_reversed_date_range_is_refused_with_a_message(rt):
    resp = _client(rt, "analyst").callback("reconciliation.shadow", {
        "recon-first-day.date": "2026-11-20", "recon-last-day.date": "2026-11-01"})
    assert "first day on or before the last day" in resp.json()["response"]["recon-message"]["children"]


def _open_alarm_on(rt, nth: int) -> tuple[int, str]:
    """Open a balance-mismatch alarm on the nth billed meter; (alarm id, meter address)."""
    with rt.engine.begin() as conn:
        mid, address = conn.execute(sa.select(meter.c.id, meter.c.address).where(meter.c.status == "opened")
                                    .order_by(meter.c.id).offset(nth).limit(1)).one()
        aid = open_alarm(conn, "balance_mismatch", meter_subject(mid), AlarmLevel.CRITICAL, "balance_mismatch",
                         {"meter": address, "rise": "9.00", "credited": "0"}, rt.billing.now())
    return aid, address


def _alarm_open(rt, aid: int) -> bool:
    with rt.engine.connect() as conn:
        return conn.execute(sa.select(alarm_event.c.closed_at).where(alarm_event.c.id == aid)).scalar_one() is None


def _resolutions(rt) -> list[dict]:
    with rt.engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(audit_log).where(audit_log.c.action == "billing.alarm_resolve")
                                              .order_by(audit_log.c.id)).mappings()]


def _resolve(client, aid, address, note):
    return client.callback("reconciliation.resolve", {"recon-resolve.n_clicks": 1, "recon-note.value": note,
                                                      "recon-alarms.selectedRows": [{"id": aid,
                                                                                     "meter_address": address}]})


def test_a_manager_resolves_an_alarm_with_a_note_and_it_leaves_the_list(rt):
    aid, address = _open_alarm_on(rt, 3)
    manager = _client(rt, "manager")
    assert "recon-resolve" in manager.page("/reconciliation").text
    resp = _resolve(manager, aid, address, "foreign recharge card found; meter sealed again")
    assert resp.status == 200, resp.text
    body = resp.json()["response"]
    assert f"meter {address} resolved" in json.dumps(body["recon-resolved"])
    assert aid not in [r["id"] for r in body["recon-alarms"]["rowData"]]
    assert not _alarm_open(rt, aid)
    logged = _resolutions(rt)[-1]
    assert logged["operator"] == "manager" and "meter sealed again" in str(logged["after"])
    assert logged["target"] == f"meter:{address}"
    count = len(_resolutions(rt))
    again = _resolve(manager, aid, address, "twice")        # someone else resolved it meanwhile
    assert len(_resolutions(rt)) == count
    assert f"Alarm {aid} is not open" in json.dumps(again.json()["response"]["recon-resolved"])


def test_an_alarm_is_not_resolved_without_a_note(rt):
    aid, address = _open_alarm_on(rt, 4)
    before = len(_resolutions(rt))
    resp = _resolve(_client(rt, "manager"), aid, address, "   ")
    assert t("billing.error.reason_required", "en") in json.dumps(resp.json()["response"]["recon-resolved"])
    assert _alarm_open(rt, aid) and len(_resolutions(rt)) == before


def test_an_analyst_sees_alarms_but_may_not_resolve_them(rt):
    aid, address = _open_alarm_on(rt, 5)
    analyst = _client(rt, "analyst")
    page = analyst.page("/reconciliation").text
    assert address in page and "recon-resolve" not in page
    before = len(_resolutions(rt))
    assert _resolve(analyst, aid, address, "looked").status == 403
    assert _alarm_open(rt, aid) and len(_resolutions(rt)) == before
