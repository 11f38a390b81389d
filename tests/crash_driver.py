"""A billing process for the crash test: sells a fixed batch (idempotent request ids) and dispatches, until killed.

python -m tests.crash_driver DATABASE_URL MASTER_KEY_HEX METER,METER,... N_SALES
Prints READY once imported and connected, DONE when every sale is confirmed on its meter.
"""
from __future__ import annotations

import sys
from decimal import Decimal
from functools import partial


def amount_of(i: int) -> Decimal:
    return Decimal(10 + i) + Decimal(i % 7) / 100


def main() -> int:
    url, key_hex, meters, n = sys.argv[1], sys.argv[2], sys.argv[3].split(","), int(sys.argv[4])
    from billing import ledger, settlement
    from billing.context import utcnow
    from collectors.dispatch import Dispatcher
    from collectors.poller import FieldIO
    from collectors.profiles import ProfileRegistry
    from storage.engine import dispose, open_engine
    from storage.outbox import meters_with_work

    from tests.billing_support import cashier, make_ctx

    engine = open_engine(url)
    ctx = make_ctx(engine, utcnow)
    fio = FieldIO(ProfileRegistry())
    dispatcher = Dispatcher(engine, fio, bytes.fromhex(key_hex), utcnow,
                            on_settled=partial(settlement.settle_command, ctx), send_timeout_s=1.0)
    print("READY", flush=True)
    try:
        for i in range(n):
            view = ledger.sell(ctx, meters[i % len(meters)], amount_of(i), cashier("crash-driver"),
                               request_id=f"crash-{i}")
            if not view.replayed or i % 5 == 0:
                dispatcher.run_once()
        for _ in range(50):
            dispatcher.run_once()
            with engine.connect() as conn:
                if not meters_with_work(conn):
                    print("DONE", flush=True)
                    return 0
        return 1
    finally:
        fio.close()
        dispose(engine)


if __name__ == "__main__":
    sys.exit(main())
