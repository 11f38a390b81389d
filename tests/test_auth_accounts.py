"""Operators, roles and permissions on both engines: seeding, argon2 hashes, lockout, sessions, rules, log."""
from __future__ import annotations

import datetime as dt
import json
import threading
from concurrent.futures import ThreadPoolExecutor

import argon2
import pytest
import sqlalchemy as sa

from operators.service import (ARGON2_MEMORY_KIB, DEFAULT_ROLE_PERMISSIONS, LOCKOUT, MAX_FAILED_LOGINS, PERMISSIONS,
                            ROLES, SESSION_MAX_AGE, Accounts, LoginRefused, OperatorError)
from storage.schema import audit_log, operator, permission, role, role_permission

PASSWORD = "correct-horse"


class Clock:
    def __init__(self, now: dt.datetime):
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **kw) -> None:
        self.now += dt.timedelta(**kw)


@pytest.fixture
def clock(fixed_now):
    return Clock(fixed_now)


@pytest.fixture
def accounts(any_engine, clock):
    a = Accounts(any_engine, clock=clock)
    a.seed()
    a.add_operator("root", "Root", PASSWORD, ["admin"], by="test", source="test", must_change_password=False)
    return a


def _log(engine, action: str | None = None) -> list[dict]:
    q = sa.select(audit_log).order_by(audit_log.c.id)
    if action:
        q = q.where(audit_log.c.action == action)
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(q).mappings()]


def test_seeding_twice_creates_each_permission_and_role_once(any_engine, clock):
    a = Accounts(any_engine, clock=clock)
    first, second = a.seed(), a.seed()
    assert set(first["permissions"]) == set(PERMISSIONS) and first["roles"] == list(ROLES)
    assert second == {"permissions": [], "roles": []}
    with any_engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(permission)).scalar() == len(PERMISSIONS)
        assert conn.execute(sa.select(sa.func.count()).select_from(role)).scalar() == len(ROLES)


def test_a_fresh_site_grants_each_role_exactly_its_default_permissions(accounts):
    assert accounts.role_matrix() == {r: set(p) for r, p in DEFAULT_ROLE_PERMISSIONS.items()}
    assert DEFAULT_ROLE_PERMISSIONS["admin"] == set(PERMISSIONS)


def test_seeding_again_keeps_what_the_site_changed_in_the_matrix(accounts):
    accounts.set_role_permissions({"worker": {"meter.view": True}, "analyst": {"meter.export": False}},
                                  by="root", source="test")
    accounts.seed()
    matrix = accounts.role_matrix()
    assert "meter.view" in matrix["worker"] and "meter.export" not in matrix["analyst"]


def test_a_permission_new_in_a_release_is_granted_to_the_roles_whose_default_holds_it(accounts, any_engine):
    # An older release's database without the permission (two transactions: DuckDB checks foreign
    # keys against the transaction's start).
    with any_engine.begin() as conn:
        conn.execute(role_permission.delete().where(role_permission.c.permission == "meter.export"))
    with any_engine.begin() as conn:
        conn.execute(permission.delete().where(permission.c.name == "meter.export"))
    accounts.seed()
    holders = {r for r, perms in accounts.role_matrix().items() if "meter.export" in perms}
    assert holders == {r for r, perms in DEFAULT_ROLE_PERMISSIONS.items() if "meter.export" in perms}


def test_passwords_are_stored_as_argon2id_hashes_never_in_clear(accounts, any_engine):
    with any_engine.connect() as conn:
        stored = conn.execute(sa.select(operator.c.password_hash).where(operator.c.username == "root")).scalar_one()
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    everything = json.dumps([r for r in _log(any_engine)], default=str)
    assert PASSWORD not in everything


# OWASP Password Storage Cheat Sheet, argon2id: equally strong minimum settings (memory KiB, iterations), p=1
OWASP_ARGON2ID_MINIMUMS = ((47104, 1), (19456, 2), (12288, 3), (9216, 4), (7168, 5))


