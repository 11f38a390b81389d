"""The simulator's transformer-area terminal as the collector sees it over loopback Modbus: tap, MV supply and
load move the area's voltages (the rooms' meters too), the capacitor bank's own controller, faults, changeover and
inputs, temperatures, and the state kept across a restart."""
from __future__ import annotations

import datetime as dt
import statistics

import pytest
import sqlalchemy as sa

from collectors import secureframe as sf
from collectors.cycle import CollectorService
from collectors.poller import FieldIO
from collectors.profiles import ProfileRegistry
from collectors.topology_import import import_topology
from simulator.field import run_field_in_thread
from simulator.meters import AreaTerminal
from simulator.secure import TEST_MASTER_KEY
from simulator.site import BusSpec, GatewaySpec, MeterSpec, SiteSpec
from storage.schema import meter
from storage.timeseries import device_history
from tests.conftest import free_port_block
from tests.test_collectors_field import targets_of
from tests.test_simulator import FakeClock  # at the evening peak, Wednesday 2026-11-18 20:00 China time

TTU = "202600000901"
ROOMS = [f"20260000010{i}" for i in range(1, 7)]
NOMINAL = 220.0
STEP_KVAR = 15.0


def area_site(base_port: int, **terminal) -> SiteSpec:
    """Six heavy single-phase rooms (two per phase, about 175 kW at the evening peak) on bus 1, the area's
    terminal alone on bus 2 (no master meter: it sums the rooms)."""
    rooms = [MeterSpec(address, unit, "acrel-ddsy1352", building="Hall", floor=1, room=f"H-10{unit}", area="Area H",
                       character=30.0, pf=0.96, overload_w=0, balance_fen=10_000_000, purchase_count=1)
             for unit, address in enumerate(ROOMS, start=1)]
    ttu = MeterSpec(TTU, 1, "wattline-ttu", building="Hall", area="Area H", line_loss=0.01, tap_count=5,
                    tap_position=3, energy_kwh=(0.0, 0.0, 9000.0, 0.0), **terminal)
    return SiteSpec("terminal", [GatewaySpec("GW-H", buses=[BusSpec(1, base_port, meters=rooms),
                                                          BusSpec(2, base_port + 1, meters=[ttu])])])


class Rig:
    """A running field and the collector's field I/O, the field on a clock the test moves."""

    def __init__(self, site: SiteSpec, ft, fio: FieldIO, clock: FakeClock):
        self.site, self.ft, self.fio, self.clock = site, ft, fio, clock
        self.field = ft.field
        self.targets = {t.meter_address: t for t in targets_of(site, timeout_s=1.0)}
        self.counters: dict[str, int] = {}

    def terminal(self) -> dict:
        return self.fio.read_meter(self.targets[TTU])

    def room_volts(self) -> list[float]:
        return [self.fio.read_meter(self.targets[a])["voltage_a"] for a in ROOMS]

    def command(self, address: str, command: int, payload: bytes) -> sf.Result:
        counter = self.counters.get(address, 0) + 1
        self.counters[address] = counter
        frame = sf.encrypt_frame(TEST_MASTER_KEY, address, command, counter, int(self.clock()), payload)
        return self.fio.send_frame(self.targets[address], frame).result

    def tick(self, seconds: float = 1.5) -> None:
        self.clock.advance(seconds)


@pytest.fixture
def start_area():
    """start_area(**terminal spec fields) -> Rig, warmed up (the first look switched what it switches)."""
    running = []

    def start(**terminal) -> Rig:
        site = area_site(free_port_block(2), **terminal)
        clock = FakeClock()
        ft = run_field_in_thread(site, clock=clock)
        fio = FieldIO(ProfileRegistry())
        running.append((ft, fio))
        rig = Rig(site, ft, fio, clock)
        rig.terminal()
        rig.room_volts()
        return rig

    yield start
    for ft, fio in running:
        fio.close()
        ft.stop()


def mean_volts(reading: dict) -> float:
    return statistics.fmean(reading[f"voltage_{p}"] for p in "abc")


def drop_volts(reading: dict, rating_kva: float) -> float:
    """The transformer's mean phase voltage drop for the P and Q read (the terminal's R and X)."""
    return NOMINAL * (AreaTerminal.R_PU * reading["power_total"] + AreaTerminal.X_PU * reading["reactive_total"]) \
        / rating_kva


