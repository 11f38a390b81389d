"""Overview: the map-state rule, the tile shaping and patches, the figure builder, and the KPI queries
on both engines. No browser here (tests/test_overview_browser.py drives Chromium)."""
from __future__ import annotations

import datetime as dt
import itertools
import json
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from core.config import ConfigError, load_config, site_zone
from dashboard.components.figures import FONT_FAMILY, power_curve_figure
from dashboard.components.overview import map_buildings, tile_patch
from dashboard.overview_data import (
    TileFilter, changed_tiles, local_day_bounds, meter_panel, refresh, tile_codes, tile_frame, tile_positions,
)
from storage.overview import (
    energy_since, gateway_counts, map_state, map_states, meter_states_frame, overview_kpis,
    overview_version, sales_between,
)
from storage.schema import account, bus, bus_state, command, gateway, ledger_entry, meter, meter_state
from storage.timeseries import append_readings, upsert_meter_state
from storage.topology import insert_topology

ZONE = site_zone("+08:00")


# ---------------------------------------------------------------------------------------------
# The map-state rule

def _state(comm="online", status="opened", prepaid=True, arrears=False, relay=True, alarm1=False, alarm2=False):
    return map_state(comm, status, prepaid, arrears, relay, alarm1, alarm2)


@pytest.mark.parametrize("kwargs, expected", [
    ({}, "normal"),
    ({"alarm1": True}, "alarm1"),
    ({"alarm1": True, "alarm2": True}, "alarm2"),
    ({"arrears": True, "alarm1": True, "alarm2": True, "relay": False}, "arrears"),
    ({"prepaid": False}, "not_opened"),
    ({"comm": "lost", "arrears": True}, "lost"),
])
def test_each_of_the_six_map_states(kwargs, expected):
    assert _state(**kwargs) == expected


def test_a_relay_opened_by_command_in_prepaid_mode_shows_as_arrears():
    assert _state(relay=False) == "arrears"


def test_a_meter_without_an_opened_account_is_not_opened_even_in_arrears():
    assert _state(status="not_opened", arrears=True) == "not_opened"


def test_an_open_relay_without_prepaid_control_is_not_arrears():
    assert _state(prepaid=False, relay=False) == "not_opened"


def test_a_meter_never_read_counts_as_lost_contact():
    assert _state(comm="unknown") == "lost" and _state(comm=None, prepaid=None, relay=None) == "lost"


def test_unknown_flags_count_as_not_set():
    assert _state(prepaid=None, arrears=None, relay=None, alarm1=None, alarm2=None) == "normal"


def test_the_vectorised_rule_agrees_with_the_scalar_rule_on_every_combination():
    flags = (True, False, None)
    combos = list(itertools.product(("online", "lost", "unknown"), ("opened", "not_opened"), flags, flags, flags,
                                    flags, flags))
    df = pd.DataFrame(combos, columns=["comm_state", "status", "prepaid_enabled", "arrears", "relay_closed",
                                       "alarm1", "alarm2"])
    expected = [map_state(*c) for c in combos]
    assert list(map_states(df)) == expected


def test_the_vectorised_rule_takes_plain_bool_columns():
    df = pd.DataFrame({"comm_state": ["online", "online"], "status": ["opened", "opened"],
                       "prepaid_enabled": np.array([True, True]), "arrears": np.array([False, True]),
                       "relay_closed": np.array([True, True]), "alarm1": np.array([True, False]),
                       "alarm2": np.array([False, False])})
    assert list(map_states(df)) == ["alarm1", "arrears"]


# ---------------------------------------------------------------------------------------------
# Shaping tiles (pure pandas)

