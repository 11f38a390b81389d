"""Cashier day-end settlement (日结) on both engines: the day's figures per cashier, closing a day (own day with
sale.create, another's with settlement.close, audited), and a closed day that later ledger changes never move: a
sale of a closed day that fails afterwards shows as a correction on the cashier's next open day, once."""
from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest
import sqlalchemy as sa

from billing import ledger
from billing.day_end import close_day, settlement_report
from billing.errors import BillingError
from storage.schema import audit_log, closed_day

from tests.billing_support import actor, address
from tests.reports_support import report_site, settle_queued

D1 = dt.date(2026, 11, 21)          # fixed_now 08:00 UTC is 16:00 on the site's clock
D2, D3 = D1 + dt.timedelta(days=1), D1 + dt.timedelta(days=2)
ALICE = actor("cashier", "alice")


def _row(ctx, day, who="alice") -> dict:
    rows = [r for r in settlement_report(ctx, day, day) if r["operator"] == who]
    assert len(rows) <= 1
    return rows[0] if rows else {}


@pytest.fixture
def day_one(any_engine, fixed_now):
    """alice on D1: a confirmed sale of 50.00, a sale of 20.00 still pending, a confirmed refund of 5.00."""
    ctx = report_site(any_engine, fixed_now)
    ledger.sell(ctx, address(1), "50.00", ALICE)
    settle_queued(ctx, "acked")
    pending = ledger.sell(ctx, address(2), "20.00", ALICE)
    ledger.refund(ctx, address(3), "5.00", ALICE, reason="moved out")
    settle_queued(ctx, "acked", next(e for e in ledger.meter_entries(ctx, address(3))).id)
    ctx.pending_sale = pending
    return ctx


def test_the_day_shows_sales_refunds_net_and_the_cash_to_hand_over(day_one):
    r = _row(day_one, D1)
    assert (r["sales"], r["sales_count"], r["refunds"], r["refunds_count"]) == \
        (Decimal("70.00"), 2, Decimal("-5.00"), 1)
    assert r["net"] == r["cash"] == r["to_hand_over"] == Decimal("65.00") and not r["closed"]


def test_a_closed_day_keeps_its_figures_and_a_later_failure_is_a_correction_on_the_next_open_day(day_one):
    ctx = day_one
    closed = close_day(ctx, ALICE, "alice", D1)
    assert closed["closed"] and closed["to_hand_over"] == Decimal("65.00")
    ctx.clock.advance(hours=12)                             # D2, 04:00 site time
    settle_queued(ctx, "failed", ctx.pending_sale.id)       # the meter refused the pending sale of D1
    ledger.sell(ctx, address(1), "10.00", ALICE)
    settle_queued(ctx, "acked")
    assert _row(ctx, D1)["net"] == Decimal("65.00") and _row(ctx, D1)["closed"]
    d2 = _row(ctx, D2)
    assert (d2["net"], d2["correction"], d2["cash"], d2["cash_correction"], d2["to_hand_over"]) == \
        (Decimal("10.00"), Decimal("-20.00"), Decimal("10.00"), Decimal("-20.00"), Decimal("-10.00"))
    close_day(ctx, ALICE, "alice", D2)
    ctx.clock.advance(days=1)
    assert _row(ctx, D2)["correction"] == Decimal("-20.00") and _row(ctx, D2)["closed"]
    assert _row(ctx, D3) == {}                              # the correction was handed over once, on D2
    with ctx.engine.connect() as conn:
        snapshots = conn.execute(sa.select(closed_day.c.day, closed_day.c.figures).order_by(closed_day.c.day)).all()
        logged = conn.execute(sa.select(audit_log.c.target).where(audit_log.c.action == "settlement.close_day")
                              ).scalars().all()
    assert [json.loads(f)["to_hand_over"] for _, f in snapshots] == ["65.00", "-10.00"]
    assert logged == [f"alice:{D1}", f"alice:{D2}"]


def test_only_the_cashier_or_a_manager_closes_a_day_and_never_twice(day_one):
    ctx = day_one
    with pytest.raises(BillingError) as refused:
        close_day(ctx, actor("cashier", "bob"), "alice", D1)
    assert refused.value.code == "permission_denied" and "settlement.close" in refused.value.message("en")
    with pytest.raises(BillingError) as refused:
        close_day(ctx, actor("analyst"), "analyst", D1)     # an analyst sells nothing: no day of their own to close
    assert refused.value.code == "permission_denied"
    with pytest.raises(BillingError) as future:
        close_day(ctx, ALICE, "alice", D2)
    assert future.value.code == "day_not_over"
    assert close_day(ctx, actor("manager", "mia"), "alice", D1)["closed_by"] == "mia"
    with pytest.raises(BillingError) as twice:
        close_day(ctx, ALICE, "alice", D1)
    assert twice.value.code == "day_closed_already" and "alice" in twice.value.message("zh")
    with ctx.engine.connect() as conn:
        denied = conn.execute(sa.select(sa.func.count()).select_from(audit_log)
                              .where(audit_log.c.action == "permission.denied")).scalar_one()
        closes = conn.execute(sa.select(sa.func.count()).select_from(closed_day)).scalar_one()
    assert denied == 2 and closes == 1
