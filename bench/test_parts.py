"""What the test suite's demo starts and a signed-in request's session lookup cost (docs/BENCHMARKS.md "Test suite").

    .venv/bin/python bench/test_parts.py [--starts 3] [--lookups 200] [--rounds 5] [--fuzz 300]

A demo start through tests.webclient.start_demo_runtime: the first seeds the process's template, the others copy it.
The session lookup: Accounts.session_operator (one statement) beside the same statement run bare, and beside the
four statements it replaced (session, operator, roles, permissions). With --fuzz N: N requests of the callback fuzz
(tests/test_fuzz_inputs.py, the same N each round) through the demo's HTTP server as the administrator, with the
session lookup reused for SESSION_REUSE_S and with it looked up on every request (interleaved rounds). Wall and CPU
time of this process (the server runs in it)."""
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
    parser.add_argument("--fuzz", type=int, default=0)
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
        for name, fn in (("session_operator (reused for SESSION_REUSE_S after the first)", lambda: accounts.session_operator(token)),
                         ("the statement bare", bare), ("the four statements it replaced", four)):
            wall, cpu = _timed(fn, args.lookups)
            best[name] = (min(wall, best.get(name, (wall, cpu))[0]), min(cpu, best.get(name, (wall, cpu))[1]))
    for name, (wall, cpu) in best.items():
        print(f"{name}: {wall * 1000:.2f} ms wall, {cpu * 1000:.2f} ms CPU a lookup (least of {args.rounds} rounds)",
              flush=True)
    if args.fuzz:
        _fuzz(rt, args.fuzz, args.rounds)
    rt.stop()


def _fuzz(rt, n: int, rounds: int) -> None:
    import random

    import operators.service as service
    from tests import test_fuzz_inputs as fuzz
    from tests.webclient import WebClient, base_url

    client = WebClient(base_url(rt))
    assert client.login("admin", fuzz.DEMO).status == 302
    good = fuzz.good_values(rt)
    bodies = [b for spec in fuzz._server_callbacks(client) for _, _, b in fuzz._bodies(spec, good)]
    random.Random(1).shuffle(bodies)
    bodies = bodies[:n]
    reuse = service.SESSION_REUSE_S
    best: dict[str, tuple[float, float]] = {}
    try:
        for _ in range(rounds):
            for name, seconds in (("looked up on every request", 0.0), (f"reused for {reuse:g} s", reuse)):
                service.SESSION_REUSE_S = seconds
                wall, cpu = _timed(lambda: [client.post_json("/_dash-update-component", b) for b in bodies])
                best[name] = (min(wall, best.get(name, (wall, cpu))[0]), min(cpu, best.get(name, (wall, cpu))[1]))
    finally:
        service.SESSION_REUSE_S = reuse
    for name, (wall, cpu) in best.items():
        print(f"{len(bodies)} fuzz requests, the session {name}: {wall / len(bodies) * 1000:.1f} ms wall, "
              f"{cpu / len(bodies) * 1000:.1f} ms CPU a request (least of {rounds} rounds)", flush=True)


if __name__ == "__main__":
    main()
