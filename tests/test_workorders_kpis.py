"""Work-order KPIs and statistics tables on a small known set of orders: each figure by hand, the local month and
quarter of the site, the clock paused on hold, reopened orders; then the same figures read from a real database
on both engines (orders and events written as the demo writes them), and the demo's own 90 days."""
from __future__ import annotations

import datetime as dt
import zoneinfo

import pandas as pd
import pytest

from workorders.kpis import compute_kpis, counts_by_period, orders_by_type, prepare_facts, reopened

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
NOW = dt.datetime(2026, 11, 30, 4, 0)          # stored UTC: 12:00 at the site
H = dt.timedelta(hours=1)
START, END = dt.datetime(2026, 10, 31, 16, 0), dt.datetime(2026, 11, 30, 16, 0)   # the site's November


def _order(id_, type_, state, created, *, due_h=24, accepted_h=None, completed_h=None, held_s=0, rejections=0,
           visits=0, satisfaction=None, account=None, meter=None, held_since=None):
    return {"id": id_, "type": type_, "state": state, "building": "A", "worker": 1, "account_id": account,
            "meter_id": meter, "created_at": created, "due_at": created + due_h * H, "held_since": held_since,
            "accepted_at": None if accepted_h is None else created + accepted_h * H,
            "completed_at": None if completed_h is None else created + completed_h * H,
            "held_s": held_s, "rejections": rejections, "visits": visits, "satisfaction": satisfaction}


def known_set() -> pd.DataFrame:
    """Seven November orders and one of December that reopens order 1."""
    d = dt.datetime(2026, 11, 10, 2, 0)
    rows = [
        # a repair done in 375 h (November 25th, 17:00 UTC), in time, rated 5, never rejected
        _order(1, "repair", "archived", d, due_h=400, accepted_h=1, completed_h=375, visits=1, satisfaction=5,
               account=7),
        # a repair done in 30 h with 6 h on hold: 24 h of work, late against its first deadline, but the deadline
        # moved by the hold (due 24 + 6 = 30 h): in time; rejected once; rated 3
        _order(2, "repair", "approved", d, due_h=30, accepted_h=3, completed_h=30, held_s=6 * 3600, rejections=1,
               visits=2, satisfaction=3, account=8),
        # a meter installed late (due 24 h, done 48 h), rated 4
        _order(3, "meter_install", "completed", d, accepted_h=2, completed_h=48, visits=1, satisfaction=4, meter=21),
        # open and past its deadline now
        _order(4, "fee_collection", "dispatched", dt.datetime(2026, 11, 20, 2, 0)),
        # open, not yet due
        _order(5, "fee_collection", "accepted", dt.datetime(2026, 11, 29, 20, 0), accepted_h=2),
        # cancelled: left out of every rate, counted as an order
        _order(6, "repair", "cancelled", d),
        # on hold since two days, created 3 days ago with 48 h: paused, so not overdue
        _order(7, "safety_inspection", "on_hold", NOW - 72 * H, due_h=48, accepted_h=1,
               held_since=NOW - 48 * H),
        # December 1st at the site (17:00 UTC on November 30th), outside the period: the same customer's repair
        # 5 days after order 1 was done -> order 1 reopened
        _order(8, "repair", "created", d + 375 * H + 5 * 24 * H, account=7),
    ]
    return prepare_facts(pd.DataFrame(rows), NOW, SHANGHAI)


def test_the_rates_of_a_known_month():
    k = compute_kpis(known_set(), NOW, START, END)
    assert k.orders == 7
    # 6 not cancelled, 3 completed
    assert k.completion_rate == pytest.approx(3 / 6)
    # with a deadline: the 6 live ones; late: order 3 (done after due) and order 4 (open past due) -> 2 of 6
    assert k.overdue_rate == pytest.approx(2 / 6)
    # rated 5, 3, 4 -> two of three satisfied
    assert k.satisfaction_rate == pytest.approx(2 / 3)
    assert k.visits == 4
    # accepted after 1, 3, 2, 2 and 1 hours
    assert k.first_response_h == pytest.approx((1 + 3 + 2 + 2 + 1) / 5)


def test_first_time_fix_counts_neither_a_rejected_nor_a_reopened_order():
    k = compute_kpis(known_set(), NOW, START, END)
    # completed: 1 (reopened by order 8), 2 (rejected once), 3 (clean) -> 1 of 3 fixed first time
    assert k.first_time_fix_rate == pytest.approx(1 / 3)
    assert k.reopen_rate == pytest.approx(1 / 3)


def test_an_order_for_another_customer_or_type_or_after_thirty_days_reopens_nothing():
    facts = known_set()
    assert reopened(facts) == {1}
    assert reopened(facts.assign(type=facts["type"].astype(str).where(facts["id"] != 8, "temporary"))) == set()
    late = facts["created_at"].where(facts["id"] != 8, facts.loc[0, "completed_at"] + dt.timedelta(days=31))
    assert reopened(facts.assign(created_at=late)) == set()
    other = facts["account_id"].where(facts["id"] != 8, 99)
    assert reopened(prepare_facts(facts.assign(account_id=other).drop(columns="customer"), NOW, SHANGHAI)) == set()


