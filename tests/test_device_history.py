"""History of master meters and transformer terminals: poll cycles against the simulator -> device_readings."""
from __future__ import annotations

import asyncio
import calendar
import datetime as dt
import json

import pandas as pd
import pytest
import sqlalchemy as sa
from pymodbus.client import AsyncModbusTcpClient

from collectors.cycle import CollectorService
from collectors.poller import FieldIO
from collectors.profiles import BUILTIN_DIR, ProfileRegistry
from collectors.topology_import import import_topology
from simulator.field import run_field_in_thread
from simulator.site import BusSpec, GatewaySpec, MeterSpec, SiteSpec
from storage.engine import dispose, open_engine
from storage.migrations import HEAD, migrate
from storage.schema import device_readings, meter, metadata, schema_version
from storage.timeseries import append_device_history, device_history

from tests.conftest import engine_url, free_port_block

ROOM, THREE_PHASE, MASTER, TTU = "202600000001", "202600000002", "202600000101", "202600000102"
EVENING = calendar.timegm((2026, 11, 18, 12, 0, 0))
ALL_TIME = (dt.datetime(2000, 1, 1), dt.datetime(2100, 1, 1))

# The site's own SDM630 map: the built-in one plus phase A's reactive power, a key no profile spec names.
OWN_POINT = '''
[[point]]
key = "var_a"
address = 0x0018
type = "f32"
scale = 0.001
unit = "kvar"
'''


class FakeClock:
    def __init__(self, t: float = EVENING):
        self.t = float(t)

    def __call__(self) -> float:
        return self.t


def site(base_port: int) -> SiteSpec:
    room = dict(building="Test Hall", area="Area T", floor=1)
    return SiteSpec("history", [GatewaySpec("GW-H", buses=[
        BusSpec(1, base_port, meters=[
            MeterSpec(ROOM, 1, "acrel-ddsy1352", room="H-101", balance_fen=10000, purchase_count=2, **room),
            MeterSpec(THREE_PHASE, 2, "acrel-dtsy1352", room="H-102", balance_fen=20000, **room),
        ]),
        BusSpec(2, base_port + 1, meters=[
            MeterSpec(MASTER, 1, "eastron-sdm630", building="Test Hall", area="Area T",
                      energy_kwh=(0.0, 0.0, 5000.0, 0.0)),
            MeterSpec(TTU, 2, "wattline-ttu", building="Test Hall", area="Area T", tap_count=5, tap_position=3,
                      energy_kwh=(0.0, 0.0, 6000.0, 0.0)),
        ]),
    ])])


@pytest.fixture
def polled(any_engine, fixed_now, tmp_path):
    """Two poll cycles a minute apart (simulator time); between them the terminal's tap, capacity mode, door and
    breaker 7 change. Yields (engine, {address: meter id}, [the simulator's registers decoded, per cycle])."""
    own = tmp_path / "profiles"
    own.mkdir()
    (own / "sdm630-site.toml").write_text((BUILTIN_DIR / "eastron-sdm630.toml").read_text() + OWN_POINT)
    registry = ProfileRegistry(own)
    spec = site(free_port_block(2))
    rows = [{k: "" if v is None else str(v) for k, v in r.items()} for r in spec.topology_rows()]
    import_topology(any_engine, rows, set(registry.names()), fixed_now)
    with any_engine.connect() as conn:
        ids = dict(conn.execute(sa.select(meter.c.address, meter.c.id)).all())
    clock = FakeClock()
    minutes = iter(fixed_now.replace(minute=m) for m in range(60))
    seen = []
    with run_field_in_thread(spec, clock=clock) as ft, FieldIO(registry) as fio:
        service = CollectorService(any_engine, fio, clock=lambda: next(minutes))
        port = spec.gateways[0].buses[1].port
        service.run_cycle()
        seen.append(ft.run(_registers(port, registry)))

        async def change_terminal():
            ttu = ft.field.meter(TTU)
            ttu.tap_position, ttu.capacity_mode, ttu.door_open = 4, 0, True
            ttu.breakers[6] = True
            ttu._apply_tap()
            ttu.mark_dirty()
        ft.run(change_terminal())
        clock.t += 60
        service.run_cycle()
        seen.append(ft.run(_registers(port, registry)))
    yield any_engine, ids, seen


async def _registers(port: int, registry: ProfileRegistry) -> dict[str, dict]:
    """What the master meter and the terminal hold now, read as an independent Modbus client would."""
    c = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=1.0, retries=0)
    assert await c.connect()
    try:
        out = {}
        for address, unit, name in ((MASTER, 1, "eastron-sdm630"), (TTU, 2, "wattline-ttu")):
            profile = registry.get(name)
            blocks = {}
            for b in profile.blocks:
                call = c.read_input_registers if b.table == "input" else c.read_holding_registers
                blocks[(b.table, b.start)] = (await call(b.start, count=b.count, device_id=unit)).registers
            out[address] = profile.decode(blocks)
        return out
    finally:
        c.close()