def _states_frame():
    rows = [  # building, floor, room, address, state
        ("Building 1", 1, "B1-101", "202611210001", "normal"),
        ("Building 1", 1, "B1-102", "202611210002", "arrears"),
        ("Building 1", 2, "B1-201", "202611210003", "alarm1"),
        ("Building 2", 1, "B2-101", "202611210004", "lost"),
        ("Building 2", 3, "B2-301", "202611210005", "not_opened"),
    ]
    df = pd.DataFrame(rows, columns=["building", "floor", "room", "address", "state"])
    df.insert(0, "meter_id", range(1, len(df) + 1))
    df["room_id"] = range(10, 10 + len(df))
    master = pd.DataFrame([{"meter_id": 99, "building": None, "floor": None, "room": None, "address": "202611218001",
                            "state": "not_opened", "room_id": None}])
    return pd.concat([df, master], ignore_index=True)


def test_the_map_holds_room_meters_only():
    tiles = tile_frame(_states_frame(), TileFilter())
    assert tiles["meter_id"].tolist() == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("flt, ids", [
    (TileFilter(building="Building 2"), [4, 5]),
    (TileFilter(floor=1), [1, 2, 4]),
    (TileFilter(building="Building 1", floor=2), [3]),
    (TileFilter(search="b2-3"), [5]),
    (TileFilter(search="0002"), [2]),
    (TileFilter(search="nothing"), []),
])
def test_filters_and_search_pick_the_tiles(flt, ids):
    assert tile_frame(_states_frame(), flt)["meter_id"].tolist() == ids


def test_filter_inputs_treat_star_and_blank_as_all():
    assert TileFilter.from_inputs("*", "*", "  ") == TileFilter()
    assert TileFilter.from_inputs("Building 1", "3", " B1 ") == TileFilter("Building 1", 3, "B1")
    assert TileFilter.from_inputs(None, "not a floor", None) == TileFilter()


def test_tile_positions_address_building_floor_and_place_on_the_floor():
    tiles = tile_frame(_states_frame(), TileFilter())
    assert tile_positions(tiles).tolist() == [[0, 0, 0], [0, 0, 1], [0, 1, 0], [1, 0, 0], [1, 1, 0]]


def test_positions_match_the_nested_map_the_page_renders():
    tiles = tile_frame(_states_frame(), TileFilter())
    buildings = map_buildings(tiles, "en")
    for (b, f, k), meter_id in zip(tile_positions(tiles).tolist(), tiles["meter_id"]):
        assert buildings[b]["floors"][f]["tiles"][k][0] == meter_id
    assert [f["label"] for f in buildings[1]["floors"]] == ["Floor 1", "Floor 3"]
    assert buildings[0]["floors"][0]["tiles"][1] == [2, "B1-102", "202611210002", "A"]


def test_codes_and_changes_between_two_ticks():
    tiles = tile_frame(_states_frame(), TileFilter())
    before = tile_codes(tiles)
    assert before == "NA1LO"
    tiles.loc[2, "state"] = "arrears"
    assert changed_tiles(before, tile_codes(tiles)) == [2]
    with pytest.raises(ValueError):
        changed_tiles("NN", "NNN")


def test_a_patch_replaces_only_the_changed_tile():
    tiles = tile_frame(_states_frame(), TileFilter())
    patch = tile_patch(tiles, tile_positions(tiles), [4]).to_plotly_json()
    assert patch["operations"] == [{"operation": "Assign", "location": [1, "floors", 1, "tiles", 0],
                                    "params": {"value": [5, "B2-301", "202611210005", "O"]}}]


def test_the_site_day_runs_from_local_midnight_in_utc():
    assert local_day_bounds(dt.datetime(2026, 11, 21, 8, 0), ZONE) == (
        dt.datetime(2026, 11, 20, 16, 0), dt.datetime(2026, 11, 21, 16, 0))
    assert local_day_bounds(dt.datetime(2026, 11, 21, 16, 30), ZONE)[0] == dt.datetime(2026, 11, 21, 16, 0)
    assert local_day_bounds(dt.datetime(2026, 11, 21, 16, 30), site_zone("UTC"))[0] == dt.datetime(2026, 11, 21)


