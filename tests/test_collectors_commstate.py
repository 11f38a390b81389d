"""Communication state of a meter from its poll outcomes (pure function)."""
from __future__ import annotations

import datetime as dt

from collectors.commstate import next_comm_state
from collectors.poller import Outcome

T0 = dt.datetime(2026, 11, 21, 8, 0, 0)


def at(minutes: int) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


def run(statuses: list[str], prev=None, lost_after: int = 3):
    state = prev
    for i, status in enumerate(statuses):
        state = next_comm_state(state, status, at(i), lost_after)
    return state


def test_a_good_poll_makes_a_new_meter_online():
    state = next_comm_state(None, Outcome("ok"), T0)
    assert state == {"comm_state": "online", "miss_count": 0, "last_seen": T0, "lost_since": None,
                     "lost_reason": None}


def test_two_misses_leave_a_meter_online():
    state = run(["ok", "timeout", "timeout"])
    assert state["comm_state"] == "online" and state["miss_count"] == 2 and state["last_seen"] == at(0)


def test_three_consecutive_misses_make_a_meter_lost():
    state = run(["ok", "timeout", "bad_reply", "exception"])
    assert state["comm_state"] == "lost" and state["lost_reason"] == "meter"
    assert state["lost_since"] == at(3) and state["last_seen"] == at(0)


def test_a_lost_meter_keeps_its_first_lost_since():
    state = run(["ok", "timeout", "timeout", "timeout", "timeout", "timeout"])
    assert state["comm_state"] == "lost" and state["lost_since"] == at(3) and state["miss_count"] == 5


def test_an_unreachable_gateway_makes_its_meters_lost_at_once():
    state = run(["ok", "gateway_unreachable"])
    assert state["comm_state"] == "lost" and state["lost_reason"] == "gateway" and state["lost_since"] == at(1)


def test_one_good_poll_recovers_a_lost_meter():
    state = run(["ok", "timeout", "timeout", "timeout", "ok"])
    assert state["comm_state"] == "online" and state["miss_count"] == 0
    assert state["lost_since"] is None and state["last_seen"] == at(4)


def test_one_good_poll_recovers_a_meter_lost_with_its_gateway():
    state = run(["gateway_unreachable", "gateway_unreachable", "ok"])
    assert state["comm_state"] == "online" and state["lost_reason"] is None


def test_a_meter_silent_after_its_gateway_returns_stays_lost_as_a_meter():
    state = run(["gateway_unreachable", "timeout"])
    assert state["comm_state"] == "lost" and state["lost_reason"] == "meter" and state["lost_since"] == at(0)


def test_a_good_poll_between_misses_resets_the_count():
    state = run(["timeout", "timeout", "ok", "timeout", "timeout"])
    assert state["comm_state"] == "online" and state["miss_count"] == 2


def test_lost_after_is_configurable():
    assert run(["timeout"], lost_after=1)["comm_state"] == "lost"
    assert run(["timeout"] * 4, lost_after=5)["comm_state"] == "online"
