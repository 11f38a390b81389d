"""Operators, roles, permissions and sign-in sessions: the SQL behind operators.service."""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import sqlalchemy as sa

from storage.schema import operator, operator_role, operator_session, permission, role, role_permission

OPERATOR_FIELDS = tuple(c.name for c in operator.columns)


# --- roles and permissions -------------------------------------------------------------------
def permission_names(conn: sa.Connection) -> set[str]:
    return set(conn.execute(sa.select(permission.c.name)).scalars())


def insert_permissions(conn: sa.Connection, descriptions: dict[str, str]) -> None:
    if descriptions:
        conn.execute(permission.insert(), [{"name": n, "description": d} for n, d in descriptions.items()])


def role_names(conn: sa.Connection) -> set[str]:
    return set(conn.execute(sa.select(role.c.name)).scalars())


def insert_roles(conn: sa.Connection, names: Iterable[str]) -> None:
    rows = [{"name": n} for n in names]
    if rows:
        conn.execute(role.insert(), rows)


def role_permissions(conn: sa.Connection) -> dict[str, set[str]]:
    """Every role (also those holding nothing) with the permissions it grants."""
    out: dict[str, set[str]] = {name: set() for name in role_names(conn)}
    for r, p in conn.execute(sa.select(role_permission.c.role, role_permission.c.permission)):
        out.setdefault(r, set()).add(p)
    return out


def grant(conn: sa.Connection, role_name: str, permissions: Iterable[str]) -> None:
    rows = [{"role": role_name, "permission": p} for p in sorted(set(permissions))]
    if rows:
        conn.execute(role_permission.insert(), rows)


def revoke(conn: sa.Connection, role_name: str, permissions: Iterable[str]) -> None:
    names = sorted(set(permissions))
    if names:
        conn.execute(role_permission.delete().where(
            role_permission.c.role == role_name, role_permission.c.permission.in_(names)))


def permissions_of_roles(conn: sa.Connection, roles: Iterable[str]) -> set[str]:
    names = list(roles)
    if not names:
        return set()
    q = sa.select(role_permission.c.permission).where(role_permission.c.role.in_(names)).distinct()
    return set(conn.execute(q).scalars())


# --- operators --------------------------------------------------------------------------------
def operator_count(conn: sa.Connection) -> int:
    return conn.execute(sa.select(sa.func.count()).select_from(operator)).scalar_one()


def operator_by_username(conn: sa.Connection, username: str) -> dict | None:
    row = conn.execute(sa.select(operator).where(operator.c.username == username)).mappings().first()
    return dict(row) if row else None


def operator_by_id(conn: sa.Connection, operator_id: int) -> dict | None:
    row = conn.execute(sa.select(operator).where(operator.c.id == operator_id)).mappings().first()
    return dict(row) if row else None


def insert_operator(conn: sa.Connection, **values) -> int:
    return conn.execute(operator.insert().values(**values).returning(operator.c.id)).scalar_one()


def update_operator(conn: sa.Connection, operator_id: int, **values) -> None:
    conn.execute(operator.update().where(operator.c.id == operator_id).values(**values))


def _not_locked(now: dt.datetime):
    return sa.or_(operator.c.locked_until.is_(None), operator.c.locked_until <= now)


def count_failed_login(conn: sa.Connection, operator_id: int, now: dt.datetime) -> int | None:
    """One more wrong password in a row, unless the login is locked at `now` (then None). One
    statement, so attempts at the same moment each count: PostgreSQL queues them on the row lock,
    DuckDB refuses all but one with a write-write conflict (the caller runs the transaction again)."""
    q = (operator.update().where(operator.c.id == operator_id, _not_locked(now))
         .values(failed_logins=operator.c.failed_logins + 1))
    if conn.execute(q).rowcount != 1:
        return None
    # Read back in the same transaction (no RETURNING: DuckDB runs UPDATE ... RETURNING as a delete and
    # insert, which the sessions' foreign key refuses); the row is ours until commit on both engines.
    return conn.execute(sa.select(operator.c.failed_logins).where(operator.c.id == operator_id)).scalar_one()