def _stored_hash(engine, username: str) -> str:
    with engine.connect() as conn:
        return conn.execute(sa.select(operator.c.password_hash).where(operator.c.username == username)).scalar_one()


def test_stored_hashes_are_at_least_as_costly_as_owasps_argon2id_minimum(accounts, any_engine):
    params = argon2.extract_parameters(_stored_hash(any_engine, "root"))
    assert params.type is argon2.Type.ID and params.parallelism >= 1
    assert any(params.memory_cost >= m and params.time_cost >= t for m, t in OWASP_ARGON2ID_MINIMUMS), params
    assert params.salt_len >= 16 and params.hash_len >= 32


def test_a_hash_with_older_parameters_still_signs_in_and_is_rehashed_at_that_sign_in(accounts, any_engine):
    old = argon2.PasswordHasher(time_cost=3, memory_cost=65536, parallelism=4)  # argon2-cffi's default before
    with any_engine.begin() as conn:
        conn.execute(operator.update().where(operator.c.username == "root").values(password_hash=old.hash(PASSWORD)))
    assert accounts.authenticate("root", PASSWORD, "10.0.0.7").username == "root"
    rehashed = _stored_hash(any_engine, "root")
    assert argon2.extract_parameters(rehashed).memory_cost == ARGON2_MEMORY_KIB
    assert argon2.PasswordHasher().verify(rehashed, PASSWORD)
    assert accounts.authenticate("root", PASSWORD, "10.0.0.7").username == "root"
    assert _stored_hash(any_engine, "root") == rehashed  # a hash with today's parameters is kept


def test_a_wrong_password_leaves_an_older_hash_as_it_was(accounts, any_engine):
    old_hash = argon2.PasswordHasher(time_cost=3, memory_cost=65536, parallelism=4).hash(PASSWORD)
    with any_engine.begin() as conn:
        conn.execute(operator.update().where(operator.c.username == "root").values(password_hash=old_hash))
    with pytest.raises(LoginRefused):
        accounts.authenticate("root", "not-the-password", "10.0.0.7")
    assert _stored_hash(any_engine, "root") == old_hash


def test_the_right_password_signs_in_and_is_logged(accounts, any_engine):
    op = accounts.authenticate("root", PASSWORD, "10.0.0.7")
    assert op.username == "root" and op.may("user.manage")
    row = _log(any_engine, "auth.login")[-1]
    assert row["operator"] == "root" and row["source"] == "10.0.0.7"


def test_unknown_inactive_and_wrong_password_get_the_same_refusal(accounts):
    accounts.add_operator("gone", None, PASSWORD, ["cashier"], by="root", source="test")
    accounts.set_active("gone", False, by="root", source="test")
    for name, pw in (("nobody", PASSWORD), ("gone", PASSWORD), ("root", "wrong-password")):
        with pytest.raises(LoginRefused) as exc:
            accounts.authenticate(name, pw, "test")
        assert exc.value.key == "bad_credentials"


def _at_once(n: int, attempt) -> list:
    """`attempt()` in n threads released together; each result, or the key of its LoginRefused."""
    barrier = threading.Barrier(n)

    def one(_):
        barrier.wait()
        try:
            return attempt()
        except LoginRefused as exc:
            return exc.key
    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


def test_wrong_passwords_at_the_same_moment_are_each_counted_and_logged(accounts, any_engine):
    keys = _at_once(8, lambda: accounts.authenticate("root", "wrong-password", "test"))
    assert sorted(keys) == sorted(["bad_credentials"] * (MAX_FAILED_LOGINS - 1) + ["locked"] * (8 - MAX_FAILED_LOGINS + 1))
    rows = [r for r in _log(any_engine) if r["target"] == "root" and r["action"].startswith("auth.")]
    failed = [json.loads(r["after"]) for r in rows if r["action"] == "auth.login_failed"]
    assert len(rows) == 8 and [r["action"] for r in rows].count("auth.locked") == 1
    assert sorted(f["failed_logins"] for f in failed if f["reason"] == "wrong password") == [1, 2, 3, 4]
    assert sum(f["reason"] == "locked" for f in failed) == 8 - MAX_FAILED_LOGINS
    with pytest.raises(LoginRefused, match="locked"):
        accounts.authenticate("root", PASSWORD, "test")


