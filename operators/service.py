"""Operators and what they may do: roles, named permissions, argon2 passwords, login lockout, sessions.

No Flask or Dash here: dashboard/auth.py wires this into the web app, app.py into the command
line. Every change is written together with its operation-log row (storage.audit.record).
Errors a person can fix raise OperatorError, whose `key` names a message in the catalogs
(`auth.error.<key>`), so the UI and the command line say it in the operator's language.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
import re
import secrets
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import Callable, Iterable

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from core import permissions as P
from storage import audit
from storage import operators as store
from storage.engine import run_transaction

# --- the data: permissions, roles, defaults ---------------------------------------------------
# Named actions. The web app checks these on the server; the catalogs describe them per language
# under [admin.permissions]. The description here is what the database keeps (English).
PERMISSIONS: dict[str, str] = {
    P.ACCOUNT_OPEN: "Open customer accounts and add meters to them",
    P.ACCOUNT_CLOSE: "Close accounts (closing refund)",
    P.SALE_CREATE: "Sell electricity",
    P.SALE_REFUND: "Refund money from a meter",
    P.SALE_REVERSE: "Reverse a sale",
    P.TRANSFER_ENTERED: "Enter a dead old meter's balance, and approve or reject another operator's entry",
    P.RELAY_COMMAND: "Trip or close one meter's relay",
    P.RELAY_BATCH: "Send relay commands to many meters",
    P.TARIFF_EDIT: "Create and change tariffs",
    P.TARIFF_PUSH: "Push tariffs and settings to meters",
    P.SETTINGS_EDIT: "Change site settings",
    P.USER_MANAGE: "Manage operators, roles and permissions",
    P.AUDIT_VIEW: "View the operation log",
    P.REPORT_VIEW: "View sales and energy reports",
    P.REPORT_EXPORT: "Export reports to Excel",
    P.METER_VIEW: "View meters and their readings",
    P.METER_EXPORT: "Export meter readings",
    P.WORKORDER_DISPATCH: "Create and dispatch work orders",
    P.WORKORDER_EXECUTE: "Work on assigned work orders",
    P.WORKORDER_REVIEW: "Approve, reject and archive completed work orders",
    P.API_CLIENT_MANAGE: "Manage API clients and their tokens",
    P.ALARM_RESOLVE: "Resolve reconciliation alarms after looking into them",
    P.ALARM_VIEW: "View open alarms and the alarm history",
    P.ALARM_ACK: "Acknowledge alarms with a note",
    P.SETTINGS_PUSH: "Push alarm amounts and the overload threshold to one meter",
    P.SITE_EDIT: "Keep the site's topology: buildings, rooms, gateways, meters, imports",
    P.NOTIFICATION_VIEW: "View the SMS notifications and their status",
    P.NOTIFICATION_RESEND: "Resend SMS notifications that could not be delivered",
    P.SETTLEMENT_CLOSE: "Close another cashier's day (day-end settlement)",
    P.GRID_CONTROL: "Open and close a transformer area's outlet breakers and trip its arrears meters",
    P.GRID_ADJUST: "Set a transformer's tap and capacity mode and switch its automatic control",
    P.GRID_EDIT: "Edit transformer areas: nameplate, terminal, master meter and CT ratio, meters fed, cameras",
}

ROLES: tuple[str, ...] = ("admin", "manager", "cashier", "operator", "analyst", "worker")

# What each role may do on a fresh site (seed); a site changes it on /admin/roles.
DEFAULT_ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    "admin": frozenset(PERMISSIONS),
    # transfer.entered: an old meter's balance typed in is unverified money. Managers approve (or reject) one
    # entered above billing.transfer_approval_above on the accounts page; entering one takes account.open too
    # (admins by default; a site may grant transfer.entered to its senior cashiers). Cashiers carry over
    # balances read from the old meter.
    "manager": frozenset({P.AUDIT_VIEW, P.REPORT_VIEW, P.REPORT_EXPORT, P.METER_VIEW, P.METER_EXPORT,
                          P.WORKORDER_DISPATCH, P.WORKORDER_REVIEW, P.ALARM_RESOLVE, P.TRANSFER_ENTERED, P.NOTIFICATION_VIEW,
                          P.ALARM_VIEW, P.ALARM_ACK, P.SETTLEMENT_CLOSE}),
    # cashiers close their day on the sales records and hand the export to finance
    "cashier": frozenset({P.ACCOUNT_OPEN, P.ACCOUNT_CLOSE, P.SALE_CREATE, P.SALE_REFUND, P.SALE_REVERSE,
                          P.METER_VIEW, P.REPORT_VIEW, P.REPORT_EXPORT}),
    "operator": frozenset({P.RELAY_COMMAND, P.RELAY_BATCH, P.TARIFF_PUSH, P.SETTINGS_PUSH, P.METER_VIEW, P.NOTIFICATION_VIEW,
                           P.NOTIFICATION_RESEND, P.ALARM_VIEW, P.ALARM_ACK, P.GRID_CONTROL, P.GRID_ADJUST}),
    "analyst": frozenset({P.REPORT_VIEW, P.REPORT_EXPORT, P.METER_VIEW, P.METER_EXPORT}),
    "worker": frozenset({P.WORKORDER_EXECUTE}),
}

MANAGE_PERMISSION = P.USER_MANAGE   # at least one active operator must keep it
MIN_PASSWORD_LENGTH = 8
MAX_FAILED_LOGINS = 5
LOCKOUT = dt.timedelta(minutes=15)
SESSION_MAX_AGE = dt.timedelta(hours=12)
OPERATION_LOG_LIMIT = 5000          # rows one /audit query shows (and exports)
DEMO_PASSWORD_DEFAULT = "wattline-demo"
LANGUAGES = ("en", "zh")
USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{1,59}$")

# argon2id at OWASP's Password Storage Cheat Sheet minimum (m=19 MiB, t=2, p=1). argon2-cffi's default
# (RFC 9106's low-memory profile: 64 MiB, t=3, p=4) took over a second per sign-in on a site's two cores
# and 6-7 s for ten operators at once. Hashes made with other parameters still verify and are rehashed
# with these at their next sign-in. tests/test_auth_accounts.py holds new hashes to OWASP's minimum.
ARGON2_TIME_COST = 2
ARGON2_MEMORY_KIB = 19456
ARGON2_PARALLELISM = 1
_hasher = PasswordHasher(time_cost=ARGON2_TIME_COST, memory_cost=ARGON2_MEMORY_KIB, parallelism=ARGON2_PARALLELISM)
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))  # verified for unknown names, so timing tells nothing


def demo_password(env: dict | None = None) -> str:
    env = os.environ if env is None else env
    return env.get("DEMO_PASSWORD") or DEMO_PASSWORD_DEFAULT


class OperatorError(ValueError):
    """A change or a login refused for a reason the person can fix; `key` names the message."""

    def __init__(self, key: str, **params):
        self.key = key
        self.params = params
        super().__init__(f"{key} {params}" if params else key)


class LoginRefused(OperatorError):
    """Wrong name or password, an inactive operator, or a locked login (params: minutes)."""


# --- what the web app keeps per request ----------------------------------------------------------
@dataclass(frozen=True)
class Operator:
    id: int
    username: str
    display_name: str
    language: str | None
    active: bool
    must_change_password: bool
    roles: tuple[str, ...] = ()
    permissions: frozenset[str] = field(default_factory=frozenset)

    def may(self, permission: str | None) -> bool:
        """None means "any signed-in operator". Until the password is changed, nothing else."""
        if not self.active:
            return False
        if permission is None:
            return True
        return not self.must_change_password and permission in self.permissions


def _operator_of(row: dict, roles: Iterable[str], permissions: Iterable[str]) -> Operator:
    return Operator(id=row["id"], username=row["username"], display_name=row["display_name"],
                    language=row["language"], active=bool(row["active"]),
                    must_change_password=bool(row["must_change_password"]), roles=tuple(roles),
                    permissions=frozenset(permissions))


def role_order(names) -> list[str]:
    """Roles as ROLES lists them, then any a site added, by name."""
    return [r for r in ROLES if r in names] + sorted(r for r in names if r not in ROLES)


def permission_order(names) -> list[str]:
    """Permissions as PERMISSIONS lists them (grouped by subject), then any others, by name."""
    return [p for p in PERMISSIONS if p in names] + sorted(p for p in names if p not in PERMISSIONS)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def check_password_policy(password: str, username: str | None = None) -> None:
    if password is None or len(password) < MIN_PASSWORD_LENGTH:
        raise OperatorError("password_too_short", n=MIN_PASSWORD_LENGTH)
    if username and password.strip().lower() == username.strip().lower():
        raise OperatorError("password_is_username")


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# A signed-in request's session lookup (its operator, roles and permissions: one statement, about 40 % of a
# small callback's time) is kept for SESSION_REUSE_S and reused by the same session's next requests. Any change
# written through an Accounts of this process (any instance on the engine: sign-in, sign-out, a password, an
# operator switched off, roles, a role's permissions) makes every kept lookup of the engine stale at once; a change
# another process writes (the command line on a PostgreSQL site) is seen within SESSION_REUSE_S.
SESSION_REUSE_S = 2.0
SESSION_REUSE_MAX = 2000          # sessions kept at most; the expired ones are dropped first
_versions: "weakref.WeakKeyDictionary[sa.Engine, int]" = weakref.WeakKeyDictionary()
_versions_lock = threading.Lock()


def _version(engine: sa.Engine) -> int:
    with _versions_lock:
        return _versions.get(engine, 0)


def _changed(engine: sa.Engine) -> None:
    with _versions_lock:
        _versions[engine] = _versions.get(engine, 0) + 1


class Accounts:
    """Operators, roles and sessions over one engine, with an injectable clock (naive UTC) and, for the reuse of
    session lookups, an injectable monotonic clock (seconds)."""

    def __init__(self, engine: sa.Engine, clock: Callable[[], dt.datetime],
                 monotonic: Callable[[], float] = time.monotonic):
        self.engine = engine
        self.clock = clock
        self._monotonic = monotonic
        self._lookups: dict[str, tuple[float, int, dict, Operator | None]] = {}
        self._lookups_lock = threading.Lock()

    @contextlib.contextmanager
    def _writing(self):
        """engine.begin(), and every session lookup kept of this engine is stale afterwards (also after a
        failure: what the transaction did is unknown to the callers)."""
        try:
            with self.engine.begin() as conn:
                yield conn
        finally:
            _changed(self.engine)

    def _transaction(self, fn):
        """run_transaction (a rerun after a DuckDB write conflict) with the kept session lookups made stale."""
        try:
            return run_transaction(self.engine, fn)
        finally:
            _changed(self.engine)

    # --- seeding ------------------------------------------------------------------------------
    def seed(self) -> dict[str, list[str]]:
        """Create missing permissions and roles; idempotent. A role created now gets its default
        permissions; a permission created now is granted to existing roles whose default holds it.
        What a site changed on /admin/roles is never undone."""
        with self._writing() as conn:
            have_perms, have_roles = store.permission_names(conn), store.role_names(conn)
            new_perms = {n: d for n, d in PERMISSIONS.items() if n not in have_perms}
            new_roles = [r for r in ROLES if r not in have_roles]
            store.insert_permissions(conn, new_perms)
            store.insert_roles(conn, new_roles)
            for r in ROLES:
                defaults = DEFAULT_ROLE_PERMISSIONS[r]
                grant = defaults if r in new_roles else defaults & set(new_perms)
                store.grant(conn, r, grant)
        return {"permissions": sorted(new_perms), "roles": new_roles}

    def ensure_demo_operators(self, password: str) -> list[str]:
        """One operator per role, named after it, with `password` (kept in step across restarts)."""
        now = self.clock()
        with self._writing() as conn:
            for r in ROLES:
                row = store.operator_by_username(conn, r)
                if row is None:
                    oid = store.insert_operator(conn, username=r, display_name=f"Demo {r}",
                                                password_hash=hash_password(password), active=True,
                                                must_change_password=False, created_at=now, failed_logins=0)
                    store.set_roles(conn, oid, [r])
                    audit.record(conn, operator="demo", action="operator.add", target=r, ts=now,
                                 after={"roles": [r]}, source="demo")
                elif not _verify(row["password_hash"], password):
                    store.update_operator(conn, row["id"], password_hash=hash_password(password),
                                          must_change_password=False, failed_logins=0, locked_until=None)
                    audit.record(conn, operator="demo", action="operator.password_reset", target=r, ts=now,
                                 source="demo")
        return list(ROLES)

    # --- reading ------------------------------------------------------------------------------
    def has_operators(self) -> bool:
        with self.engine.connect() as conn:
            return store.operator_count(conn) > 0

    def operator(self, username: str) -> Operator | None:
        with self.engine.connect() as conn:
            row = store.operator_by_username(conn, username)
            return None if row is None else self._operator(conn, row)

    def list_operators(self) -> list[dict]:
        """Rows for the admin grid (no password hashes)."""
        now = self.clock()
        with self.engine.connect() as conn:
            rows = store.list_operators(conn)
        return [{"username": r["username"], "display_name": r["display_name"], "roles": r["roles"],
                 "language": r["language"], "active": r["active"], "must_change_password": r["must_change_password"],
                 "locked": bool(r["locked_until"] and r["locked_until"] > now), "locked_until": r["locked_until"],
                 "last_login_at": r["last_login_at"], "created_at": r["created_at"]} for r in rows]

    def role_matrix(self) -> dict[str, set[str]]:
        with self.engine.connect() as conn:
            return store.role_permissions(conn)

    def permission_names(self) -> set[str]:
        with self.engine.connect() as conn:
            return store.permission_names(conn)

    @staticmethod
    def _operator(conn: sa.Connection, row: dict) -> Operator:
        roles = store.roles_of(conn, row["id"])
        return _operator_of(row, roles, store.permissions_of_roles(conn, roles))

    # --- signing in ---------------------------------------------------------------------------
    def authenticate(self, username: str, password: str, source: str | None) -> Operator:
        """The operator if the password is right and the login is not locked; else LoginRefused.
        The fifth wrong password in a row locks the login for LOCKOUT (audited).

        Every attempt is written to the operation log, also when many arrive at once: the password
        is checked (argon2, tens of milliseconds) before the short write transaction, which counts a
        wrong one in a single UPDATE and is run again when DuckDB reports a write-write conflict."""
        now = self.clock()
        username = (username or "").strip()
        with self.engine.connect() as conn:
            row = store.operator_by_username(conn, username) if username else None
        if row is None:
            _verify(_DUMMY_HASH, password or "")
            self._log_failed(username, "unknown operator", source, now)
            raise LoginRefused("bad_credentials")
        locked = row["locked_until"] is not None and row["locked_until"] > now
        right = not locked and _verify(row["password_hash"], password or "")
        # A hash made with other parameters is replaced, hashed here outside the transaction: a rerun after a
        # write conflict does not hash again, and no write transaction waits on argon2.
        rehash = ((row["password_hash"], hash_password(password))
                  if right and _hasher.check_needs_rehash(row["password_hash"]) else None)
        # A refusal is raised after the transaction commits: the failure count and its log row stay.
        refusal, op = self._transaction(lambda conn: self._settle_login(
            conn, row["id"], username, right, rehash, source, now))
        if refusal is not None:
            raise refusal
        return op

    def _log_failed(self, username: str, reason: str, source: str | None, now: dt.datetime) -> None:
        self._transaction(lambda conn: _login_failed(conn, username, reason, source, now))

    def _settle_login(self, conn: sa.Connection, operator_id: int, username: str, right: bool,
                      rehash: tuple[str, str] | None, source: str | None,
                      now: dt.datetime) -> tuple[LoginRefused | None, Operator | None]:
        if not right:
            count = store.count_failed_login(conn, operator_id, now)
            if count is None:  # locked, maybe by an attempt that finished a moment ago
                return self._locked_refusal(conn, operator_id, username, source, now), None
            if count >= MAX_FAILED_LOGINS:
                until = now + LOCKOUT
                store.update_operator(conn, operator_id, failed_logins=0, locked_until=until)
                audit.record(conn, operator=username, action="auth.locked", target=username, ts=now,
                             before={"failed_logins": count - 1},
                             after={"failed_logins": count, "locked_until": until}, source=source)
                return LoginRefused("locked", minutes=_minutes_left(until, now)), None
            _login_failed(conn, username, "wrong password", source, now, failed_logins=count)
            return LoginRefused("bad_credentials"), None
        row = store.operator_by_id(conn, operator_id)
        if not row["active"]:
            _login_failed(conn, username, "inactive", source, now)
            return LoginRefused("bad_credentials"), None
        values = {"failed_logins": 0, "locked_until": None, "last_login_at": now}
        if rehash is not None and row["password_hash"] == rehash[0]:  # not if the password changed meanwhile
            values["password_hash"] = rehash[1]
        if not store.record_login(conn, operator_id, now, **values):
            return self._locked_refusal(conn, operator_id, username, source, now), None
        audit.record(conn, operator=username, action="auth.login", target=username, ts=now, source=source)
        return None, self._operator(conn, {**row, **values})

    @staticmethod
    def _locked_refusal(conn: sa.Connection, operator_id: int, username: str, source: str | None,
                        now: dt.datetime) -> LoginRefused:
        until = store.operator_by_id(conn, operator_id)["locked_until"]
        _login_failed(conn, username, "locked", source, now, locked_until=until)
        return LoginRefused("locked", minutes=_minutes_left(until, now))

    def start_session(self, op: Operator, source: str | None) -> str:
        """A new random session token for the cookie; only its hash is stored."""
        token = secrets.token_urlsafe(32)
        with self._writing() as conn:
            store.insert_session(conn, _token_hash(token), op.id, self.clock(), source)
        return token

    def session_operator(self, token: str) -> Operator | None:
        """The operator of a session that has not ended, is younger than SESSION_MAX_AGE and
        belongs to an active operator; None otherwise."""
        if not token:
            return None
        digest, now = _token_hash(token), self._monotonic()
        version = _version(self.engine)
        with self._lookups_lock:
            kept = self._lookups.get(digest)
        if kept is not None and kept[1] == version and now - kept[0] < SESSION_REUSE_S:
            session, op = kept[2], kept[3]
        else:
            with self.engine.connect() as conn:
                found = store.session_with_grants(conn, digest)
            if found is None:
                session, op = {}, None
            else:
                s, row, roles, permissions = found
                session, op = s, (_operator_of(row, roles, permissions) if row["active"] else None)
            self._keep(digest, (now, version, session, op))
        if op is None or session["created_at"] < self.clock() - SESSION_MAX_AGE:
            return None
        return op

    def _keep(self, digest: str, entry: tuple) -> None:
        with self._lookups_lock:
            if len(self._lookups) >= SESSION_REUSE_MAX:
                now = entry[0]
                for key in [k for k, v in self._lookups.items() if now - v[0] >= SESSION_REUSE_S]:
                    del self._lookups[key]
                if len(self._lookups) >= SESSION_REUSE_MAX:
                    self._lookups.clear()
            self._lookups[digest] = entry

    def end_session(self, token: str, op: Operator | None, source: str | None) -> None:
        now = self.clock()
        with self._writing() as conn:
            ended = store.end_session(conn, _token_hash(token), now) if token else 0
            if ended and op is not None:
                audit.record(conn, operator=op.username, action="auth.logout", target=op.username, ts=now, source=source)

    # --- an operator's own account ------------------------------------------------------------
    def change_password(self, op: Operator, current: str, new: str, confirm: str, source: str | None,
                        keep_session: str | None = None) -> None:
        """Needs the current password; ends the operator's other sessions."""
        now = self.clock()
        with self._writing() as conn:
            row = store.operator_by_id(conn, op.id)
            if row is None or not _verify(row["password_hash"], current or ""):
                raise OperatorError("wrong_current_password")
            if new != confirm:
                raise OperatorError("passwords_differ")
            check_password_policy(new, row["username"])
            if _verify(row["password_hash"], new):
                raise OperatorError("password_unchanged")
            store.update_operator(conn, op.id, password_hash=hash_password(new), must_change_password=False)
            store.end_sessions_of(conn, op.id, now, keep=_token_hash(keep_session) if keep_session else None)
            audit.record(conn, operator=op.username, action="operator.password_change", target=op.username, ts=now,
                         before={"must_change_password": bool(row["must_change_password"])},
                         after={"must_change_password": False}, source=source)

    def set_language(self, op: Operator, language: str, source: str | None) -> None:
        if language not in LANGUAGES:
            raise OperatorError("unknown_language")
        now = self.clock()

        def save(conn: sa.Connection) -> None:
            row = store.operator_by_id(conn, op.id)
            if row is None or row["language"] == language:
                return
            store.update_operator(conn, op.id, language=language)
            audit.record(conn, operator=op.username, action="operator.language", target=op.username, ts=now,
                         before={"language": row["language"]}, after={"language": language}, source=source)
        # two browsers of one operator signing in at once both save the language on the same row
        self._transaction(save)

    # --- managing operators (user.manage; the caller checked it) ---------------------------------
    def add_operator(self, username: str, display_name: str | None, password: str, roles: Iterable[str], *,
                     by: str, source: str | None, language: str | None = None,
                     must_change_password: bool = True) -> Operator:
        username = (username or "").strip()
        roles = sorted(set(roles or []))
        if not USERNAME.match(username):
            raise OperatorError("bad_username")
        self._check_roles(roles)
        if language not in (None, *LANGUAGES):
            raise OperatorError("unknown_language")
        check_password_policy(password, username)
        now = self.clock()
        with self._writing() as conn:
            if store.operator_by_username(conn, username) is not None:
                raise OperatorError("username_taken", username=username)
            self._check_roles_exist(conn, roles)
            name = (display_name or "").strip()[:100] or username
            oid = store.insert_operator(conn, username=username, display_name=name, password_hash=hash_password(password),
                                        language=language, active=True, must_change_password=must_change_password,
                                        created_at=now, failed_logins=0)
            store.set_roles(conn, oid, roles)
            audit.record(conn, operator=by, action="operator.add", target=username, ts=now,
                         after={"display_name": name, "roles": roles, "language": language,
                                "must_change_password": must_change_password}, source=source)
            return self._operator(conn, store.operator_by_id(conn, oid))

    def set_password(self, username: str, password: str, *, by: str, source: str | None,
                     must_change_password: bool = True) -> None:
        """An administrator resets a password (the operator must change it at the next login) or the
        command line sets one. Clears a lockout and ends the operator's sessions."""
        now = self.clock()
        with self._writing() as conn:
            row = self._existing(conn, username)
            check_password_policy(password, row["username"])
            store.update_operator(conn, row["id"], password_hash=hash_password(password),
                                  must_change_password=must_change_password, failed_logins=0, locked_until=None)
            store.end_sessions_of(conn, row["id"], now)
            audit.record(conn, operator=by, action="operator.password_reset", target=row["username"], ts=now,
                         before={"must_change_password": bool(row["must_change_password"]),
                                 "locked_until": row["locked_until"]},
                         after={"must_change_password": must_change_password, "locked_until": None}, source=source)

    def set_active(self, username: str, active: bool, *, by: str, source: str | None) -> None:
        now = self.clock()
        with self._writing() as conn:
            row = self._existing(conn, username)
            if not active and row["username"] == by:
                raise OperatorError("cannot_deactivate_self")
            if bool(row["active"]) == active:
                return
            store.update_operator(conn, row["id"], active=active)
            if not active:
                store.end_sessions_of(conn, row["id"], now)
            self._ensure_a_manager_remains(conn)
            audit.record(conn, operator=by, action="operator.activate" if active else "operator.deactivate",
                         target=row["username"], ts=now, before={"active": bool(row["active"])},
                         after={"active": active}, source=source)

    def set_roles(self, username: str, roles: Iterable[str], *, by: str, source: str | None) -> None:
        roles = sorted(set(roles or []))
        self._check_roles(roles)
        now = self.clock()
        with self._writing() as conn:
            row = self._existing(conn, username)
            self._check_roles_exist(conn, roles)
            before = store.roles_of(conn, row["id"])
            if before == roles:
                return
            store.set_roles(conn, row["id"], roles)
            self._ensure_a_manager_remains(conn)
            audit.record(conn, operator=by, action="operator.roles", target=row["username"], ts=now,
                         before={"roles": before}, after={"roles": roles}, source=source)

    def set_role_permissions(self, changes: dict[str, dict[str, bool]], *, by: str, source: str | None) -> list[str]:
        """Grant (True) or revoke (False) each named permission of each named role; what is not named
        stays. Returns the roles that changed, each with one operation-log row (before/after)."""
        now = self.clock()
        changed = []
        with self._writing() as conn:
            known_roles, known_perms = store.role_names(conn), store.permission_names(conn)
            current = store.role_permissions(conn)
            for r, wanted in changes.items():
                if r not in known_roles:
                    raise OperatorError("unknown_role", role=str(r))
                unknown = set(wanted) - known_perms
                if unknown:
                    raise OperatorError("unknown_permission", permission=", ".join(sorted(map(str, unknown))))
                before = current.get(r, set())
                after = (before - {p for p, on in wanted.items() if not on}) | {p for p, on in wanted.items() if on}
                if after == before:
                    continue
                store.revoke(conn, r, before - after)
                store.grant(conn, r, after - before)
                audit.record(conn, operator=by, action="role.permissions", target=r, ts=now,
                             before={"permissions": sorted(before)}, after={"permissions": sorted(after)},
                             source=source)
                changed.append(r)
            self._ensure_a_manager_remains(conn)
        return changed

    # --- the operation log (every service writes it; these read it) ---------------------------------
    def operation_log(self, *, operator: str | None = None, action: str | None = None,
                      since: dt.datetime | None = None, until: dt.datetime | None = None,
                      limit: int = OPERATION_LOG_LIMIT) -> list[dict]:
        with self.engine.connect() as conn:
            return audit.search(conn, operator=operator, action=action, since=since, until=until, limit=limit)

    def operation_log_choices(self) -> tuple[list[str], list[str]]:
        with self.engine.connect() as conn:
            return audit.known_operators_and_actions(conn)

    def record_denied(self, username: str, permission: str | None, target: str, source: str | None) -> None:
        """The operation log of a refused action (nothing else is written)."""
        with self.engine.begin() as conn:      # the log only: kept lookups stay
            audit.record(conn, operator=username or "-", action="permission.denied", target=target[:200],
                         ts=self.clock(), after={"permission": permission}, source=source)

    def record(self, username: str, action: str, target: str | None, source: str | None,
               before=None, after=None) -> None:
        """An operation-log row for an action that changes nothing stored here (e.g. an export)."""
        with self.engine.begin() as conn:      # the log only: kept lookups stay
            audit.record(conn, operator=username, action=action, target=target, ts=self.clock(),
                         before=before, after=after, source=source)

    # --- rules --------------------------------------------------------------------------------
    @staticmethod
    def _check_roles(roles: list[str]) -> None:
        if not roles:
            raise OperatorError("no_role")

    @staticmethod
    def _check_roles_exist(conn: sa.Connection, roles: list[str]) -> None:
        unknown = set(roles) - store.role_names(conn)
        if unknown:
            raise OperatorError("unknown_role", role=", ".join(sorted(unknown)))

    @staticmethod
    def _existing(conn: sa.Connection, username: str) -> dict:
        row = store.operator_by_username(conn, (username or "").strip())
        if row is None:
            raise OperatorError("unknown_operator", username=username)
        return row

    @staticmethod
    def _ensure_a_manager_remains(conn: sa.Connection) -> None:
        """Somebody must still be able to manage operators, or the site locks itself out."""
        if store.operator_count(conn) and store.active_operators_holding(conn, MANAGE_PERMISSION) == 0:
            raise OperatorError("last_manager")


def _login_failed(conn: sa.Connection, username: str, reason: str, source: str | None, now: dt.datetime,
                  **more) -> None:
    audit.record(conn, operator=username[:100] or "-", action="auth.login_failed", target=username[:200],
                 ts=now, after={"reason": reason, **more}, source=source)


def _minutes_left(until: dt.datetime, now: dt.datetime) -> int:
    return max(1, -(-int((until - now).total_seconds()) // 60))
