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


# -- /notifications (the SMS outbox), sharing this module's runtime
def _dead_letter(rt, text_params=None):
    from notify.outbox import NOTIFICATION, queue_message
    from storage.transitions import transition
    now = rt.billing.now()
    with rt.engine.begin() as conn:
        nid = queue_message(conn, recipient="operator", phone="13900000009", language="en", kind="gateway_lost",
                            template="gateway_lost", params=text_params or {"gateway": "GW-X", "time": "now"},
                            now=now + dt.timedelta(days=365))          # not due: the sender leaves it alone
        transition(conn, NOTIFICATION, nid, "sending", attempts=6)
        transition(conn, NOTIFICATION, nid, "dead", last_error="HTTP 503 Service Unavailable")
    return nid


def _notification(rt, nid):
    from storage.schema import notification
    with rt.engine.connect() as conn:
        return conn.execute(sa.select(notification).where(notification.c.id == nid)).mappings().one()


def test_an_operator_sees_the_dead_letters_with_their_last_error(rt):
    nid = _dead_letter(rt, {"gateway": "GW-DEAD", "time": "now"})
    client = _client(rt, "operator")
    assert "GW-DEAD" in client.page("/notifications").text
    r = client.callback("notifications.list", {"notify-state.value": "dead"})
    rows = r.json()["response"]["notify-grid"]["rowData"]
    assert nid in [row["id"] for row in rows] and {row["state_code"] for row in rows} == {"dead"}
    assert next(row for row in rows if row["id"] == nid)["last_error"] == "HTTP 503 Service Unavailable"


def test_an_operator_resends_a_dead_letter_and_the_resend_is_logged(rt):
    nid = _dead_letter(rt)
    r = _client(rt, "operator").callback("notifications.resend", {
        "notify-resend.n_clicks": 1, "notify-grid.selectedRows": [{"id": nid}], "notify-state.value": ""})
    assert r.status == 200 and "1 message(s) back in the outbox." in json.dumps(r.json())
    assert _notification(rt, nid)["state"] in ("queued", "sending", "sent")
    with rt.engine.connect() as conn:
        logged = conn.execute(sa.select(audit_log.c.operator).where(
            audit_log.c.action == "notification.resend", audit_log.c.target == f"notification:{nid}")).all()
    assert [tuple(row) for row in logged] == [("operator",)]


def test_a_cashier_may_not_resend_a_dead_letter(rt):
    nid = _dead_letter(rt)
    r = _client(rt, "cashier").callback("notifications.resend", {
        "notify-resend.n_clicks": 1, "notify-grid.selectedRows": [{"id": nid}]})
    assert r.status == 403 and r.json()["permission"] == "notification.resend"
    assert _notification(rt, nid)["state"] == "dead"


def test_a_resend_of_nonsense_selections_writes_nothing(rt):
    nid = _dead_letter(rt)
    client = _client(rt, "operator")
    for selected in (None, "1", [{"id": "１"}], [{"id": 10**12}], [{"id": "x\x00"}], [7.5]):
        r = client.callback("notifications.resend", {"notify-resend.n_clicks": 1,
                                                      "notify-grid.selectedRows": selected})
        assert r.status == 200 and "Select one or more dead letters" in json.dumps(r.json()), selected
    assert _notification(rt, nid)["state"] == "dead"


# -- /alarms and /alarms/history (the alarm engine's pages), sharing this module's runtime
def _alarm_on(rt, nth: int, kind: str, level: AlarmLevel, code: str, params: dict, minutes: int = 0):
    """Open an alarm of `kind` on the nth billed meter, `minutes` after now; (alarm id, address, building id)."""
    from storage.schema import room
    with rt.engine.begin() as conn:
        mid, address, building_id = conn.execute(
            sa.select(meter.c.id, meter.c.address, room.c.building_id).join(room, room.c.id == meter.c.room_id)
            .where(meter.c.status == "opened").order_by(meter.c.id).offset(nth).limit(1)).one()
        aid = open_alarm(conn, kind, meter_subject(mid), level, code, params,
                         rt.billing.now() + dt.timedelta(minutes=minutes))
    return aid, address, building_id


def _grid(resp, grid="alarms-grid"):
    assert resp.status == 200, resp.text[:300]
    return resp.json()["response"][grid]["rowData"]


