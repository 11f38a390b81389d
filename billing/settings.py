"""Billing settings in the shared `setting` table: hoarding limit (囤积金额上限), the amount above which an entered
transfer needs a second operator, default tariff, meter limits. Every amount is read by billing.money.parse_amount."""
from __future__ import annotations

from decimal import Decimal

import sqlalchemy as sa

from billing.context import BillingContext
from billing.errors import BillingError
from billing.money import parse_amount, to_fen
from storage import audit
from storage.billing import get_setting, set_setting, tariff_by_id

HOARDING_LIMIT = "billing.hoarding_limit"
DEFAULT_TARIFF = "billing.default_tariff_id"
ALARM1, ALARM2, OVERLOAD_W, OVERDRAFT = "billing.alarm1", "billing.alarm2", "billing.overload_w", "billing.overdraft"
COMMAND_EXPIRY_H = "billing.command_expiry_hours"
# The meter keeps its overload threshold in one 16-bit register (specs/device-profile.md, 0x0061).
OVERLOAD_MAX_W = 65535
# An old meter's balance typed in (the meter cannot be read) above this many yuan waits for a second operator.
# 100.00 by default: a dormitory meter rarely holds more, so the common dead meter is carried over at once, and
# a larger unverified sum, the kind that can be refunded as cash, never rests on one person's word.
TRANSFER_APPROVAL_ABOVE = "billing.transfer_approval_above"

DEFAULTS = {HOARDING_LIMIT: "1000.00", ALARM1: "20.00", ALARM2: "5.00", OVERLOAD_W: "6000", OVERDRAFT: "0.00",
            COMMAND_EXPIRY_H: "24", TRANSFER_APPROVAL_ABOVE: "100.00"}


def _value(conn: sa.Connection, key: str) -> str | None:
    stored = get_setting(conn, key)
    return stored if stored is not None else DEFAULTS.get(key)


def hoarding_limit(conn: sa.Connection) -> Decimal | None:
    """The highest balance a sale may leave on a meter; None (setting "") means no limit."""
    value = _value(conn, HOARDING_LIMIT)
    return parse_amount(value) if value else None


def transfer_approval_above(conn: sa.Connection) -> Decimal:
    """An entered transfer above this amount needs a second operator's approval (0.00: every one does)."""
    return parse_amount(_value(conn, TRANSFER_APPROVAL_ABOVE), allow_zero=True)


def default_tariff_id(conn: sa.Connection) -> int | None:
    value = _value(conn, DEFAULT_TARIFF)
    return int(value) if value else None


def command_expiry_hours(conn: sa.Connection) -> float:
    return float(_value(conn, COMMAND_EXPIRY_H))


def meter_limits(conn: sa.Connection) -> dict:
    """SET_LIMITS payload for newly opened meters, in wire units (fen, W)."""
    return {"alarm1_fen": to_fen(parse_amount(_value(conn, ALARM1), allow_zero=True)),
            "alarm2_fen": to_fen(parse_amount(_value(conn, ALARM2), allow_zero=True)),
            "overload_w": int(_value(conn, OVERLOAD_W)),
            "overdraft_fen": to_fen(parse_amount(_value(conn, OVERDRAFT), allow_zero=True))}


def alarm_amounts(conn: sa.Connection) -> tuple[Decimal, Decimal]:
    """The site's low-balance thresholds in yuan, (alarm 1, alarm 2): what meters are set to warn at (meter_limits)
    and what the customer's page warns at."""
    return (parse_amount(_value(conn, ALARM1), allow_zero=True), parse_amount(_value(conn, ALARM2), allow_zero=True))


def low_balance_level(balance: Decimal | None, amounts: tuple[Decimal, Decimal]) -> int:
    """2 at or below alarm 2, 1 at or below alarm 1, else 0 (also when the balance is unknown)."""
    if balance is None:
        return 0
    alarm1, alarm2 = amounts
    return 2 if balance <= alarm2 else 1 if balance <= alarm1 else 0


def set_hoarding_limit(ctx: BillingContext, amount, operator: str) -> Decimal | None:
    """Set (or with None / "" remove) the hoarding limit; audited."""
    limit = None if amount in (None, "") else parse_amount(amount)
    now = ctx.now()
    with ctx.engine.begin() as conn:
        before = hoarding_limit(conn)
        set_setting(conn, HOARDING_LIMIT, "" if limit is None else str(limit), now)
        audit.record(conn, operator=operator, action="billing.setting", target=HOARDING_LIMIT, ts=now,
                     before=before, after=limit)
    return limit


def set_transfer_approval_above(ctx: BillingContext, amount, operator: str) -> Decimal:
    """Set the amount above which an entered transfer waits for a second operator (0 = always); audited."""
    limit = parse_amount(amount, allow_zero=True)
    now = ctx.now()
    with ctx.engine.begin() as conn:
        before = transfer_approval_above(conn)
        set_setting(conn, TRANSFER_APPROVAL_ABOVE, str(limit), now)
        audit.record(conn, operator=operator, action="billing.setting", target=TRANSFER_APPROVAL_ABOVE, ts=now,
                     before=before, after=limit)
    return limit


def set_default_tariff(ctx: BillingContext, tariff_id: int, operator: str) -> None:
    now = ctx.now()
    with ctx.engine.begin() as conn:
        if tariff_by_id(conn, tariff_id) is None:
            raise BillingError("tariff_unknown", tariff=tariff_id)
        before = default_tariff_id(conn)
        set_setting(conn, DEFAULT_TARIFF, str(tariff_id), now)
        audit.record(conn, operator=operator, action="billing.setting", target=DEFAULT_TARIFF, ts=now,
                     before=before, after=tariff_id)


def set_meter_limits(ctx: BillingContext, operator: str, *, alarm1=None, alarm2=None, overload_w=None,
                     overdraft=None) -> dict:
    """Defaults sent (SET_LIMITS) to meters when they are opened."""
    now = ctx.now()
    values = {}
    for key, value in ((ALARM1, alarm1), (ALARM2, alarm2), (OVERDRAFT, overdraft)):
        if value is not None:
            values[key] = str(parse_amount(value, allow_zero=True))
    if overload_w is not None:
        if not str(overload_w).isdigit() or not 0 < int(overload_w) <= OVERLOAD_MAX_W:
            raise BillingError("overload_invalid", value=overload_w, limit=OVERLOAD_MAX_W)
        values[OVERLOAD_W] = str(int(overload_w))
    with ctx.engine.begin() as conn:
        before = meter_limits(conn)
        for key, value in values.items():
            set_setting(conn, key, value, now)
        after = meter_limits(conn)
        audit.record(conn, operator=operator, action="billing.setting", target="billing.limits", ts=now,
                     before=before, after=after)
    return after
