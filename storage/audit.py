"""The operation log: who did what to which target, before and after, when and from where."""
from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import sqlalchemy as sa

from storage.matching import equals_text
from storage.schema import audit_log


TARGET_LENGTH = audit_log.c.target.type.length


def _json(value) -> str | None:
    if value is None:
        return None
    return json.dumps(value, ensure_ascii=False, sort_keys=True,
                      default=lambda v: str(v) if isinstance(v, (Decimal, dt.datetime, dt.date)) else repr(v))


def record(conn: sa.Connection, *, operator: str, action: str, target: str | None, ts: dt.datetime,
           before=None, after=None, source: str | None = None) -> None:
    """Write one audit row inside the caller's transaction, so the action and its record land together. A target
    that does not fit its column (typed text: a name, a building) is cut short and its unprintable characters
    shown as "?": the log line never fails the action it records (PostgreSQL refuses both)."""
    if target is not None:
        target = "".join(ch if ch.isprintable() else "?" for ch in target[:TARGET_LENGTH])
    conn.execute(audit_log.insert().values(
        ts=ts, operator=operator, action=action, target=target,
        before=_json(before), after=_json(after), source=source))


def entries(conn: sa.Connection, action: str | None = None, limit: int = 200) -> list[dict]:
    q = sa.select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
    if action:
        q = q.where(audit_log.c.action == action)
    return [dict(r) for r in conn.execute(q).mappings()]


def search(conn: sa.Connection, *, operator: str | None = None, action: str | None = None,
           since: dt.datetime | None = None, until: dt.datetime | None = None, limit: int = 5000) -> list[dict]:
    """Rows matching every given filter, newest first; `action` ending in "." matches the prefix
    ("operator." finds operator.add, operator.deactivate ...); `until` is exclusive."""
    q = sa.select(audit_log).order_by(audit_log.c.ts.desc(), audit_log.c.id.desc()).limit(limit)
    if operator:
        q = q.where(equals_text(audit_log.c.operator, operator))
    if action and "\x00" in action:
        q = q.where(sa.false())  # no action holds a NUL, and PostgreSQL cannot be asked about one
    elif action:
        q = q.where(audit_log.c.action.startswith(action, autoescape=True) if action.endswith(".")
                    else audit_log.c.action == action)
    if since is not None:
        q = q.where(audit_log.c.ts >= since)
    if until is not None:
        q = q.where(audit_log.c.ts < until)
    return [dict(r) for r in conn.execute(q).mappings()]


def known_operators_and_actions(conn: sa.Connection) -> tuple[list[str], list[str]]:
    """The distinct operators and actions in the log, for the query form's choices."""
    ops = list(conn.execute(sa.select(audit_log.c.operator).distinct().order_by(audit_log.c.operator)).scalars())
    acts = list(conn.execute(sa.select(audit_log.c.action).distinct().order_by(audit_log.c.action)).scalars())
    return ops, acts