def test_an_order_on_hold_is_not_overdue_while_its_clock_is_paused():
    facts = known_set()
    held = facts[facts["id"] == 7].iloc[0]
    # created 72 h ago with 48 h to go, held for the last 48 h: 24 h used, due 24 h from now
    assert held["due_at"] == NOW + 24 * H and held["held_s"] == 48 * 3600
    by_type = orders_by_type(facts[facts["created_at"] < END], NOW).set_index("type")
    assert by_type.loc["safety_inspection", "overdue"] == 0 and by_type.loc["safety_inspection", "on_hold"] == 1


def test_repair_completion_time_by_month_leaves_out_the_time_on_hold():
    k = compute_kpis(known_set(), NOW, START, END)
    months = k.repair_hours_by_month.set_index("month")
    # order 1: from Nov 10 02:00 to Nov 25 17:00 UTC; order 2: 30 h less 6 on hold -> 24 h; both November at the site
    first = (dt.datetime(2026, 11, 25, 17, 0) - dt.datetime(2026, 11, 10, 2, 0)) / H
    assert list(months.index) == ["2026-11"] and months.loc["2026-11", "orders"] == 2
    assert months.loc["2026-11", "hours"] == pytest.approx((first + 24) / 2)


def test_counts_by_month_and_quarter_use_the_sites_calendar():
    facts = known_set()
    months = counts_by_period(facts, "month").set_index(["period", "type"])
    # order 8 was created at 17:00 UTC on November 30th: December 1st at the site
    assert months.loc[("2026-12", "repair"), "created"] == 1
    assert months.loc[("2026-11", "repair"), "created"] == 3
    assert months.loc[("2026-11", "meter_install"), "completed"] == 1
    quarters = counts_by_period(facts, "quarter").set_index(["period", "type"])
    assert quarters.loc[("2026Q4", "repair"), "created"] == 4
    assert quarters.loc[("2026Q4", "meter_install"), "completed"] == 1   # new meters installed this quarter


def test_orders_by_type_counts_each_state_once():
    table = orders_by_type(known_set()[lambda f: f["created_at"] < END], NOW).set_index("type")
    assert table.loc["repair", ["orders", "completed", "cancelled", "open"]].tolist() == [3, 2, 1, 0]
    assert table.loc["repair", "completion_rate"] == pytest.approx(1.0)
    assert table.loc["fee_collection", ["orders", "open", "overdue"]].tolist() == [2, 2, 1]
    assert table["orders"].sum() == 7


def test_a_period_without_orders_has_no_rates_rather_than_zeroes():
    k = compute_kpis(known_set(), NOW, dt.datetime(2020, 1, 1), dt.datetime(2020, 2, 1))
    assert k.orders == 0 and k.completion_rate is None and k.overdue_rate is None
    assert k.satisfaction_rate is None and k.first_time_fix_rate is None and k.repair_hours_by_month.empty


# --- the page's builders on the same small set ------------------------------------------------------------------
def _report():
    from workorders.kpis import KpiReport
    facts = known_set()
    period = facts[facts["created_at"] < END]
    items = pd.DataFrame({"item_class": ["cable", "meter"], "text_en": ["Cable", "Seal"], "text_zh": ["电缆", "铅封"],
                          "unit": ["m", "pc"], "orders": [2, 1], "quantity": [12.5, 2], "amount": [56.25, 3.0]})
    return KpiReport(dt.date(2026, 11, 1), dt.date(2026, 11, 30), compute_kpis(facts, NOW, START, END),
                     orders_by_type(period, NOW), counts_by_period(period), counts_by_period(period, "quarter"),
                     items.iloc[:0], items, [{"key": "repair", "name_en": "Repair", "name_zh": "抢修"}])


def test_the_months_chart_stacks_one_bar_trace_per_type_with_the_types_names():
    from dashboard.components.workorders_office import months_figure
    report = _report()
    fig = months_figure(report.by_month, {"repair": "Repair"}, "en")
    names = {tr.name for tr in fig.data}
    assert "Repair" in names and "meter_install" in names and fig.layout.barmode == "stack"
    repair = next(tr for tr in fig.data if tr.name == "Repair")
    assert list(repair.x) == ["2026-11"] and list(repair.y) == [3]


def test_the_repair_chart_and_an_empty_period_say_what_they_show():
    from dashboard.components.workorders_office import repair_figure
    fig = repair_figure(_report().kpis.repair_hours_by_month, "en")
    assert list(fig.data[0].x) == ["2026-11"]
    empty = repair_figure(_report().kpis.repair_hours_by_month.iloc[:0], "en")
    assert not empty.data and empty.layout.annotations[0].text


