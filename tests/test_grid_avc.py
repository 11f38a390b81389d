"""Automatic voltage control against the simulator over loopback (real collector, dispatcher and secure frames; every
clock driven by the test): a supply pushed above the band comes back in by one tap step at a time, the first only
after the first delay, the next only after the delay between steps; the daily limit holds further steps; the dead
band holds a step that would take another phase too near the other limit; a stuck tap changer raises an alarm
and is not commanded again until an operator switches the automation back on; the capacity mode follows the load."""
from __future__ import annotations

import json

import pandas as pd
import pytest
import sqlalchemy as sa

from grid import control
from grid.avc import AutomaticVoltageControl
from storage import alarms
from storage import grid_control as store
from storage.schema import audit_log, command, transformer_area
from storage.timeseries import upsert_meter_state
from tests.grid_support import TTU, grid_site, operator


@pytest.fixture
def site(request, tmp_path):
    yield from grid_site(getattr(request, "param", "duckdb"), tmp_path)


on_both_engines = pytest.mark.parametrize("site", ["duckdb", pytest.param("postgresql", marks=pytest.mark.postgres)],
                                          indirect=True)


def _taps(site) -> list[int]:
    return [json.loads(c["payload"])["position"] for c in site.commands("tap")]


def _volts(site) -> list[float]:
    """The terminal's phase voltages as the collector last read them."""
    with site.engine.connect() as conn:
        mid = conn.execute(sa.select(transformer_area.c.terminal_meter_id)).scalar_one()
        seen = store.telemetry(conn, mid)
    return [seen[f"voltage_{p}"] for p in "abc"]


def _open(site, kind: str) -> list[dict]:
    with site.engine.connect() as conn:
        return alarms.open_alarms(conn, kind)


@on_both_engines
def test_a_voltage_pushed_above_the_band_comes_back_by_one_step_at_a_time_after_the_delays(site):
    site.settings(enabled=True, capacity_auto=False)            # first delay 60 s, 30 s between steps
    site.field.set_supply_offset(TTU, 6.0)
    site.tick(0)
    assert max(_volts(site)) > 235.4, "pushed out of the band (220 V +7 %)"
    site.tick(30)
    assert _taps(site) == [], "not before the first delay"
    site.tick(31)
    assert _taps(site) == [4], "one step down (a lower position lowers the voltage)"
    site.tick(1)                                                  # sent, read back, polled
    assert site.terminal.tap_position == 4 and max(_volts(site)) > 235.4
    assert _taps(site) == [4], "still high, but not before the delay between steps"
    site.tick(30)
    assert _taps(site) == [4, 3]
    site.tick(1)
    assert site.terminal.tap_position == 3
    assert all(204.6 < v < 235.4 for v in _volts(site)), "back in the band"
    for _ in range(3):
        site.tick(60)
    assert _taps(site) == [4, 3], "in the band: no more steps"
    rows = site.actions()
    taps = rows[rows["action"] == "tap"]
    assert list(taps["mode"]) == ["auto", "auto"] and list(taps["command_state"]) == ["acked", "acked"]
    assert list(taps["reason_code"]) == ["voltage_high", "voltage_high"]
    assert list(taps["before"]) == ["4", "5"] and list(taps["after"]) == ["3", "4"]
    first, second = taps.iloc[1], taps.iloc[0]
    assert first["params"]["seconds"] >= 60 and (second["ts"] - first["ts"]).total_seconds() >= 30
    assert "above 235.4 V" in first["reason"]
    assert "高于 235.4 V" in site.actions(lang="zh").query("action == 'tap'").iloc[-1]["reason"]


def test_a_voltage_pushed_below_the_band_is_raised_by_a_higher_tap(site):
    site.settings(enabled=True, capacity_auto=False)
    site.field.set_supply_offset(TTU, -14.0)
    site.tick(0)
    assert min(_volts(site)) < 204.6
    site.tick(61)
    site.tick(1)
    assert _taps(site) == [6] and site.terminal.tap_position == 6
    assert all(204.6 < v < 235.4 for v in _volts(site))
    site.tick(60)
    assert _taps(site) == [6]
    assert site.actions().query("action == 'tap'").iloc[0]["reason_code"] == "voltage_low"


def test_no_second_step_before_a_reading_taken_after_the_first(site):
    site.settings(enabled=True, capacity_auto=False, step_delay_s=0)
    site.field.set_supply_offset(TTU, 6.0)
    site.tick(0)
    site.tick(61)
    assert _taps(site) == [4]
    site.clock.advance(seconds=40)
    site.dispatcher.run_once()                  # the step is made and read back, the area not polled yet
    site.avc.run_once()
    assert _taps(site) == [4], "the last reading is of the tap before the step"
    site.poll()
    site.avc.run_once()
    assert _taps(site) == [4, 3]


