"""The notification outbox: messages queued in the database, sent one at a time by a named job, retried with
backoff, moved to the dead letters after the last attempt, resent from there by an operator (audited).

States (NOTIFICATION): queued -> sending -> sent | failed | dead; failed -> sending (the next attempt) | dead;
dead -> queued (resend). A message is marked sending (committed) before the backend is called and settled in a
second transaction, so a crash in between leaves it in sending: `recover()` at start moves those to failed
(sent again: an SMS twice is better than none). Customer messages other than arrears that come due inside
the quiet hours are held (held = true, next attempt at the end of the window) and go out when it ends.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from dataclasses import dataclass, field
from typing import Callable

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as upsert  # DuckDB takes PostgreSQL's ON CONFLICT too

from core.clock import utcnow
from core.text import LANGUAGES, t
from notify.backends import Backend, SendFailed
from storage import audit
from storage.engine import run_transaction
from storage.schema import notification
from storage.transitions import Machine, TransitionRefused, transition

log = logging.getLogger(__name__)

NOTIFY_JOB = "notify"
STATES = ("queued", "sending", "sent", "failed", "dead")
NOTIFICATION = Machine("notification", notification, {
    "queued": frozenset({"sending"}),
    "sending": frozenset({"sent", "failed", "dead"}),
    "failed": frozenset({"sending", "dead"}),
    "sent": frozenset(),
    "dead": frozenset({"queued"}),
})
# After attempt n fails, the next one waits RETRY_DELAYS[n-1] (the last delay repeats); MAX_ATTEMPTS in all.
RETRY_DELAYS_S = (30, 120, 600, 1800, 3600)
MAX_ATTEMPTS = 6
HOLD_EXEMPT = frozenset({"arrears"})   # customer kinds sent inside the quiet hours too
ERROR_LENGTH = 300


def quiet_until(now: dt.datetime, window: tuple[dt.time, dt.time] | None, zone: dt.tzinfo) -> dt.datetime | None:
    """The end of the quiet hours (naive UTC) when `now` (naive UTC) is inside them, else None. A window may pass
    midnight ("22:00-07:00")."""
    if window is None:
        return None
    start, end = window
    local = now.replace(tzinfo=dt.timezone.utc).astimezone(zone)
    clock = local.time().replace(tzinfo=None)
    inside = (start <= clock < end) if start < end else (clock >= start or clock < end)
    if not inside:
        return None
    day = local.date() if (start < end or clock < end) else local.date() + dt.timedelta(days=1)
    end_local = dt.datetime.combine(day, end, tzinfo=zone)
    return end_local.astimezone(dt.timezone.utc).replace(tzinfo=None)


def render(template: str, language: str, params: dict) -> str:
    """The message in `language` from the catalog's sms.<template>."""
    return t(f"sms.{template}", language if language in LANGUAGES else "zh", **params)


def queue_message(conn: sa.Connection, *, recipient: str, phone: str, language: str, kind: str, template: str,
                  params: dict, now: dt.datetime, account_id: int | None = None, meter_id: int | None = None,
                  episode: str | None = None, hold_until: dt.datetime | None = None) -> int | None:
    """Queue one message in the caller's transaction; returns its id, or None when its episode has one already."""
    params = {k: (v if isinstance(v, (int, str)) or v is None else str(v)) for k, v in params.items()}
    row = dict(recipient=recipient, account_id=account_id, meter_id=meter_id, phone=phone, language=language,
               kind=kind, template=template, params=json.dumps(params, ensure_ascii=False, sort_keys=True),
               text=render(template, language, params), state="queued", attempts=0,
               next_attempt_at=hold_until or now, held=hold_until is not None, episode=episode, created_at=now)
    stmt = upsert(notification).values(**row)
    if episode is not None:
        stmt = stmt.on_conflict_do_nothing(index_elements=["episode"])
    return conn.execute(stmt.returning(notification.c.id)).scalar()


@dataclass
class SendSummary:
    sent: int = 0
    failed: int = 0      # will be tried again
    dead: int = 0
    held: int = 0
    errors: list[str] = field(default_factory=list)