def test_the_site_time_zone_is_a_setting(tmp_path):
    cfg = tmp_path / "site.toml"
    cfg.write_text('[site]\ntimezone = "Asia/Urumqi"\n')
    assert load_config(cfg, env={}).timezone == "Asia/Urumqi"
    assert load_config(None, env={}).timezone == "+08:00"
    cfg.write_text('[site]\ntimezone = "Mars/Olympus"\n')
    with pytest.raises(ConfigError, match="site.timezone"):
        load_config(cfg, env={})


# ---------------------------------------------------------------------------------------------
# The figure builder

def test_the_power_curve_draws_the_frame_it_is_given():
    df = pd.DataFrame({"ts": pd.to_datetime(["2026-11-21 08:00", "2026-11-21 08:30", "2026-11-21 09:00"]),
                       "power_total": [0.5, 1.25, 0.75]})
    fig = power_curve_figure(df, "en")
    assert len(fig.data) == 1 and list(fig.data[0].y) == [0.5, 1.25, 0.75]
    assert fig.layout.yaxis.title.text == "Power (kW)"


def test_chart_fonts_fall_back_to_cjk_system_fonts():
    fig = power_curve_figure(pd.DataFrame({"ts": [], "power_total": []}), "zh")
    assert fig.layout.font.family == FONT_FAMILY
    assert "Noto Sans CJK SC" in FONT_FAMILY and "Microsoft YaHei" in FONT_FAMILY and "url(" not in FONT_FAMILY
    assert fig.layout.yaxis.title.text == "功率（kW）"


def test_an_empty_power_curve_says_there_are_no_readings():
    fig = power_curve_figure(pd.DataFrame({"ts": [], "power_total": []}), "en")
    assert len(fig.data) == 0 and fig.layout.annotations[0].text == "No readings in the last 24 hours"


# ---------------------------------------------------------------------------------------------
# Queries on both engines

NOW = dt.datetime(2026, 11, 21, 8, 0)  # 16:00 at the site; its day began 2026-11-20 16:00 UTC
MIDNIGHT = dt.datetime(2026, 11, 20, 16, 0)


def _site(engine):
    """Two gateways, three buses, four room meters and a master meter (no room)."""
    def row(gw, bus_no, port, unit, address, room=None, floor=None, profile="acrel-ddsy1352"):
        return {"building": "Building 1", "floor": floor, "room": room, "area": None, "gateway": gw,
                "host": "127.0.0.1", "framing": "socket", "bus": bus_no, "port": port, "unit": unit,
                "profile": profile, "meter_address": address}
    rows = [row("GW-A", 1, 15020, 1, "202611210001", "B1-101", 1), row("GW-A", 2, 15021, 1, "202611210002", "B1-102", 1),
            row("GW-B", 1, 15022, 1, "202611210003", "B1-201", 2), row("GW-B", 1, 15022, 2, "202611210004", "B1-202", 2),
            row("GW-B", 1, 15022, 3, "202611218001", profile="eastron-sdm630")]
    with engine.begin() as conn:
        insert_topology(conn, rows, NOW)
        conn.execute(meter.update().where(meter.c.room_id.is_not(None)).values(status="opened"))
        ids = dict(conn.execute(sa.select(meter.c.address, meter.c.id)).all())
    return ids


def _meter_state(engine, ids, **by_address):
    base = {"ts": NOW, "comm_state": "online", "miss_count": 0, "last_seen": NOW, "updated_at": NOW,
            "alarm_level": 0, "prepaid_enabled": True, "arrears": False, "relay_closed": True, "alarm1": False,
            "alarm2": False, "balance_fen": 5000}
    rows = [{**base, "meter_id": ids[a], **by_address.get(a, {})} for a in ids]
    with engine.begin() as conn:
        upsert_meter_state(conn, pd.DataFrame(rows))