def test_right_passwords_at_the_same_moment_all_sign_in(accounts, any_engine):
    ops = _at_once(4, lambda: accounts.authenticate("root", PASSWORD, "test"))
    assert [op.username for op in ops] == ["root"] * 4
    assert [r["action"] for r in _log(any_engine) if r["target"] == "root"].count("auth.login") == 4


def test_five_wrong_passwords_lock_the_login_for_fifteen_minutes(accounts, any_engine, clock):
    for _ in range(MAX_FAILED_LOGINS - 1):
        with pytest.raises(LoginRefused, match="bad_credentials"):
            accounts.authenticate("root", "wrong-password", "test")
    with pytest.raises(LoginRefused) as fifth:
        accounts.authenticate("root", "wrong-password", "test")
    assert fifth.value.key == "locked" and fifth.value.params == {"minutes": 15}
    locked = _log(any_engine, "auth.locked")
    assert len(locked) == 1 and json.loads(locked[0]["after"])["failed_logins"] == MAX_FAILED_LOGINS
    clock.advance(minutes=14, seconds=59)
    with pytest.raises(LoginRefused) as still:
        accounts.authenticate("root", PASSWORD, "test")
    assert still.value.key == "locked" and still.value.params == {"minutes": 1}
    clock.advance(seconds=1)
    assert LOCKOUT == dt.timedelta(minutes=15)
    assert accounts.authenticate("root", PASSWORD, "test").username == "root"


def test_a_successful_sign_in_resets_the_count_of_wrong_passwords(accounts):
    for _ in range(MAX_FAILED_LOGINS - 1):
        with pytest.raises(LoginRefused):
            accounts.authenticate("root", "wrong-password", "test")
    accounts.authenticate("root", PASSWORD, "test")
    with pytest.raises(LoginRefused) as exc:
        accounts.authenticate("root", "wrong-password", "test")
    assert exc.value.key == "bad_credentials"


def test_a_password_shorter_than_eight_characters_is_refused(accounts):
    with pytest.raises(OperatorError) as exc:
        accounts.add_operator("eve", None, "seven77", ["cashier"], by="root", source="test")
    assert exc.value.key == "password_too_short" and exc.value.params == {"n": 8}
    assert accounts.operator("eve") is None


def test_a_session_ends_at_logout_and_after_its_maximum_age(accounts, clock):
    op = accounts.authenticate("root", PASSWORD, "test")
    first, second = accounts.start_session(op, "test"), accounts.start_session(op, "test")
    assert accounts.session_operator(first).username == "root"
    accounts.end_session(first, op, "test")
    assert accounts.session_operator(first) is None and accounts.session_operator(second) is not None
    clock.advance(seconds=SESSION_MAX_AGE.total_seconds() + 1)
    assert accounts.session_operator(second) is None


def test_a_change_through_any_accounts_of_the_process_is_seen_by_the_very_next_request(accounts, any_engine, clock):
    """Session lookups are reused for SESSION_REUSE_S, but what an Accounts writes (this one or another on the same
    engine: the web app's and the command line's in one process) is seen at once: roles, a role's permissions, an
    operator switched off, a session ended."""
    from operators.service import SESSION_REUSE_S
    ticks = [0.0]
    web = Accounts(any_engine, clock=clock, monotonic=lambda: ticks[0])
    other = Accounts(any_engine, clock=clock)
    other.add_operator("cash", None, PASSWORD, ["cashier"], by="root", source="test", must_change_password=False)
    token = web.start_session(web.authenticate("cash", PASSWORD, "test"), "test")
    assert web.session_operator(token).may("sale.create")
    other.set_role_permissions({"cashier": {"sale.create": False}}, by="root", source="test")
    assert not web.session_operator(token).may("sale.create"), "a role's permission taken away"
    other.set_roles("cash", ["analyst"], by="root", source="test")
    assert web.session_operator(token).roles == ("analyst",)
    second = web.start_session(web.authenticate("cash", PASSWORD, "test"), "test")
    assert web.session_operator(second) is not None
    other.end_session(token, None, "test")
    assert web.session_operator(token) is None, "a session ended"
    other.set_active("cash", False, by="root", source="test")
    assert web.session_operator(second) is None, "an operator switched off"
    assert SESSION_REUSE_S <= 5


