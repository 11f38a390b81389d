"""Scheduled tariff versions on both engines: a version created ahead of its valid_from reaches the meters on its
tariff by itself when it takes effect (once), a version superseded before its day never does, the operation log
shows the system's push, and the tariffs page says when the push will happen."""
from __future__ import annotations

import datetime as dt
import json
from types import SimpleNamespace

import plotly.utils
import pytest
import sqlalchemy as sa

from billing import desk, tariffs
from billing.context import utcnow
from billing.tariffs import push_due_versions
from serve.billing import TARIFF_PUSH_JOB, add_billing_jobs, attach_billing, make_dispatcher
from collectors.cycle import CollectorService
from collectors.schedule import POLL_JOB, Jobs
from core.events import EventBus
from collectors.poller import FieldIO
from collectors.profiles import ProfileRegistry
from dashboard.components.tariffs import tariff_cards
from dashboard.i18n import t
from storage import audit
from simulator.field import run_field_in_thread
from simulator.secure import TEST_MASTER_KEY
from storage.billing import set_setting
from storage.schema import command, gateway, meter

from tests.billing_support import Clock, address, load_site, make_ctx, prepaid_site
from tests.conftest import free_port_block


@pytest.fixture
def clock(fixed_now):
    return Clock(fixed_now)


@pytest.fixture
def ctx(any_engine, clock, fixed_now):
    load_site(any_engine, prepaid_site(15120), fixed_now)
    return make_ctx(any_engine, clock)


@pytest.fixture
def dorm(ctx):
    """Tariff "Dorm" (flat 0.60) on meters 1 and 2, tariff "Shop" (flat 0.90) on meters 3 and 4, both pushed."""
    dorm = tariffs.create_tariff(ctx, "Dorm", "flat", "admin", prices={"flat": "0.60"},
                                 valid_from=ctx.now() - dt.timedelta(days=30))
    shop = tariffs.create_tariff(ctx, "Shop", "flat", "admin", prices={"flat": "0.90"},
                                 valid_from=ctx.now() - dt.timedelta(days=30))
    tariffs.assign_tariff(ctx, [address(1), address(2)], dorm, "admin")
    tariffs.assign_tariff(ctx, [address(3), address(4)], shop, "admin")
    return dorm


def _new_price(ctx, tariff_id: int, price: str, valid_from: dt.datetime) -> int:
    return tariffs.add_tariff_version(ctx, tariff_id, "admin", prices={"flat": price}, valid_from=valid_from)