# ---------------------------------------------------------------- voltages

def test_a_tap_step_moves_the_terminal_and_the_rooms_by_two_and_a_half_percent_of_nominal(start_area):
    rig = start_area()
    before, rooms_before = rig.terminal(), rig.room_volts()
    assert rig.command(TTU, sf.Command.TAP_SET, sf.tap_set_payload(4)) == sf.Result.APPLIED
    after, rooms_after = rig.terminal(), rig.room_volts()
    assert after["tap_position"] == 4 and after["tap_count"] == 5
    assert rig.field.meter(TTU).volts_per_step == pytest.approx(0.025 * NOMINAL)
    for p in "abc":
        assert after[f"voltage_{p}"] - before[f"voltage_{p}"] == pytest.approx(5.5, abs=1.3)
    assert mean_volts(after) - mean_volts(before) == pytest.approx(5.5, abs=0.8)
    moved = statistics.fmean(rooms_after) - statistics.fmean(rooms_before)
    assert moved == pytest.approx(5.5 * 0.983, abs=1.5), "the area's prepaid meters see the same step"


def test_the_mv_supply_offset_moves_the_voltages_and_two_tap_steps_correct_it(start_area):
    rig = start_area()
    before = mean_volts(rig.terminal())
    rig.field.set_supply_offset(TTU, -5.0)
    low = mean_volts(rig.terminal())
    assert low - before == pytest.approx(-0.05 * NOMINAL, abs=0.8)
    assert statistics.fmean(rig.room_volts()) < 0.983 * before - 9.0
    assert rig.command(TTU, sf.Command.TAP_SET, sf.tap_set_payload(5)) == sf.Result.APPLIED
    assert mean_volts(rig.terminal()) == pytest.approx(before, abs=0.8)


def test_load_lowers_the_voltages_by_the_transformers_impedance(start_area):
    rig = start_area(capacitor_count=0)
    assert rig.command(TTU, sf.Command.CAPACITY_MODE, sf.capacity_mode_payload(0)) == sf.Result.APPLIED
    loaded, rooms_loaded = rig.terminal(), rig.room_volts()
    assert loaded["power_total"] > 150
    for address in ROOMS:   # the operator trips every room: the area's load goes
        assert rig.command(address, sf.Command.RELAY, sf.relay_payload("trip")) == sf.Result.APPLIED
    rig.tick()
    idle, rooms_idle = rig.terminal(), rig.room_volts()
    assert idle["power_total"] == pytest.approx(0.0, abs=0.01)
    rise = mean_volts(idle) - mean_volts(loaded)
    assert rise > 2.0
    assert rise == pytest.approx(drop_volts(loaded, 315.0) - drop_volts(idle, 315.0), abs=0.8)
    assert statistics.fmean(rooms_idle) - statistics.fmean(rooms_loaded) > 1.0, "the rooms' meters see it too"


# ---------------------------------------------------------------- capacitor bank

def test_the_capacitor_controller_steps_in_by_reactive_power_settles_and_steps_out_without_chatter(start_area):
    rig = start_area(capacitor_delay_s=1.0)
    seen = [rig.terminal()]
    for _ in range(14):
        rig.tick()
        seen.append(rig.terminal())
    steps = [bin(r["capacitor_steps"]).count("1") for r in seen]
    assert steps == sorted(steps) and steps[-1] >= 2, steps
    assert all(b - a <= 1 for a, b in zip(steps, steps[1:])), "one step per switching"
    assert steps[-8:] == [steps[-1]] * 8, f"settled without chatter: {steps}"
    assert {r["capacitor_steps"] for r in seen[-8:]} == {(1 << steps[-1]) - 1}
    for r in seen:
        assert r["pf_total"] == pytest.approx(r["power_total"] / (r["power_total"] ** 2 + r["reactive_total"] ** 2)
                                              ** 0.5, abs=0.002)
    q_load = [r["reactive_total"] + STEP_KVAR * n for r, n in zip(seen, steps)]
    assert max(q_load) - min(q_load) < 10, "the load's own reactive power is the same: the steps took 15 kvar each"
    assert all(-0.3 * STEP_KVAR < r["reactive_total"] < 1.1 * STEP_KVAR for r in seen[-8:])
    assert seen[-1]["pf_total"] > seen[0]["pf_total"] + 0.02

    for address in ROOMS:   # the load goes: the bank is leading and steps out, one at a time
        assert rig.command(address, sf.Command.RELAY, sf.relay_payload("trip")) == sf.Result.APPLIED
    out = []
    for _ in range(steps[-1] + 3):
        rig.tick()
        out.append(rig.terminal())
    left = [bin(r["capacitor_steps"]).count("1") for r in out]
    assert left == sorted(left, reverse=True) and left[-1] == 0, left
    assert all(a - b <= 1 for a, b in zip(left, left[1:]))
    assert out[-1]["reactive_total"] > 0