def test_the_state_frame_derives_each_meters_state_and_keeps_money_exact(any_engine):
    ids = _site(any_engine)
    _meter_state(any_engine, ids, **{"202611210002": {"arrears": True, "balance_fen": -150},
                                     "202611210003": {"comm_state": "lost"},
                                     "202611210004": {"alarm1": True, "balance_fen": 1234}})
    with any_engine.connect() as conn:
        df = meter_states_frame(conn).set_index("address")
    assert df.loc["202611210001", "state"] == "normal" and df.loc["202611210002", "state"] == "arrears"
    assert df.loc["202611210003", "state"] == "lost" and df.loc["202611210004", "state"] == "alarm1"
    assert df.loc["202611218001", "state"] == "not_opened"  # no account for a master meter
    assert int(df.loc["202611210004", "balance_fen"]) == 1234 and int(df.loc["202611210002", "balance_fen"]) == -150


def test_a_meter_with_no_state_row_is_lost(any_engine):
    ids = _site(any_engine)
    with any_engine.connect() as conn:
        df = meter_states_frame(conn)
    assert len(df) == len(ids) and set(df["state"]) == {"lost"}


def test_kpis_count_states_gateways_sales_and_energy(any_engine):
    ids = _site(any_engine)
    _meter_state(any_engine, ids, **{"202611210002": {"arrears": True}, "202611210003": {"comm_state": "lost"},
                                     "202611210004": {"alarm2": True, "alarm1": True}})
    with any_engine.begin() as conn:
        bus_ids = [r.id for r in conn.execute(sa.select(bus.c.id).order_by(bus.c.id))]
        conn.execute(bus_state.insert(), [{"bus_id": b, "comm_state": "online", "updated_at": NOW} for b in bus_ids])
        states = meter_states_frame(conn)
        k = overview_kpis(conn, states, MIDNIGHT, MIDNIGHT + dt.timedelta(days=1))
    assert (k["meters"], k["online"], k["lost"]) == (5, 4, 1)
    assert k["states"] == {"normal": 1, "alarm1": 0, "alarm2": 1, "arrears": 1, "not_opened": 1, "lost": 1}
    assert (k["gateways_online"], k["gateways"]) == (2, 2)
    assert k["sales_today"]["net"] == Decimal("0.00") and k["energy_today_kwh"] == 0.0


def test_a_gateway_is_online_only_when_all_its_buses_are(any_engine):
    _site(any_engine)
    with any_engine.begin() as conn:
        gw = dict(conn.execute(sa.select(gateway.c.name, gateway.c.id)).all())
        a_buses = [r.id for r in conn.execute(sa.select(bus.c.id).where(bus.c.gateway_id == gw["GW-A"]))]
        b_bus = conn.execute(sa.select(bus.c.id).where(bus.c.gateway_id == gw["GW-B"])).scalar_one()
        conn.execute(bus_state.insert(), [{"bus_id": a_buses[0], "comm_state": "online", "updated_at": NOW},
                                          {"bus_id": a_buses[1], "comm_state": "lost", "updated_at": NOW},
                                          {"bus_id": b_bus, "comm_state": "online", "updated_at": NOW}])
        assert gateway_counts(conn) == (1, 2)
        conn.execute(bus_state.update().values(comm_state="online"))
        assert gateway_counts(conn) == (2, 2)
        conn.execute(bus_state.delete().where(bus_state.c.bus_id == b_bus))  # never polled: not online
        assert gateway_counts(conn) == (1, 2)


def test_todays_energy_is_the_register_increase_since_local_midnight(any_engine):
    ids = _site(any_engine)

    def reading(address, ts, kwh):
        return {"ts": ts, "meter_id": ids[address], "energy_total": kwh}
    before, after = MIDNIGHT - dt.timedelta(minutes=30), MIDNIGHT + dt.timedelta(hours=3)
    rows = [
        reading("202611210001", before - dt.timedelta(hours=2), 99.0), reading("202611210001", before, 100.0),
        reading("202611210001", MIDNIGHT, 100.5), reading("202611210001", after, 102.0),   # +2.0
        reading("202611210002", after, 50.0), reading("202611210002", NOW, 53.0),          # no reading before: +3.0
        reading("202611210003", before, 500.0), reading("202611210003", after, 3.0),       # swapped meter: +0
        reading("202611218001", before, 1000.0), reading("202611218001", after, 2000.0),   # master meter: not a room
    ]
    with any_engine.begin() as conn:
        append_readings(conn, pd.DataFrame(rows))
        assert energy_since(conn, MIDNIGHT) == pytest.approx(5.0)
        assert energy_since(conn, NOW + dt.timedelta(hours=1)) == 0.0


