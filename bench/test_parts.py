"""What the test suite's demo starts and a signed-in request's session lookup cost (docs/BENCHMARKS.md "Test suite").

    .venv/bin/python bench/test_parts.py [--starts 3] [--lookups 200] [--rounds 5]

A demo start through tests.webclient.start_demo_runtime: the first seeds the process's template, the others copy it.
The session lookup: Accounts.session_operator (one statement) beside the same statement run bare, and beside the
four statements it replaced (session, operator, roles, permissions). Wall and CPU time of this process."""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _timed(fn, n: int = 1) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(n):
        fn()
    return (time.perf_counter() - wall) / n, (time.process_time() - cpu) / n


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--starts", type=int, default=3)
    parser.add_argument("--lookups", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    import sqlalchemy as sa

    from operators.service import _token_hash, demo_password
    from storage import operators as store
    from tests.webclient import start_demo_runtime

    rt = None
    for i in range(args.starts):
        if rt is not None:
            rt.stop()
        holder = {}
        wall, cpu = _timed(lambda: holder.update(rt=start_demo_runtime(Path(tempfile.mkdtemp()))))
        rt = holder["rt"]
        print(f"demo start {i + 1}: {wall:.2f} s wall, {cpu:.2f} s CPU", flush=True)

    accounts = rt.accounts
    token = accounts.start_session(accounts.authenticate("admin", demo_password(), None), None)
    digest = _token_hash(token)

    def four() -> None:
        with accounts.engine.connect() as conn:
            s = conn.execute(sa.select(store.operator_session)
                             .where(store.operator_session.c.token_hash == digest)).mappings().first()
            row = store.operator_by_id(conn, s["operator_id"])
            roles = store.roles_of(conn, row["id"])
            store.permissions_of_roles(conn, roles)

    def bare() -> None:
        with accounts.engine.connect() as conn:
            store.session_with_grants(conn, digest)

    # interleaved rounds, the least of each (a loaded machine adds to any one round)
    best: dict[str, tuple[float, float]] = {}
    for _ in range(args.rounds):
        for name, fn in (("session_operator (one statement)", lambda: accounts.session_operator(token)),
                         ("the statement bare", bare), ("the four statements it replaced", four)):
            wall, cpu = _timed(fn, args.lookups)
            best[name] = (min(wall, best.get(name, (wall, cpu))[0]), min(cpu, best.get(name, (wall, cpu))[1]))
    for name, (wall, cpu) in best.items():
        print(f"{name}: {wall * 1000:.2f} ms wall, {cpu * 1000:.2f} ms CPU a lookup (least of {args.rounds} rounds)",
              flush=True)
    rt.stop()


if __name__ == "__main__":
    main()