def record_login(conn: sa.Connection, operator_id: int, now: dt.datetime, **values) -> bool:
    """A successful sign-in's changes (counter reset, last login), unless the login got locked meanwhile."""
    q = operator.update().where(operator.c.id == operator_id, _not_locked(now)).values(**values)
    return conn.execute(q).rowcount == 1


def roles_of(conn: sa.Connection, operator_id: int) -> list[str]:
    q = sa.select(operator_role.c.role).where(operator_role.c.operator_id == operator_id).order_by(operator_role.c.role)
    return list(conn.execute(q).scalars())


def set_roles(conn: sa.Connection, operator_id: int, roles: Iterable[str]) -> None:
    conn.execute(operator_role.delete().where(operator_role.c.operator_id == operator_id))
    rows = [{"operator_id": operator_id, "role": r} for r in sorted(set(roles))]
    if rows:
        conn.execute(operator_role.insert(), rows)


def list_operators(conn: sa.Connection) -> list[dict]:
    """Every operator with a `roles` list, by username."""
    roles: dict[int, list[str]] = {}
    for oid, r in conn.execute(sa.select(operator_role.c.operator_id, operator_role.c.role).order_by(operator_role.c.role)):
        roles.setdefault(oid, []).append(r)
    rows = conn.execute(sa.select(operator).order_by(operator.c.username)).mappings()
    return [{**dict(r), "roles": roles.get(r["id"], [])} for r in rows]


def active_operators_holding(conn: sa.Connection, permission_name: str) -> int:
    """How many active operators hold `permission_name` through any of their roles."""
    q = (sa.select(sa.func.count(sa.distinct(operator.c.id)))
         .select_from(operator.join(operator_role, operator_role.c.operator_id == operator.c.id)
                      .join(role_permission, role_permission.c.role == operator_role.c.role))
         .where(operator.c.active.is_(True), role_permission.c.permission == permission_name))
    return conn.execute(q).scalar_one()


def usernames(conn: sa.Connection) -> list[str]:
    return list(conn.execute(sa.select(operator.c.username).order_by(operator.c.username)).scalars())


# --- sessions ---------------------------------------------------------------------------------
def insert_session(conn: sa.Connection, token_hash: str, operator_id: int, now: dt.datetime, source: str | None) -> None:
    conn.execute(operator_session.insert().values(token_hash=token_hash, operator_id=operator_id,
                                                  created_at=now, source=source))


def session_with_grants(conn: sa.Connection, token_hash: str) -> tuple[dict, dict, list[str], set[str]] | None:
    """An open session, its operator's row, roles and permissions in one statement (every signed-in request asks):
    (session, operator, roles, permissions), or None if the session has ended or is unknown."""
    s, o = operator_session, operator
    q = (sa.select(s.c.created_at.label("session_created_at"), s.c.operator_id, o, operator_role.c.role,
                   role_permission.c.permission)
         .select_from(s.join(o, o.c.id == s.c.operator_id)
                      .outerjoin(operator_role, operator_role.c.operator_id == o.c.id)
                      .outerjoin(role_permission, role_permission.c.role == operator_role.c.role))
         .where(s.c.token_hash == token_hash, s.c.ended_at.is_(None)))
    rows = conn.execute(q).mappings().all()
    if not rows:
        return None
    first = rows[0]
    session = {"token_hash": token_hash, "operator_id": first["operator_id"], "created_at": first["session_created_at"]}
    row = {c.name: first[c] for c in o.c}
    roles = sorted({r["role"] for r in rows if r["role"] is not None})
    return session, row, roles, {r["permission"] for r in rows if r["permission"] is not None}


def end_session(conn: sa.Connection, token_hash: str, now: dt.datetime) -> int:
    return conn.execute(operator_session.update().where(
        operator_session.c.token_hash == token_hash, operator_session.c.ended_at.is_(None)).values(ended_at=now)).rowcount


def end_sessions_of(conn: sa.Connection, operator_id: int, now: dt.datetime, keep: str | None = None) -> int:
    q = operator_session.update().where(operator_session.c.operator_id == operator_id,
                                        operator_session.c.ended_at.is_(None))
    if keep:
        q = q.where(operator_session.c.token_hash != keep)
    return conn.execute(q.values(ended_at=now)).rowcount
