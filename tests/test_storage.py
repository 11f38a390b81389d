"""Storage on both engines: schema versions, topology, bulk readings, latest state."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pandas as pd
import pytest
import sqlalchemy as sa

from storage.engine import StorageError, dispose, open_engine
from storage.migrations import HEAD, MIGRATIONS, Migration, migrate
from storage.schema import meter, readings, schema_version
from storage.timeseries import (append_readings, meter_states, readings_between, unpack_status,
                                upsert_meter_state)
from storage.topology import insert_topology, known_topology, poll_targets

from tests.conftest import engine_url


def _rows(n=3, gateway="GW1", base_port=15020):
    return [dict(building="Building 1", floor=1, room=f"1-10{i}", area=None, gateway=gateway, host="127.0.0.1",
                 framing="socket", bus=1, port=base_port, unit=i + 1, profile="acrel-ddsy1352",
                 meter_address=f"2026112100{i + 1:02d}") for i in range(n)]


def test_fresh_database_is_created_at_the_head_version(any_engine):
    with any_engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar() == HEAD


def test_migrating_twice_changes_nothing(any_engine):
    assert migrate(any_engine) == HEAD
    with any_engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(schema_version)).scalar() == 1


@pytest.mark.parametrize("kind", ["duckdb", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_an_older_database_is_walked_forward_and_keeps_its_data(kind, tmp_path, fixed_now):
    engine = open_engine(engine_url(kind, tmp_path))
    try:
        migrate(engine)
        with engine.begin() as conn:
            insert_topology(conn, _rows(2), fixed_now)

        def add_note_column(conn):
            conn.execute(sa.text("ALTER TABLE meter ADD COLUMN note VARCHAR(50)"))
            conn.execute(sa.text("UPDATE meter SET note = 'migrated'"))

        later = MIGRATIONS + (Migration(HEAD + 1, "meter.note", add_note_column),)
        assert migrate(engine, later) == HEAD + 1
        with engine.connect() as conn:
            notes = conn.execute(sa.text("SELECT note FROM meter")).scalars().all()
            versions = conn.execute(sa.select(schema_version.c.version).order_by(schema_version.c.version)).scalars().all()
        assert notes == ["migrated", "migrated"]
        assert versions == list(range(1, HEAD + 2)) or versions == [HEAD, HEAD + 1]
    finally:
        dispose(engine)


def test_a_database_newer_than_the_program_is_refused(tmp_path):
    engine = open_engine(f"duckdb:///{tmp_path / 'x.duckdb'}")
    try:
        migrate(engine)
        with engine.begin() as conn:
            conn.execute(schema_version.insert().values(version=HEAD + 5, applied_at=dt.datetime(2030, 1, 1),
                                                        description="future"))
        with pytest.raises(StorageError, match="newer than this program"):
            migrate(engine)
    finally:
        dispose(engine)


def test_a_second_process_cannot_open_the_same_duckdb_file_for_writing(tmp_path):
    import subprocess, sys
    path = tmp_path / "locked.duckdb"
    engine = open_engine(f"duckdb:///{path}")
    try:
        migrate(engine)
        code = ("import sys; from storage.engine import open_engine, StorageError\n"
                f"try:\n    open_engine('duckdb:///{path}')\nexcept StorageError as e:\n    print(e); sys.exit(3)\n")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=".")
        assert out.returncode == 3, out.stderr
        assert "one writing process per file" in out.stdout
    finally:
        dispose(engine)


def test_topology_import_creates_buildings_rooms_gateways_buses_and_meters(any_engine, fixed_now):
    with any_engine.begin() as conn:
        created = insert_topology(conn, _rows(3), fixed_now)
    assert created == {"buildings": 1, "rooms": 3, "areas": 0, "gateways": 1, "buses": 1, "meters": 3}
    with any_engine.connect() as conn:
        targets = poll_targets(conn)
        known = known_topology(conn)
    assert [t["unit"] for t in targets] == [1, 2, 3]
    assert targets[0]["port"] == 15020 and targets[0]["framing"] == "socket"
    assert known.meters["202611210002"] == ("GW1", 1, 2)


def test_inserting_the_same_rows_again_creates_nothing(any_engine, fixed_now):
    with any_engine.begin() as conn:
        insert_topology(conn, _rows(3), fixed_now)
    with any_engine.begin() as conn:
        created = insert_topology(conn, _rows(3), fixed_now)
    assert created["meters"] == 0
    with any_engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(meter)).scalar() == 3


def _reading_frame(meter_ids, ts, balance_fen):
    return pd.DataFrame({
        "ts": [ts] * len(meter_ids), "meter_id": meter_ids,
        "voltage_a": [220.1] * len(meter_ids), "power_total": [0.5] * len(meter_ids),
        "energy_total": [100.25] * len(meter_ids), "purchase_count": [7] * len(meter_ids),
        "relay_closed": [True] * len(meter_ids), "balance_fen": balance_fen,
        "alarm1": [False] * len(meter_ids), "arrears": [True] + [None] * (len(meter_ids) - 1),
    })


def test_readings_are_appended_in_bulk_with_exact_money(any_engine, fixed_now):
    with any_engine.begin() as conn:
        insert_topology(conn, _rows(3), fixed_now)
        ids = [t["meter_id"] for t in poll_targets(conn)]
        n = append_readings(conn, _reading_frame(ids, fixed_now, [1001, 5, -250]))
    assert n == 3
    with any_engine.connect() as conn:
        got = conn.execute(sa.select(readings.c.meter_id, readings.c.balance, readings.c.relay_closed,
                                     readings.c.purchase_count, readings.c.voltage_b, readings.c.status)
                           .order_by(readings.c.meter_id)).all()
    assert [g.balance for g in got] == [Decimal("10.01"), Decimal("0.05"), Decimal("-2.50")]
    assert all(g.relay_closed is True and g.purchase_count == 7 and g.voltage_b is None for g in got)
    assert unpack_status(got[0].status)["arrears"] is True and unpack_status(got[1].status)["arrears"] is False


def test_energy_registers_keep_their_full_precision(any_engine, fixed_now):
    with any_engine.begin() as conn:
        insert_topology(conn, _rows(1), fixed_now)
        frame = _reading_frame([poll_targets(conn)[0]["meter_id"]], fixed_now, [0])
        frame["energy_total"] = 12345678.91
        append_readings(conn, frame)
    with any_engine.connect() as conn:
        assert conn.execute(sa.select(readings.c.energy_total)).scalar() == 12345678.91


def test_readings_between_returns_one_meters_rows_in_time_order(any_engine, fixed_now):
    with any_engine.begin() as conn:
        insert_topology(conn, _rows(2), fixed_now)
        ids = [t["meter_id"] for t in poll_targets(conn)]
        for k in (2, 0, 1):
            append_readings(conn, _reading_frame(ids, fixed_now + dt.timedelta(minutes=30 * k), [100, 200]))
    with any_engine.connect() as conn:
        df = readings_between(conn, ids[1], fixed_now, fixed_now + dt.timedelta(hours=1))
    assert list(df["ts"]) == [fixed_now, fixed_now + dt.timedelta(minutes=30)]
    assert list(df["balance"]) == [Decimal("2.00"), Decimal("2.00")]


def test_meter_state_keeps_one_latest_row_per_meter(any_engine, fixed_now):
    with any_engine.begin() as conn:
        insert_topology(conn, _rows(2), fixed_now)
        ids = [t["meter_id"] for t in poll_targets(conn)]
    for step, bal in ((0, [500, 600]), (1, [450, 590])):
        frame = _reading_frame(ids, fixed_now + dt.timedelta(minutes=step), bal)
        frame["comm_state"] = "online"
        frame["miss_count"] = 0
        frame["alarm_level"] = 0
        frame["last_error"] = ["tab\there, quote \" and newline\n", None]
        frame["updated_at"] = fixed_now + dt.timedelta(minutes=step)
        with any_engine.begin() as conn:
            upsert_meter_state(conn, frame)
    with any_engine.connect() as conn:
        states = meter_states(conn).sort_values("meter_id")
    assert len(states) == 2
    assert list(states["balance"]) == [Decimal("4.50"), Decimal("5.90")]
    assert states.iloc[0]["last_error"] == "tab\there, quote \" and newline\n"


def test_a_failed_cycle_write_leaves_no_readings_behind(any_engine, fixed_now):
    with any_engine.begin() as conn:
        insert_topology(conn, _rows(2), fixed_now)
        ids = [t["meter_id"] for t in poll_targets(conn)]
    with pytest.raises(RuntimeError):
        with any_engine.begin() as conn:
            append_readings(conn, _reading_frame(ids, fixed_now, [1, 2]))
            raise RuntimeError("crash between readings and meter_state")
    with any_engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(readings)).scalar() == 0


@pytest.mark.parametrize("kind", ["duckdb", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_a_first_release_database_gains_every_later_table(kind, tmp_path, fixed_now):
    """A site that installed version 1 upgrades in place: later tables appear, its meters stay."""
    from storage.schema import metadata
    engine = open_engine(engine_url(kind, tmp_path))
    try:
        v1_tables = [t for t in metadata.sorted_tables if t.info.get("since", 1) == 1]
        with engine.begin() as conn:
            metadata.create_all(conn, tables=v1_tables)
            conn.execute(schema_version.insert().values(version=1, applied_at=fixed_now, description="v1"))
            insert_topology(conn, _rows(2), fixed_now)
        assert migrate(engine) == HEAD
        with engine.connect() as conn:
            names = set(sa.inspect(conn).get_table_names())
            assert conn.execute(sa.select(sa.func.count()).select_from(meter)).scalar() == 2
        assert {t.name for t in metadata.sorted_tables} <= names
    finally:
        dispose(engine)


@pytest.mark.postgres
def test_postgresql_readings_have_a_time_index_old_databases_gain_too(tmp_path, fixed_now):
    from storage.schema import metadata
    engine = open_engine(engine_url("postgresql", tmp_path))
    try:
        with engine.begin() as conn:  # a database from before the index (version 3)
            metadata.create_all(conn)
            conn.execute(schema_version.insert().values(version=3, applied_at=fixed_now, description="v3"))
        migrate(engine)
        with engine.connect() as conn:
            names = set(conn.execute(sa.text("SELECT indexname FROM pg_indexes WHERE tablename = 'readings'")).scalars())
        assert "ix_readings_ts_brin" in names
    finally:
        dispose(engine)


@pytest.mark.postgres
def test_a_version_4_database_gains_purchase_count_epochs_with_its_rows_in_epoch_0(tmp_path, fixed_now):
    from storage.schema import metadata
    engine = open_engine(engine_url("postgresql", tmp_path))
    try:
        with engine.begin() as conn:  # a database from before count epochs (version 4)
            metadata.create_all(conn)
            for table in ("meter", "account_meter", "ledger_entry"):
                conn.execute(sa.text(f"ALTER TABLE {table} DROP COLUMN count_epoch"))
            conn.execute(schema_version.insert().values(version=4, applied_at=fixed_now, description="v4"))
            insert_topology(conn, _rows(2), fixed_now)
        assert migrate(engine) == HEAD
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count_epoch FROM meter")).scalars().all() == [0, 0]
    finally:
        dispose(engine)


def test_migrating_a_database_that_has_the_epoch_columns_already_changes_nothing(tmp_path, fixed_now):
    from storage.schema import metadata
    engine = open_engine(f"duckdb:///{tmp_path / 'v4.duckdb'}")
    try:
        with engine.begin() as conn:
            metadata.create_all(conn)
            conn.execute(schema_version.insert().values(version=4, applied_at=fixed_now, description="v4"))
        assert migrate(engine) == HEAD
    finally:
        dispose(engine)


@pytest.mark.parametrize("kind", ["duckdb", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_a_version_5_database_records_each_old_meter_already_carried_over_once(kind, tmp_path, fixed_now):
    """Migration 6: live transfers become retired_meter rows (the earliest when a meter's balance was carried
    twice, as entered transfers from invented numbers once allowed); a failed one frees its meter."""
    from storage.schema import account, ledger_entry, metadata, retired_meter
    engine = open_engine(engine_url(kind, tmp_path))
    try:
        later = {t.name for t in metadata.sorted_tables if t.info.get("since", 1) > 5}
        assert later >= {"retired_meter", "transfer_request"}
        with engine.begin() as conn:
            metadata.create_all(conn, tables=[t for t in metadata.sorted_tables if t.name not in later])
            conn.execute(schema_version.insert().values(version=5, applied_at=fixed_now, description="v5"))
            insert_topology(conn, _rows(2), fixed_now)
            ids = dict(conn.execute(sa.select(meter.c.address, meter.c.id)).all())
            conn.execute(account.insert().values(id=1, holder_name="x", status="open", opened_at=fixed_now,
                                                 operator="t"))
        onto, known = ids["202611210001"], ids["202611210002"]
        entries = [(1, "209901010001", "12.50", "confirmed"), (2, "209901010001", "99.00", "confirmed"),
                   (3, "202611210002", "5.00", "pending"), (4, "209901010009", "7.00", "failed")]
        with engine.begin() as conn:
            for n, old, amount, state in entries:
                conn.execute(ledger_entry.insert().values(
                    id=n, receipt_no=f"T20261121-{n:06d}", kind="transfer_in", amount=Decimal(amount), account_id=1,
                    meter_id=onto, purchase_count=n, operator="cashier", source="desk", created_at=fixed_now,
                    state=state, transfer_from=old))
        assert migrate(engine) == HEAD
        with engine.connect() as conn:
            rows = conn.execute(sa.select(retired_meter.c.address, retired_meter.c.meter_id, retired_meter.c.balance,
                                          retired_meter.c.ledger_entry_id, retired_meter.c.status)
                                .order_by(retired_meter.c.address)).all()
        assert [tuple(r) for r in rows] == [("202611210002", known, Decimal("5.00"), 3, "retired"),
                                            ("209901010001", None, Decimal("12.50"), 1, "retired")]
        with pytest.raises(sa.exc.DBAPIError):     # the key holds from now on
            with engine.begin() as conn:
                conn.execute(retired_meter.insert().values(
                    address="209901010001", count_epoch=0, status="retired", balance=Decimal("1.00"), entered=True,
                    account_id=1, new_meter_id=onto, recorded_at=fixed_now, operator="t"))
    finally:
        dispose(engine)


@pytest.mark.parametrize("kind", ["duckdb", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_a_version_7_database_gives_every_command_its_purpose_and_account(kind, tmp_path, fixed_now):
    """Migration 8: money commands take their entry's kind and account, closing and opening batches their
    purpose and account, settings and relay commands theirs, the rest "other"; from then on a command without a
    purpose is refused by the database."""
    from storage.schema import account, command, ledger_entry, metadata
    engine = open_engine(engine_url(kind, tmp_path))
    try:
        with engine.begin() as conn:
            metadata.create_all(conn)
            for column in ("purpose", "account_id"):
                conn.execute(sa.text(f"ALTER TABLE command DROP COLUMN {column}"))
            conn.execute(schema_version.insert().values(version=7, applied_at=fixed_now, description="v7"))
            insert_topology(conn, _rows(1), fixed_now)
            mid = conn.execute(sa.select(meter.c.id)).scalar_one()
            conn.execute(account.insert().values(id=1, holder_name="x", status="closing", opened_at=fixed_now,
                                                 operator="t"))
            for n, entry_kind, amount in ((1, "sale", "10.00"), (2, "closing_refund", "-3.00")):
                conn.execute(ledger_entry.insert().values(
                    id=n, receipt_no=f"S20261121-{n:06d}", kind=entry_kind, amount=Decimal(amount), account_id=1,
                    meter_id=mid, purchase_count=n, operator="t", source="desk", created_at=fixed_now))
        rows = [("recharge", None, 1), ("refund", "close-1", 2), ("trip", "close-1", None), ("tariff", "open-1", None),
                ("tariff", "tariff-0a1b2c", None), ("limits", None, None), ("keep_power", "b-1", None),
                ("time_sync", None, None), ("restore_prepaid", "add-1-5", None)]
        with engine.begin() as conn:
            for n, (command_kind, batch, entry) in enumerate(rows, start=1):
                conn.execute(sa.text(
                    "INSERT INTO command (id, meter_id, kind, payload, counter, state, attempts, batch_id, "
                    "ledger_entry_id, created_at) VALUES (:id, :m, :k, '{}', :n, 'acked', 1, :b, :e, :t)"),
                    {"id": n, "m": mid, "k": command_kind, "n": n, "b": batch, "e": entry, "t": fixed_now})
        assert migrate(engine) == HEAD
        with engine.connect() as conn:
            got = conn.execute(sa.select(command.c.purpose, command.c.account_id).order_by(command.c.id)).all()
        assert [tuple(r) for r in got] == [("sale", 1), ("closing", 1), ("closing", 1), ("opening", 1),
                                           ("tariff_push", None), ("limits_push", None), ("relay", None),
                                           ("other", None), ("opening", 1)]
        with pytest.raises(sa.exc.DBAPIError):
            with engine.begin() as conn:
                conn.execute(sa.text("INSERT INTO command (id, meter_id, kind, payload, state, attempts, created_at) "
                                     "VALUES (99, :m, 'trip', '{}', 'queued', 0, :t)"), {"m": mid, "t": fixed_now})
    finally:
        dispose(engine)


@pytest.mark.parametrize("kind", ["duckdb", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_a_version_15_database_keeps_each_meters_area_and_can_then_move_a_sold_meter(kind, tmp_path, fixed_now):
    """Migration 16: the area each meter had in meter.area_id moves to area_meter; PostgreSQL drops the column,
    DuckDB keeps it (read by nothing). A meter with an account is then moved on either engine."""
    from storage.grid_areas import meters_of_area, set_area_meters
    from storage.schema import account, account_meter, area_meter, metadata, transformer_area
    engine = open_engine(engine_url(kind, tmp_path))
    try:
        with engine.begin() as conn:     # as version 15 left it: the area in the meter's row
            metadata.create_all(conn, tables=[t for t in metadata.sorted_tables if t.name != "area_meter"])
            conn.execute(sa.text("ALTER TABLE meter ADD COLUMN area_id INTEGER"))
            conn.execute(schema_version.insert().values(version=15, applied_at=fixed_now, description="v15"))
            insert_topology(conn, _rows(3), fixed_now)
            a1, a2 = (conn.execute(transformer_area.insert().values(name=n).returning(transformer_area.c.id))
                      .scalar_one() for n in ("T1", "T2"))
            ids = dict(conn.execute(sa.select(meter.c.address, meter.c.id)).all())
            first, second, third = (ids[f"20261121000{i}"] for i in (1, 2, 3))
            conn.execute(sa.text("UPDATE meter SET area_id = :a WHERE id IN (:m1, :m2)"), {"a": a1, "m1": first,
                                                                                         "m2": second})
            conn.execute(account.insert().values(id=1, holder_name="x", status="open", opened_at=fixed_now,
                                                 operator="t"))
            conn.execute(account_meter.insert().values(account_id=1, meter_id=first, base_purchase_count=0,
                                                       added_at=fixed_now, operator="t"))
        assert migrate(engine) == HEAD
        with engine.connect() as conn:
            assert sorted(conn.execute(sa.select(area_meter.c.meter_id, area_meter.c.area_id)).all()) == \
                sorted([(first, a1), (second, a1)])
            kept = conn.execute(sa.text(
                "SELECT count(*) FROM information_schema.columns WHERE table_schema = current_schema() "
                "AND table_name = 'meter' AND column_name = 'area_id'")).scalar_one()
        assert kept == (1 if kind == "duckdb" else 0)
        assert migrate(engine) == HEAD                 # a second run changes nothing
        with engine.begin() as conn:                   # the sold meter moves; the third joins
            set_area_meters(conn, a2, [first, third])
        with engine.connect() as conn:
            assert (meters_of_area(conn, a1), meters_of_area(conn, a2)) == ([second], sorted([first, third]))
    finally:
        dispose(engine)
