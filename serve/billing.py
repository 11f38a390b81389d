"""Billing inside the serving process: its context and keys, the dispatcher before each poll cycle, reconciliation
and the scheduled tariff push as named jobs, the site's alarm amounts for the collector, the demo's accounts and
API client. serve.runtime calls these functions."""
from __future__ import annotations

import datetime as dt
import logging
import os
import secrets
from functools import partial
from pathlib import Path

from billing.context import BillingContext, utcnow

log = logging.getLogger("wattline.billing")

RECONCILE_JOB = "reconcile"
TARIFF_PUSH_JOB = "tariff_push"

DEMO_API_CLIENT = "demo-payment-client"


def pii_key_file(cfg) -> Path:
    """The personal-data key (AES-256 for national IDs) lives next to the master key, mode 0600."""
    return Path(cfg.master_key_file).with_name("pii.key")


def prepaid_profiles(profiles) -> frozenset[str]:
    """Profiles that take money commands: a command mailbox and a purchase count."""
    return frozenset(p for p in profiles.names()
                     if profiles.get(p).mailbox is not None and "purchase_count" in profiles.get(p).keys())


def billing_context(engine, cfg, profiles) -> BillingContext:
    """The billing services' context: the database (migrated), the personal-data key, the site's zone."""
    from core.config import site_zone
    from core.keys import load_secret
    return BillingContext(engine, load_secret(pii_key_file(cfg), 32), clock=utcnow, tz=site_zone(cfg.timezone),
                          prepaid_profiles=prepaid_profiles(profiles))


def make_dispatcher(engine, field_io, master_key: bytes, ctx: BillingContext, expiry_hours: float | None = None,
                    events=None):
    """The command dispatcher: a worker thread woken after each sale (ctx.notify), its settlements routed by
    each command's purpose (billing.settlement) and published on `events` (core.events.COMMAND_SETTLED)."""
    from billing.settings import command_expiry_hours
    from billing.settlement import settle_command
    from collectors.dispatch import Dispatcher
    if expiry_hours is None:
        with engine.connect() as conn:
            expiry_hours = command_expiry_hours(conn)
    return Dispatcher(engine, field_io, master_key, utcnow, on_settled=partial(settle_command, ctx),
                      expire_after=dt.timedelta(hours=expiry_hours), events=events, backoff_s=5.0)


def attach_billing(collector, dispatcher, ctx: BillingContext, jobs, events, *, reconcile_interval_s: float,
                   tariff_push_interval_s: float) -> None:
    """Billing's work in the serving process: commands go before each poll cycle (and right after each sale:
    ctx.notify wakes the dispatcher); reconciliation and the scheduled tariff push are named jobs."""
    ctx.notify = dispatcher.kick
    collector.before_cycle.append(dispatcher.run_once)
    add_billing_jobs(jobs, events, ctx, reconcile_interval_s=reconcile_interval_s,
                     tariff_push_interval_s=tariff_push_interval_s)


def add_billing_jobs(jobs, events, ctx: BillingContext, *, reconcile_interval_s: float,
                     tariff_push_interval_s: float) -> None:
    """Reconciliation (on its interval, and woken by every poll cycle: it checks the readings that cycle wrote) and
    the scheduled tariff push (versions that took effect go to their meters, first at the start) as jobs."""
    from billing.reconcile import reconcile
    from billing.tariffs import push_due_versions
    from core.events import CYCLE_CHANGED
    jobs.add(RECONCILE_JOB, partial(reconcile, ctx.engine, utcnow), reconcile_interval_s)
    jobs.add(TARIFF_PUSH_JOB, partial(push_due_versions, ctx), tariff_push_interval_s)
    events.subscribe(CYCLE_CHANGED, lambda _changes: jobs.wake(RECONCILE_JOB))


def balance_thresholds(engine) -> dict[str, int]:
    """The site's alarm amounts in fen ({"alarm1": 2000, "alarm2": 500}): the collector reports balances crossing
    them (collectors.changes)."""
    from billing.settings import meter_limits
    with engine.connect() as conn:
        limits = meter_limits(conn)
    return {"alarm1": limits["alarm1_fen"], "alarm2": limits["alarm2_fen"]}