def test_a_session_ended_by_another_process_is_refused_within_the_reuse_time(accounts, any_engine, clock):
    """A change written outside this process's Accounts (another process on a PostgreSQL site: here, SQL) is seen
    once the reused lookup is SESSION_REUSE_S old."""
    from operators.service import SESSION_REUSE_S
    from storage.schema import operator_session
    ticks = [100.0]
    web = Accounts(any_engine, clock=clock, monotonic=lambda: ticks[0])
    token = web.start_session(web.authenticate("root", PASSWORD, "test"), "test")
    assert web.session_operator(token).username == "root"
    with any_engine.begin() as conn:
        conn.execute(operator_session.update().values(ended_at=clock()))
    ticks[0] += SESSION_REUSE_S / 2
    assert web.session_operator(token) is not None, "the lookup is reused for a moment"
    ticks[0] += SESSION_REUSE_S / 2
    assert web.session_operator(token) is None


def test_changing_the_password_needs_the_current_one_and_ends_the_other_sessions(accounts):
    op = accounts.authenticate("root", PASSWORD, "test")
    here, elsewhere = accounts.start_session(op, "a"), accounts.start_session(op, "b")
    with pytest.raises(OperatorError, match="wrong_current_password"):
        accounts.change_password(op, "not-it", "new-password-1", "new-password-1", "a", keep_session=here)
    accounts.change_password(op, PASSWORD, "new-password-1", "new-password-1", "a", keep_session=here)
    assert accounts.session_operator(here) is not None and accounts.session_operator(elsewhere) is None
    assert accounts.authenticate("root", "new-password-1", "a").username == "root"


def test_an_admin_reset_makes_the_operator_change_the_password_before_anything_else(accounts, any_engine):
    accounts.add_operator("cash", None, PASSWORD, ["cashier"], by="root", source="test", must_change_password=False)
    accounts.set_password("cash", "temporary-1", by="root", source="10.0.0.1")
    op = accounts.authenticate("cash", "temporary-1", "test")
    assert op.must_change_password and not op.may("sale.create") and op.may(None)
    accounts.change_password(op, "temporary-1", "my-own-pass", "my-own-pass", "test")
    assert accounts.authenticate("cash", "my-own-pass", "test").may("sale.create")
    reset = _log(any_engine, "operator.password_reset")[-1]
    assert reset["operator"] == "root" and reset["target"] == "cash" and reset["source"] == "10.0.0.1"
    assert json.loads(reset["after"])["must_change_password"] is True


def test_an_admin_reset_clears_a_lockout(accounts):
    accounts.add_operator("cash", None, PASSWORD, ["cashier"], by="root", source="test", must_change_password=False)
    for _ in range(MAX_FAILED_LOGINS):
        with pytest.raises(LoginRefused):
            accounts.authenticate("cash", "wrong-password", "test")
    accounts.set_password("cash", "temporary-1", by="root", source="test")
    assert accounts.authenticate("cash", "temporary-1", "test").username == "cash"