def test_the_daily_limit_holds_further_steps_and_says_so_once(site):
    site.settings(enabled=True, capacity_auto=False, daily_limit=1)
    site.field.set_supply_offset(TTU, 6.0)
    site.tick(0)
    site.tick(61)
    for _ in range(4):
        site.tick(40)
    assert _taps(site) == [4] and max(_volts(site)) > 235.4
    held = site.actions().query("action == 'held'")
    assert list(held["reason_code"]) == ["daily_limit"]
    assert held.iloc[0]["params"] == {"count": 1, "limit": 1}


def test_the_dead_band_holds_a_step_that_would_take_another_phase_too_near_the_other_limit(site):
    site.settings(enabled=True, capacity_auto=False)
    site.field.set_terminal_fault(TTU, "phase_sag")                # phase A about -15 %
    site.field.set_supply_offset(TTU, 6.0)
    site.tick(0)
    volts = _volts(site)
    assert volts[0] < 204.6 + 5.5 + 2.75 and max(volts) > 235.4, volts
    for _ in range(4):
        site.tick(40)
    assert _taps(site) == []
    held = site.actions().query("action == 'held'")
    assert list(held["reason_code"]) == ["dead_band"] and held.iloc[0]["params"]["phase"] == "A"


def test_a_stuck_tap_changer_raises_an_alarm_instead_of_being_commanded_again(site):
    _stuck_and_blocked(site)
    assert site.terminal.tap_position == 5
    stuck = _open(site, alarms.AVC_TAP_STUCK)
    assert [(a["subject_kind"], a["subject_id"]) for a in stuck] == [("area", site.area_id)]
    assert stuck[0]["message_params"]["target"] == "4"
    published = [(c.kind, c.level, c.subject_id, c.opened) for e in site.alarm_changes for c in e.changes]
    assert published == [(alarms.AVC_TAP_STUCK, alarms.AlarmLevel.CRITICAL, site.area_id, True)]
    for _ in range(3):
        site.tick(60)
    assert _taps(site) == [4], "no second command to a stuck drive"
    state = control.control_state(site.ctx, site.area_id)
    assert state["blocked"] == "tap_stuck" and state["enabled"] is True
    # the drive repaired, the operator switches the automation on again: the alarm closes, steps resume
    site.field.set_terminal_fault(TTU, "stuck_tap", on=False)
    control.set_automation(site.ctx, operator(), site.area_id, True, "tap drive repaired")
    assert _open(site, alarms.AVC_TAP_STUCK) == []
    site.tick(0)
    site.tick(61)
    site.tick(1)
    assert _taps(site) == [4, 4] and site.terminal.tap_position == 4


def test_an_operator_switching_the_automation_off_stops_the_steps(site):
    site.settings(enabled=True, capacity_auto=False)
    control.set_automation(site.ctx, operator(), site.area_id, False, "manual operation today")
    site.field.set_supply_offset(TTU, 6.0)
    for _ in range(4):
        site.tick(40)
    assert _taps(site) == []


def test_the_capacity_mode_follows_the_load_with_its_own_hysteresis(site):
    site.settings(enabled=True, capacity_hold_s=120)            # no load: below 30 % of the small rating
    site.tick(0)
    site.tick(60)
    assert site.commands("capacity_mode") == [], "not before the hold time"
    site.tick(61)
    site.tick(1)
    assert site.terminal.capacity_mode == 0
    row = site.actions().query("action == 'capacity_mode'").iloc[0]
    assert (row["before"], row["after"], row["reason_code"], row["command_state"]) == ("large", "small", "load_low",
                                                                                      "acked")
    for _ in range(3):
        site.tick(60)
    assert len(site.commands("capacity_mode")) == 1


def _audit(site, action: str) -> list[dict]:
    with site.engine.connect() as conn:
        return [dict(r, after=json.loads(r["after"] or "{}"), before=json.loads(r["before"] or "{}"))
                for r in conn.execute(sa.select(audit_log).where(audit_log.c.action == action)
                                      .order_by(audit_log.c.id)).mappings()]


