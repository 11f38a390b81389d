"""The alarm service (storage.alarms): one open event per subject and kind held by the database, idempotent opening,
acknowledgement in the operation log, messages in both languages, lost contact through real poll cycles, and the
old alarm_event rows carried over by migration 8."""
from __future__ import annotations

import datetime as dt
import json

import pytest
import sqlalchemy as sa

from core.text import LANGUAGES, t
from storage import alarms
from storage.alarms import AlarmLevel, Subject, acknowledge, close_alarm, message_text, open_alarm, open_alarms
from storage.engine import dispose, open_engine
from storage.migrations import HEAD, migrate
from storage.schema import alarm_event, audit_log, meter, metadata, schema_version
from storage.topology import insert_topology

from tests.conftest import engine_url
from tests.test_collector_cycle import field_and_service  # noqa: F401  (the fixture: a small field on loopback)

GATEWAY = Subject("gateway", 7)


def _lost(conn, subject, now, error="timeout"):
    return open_alarm(conn, alarms.LOST_CONTACT, subject, AlarmLevel.WARNING, "meter_lost", {"error": error}, now)


def test_a_second_open_event_of_one_subject_and_kind_is_refused_by_the_database(any_engine, fixed_now):
    with any_engine.begin() as conn:
        _lost(conn, alarms.meter(1), fixed_now)
    with pytest.raises(sa.exc.IntegrityError):
        with any_engine.begin() as conn:   # a producer writing around the service, as two racing ones would
            conn.execute(alarm_event.insert().values(
                kind="lost_contact", level=1, subject_kind="meter", subject_id=1, open_key="meter:1:lost_contact",
                opened_at=fixed_now, updated_at=fixed_now, message_code="meter_lost"))
    with any_engine.begin() as conn:       # another subject, or another kind of the same one, is its own event
        _lost(conn, alarms.meter(2), fixed_now)
        open_alarm(conn, alarms.COMMAND_FAILED, alarms.meter(1), AlarmLevel.WARNING, "command_failed",
                   {"command": 5, "command_kind": "trip", "result": "BAD_FRAME"}, fixed_now)
        assert len(open_alarms(conn)) == 3


def test_opening_an_open_alarm_again_returns_it_with_the_new_level_and_message(any_engine, fixed_now):
    later = fixed_now + dt.timedelta(minutes=5)
    with any_engine.begin() as conn:
        first = _lost(conn, GATEWAY, fixed_now, "timeout")
    with any_engine.begin() as conn:
        again = open_alarm(conn, alarms.LOST_CONTACT, GATEWAY, AlarmLevel.CRITICAL, "gateway_lost",
                           {"gateway": "GW-A", "buses": 2}, later)
        [event] = open_alarms(conn, subject=GATEWAY)
    assert again == first == event["id"]
    assert (event["level"], event["opened_at"], event["updated_at"]) == (AlarmLevel.CRITICAL, fixed_now, later)
    assert message_text(event, "en") == "Gateway GW-A: none of its 2 bus(es) answer."


def test_opening_many_at_once_is_idempotent_too(any_engine, fixed_now):
    later = fixed_now + dt.timedelta(minutes=1)
    events = [(alarms.meter(m), "meter_lost", {"error": "timeout"}) for m in (1, 2, 3)]
    with any_engine.begin() as conn:
        alarms.open_alarms_of(conn, alarms.LOST_CONTACT, AlarmLevel.WARNING, events[:2], fixed_now)
    with any_engine.begin() as conn:
        alarms.open_alarms_of(conn, alarms.LOST_CONTACT, AlarmLevel.CRITICAL,
                              [(s, code, {"error": "refused"}) for s, code, _ in events], later)
        rows = open_alarms(conn, alarms.LOST_CONTACT)
    assert [(r["subject_id"], r["opened_at"], r["level"], r["message_params"]["error"]) for r in rows] == [
        (1, fixed_now, AlarmLevel.CRITICAL, "refused"), (2, fixed_now, AlarmLevel.CRITICAL, "refused"),
        (3, later, AlarmLevel.CRITICAL, "refused")]


