"""Every search box that becomes SQL LIKE treats what is typed literally, on both engines: a typed % or _ finds
only rows holding that character, the escape character finds itself, and a NUL finds nothing (no error)."""
from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from simulator.site import BusSpec, GatewaySpec, MeterSpec, SiteSpec
from storage import audit
from storage import billing as store
from storage import desk
from storage.schema import meter
from tests.billing_support import address, load_site

# the room and the account holder of each meter: one holds a %, one a _, one the escape character /
ROOMS = {1: "A-50% off", 2: "A_1", 3: "A/1", 4: "A-101"}
HOLDERS = {1: "100% 张", 2: "王_五", 3: "李/四", 4: "赵六"}


def _site() -> SiteSpec:
    meters = [MeterSpec(address=address(n), unit=n, profile="acrel-ddsy1352", building="Dorm A", floor=1, room=name)
              for n, name in ROOMS.items()]
    return SiteSpec("search", [GatewaySpec("GW-A", buses=[BusSpec(1, 15020, meters=meters)])])


@pytest.fixture
def engine(any_engine, fixed_now):
    load_site(any_engine, _site(), fixed_now)
    with any_engine.begin() as conn:
        ids = {a: (i, r) for i, a, r in conn.execute(sa.select(meter.c.id, meter.c.address, meter.c.room_id))}
        entry_ids = iter(store.next_entry_ids(conn, len(ROOMS)))
        for n in ROOMS:
            meter_id, room_id = ids[address(n)]
            account_id = store.insert_account(conn, room_id=room_id, holder_name=HOLDERS[n], phone=f"1380000000{n}",
                                              status="open", opened_at=fixed_now, operator=f"cashier{n}")
            store.insert_link(conn, account_id=account_id, meter_id=meter_id, base_purchase_count=0, now=fixed_now,
                              operator="t")
            store.insert_entries(conn, [dict(id=next(entry_ids), receipt_no=f"S{n}", kind="sale", amount="1.00",
                                             account_id=account_id, meter_id=meter_id, purchase_count=1,
                                             operator=f"cashier{n}", source="desk", created_at=fixed_now,
                                             state="confirmed")])
        audit.record(conn, operator="50%", action="auth.login", target="x", ts=fixed_now)
        audit.record(conn, operator="cashier", action="auth_login", target="x", ts=fixed_now)
    return any_engine


def _rooms(rows) -> set[str]:
    return {r["room"] for r in rows}


@pytest.mark.parametrize("typed, expected", [("%", {"A-50% off"}), ("_", {"A_1"}), ("/", {"A/1"}),
                                             ("0%", {"A-50% off"}), ("A_", {"A_1"}), ("a/", {"A/1"})])
def test_a_meter_search_finds_only_rooms_holding_the_typed_wildcard(engine, typed, expected):
    with engine.connect() as conn:
        assert _rooms(desk.find_meters(conn, typed)) == expected


@pytest.mark.parametrize("typed, expected", [("%", {"A-50% off"}), ("_", {"A_1"}), ("/", {"A/1"})])
def test_the_records_text_filter_finds_only_entries_of_rooms_holding_the_typed_wildcard(engine, typed, expected):
    with engine.connect() as conn:
        assert _rooms(desk.ledger_rows(conn, text=typed)) == expected


@pytest.mark.parametrize("typed, expected", [("%", {"100% 张"}), ("_", {"王_五"}), ("/", {"李/四"})])
def test_the_account_search_finds_only_holders_holding_the_typed_wildcard(engine, typed, expected):
    with engine.connect() as conn:
        assert {r["holder_name"] for r in store.accounts_search(conn, typed)} == expected
        assert {r["holder_name"] for r in desk.account_rows(conn, event="opened", text=typed)} == expected


def test_an_operation_log_family_filter_takes_its_dot_and_underscore_literally(engine):
    with engine.connect() as conn:
        assert {r["action"] for r in audit.search(conn, action="auth.")} == {"auth.login"}
        assert [r["operator"] for r in audit.search(conn, operator="50%")] == ["50%"]
        assert audit.search(conn, operator="%") == []


def test_a_search_with_a_nul_character_finds_nothing_instead_of_failing(engine):
    with engine.connect() as conn:
        assert desk.find_meters(conn, "A\x00") == []
        assert desk.ledger_rows(conn, text="\x00", operator="a\x00", building_name="\x00") == []
        assert store.accounts_search(conn, "\x00") == []
        assert desk.account_rows(conn, event="opened", text="\x00", operator="\x00") == []
        assert desk.rooms(conn, "Dorm\x00") == []
        assert audit.search(conn, operator="\x00", action="auth\x00.") == []
