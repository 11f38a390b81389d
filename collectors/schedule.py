"""The poll schedule: one APScheduler job per process, never overlapping, missed runs coalesced."""
from __future__ import annotations

import datetime as dt
import logging
import threading
from typing import Callable

from apscheduler.schedulers.background import BackgroundScheduler

log = logging.getLogger(__name__)

_started: BackgroundScheduler | None = None
_guard = threading.Lock()

POLL_JOB_ID = "poll-cycle"


def start_poll_scheduler(run_cycle: Callable[[], object], interval_s: float,
                         first_run: dt.datetime | None = None) -> BackgroundScheduler:
    """Start the process's scheduler (idempotent: a second call returns the running one).

    max_instances=1 and coalesce=True: a slow cycle never overlaps the next, and a backlog after a
    pause runs once, not once per missed interval.
    """
    global _started
    with _guard:
        if _started is not None and _started.running:
            return _started
        sched = BackgroundScheduler(timezone=dt.UTC, job_defaults={"max_instances": 1, "coalesce": True,
                                                                   "misfire_grace_time": max(1, int(interval_s))})
        sched.add_job(_logged(run_cycle), "interval", seconds=interval_s, id=POLL_JOB_ID,
                      next_run_time=first_run or dt.datetime.now(dt.UTC))
        sched.start()
        _started = sched
        return sched


def stop_poll_scheduler() -> None:
    global _started
    with _guard:
        if _started is not None:
            if _started.running:
                _started.shutdown(wait=True)
            _started = None


def scheduler_running() -> bool:
    return _started is not None and _started.running


def _logged(fn: Callable[[], object]) -> Callable[[], None]:
    def job() -> None:
        try:
            fn()
        except Exception:  # a failed cycle must not kill the schedule
            log.exception("poll cycle failed")
    job.__name__ = getattr(fn, "__name__", "poll_cycle")
    return job
