"""One meter's reading history (抄表历史记录查询) and an instrument's register difference (计量仪表能耗查询):
plain functions over an engine and the site's zone, callable from a page, the report centre or the command line."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd
import sqlalchemy as sa

from core.clock import site_time, utc_time
from storage import meter_history as store
from storage.grid import master_ct_ratio
from storage.schema import READING_STATUS_BITS

HISTORY_MAX_DAYS = 92       # one query covers at most a quarter: 4,400 half-hourly readings
HISTORY_ROW_CAP = 5000      # and at most this many rows (a meter polled every minute fills it in 3.5 days)
GAP_FACTOR = 1.5            # a spacing over 1.5 poll intervals means at least one poll was missed
METER_NUMBER_MAX = 12       # meter.address: the 12-digit nameplate number
NO_CT_RATIO = 1             # a device that is no area's master meter has no CT ratio: its registers as they are


class HistoryError(ValueError):
    """A request the operator can fix (unknown meter, days the wrong way round, a range too long); nothing
    was read. The text is the catalogs' `analysis.error.<code>` with `params`."""

    def __init__(self, code: str, **params):
        self.code, self.params = code, params
        super().__init__(code)

    @property
    def key(self) -> str:
        return f"analysis.error.{self.code}"

    def message(self, lang: str = "en") -> str:
        from core.text import error_text
        return error_text(self, lang)


@dataclass(frozen=True)
class ReadingHistory:
    meter: dict                 # address, profile, building, floor, room, area
    rows: pd.DataFrame          # ts (site time), the readings' values, flags (set status bits), gap_minutes, comm_gap
    truncated: bool             # more rows matched than row_cap: the first row_cap are shown
    row_cap: int
    expected_minutes: float     # the spacing gaps are measured against
    first_day: dt.date
    last_day: dt.date

    @property
    def gaps(self) -> int:
        return int(self.rows["comm_gap"].sum()) if len(self.rows) else 0


