"""Tariff rules on both engines: a version that could never be in force is refused saying which version is, a
price of 0 is saved only when confirmed, a tariff is renamed and retired (tariff.edit, logged; refused while a
meter bills by it or while it is the default), a retired tariff takes no new version, meter or account, and
pushing a tariff no meter bills by says so."""
from __future__ import annotations

import datetime as dt
import json

import pytest
import sqlalchemy as sa

from billing import tariffs
from billing.accounts import open_account
from billing.errors import BillingError
from billing.settings import set_default_tariff
from storage.schema import audit_log, tariff, tariff_version
from tests.billing_support import Clock, actor, address, flat_tariff, load_site, make_ctx, prepaid_site, write_reading


@pytest.fixture
def clock(fixed_now):
    return Clock(fixed_now)


@pytest.fixture
def ctx(any_engine, clock, fixed_now):
    load_site(any_engine, prepaid_site(15320), fixed_now)
    return make_ctx(any_engine, clock)


def _flat(ctx, name: str, price: str = "0.60", days_ago: int = 30) -> int:
    return tariffs.create_tariff(ctx, name, "flat", "admin", prices={"flat": price},
                                 valid_from=ctx.now() - dt.timedelta(days=days_ago))


def _versions(engine, tariff_id: int) -> list[int]:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(tariff_version.c.version_no)
                                 .where(tariff_version.c.tariff_id == tariff_id)).scalars())


def _log(engine, action: str) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(audit_log).where(audit_log.c.action == action)
                                              .order_by(audit_log.c.id)).mappings()]


# ---------------------------------------------------------------------------------------------
# versions that could never be in force
def test_a_version_starting_before_the_version_in_force_is_refused_naming_it(ctx):
    tid = _flat(ctx, "Dorm")
    with pytest.raises(BillingError) as refused:
        tariffs.add_tariff_version(ctx, tid, "admin", prices={"flat": "0.70"}, valid_from=dt.datetime(2020, 1, 1))
    assert refused.value.code == "version_never_in_force" and refused.value.params["version"] == 1
    message = refused.value.message("en")
    assert "2020-01-01" in message and f"{ctx.local(ctx.now() - dt.timedelta(days=30)):%Y-%m-%d %H:%M}" in message
    assert "版本 1" in refused.value.message("zh")
    assert _versions(ctx.engine, tid) == [1]


def test_a_version_starting_when_another_starts_is_refused(ctx):
    tid = _flat(ctx, "Dorm")
    later = ctx.now() + dt.timedelta(days=3)
    tariffs.add_tariff_version(ctx, tid, "admin", prices={"flat": "0.70"}, valid_from=later)
    with pytest.raises(BillingError) as refused:
        tariffs.add_tariff_version(ctx, tid, "admin", prices={"flat": "0.80"}, valid_from=later)
    assert refused.value.code == "version_same_start" and refused.value.params["version"] == 2
    assert _versions(ctx.engine, tid) == [1, 2]


def test_a_version_between_the_one_in_force_and_a_scheduled_one_is_saved(ctx):
    tid = _flat(ctx, "Dorm")
    tariffs.add_tariff_version(ctx, tid, "admin", prices={"flat": "0.80"}, valid_from=ctx.now() + dt.timedelta(days=9))
    tariffs.add_tariff_version(ctx, tid, "admin", prices={"flat": "0.70"}, valid_from=ctx.now() + dt.timedelta(days=2))
    tariffs.add_tariff_version(ctx, tid, "admin", prices={"flat": "0.65"})   # from now
    assert _versions(ctx.engine, tid) == [1, 2, 3, 4]


# ---------------------------------------------------------------------------------------------
# a price of 0
def test_a_flat_price_of_0_is_refused_until_confirmed(ctx):
    with pytest.raises(BillingError) as refused:
        tariffs.create_tariff(ctx, "Free", "flat", "admin", prices={"flat": "0"})
    assert refused.value.code == "price_zero_unconfirmed" and refused.value.params["prices"] == "flat"
    with ctx.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(tariff)).scalar() == 0
    tid = tariffs.create_tariff(ctx, "Free", "flat", "admin", prices={"flat": "0"}, zero_confirmed=True)
    assert _versions(ctx.engine, tid) == [1]


def test_a_time_of_use_price_of_0_needs_confirming_only_where_a_segment_uses_it(ctx):
    prices = {"sharp": "0", "peak": "0.9", "flat": "0.6", "valley": "0.3"}
    tid = tariffs.create_tariff(ctx, "No sharp", "tou", "admin", prices=prices,
                                segments=[("00:00", "valley"), ("08:00", "peak")])   # sharp unused: nothing to ask
    with pytest.raises(BillingError) as refused:
        tariffs.add_tariff_version(ctx, tid, "admin", prices={**prices, "valley": "0"},
                                   segments=[("00:00", "valley"), ("08:00", "peak")])
    assert refused.value.params["prices"] == "valley"


def test_a_tier_price_of_0_names_its_tier(ctx):
    with pytest.raises(BillingError) as refused:
        tariffs.create_tariff(ctx, "Lifeline", "tiered", "admin", tiers=[(50, "0"), (None, "0.6")])
    assert refused.value.params["prices"] == "tier 1"


# ---------------------------------------------------------------------------------------------
# renaming and retiring
def test_a_tariff_is_renamed_by_an_operator_who_may_edit_tariffs_and_the_log_has_both_names(ctx):
    tid = _flat(ctx, "Dorm")
    tariffs.rename_tariff(ctx, tid, "  Dormitory   2026 ", actor("admin"))
    assert next(x for x in tariffs.tariff_list(ctx) if x["id"] == tid)["name"] == "Dormitory 2026"
    row = _log(ctx.engine, "billing.tariff_rename")[-1]
    assert json.loads(row["before"]) == {"name": "Dorm"} and json.loads(row["after"]) == {"name": "Dormitory 2026"}
    assert row["operator"] == "admin" and row["source"] == "127.0.0.1"