def test_an_operator_sees_open_alarms_newest_first_and_filters_them_by_kind_level_and_building(rt):
    tamper, tampered, building = _alarm_on(rt, 6, "tamper", AlarmLevel.CRITICAL, "tamper", {}, minutes=1)
    low, low_meter, _ = _alarm_on(rt, 7, "alarm1", AlarmLevel.WARNING, "balance_low",
                                  {"balance": "12.00", "amount": "20.00"}, minutes=2)
    client = _client(rt, "operator")
    page = client.page("/alarms").text
    assert "Open alarms" in page and tampered in page and low_meter in page
    rows = _grid(client.callback("alarms.list", {}))
    ids = [r["id"] for r in rows]
    assert ids.index(low) < ids.index(tamper), "newest first"
    assert next(r for r in rows if r["id"] == low)["message"] == (
        "Balance 12.00 yuan, at or below the alarm amount 20.00 yuan.")
    only_tamper = _grid(client.callback("alarms.list", {"alarms-kind.value": ["tamper"]}))
    assert tamper in [r["id"] for r in only_tamper] and {r["kind_code"] for r in only_tamper} == {"tamper"}
    warnings = _grid(client.callback("alarms.list", {"alarms-level.value": [1]}))
    assert low in [r["id"] for r in warnings] and tamper not in [r["id"] for r in warnings]
    in_building = _grid(client.callback("alarms.list", {"alarms-building.value": building}))
    assert tamper in [r["id"] for r in in_building]
    assert all(r["subject"] for r in in_building)
    nonsense = client.callback("alarms.list", {"alarms-kind.value": "tamper", "alarms-level.value": ["x", True],
                                               "alarms-building.value": "1; drop"})
    assert nonsense.status == 200, "filters that were never offered are dropped, not an error"


def _acks(rt, aid):
    with rt.engine.connect() as conn:
        return conn.execute(sa.select(audit_log).where(audit_log.c.action == "alarm.acknowledge",
                                                       audit_log.c.target == f"alarm:{aid}")).mappings().all()


def test_an_operator_acknowledges_an_alarm_with_a_note_and_the_operation_log_keeps_it(rt):
    aid, address, _ = _alarm_on(rt, 8, "tamper", AlarmLevel.CRITICAL, "tamper", {})
    client = _client(rt, "operator")
    before = client.callback("alarms.badge", {}).json()["response"]["nav-alarm-badge"]["children"]
    resp = client.callback("alarms.acknowledge", {"alarms-ack.n_clicks": 1, "alarms-grid.selectedRows": [{"id": aid}],
                                                  "alarms-note.value": "cover sealed again by the electrician"})
    assert resp.status == 200 and "1 alarm(s) acknowledged." in json.dumps(resp.json())
    row = next(r for r in resp.json()["response"]["alarms-grid"]["rowData"] if r["id"] == aid)
    assert row["acknowledged"].startswith("operator ") and row["acknowledged"].endswith("by the electrician")
    [logged] = _acks(rt, aid)
    assert logged["operator"] == "operator" and "cover sealed again" in logged["after"]
    after = client.callback("alarms.badge", {}).json()["response"]["nav-alarm-badge"]["children"]
    assert int(after or 0) == int(before or 0) - 1, "the navbar counts the alarms nobody acknowledged"
    again = client.callback("alarms.acknowledge", {"alarms-ack.n_clicks": 1,
                                                   "alarms-grid.selectedRows": [{"id": aid}]})
    assert "were acknowledged already" in json.dumps(again.json()) and len(_acks(rt, aid)) == 1


def test_a_bad_note_or_nonsense_selection_acknowledges_nothing(rt):
    aid, _address, _ = _alarm_on(rt, 9, "tamper", AlarmLevel.CRITICAL, "tamper", {})
    client = _client(rt, "operator")
    for selected, note in (([{"id": aid}], "x" * 501), ([{"id": aid}], "bell\x07"), ([{"id": aid}], 42),
                           (None, "ok"), ([{"id": "１"}], "ok"), ([7.5], "ok")):
        r = client.callback("alarms.acknowledge", {"alarms-ack.n_clicks": 1, "alarms-grid.selectedRows": selected,
                                                   "alarms-note.value": note})
        assert r.status == 200, (selected, note)
    assert _acks(rt, aid) == []


def test_a_role_without_alarm_ack_is_refused_and_the_refusal_is_logged(rt):
    aid, _address, _ = _alarm_on(rt, 10, "tamper", AlarmLevel.CRITICAL, "tamper", {})
    cashier = _client(rt, "cashier")
    assert "alarms-grid" not in cashier.page("/alarms").text
    assert "nav-alarm-badge" not in cashier.get("/").text
    r = cashier.callback("alarms.acknowledge", {"alarms-ack.n_clicks": 1, "alarms-grid.selectedRows": [{"id": aid}],
                                                "alarms-note.value": "seen"})
    assert r.status == 403 and r.json()["permission"] == "alarm.ack"
    assert _acks(rt, aid) == []
    with rt.engine.connect() as conn:
        denied = conn.execute(sa.select(audit_log.c.target).where(
            audit_log.c.action == "permission.denied", audit_log.c.operator == "cashier")).scalars().all()
    assert "callback alarms.acknowledge" in denied