def local_range(zone: dt.tzinfo, first_day: dt.date, last_day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """The site's local days first..last (both inclusive) as a naive-UTC half-open range [start, end)."""
    start = utc_time(dt.datetime.combine(first_day, dt.time()), zone)
    end = utc_time(dt.datetime.combine(last_day + dt.timedelta(days=1), dt.time()), zone)
    return start, end


def _checked(engine: sa.Engine, address, first_day, last_day, max_days: int | None) -> dict:
    if not isinstance(first_day, dt.date) or not isinstance(last_day, dt.date):
        raise HistoryError("no_range")
    if first_day > last_day:
        raise HistoryError("range_reversed", first=first_day.isoformat(), last=last_day.isoformat())
    if max_days is not None and (last_day - first_day).days + 1 > max_days:
        raise HistoryError("range_too_long", days=max_days)
    text = address.strip() if isinstance(address, str) else ""
    if not text:
        raise HistoryError("no_meter")
    place = None
    if text.isprintable() and len(text) <= METER_NUMBER_MAX:   # else it names no meter (and PostgreSQL refuses NUL)
        with engine.connect() as conn:
            place = store.meter_place(conn, text)
    if place is None:
        raise HistoryError("unknown_meter", meter="".join(ch for ch in text[:20] if ch.isprintable()))
    return place


def status_flags(status) -> list[str]:
    """The names of the status bits set in a reading's packed status (storage.schema.READING_STATUS_BITS)."""
    if status is None or (isinstance(status, float) and np.isnan(status)):
        return []
    value = int(status)
    return [name for name, bit in READING_STATUS_BITS.items() if value >> bit & 1]


def expected_spacing(ts: pd.Series, poll_interval_s: float) -> float:
    """Seconds between readings when no poll is missed: the configured poll interval, or the window's usual
    spacing when that is longer (history backfilled at half-hourly steps under a one-minute demo poll)."""
    spacing = ts.diff().dt.total_seconds().dropna()
    usual = float(spacing.median()) if len(spacing) else 0.0
    return max(float(poll_interval_s), usual)


def reading_history(engine: sa.Engine, zone: dt.tzinfo, address: str, first_day: dt.date, last_day: dt.date, *,
                    poll_interval_s: float, row_cap: int = HISTORY_ROW_CAP) -> ReadingHistory:
    """Every reading of one meter over the site's local days first..last (inclusive), oldest first, at most
    `row_cap` rows: registers, balance, purchase count, relay, the status bits by name, and comm gaps (a
    reading that came more than GAP_FACTOR expected spacings after the one before it)."""
    place = _checked(engine, address, first_day, last_day, HISTORY_MAX_DAYS)
    start, end = local_range(zone, first_day, last_day)
    with engine.connect() as conn:
        rows = store.history_rows(conn, place["id"], start, end, row_cap + 1)
    truncated = len(rows) > row_cap
    rows = rows.iloc[:row_cap].copy()
    rows["ts"] = pd.to_datetime(rows["ts"])
    expected = expected_spacing(rows["ts"], poll_interval_s)
    gap = rows["ts"].diff().dt.total_seconds()
    rows["gap_minutes"] = (gap / 60.0).round(1)
    rows["comm_gap"] = (gap > GAP_FACTOR * expected).fillna(False).astype(bool)
    rows["flags"] = [status_flags(s) for s in rows["status"]]
    rows["ts"] = site_time(rows["ts"], zone) if len(rows) else rows["ts"]
    return ReadingHistory({k: place[k] for k in ("address", "profile", "building", "floor", "room", "area")},
                          rows.drop(columns=["status"]), truncated, row_cap, round(expected / 60.0, 1),
                          first_day, last_day)


@dataclass(frozen=True)
class RegisterEnd:
    ts: dt.datetime             # site time of the reading
    registers: dict             # energy_total, energy_sharp ... (kWh, as the meter reads them)


@dataclass(frozen=True)
class InstrumentDifference:
    meter: dict
    first_day: dt.date
    last_day: dt.date
    start: RegisterEnd | None   # the first reading inside the range (None: no reading carries the register)
    end: RegisterEnd | None     # the last one
    counted: dict               # per register, what the meter counted between them (reset-aware)
    resets: int                 # steps down of the total register between start and end
    first_reset: dt.datetime | None
    ct_ratio: float
    ct_ratio_known: bool        # False: the model has no ratio for this device; 1 is used and the page says so
    latest: dict | None         # the latest remote reading (meter_state), times in site time

    @property
    def energy_kwh(self) -> float | None:
        """Primary-side energy: the total register's count times the CT ratio."""
        counted = self.counted.get("energy_total")
        return None if counted is None else round(counted * self.ct_ratio, 2)


def instrument_difference(engine: sa.Engine, zone: dt.tzinfo, address: str, first_day: dt.date,
                          last_day: dt.date) -> InstrumentDifference:
    """For any device with an energy register: the registers at both ends of the site's local days first..last
    (the nearest readings inside the range, with their times), what the meter counted between them (a counter
    reset or a swap counts the new register from zero, and is reported), the CT ratio and the latest remote
    reading."""
    place = _checked(engine, address, first_day, last_day, None)
    start, end = local_range(zone, first_day, last_day)
    with engine.connect() as conn:
        ends = store.register_ends(conn, place["id"], start, end)
        increase = store.register_increase(conn, place["id"], start, end) if ends else {}
        latest = store.latest_state(conn, place["id"])
        ratio = master_ct_ratio(conn, place["id"])

    def at(row: dict) -> RegisterEnd:
        return RegisterEnd(site_time(row["ts"], zone), {c: row[c] for c in store.REGISTERS})

    counted = {c: (None if increase.get(c) is None or ends[0][c] is None else round(float(increase[c]), 2))
               for c in store.REGISTERS} if ends else {c: None for c in store.REGISTERS}
    if latest is not None:
        latest = {**latest, "ts": site_time(latest["ts"], zone)}
    return InstrumentDifference(
        meter={k: place[k] for k in ("address", "profile", "building", "floor", "room", "area")},
        first_day=first_day, last_day=last_day,
        start=at(ends[0]) if ends else None, end=at(ends[-1]) if ends else None,
        counted=counted, resets=int(increase.get("resets") or 0),
        first_reset=site_time(increase.get("first_reset"), zone) if increase.get("first_reset") else None,
        ct_ratio=NO_CT_RATIO if ratio is None else ratio, ct_ratio_known=ratio is not None, latest=latest)


def metered_devices(engine: sa.Engine) -> list[dict]:
    """The devices to choose from (number, profile, place), by number."""
    with engine.connect() as conn:
        return store.metered_devices(conn)


def record_export(engine: sa.Engine, *, action: str, target: str | None, operator: str, rows: int, shown: dict,
                  now: dt.datetime, source: str | None = None) -> None:
    """An analysis export written to the operation log (who, what query, how many rows, from where)."""
    from storage import audit
    with engine.begin() as conn:
        audit.record(conn, operator=operator, action=action, target=target, ts=now,
                     after={"rows": rows, "shown": shown}, source=source)
