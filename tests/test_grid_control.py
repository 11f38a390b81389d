"""Telecontrol and teleadjust of a transformer area against the simulator over loopback, with the real collector and
dispatcher: a breaker command refused without permission is neither queued nor executed (the simulated breaker
stays closed, the refusal is in the operation log); with permission it opens the simulated breaker and the
read-back confirms it; a breaker that answers but stays closed is a failed command and an alarm; the tap and the
capacity mode set by hand; the arrears trip of the area's meters; bad input refused in words, nothing written."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from billing.errors import BillingError
from core.text import error_text
from grid import control
from storage import alarms
from storage.schema import audit_log, grid_action
from tests.grid_support import ROOM_OK, ROOM_OWING, TTU, cashier, grid_site, operator


@pytest.fixture
def site(request, tmp_path):
    yield from grid_site(getattr(request, "param", "duckdb"), tmp_path)


on_both_engines = pytest.mark.parametrize("site", ["duckdb", pytest.param("postgresql", marks=pytest.mark.postgres)],
                                          indirect=True)


def _audit(site, action: str) -> list[dict]:
    with site.engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(audit_log).where(audit_log.c.action == action)).mappings()]


def _grid_actions(site) -> int:
    with site.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(grid_action)).scalar_one()


@on_both_engines
def test_a_breaker_command_without_permission_is_refused_not_queued_and_not_executed(site):
    assert site.terminal.breakers[0] is True
    with pytest.raises(BillingError) as refused:
        control.queue_breaker(site.ctx, cashier(), site.area_id, 1, "open", "maintenance")
    assert refused.value.code == "permission_denied"
    assert "grid.control" in refused.value.params["permission"]
    site.tick(5)
    assert site.commands() == [] and _grid_actions(site) == 0
    assert site.terminal.breakers[0] is True, "the simulated breaker is still closed"
    denied = _audit(site, "permission.denied")
    assert [(r["operator"], r["target"]) for r in denied] == [("cathy", f"area:{site.area_id}")]


@on_both_engines
def test_a_breaker_opened_with_permission_is_confirmed_by_reading_it_back(site):
    command_id = control.queue_breaker(site.ctx, operator(), site.area_id, 2, "open", "cable work on outlet 2")
    assert control.control_state(site.ctx, site.area_id)["pending"][0]["id"] == command_id
    site.tick(5)
    assert site.terminal.breakers[1] is False, "the simulated breaker opened"
    row = site.actions().iloc[0]
    assert (row["mode"], row["action"], row["before"], row["after"]) == ("manual", "breaker_open", "closed", "open")
    assert (row["command_state"], row["operator"], row["reason"]) == ("acked", "olga", "cable work on outlet 2")
    assert len(site.actions(limit="many", lang="xx")) == 1, "a bad limit or language falls back"
    zh = site.actions(lang="zh").iloc[0]
    assert (zh["mode_text"], zh["action_text"], zh["before_text"], zh["after_text"]) == ("手动", "出线开关拉闸", "合闸", "拉闸")
    state = control.control_state(site.ctx, site.area_id)
    assert state["breakers"][2] is False and state["pending"] == []
    assert _audit(site, "grid.command")[0]["target"] == f"area:{site.area_id}"
    control.queue_breaker(site.ctx, operator(), site.area_id, "2", "close", "work done")
    site.tick(5)
    assert site.terminal.breakers[1] is True


def test_a_breaker_that_answers_but_stays_closed_is_a_failed_command_and_an_alarm(site):
    site.field.set_terminal_fault(TTU, "breaker_stuck")
    control.queue_breaker(site.ctx, operator(), site.area_id, 1, "open", "fault on outlet 1")
    site.tick(5)
    assert site.terminal.breakers[0] is True
    row = site.actions().iloc[0]
    assert (row["command_state"], row["command_result"]) == ("failed", "NOT_EXECUTED")
    with site.engine.connect() as conn:
        open_ = alarms.open_alarms(conn, alarms.COMMAND_FAILED)
    assert [(a["subject_kind"], a["message_params"]["command_kind"]) for a in open_] == [("meter", "breaker")]


def test_the_tap_and_the_capacity_mode_set_by_hand_are_read_back(site):
    control.queue_tap(site.ctx, operator(), site.area_id, 7, "raise the evening voltage")
    control.queue_capacity_mode(site.ctx, operator(), site.area_id, "small", "light load at night")
    site.tick(5)
    assert (site.terminal.tap_position, site.terminal.capacity_mode) == (7, 0)
    rows = site.actions()
    assert list(rows["action"]) == ["capacity_mode", "tap"]
    assert list(rows["command_state"]) == ["acked", "acked"]
    assert (rows.iloc[1]["before"], rows.iloc[1]["after"]) == ("5", "7")
    state = control.control_state(site.ctx, site.area_id)
    assert (state["tap_position"], state["tap_count"], state["capacity_mode"]) == (7, 9, "small")


def test_a_bad_tap_position_is_refused_in_words_and_nothing_is_written(site):
    for position in ("50,5", "５", "7.5", 10**12, None, True, "=1+1", "\x007", "", 0, 10, float("inf")):
        with pytest.raises(control.ControlError) as bad:
            control.queue_tap(site.ctx, operator(), site.area_id, position, "a reason")
        assert bad.value.code == "tap_invalid", position
        assert "1" in error_text(bad.value, "zh") and "9" in error_text(bad.value, "en")
    assert site.commands() == [] and _grid_actions(site) == 0


def test_a_command_without_a_reason_or_to_an_unknown_area_writes_nothing(site):
    for call in (lambda: control.queue_breaker(site.ctx, operator(), site.area_id, 1, "open", "  \x00 "),
                 lambda: control.queue_breaker(site.ctx, operator(), site.area_id, 9, "open", "x"),
                 lambda: control.queue_breaker(site.ctx, operator(), site.area_id, 1, "explode", "x"),
                 lambda: control.queue_capacity_mode(site.ctx, operator(), site.area_id, "huge", "x"),
                 lambda: control.queue_tap(site.ctx, operator(), "9999", 5, "x"),
                 lambda: control.queue_tap(site.ctx, operator(), "abc", 5, "x"),
                 lambda: control.set_automation(site.ctx, operator(), site.area_id, "yes", "x")):
        with pytest.raises(control.ControlError) as bad:
            call()
        assert error_text(bad.value, "zh") and error_text(bad.value, "en")
    assert site.commands() == [] and _grid_actions(site) == 0


def test_the_areas_meters_in_arrears_are_tripped_as_one_batch(site):
    site.poll()
    with pytest.raises(BillingError):
        control.trip_arrears(site.ctx, cashier(), site.area_id, "arrears")
    assert control.arrears_meters(site.ctx, site.area_id) == [ROOM_OWING]
    batch_id = control.trip_arrears(site.ctx, operator(), site.area_id, "arrears round")
    site.tick(5)
    assert site.field.meter(ROOM_OWING).forced_trip and not site.field.meter(ROOM_OK).forced_trip
    row = site.actions().iloc[0]
    assert (row["action"], row["after"], row["batch_id"]) == ("arrears_trip", "1", batch_id)


@on_both_engines
def test_automation_is_switched_by_permission_with_a_reason_and_logged(site):
    with pytest.raises(BillingError):
        control.set_automation(site.ctx, cashier(), site.area_id, True, "try")
    assert control.control_state(site.ctx, site.area_id)["enabled"] is False
    control.set_automation(site.ctx, operator(), site.area_id, True, "evening peak")
    state = control.control_state(site.ctx, site.area_id)
    assert state["enabled"] is True and state["band"]["low"] == pytest.approx(204.6)
    assert state["band"]["high"] == pytest.approx(235.4) and state["band"]["step"] == pytest.approx(5.5)
    rows = site.actions(lang="zh")
    assert (rows.iloc[0]["action"], rows.iloc[0]["before"], rows.iloc[0]["after"]) == ("automation_on", "off", "on")
    assert _audit(site, "grid.automation_on")[0]["operator"] == "olga"


def test_the_automation_settings_are_changed_whole_or_not_at_all(site):
    with pytest.raises(BillingError):
        control.set_settings(site.ctx, cashier(), site.area_id, {"first_delay_s": 120}, "slower")
    for bad in ({"first_delay_s": "1,5"}, {"first_delay_s": "１２０"}, {"daily_limit": 0}, {"band_high": 0.5},
                {"first_delay_s": 120, "colour": "red"}, {"band_low": -0.02, "band_high": 0.02},
                {"capacity_down": 0.9}, {"step_delay_s": float("nan")}, {}, {"capacity_auto": "no"},
                {"band_low": "--0.05"}, {"band_low": "-"}, {"daily_limit": "1e3"}, {"small_kva": [1]}, "band_low",
                {"daily_limit": 10**400}):
        with pytest.raises(control.ControlError) as refused:
            control.set_settings(site.ctx, operator(), site.area_id, bad, "tuning")
        assert error_text(refused.value, "zh") and error_text(refused.value, "en")
    assert control.control_state(site.ctx, site.area_id)["settings"] == {**control.DEFAULTS}
    now = control.set_settings(site.ctx, operator(), site.area_id,
                               {"first_delay_s": "120", "band_low": "-0.05", "capacity_auto": False}, "tuning")
    assert (now["first_delay_s"], now["band_low"], now["capacity_auto"]) == (120, -0.05, False)
    state = control.control_state(site.ctx, site.area_id)
    assert state["settings"]["first_delay_s"] == 120 and state["band"]["low"] == pytest.approx(209.0)
    assert site.actions().iloc[0]["action"] == "settings"
    assert _audit(site, "grid.settings")[0]["operator"] == "olga"