def test_the_alarm_history_exports_the_alarms_asked_for_to_a_workbook(rt):
    import base64
    import io

    from openpyxl import load_workbook
    aid, address, _ = _alarm_on(rt, 11, "overload", AlarmLevel.CRITICAL, "overload", {"power": "7.20"})
    today = rt.billing.local(rt.billing.now()).date().isoformat()
    manager = _client(rt, "manager")
    assert "Alarm history" in manager.page("/alarms/history").text
    asked = {"alarms-h-search.n_clicks": 1, "alarms-h-from.date": today, "alarms-h-to.date": today,
             "alarms-h-meter.value": address, "alarms-h-kind.value": ["overload"]}
    found = manager.callback("alarms.history", asked).json()["response"]
    assert [r["id"] for r in found["alarms-h-grid"]["rowData"]] == [aid]
    export = manager.callback("alarms.history_export", {"alarms-h-export.n_clicks": 1,
                                                        "alarms-h-applied.data": found["alarms-h-applied"]["data"]})
    assert export.status == 200, export.text[:300]
    data = export.json()["response"]["alarms-h-download"]["data"]
    sheet = load_workbook(io.BytesIO(base64.b64decode(data["content"])))["Alarms"]
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][:4] == ("Opened", "Level", "Kind", "Subject") and len(rows) == 2
    assert rows[1][2:4] == ("Overload trip", address) and "7.20 kW" in rows[1][6]
    with rt.engine.connect() as conn:
        logged = conn.execute(sa.select(audit_log).where(audit_log.c.action == "alarm.export")).mappings().all()
    assert logged[-1]["operator"] == "manager" and address in logged[-1]["after"]


def test_the_alarm_history_refuses_a_filter_it_cannot_read_with_a_message(rt):
    manager = _client(rt, "manager")
    for values, said in (({"alarms-h-meter.value": "５０,５"}, "is not a meter number"),
                         ({"alarms-h-from.date": "2026-13-01"}, "is not a date"),
                         ({"alarms-h-from.date": "2026-03-02", "alarms-h-to.date": "2026-03-01"}, "comes before")):
        r = manager.callback("alarms.history", {"alarms-h-search.n_clicks": 1, **values})
        assert r.status == 200 and said in json.dumps(r.json(), ensure_ascii=False), values
        assert "alarms-h-grid" not in r.json()["response"]


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_an_area_alarm_names_its_area_in_the_list_and_the_export(rt, lang):
    """An alarm about a transformer area (the AVC's, a terminal's telesignal) names which area, not only "Area":
    in the open alarms' rows and in the history's workbook, in the operator's language."""
    import base64
    import io

    from openpyxl import load_workbook

    from storage.alarms import Subject
    from storage.schema import transformer_area
    kind = {"en": "avc_blocked", "zh": "avc_tap_stuck"}[lang]   # one open event of each per area and kind
    with rt.engine.begin() as conn:
        area_id, name = conn.execute(sa.select(transformer_area.c.id, transformer_area.c.name)
                                     .order_by(transformer_area.c.id.desc()).limit(1)).one()
        params = ({"area": name, "voltage": "190.1", "limit": "198.0"} if kind == "avc_blocked"
                  else {"area": name, "position": "3", "target": "4"})
        aid = open_alarm(conn, kind, Subject("area", area_id), AlarmLevel.CRITICAL,
                         "avc_undervoltage" if kind == "avc_blocked" else "avc_tap_stuck", params, rt.billing.now())
    said = t("alarms.subject_named.area", lang, name=name)
    assert name in said and said != name
    manager = _client(rt, "manager")
    if lang == "zh":
        manager.get("/lang/zh?next=/", follow=False, headers={"Sec-Fetch-Site": "none"})
    row = next(r for r in _grid(manager.callback("alarms.list", {})) if r["id"] == aid)
    assert row["subject"] == said
    today = rt.billing.local(rt.billing.now()).date().isoformat()
    found = manager.callback("alarms.history", {"alarms-h-search.n_clicks": 1, "alarms-h-from.date": today,
                                                "alarms-h-to.date": today, "alarms-h-kind.value": [kind]}).json()
    assert said in [r["subject"] for r in found["response"]["alarms-h-grid"]["rowData"]]
    export = manager.callback("alarms.history_export", {"alarms-h-export.n_clicks": 1,
                                                        "alarms-h-applied.data": found["response"]["alarms-h-applied"]["data"]})
    data = export.json()["response"]["alarms-h-download"]["data"]
    sheet = load_workbook(io.BytesIO(base64.b64decode(data["content"])))[t("alarms.sheet", lang)]
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][3] == t("alarms.col.subject", lang)
    assert said in [r[3] for r in rows[1:]]
