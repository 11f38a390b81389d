"""State machines on both engines: a move its table does not allow is refused, names itself and writes nothing;
so is a move from a state another transaction changed between the read and the write."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import sqlalchemy as sa

from storage.engine import is_conflict, is_duckdb
from storage.outbox import insert_command
from storage.schema import account, command, ledger_entry
from storage.topology import insert_topology
from storage.transitions import ACCOUNT, COMMAND, LEDGER_ENTRY, TransitionRefused, transition

NOW = dt.datetime(2026, 11, 21, 8, 0, 0)


@pytest.fixture
def rows(any_engine):
    """One meter with an account, a pending sale and its queued RECHARGE: the ids of the three rows."""
    with any_engine.begin() as conn:
        insert_topology(conn, [dict(building="B1", floor=1, room="1-101", area=None, gateway="GW1", host="127.0.0.1",
                                    framing="socket", bus=1, port=15020, unit=1, profile="acrel-ddsy1352",
                                    meter_address="202611210001")], NOW)
        meter_id = conn.execute(sa.text("SELECT id FROM meter")).scalar_one()
        account_id = conn.execute(account.insert().values(holder_name="张三", status="open", opened_at=NOW,
                                                          operator="t").returning(account.c.id)).scalar_one()
        entry_id = conn.execute(ledger_entry.insert().values(
            receipt_no="S20261121-000001", kind="sale", amount=Decimal("10.00"), account_id=account_id,
            meter_id=meter_id, purchase_count=4, operator="cashier", source="desk", created_at=NOW,
            state="pending").returning(ledger_entry.c.id)).scalar_one()
        command_id = insert_command(conn, meter_id=meter_id, kind="recharge", purpose="sale",
                                    payload={"amount_fen": 1000}, counter=4, operator="cashier", now=NOW,
                                    ledger_entry_id=entry_id, account_id=account_id)
    return {"command": command_id, "ledger entry": entry_id, "account": account_id}


def _state(engine, machine, row_id):
    with engine.connect() as conn:
        table = machine.table
        return conn.execute(sa.select(table.c[machine.column]).where(table.c.id == row_id)).scalar_one()


def _walk(engine, machine, row_id, *states):
    with engine.begin() as conn:
        for state in states:
            transition(conn, machine, row_id, state)


@pytest.mark.parametrize("machine, path, refused", [
    (COMMAND, ("sent", "acked"), "queued"),
    (LEDGER_ENTRY, ("confirmed",), "failed"),
    (ACCOUNT, ("closing", "closed"), "open"),
], ids=["command acked -> queued", "ledger entry confirmed -> failed", "account closed -> open"])
def test_a_move_its_table_does_not_allow_is_refused_names_itself_and_writes_nothing(any_engine, rows, machine,
                                                                                     path, refused):
    row_id = rows[machine.name]
    _walk(any_engine, machine, row_id, *path)
    with pytest.raises(TransitionRefused) as err:
        with any_engine.begin() as conn:
            transition(conn, machine, row_id, refused, **({"error": "x"} if machine is COMMAND else {}))
    assert (err.value.machine, err.value.row_id, err.value.from_state, err.value.to_state) == (
        machine.name, row_id, path[-1], refused)
    assert f"{path[-1]} -> {refused}" in str(err.value)
    assert _state(any_engine, machine, row_id) == path[-1]
    if machine is COMMAND:
        with any_engine.connect() as conn:
            assert conn.execute(sa.select(command.c.error).where(command.c.id == row_id)).scalar_one() is None


def test_a_sent_money_command_is_never_expired(any_engine, rows):
    _walk(any_engine, COMMAND, rows["command"], "sent")
    with pytest.raises(TransitionRefused, match="resent until the meter answers"):
        _walk(any_engine, COMMAND, rows["command"], "expired")
    assert _state(any_engine, COMMAND, rows["command"]) == "sent"


def test_a_move_from_a_state_changed_between_read_and_write_is_refused(any_engine, rows):
    """The second cashier's transaction began before the first one confirmed the entry and committed: PostgreSQL
    locks and reads the row again (confirmed: refused by the table), DuckDB's snapshot still says pending and the
    write conflicts. Either way the entry stays confirmed and nothing of the second move is written."""
    entry_id = rows["ledger entry"]
    with any_engine.connect() as late:
        tx = late.begin()
        late.execute(sa.select(ledger_entry.c.id).where(ledger_entry.c.id == entry_id)).all()  # its snapshot
        with any_engine.begin() as first:
            transition(first, LEDGER_ENTRY, entry_id, "confirmed", confirmed_at=NOW)
        if is_duckdb(any_engine):
            with pytest.raises(sa.exc.DBAPIError) as err:
                transition(late, LEDGER_ENTRY, entry_id, "failed", failure="COUNT_MISMATCH")
            assert is_conflict(err.value)
        else:
            with pytest.raises(TransitionRefused) as err:
                transition(late, LEDGER_ENTRY, entry_id, "failed", failure="COUNT_MISMATCH")
            assert (err.value.from_state, err.value.to_state) == ("confirmed", "failed")
        tx.rollback()
    with any_engine.connect() as conn:
        state, failure = conn.execute(sa.select(ledger_entry.c.state, ledger_entry.c.failure)
                                      .where(ledger_entry.c.id == entry_id)).one()
    assert (state, failure) == ("confirmed", None)


def test_a_command_without_a_known_purpose_is_refused_before_anything_is_written(any_engine, rows):
    with any_engine.begin() as conn:
        meter_id = conn.execute(sa.select(command.c.meter_id)).scalar_one()
        for purpose in ("", "other", "close-7"):
            with pytest.raises(ValueError, match="known purpose"):
                insert_command(conn, meter_id=meter_id, kind="trip", purpose=purpose, payload={}, counter=1,
                               operator="t", now=NOW)
    with any_engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(command)).scalar_one() == 1
