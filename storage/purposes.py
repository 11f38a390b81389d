"""Why a remote command was queued: stored with it (command.purpose), it decides what its settlement does.

billing.settlement keeps a handler per purpose; storage.outbox.insert_command refuses a command without one of
these. Later capabilities add their members here (work orders; breakers and taps: grid) and register their handlers.
"""
from __future__ import annotations

from enum import StrEnum


class Purpose(StrEnum):
    SALE = "sale"                   # money: a ledger entry of this kind rides on the command
    REFUND = "refund"
    REVERSAL = "reversal"
    TRANSFER = "transfer"           # a balance carried over from an old meter
    OPENING = "opening"             # a meter's setup commands when it joins an account
    CLOSING = "closing"             # an account's closing trips and closing refunds
    TARIFF_PUSH = "tariff_push"
    LIMITS_PUSH = "limits_push"
    RELAY = "relay"                 # a trip, close, keep-power or restore-prepaid on its own
    GRID = "grid"                   # a transformer terminal's breaker, tap or capacity mode (grid.control, grid.avc)
    OTHER = "other"                 # only commands queued before purposes were stored (migration 8)


# What a command may be queued for from now on (OTHER only names the commands of before).
QUEUEABLE: frozenset[str] = frozenset(p.value for p in Purpose) - {Purpose.OTHER.value}