def test_a_closed_alarm_opens_again_as_a_new_event_also_within_one_transaction(any_engine, fixed_now):
    later = fixed_now + dt.timedelta(minutes=1)
    with any_engine.begin() as conn:
        first = _lost(conn, alarms.meter(3), fixed_now)
    with any_engine.begin() as conn:
        assert close_alarm(conn, alarms.LOST_CONTACT, alarms.meter(3), later) == 1
        assert close_alarm(conn, alarms.LOST_CONTACT, alarms.meter(3), later) == 0
    with any_engine.begin() as conn:
        second = _lost(conn, alarms.meter(3), later)
    with any_engine.begin() as conn:       # DuckDB once refused a key freed and taken in one transaction
        alarms.close_alarm_by_id(conn, second, later)
        third = _lost(conn, alarms.meter(3), later)
    with any_engine.connect() as conn:
        rows = conn.execute(sa.select(alarm_event.c.id, alarm_event.c.closed_at).order_by(alarm_event.c.id)).all()
        assert [a["id"] for a in open_alarms(conn, alarms.LOST_CONTACT, alarms.meter(3))] == [third]
    assert len({first, second, third}) == 3
    assert [(i, c) for i, c in rows] == [(first, later), (second, later), (third, None)]


def test_acknowledging_records_who_and_when_and_is_in_the_operation_log(any_engine, fixed_now):
    seen = fixed_now + dt.timedelta(minutes=2)
    with any_engine.begin() as conn:
        aid = _lost(conn, alarms.meter(4), fixed_now)
        assert acknowledge(conn, aid, "operator1", seen, source="10.0.0.9")
        assert not acknowledge(conn, aid, "operator2", seen), "acknowledged once, by the first"
        assert not acknowledge(conn, aid + 1000, "operator2", seen)
    with any_engine.connect() as conn:
        event = alarms.alarm_by_id(conn, aid)
        logged = conn.execute(sa.select(audit_log).where(audit_log.c.action == "alarm.acknowledge")).mappings().all()
    assert (event["acknowledged_by"], event["acknowledged_at"], event["closed_at"]) == ("operator1", seen, None)
    assert len(logged) == 1 and logged[0]["operator"] == "operator1" and logged[0]["target"] == f"alarm:{aid}"
    assert logged[0]["source"] == "10.0.0.9" and json.loads(logged[0]["before"])["subject"] == "meter:4"


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_alarm_message_and_kind_reads_in_both_languages(lang):
    for code, names in alarms.MESSAGE_PARAMS.items():
        text = message_text({"message_code": code, "message_params": {n: f"<{n}>" for n in names}}, lang)
        assert all(f"<{n}>" in text for n in names) and "{" not in text, (code, text)
    for kind in alarms.KINDS:
        assert alarms.kind_text(kind, lang) == t(f"alarm.kind.{kind}", lang)
    assert {alarms.level_text(level, lang) for level in AlarmLevel} == {
        t(f"alarm.level.{n}", lang) for n in ("info", "warning", "critical")}
    bus = message_text({"message_code": "bus_lost", "message_params": json.dumps(
        {"gateway": "GW-A", "bus": 2, "endpoint": "10.0.0.5:4002"})}, lang)
    assert bus == {"en": "Bus 2 of gateway GW-A (10.0.0.5:4002) does not answer.",
                   "zh": "网关 GW-A 的总线 2（10.0.0.5:4002）无应答。"}[lang]


def test_an_unknown_kind_subject_or_message_is_refused_before_anything_is_written(any_engine, fixed_now):
    with any_engine.begin() as conn:
        for kind, subject, code in (("flood", alarms.meter(1), "meter_lost"), ("lost_contact", ("room", 1), "text"),
                                    ("lost_contact", alarms.meter(1), "no_such_code")):
            with pytest.raises(ValueError):
                open_alarm(conn, kind, subject, AlarmLevel.INFO, code, {}, fixed_now)
        assert open_alarms(conn) == []


def _field_alarms(engine, subject_kind):
    with engine.connect() as conn:
        return open_alarms(conn, alarms.LOST_CONTACT, subject_kind=subject_kind)


