"""Time limits of work orders: a deadline from a start and a number of hours, around the clock or on a working-hours
calendar in the site's time zone; the time that counts between two moments; due-soon and overdue flags."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from core.clock import site_time, utc_time
from core.config import WorkOrdersConfig, parse_quiet_hours, parse_weekdays

DUE_SOON, OVERDUE = "due_soon", "overdue"


@dataclass(frozen=True)
class Calendar:
    """When an order's clock runs: always (hours None), or from hours[0] to hours[1] on `days` (ISO weekdays),
    local time of `zone`."""
    zone: dt.tzinfo
    hours: tuple[dt.time, dt.time] | None = None
    days: frozenset[int] = frozenset(range(1, 8))

    @classmethod
    def from_config(cls, cfg: WorkOrdersConfig, zone: dt.tzinfo) -> Calendar:
        hours = parse_quiet_hours(cfg.working_hours) if cfg.working_hours else None
        return cls(zone, hours, parse_weekdays(cfg.working_days) or frozenset(range(1, 8)))

    def _windows(self, local_day: dt.date):
        """The working window of one local day as naive local datetimes, or None."""
        if local_day.isoweekday() not in self.days:
            return None
        return dt.datetime.combine(local_day, self.hours[0]), dt.datetime.combine(local_day, self.hours[1])

    def add(self, start: dt.datetime, duration: dt.timedelta) -> dt.datetime:
        """The UTC moment `duration` of working time after the UTC moment `start`."""
        if self.hours is None:
            return start + duration
        local = site_time(start, self.zone)
        left = duration
        day = local.date()
        for _ in range(3700):  # ten years of days: more than any limit the configuration allows
            window = self._windows(day)
            if window is not None:
                begin = max(window[0], local)
                if begin < window[1]:
                    room = window[1] - begin
                    if left <= room:
                        return utc_time(begin + left, self.zone)
                    left -= room
            day += dt.timedelta(days=1)
            local = dt.datetime.combine(day, dt.time())
        raise ValueError("no working time in ten years: check [workorders] working_days")

    def between(self, start: dt.datetime, end: dt.datetime) -> dt.timedelta:
        """Working time from the UTC moment `start` to `end` (zero when end is not after start)."""
        if end <= start:
            return dt.timedelta()
        if self.hours is None:
            return end - start
        a, b = site_time(start, self.zone), site_time(end, self.zone)
        total = dt.timedelta()
        day = a.date()
        while day <= b.date():
            window = self._windows(day)
            if window is not None:
                lo, hi = max(window[0], a), min(window[1], b)
                if hi > lo:
                    total += hi - lo
            day += dt.timedelta(days=1)
        return total


def due_flag(state: str, due_at: dt.datetime | None, now: dt.datetime, due_soon: dt.timedelta,
             clock_states) -> str | None:
    """OVERDUE at and after the deadline, DUE_SOON within `due_soon` before it, else None; an order whose clock does
    not run (on hold, completed, closed) is neither."""
    if due_at is None or state not in clock_states:
        return None
    if now >= due_at:
        return OVERDUE
    if now >= due_at - due_soon:
        return DUE_SOON
    return None