def test_the_last_operator_who_may_manage_operators_keeps_that_right(accounts):
    with pytest.raises(OperatorError, match="last_manager"):
        accounts.set_roles("root", ["cashier"], by="root", source="test")
    with pytest.raises(OperatorError, match="last_manager"):
        accounts.set_role_permissions({"admin": {"user.manage": False}}, by="root", source="test")
    assert accounts.operator("root").may("user.manage")
    assert "user.manage" in accounts.role_matrix()["admin"]


def test_an_operator_cannot_deactivate_themselves(accounts):
    with pytest.raises(OperatorError, match="cannot_deactivate_self"):
        accounts.set_active("root", False, by="root", source="test")


def test_deactivating_an_operator_ends_their_sessions(accounts):
    accounts.add_operator("cash", None, PASSWORD, ["cashier"], by="root", source="test", must_change_password=False)
    token = accounts.start_session(accounts.authenticate("cash", PASSWORD, "test"), "test")
    accounts.set_active("cash", False, by="root", source="test")
    assert accounts.session_operator(token) is None


@pytest.mark.parametrize("action, run, before, after", [
    ("operator.add", lambda a: a.add_operator("cash", "Cash", PASSWORD, ["cashier"], by="root", source="1.2.3.4"),
     None, {"display_name": "Cash", "roles": ["cashier"], "language": None, "must_change_password": True}),
    ("operator.roles", lambda a: a.set_roles("clerk", ["analyst", "cashier"], by="root", source="1.2.3.4"),
     {"roles": ["cashier"]}, {"roles": ["analyst", "cashier"]}),
    ("operator.deactivate", lambda a: a.set_active("clerk", False, by="root", source="1.2.3.4"),
     {"active": True}, {"active": False}),
    ("role.permissions", lambda a: a.set_role_permissions({"worker": {"meter.view": True}}, by="root", source="1.2.3.4"),
     {"permissions": ["workorder.execute"]}, {"permissions": ["meter.view", "workorder.execute"]}),
])
def test_each_change_writes_who_what_target_before_after_time_and_source(accounts, any_engine, fixed_now,
                                                                          action, run, before, after):
    accounts.add_operator("clerk", None, PASSWORD, ["cashier"], by="root", source="test")
    run(accounts)
    row = _log(any_engine, action)[-1]
    assert row["operator"] == "root" and row["source"] == "1.2.3.4" and row["ts"] == fixed_now
    assert row["target"] in ("cash", "clerk", "worker")
    assert (json.loads(row["before"]) if row["before"] else None) == before
    assert json.loads(row["after"]) == after


def test_a_refused_change_writes_nothing(accounts, any_engine):
    rows_before = len(_log(any_engine))
    with pytest.raises(OperatorError, match="unknown_role"):
        accounts.add_operator("eve", None, PASSWORD, ["boss"], by="root", source="test")
    with pytest.raises(OperatorError, match="unknown_permission"):
        accounts.set_role_permissions({"worker": {"meter.view": True, "world.domination": True}}, by="root",
                                      source="test")
    assert accounts.operator("eve") is None and "meter.view" not in accounts.role_matrix()["worker"]
    assert len(_log(any_engine)) == rows_before


def test_the_operation_log_query_filters_by_operator_action_and_time(accounts, clock, fixed_now):
    accounts.add_operator("cash", None, PASSWORD, ["cashier"], by="root", source="test")
    clock.advance(hours=1)
    accounts.set_roles("cash", ["analyst"], by="root", source="test")
    clock.advance(hours=1)
    with pytest.raises(LoginRefused):
        accounts.authenticate("cash", "wrong-password", "test")
    assert [r["action"] for r in accounts.operation_log(operator="root")] == ["operator.roles", "operator.add"]
    assert [r["target"] for r in accounts.operation_log(action="operator.roles")] == ["cash"]
    assert {r["action"] for r in accounts.operation_log(action="operator.")} == {"operator.add", "operator.roles"}
    window = accounts.operation_log(since=fixed_now + dt.timedelta(minutes=30), until=fixed_now + dt.timedelta(hours=2))
    assert [r["action"] for r in window] == ["operator.roles"]