def seed_demo(ctx: BillingContext, field, site, purchases, history_start: dt.datetime) -> dict:
    """Demo accounts and the backfill's purchases as confirmed sales, and one settings push queued as a batch
    (first start only)."""
    from billing.demo import seed_demo_billing
    counts = {a: m.purchase_count for a, m in field.meters.items() if hasattr(m, "purchase_count")}
    info = seed_demo_billing(ctx, site, purchases, history_start, counts)
    info["settings_batch"] = _demo_settings_batch(ctx, site)
    info["closed_days"] = _demo_closed_days(ctx, history_start)
    log.info("demo billing: %s", info)
    return info


def _demo_closed_days(ctx: BillingContext, history_start: dt.datetime, most: int = 7) -> int:
    """The demo cashier's past days closed (日结), the last `most` of the history: the settlement page has closed
    days to show from the first start."""
    from billing.credit import Actor
    from billing.day_end import close_past_days
    from billing.demo import OPERATOR
    from core import permissions as P
    yesterday = ctx.local(ctx.now()).date() - dt.timedelta(days=1)
    first = max(ctx.local(history_start).date(), yesterday - dt.timedelta(days=most - 1))
    return close_past_days(ctx, Actor(OPERATOR, frozenset({P.SALE_CREATE})), OPERATOR, first, yesterday)


DEMO_PUSHED = 5   # meters of the demo's first-start settings push (few: it settles within a second of the start)


def _demo_settings_batch(ctx: BillingContext, site) -> str | None:
    """The site's default alarm amounts and overload power pushed to the first rooms of the first building, as an
    operator does from /control: a real batch, queued now and sent by the dispatcher once the site is served, each
    meter's configuration read back after it applies. So the control page's recent batches, its batch view and the
    meter settings page (the meter's own values) have something to show on the first start."""
    from billing.control import Selection, queue_batch
    from billing.credit import Actor
    from billing.demo import OPERATOR
    from billing.settings import meter_limits
    from core.money import from_fen
    from operators.service import DEFAULT_ROLE_PERMISSIONS
    rooms = [m.address for m in site.meters() if m.profile.startswith("acrel") and m.floor is not None][:DEMO_PUSHED]
    if not rooms:
        return None
    with ctx.engine.connect() as conn:
        limits = meter_limits(conn)
    result = queue_batch(ctx, Actor(OPERATOR, DEFAULT_ROLE_PERMISSIONS["operator"]), Selection(meters=tuple(rooms)),
                         "push_limits", "demo: the site's default settings pushed to the first rooms",
                         limits={"alarm1": str(from_fen(limits["alarm1_fen"])),
                                 "alarm2": str(from_fen(limits["alarm2_fen"])), "overload_w": str(limits["overload_w"])},
                         confirm=True)
    return result.batch_id


def demo_api_client(ctx: BillingContext) -> str:
    """The demo's payment API client; its token is $DEMO_API_TOKEN or a new random one, printed at start."""
    from billing.api import ensure_api_client
    token = os.environ.get("DEMO_API_TOKEN") or ""
    shown = not token
    token = token or secrets.token_urlsafe(24)
    ensure_api_client(ctx, DEMO_API_CLIENT, token, "demo")
    where = "a new random one (set DEMO_API_TOKEN to choose it)" if shown else "from $DEMO_API_TOKEN"
    print(f"Demo API (every scope: payment, control, reports): POST /api/v1/sales or /api/v1/commands, GET /api/v1/reports/<name>, with 'Authorization: Bearer {token if shown else '$DEMO_API_TOKEN'}'"
          f" ({where}); the document is /api/v1/openapi.json", flush=True)
    return token


def api_client_cli(cfg, action: str, name: str | None, operator: str, scopes: list[str] | None = None) -> int:
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
            token = create_api_client(ctx, name, operator, scopes=scopes or ("payment",))
            print(f"API client {name} ({', '.join(scopes or ['payment'])}) added; its token (shown once, only its hash is kept):\n{token}")
        elif action == "revoke":
            if not revoke_api_client(ctx, name, operator):
                print(f"no active API client named {name}")
                return 1
            print(f"API client {name} revoked")
        else:
            with engine.connect() as conn:
                for row in conn.execute(sa.select(api_client).order_by(api_client.c.name)).mappings():
                    state = f"revoked {row['revoked_at']:%Y-%m-%d}" if row["revoked_at"] else "active"
                    print(f"{row['name']:<30} {state:<20} {row['scopes'] or 'payment':<17} added by {row['created_by']} "
                          f"{row['created_at']:%Y-%m-%d}")
        return 0
    finally:
        dispose(engine)
