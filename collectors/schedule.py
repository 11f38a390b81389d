"""Named scheduler jobs: the process's APScheduler, each job's interval, last run, duration, error and next run.

The poll cycle is one job ("poll"); site-wide work (reconciliation, scheduled tariff pushes, later alarm
evaluation, notifications, rollups ...) are others, each with its own interval. A job never runs twice at once
(max_instances=1) and a backlog after a pause runs once (coalesce). A failing job is logged with its traceback,
its error (text and time) recorded, and it runs again at its next run; it never stops the other jobs.
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from dataclasses import dataclass, replace
from typing import Callable

from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler

from core.clock import utcnow

log = logging.getLogger(__name__)

POLL_JOB = "poll"                # the full reading
STATE_POLL_JOB = "state_poll"    # the fast state poll between full readings (collectors.cycle)


@dataclass(frozen=True)
class JobStatus:
    """One job as the status page and /healthz show it; times are naive UTC."""
    name: str
    interval_s: float
    runs: int = 0
    running: bool = False
    last_started_at: dt.datetime | None = None
    last_duration_s: float | None = None
    last_ok: bool | None = None            # None: never ran
    last_error: str | None = None          # the latest failure, kept after later runs succeed
    last_error_at: dt.datetime | None = None
    next_run_at: dt.datetime | None = None


class _Job:
    def __init__(self, name: str, fn: Callable[[], object], interval_s: float):
        self.name, self.fn = name, fn
        self.lock = threading.Lock()       # one run at a time, scheduled or run() by hand
        self.status = JobStatus(name, float(interval_s))
        self.first_run: dt.datetime | None = None


class Jobs:
    """The process's scheduler and its named jobs. start() and stop() are idempotent."""

    def __init__(self, clock: Callable[[], dt.datetime] = utcnow):
        self.clock = clock
        self._jobs: dict[str, _Job] = {}
        self._guard = threading.Lock()
        self._sched: BackgroundScheduler | None = None

    # -- jobs
    def add(self, name: str, fn: Callable[[], object], interval_s: float,
            first_run: dt.datetime | None = None) -> None:
        """Run `fn` every `interval_s` seconds, first at `first_run` (naive or aware UTC; default: at start)."""
        if interval_s <= 0:
            raise ValueError(f"job {name}: the interval must be positive, not {interval_s}")
        with self._guard:
            if name in self._jobs:
                raise ValueError(f"a job named {name!r} exists already")
            self._jobs[name] = job = _Job(name, fn, interval_s)
            job.first_run = _aware(first_run)
            if self._sched is not None:
                self._schedule(job)

    def names(self) -> list[str]:
        return list(self._jobs)

    def reschedule(self, name: str, interval_s: float) -> None:
        """Change a job's interval at run time; its next run is one new interval from now."""
        if interval_s <= 0:
            raise ValueError(f"job {name}: the interval must be positive, not {interval_s}")
        job = self._jobs[name]
        with self._guard:
            job.status = replace(job.status, interval_s=float(interval_s))
            if self._sched is not None:
                self._sched.reschedule_job(name, trigger="interval", seconds=interval_s)
                self._sched.modify_job(name, misfire_grace_time=_grace(interval_s))
        log.info("job %s now runs every %s s", name, interval_s)

    def run(self, name: str) -> bool:
        """Run a job now in the caller's thread (waiting for a run in progress), recorded as a scheduled run
        is; True when it succeeded."""
        return self._run(self._jobs[name])

    def wake(self, name: str) -> None:
        """Bring a job's next run forward to now (it runs on the scheduler's threads); nothing when stopped."""
        with self._guard:
            if self._sched is None:
                return
            try:
                self._sched.modify_job(name, next_run_time=dt.datetime.now(dt.UTC))
            except JobLookupError:
                pass

    # -- the scheduler
    def start(self) -> "Jobs":
        with self._guard:
            if self._sched is None:
                self._sched = BackgroundScheduler(timezone=dt.UTC)
                for job in self._jobs.values():
                    self._schedule(job)
                self._sched.start()
        return self

    def stop(self) -> None:
        with self._guard:
            sched, self._sched = self._sched, None
        if sched is not None and sched.running:
            sched.shutdown(wait=True)

    @property
    def running(self) -> bool:
        sched = self._sched
        return sched is not None and sched.running

    def status(self) -> list[JobStatus]:
        """Every job, in the order they were added, with its next run time."""
        out = []
        for job in list(self._jobs.values()):
            out.append(replace(job.status, next_run_at=self._next_run(job.name)))
        return out

    # -- inside
    def _schedule(self, job: _Job) -> None:
        interval = job.status.interval_s
        self._sched.add_job(self._run, "interval", args=(job,), seconds=interval, id=job.name, name=job.name,
                            next_run_time=job.first_run or dt.datetime.now(dt.UTC), max_instances=1, coalesce=True,
                            misfire_grace_time=_grace(interval))
        job.first_run = None   # a restart runs it at once, as a new process would

    def _next_run(self, name: str) -> dt.datetime | None:
        sched = self._sched
        if sched is None:
            return None
        aps = sched.get_job(name)
        if aps is None or aps.next_run_time is None:
            return None
        return aps.next_run_time.astimezone(dt.UTC).replace(tzinfo=None)

    def _run(self, job: _Job) -> bool:
        with job.lock:
            started = self.clock()
            job.status = replace(job.status, running=True, last_started_at=started)
            t0 = time.perf_counter()
            error = None
            try:
                job.fn()
            except Exception as exc:  # noqa: BLE001 - logged and recorded; the job runs again at its next run
                log.exception("job %s failed", job.name)
                error = f"{type(exc).__name__}: {exc}"[:500]
            duration = time.perf_counter() - t0
            s = job.status
            job.status = replace(s, running=False, runs=s.runs + 1, last_duration_s=duration, last_ok=error is None,
                                 last_error=error if error else s.last_error,
                                 last_error_at=self.clock() if error else s.last_error_at)
            return error is None


def _aware(t: dt.datetime | None) -> dt.datetime | None:
    if t is None:
        return None
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def _grace(interval_s: float) -> int:
    return max(1, int(interval_s))
