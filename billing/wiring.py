"""Billing inside the serving process: its context and keys, the dispatcher and reconciliation around each poll
cycle, the demo's accounts and API client. core.runtime calls these three functions."""
from __future__ import annotations

import datetime as dt
import logging
import os
import secrets
from functools import partial
from pathlib import Path

from billing.context import CHINA_STANDARD_TIME, BillingContext, utcnow

log = logging.getLogger("wattline.billing")

DEMO_API_CLIENT = "demo-payment-client"


def pii_key_file(cfg) -> Path:
    """The personal-data key (AES-256 for national IDs) lives next to the master key, mode 0600."""
    return Path(cfg.master_key_file).with_name("pii.key")


def start_billing(rt) -> BillingContext:
    """rt.billing (BillingContext) and rt.qr_key; needs rt.engine (migrated), rt.cfg, rt.profiles."""
    from core.keys import load_secret
    cfg = rt.cfg
    tz = CHINA_STANDARD_TIME
    if getattr(cfg, "timezone", None):
        from core import config as config_module
        zone = getattr(config_module, "site_zone", None)
        tz = zone(cfg.timezone) if zone else tz
    profiles = getattr(rt, "profiles", None)
    prepaid = None
    if profiles is not None:
        prepaid = frozenset(p for p in profiles.names()
                            if profiles.get(p).mailbox is not None and "purchase_count" in profiles.get(p).keys())
    rt.billing = BillingContext(rt.engine, load_secret(pii_key_file(cfg), 32), clock=utcnow, tz=tz,
                                prepaid_profiles=prepaid)
    rt.qr_key = load_secret(cfg.qr_key_file, 32)
    if getattr(rt, "demo", False):
        _demo_api_client(rt)
    return rt.billing


def start_dispatch(rt) -> None:
    """The command dispatcher (a worker thread woken after each sale, and a run before every poll cycle),
    reconciliation and the push of scheduled tariff versions that took effect after every poll cycle (that
    push also runs once here); needs rt.billing, rt.field_io, rt.collector, rt.master_key."""
    from billing.ledger import settle_command
    from billing.reconcile import reconcile
    from billing.settings import command_expiry_hours
    from collectors.dispatch import Dispatcher
    with rt.engine.connect() as conn:
        expiry = dt.timedelta(hours=command_expiry_hours(conn))
    rt.dispatcher = Dispatcher(rt.engine, rt.field_io, rt.master_key.bytes, utcnow,
                               on_settled=partial(settle_command, rt.billing), expire_after=expiry)
    rt.billing.notify = rt.dispatcher.kick
    rt.collector.before_cycle.append(rt.dispatcher.run_once)
    rt.collector.after_cycle.append(lambda _summary: reconcile(rt.engine, utcnow))
    rt.collector.after_cycle.append(partial(push_due_tariffs, rt.billing))
    rt.dispatcher.start()
    push_due_tariffs(rt.billing)


def push_due_tariffs(ctx: BillingContext, _summary=None) -> None:
    """Scheduled tariff versions that took effect go to their meters; a failure is logged, never raised
    (neither the start nor a poll cycle depends on it)."""
    from billing.tariffs import push_due_versions
    try:
        push_due_versions(ctx)
    except Exception:  # noqa: BLE001 - logged with its traceback; the next poll cycle tries again
        log.exception("pushing scheduled tariff versions failed")


def stop_dispatch(rt) -> None:
    dispatcher = getattr(rt, "dispatcher", None)
    if dispatcher is not None:
        dispatcher.stop()
        rt.dispatcher = None


def seed_demo(rt, site, purchases, history_start: dt.datetime) -> dict:
    """Demo accounts and the backfill's purchases as confirmed sales (first start only)."""
    from billing.demo import seed_demo_billing
    field = rt.field_thread.field
    counts = {a: m.purchase_count for a, m in field.meters.items() if hasattr(m, "purchase_count")}
    info = seed_demo_billing(rt.billing, site, purchases, history_start, counts)
    log.info("demo billing: %s", info)
    return info


def _demo_api_client(rt) -> None:
    from billing.api import ensure_api_client
    token = os.environ.get("DEMO_API_TOKEN") or ""
    shown = not token
    token = token or secrets.token_urlsafe(24)
    ensure_api_client(rt.billing, DEMO_API_CLIENT, token, "demo")
    rt.demo_api_token = token
    where = "a new random one (set DEMO_API_TOKEN to choose it)" if shown else "from $DEMO_API_TOKEN"
    print(f"Demo payment API: POST /api/v1/sales with 'Authorization: Bearer {token if shown else '$DEMO_API_TOKEN'}'"
          f" ({where}); the document is /api/v1/openapi.json", flush=True)


def api_client_cli(cfg, action: str, name: str | None, operator: str) -> int:
    """`app.py api-client add NAME | revoke NAME | list` on the configured database."""
    import sqlalchemy as sa

    from billing.api import create_api_client, revoke_api_client
    from storage.engine import dispose, open_engine
    from storage.migrations import migrate
    from storage.schema import api_client
    engine = open_engine(cfg.database_url)
    try:
        migrate(engine)
        ctx = BillingContext(engine, b"\0" * 32, clock=utcnow)  # no personal data is touched here
        if action == "add":
            token = create_api_client(ctx, name, operator)
            print(f"API client {name} added; its token (shown once, only its hash is kept):\n{token}")
        elif action == "revoke":
            if not revoke_api_client(ctx, name, operator):
                print(f"no active API client named {name}")
                return 1
            print(f"API client {name} revoked")
        else:
            with engine.connect() as conn:
                for row in conn.execute(sa.select(api_client).order_by(api_client.c.name)).mappings():
                    state = f"revoked {row['revoked_at']:%Y-%m-%d}" if row["revoked_at"] else "active"
                    print(f"{row['name']:<30} {state:<20} added by {row['created_by']} {row['created_at']:%Y-%m-%d}")
        return 0
    finally:
        dispose(engine)