def _history(engine, meter_id, keys=None) -> pd.DataFrame:
    with engine.connect() as conn:
        return device_history(conn, meter_id, *ALL_TIME, keys=keys)


def test_a_terminal_keeps_tap_thd_temperatures_capacitors_mode_and_signals_per_cycle(polled):
    engine, ids, seen = polled
    h = _history(engine, ids[TTU])
    assert len(h) == 2
    for row, truth in zip(h.to_dict("records"), (s[TTU] for s in seen)):
        for key in ("tap_position", "capacity_mode", "capacitor_steps", "thd_u_a", "thd_u_c", "thd_i_b",
                    "oil_temp", "ambient_temp", "humidity", "current_n", "reactive_total",
                    "door_open", "smoke", "water", "breaker_1", "breaker_7", "breaker_8"):
            assert row[key] == truth[key], key
        assert row["tap_count"] == 5, "the terminal's own key (not canonical) is kept too"
    assert list(h.tap_position) == [3, 4] and list(h.capacity_mode) == [1, 0]
    assert list(h.door_open) == [False, True] and list(h.breaker_7) == [False, True]


def test_a_master_meter_keeps_its_reactive_power_neutral_current_and_the_sites_own_key(polled):
    engine, ids, seen = polled
    h = _history(engine, ids[MASTER], keys=["reactive_total", "current_n", "power_b", "var_a"])
    assert list(h.columns) == ["ts", "reactive_total", "current_n", "power_b", "var_a"]
    assert h.to_dict("records")[1] | {"ts": None} == {
        "ts": None, **{k: seen[1][MASTER][k] for k in ("reactive_total", "current_n", "power_b", "var_a")}}
    assert (h.reactive_total > 0).all() and (h.current_n >= 0).all() and (h.var_a > 0).all()


def test_prepaid_meters_add_no_history_rows(polled):
    engine, ids, _ = polled
    with engine.connect() as conn:
        per_meter = dict(conn.execute(sa.select(device_readings.c.meter_id, sa.func.count())
                                      .group_by(device_readings.c.meter_id)).all())
    assert per_meter == {ids[MASTER]: 2, ids[TTU]: 2}


def test_history_comes_back_in_time_order_within_the_window_asked(polled):
    engine, ids, _ = polled
    h = _history(engine, ids[TTU], keys=["tap_position"])
    assert h.ts.is_monotonic_increasing and h.ts.iloc[0] < h.ts.iloc[1]
    with engine.connect() as conn:
        later = device_history(conn, ids[TTU], h.ts.iloc[1].to_pydatetime(), ALL_TIME[1], keys=["tap_position"])
    assert list(later.tap_position) == [4]


def test_asking_history_for_a_key_readings_keeps_names_readings(duck_engine):
    with duck_engine.connect() as conn, pytest.raises(ValueError, match="readings"):
        device_history(conn, 1, *ALL_TIME, keys=["voltage_a"])


def test_a_meter_without_a_balance_keeps_its_own_keys_and_a_prepaid_meters_settings_are_not_history(any_engine):
    ts = pd.Timestamp("2026-11-21 08:00")
    frame = pd.DataFrame({
        "ts": [ts, ts], "meter_id": [7, 8], "voltage_a": [230.0, 229.0], "power_a": [1.5, 0.4],
        "balance_fen": [None, 1234], "extra": [json.dumps({"water_m3": 12.5}), json.dumps({"alarm1_limit": "20.00"})],
    })
    with any_engine.begin() as conn:
        assert append_device_history(conn, frame) == 1
    h = _history(any_engine, 7)
    assert h.water_m3.tolist() == [12.5] and h.power_a.tolist() == [1.5]
    assert h.door_open.isna().all(), "a meter with no signals has none, not all off"


@pytest.mark.parametrize("kind", ["duckdb", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_a_version_7_database_gains_device_history(kind, tmp_path, fixed_now):
    engine = open_engine(engine_url(kind, tmp_path))
    try:
        with engine.begin() as conn:  # a database from before device history (version 7)
            metadata.create_all(conn, tables=[t for t in metadata.sorted_tables if t.info.get("since", 1) < 8])
            conn.execute(schema_version.insert().values(version=7, applied_at=fixed_now, description="v7"))
        assert migrate(engine) == HEAD
        with engine.connect() as conn:
            assert sa.inspect(conn).has_table("device_readings")
            if kind == "postgresql":
                names = set(conn.execute(sa.text(
                    "SELECT indexname FROM pg_indexes WHERE tablename = 'device_readings'")).scalars())
                assert "ix_device_readings_meter_ts" in names
    finally:
        dispose(engine)