# ---------------------------------------------------------------- faults

def test_phase_sag_takes_phase_a_down_fifteen_percent_for_the_terminal_and_the_rooms_on_it(start_area):
    rig = start_area()
    before, rooms_before = rig.terminal(), rig.room_volts()
    rig.field.set_terminal_fault(TTU, "phase_sag")
    sagged, rooms_sagged = rig.terminal(), rig.room_volts()
    assert sagged["voltage_a"] / before["voltage_a"] == pytest.approx(0.85, abs=0.01)
    assert sagged["voltage_b"] == pytest.approx(before["voltage_b"], abs=1.3)
    # rooms 1 and 4 hang on phase A, the others on B and C
    on_a = [s / b for i, (b, s) in enumerate(zip(rooms_before, rooms_sagged)) if i % 3 == 0]
    assert all(r == pytest.approx(0.85, abs=0.015) for r in on_a)
    others = [s - b for i, (b, s) in enumerate(zip(rooms_before, rooms_sagged)) if i % 3]
    assert statistics.fmean(others) == pytest.approx(0.0, abs=2.0)
    rig.field.set_terminal_fault(TTU, "phase_sag", on=False)
    assert rig.terminal()["voltage_a"] == pytest.approx(before["voltage_a"], abs=1.3)


def test_harmonics_raise_thd_and_the_neutral_current(start_area):
    rig = start_area()
    before = rig.terminal()
    assert all(before[f"thd_u_{p}"] < 4 and before[f"thd_i_{p}"] < 12 for p in "abc")
    rig.field.set_terminal_fault(TTU, "harmonics")
    bad = rig.terminal()
    assert all(6.8 <= bad[f"thd_u_{p}"] <= 8.5 for p in "abc")
    assert all(27 <= bad[f"thd_i_{p}"] <= 34 for p in "abc")
    assert bad["current_n"] > before["current_n"] * 1.5
    rig.field.set_terminal_fault(TTU, "harmonics", on=False)
    assert rig.terminal()["thd_u_a"] < 4


def test_a_stuck_tap_answers_applied_but_stays_where_it_was(start_area):
    rig = start_area()
    before = rig.terminal()
    rig.field.set_terminal_fault(TTU, "stuck_tap")
    assert rig.command(TTU, sf.Command.TAP_SET, sf.tap_set_payload(5)) == sf.Result.APPLIED
    after = rig.terminal()
    assert after["tap_position"] == 3
    assert mean_volts(after) == pytest.approx(mean_volts(before), abs=0.8)
    rig.field.set_terminal_fault(TTU, "stuck_tap", on=False)
    assert rig.command(TTU, sf.Command.TAP_SET, sf.tap_set_payload(5)) == sf.Result.APPLIED
    assert rig.terminal()["tap_position"] == 5


def test_a_stuck_breaker_answers_applied_to_open_but_stays_closed_and_still_closes(start_area):
    rig = start_area()
    rig.field.set_terminal_fault(TTU, "breaker_stuck")
    assert rig.command(TTU, sf.Command.BREAKER, sf.breaker_payload(2, 0)) == sf.Result.APPLIED
    assert rig.command(TTU, sf.Command.BREAKER, sf.breaker_payload(7, 1)) == sf.Result.APPLIED
    r = rig.terminal()
    assert r["breaker_2"] is True and r["breaker_7"] is True
    rig.field.set_terminal_fault(TTU, "breaker_stuck", on=False)
    assert rig.command(TTU, sf.Command.BREAKER, sf.breaker_payload(2, 0)) == sf.Result.APPLIED
    assert rig.terminal()["breaker_2"] is False


