"""State machines of billing as tables of allowed transitions: ledger entries and accounts."""
from __future__ import annotations

LEDGER_TRANSITIONS: dict[str, frozenset[str]] = {
    "pending": frozenset({"confirmed", "failed"}),
    "confirmed": frozenset(),
    "failed": frozenset(),
}

# closing: trips queued, closing refunds on their way; closed once every meter is settled.
ACCOUNT_TRANSITIONS: dict[str, frozenset[str]] = {
    "open": frozenset({"closing"}),
    "closing": frozenset({"closed"}),
    "closed": frozenset(),
}


def allowed(table: dict[str, frozenset[str]], old: str, new: str) -> bool:
    return new in table.get(old, frozenset())


def check(table: dict[str, frozenset[str]], old: str, new: str, what: str) -> None:
    if not allowed(table, old, new):
        raise RuntimeError(f"{what}: transition {old} -> {new} is not allowed")