def test_a_meter_that_stops_answering_opens_lost_contact_and_closes_it_when_it_answers(field_and_service):  # noqa: F811
    field, service, engine = field_and_service
    service.run_cycle()
    field.set_meter_offline("202611210002", True)
    for _ in range(3):
        service.run_cycle()
    [event] = _field_alarms(engine, "meter")
    with engine.connect() as conn:
        lost_id = conn.execute(sa.select(meter.c.id).where(meter.c.address == "202611210002")).scalar_one()
    assert event["subject_id"] == lost_id and event["level"] == AlarmLevel.WARNING
    assert event["message_code"] == "meter_lost" and event["message_params"]["error"]
    assert message_text(event, "zh").startswith("电表不再应答：")
    service.run_cycle()                    # still lost: the same event, not a second one
    assert [a["id"] for a in _field_alarms(engine, "meter")] == [event["id"]]
    field.set_meter_offline("202611210002", False)
    service.run_cycle()
    assert _field_alarms(engine, "meter") == []


def test_a_gateway_that_stops_answering_opens_lost_contact_of_its_bus_and_itself_until_it_answers(
        field_and_service):  # noqa: F811
    field, service, engine = field_and_service
    service.run_cycle()
    field.set_gateway_down("GW-B", True)
    service.run_cycle()
    service.run_cycle()
    [bus] = _field_alarms(engine, "bus")
    [gateway] = _field_alarms(engine, "gateway")
    assert message_text(bus, "en").startswith("Bus 1 of gateway GW-B (127.0.0.1:")
    assert gateway["level"] == AlarmLevel.CRITICAL
    assert message_text(gateway, "en") == "Gateway GW-B: none of its 1 bus(es) answer."
    field.set_gateway_down("GW-B", False)
    service.run_cycle()
    assert _field_alarms(engine, "bus") == [] and _field_alarms(engine, "gateway") == []