def test_a_capacity_mode_set_by_hand_holds_the_automation_switches_its_capacity_mode_off(site):
    # the load is far above the small rating's threshold: by load the automation wants the large capacity
    site.settings(enabled=True, small_kva=1.0, capacity_up=0.10, capacity_down=0.05, capacity_hold_s=0)
    site.tick(0)
    queued = control.queue_capacity_mode(site.ctx, operator(), site.area_id, "small", "transformer maintenance")
    assert queued.capacity_auto_off is True
    site.tick(1)
    assert site.terminal.capacity_mode == 0
    for _ in range(5):
        site.tick(60)
    assert site.terminal.capacity_mode == 0, "the hand setting holds"
    assert [json.loads(c["payload"])["mode"] for c in site.commands("capacity_mode")] == [0]
    state = control.control_state(site.ctx, site.area_id)
    assert state["settings"]["capacity_auto"] is False and state["enabled"] is True, "the tap automation stays on"
    rows = site.actions()
    assert rows.query("mode == 'auto' and action == 'capacity_mode'").empty
    switched = rows.query("action == 'settings'").iloc[0]
    assert (switched["mode"], switched["before"], switched["after"], switched["operator"]) == ("manual", "on", "off",
                                                                                              "olga")
    assert "automatic capacity mode switched off" in switched["reason"]
    assert "自动容量切换已退出" in site.actions(lang="zh").query("action == 'settings'").iloc[0]["reason"]
    audit_row = _audit(site, "grid.settings")[-1]
    assert audit_row["operator"] == "olga" and audit_row["target"] == f"area:{site.area_id}"
    assert audit_row["before"]["settings"] == {"capacity_auto": True}
    assert audit_row["after"]["settings"] == {"capacity_auto": False}
    assert audit_row["after"]["command"] == queued.command_id
    # a second hand setting says nothing more; "Automatic on" gives the capacity back to the load
    assert control.queue_capacity_mode(site.ctx, operator(), site.area_id, "small", "still").capacity_auto_off is False
    control.set_automation(site.ctx, operator(), site.area_id, True, "maintenance done")
    assert control.control_state(site.ctx, site.area_id)["settings"]["capacity_auto"] is True
    for _ in range(3):
        site.tick(60)
    assert site.terminal.capacity_mode == 1, "by load again"
    assert not site.actions().query("mode == 'auto' and action == 'capacity_mode'").empty


def _stuck_and_blocked(site) -> None:
    site.settings(enabled=True, capacity_auto=False)
    site.field.set_terminal_fault(TTU, "stuck_tap")
    site.field.set_supply_offset(TTU, 6.0)
    site.tick(0)
    site.tick(61)
    site.tick(1)
    assert [(a["subject_id"], a["closed_at"]) for a in _open(site, alarms.AVC_TAP_STUCK)] == [(site.area_id, None)]


def _closed(site) -> list[tuple]:
    return [(c.kind, c.subject_id, c.opened) for e in site.alarm_changes for c in e.changes if not c.opened]


def _event(site, alarm_id: int) -> dict:
    with site.engine.connect() as conn:
        return alarms.alarm_by_id(conn, alarm_id)


def test_a_stuck_tap_that_moves_again_is_unblocked_and_the_close_is_announced_like_the_opening(site):
    _stuck_and_blocked(site)
    alarm_id = _open(site, alarms.AVC_TAP_STUCK)[0]["id"]
    site.field.set_terminal_fault(TTU, "stuck_tap", on=False)        # repaired; the operator moves it by hand
    control.queue_tap(site.ctx, operator(), site.area_id, 4, "after the repair")
    site.tick(1)
    site.tick(1)
    assert site.terminal.tap_position == 4
    assert _open(site, alarms.AVC_TAP_STUCK) == []
    assert _event(site, alarm_id)["closed_at"] is not None
    assert _closed(site) == [(alarms.AVC_TAP_STUCK, site.area_id, False)]
    unblocked = site.actions().query("action == 'unblocked'").iloc[0]
    assert (unblocked["mode"], unblocked["reason_code"], unblocked["reason"]) == ("auto", "tap_moved",
                                                                                 "The tap moved to 4")
    assert control.control_state(site.ctx, site.area_id)["blocked"] is None


def test_switching_the_automation_on_after_a_repair_lifts_the_block_and_announces_the_close(site):
    _stuck_and_blocked(site)
    alarm_id = _open(site, alarms.AVC_TAP_STUCK)[0]["id"]
    site.field.set_terminal_fault(TTU, "stuck_tap", on=False)
    site.clock.advance(seconds=5)
    control.set_automation(site.ctx, operator("oscar"), site.area_id, True, "tap drive repaired",
                           events=site.events)
    assert _event(site, alarm_id)["closed_at"] == site.clock.now
    assert _closed(site) == [(alarms.AVC_TAP_STUCK, site.area_id, False)]
    assert control.control_state(site.ctx, site.area_id)["blocked"] is None
    row = site.actions().iloc[0]
    assert (row["action"], row["operator"]) == ("automation_on", "oscar")
    assert row["params"]["unblocked"] == "tap_stuck" and row["params"]["alarms_closed"] == [alarm_id]
    audit_row = _audit(site, "grid.automation_on")[-1]
    assert audit_row["operator"] == "oscar" and audit_row["before"]["blocked"] == "tap_stuck"
    assert audit_row["after"]["alarms_closed"] == [alarm_id]
    site.tick(0)
    site.tick(61)
    site.tick(1)
    assert site.terminal.tap_position == 4, "steps again"
    assert _closed(site) == [(alarms.AVC_TAP_STUCK, site.area_id, False)], "announced once"


