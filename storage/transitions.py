"""State machines as tables of allowed transitions (commands, ledger entries, accounts, work orders) and the one helper that
moves a row: it reads the current state in the caller's transaction and refuses what the table does not allow.

transition() reads the row (SELECT ... FOR UPDATE on PostgreSQL, so a concurrent mover waits and then sees the
new state; DuckDB's optimistic concurrency makes the later of two writers fail with a conflict, which the
callers' retry loops turn into a fresh read), checks the move against the machine and updates with
`WHERE id = :id AND <state> = :current`. A move the table does not allow, a row that is gone, or a row whose
state changed in between raises TransitionRefused and writes nothing.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

import sqlalchemy as sa

from storage.engine import is_duckdb
from storage.schema import account, command, ledger_entry, work_order

# Money commands carry a purchase count the meter applies once; a sent one is resent until the meter answers.
MONEY_KINDS = ("recharge", "refund")


class TransitionRefused(Exception):
    """A move its machine does not allow (or a row that changed or vanished meanwhile); nothing was written."""

    def __init__(self, machine: str, row_id: int, from_state: str | None, to_state: str, why: str = "not allowed"):
        self.machine, self.row_id, self.from_state, self.to_state, self.why = machine, row_id, from_state, to_state, why
        super().__init__(f"{machine} {row_id}: {from_state or 'missing'} -> {to_state} refused ({why})")


@dataclass(frozen=True)
class Machine:
    """A table's state column and the moves allowed from each state. A guard narrows one move by the row's
    other columns: (test(row) -> bool, why it is refused)."""
    name: str
    table: sa.Table
    transitions: Mapping[str, frozenset[str]]
    column: str = "state"
    guards: Mapping[tuple[str, str], tuple[Callable[[Mapping], bool], str]] = field(default_factory=dict)

    def allows(self, old: str | None, new: str) -> bool:
        return new in self.transitions.get(old or "", frozenset())


def transition(conn: sa.Connection, machine: Machine, row_id: int, to_state: str, **values) -> str:
    """Move one row to `to_state` (and set `values`) in the caller's transaction; returns the state it left.
    Raises TransitionRefused when the machine does not allow the move from the row's current state."""
    table, col = machine.table, machine.table.c[machine.column]
    q = sa.select(table).where(table.c.id == row_id)
    if not is_duckdb(conn.engine):
        q = q.with_for_update()
    row = conn.execute(q).mappings().first()
    if row is None:
        raise TransitionRefused(machine.name, row_id, None, to_state, "no such row")
    current = row[machine.column]
    if not machine.allows(current, to_state):
        raise TransitionRefused(machine.name, row_id, current, to_state)
    guard = machine.guards.get((current, to_state))
    if guard is not None and not guard[0](row):
        raise TransitionRefused(machine.name, row_id, current, to_state, guard[1])
    done = conn.execute(table.update().where(table.c.id == row_id, col == current)
                        .values({machine.column: to_state, **values})).rowcount
    if done != 1:
        raise TransitionRefused(machine.name, row_id, current, to_state, "changed meanwhile")
    return current


# ---------------------------------------------------------------------------------------------
# The machines. A connect failure puts a sent command back to queued (the frame never left); a sent command
# is sent again (sent -> sent) until the meter answers.
COMMAND = Machine("command", command, {
    "queued": frozenset({"sent", "expired"}),
    "sent": frozenset({"sent", "queued", "acked", "failed", "expired"}),
    "acked": frozenset(),
    "failed": frozenset(),
    "expired": frozenset(),
}, guards={("sent", "expired"): (lambda row: row["kind"] not in MONEY_KINDS,
                                 "a sent money command is resent until the meter answers")})

LEDGER_ENTRY = Machine("ledger entry", ledger_entry, {
    "pending": frozenset({"confirmed", "failed"}),
    "confirmed": frozenset(),
    "failed": frozenset(),
})

# closing: trips queued, closing refunds on their way; closed once every meter is settled.
ACCOUNT = Machine("account", account, {
    "open": frozenset({"closing"}),
    "closing": frozenset({"closed"}),
    "closed": frozenset(),
}, column="status")

# Work orders (issue 12): which actor may take each move, and what it needs, is workorders.model.ACTIONS. A hold
# returns to the state it was held from (work_order.held_from); a rejected order goes back on site to the worker.
WORK_ORDER = Machine("work order", work_order, {
    "created": frozenset({"dispatched", "on_hold", "cancelled"}),
    "dispatched": frozenset({"dispatched", "accepted", "created", "on_hold", "cancelled"}),
    "accepted": frozenset({"on_site", "on_hold", "cancelled"}),
    "on_site": frozenset({"completed", "on_hold", "cancelled"}),
    "on_hold": frozenset({"created", "dispatched", "accepted", "on_site", "cancelled"}),
    "completed": frozenset({"approved", "rejected"}),
    "rejected": frozenset({"on_site", "cancelled"}),
    "approved": frozenset({"archived"}),
    "archived": frozenset(),
    "cancelled": frozenset(),
}, guards={("on_hold", "created"): (lambda row: row["held_from"] == "created", "held from another state"),
           ("on_hold", "dispatched"): (lambda row: row["held_from"] == "dispatched", "held from another state"),
           ("on_hold", "accepted"): (lambda row: row["held_from"] == "accepted", "held from another state"),
           ("on_hold", "on_site"): (lambda row: row["held_from"] == "on_site", "held from another state")})