def _commands_since(engine, first_id: int) -> list[tuple[str, list[int]]]:
    """(meter address, SET_TARIFF prices) of the tariff commands queued after `first_id`."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(meter.c.address, command.c.payload).join_from(command, meter)
                            .where(command.c.kind == "tariff", command.c.id > first_id)
                            .order_by(command.c.id)).all()
    return [(a, json.loads(p)["prices"]) for a, p in rows]


def _last_command_id(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.coalesce(sa.func.max(command.c.id), 0))).scalar_one()


def test_a_version_for_tomorrow_is_not_pushed_today(ctx, dorm):
    _new_price(ctx, dorm, "0.75", ctx.now() + dt.timedelta(days=1))
    before = _last_command_id(ctx.engine)
    assert push_due_versions(ctx) == []
    assert _commands_since(ctx.engine, before) == []


def test_when_its_day_comes_each_meter_on_the_tariff_gets_the_new_prices_once(ctx, clock, dorm):
    version = _new_price(ctx, dorm, "0.75", ctx.now() + dt.timedelta(days=1))
    before = _last_command_id(ctx.engine)
    clock.advance(days=1, minutes=1)
    pushed = push_due_versions(ctx)
    assert [(p.version_id, p.commands) for p in pushed] == [(version, 2)]
    assert sorted(_commands_since(ctx.engine, before)) == [(address(1), [0, 0, 7500, 0]),
                                                           (address(2), [0, 0, 7500, 0])]
    clock.advance(minutes=5)
    assert push_due_versions(ctx) == []
    assert len(_commands_since(ctx.engine, before)) == 2, "a second run queues nothing"


def test_meters_on_another_tariff_get_nothing(ctx, clock, dorm):
    _new_price(ctx, dorm, "0.75", ctx.now() + dt.timedelta(days=1))
    before = _last_command_id(ctx.engine)
    clock.advance(days=2)
    push_due_versions(ctx)
    assert {a for a, _ in _commands_since(ctx.engine, before)} == {address(1), address(2)}


def test_a_version_superseded_before_its_day_is_never_pushed(ctx, clock, dorm):
    _new_price(ctx, dorm, "0.75", ctx.now() + dt.timedelta(days=1))
    later = _new_price(ctx, dorm, "0.80", ctx.now() + dt.timedelta(days=1, hours=6))
    before = _last_command_id(ctx.engine)
    clock.advance(days=2)
    pushed = push_due_versions(ctx)
    assert [p.version_id for p in pushed] == [later]
    assert sorted(_commands_since(ctx.engine, before)) == [(address(1), [0, 0, 8000, 0]),
                                                           (address(2), [0, 0, 8000, 0])]
    clock.advance(days=1)
    assert push_due_versions(ctx) == []


def test_a_version_valid_from_now_when_saved_is_left_to_the_operator(ctx, clock, dorm):
    _new_price(ctx, dorm, "0.70", ctx.now() - dt.timedelta(hours=1))
    _new_price(ctx, dorm, "0.75", ctx.now())
    before = _last_command_id(ctx.engine)
    clock.advance(minutes=1)
    assert push_due_versions(ctx) == []
    assert _commands_since(ctx.engine, before) == []


def test_two_scheduled_versions_are_each_pushed_on_their_own_day(ctx, clock, dorm):
    first = _new_price(ctx, dorm, "0.75", ctx.now() + dt.timedelta(days=1))
    second = _new_price(ctx, dorm, "0.85", ctx.now() + dt.timedelta(days=3))
    runs = []
    for _day in range(5):
        clock.advance(days=1)
        runs.append([p.version_id for p in push_due_versions(ctx)])
    assert runs == [[first], [], [second], [], []]


def test_a_version_saved_just_before_it_took_effect_but_committed_after_a_run_is_still_pushed(ctx, clock, dorm):
    shop = next(x["id"] for x in tariffs.tariff_list(ctx) if x["name"] == "Shop")
    run_at = clock.now + dt.timedelta(days=1)
    _new_price(ctx, shop, "0.95", run_at - tariffs.AUTO_PUSH_SETTLE)
    clock.now = run_at
    push_due_versions(ctx)  # pushes Shop's version, whose mark settles in this run
    clock.now = run_at - dt.timedelta(seconds=2)  # a slow save: its clock was read before the run's
    late = _new_price(ctx, dorm, "0.75", run_at - dt.timedelta(seconds=1))
    clock.now = run_at + dt.timedelta(minutes=1)
    assert [p.version_id for p in push_due_versions(ctx)] == [late]
    clock.advance(hours=2)
    assert push_due_versions(ctx) == []


def test_the_operation_log_shows_the_system_pushed_the_scheduled_version(ctx, clock, dorm):
    version = _new_price(ctx, dorm, "0.75", ctx.now() + dt.timedelta(days=1))
    clock.advance(days=1, hours=1)
    [pushed] = push_due_versions(ctx)
    with ctx.engine.connect() as conn:
        [row] = [r for r in audit.search(conn, action="billing.tariff_push") if r["operator"] == "system"]
    after = json.loads(row["after"])
    assert (row["target"], row["source"]) == (f"tariff:{dorm}", "scheduler")
    assert after == {"batch_id": pushed.batch_id, "version_id": version, "meters": 2, "reason": "scheduled"}
    with ctx.engine.connect() as conn:
        operators = set(conn.execute(sa.select(command.c.operator).where(command.c.batch_id == pushed.batch_id))
                        .scalars())
    assert operators == {"system"}


def _page_text(ctx, lang: str) -> str:
    return json.dumps(tariff_cards(desk.tariffs_overview(ctx), lang), cls=plotly.utils.PlotlyJSONEncoder,
                      ensure_ascii=False)


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_tariffs_page_says_a_future_version_is_pushed_automatically_on_its_day(ctx, clock, dorm, lang):
    _new_price(ctx, dorm, "0.75", ctx.now() + dt.timedelta(days=1))
    day = ctx.local_day(ctx.now() + dt.timedelta(days=1)).isoformat()
    scheduled = t("tariffs.scheduled", lang, date=day)
    assert scheduled in _page_text(ctx, lang)
    clock.advance(days=1, minutes=1)
    push_due_versions(ctx)
    text = _page_text(ctx, lang)
    assert scheduled not in text and t("cashier.state.in_force", lang) in text


# --- in the serving process: after a poll cycle, on the simulated meters -------------------------

@pytest.fixture
def serving(any_engine):
    """The dispatcher, the poll and billing's jobs on a simulated site, wired as the serving process wires them
    (the scheduler is not started: the tests run the jobs by hand, in the order the scheduler may)."""
    site = prepaid_site(free_port_block(2))
    clock = Clock(utcnow())
    load_site(any_engine, site, clock.now)
    with any_engine.begin() as conn:
        conn.execute(gateway.update().values(timeout_s=0.8, retries=0))  # quick, yet answered on a busy machine
    ctx = make_ctx(any_engine, clock)
    with run_field_in_thread(site) as ft, FieldIO(ProfileRegistry()) as fio:
        events, jobs = EventBus(), Jobs(clock=utcnow)
        collector = CollectorService(any_engine, fio, clock=utcnow, events=events)
        dispatcher = make_dispatcher(any_engine, fio, TEST_MASTER_KEY, ctx, events=events)
        jobs.add(POLL_JOB, collector.run_cycle, 60)
        attach_billing(collector, dispatcher, ctx, jobs, events, reconcile_interval_s=300, tariff_push_interval_s=60)
        dispatcher.start()
        rt = SimpleNamespace(engine=any_engine, billing=ctx, collector=collector, jobs=jobs)
        try:
            yield rt, clock, ft.field
        finally:
            dispatcher.stop()


def test_the_tariff_job_after_its_valid_from_brings_the_new_prices_to_the_meters(serving):
    rt, clock, field = serving
    month_ago = clock.now - dt.timedelta(days=30)
    dorm = tariffs.create_tariff(rt.billing, "Dorm", "flat", "admin", prices={"flat": "0.60"}, valid_from=month_ago)
    shop = tariffs.create_tariff(rt.billing, "Shop", "flat", "admin", prices={"flat": "0.90"}, valid_from=month_ago)
    tariffs.assign_tariff(rt.billing, [address(1), address(2)], dorm, "admin")
    tariffs.assign_tariff(rt.billing, [address(3), address(4)], shop, "admin")
    rt.jobs.run(POLL_JOB)
    _new_price(rt.billing, dorm, "0.75", clock.now + dt.timedelta(days=1))
    rt.jobs.run(TARIFF_PUSH_JOB)
    rt.jobs.run(POLL_JOB)

    def flat_prices():
        return [field.meter(address(n)).tariff.prices[2] for n in (1, 2, 3, 4)]
    assert flat_prices() == [6000, 6000, 9000, 9000], "not before its day"
    clock.advance(days=1, minutes=1)
    rt.jobs.run(TARIFF_PUSH_JOB)   # the version took effect: its SET_TARIFF is queued
    rt.jobs.run(POLL_JOB)          # ... and sent before this poll at the latest
    assert flat_prices() == [7500, 7500, 9000, 9000]


def test_a_database_that_cannot_be_reached_is_the_tariff_jobs_error_and_never_stops_the_poll(tmp_path, caplog):
    unreachable = make_ctx(sa.create_engine(f"duckdb:///{tmp_path / 'no such dir' / 'x.duckdb'}"), Clock(utcnow()))
    jobs, polls = Jobs(), []
    jobs.add(POLL_JOB, lambda: polls.append(1), 60)
    add_billing_jobs(jobs, EventBus(), unreachable, reconcile_interval_s=300, tariff_push_interval_s=60)
    assert jobs.run(TARIFF_PUSH_JOB) is False
    assert jobs.run(POLL_JOB) is True and polls == [1]
    push = next(s for s in jobs.status() if s.name == TARIFF_PUSH_JOB)
    assert push.last_ok is False and push.last_error and f"job {TARIFF_PUSH_JOB} failed" in caplog.text


def test_an_unreadable_mark_makes_every_scheduled_version_be_looked_at_again(ctx, clock, dorm):
    version = _new_price(ctx, dorm, "0.75", ctx.now() + dt.timedelta(days=1))
    with ctx.engine.begin() as conn:
        set_setting(conn, tariffs.AUTO_PUSH_STATE, "{not json", ctx.now())
    clock.advance(days=2)
    assert [p.version_id for p in push_due_versions(ctx)] == [version]
    assert push_due_versions(ctx) == []