def _ledger(conn, meter_id, rows):
    """Entries (kind, amount, created_at, state[, index of the row a reversal reverses])."""
    acct = conn.execute(account.insert().values(holder_name="Test", opened_at=NOW, operator="t")
                        .returning(account.c.id)).scalar_one()
    ids = []
    for i, (kind, amount, created_at, state, *reverses) in enumerate(rows):
        ids.append(conn.execute(ledger_entry.insert().values(
            receipt_no=f"R{i:04d}", kind=kind, amount=Decimal(amount), account_id=acct, meter_id=meter_id,
            purchase_count=i + 1, operator="t", source="desk", created_at=created_at, state=state,
            reverses_entry_id=ids[reverses[0]] if reverses else None).returning(ledger_entry.c.id)).scalar_one())


def test_todays_sales_are_the_days_sales_less_refunds_and_reversals_that_did_not_fail(any_engine):
    ids = _site(any_engine)
    with any_engine.begin() as conn:
        _ledger(conn, ids["202611210001"], [
            ("sale", "50.00", MIDNIGHT + dt.timedelta(hours=1), "confirmed"),
            ("sale", "20.10", NOW - dt.timedelta(minutes=5), "pending"),
            ("sale", "99.00", NOW - dt.timedelta(minutes=4), "failed"),
            ("sale", "30.00", MIDNIGHT - dt.timedelta(minutes=1), "confirmed"),   # yesterday
            ("refund", "-5.00", NOW - dt.timedelta(minutes=3), "confirmed"),
            ("reversal", "-20.10", NOW - dt.timedelta(minutes=2), "pending", 1),
            ("closing_refund", "-7.00", NOW - dt.timedelta(minutes=1), "confirmed"),  # not a sale of the day
        ])
        assert sales_between(conn, MIDNIGHT, MIDNIGHT + dt.timedelta(days=1)) == {
            "sale": Decimal("70.10"), "refund": Decimal("-5.00"), "reversal": Decimal("-20.10"),
            "net": Decimal("45.00")}


def _find(component, ident):
    """The component with this id in a layout tree (lists, children), or None."""
    if isinstance(component, (list, tuple)):
        return next((f for f in (_find(c, ident) for c in component) if f is not None), None)
    if getattr(component, "id", None) == ident:
        return component
    return _find(getattr(component, "children", None), ident) if hasattr(component, "children") else None


@pytest.mark.parametrize("lang, words", [("en", ("Sales ¥1,311.00", "refunds −¥100.00", "reversals −¥40.00")),
                                         ("zh", ("售电 ¥1,311.00", "退费 −¥100.00", "冲正 −¥40.00"))])
def test_the_sales_kpi_shows_the_records_net_and_its_tooltip_the_gross_refunds_and_reversals(any_engine, lang, words):
    """The reported day: ¥1,311 sold, a ¥40 sale reversed and ¥100 refunded; the records say net ¥1,171."""
    from billing import desk
    from dashboard.components.overview import kpi_cards
    from dashboard.components.records import DEFAULT_KINDS, summary
    from tests.billing_support import Clock, make_ctx
    ids = _site(any_engine)
    with any_engine.begin() as conn:
        _ledger(conn, ids["202611210001"], [
            ("sale", "1000.00", MIDNIGHT + dt.timedelta(minutes=1), "confirmed"),   # 00:01 at the site
            ("sale", "271.00", NOW - dt.timedelta(hours=3), "confirmed"),
            ("sale", "40.00", NOW - dt.timedelta(hours=2), "confirmed"),
            ("reversal", "-40.00", NOW - dt.timedelta(hours=1), "confirmed", 2),
            ("refund", "-100.00", NOW - dt.timedelta(minutes=30), "confirmed"),
            ("sale", "60.00", NOW - dt.timedelta(minutes=10), "failed"),
            ("sale", "500.00", MIDNIGHT - dt.timedelta(minutes=1), "confirmed"),    # 23:59 the day before
        ])
    ctx = make_ctx(any_engine, Clock(NOW))
    today = dt.date(2026, 11, 21)
    filters = desk.record_filters(ctx, first_day=today, last_day=today, kinds=DEFAULT_KINDS)
    records_text = summary(desk.records(ctx, **filters), desk.record_totals(ctx, **filters), lang, 5000)
    cards = kpi_cards(refresh(any_engine, TileFilter(), None, NOW, ZONE).kpis, lang)
    assert _find(cards, "ov-kpi-sales").children == "¥1,171.00"
    assert "¥1,171.00" in records_text
    tip = _find(cards, "ov-kpi-sales-tip").children
    assert all(w in tip for w in words) and "¥1,171.00" in tip


