"""The alarm service: every alarm event is opened, updated, closed and acknowledged here.

An event has a kind (KINDS), a level (AlarmLevel), a subject (Subject: a meter, gateway, bus, transformer area,
work order, or the site), opened / updated / closed times, who acknowledged it and when, and a message code with
parameters put into words in the reader's language (`message_text`: the catalog's alarm.message.<code>).

At most one event per subject and kind is open, and the database holds that: alarm_event.open_key is
"<subject kind>:<subject id>:<kind>" while the event is open and NULL once closed, under a UNIQUE constraint.
Opening is idempotent (INSERT ... ON CONFLICT (open_key) DO UPDATE, one statement on both engines): a second
open of the same subject and kind updates the open event's level, message and updated_at and returns its id,
also when two transactions race (PostgreSQL waits for the first and updates its row). Producers call these
functions inside the transaction that writes the state the alarm describes.
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from enum import IntEnum
from typing import Iterable, NamedTuple

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as upsert  # DuckDB takes PostgreSQL's ON CONFLICT too

from core.text import catalog, t
from storage import audit
from storage.engine import is_duckdb
from storage.schema import alarm_event, meter_state


class AlarmLevel(IntEnum):
    """How urgent an event is: the one enumeration of alarm levels (alarm_event.level holds its value).
    WARNING and CRITICAL are the levels 1 and 2 that events had before (and that meters' alarm1 / alarm2
    thresholds are named after); INFO is worth seeing but asks nothing of anyone."""
    INFO = 0
    WARNING = 1
    CRITICAL = 2


SUBJECT_KINDS = ("meter", "gateway", "bus", "area", "work_order", "site")
SITE = 0  # the subject id of the site itself (one site per database)

# The kinds of event this code opens (each has alarm.kind.<kind> in the catalogs).
LOST_CONTACT = "lost_contact"            # a meter, a bus or a gateway stopped answering
COMMAND_FAILED = "command_failed"        # a money or relay command the meter refused or could not take
COUNT_MISMATCH = "count_mismatch"        # a meter's purchase count disagrees with the ledger
BALANCE_MISMATCH = "balance_mismatch"    # a balance rose by money that did not come through the ledger
MAILBOX_CONFLICT = "mailbox_conflict"    # a meter's answer that was not our frame's (another master on the bus)
# the alarm engine's (billing/alarm_engine.py): a meter's balance and status bits
ALARM1 = "alarm1"                        # balance at or below the site's alarm 1 amount (or the meter's alarm 1 bit)
ALARM2 = "alarm2"                        # balance at or below the site's alarm 2 amount (or the meter's alarm 2 bit)
ARREARS = "arrears"                      # the meter tripped itself for arrears (or its balance ran out)
OVERLOAD = "overload"                    # the meter tripped on overload
TAMPER = "tamper"                        # the meter's cover was opened
METER_KINDS = (ALARM1, ALARM2, ARREARS, OVERLOAD, TAMPER)
# power quality of a transformer area's monitoring point (grid/power_quality.py): a day's statistic over its limit
PQ_VOLTAGE_UNBALANCE = "pq_voltage_unbalance"
PQ_CURRENT_UNBALANCE = "pq_current_unbalance"
PQ_THD_U = "pq_thd_u"
PQ_KINDS = (PQ_VOLTAGE_UNBALANCE, PQ_CURRENT_UNBALANCE, PQ_THD_U)
# telesignals of a transformer area's terminal (grid/telesignals.py), subject the area: open while the signal is on
AREA_DOOR_OPEN = "area_door_open"
AREA_SMOKE = "area_smoke"
AREA_WATER = "area_water"
AREA_CHANGEOVER = "area_changeover"              # dual-supply changeover (备自投): on the standby supply
AREA_BREAKER_OPEN = "area_breaker_open"          # outlet breakers in service found open (one event naming them)
AREA_OIL_TEMP = "area_oil_temp_high"             # environment over the [grid] limits
AREA_AMBIENT_TEMP = "area_ambient_temp_high"
AREA_HUMIDITY = "area_humidity_high"
TELESIGNAL_KINDS = (AREA_DOOR_OPEN, AREA_SMOKE, AREA_WATER, AREA_CHANGEOVER, AREA_BREAKER_OPEN, AREA_OIL_TEMP,
                    AREA_AMBIENT_TEMP, AREA_HUMIDITY)
KINDS = (LOST_CONTACT, COMMAND_FAILED, COUNT_MISMATCH, BALANCE_MISMATCH, MAILBOX_CONFLICT, *METER_KINDS, *PQ_KINDS,
         *TELESIGNAL_KINDS)
# automatic voltage control of a transformer area (grid/avc.py), subject the area
AVC_TAP_STUCK = "avc_tap_stuck"          # the tap did not move after a command: no automatic step until reset
AVC_BLOCKED = "avc_blocked"              # undervoltage or overcurrent: no automatic tap step while it lasts
AVC_KINDS = (AVC_TAP_STUCK, AVC_BLOCKED)
KINDS = (*KINDS, *AVC_KINDS)
STATES = ("open", "closed", "unacknowledged", "acknowledged")   # what the history asks for

# Message codes (alarm.message.<code>) and the parameters each one names.
MESSAGE_PARAMS = {
    "text": ("text",),                                              # free text of before the catalog (migration 8)
    "meter_lost": ("error",),
    "bus_lost": ("gateway", "bus", "endpoint"),
    "gateway_lost": ("gateway", "buses"),
    "command_failed": ("command", "command_kind", "result"),
    "count_refused": ("counter", "meter_count"),
    "count_mismatch": ("meter", "count", "expected"),
    "count_mismatch_in_flight": ("meter", "count", "expected", "upper"),
    "balance_mismatch": ("meter", "rise", "credited"),
    "mailbox_conflict": ("command", "command_kind", "counter", "conflict", "outcome"),
    "balance_low": ("balance", "amount"),
    "arrears": ("balance",),
    "overload": ("power",),
    "tamper": (),
    "pq_limit": ("day", "point", "statistic", "value", "limit"),
    "area_door_open": ("area", "terminal"),
    "area_smoke": ("area", "terminal"),
    "area_water": ("area", "terminal"),
    "area_changeover": ("area", "terminal"),
    "area_breaker_open": ("area", "outlets"),
    "area_environment": ("area", "value", "limit"),
}
MESSAGE_PARAMS.update({   # grid/avc.py
    "avc_tap_stuck": ("area", "position", "target"),
    "avc_undervoltage": ("area", "voltage", "limit"),
    "avc_overcurrent": ("area", "current", "limit"),
})
MESSAGE_CODES = tuple(MESSAGE_PARAMS)


class Subject(NamedTuple):
    """What an event is about: (kind, id), e.g. Subject("meter", 12); the site is Subject("site", SITE)."""
    kind: str
    id: int


def meter(meter_id: int) -> Subject:
    return Subject("meter", int(meter_id))


def _subject(subject) -> Subject:
    s = Subject(str(subject[0]), int(subject[1]))
    if s.kind not in SUBJECT_KINDS:
        raise ValueError(f"unknown alarm subject kind {s.kind!r}")
    return s


def open_key(kind: str, subject) -> str:
    s = _subject(subject)
    return f"{s.kind}:{s.id}:{kind}"


def _values(kind: str, subject, level, code: str, params: dict | None, now: dt.datetime) -> dict:
    if kind not in KINDS:
        raise ValueError(f"unknown alarm kind {kind!r}")
    if code not in MESSAGE_PARAMS:
        raise ValueError(f"unknown alarm message code {code!r}")
    s = _subject(subject)
    return {"kind": kind, "level": int(AlarmLevel(level)), "subject_kind": s.kind, "subject_id": s.id,
            "open_key": open_key(kind, s), "opened_at": now, "updated_at": now, "message_code": code,
            "message_params": json.dumps(params or {}, ensure_ascii=False, sort_keys=True, default=str)}


_UPDATED_ON_REOPEN = ("level", "message_code", "message_params", "updated_at")


def _upsert(rows: list[dict] | None = None):
    stmt = upsert(alarm_event)
    if rows is not None:
        stmt = stmt.values(rows)
    return stmt.on_conflict_do_update(index_elements=[alarm_event.c.open_key],
                                      set_={c: getattr(stmt.excluded, c) for c in _UPDATED_ON_REOPEN})


def open_alarm(conn: sa.Connection, kind: str, subject, level: AlarmLevel | int, code: str, params: dict | None,
               now: dt.datetime) -> int:
    """Open the subject's event of this kind, or update the one already open (level, message, updated_at);
    its id either way."""
    row = _values(kind, subject, level, code, params, now)
    return conn.execute(_upsert([row]).returning(alarm_event.c.id)).scalar_one()


def open_alarms_of(conn: sa.Connection, kind: str, level: AlarmLevel | int,
                   events: Iterable[tuple[Subject, str, dict | None]], now: dt.datetime) -> int:
    """open_alarm for many subjects at once (a gateway's thousand meters lost in one cycle): a few statements,
    not one per subject. `events` are (subject, message code, parameters); returns how many were given."""
    rows = [_values(kind, subject, level, code, params, now) for subject, code, params in events]
    if not rows:
        return 0
    if not is_duckdb(conn.engine):
        conn.execute(_upsert(), rows)   # one statement compiled, the rows sent in batches by the driver
        return len(rows)
    # DuckDB: executemany runs row by row and a long VALUES list takes long to parse, so the rows go in as a
    # DataFrame scanned in place by one INSERT ... SELECT ... ON CONFLICT (as storage.timeseries does readings)
    columns = tuple(rows[0])
    updates = ", ".join(f"{c} = excluded.{c}" for c in _UPDATED_ON_REOPEN)
    raw = conn.connection.driver_connection
    raw.register("_wl_alarm_frame", pd.DataFrame(rows, columns=list(columns)))
    try:
        raw.execute(f"INSERT INTO alarm_event (id, {', '.join(columns)}) SELECT nextval('alarm_event_id_seq'), "
                    f"{', '.join(columns)} FROM _wl_alarm_frame ON CONFLICT (open_key) DO UPDATE SET {updates}")
    finally:
        raw.unregister("_wl_alarm_frame")
    return len(rows)


def close_alarm(conn: sa.Connection, kind: str, subject, now: dt.datetime) -> int:
    """Close the subject's open event of this kind; 1 if there was one, else 0."""
    return close_alarms_of(conn, kind, [subject], now)


def close_alarms_of(conn: sa.Connection, kind: str, subjects: Iterable, now: dt.datetime) -> int:
    """Close the open events of this kind of all these subjects; how many were open."""
    keys = [open_key(kind, s) for s in subjects]
    closed = 0
    for i in range(0, len(keys), 1000):
        closed += conn.execute(alarm_event.update().where(alarm_event.c.open_key.in_(keys[i:i + 1000]))
                               .values(closed_at=now, updated_at=now, open_key=None)).rowcount
    return closed


def close_alarm_by_id(conn: sa.Connection, alarm_id: int, now: dt.datetime) -> int:
    """Close one open event; 0 when it was closed already (by its producer or another operator)."""
    return conn.execute(alarm_event.update().where(alarm_event.c.id == alarm_id, alarm_event.c.open_key.is_not(None))
                        .values(closed_at=now, updated_at=now, open_key=None)).rowcount


def alarm_by_id(conn: sa.Connection, alarm_id: int) -> dict | None:
    row = conn.execute(sa.select(alarm_event).where(alarm_event.c.id == alarm_id)).mappings().first()
    return _row(row) if row else None


ACK_NOTE_MAX = 500


def acknowledge(conn: sa.Connection, alarm_id: int, operator: str, now: dt.datetime,
                source: str | None = None, note: str | None = None) -> bool:
    """Record that `operator` has seen the event (open or closed), with the time and their note, in the operation
    log too. False, and nothing written, when there is no such event or it was acknowledged already."""
    alarm = alarm_by_id(conn, alarm_id)
    if alarm is None or alarm["acknowledged_at"] is not None:
        return False
    note = (note or "").strip()[:ACK_NOTE_MAX] or None
    if not conn.execute(alarm_event.update().where(alarm_event.c.id == alarm_id,
                                                   alarm_event.c.acknowledged_at.is_(None))
                        .values(acknowledged_by=operator, acknowledged_at=now, ack_note=note)).rowcount:
        return False
    audit.record(conn, operator=operator, action="alarm.acknowledge", target=f"alarm:{alarm_id}", ts=now,
                 source=source,
                 before={"kind": alarm["kind"], "subject": f"{alarm['subject_kind']}:{alarm['subject_id']}",
                         "level": alarm["level"], "closed_at": alarm["closed_at"]},
                 after={"acknowledged_by": operator, "acknowledged_at": now, "note": note})
    return True


def open_alarms(conn: sa.Connection, kind: str | None = None, subject=None,
                subject_kind: str | None = None) -> list[dict]:
    """Open events, oldest first; of one kind, one subject, or one kind of subject when given."""
    q = sa.select(alarm_event).where(alarm_event.c.open_key.is_not(None)).order_by(alarm_event.c.id)
    if kind:
        q = q.where(alarm_event.c.kind == kind)
    if subject is not None:
        s = _subject(subject)
        q = q.where(alarm_event.c.subject_kind == s.kind, alarm_event.c.subject_id == s.id)
    if subject_kind:
        q = q.where(alarm_event.c.subject_kind == subject_kind)
    return [_row(r) for r in conn.execute(q).mappings()]


def open_subjects(conn: sa.Connection, kind: str, subject_kind: str) -> set[int]:
    """Ids of the subjects of this kind that have an open event of `kind`."""
    return set(conn.execute(sa.select(alarm_event.c.subject_id).where(
        alarm_event.c.open_key.is_not(None), alarm_event.c.kind == kind,
        alarm_event.c.subject_kind == subject_kind)).scalars())


def unacknowledged_count(conn: sa.Connection) -> int:
    """Open events nobody has acknowledged yet (the navbar's badge: one indexed count)."""
    return conn.execute(sa.select(sa.func.count()).select_from(alarm_event).where(
        alarm_event.c.open_key.is_not(None), alarm_event.c.acknowledged_at.is_(None))).scalar_one()


def set_meter_levels(conn: sa.Connection, meter_ids: Iterable[int] | None = None) -> None:
    """meter_state.alarm_level := the highest level of the meter's open events (0 without one): the one rule for
    the level the overview shows. Of these meters, or of every meter when None."""
    open_level = (sa.select(sa.func.max(alarm_event.c.level))
                  .where(alarm_event.c.open_key.is_not(None), alarm_event.c.subject_kind == "meter",
                         alarm_event.c.subject_id == meter_state.c.meter_id).scalar_subquery())
    level = sa.func.coalesce(open_level, 0)
    stmt = meter_state.update().values(alarm_level=level).where(meter_state.c.alarm_level != level)
    if meter_ids is None:
        conn.execute(stmt)
        return
    ids = sorted({int(m) for m in meter_ids})
    for i in range(0, len(ids), 1000):
        conn.execute(stmt.where(meter_state.c.meter_id.in_(ids[i:i + 1000])))


@dataclass(frozen=True)
class AlarmChange:
    """One event opened or closed (published on core.events.ALARM_CHANGED inside an AlarmChanges)."""
    id: int | None
    kind: str
    level: int                 # AlarmLevel value
    subject_kind: str
    subject_id: int
    opened: bool               # True: opened; False: closed
    message_code: str | None = None
    params: tuple[tuple[str, object], ...] = ()   # the message's parameters, as sorted pairs (hashable)

    @property
    def subject(self) -> Subject:
        return Subject(self.subject_kind, self.subject_id)


@dataclass(frozen=True)
class AlarmChanges:
    """What one evaluation opened and closed; `at` naive UTC."""
    at: dt.datetime
    changes: tuple[AlarmChange, ...] = ()

    @property
    def opened(self) -> tuple[AlarmChange, ...]:
        return tuple(c for c in self.changes if c.opened)

    @property
    def closed(self) -> tuple[AlarmChange, ...]:
        return tuple(c for c in self.changes if not c.opened)


def change_of(alarm: dict, opened: bool) -> AlarmChange:
    """An event (as the functions here return it) as the AlarmChange that announces it opened or closed."""
    return AlarmChange(alarm["id"], alarm["kind"], int(alarm["level"]), alarm["subject_kind"],
                       int(alarm["subject_id"]), opened, alarm["message_code"],
                       tuple(sorted(alarm["message_params"].items())))


def as_alarm(row) -> dict:
    """A row of alarm_event as the functions here return it (level an AlarmLevel, parameters a dict)."""
    return _row(row)


def _row(row) -> dict:
    d = dict(row)
    d["level"] = AlarmLevel(d["level"])
    d["message_params"] = json.loads(d["message_params"]) if d.get("message_params") else {}
    return d


# ---------------------------------------------------------------------------------------------
def kind_text(kind: str, lang: str) -> str:
    return t(f"alarm.kind.{kind}", lang) if f"alarm.kind.{kind}" in catalog("en") else kind


def level_text(level: AlarmLevel | int, lang: str) -> str:
    return t(f"alarm.level.{AlarmLevel(level).name.lower()}", lang)


def message_text(alarm: dict, lang: str) -> str:
    """The event's message in `lang`: its code's catalog text with its parameters (a code this version does not
    know shows as the code and its parameters, never as an error)."""
    code, params = alarm.get("message_code"), alarm.get("message_params") or {}
    if isinstance(params, str):
        params = json.loads(params)
    try:
        return t(f"alarm.message.{code}", lang, **{k: "" if v is None else v for k, v in params.items()})
    except (KeyError, IndexError, ValueError):
        return f"{code} {json.dumps(params, ensure_ascii=False, sort_keys=True)}"
