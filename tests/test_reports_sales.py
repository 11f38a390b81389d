"""The sales reports (日/月/年销售报表) on both engines: every figure equals a plain Python sum over the ledger's
rows, to the fen, for random ranges, by day, month, year and hour, whole and split by operator and channel."""
from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal

import pytest
import sqlalchemy as sa

from billing import ledger
from billing.errors import BillingError
from billing.sales_report import sales_report, sales_totals
from storage.schema import ledger_entry

from tests.billing_support import actor, address
from tests.reports_support import report_site, settle_queued

CST = dt.timedelta(hours=8)     # the test site's clock (BillingContext's default zone), written out on purpose


@pytest.fixture
def busy_ctx(any_engine, fixed_now):
    """Three cashiers over ~12 days: sales, refunds and reversals at random hours (across local midnights),
    each confirmed, failed or left pending."""
    ctx = report_site(any_engine, fixed_now)
    rnd = random.Random(11)
    cashiers = [actor("cashier", name) for name in ("alice", "bob", "王芳")]
    sold: list[str] = []
    for _ in range(45):
        ctx.clock.advance(minutes=rnd.randint(20, 400))
        who, meter = rnd.choice(cashiers), address(rnd.randint(1, 4))
        action = rnd.random()
        try:
            if action < 0.65 or not sold:
                view = ledger.sell(ctx, meter, f"{rnd.randint(1, 60)}.{rnd.randint(0, 99):02d}", who)
            elif action < 0.85:
                view = ledger.refund(ctx, meter, f"{rnd.randint(0, 4)}.{rnd.randint(1, 99):02d}", who,
                                     reason="退款 test")
            else:
                view = ledger.reverse_entry(ctx, sold.pop(rnd.randrange(len(sold))), who, "wrong meter")
        except BillingError:
            continue
        fate = rnd.random()
        if fate < 0.7:
            settle_queued(ctx, "acked", view.id)
            if view.kind == "sale":
                sold.append(view.receipt_no)
        elif fate < 0.85:
            settle_queued(ctx, "failed", view.id)
    return ctx


def _ledger_rows(ctx) -> list[dict]:
    with ctx.engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(ledger_entry)).mappings()]


def _label(local: dt.datetime, by: str) -> str:
    return {"day": f"{local:%Y-%m-%d}", "month": f"{local:%Y-%m}", "year": f"{local:%Y}",
            "hour": f"{local:%Y-%m-%d %H}:00"}[by]


def _independent(rows, first: dt.date, last: dt.date, by: str, group: str | None = None) -> dict:
    """(period, group value) -> {sales, refunds, reversals, net, count}: a plain loop over the ledger."""
    out: dict = {}
    names = {"sale": "sales", "refund": "refunds", "reversal": "reversals"}
    for r in rows:
        local = r["created_at"] + CST
        if r["state"] == "failed" or r["kind"] not in names or not first <= local.date() <= last:
            continue
        key = (_label(local, by), {"operator": r["operator"], "channel": r["source"], None: None}[group])
        t = out.setdefault(key, {"sales": Decimal(0), "refunds": Decimal(0), "reversals": Decimal(0),
                                 "net": Decimal(0), "count": 0})
        t[names[r["kind"]]] += Decimal(r["amount"])
        t["net"] += Decimal(r["amount"])
        t["count"] += 1
    return out


def _reported(rows, group: str | None = None) -> dict:
    return {(r["period"], r[group] if group else None): {k: r[k] for k in ("sales", "refunds", "reversals", "net",
                                                                             "count")}
            for r in rows if r["count"]}


def test_the_sales_report_equals_a_plain_sum_of_the_ledger_for_random_ranges(busy_ctx, fixed_now):
    rows = _ledger_rows(busy_ctx)
    assert {r["kind"] for r in rows} >= {"sale", "refund", "reversal"}
    assert {r["state"] for r in rows} >= {"pending", "confirmed", "failed"}
    rnd = random.Random(5)
    start = (fixed_now + CST).date()
    for by in ("day", "month", "year", "hour"):
        for _ in range(3):
            first = start + dt.timedelta(days=rnd.randint(0, 6))
            last = first + dt.timedelta(days=rnd.randint(0, 7))
            report = sales_report(busy_ctx, first, last, by=by)
            assert _reported(report) == _independent(rows, first, last, by), (by, first, last)
            for r in report:
                assert all(r[k] == r[k].quantize(Decimal("0.01")) for k in ("sales", "refunds", "reversals", "net"))


def test_the_sales_report_split_by_operator_and_channel_adds_up_to_the_whole(busy_ctx, fixed_now):
    rows = _ledger_rows(busy_ctx)
    first, last = (fixed_now + CST).date(), (fixed_now + CST).date() + dt.timedelta(days=14)
    for group in ("operator", "channel"):
        report = sales_report(busy_ctx, first, last, by="day", group=group)
        assert _reported(report, group) == _independent(rows, first, last, "day", group)
    by_operator = sales_report(busy_ctx, first, last, by="month", group="operator")
    assert {r["operator"] for r in by_operator} == {"alice", "bob", "王芳"}
    whole = sales_totals(sales_report(busy_ctx, first, last, by="day"))
    assert sales_totals(by_operator)["net"] == whole["net"]
    assert whole["net"] == sum((Decimal(r["amount"]) for r in rows
                                if r["state"] != "failed" and r["kind"] in ("sale", "refund", "reversal")),
                               Decimal(0))


def test_a_day_without_sales_has_a_zero_row_and_pending_money_is_counted_and_said(busy_ctx, fixed_now):
    far = (fixed_now + CST).date() + dt.timedelta(days=100)
    assert [(r["period"], r["net"], r["count"]) for r in sales_report(busy_ctx, far, far)] == \
        [(f"{far:%Y-%m-%d}", Decimal("0.00"), 0)]
    report = sales_report(busy_ctx, (fixed_now + CST).date(), far)
    pending = sum((Decimal(r["amount"]) for r in _ledger_rows(busy_ctx) if r["state"] == "pending"
                   and r["kind"] in ("sale", "refund", "reversal")), Decimal(0))
    assert sales_totals(report)["pending"] == pending != 0
