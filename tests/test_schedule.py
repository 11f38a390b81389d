"""The job scheduler: one scheduler per Jobs, a job never overlaps itself, a failing job does not stop the schedule."""
from __future__ import annotations

import threading
import time

from collectors.schedule import POLL_JOB, Jobs


def _wait_for(predicate, seconds=20):
    deadline = time.time() + seconds
    while time.time() < deadline and not predicate():
        time.sleep(0.02)
    return predicate()


def test_starting_the_schedule_twice_keeps_one_scheduler_with_one_job():
    jobs = Jobs()
    jobs.add(POLL_JOB, lambda: None, 60)
    try:
        jobs.start()
        first = jobs._sched
        jobs.start()
        assert jobs._sched is first and jobs.running
        assert [j.id for j in first.get_jobs()] == [POLL_JOB]
    finally:
        jobs.stop()
        jobs.stop()
    assert not jobs.running


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

    jobs = Jobs()
    jobs.add(POLL_JOB, slow_cycle, 0.1)
    try:
        jobs.start()
        assert _wait_for(lambda: runs[0] >= 3)
    finally:
        jobs.stop()
    assert most[0] == 1


def test_a_failing_cycle_does_not_stop_the_schedule():
    calls = []

    def failing():
        calls.append(1)
        raise RuntimeError("database gone for a moment")

    jobs = Jobs()
    jobs.add(POLL_JOB, failing, 0.1)
    try:
        jobs.start()
        assert _wait_for(lambda: len(calls) >= 2)
        assert jobs.running
    finally:
        jobs.stop()
