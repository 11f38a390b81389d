"""The energy rollups' upkeep: after each poll cycle, the readings since the last upkeep are folded into the
15-minute, hourly and daily rollups (per meter, the site's time zone); a rebuild recomputes a range of days.

Incremental and idempotent: each meter's last folded reading is kept (energy_upkeep) and the next interval
starts there, so a rerun finds nothing new and a meter back from a silence gets its whole interval, spread.
Crash-safe: the rollup rows and the upkeep state change in one transaction; after a restart the job catches up
from the state. Readings that arrive later than a meter's last folded one (imported history) count after
`app.py rollup --rebuild`.
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
import sqlalchemy as sa

from billing.shadow import tariff_periods
from core.clock import utcnow
from energy.derive import DeriveRules, ENERGY, intervals, quarter_pieces, rollup_frames, split_by_segments, sum_pieces
from energy.history import local_range
from storage import energy as store
from storage.billing import epoch_starts

log = logging.getLogger(__name__)

ROLLUP_JOB = "rollups"
# An upkeep also reads this far before its watermark: a cycle that committed after a later one is still folded.
LOOKBACK = dt.timedelta(minutes=10)
# A rebuild reads readings this far around its range, so intervals across its edges have both ends.
EDGE = dt.timedelta(days=7)
READINGS_PER_CHUNK = 1_000_000    # a rebuild derives this many readings at a time (memory stays bounded)


@dataclass(frozen=True)
class UpkeepResult:
    meters: int = 0
    readings: int = 0
    seconds: float = 0.0
    rebuilt: bool = False


def local_day(ts: dt.datetime, tz: dt.tzinfo) -> dt.date:
    return ts.replace(tzinfo=dt.UTC).astimezone(tz).date()


def _tariff_frame(conn: sa.Connection, meter_ids: list[int] | None) -> pd.DataFrame:
    """meter_id, since (UTC seconds), segments: the time-of-use segments in force from each change (() if none)."""
    rows = []
    for mid, (times, bodies) in tariff_periods(conn, meter_ids).items():
        for t, body in zip(times, bodies):
            segs = tuple(body[1].segments) if body is not None and body[0] == "tou" else ()
            rows.append((mid, int(np.datetime64(t, "s").astype(np.int64)), segs))
    return pd.DataFrame(rows, columns=["meter_id", "since", "segments"])


def _epochs(conn: sa.Connection, meter_ids: list[int] | None) -> dict[int, list[dt.datetime]]:
    return {mid: [since for since, _e in starts] for mid, starts in epoch_starts(conn, meter_ids).items()}


class EnergyRollups:
    """Upkeep and rebuild of the rollups for one database and site zone."""

    def __init__(self, engine: sa.Engine, tz: dt.tzinfo, rules: DeriveRules = DeriveRules(), fine_days: int = 62,
                 clock: Callable[[], dt.datetime] = utcnow):
        self.engine, self.tz, self.rules, self.fine_days, self.clock = engine, tz, rules, fine_days, clock
        self._lock = threading.Lock()   # one upkeep or rebuild at a time in this process
        self._site_terms: tuple | None = None   # (fingerprint, tariff frame, epochs) of every meter
        self._pruned_on: dt.date | None = None  # 15-minute rows past fine_days go once a day

    @classmethod
    def from_config(cls, engine: sa.Engine, tz: dt.tzinfo, analytics, clock=utcnow) -> "EnergyRollups":
        return cls(engine, tz, DeriveRules.from_config(analytics), analytics.fine_days, clock)

    def _fine_cutoff(self) -> dt.datetime:
        return self.clock() - dt.timedelta(days=self.fine_days)

    # -- the pieces of a frame of readings
    def _terms(self, conn: sa.Connection) -> tuple[pd.DataFrame, dict[int, list[dt.datetime]]]:
        """Every meter's tariff segments and swap times, read again only when those tables changed."""
        fingerprint = store.tariff_fingerprint(conn)
        if self._site_terms is None or self._site_terms[0] != fingerprint:
            # every meter's: no list of 10,000 ids in the two queries (expanding it cost more than the reads)
            self._site_terms = (fingerprint, _tariff_frame(conn, None), _epochs(conn, None))
        return self._site_terms[1], self._site_terms[2]

    def _rollups(self, conn: sa.Connection, frame: pd.DataFrame) -> dict[str, pd.DataFrame] | None:
        tariffs, epochs = self._terms(conn)
        iv = intervals(frame, self.rules, epochs)
        if iv.empty:
            return None
        pieces = split_by_segments(quarter_pieces(iv), self.tz, tariffs[tariffs["meter_id"].isin(iv["meter_id"])])
        return rollup_frames(sum_pieces(pieces, "q"), self.tz)

    # -- incremental
    def upkeep(self) -> UpkeepResult:
        """Fold the readings since the last upkeep into the rollups (a full build when none was ever made)."""
        with self._lock:
            t0 = time.perf_counter()
            with self.engine.begin() as conn:
                state = store.upkeep_state(conn)     # its latest time is the watermark
                if state.empty:
                    result = self._rebuild(conn, None, None)
                    return UpkeepResult(result["meters"], result["readings"], time.perf_counter() - t0, True)
                new = store.energy_readings(conn, pd.Timestamp(state["ts"].max()).to_pydatetime() - LOOKBACK, None)
                if new.empty:
                    return UpkeepResult(seconds=time.perf_counter() - t0)
                state = state[state["meter_id"].isin(new["meter_id"].unique())]
                last = new["meter_id"].map(state.set_index("meter_id")["ts"]) if len(state) else None
                if last is not None:
                    new = new[last.isna() | (new["ts"] > last)]
                if new.empty:
                    return UpkeepResult(seconds=time.perf_counter() - t0)
                frame = pd.concat([state[state["meter_id"].isin(new["meter_id"])], new], ignore_index=True)
                frames = self._rollups(conn, frame)
                if frames is not None:
                    cutoff = self._fine_cutoff()
                    frames["15min"] = frames["15min"][frames["15min"]["ts"] >= cutoff]
                    for grain, part in frames.items():
                        store.add_to_rollup(conn, grain, part)
                store.save_upkeep_state(conn, _last_readings(new))
                if self._pruned_on != self.clock().date():
                    store.prune_quarters(conn, self._fine_cutoff())
                    self._pruned_on = self.clock().date()
            return UpkeepResult(int(new["meter_id"].nunique()), len(new), time.perf_counter() - t0)

    # -- full or by range
    def rebuild(self, first_day: dt.date | None = None, last_day: dt.date | None = None) -> dict:
        """Recompute the rollups of the local days first..last (default: all the history) from the readings."""
        with self._lock, self.engine.begin() as conn:
            return self._rebuild(conn, first_day, last_day)

    def _rebuild(self, conn: sa.Connection, first_day: dt.date | None, last_day: dt.date | None) -> dict:
        t0 = time.perf_counter()
        mark = store.upkeep_watermark(conn)
        first_ts, last_ts = store.readings_span(conn)
        if first_ts is None:
            return {"meters": 0, "readings": 0, "seconds": 0.0, "from": None, "to": None}
        fresh = mark is None
        frontier = last_ts if fresh else mark
        first_day = first_day or local_day(first_ts, self.tz)
        # a first build goes to the latest reading whatever was asked: the upkeep goes on from there
        last_day = local_day(frontier, self.tz) if fresh or last_day is None else last_day
        start, end = local_range(self.tz, first_day, last_day)
        if fresh:
            store.clear_upkeep_state(conn)
        store.delete_rollups_between(conn, start, end, first_day, last_day)
        cutoff = max(self._fine_cutoff(), start)
        ids = store.all_meter_ids(conn)
        total = store.count_readings(conn, start - EDGE, end + EDGE)
        per_chunk = max(1, min(len(ids), READINGS_PER_CHUNK * len(ids) // max(total, 1)))
        state = store.upkeep_state(conn).set_index("meter_id")["ts"] if not fresh else pd.Series(dtype="datetime64[us]")
        n_readings = n_meters = 0
        new_state = []
        read_to = min(end + EDGE, frontier + dt.timedelta(microseconds=1))
        for i in range(0, len(ids), per_chunk):
            chunk = ids[i:i + per_chunk]
            frame = store.energy_readings(conn, start - EDGE, read_to, chunk)
            if frame.empty:
                continue
            # only what the upkeep has folded (a meter's readings up to its state), the rest is the upkeep's
            cap = frame["meter_id"].map(state).fillna(pd.Timestamp(frontier)) if len(state) else pd.Timestamp(frontier)
            frame = frame[frame["ts"] <= cap]
            n_readings += len(frame)
            n_meters += frame["meter_id"].nunique()
            frames = self._rollups(conn, frame)
            if frames is not None:
                for grain, part in frames.items():
                    key = "day" if grain == "day" else "ts"
                    if key == "day":
                        keep = (part["day"] >= np.datetime64(first_day)) & (part["day"] <= np.datetime64(last_day))
                    else:
                        keep = (part["ts"] >= (cutoff if grain == "15min" else start)) & (part["ts"] < end)
                    store.insert_rollup_rows(conn, grain, part[keep])
            # a first build leaves every meter's last reading as the upkeep's start; a later one only those of
            # meters the upkeep has not seen yet
            new_state.append(_last_readings(frame if fresh else frame[~frame["meter_id"].isin(state.index)]))
        if new_state:
            store.save_upkeep_state(conn, pd.concat(new_state, ignore_index=True))
        store.order_rollups_by_time(conn)
        return {"meters": int(n_meters), "readings": int(n_readings), "seconds": round(time.perf_counter() - t0, 3),
                "from": first_day.isoformat(), "to": last_day.isoformat()}


def _last_readings(frame: pd.DataFrame) -> pd.DataFrame:
    """Each meter's latest reading (the upkeep's state)."""
    f = frame.sort_values(["meter_id", "ts"], kind="stable").groupby("meter_id", as_index=False).tail(1)
    return f[list(store.UPKEEP_COLUMNS)]


def attach_rollups(engine: sa.Engine, tz: dt.tzinfo, analytics, jobs, events) -> EnergyRollups:
    """The "rollups" job (on its interval and woken after every poll cycle); its first run catches up."""
    from core.events import CYCLE_CHANGED
    rollups = EnergyRollups.from_config(engine, tz, analytics)
    jobs.add(ROLLUP_JOB, rollups.upkeep, analytics.rollup_interval_s)
    events.subscribe(CYCLE_CHANGED, lambda _changes: jobs.wake(ROLLUP_JOB))
    return rollups


__all__ = ["ENERGY", "EnergyRollups", "ROLLUP_JOB", "UpkeepResult", "attach_rollups"]
