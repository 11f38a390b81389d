"""The poll schedule: one scheduler per process, cycles never overlap, a failing cycle does not stop it."""
from __future__ import annotations

import threading
import time

from collectors.schedule import POLL_JOB_ID, scheduler_running, start_poll_scheduler, stop_poll_scheduler


def _wait_for(predicate, seconds=20):
    deadline = time.time() + seconds
    while time.time() < deadline and not predicate():
        time.sleep(0.02)
    return predicate()


def test_starting_the_schedule_twice_keeps_one_scheduler_with_one_job():
    try:
        first = start_poll_scheduler(lambda: None, 60)
        second = start_poll_scheduler(lambda: None, 60)
        assert first is second and scheduler_running()
        assert [j.id for j in first.get_jobs()] == [POLL_JOB_ID]
    finally:
        stop_poll_scheduler()
    assert not scheduler_running()


def test_a_cycle_slower_than_the_interval_never_runs_twice_at_once():
    lock = threading.Lock()
    running, most, runs = [0], [0], [0]

    def slow_cycle():
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.35)  # longer than the 0.1 s interval
        with lock:
            running[0] -= 1
            runs[0] += 1

    try:
        start_poll_scheduler(slow_cycle, 0.1)
        assert _wait_for(lambda: runs[0] >= 3)
    finally:
        stop_poll_scheduler()
    assert most[0] == 1


def test_a_failing_cycle_does_not_stop_the_schedule():
    calls = []

    def failing():
        calls.append(1)
        raise RuntimeError("database gone for a moment")

    try:
        start_poll_scheduler(failing, 0.1)
        assert _wait_for(lambda: len(calls) >= 2)
        assert scheduler_running()
    finally:
        stop_poll_scheduler()