class Outbox:
    """Sends due messages through `backend`, one at a time. send_due() runs as the job NOTIFY_JOB."""

    def __init__(self, engine: sa.Engine, backend: Backend, *, zone: dt.tzinfo, quiet: tuple | None = None,
                 clock: Callable[[], dt.datetime] = utcnow, retry_delays_s: tuple[float, ...] = RETRY_DELAYS_S,
                 max_attempts: int = MAX_ATTEMPTS, batch: int = 100_000):
        self.engine, self.backend, self.zone, self.quiet, self.clock = engine, backend, zone, quiet, clock
        self.retry_delays_s, self.max_attempts, self.batch = retry_delays_s, max_attempts, batch
        self._lock = threading.Lock()   # one sender per process (the job, a test or a bench calling by hand)

    # -- sending
    def recover(self) -> int:
        """Messages left in sending by a stop in the middle go back to failed, due now."""
        now = self.clock()
        with self.engine.begin() as conn:
            ids = conn.execute(sa.select(notification.c.id).where(notification.c.state == "sending")).scalars().all()
            for nid in ids:
                transition(conn, NOTIFICATION, nid, "failed", next_attempt_at=now,
                           last_error="interrupted: the process stopped while sending")
        return len(ids)

    def send_due(self, limit: int | None = None) -> SendSummary:
        """Send every message due now (at most `limit`, default the batch size), oldest first, one at a time."""
        summary = SendSummary()
        with self._lock:
            for _ in range(limit or self.batch):
                if not self._send_next(summary):
                    break
        return summary

    def _send_next(self, summary: SendSummary) -> bool:
        now = self.clock()
        claimed = run_transaction(self.engine, lambda conn: self._claim(conn, now, summary))
        if claimed is None:
            return False
        if claimed is True:          # held for the quiet hours: look at the next one
            return True
        nid, phone, text, attempts = claimed
        try:
            result = self.backend.send(phone, text)
        except SendFailed as exc:
            self._settle_failure(nid, attempts, exc.reason, exc.retryable, summary)
        except Exception as exc:  # noqa: BLE001 - a backend's bug must not leave the message in sending
            log.exception("SMS backend %s failed on message %s", self.backend.name, nid)
            self._settle_failure(nid, attempts, f"{type(exc).__name__}: {exc}", True, summary)
        else:
            def sent(conn):
                transition(conn, NOTIFICATION, nid, "sent", sent_at=self.clock(), reference=result.reference[:60],
                           last_error=None)
            run_transaction(self.engine, sent)
            summary.sent += 1
        return True

    def _claim(self, conn: sa.Connection, now: dt.datetime, summary: SendSummary):
        row = conn.execute(
            sa.select(notification.c.id, notification.c.phone, notification.c.text, notification.c.attempts,
                      notification.c.recipient, notification.c.kind, notification.c.held)
            .where(notification.c.state.in_(("queued", "failed")), notification.c.next_attempt_at <= now)
            .order_by(notification.c.next_attempt_at, notification.c.id).limit(1)).mappings().first()
        if row is None:
            return None
        if row["recipient"] == "customer" and row["kind"] not in HOLD_EXEMPT:
            until = quiet_until(now, self.quiet, self.zone)
            if until is not None:
                conn.execute(notification.update().where(notification.c.id == row["id"])
                             .values(next_attempt_at=until, held=True))
                summary.held += 1
                return True
        attempts = row["attempts"] + 1
        transition(conn, NOTIFICATION, row["id"], "sending", attempts=attempts, held=False,
                   backend=self.backend.name)
        return row["id"], row["phone"], row["text"], attempts

    def _settle_failure(self, nid: int, attempts: int, reason: str, retryable: bool, summary: SendSummary):
        reason = "".join(ch if ch.isprintable() else "?" for ch in str(reason))[:ERROR_LENGTH]
        give_up = not retryable or attempts >= self.max_attempts
        delay = self.retry_delays_s[min(attempts, len(self.retry_delays_s)) - 1]

        def settle(conn):
            if give_up:
                transition(conn, NOTIFICATION, nid, "dead", last_error=reason)
            else:
                transition(conn, NOTIFICATION, nid, "failed", last_error=reason,
                           next_attempt_at=self.clock() + dt.timedelta(seconds=delay))
        run_transaction(self.engine, settle)
        summary.errors.append(reason)
        if give_up:
            summary.dead += 1
        else:
            summary.failed += 1

    # -- the dead letters
    def resend(self, notification_id: int, operator: str, source: str | None = None) -> bool:
        """A dead message back to queued, due now, with its attempts from zero (audited). False: not dead."""
        now = self.clock()
        try:
            with self.engine.begin() as conn:
                before = conn.execute(sa.select(notification.c.state, notification.c.attempts,
                                                notification.c.last_error)
                                      .where(notification.c.id == notification_id)).mappings().first()
                transition(conn, NOTIFICATION, notification_id, "queued", attempts=0, next_attempt_at=now,
                           held=False, resent_by=operator)
                audit.record(conn, operator=operator, action="notification.resend",
                             target=f"notification:{notification_id}", ts=now, source=source,
                             before=dict(before), after={"state": "queued", "attempts": 0})
        except TransitionRefused:
            return False
        return True


def messages(conn: sa.Connection, state: str | None = None, limit: int = 500) -> list[dict]:
    """The newest messages first, of one state or all."""
    q = sa.select(notification).order_by(notification.c.id.desc()).limit(limit)
    if state:
        q = q.where(notification.c.state == state)
    return [dict(r) for r in conn.execute(q).mappings()]


def state_counts(conn: sa.Connection) -> dict[str, int]:
    rows = conn.execute(sa.select(notification.c.state, sa.func.count()).group_by(notification.c.state)).all()
    return {state: 0 for state in STATES} | {s: int(n) for s, n in rows}