def test_the_workbook_holds_every_table_with_totals_and_rates_as_percentages():
    import io

    import openpyxl

    from dashboard.components.workorders_office import kpi_workbook
    book = kpi_workbook(_report(), "zh", "Asia/Shanghai", dt.datetime(2026, 11, 30, 12, 0))
    wb = openpyxl.load_workbook(io.BytesIO(book.to_bytes()))
    assert wb.sheetnames[:2] == ["工单指标", "工单分类统计表"]
    kpis = wb["工单指标"]
    rates = {r[0].value: r[1] for r in kpis.iter_rows(min_row=5) if r[1].value is not None}
    assert rates["完成率"].value == pytest.approx(0.5) and rates["完成率"].number_format == "0.0%"
    types = list(wb["工单分类统计表"].iter_rows(values_only=True))
    assert types[-1][0] == "合计" and types[-1][1] == 7
    materials = list(wb["材料分类统计表"].iter_rows(values_only=True))
    assert materials[-1][0] == "合计" and materials[-1][5] == pytest.approx(59.25)


# --- the report summed in the database equals the per-order definitions ---------------------------------------
def _seeded(engine):
    """The demo's generator on a small scale (60 days, a few orders a day, every state), on 40 customers so that
    some orders reopen others."""
    import sqlalchemy as sa

    from operators.service import Accounts
    from workorders.demo import seed_demo_work_orders
    accounts = Accounts(engine, lambda: NOW)
    accounts.seed()
    accounts.ensure_demo_operators("test-password")
    seed_demo_work_orders(engine, SHANGHAI, NOW, days=60, per_day=6)
    with engine.begin() as conn:
        # every third order for a meter only, the rest for one of 40 accounts
        conn.execute(sa.text("UPDATE work_order SET account_id = CASE WHEN id % 3 = 0 THEN NULL "
                             "ELSE 1 + (id * 7) % 40 END, meter_id = CASE WHEN id % 3 = 0 THEN 1 + id % 25 END"))
    return engine


def _same_report(summed, facts):
    a, b = summed.kpis.as_dict(), facts.kpis.as_dict()
    assert a.pop("online_rate") is None and b.pop("online_rate") is None
    assert a == pytest.approx(b, rel=1e-9)
    pd.testing.assert_frame_equal(summed.kpis.repair_hours_by_month, facts.kpis.repair_hours_by_month,
                                  check_dtype=False)
    reference = facts.by_type.assign(type=facts.by_type["type"].astype(str))[summed.by_type.columns]
    pd.testing.assert_frame_equal(summed.by_type, reference, check_dtype=False)
    pd.testing.assert_frame_equal(summed.by_month, facts.by_month, check_dtype=False)
    pd.testing.assert_frame_equal(summed.by_quarter, facts.by_quarter, check_dtype=False)


def test_the_report_summed_in_the_database_equals_the_per_order_definitions(any_engine):
    from workorders.kpis import kpi_report, kpi_report_from_facts
    engine = _seeded(any_engine)
    local_today = (NOW + dt.timedelta(hours=8)).date()
    for first, last in ((local_today - dt.timedelta(days=29), local_today),       # the last 30 days
                        (local_today - dt.timedelta(days=59), local_today - dt.timedelta(days=20)),   # a closed past
                        (dt.date(2026, 10, 1), dt.date(2026, 10, 31))):           # one calendar month
        summed = kpi_report(engine, SHANGHAI, NOW, first, last)
        assert summed.kpis.orders > 0 and summed.kpis.reopen_rate
        _same_report(summed, kpi_report_from_facts(engine, SHANGHAI, NOW, first, last))


def test_the_orders_by_type_table_equals_a_plain_count_of_the_orders(any_engine):
    import sqlalchemy as sa

    from core.clock import utc_time
    from storage.schema import work_order
    from workorders.kpis import OPEN_STATES, kpi_report
    engine = _seeded(any_engine)
    first, last = dt.date(2026, 10, 1), dt.date(2026, 11, 30)
    start, end = (utc_time(dt.datetime.combine(d, dt.time()), SHANGHAI)
                  for d in (first, last + dt.timedelta(days=1)))
    with engine.connect() as conn:
        rows = conn.execute(sa.select(work_order.c.type, work_order.c.state).where(
            work_order.c.created_at >= start, work_order.c.created_at < end)).all()
    expected: dict[str, dict[str, int]] = {}
    for type_, state in rows:
        counts = expected.setdefault(type_, {"orders": 0, "completed": 0, "open": 0, "on_hold": 0, "cancelled": 0})
        counts["orders"] += 1
        counts["completed"] += state in ("completed", "approved", "archived")
        counts["open"] += state in OPEN_STATES and state != "on_hold"
        counts["on_hold"] += state == "on_hold"
        counts["cancelled"] += state == "cancelled"
    table = kpi_report(engine, SHANGHAI, NOW, first, last).by_type
    got = {r["type"]: {c: r[c] for c in ("orders", "completed", "open", "on_hold", "cancelled")}
           for r in table.to_dict("records")}
    assert got == expected and sum(c["orders"] for c in expected.values()) > 100


def test_a_period_without_orders_gives_an_empty_report_from_the_database(any_engine):
    from workorders.kpis import kpi_report
    report = kpi_report(_seeded(any_engine), SHANGHAI, NOW, dt.date(2020, 1, 1), dt.date(2020, 1, 31))
    assert report.kpis.orders == 0 and report.kpis.completion_rate is None and report.by_type.empty
    assert report.by_month.empty and report.kpis.repair_hours_by_month.empty
