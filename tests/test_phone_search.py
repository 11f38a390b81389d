"""Phone numbers: shown as typed, searched by their digits on both engines ("+86 138-0013-8000" is found by
13800138000, by "138 0013 8000" and by part of it), and a database from before (version 6) gains the digits of
the numbers it already holds when it is upgraded."""
from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from billing.accounts import find_accounts, get_account, open_account
from billing.desk import account_events
from core.phone import phone_digits, search_digits
from storage.engine import dispose, open_engine
from storage.migrations import HEAD, migrate
from storage.schema import account, metadata, schema_version
from tests.billing_support import Clock, address, flat_tariff, load_site, make_ctx, prepaid_site, write_reading
from tests.conftest import engine_url

TYPED = "+86 138-0013-8000"


@pytest.mark.parametrize("typed, digits", [
    ("+86 138-0013-8000", "13800138000"),
    ("0086 13800138000", "13800138000"),
    ("8613800138000", "13800138000"),        # 86 without its + before a mobile number
    ("138 0013 8000", "13800138000"),
    ("０２１－５５５５ ６６６６", "02155556666"),   # full-width digits and dash
    ("010-8888 7777", "01088887777"),
    ("", None),
    ("no digits", None),
])
def test_a_phone_number_is_kept_as_its_digits_without_the_country_code(typed, digits):
    assert phone_digits(typed) == digits


@pytest.mark.parametrize("text, digits", [
    ("13800138000", "13800138000"), ("138-0013", "1380013"), ("+86 138", "138"), ("(010) 8888", "0108888"),
    ("B1-101", None), ("王", None), ("12", None),
])
def test_only_a_search_that_looks_like_a_phone_number_is_matched_by_digits(text, digits):
    assert search_digits(text) == digits


@pytest.fixture
def ctx(any_engine, fixed_now):
    load_site(any_engine, prepaid_site(15420), fixed_now)
    context = make_ctx(any_engine, Clock(fixed_now))
    flat_tariff(context)
    for n in (1, 2):
        write_reading(any_engine, address(n), balance="10.00", purchase_count=3, ts=fixed_now)
    return context


@pytest.fixture
def opened(ctx):
    return open_account(ctx, holder_name="Wang Fang", meter_addresses=[address(1)], operator="admin", phone=TYPED)


@pytest.mark.parametrize("search", ["13800138000", "138 0013 8000", "138-0013-8000", "+86 138 0013 8000", "0013800"])
def test_an_account_is_found_by_its_phone_however_the_search_is_typed(ctx, opened, search):
    assert [a["id"] for a in find_accounts(ctx, search)] == [opened.id]


def test_the_phone_is_shown_as_it_was_typed(ctx, opened):
    assert get_account(ctx, opened.id).phone == TYPED


def test_a_search_by_digits_finds_no_account_whose_phone_lacks_them(ctx, opened):
    open_account(ctx, holder_name="Li Lei", meter_addresses=[address(2)], operator="admin", phone="139 0000 1111")
    assert [a["holder_name"] for a in find_accounts(ctx, "1390000")] == ["Li Lei"]
    assert find_accounts(ctx, "13800138001") == []


def test_openings_are_found_by_the_phones_digits_too(ctx, opened):
    rows = account_events(ctx, "opened", text="13800138000")
    assert [r["id"] for r in rows] == [opened.id]


SINCE_7 = {"account": ("phone_digits",), "tariff": ("display_name", "retired_at", "retired_by")}


def _schema_of_version_6() -> sa.MetaData:
    """Today's tables without the columns version 7 added (DuckDB cannot drop a column other tables depend on)."""
    old = sa.MetaData()
    for table in metadata.sorted_tables:
        if table.name in SINCE_7:
            sa.Table(table.name, old, *[c._copy() for c in table.columns if c.name not in SINCE_7[table.name]])
        else:
            table.to_metadata(old)
    return old


@pytest.mark.parametrize("kind", ["duckdb", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_a_version_6_database_gains_the_digits_of_the_phones_it_holds(kind, tmp_path, fixed_now):
    engine = open_engine(engine_url(kind, tmp_path))
    try:
        with engine.begin() as conn:  # a database from before version 7
            _schema_of_version_6().create_all(conn)
            conn.execute(schema_version.insert().values(version=6, applied_at=fixed_now, description="v6"))
            for i, phone in enumerate((TYPED, "139 0000 1111", None), start=1):
                conn.execute(sa.text("INSERT INTO account (id, holder_name, phone, status, opened_at, operator) "
                                     "VALUES (:id, :holder, :phone, 'open', :at, 'admin')"),
                             {"id": i, "holder": f"Holder {i}", "phone": phone, "at": fixed_now})
        assert migrate(engine) == HEAD
        with engine.connect() as conn:
            rows = conn.execute(sa.select(account.c.phone, account.c.phone_digits).order_by(account.c.id)).all()
            retired = conn.execute(sa.text("SELECT count(*) FROM tariff WHERE retired_at IS NOT NULL")).scalar()
        assert [tuple(r) for r in rows] == [(TYPED, "13800138000"), ("139 0000 1111", "13900001111"), (None, None)]
        assert retired == 0
        ctx = make_ctx(engine, Clock(fixed_now + dt.timedelta(days=1)))
        assert [a["id"] for a in find_accounts(ctx, "13800138000")] == [1]
    finally:
        dispose(engine)