def test_todays_sales_are_zero_on_a_database_without_a_ledger(any_engine):
    _site(any_engine)
    with any_engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE ledger_entry CASCADE" if any_engine.dialect.name == "postgresql"
                             else "DROP TABLE ledger_entry"))
    with any_engine.connect() as conn:
        assert sales_between(conn, MIDNIGHT, NOW)["net"] == Decimal("0.00")
        assert overview_version(conn)  # the version does not need the ledger either


def test_the_version_changes_when_a_poll_writes_or_a_meter_is_opened(any_engine):
    ids = _site(any_engine)
    _meter_state(any_engine, ids)
    with any_engine.connect() as conn:
        v1 = overview_version(conn)
        assert overview_version(conn) == v1
    with any_engine.begin() as conn:
        conn.execute(meter_state.update().values(updated_at=NOW + dt.timedelta(minutes=1)))
    with any_engine.connect() as conn:
        v2 = overview_version(conn)
    with any_engine.begin() as conn:
        conn.execute(meter.update().where(meter.c.address == "202611218001").values(status="opened"))
    with any_engine.connect() as conn:
        v3 = overview_version(conn)
    assert len({v1, v2, v3}) == 3


# ---------------------------------------------------------------------------------------------
# The tick: what the callback calls

def test_a_tick_after_one_meter_changed_patches_that_tile_only(any_engine):
    ids = _site(any_engine)
    _meter_state(any_engine, ids)
    first = refresh(any_engine, TileFilter(), None, NOW, ZONE, force=True)
    assert first.mode == "full" and first.codes == "NNNN"
    store = first.store()
    same = refresh(any_engine, TileFilter(), store, NOW, ZONE)
    assert same.mode == "same" and same.store(store) == store

    with any_engine.begin() as conn:
        conn.execute(meter_state.update().where(meter_state.c.meter_id == ids["202611210003"])
                     .values(relay_closed=False, updated_at=NOW + dt.timedelta(minutes=1)))
        conn.execute(meter_state.update().where(meter_state.c.meter_id != ids["202611210003"])
                     .values(updated_at=NOW + dt.timedelta(minutes=1), power_total=1.0))  # same state, new values
    tick = refresh(any_engine, TileFilter(), store, NOW, ZONE)
    assert tick.mode == "patch" and tick.changed == [2] and tick.codes == "NNAN"
    ops = json.loads(json.dumps(tile_patch(tick.tiles, tick.positions, tick.changed).to_plotly_json()))["operations"]
    assert ops == [{"operation": "Assign", "location": [0, "floors", 1, "tiles", 0],
                    "params": {"value": [ids["202611210003"], "B1-201", "202611210003", "A"]}}]
    assert tick.kpis["states"]["arrears"] == 1


def test_when_most_tiles_changed_the_tick_sends_the_whole_map(any_engine):
    ids = _site(any_engine)
    _meter_state(any_engine, ids)
    store = refresh(any_engine, TileFilter(), None, NOW, ZONE, force=True).store()
    with any_engine.begin() as conn:  # the gateways went down: every meter lost
        conn.execute(meter_state.update().values(comm_state="lost", updated_at=NOW + dt.timedelta(minutes=1)))
    tick = refresh(any_engine, TileFilter(), store, NOW, ZONE)
    assert tick.mode == "full" and tick.codes == "LLLL"