def test_an_open_outlet_takes_its_share_of_the_load_off_the_terminal_and_closing_it_brings_it_back(start_area):
    rig = start_area(capacitor_count=0)
    assert rig.command(TTU, sf.Command.CAPACITY_MODE, sf.capacity_mode_payload(0)) == sf.Result.APPLIED
    outlets = AreaTerminal.SERVICE_OUTLETS
    loaded = rig.terminal()
    assert loaded["power_total"] > 150
    assert rig.command(TTU, sf.Command.BREAKER, sf.breaker_payload(2, 0)) == sf.Result.APPLIED   # from the server
    one_open = rig.terminal()
    assert one_open["breaker_2"] is False
    share = 1 - 1 / outlets
    assert one_open["power_total"] == pytest.approx(loaded["power_total"] * share, rel=0.05)
    for p in "abc":
        assert one_open[f"current_{p}"] == pytest.approx(loaded[f"current_{p}"] * share, rel=0.08)
    assert one_open["reactive_total"] < loaded["reactive_total"]
    assert rig.field.set_terminal_breaker(TTU, 3, False) is False   # by hand at the switchgear
    assert rig.field.set_terminal_breaker(TTU, 6, False) is False
    half = rig.terminal()
    assert half["power_total"] == pytest.approx(loaded["power_total"] * (1 - 3 / outlets), rel=0.05)
    rise = mean_volts(half) - mean_volts(loaded)
    assert rise > 0.8, "half the load off: half the drop"
    assert rise == pytest.approx(drop_volts(loaded, 315.0) - drop_volts(half, 315.0), abs=0.8)
    assert rig.field.set_terminal_breaker(TTU, 6, True) is True
    two_open = rig.terminal()
    assert two_open["power_total"] == pytest.approx(loaded["power_total"] * (1 - 2 / outlets), rel=0.05)
    assert rig.field.set_terminal_breaker(TTU, 7, True) is True     # a spare carries nothing
    assert rig.terminal()["power_total"] == pytest.approx(two_open["power_total"], rel=0.05)
    assert rig.command(TTU, sf.Command.BREAKER, sf.breaker_payload(2, 1)) == sf.Result.APPLIED
    assert rig.field.set_terminal_breaker(TTU, 3, True) is True
    back = rig.terminal()
    assert back["power_total"] == pytest.approx(loaded["power_total"], rel=0.05)
    assert mean_volts(back) == pytest.approx(mean_volts(loaded), abs=0.8)
    rig.field.set_terminal_fault(TTU, "breaker_stuck")                # a breaker that does not open keeps its load
    assert rig.command(TTU, sf.Command.BREAKER, sf.breaker_payload(4, 0)) == sf.Result.APPLIED
    assert rig.field.set_terminal_breaker(TTU, 5, False) is True
    stuck = rig.terminal()
    assert stuck["breaker_4"] is True and stuck["breaker_5"] is True
    assert stuck["power_total"] == pytest.approx(loaded["power_total"], rel=0.05)
    with pytest.raises(ValueError):
        rig.field.set_terminal_breaker(TTU, 9, False)


# ---------------------------------------------------------------- changeover, inputs, temperatures

def test_a_changeover_reads_as_changeover_and_runs_the_area_on_the_standby_supply(start_area):
    rig = start_area()
    before = rig.terminal()
    assert before["changeover"] is False
    rig.field.trigger_changeover(TTU)
    on_standby = rig.terminal()
    assert on_standby["changeover"] is True and on_standby["status"] >> 3 & 1
    assert mean_volts(on_standby) - mean_volts(before) == pytest.approx(
        AreaTerminal.STANDBY_OFFSET_PCT / 100 * NOMINAL, abs=0.8)
    rig.field.trigger_changeover(TTU, on=False)
    assert rig.terminal()["changeover"] is False


def test_door_smoke_and_water_inputs_read_as_signals(start_area):
    rig = start_area()
    assert not any(rig.terminal()[k] for k in ("door_open", "smoke", "water"))
    rig.field.set_terminal_input(TTU, "door_open", True)
    rig.field.set_terminal_input(TTU, "water", True)
    r = rig.terminal()
    assert r["door_open"] is True and r["water"] is True and r["smoke"] is False
    assert r["humidity"] >= 93, "a flooded pit is humid"
    rig.field.set_terminal_input(TTU, "smoke", True)
    rig.field.set_terminal_input(TTU, "door_open", False)
    r = rig.terminal()
    assert r["smoke"] is True and r["door_open"] is False