# ---------------------------------------------------------------------------------------------
# the rules on telemetry as a poll cycle leaves it (meter_state written by the storage layer's own writer)
@pytest.fixture
def area(duck_engine):
    """The area in the database only (no field): its terminal's readings are written by hand."""
    from tests.billing_support import Clock, load_site, make_ctx
    from tests.grid_support import START, area_site
    clock = Clock(START)
    load_site(duck_engine, area_site(15990), clock.now)
    with duck_engine.begin() as conn:
        conn.execute(transformer_area.update().values(nominal_voltage=220.0, rating_kva=630.0))
        mid = conn.execute(sa.select(transformer_area.c.terminal_meter_id)).scalar_one()
        area_id = conn.execute(sa.select(transformer_area.c.id)).scalar_one()
    ctx = make_ctx(duck_engine, clock)
    avc = AutomaticVoltageControl(ctx, enable_new_areas=True)
    return duck_engine, clock, avc, mid, area_id


def _reading(engine, mid, clock, volts=(230.0, 230.0, 230.0), amps=(10.0, 10.0, 10.0), steps=0, q=20.0):
    frame = pd.DataFrame([{"meter_id": mid, "ts": pd.Timestamp(clock.now), "comm_state": "online", "miss_count": 0,
                           "alarm_level": 0, "last_seen": pd.Timestamp(clock.now),
                           "updated_at": pd.Timestamp(clock.now), "voltage_a": volts[0], "voltage_b": volts[1],
                           "voltage_c": volts[2], "current_a": amps[0], "current_b": amps[1], "current_c": amps[2],
                           "power_total": 20.0, "reactive_total": q, "pf_total": 0.7, "tap_position": 5,
                           "capacity_mode": 1, "capacitor_steps": steps, "extra": '{"tap_count": 9}'}])
    with engine.begin() as conn:
        upsert_meter_state(conn, frame)


def _area_actions(engine, area_id):
    with engine.connect() as conn:
        return store.actions(conn, area_id, 50)


def test_the_terminals_capacitor_steps_are_logged_with_the_reactive_power(area):
    engine, clock, avc, mid, area_id = area
    with engine.begin() as conn:
        control.automation_row(conn, area_id, clock.now, enabled=True)
        store.update_automation(conn, area_id, capacity_auto=False)
    _reading(engine, mid, clock, steps=0, q=40.0)
    avc.run_once()
    clock.advance(seconds=30)
    _reading(engine, mid, clock, steps=0b11, q=8.5)
    avc.run_once()
    rows = _area_actions(engine, area_id)
    assert [(r.action, r.before, r.after, r.reason_code) for r in rows.itertuples()] == [
        ("capacitor", "0", "2", "reactive_power")]
    assert rows.iloc[0]["params"] == {"kvar": 8.5, "pf": 0.7}


def test_undervoltage_and_overcurrent_hold_the_steps_with_an_alarm_while_they_last(area):
    engine, clock, avc, mid, area_id = area
    with engine.begin() as conn:
        control.automation_row(conn, area_id, clock.now, enabled=True)
        store.update_automation(conn, area_id, capacity_auto=False, first_delay_s=0)
    _reading(engine, mid, clock, volts=(120.0, 230.0, 230.0))            # below 70 % of 220 V: supply lost
    avc.run_once()
    clock.advance(seconds=120)
    _reading(engine, mid, clock, volts=(120.0, 230.0, 230.0))
    avc.run_once()
    with engine.connect() as conn:
        held = alarms.open_alarms(conn, alarms.AVC_BLOCKED)
    assert [(a["subject_kind"], a["message_code"]) for a in held] == [("area", "avc_undervoltage")]
    _reading(engine, mid, clock, volts=(240.0, 240.0, 240.0), amps=(1200.0, 900.0, 900.0))   # rated 954.5 A
    avc.run_once()
    with engine.connect() as conn:
        held = alarms.open_alarms(conn, alarms.AVC_BLOCKED)
        tap_commands = conn.execute(sa.select(sa.func.count()).select_from(command)).scalar_one()
    assert [a["message_code"] for a in held] == ["avc_overcurrent"] and tap_commands == 0
    clock.advance(seconds=60)
    _reading(engine, mid, clock, volts=(240.0, 240.0, 240.0))
    avc.run_once()
    with engine.connect() as conn:
        assert alarms.open_alarms(conn, alarms.AVC_BLOCKED) == []
        assert [json.loads(c["payload"])["position"] for c in conn.execute(sa.select(command)).mappings()] == [4]
    assert list(_area_actions(engine, area_id)["action"]) == ["tap", "unblocked", "blocked", "blocked"]