def test_a_new_filter_or_a_new_meter_redraws_the_map(any_engine):
    ids = _site(any_engine)
    _meter_state(any_engine, ids)
    store = refresh(any_engine, TileFilter(), None, NOW, ZONE, force=True).store()
    by_floor = refresh(any_engine, TileFilter(floor=2), store, NOW, ZONE)
    assert by_floor.mode == "full" and by_floor.tiles["room"].tolist() == ["B1-201", "B1-202"]
    with any_engine.begin() as conn:
        insert_topology(conn, [{"building": "Building 1", "floor": 1, "room": "B1-103", "area": None, "gateway": "GW-A",
                                "host": "127.0.0.1", "framing": "socket", "bus": 1, "port": 15020, "unit": 2,
                                "profile": "acrel-ddsy1352", "meter_address": "202611210009"}], NOW)
    grown = refresh(any_engine, TileFilter(), store, NOW, ZONE)
    assert grown.mode == "full" and len(grown.codes) == 5


def test_the_side_panel_reads_one_meter_its_curve_and_its_commands(any_engine):
    ids = _site(any_engine)
    _meter_state(any_engine, ids, **{"202611210001": {"balance_fen": 4321, "power_total": 0.8}})
    m = ids["202611210001"]
    with any_engine.begin() as conn:
        append_readings(conn, pd.DataFrame([{"ts": NOW - dt.timedelta(hours=h), "meter_id": m, "power_total": 0.1 * h}
                                            for h in (1, 2, 30)]))
        conn.execute(command.insert(), [{"meter_id": m, "kind": "trip", "purpose": "relay", "payload": "{}",
                                         "state": "acked", "operator": "op",
                                         "created_at": NOW - dt.timedelta(minutes=i)} for i in range(3)])
    detail, curve, commands = meter_panel(any_engine, m, NOW)
    assert detail["balance"] == Decimal("43.21") and detail["room"] == "B1-101" and detail["gateway"] == "GW-A"
    assert detail["state"] == "normal"
    assert len(curve) == 2 and list(curve["power_total"]) == pytest.approx([0.2, 0.1])  # the last 24 h, in time order
    assert len(commands) == 3 and commands["created_at"].is_monotonic_decreasing
    assert meter_panel(any_engine, 999999, NOW)[0] is None


def test_the_side_panel_links_to_control_only_for_operators_and_says_cancelled_in_words(any_engine):
    from billing.control import CANCELLED
    from dashboard.components.overview import panel_body
    from dashboard.ids import Overview as OV
    from tests.component_text import component_text
    ids = _site(any_engine)
    _meter_state(any_engine, ids, **{"202611210001": {"balance_fen": 4321}})
    m = ids["202611210001"]
    with any_engine.begin() as conn:
        conn.execute(command.insert().values(meter_id=m, kind="trip", purpose="relay", payload="{}", state="expired",
                                             result=CANCELLED, operator="olga", created_at=NOW))
    detail, curve, commands = meter_panel(any_engine, m, NOW)

    def ids_in(tree) -> set:
        found = set()

        def walk(c):
            if isinstance(c, (list, tuple)):
                for x in c:
                    walk(x)
            elif hasattr(c, "children"):
                found.add(getattr(c, "id", None))
                walk(c.children)
        walk(tree)
        return found
    manager = panel_body(detail, curve, commands, "zh", ZONE, may_sell=False, may_control=False)
    operator = panel_body(detail, curve, commands, "en", ZONE, may_sell=False, may_control=True)
    assert OV.PANEL_CONTROL not in ids_in(manager) and OV.PANEL_CONTROL in ids_in(operator)
    assert "已取消" in component_text(manager) and "CANCELLED" not in component_text(manager)
    assert "cancelled" in component_text(operator) and "expired" not in component_text(operator)