def test_the_field_refuses_what_a_terminal_does_not_have(start_area):
    rig = start_area()
    with pytest.raises(ValueError, match="fault must be one of"):
        rig.field.set_terminal_fault(TTU, "fire")
    with pytest.raises(ValueError, match="input must be one of"):
        rig.field.set_terminal_input(TTU, "breaker_1", True)
    with pytest.raises(ValueError, match="not a transformer-area terminal"):
        rig.field.trigger_changeover(ROOMS[0])
    for bad in (25.0, float("nan")):
        with pytest.raises(ValueError, match="supply offset"):
            rig.field.set_supply_offset(TTU, bad)


def test_the_oil_warms_when_the_small_capacity_carries_the_same_load(start_area):
    rig = start_area(capacitor_delay_s=1.0)
    large = rig.terminal()
    assert 0 < large["oil_temp"] - large["ambient_temp"] < 40
    assert rig.command(TTU, sf.Command.CAPACITY_MODE, sf.capacity_mode_payload(0)) == sf.Result.APPLIED
    rises = []
    for _ in range(12):   # two hours in ten-minute looks, the evening peak going on
        rig.tick(600)
        r = rig.terminal()
        assert r["capacity_mode"] == 0
        rises.append(r["oil_temp"] - r["ambient_temp"])
    assert rises[-1] > large["oil_temp"] - large["ambient_temp"] + 4
    assert rises[-1] > rises[0]


# ---------------------------------------------------------------- persistence and history

def test_the_terminal_keeps_its_state_across_a_restart(tmp_path):
    site = area_site(free_port_block(2))
    clock = FakeClock()
    state = tmp_path / "field.json"
    with run_field_in_thread(site, clock=clock, state_file=state) as ft, FieldIO(ProfileRegistry()) as fio:
        rig = Rig(site, ft, fio, clock)
        assert rig.command(TTU, sf.Command.TAP_SET, sf.tap_set_payload(2)) == sf.Result.APPLIED
        assert rig.command(TTU, sf.Command.CAPACITY_MODE, sf.capacity_mode_payload(0)) == sf.Result.APPLIED
        ft.field.set_supply_offset(TTU, 3.0)
        ft.field.trigger_changeover(TTU)
        ft.field.set_terminal_input(TTU, "smoke", True)
        ft.field.set_terminal_fault(TTU, "harmonics")
        before = rig.terminal()
    with run_field_in_thread(site, clock=clock, state_file=state) as ft, FieldIO(ProfileRegistry()) as fio:
        after = Rig(site, ft, fio, clock).terminal()
    for key in ("tap_position", "capacity_mode", "changeover", "smoke", "capacitor_steps"):
        assert after[key] == before[key], key
    assert mean_volts(after) == pytest.approx(mean_volts(before), abs=1.0)
    assert after["oil_temp"] == pytest.approx(before["oil_temp"], abs=0.5)
    assert after["thd_u_a"] < 4, "a fault is not kept across a restart"


def test_a_changeover_read_by_the_collector_is_kept_in_the_device_history(any_engine, fixed_now):
    registry = ProfileRegistry()
    site = area_site(free_port_block(2))
    rows = [{k: "" if v is None else str(v) for k, v in r.items()} for r in site.topology_rows()]
    import_topology(any_engine, rows, set(registry.names()), fixed_now)
    with any_engine.connect() as conn:
        ttu_id = conn.execute(sa.select(meter.c.id).where(meter.c.address == TTU)).scalar_one()
    minutes = iter(fixed_now.replace(minute=m) for m in range(60))
    with run_field_in_thread(site, clock=FakeClock()) as ft, FieldIO(registry) as fio:
        service = CollectorService(any_engine, fio, clock=lambda: next(minutes))
        service.run_cycle()
        ft.field.trigger_changeover(TTU)
        service.run_cycle()
    with any_engine.connect() as conn:
        h = device_history(conn, ttu_id, dt.datetime(2000, 1, 1), dt.datetime(2100, 1, 1))
        own = device_history(conn, ttu_id, dt.datetime(2000, 1, 1), dt.datetime(2100, 1, 1),
                             keys=["changeover", "tap_count"])
    assert list(h.changeover) == [False, True]
    assert list(own.changeover) == [False, True] and list(own.tap_count) == [5, 5]
    assert list(h.breaker_1) == [True, True] and list(h.door_open) == [False, False]