@pytest.mark.parametrize("kind", ["duckdb", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_a_version_7_database_carries_its_alarms_over_to_subjects_and_message_codes(kind, tmp_path, fixed_now):
    """Migration 8 rebuilds alarm_event: meter_id becomes the subject, levels stay, the free-text message becomes
    the parameter of code "text"; of two events open for one meter and kind the earlier stays open."""
    engine = open_engine(engine_url(kind, tmp_path))
    later = fixed_now + dt.timedelta(hours=1)
    try:
        with engine.begin() as conn:
            metadata.create_all(conn, tables=[t for t in metadata.sorted_tables if t.name != "alarm_event"])
            conn.execute(sa.text("CREATE SEQUENCE alarm_event_id_seq"))
            conn.execute(sa.text(  # the table as versions 1 to 7 had it
                "CREATE TABLE alarm_event (id INTEGER PRIMARY KEY, meter_id INTEGER REFERENCES meter (id), "
                "kind VARCHAR(30) NOT NULL, level INTEGER NOT NULL, opened_at TIMESTAMP NOT NULL, "
                "closed_at TIMESTAMP, message VARCHAR(300))"))
            conn.execute(schema_version.insert().values(version=7, applied_at=fixed_now, description="v7"))
            insert_topology(conn, [dict(building="A", floor=1, room="A-101", area=None, gateway="GW-A",
                                        host="127.0.0.1", framing="socket", bus=1, port=4001, unit=1,
                                        profile="acrel-ddsy1352", meter_address="202611210001")], fixed_now)
            mid = conn.execute(sa.select(meter.c.id)).scalar_one()
            for meter_id, kind_, level, opened, closed, message in (
                    (mid, "lost_contact", 1, fixed_now, later, "timeout"),
                    (mid, "count_mismatch", 2, fixed_now, None, "meter 202611210001 reports purchase count 9"),
                    (mid, "count_mismatch", 2, later, None, "reported twice"),
                    (None, "balance_mismatch", 2, later, None, None)):
                conn.execute(sa.text(
                    "INSERT INTO alarm_event (id, meter_id, kind, level, opened_at, closed_at, message) VALUES "
                    "(nextval('alarm_event_id_seq'), :m, :k, :l, :o, :c, :msg)"),
                    {"m": meter_id, "k": kind_, "l": level, "o": opened, "c": closed, "msg": message})
        assert migrate(engine) == HEAD
        assert migrate(engine) == HEAD
        with engine.begin() as conn:
            rows = [alarms.alarm_by_id(conn, i) for i in (1, 2, 3, 4)]
            newer = _lost(conn, alarms.meter(mid), later)   # the id sequence goes on after the carried rows
    finally:
        dispose(engine)
    assert [(r["subject_kind"], r["subject_id"], r["kind"], r["level"], r["closed_at"]) for r in rows] == [
        ("meter", mid, "lost_contact", AlarmLevel.WARNING, later),
        ("meter", mid, "count_mismatch", AlarmLevel.CRITICAL, None),
        ("meter", mid, "count_mismatch", AlarmLevel.CRITICAL, later),
        ("site", alarms.SITE, "balance_mismatch", AlarmLevel.CRITICAL, None)]
    assert message_text(rows[1], "zh") == "meter 202611210001 reports purchase count 9"
    assert [r["open_key"] for r in rows] == [None, f"meter:{mid}:count_mismatch", None, "site:0:balance_mismatch"]
    assert newer > 4


def test_the_alarm_list_names_an_area_and_its_building_and_a_work_orders_number(any_engine, fixed_now):
    """storage.alarm_queries, one statement on each engine: an area's alarm carries the area's name and building
    (so the building filter finds it), a work order's its number; a meter's alarm is unchanged."""
    import pandas as pd

    from collectors.topology_import import import_topology
    from storage.alarm_queries import AlarmQuery, list_alarms
    from storage.schema import building, transformer_area, work_order, work_order_type
    base = {"building": "Block T", "area": "Area T", "gateway": "GW-T", "host": "127.0.0.1", "framing": "socket",
            "bus": "1", "port": "15991"}
    import_topology(any_engine, [{**base, "unit": "1", "profile": "eastron-sdm630", "meter_address": "202611300001",
                                  "area_role": "master", "ct_ratio": "1", "nominal_voltage": "220"},
                                 {**base, "unit": "3", "profile": "acrel-ddsy1352", "meter_address": "202611300011"}],
                    {"acrel-ddsy1352", "eastron-sdm630"}, fixed_now)
    with any_engine.begin() as conn:
        area_id = conn.execute(sa.select(transformer_area.c.id)).scalar_one()
        block = conn.execute(sa.select(building.c.id)).scalar_one()
        meter_id = conn.execute(sa.select(meter.c.id).where(meter.c.address == "202611300011")).scalar_one()
        conn.execute(work_order_type.insert().values(key="repair", name_en="Repair", name_zh="维修"))
        order_id = conn.execute(work_order.insert().values(
            number="WO20261121-000001", type="repair", priority="normal", source="alarm", description="door",
            created_by="test", created_at=fixed_now, updated_at=fixed_now, due_at=fixed_now)
            .returning(work_order.c.id)).scalar_one()
        area_alarm = open_alarm(conn, alarms.AVC_BLOCKED, Subject("area", area_id), AlarmLevel.CRITICAL,
                                "avc_undervoltage", {"area": "Area T", "voltage": "190", "limit": "198"}, fixed_now)
        order_alarm = open_alarm(conn, alarms.AVC_BLOCKED, Subject("work_order", order_id), AlarmLevel.WARNING,
                                 "text", {"text": "late"}, fixed_now)
        meter_alarm = open_alarm(conn, "tamper", alarms.meter(meter_id), AlarmLevel.CRITICAL, "tamper", {}, fixed_now)
    with any_engine.connect() as conn:
        frame, more = list_alarms(conn, AlarmQuery(open_only=True))
        in_block, _ = list_alarms(conn, AlarmQuery(open_only=True, building_id=block))
    rows = {int(r["id"]): r for r in frame.to_dict("records")}
    assert (rows[area_alarm]["area"], rows[area_alarm]["building"]) == ("Area T", "Block T") and not more
    assert rows[order_alarm]["work_order"] == "WO20261121-000001"
    assert rows[meter_alarm]["meter"] == "202611300011" and pd.isna(rows[meter_alarm]["area"])
    assert set(in_block["id"].astype(int)) == {area_alarm}   # the meter has no room here, so no building