def test_renaming_to_a_taken_name_is_refused(ctx):
    tid = _flat(ctx, "Dorm")
    _flat(ctx, "Shop")
    with pytest.raises(BillingError) as refused:
        tariffs.rename_tariff(ctx, tid, "Shop", actor("admin"))
    assert refused.value.code == "tariff_name_taken"


@pytest.mark.parametrize("change", ["rename", "retire"])
def test_an_operator_without_tariff_edit_may_not_rename_or_retire_and_the_refusal_is_logged(ctx, change):
    tid = _flat(ctx, "Dorm")
    with pytest.raises(BillingError) as refused:
        if change == "rename":
            tariffs.rename_tariff(ctx, tid, "Other", actor("operator"))   # may push tariffs, not edit them
        else:
            tariffs.retire_tariff(ctx, tid, actor("operator"))
    assert refused.value.code == "permission_denied" and refused.value.params["permission"] == "tariff.edit"
    assert _log(ctx.engine, "permission.denied")[-1]["target"] == f"tariff:{tid}"
    listed = next(x for x in tariffs.tariff_list(ctx) if x["id"] == tid)
    assert listed["name"] == "Dorm" and listed["retired_at"] is None


def test_a_tariff_a_meter_bills_by_is_not_retired_until_its_meters_move(ctx):
    dorm, shop = _flat(ctx, "Dorm"), _flat(ctx, "Shop")
    set_default_tariff(ctx, shop, "admin")
    tariffs.assign_tariff(ctx, [address(1), address(2)], dorm, "admin", push=False)
    with pytest.raises(BillingError) as refused:
        tariffs.retire_tariff(ctx, dorm, actor("admin"))
    assert refused.value.code == "tariff_in_use" and refused.value.params["n"] == 2
    tariffs.assign_tariff(ctx, [address(1), address(2)], shop, "admin", push=False)
    tariffs.retire_tariff(ctx, dorm, actor("admin"))
    listed = next(x for x in tariffs.tariff_list(ctx) if x["id"] == dorm)
    assert listed["retired_at"] == ctx.now() and listed["retired_by"] == "admin" and len(listed["versions"]) == 1
    assert _log(ctx.engine, "billing.tariff_retire")[-1]["target"] == f"tariff:{dorm}"


def test_the_default_tariff_is_not_retired(ctx):
    tid = flat_tariff(ctx)
    with pytest.raises(BillingError) as refused:
        tariffs.retire_tariff(ctx, tid, actor("admin"))
    assert refused.value.code == "tariff_is_default"


def test_a_retired_tariff_takes_no_version_meter_push_or_account(ctx):
    default = flat_tariff(ctx)
    old = _flat(ctx, "Old")
    tariffs.retire_tariff(ctx, old, actor("admin"))
    write_reading(ctx.engine, address(3), balance="0", purchase_count=0, ts=ctx.now())
    attempts = {
        "version": lambda: tariffs.add_tariff_version(ctx, old, "admin", prices={"flat": "0.7"}),
        "assign": lambda: tariffs.assign_tariff(ctx, [address(1)], old, "admin"),
        "push": lambda: tariffs.push_tariff(ctx, old, "admin", meter_addresses=[address(1)]),
        "account": lambda: open_account(ctx, holder_name="Li Lei", meter_addresses=[address(3)], operator="admin",
                                        tariff_id=old),
    }
    for name, attempt in attempts.items():
        with pytest.raises(BillingError) as refused:
            attempt()
        assert refused.value.code == "tariff_retired", name
    assert open_account(ctx, holder_name="Li Lei", meter_addresses=[address(3)], operator="admin",
                        tariff_id=default).status == "open"


def test_a_scheduled_version_of_a_retired_tariff_is_never_pushed(ctx, clock):
    shop = flat_tariff(ctx)
    old = _flat(ctx, "Old")
    tariffs.add_tariff_version(ctx, old, "admin", prices={"flat": "0.7"}, valid_from=ctx.now() + dt.timedelta(days=1))
    tariffs.retire_tariff(ctx, old, actor("admin"))
    clock.advance(days=2)
    assert [p.version_id for p in tariffs.push_due_versions(ctx)] == []
    assert shop != old


# ---------------------------------------------------------------------------------------------
# pushing a tariff nobody uses
def test_pushing_a_tariff_no_meter_bills_by_says_so_and_queues_nothing(ctx):
    tid = _flat(ctx, "Unused")
    with pytest.raises(BillingError) as refused:
        tariffs.push_tariff(ctx, tid, "admin")
    assert refused.value.code == "tariff_no_meters"
    assert "Unused" in refused.value.message("en") and "Unused" in refused.value.message("zh")
    assert _log(ctx.engine, "billing.tariff_push") == []


def test_a_new_tariff_may_take_the_name_a_renamed_one_was_created_with(ctx):
    old = _flat(ctx, "Dorm")
    tariffs.rename_tariff(ctx, old, "Dorm 2025", actor("admin"))
    new = _flat(ctx, "Dorm", price="0.65")
    names = {x["id"]: x["name"] for x in tariffs.tariff_list(ctx)}
    assert names == {old: "Dorm 2025", new: "Dorm"}
    with pytest.raises(BillingError) as refused:
        tariffs.rename_tariff(ctx, old, "Dorm", actor("admin"))
    assert refused.value.code == "tariff_name_taken"
