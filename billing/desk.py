"""Read models of the cashier desk pages: find a meter (number, room or scanned QR code), ledger records and
their audited export, account openings and closings, opening receipts, QR labels and customer cards,
command batches, API clients. Writes nothing but operation-log rows for what it hands out."""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import replace
from decimal import Decimal
from urllib.parse import urlsplit

from billing import pii
from billing import qr as qrcodes
from billing.accounts import AccountView, account_view, closing_status, get_account
from billing.context import BillingContext
from billing.errors import BillingError
from billing.ledger import KINDS, account_entries, meter_balance, meter_entries
from billing.money import amount_in_words
from billing.tariffs import tariff_list
from billing.views import meter_summary
from storage import audit
from storage import billing as store
from storage import desk as sql

SALES_KINDS = sql.SALES_KINDS  # the records' default kinds: their total is the overview's sales of the day
_TOKEN = re.compile(r"(?:a[0-9]{1,10}|m[0-9]{12})\.[A-Za-z0-9_-]{22}")
RECORD_LIMIT = 5000


# ---------------------------------------------------------------------------------------------
# time: the forms speak the site's local days, the database naive UTC
def local_to_utc(ctx: BillingContext, local: dt.datetime) -> dt.datetime:
    return local.replace(tzinfo=ctx.tz).astimezone(dt.UTC).replace(tzinfo=None)


def day_range(ctx: BillingContext, first: dt.date | None,
              last: dt.date | None) -> tuple[dt.datetime | None, dt.datetime | None]:
    """[first day 00:00, day after the last day 00:00) of the site's clock, as naive UTC."""
    since = local_to_utc(ctx, dt.datetime.combine(first, dt.time())) if first else None
    until = local_to_utc(ctx, dt.datetime.combine(last + dt.timedelta(days=1), dt.time())) if last else None
    return since, until


# ---------------------------------------------------------------------------------------------
# finding a meter
def qr_token_in(text: str) -> str | None:
    """The QR token in a scanned text: a bare token or a customer-page URL (…/c/<token>[/…][?…])."""
    text = (text or "").strip()
    if "/c/" in text:
        path = urlsplit(text).path if "://" in text else text.split("?", 1)[0]
        text = path.split("/c/", 1)[1].split("/", 1)[0]
    return text if _TOKEN.fullmatch(text) else None


def find_meters(ctx: BillingContext, text: str, qr_key: bytes | None = None, limit: int = 20) -> list[dict]:
    """Meters a cashier means by `text`: a 12-digit number, a room, or a scanned QR code (verified; a
    forged or altered code raises billing.qr.BadToken). Each with address, room, building, status."""
    text = (text or "").strip()
    if not text:
        return []
    token = qr_token_in(text)
    with ctx.engine.connect() as conn:
        if token is not None or "/c/" in text:
            subject = qrcodes.verify(qr_key or b"", token or "")
            if subject.kind == "meter":
                rows = sql.find_meters(conn, subject.key, limit)
                return [_meter_choice(r) for r in rows if r["address"] == subject.key]
            addresses = [x["address"] for x in store.account_meters(conn, int(subject.key))]
            rows = [r for a in addresses for r in sql.find_meters(conn, a, 1) if r["address"] == a]
            return [_meter_choice(r) for r in rows]
        return [_meter_choice(r) for r in sql.find_meters(conn, text, limit)]


def _meter_choice(r: dict) -> dict:
    return {"address": r["address"], "room": r["room"] or "", "building": r["building"] or "", "status": r["status"]}


def meter_card(ctx: BillingContext, address: str, entries: int = 8) -> dict:
    """What the desk shows of a meter: meter_summary, its known balance (read at, site time), its purchase
    count (the meter's, or the last one it confirmed if higher) and its latest entries (site time)."""
    summary = meter_summary(ctx, address)
    known = meter_balance(ctx, address)
    with ctx.engine.connect() as conn:
        confirmed = store.max_confirmed_count(conn, store.meter_by_address(conn, summary["meter_address"])["id"])
    count = summary["purchase_count"]
    if confirmed is not None and (count is None or confirmed > count):
        count = confirmed  # the meter confirmed a purchase the last poll has not read yet
    read_at = ctx.local(known.reading_ts) if known.reading_ts else None
    return {**summary, "purchase_count": count, "known": known, "read_at": read_at,
            "entries": [{"created_at": ctx.local(e.created_at), "kind": e.kind, "amount": e.amount,
                         "receipt_no": e.receipt_no, "state": e.state, "command_state": e.command_state}
                        for e in meter_entries(ctx, address, entries)]}


# ---------------------------------------------------------------------------------------------
# records (售电记录)
def record_filters(ctx: BillingContext, *, first_day=None, last_day=None, kinds=None, operator=None,
                   building=None, text=None) -> dict:
    """Keyword arguments of storage.desk.ledger_rows from a form's values (days in site time)."""
    since, until = day_range(ctx, first_day, last_day)
    kinds = [k for k in (kinds or []) if k in KINDS]
    return {"since": since, "until": until, "kinds": kinds or None, "operator": operator or None,
            "building_name": building or None, "text": (text or "").strip() or None}


def records(ctx: BillingContext, limit: int = RECORD_LIMIT, **filters) -> list[dict]:
    """Ledger entries matching the filters (see record_filters), newest first, times in site time."""
    with ctx.engine.connect() as conn:
        return [_record(ctx, r) for r in sql.ledger_rows(conn, limit=limit, **filters)]


def record_totals(ctx: BillingContext, **filters) -> dict[str, Decimal]:
    """The money of every entry matching the filters (not only the rows shown), per kind, and "net", their sum:
    the records' total, and with SALES_KINDS over one day the overview's sales of that day."""
    with ctx.engine.connect() as conn:
        totals = sql.ledger_totals(conn, **filters)
    return {**totals, "net": sum(totals.values(), Decimal("0.00"))}


def export_records(ctx: BillingContext, entry_ids: list[int], operator: str, *, shown: dict | None = None,
                   source: str | None = None) -> list[dict]:
    """The entries a grid shows (ids in its order), read again, and the export written to the operation log."""
    ids = [int(i) for i in entry_ids][:RECORD_LIMIT]
    now = ctx.now()
    with ctx.engine.begin() as conn:
        rows = [_record(ctx, r) for r in sql.ledger_rows_by_id(conn, ids)]
        audit.record(conn, operator=operator, action="billing.records_export", target="ledger", ts=now,
                     after={"rows": len(rows), "shown": shown or {}}, source=source)
    return rows


def _record(ctx: BillingContext, r: dict) -> dict:
    holder = r.pop("holder_name")
    return {**r, "amount": Decimal(r["amount"]), "holder": pii.mask_name(holder),
            "created_at": ctx.local(r["created_at"]),
            "confirmed_at": ctx.local(r["confirmed_at"]) if r["confirmed_at"] else None,
            "balance_after": None if r["balance_after"] is None else Decimal(r["balance_after"])}


def record_operators(ctx: BillingContext) -> list[str]:
    with ctx.engine.connect() as conn:
        return sql.ledger_operators(conn)


def buildings(ctx: BillingContext) -> list[str]:
    with ctx.engine.connect() as conn:
        return sql.buildings(conn)


# ---------------------------------------------------------------------------------------------
# accounts
def account_events(ctx: BillingContext, event: str, *, first_day=None, last_day=None, building=None,
                   operator=None, text=None, limit: int = 2000) -> list[dict]:
    """Accounts opened or closed in a range of site days, with their meters; phone masked."""
    if event not in ("opened", "closed"):
        raise BillingError("filter_invalid", name="event", value=event)
    since, until = day_range(ctx, first_day, last_day)
    with ctx.engine.connect() as conn:
        rows = sql.account_rows(conn, event=event, since=since, until=until, building_name=building or None,
                                operator=operator or None, text=(text or "").strip() or None, limit=limit)
        meters = sql.meters_of_accounts(conn, [r["id"] for r in rows])
    return [{**r, "phone": pii.mask_phone(r["phone"]), "meters": meters.get(r["id"], []),
             "opened_at": ctx.local(r["opened_at"]),
             "closed_at": ctx.local(r["closed_at"]) if r["closed_at"] else None} for r in rows]


def account_operators(ctx: BillingContext) -> list[str]:
    with ctx.engine.connect() as conn:
        return sql.account_operators(conn)


def account_detail(ctx: BillingContext, account_id: int) -> dict:
    """An account (times in site time), its entries (newest first, site time) and, once closing started,
    each meter's closing step (closing_status)."""
    view = get_account(ctx, account_id)
    closing = closing_status(ctx, account_id) if view.status != "open" else {}
    if view.status == "closed" or closing:
        with ctx.engine.connect() as conn:
            view = account_view(ctx, conn, account_id, active_only=False)
    local = replace(view, opened_at=ctx.local(view.opened_at),
                    closed_at=ctx.local(view.closed_at) if view.closed_at else None,
                    meters=[replace(m, reading_ts=ctx.local(m.reading_ts) if m.reading_ts else None)
                            for m in view.meters])
    entries = [{"created_at": ctx.local(e.created_at), "kind": e.kind, "amount": e.amount, "receipt_no": e.receipt_no,
                "meter_address": e.meter_address, "state": e.state, "command_state": e.command_state}
               for e in account_entries(ctx, account_id, 100)]
    return {"account": local, "entries": entries, "closing": closing}


def opening_receipt(ctx: BillingContext, account: AccountView) -> dict:
    """The fields of dashboard.components.receipt.ReceiptData for an account just opened (an AccountView)."""
    return dict(receipt_no=f"K{account.id:08d}", kind="opening", title="opening", amount=Decimal("0.00"),
                amount_in_words=amount_in_words(Decimal("0.00")), issued_at=ctx.local(account.opened_at),
                operator=account.operator, meter_address=" ".join(m.address for m in account.meters),
                room=account.room, building=account.building, holder=pii.mask_name(account.holder_name),
                balance_after=sum((m.balance for m in account.meters if m.balance is not None), Decimal("0.00"))
                if any(m.balance is not None for m in account.meters) else None, purchase_count=None)


def rooms(ctx: BillingContext, building: str | None = None) -> list[dict]:
    with ctx.engine.connect() as conn:
        return sql.rooms(conn, building)


def openable_meters(ctx: BillingContext, room_id: int) -> list[dict]:
    """The room's meters with whether an account can be opened on them (prepaid, not opened, not removed)."""
    with ctx.engine.connect() as conn:
        out = []
        for m in sql.room_meters(conn, room_id):
            link = store.active_link(conn, m["id"])
            out.append({"address": m["address"], "status": m["status"],
                        "openable": link is None and m["status"] != "removed" and ctx.is_prepaid_profile(m["profile"])})
        return out


def building_addresses(ctx: BillingContext, building: str) -> list[str]:
    """The numbers of a building's room meters in service (to push a tariff to a building)."""
    with ctx.engine.connect() as conn:
        return [m["address"] for m in sql.building_meters(conn, building)]


# ---------------------------------------------------------------------------------------------
# QR labels and customer cards
def label_sheet(ctx: BillingContext, qr_key: bytes, base_url: str, building: str, operator: str, *,
                source: str | None = None) -> list[dict]:
    """One label per room meter of a building: address, room, floor, signed token, its URL and QR PNG."""
    now = ctx.now()
    with ctx.engine.begin() as conn:
        meters = sql.building_meters(conn, building)
        audit.record(conn, operator=operator, action="billing.qr_labels", target=f"building:{building}", ts=now,
                     after={"labels": len(meters)}, source=source)
    out = []
    for m in meters:
        token = qrcodes.sign(qr_key, "meter", m["address"])
        link = qrcodes.url(base_url, token)
        out.append({**m, "token": token, "url": link, "png": qrcodes.png(link, scale=4)})
    return out


def customer_card(ctx: BillingContext, qr_key: bytes, base_url: str, account_id: int, operator: str, *,
                  source: str | None = None) -> dict:
    """The customer card of an account: holder (masked), room, the signed URL and its QR code as SVG."""
    view = get_account(ctx, account_id)
    token = qrcodes.sign(qr_key, "account", view.id)
    link = qrcodes.url(base_url, token)
    with ctx.engine.begin() as conn:
        audit.record(conn, operator=operator, action="billing.customer_card", target=f"account:{view.id}",
                     ts=ctx.now(), source=source)
    return {"account_id": view.id, "holder": pii.mask_name(view.holder_name), "room": view.room,
            "building": view.building, "token": token, "url": link, "matrix": qrcodes.matrix(link),
            "meters": [m.address for m in view.meters]}


# ---------------------------------------------------------------------------------------------
# commands, tariffs, API clients
def batch_status(ctx: BillingContext, batch_id: str) -> dict:
    """The commands of a batch: count per state and whether any is still on its way."""
    with ctx.engine.connect() as conn:
        rows = sql.batch_commands(conn, batch_id)
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["state"]] = counts.get(r["state"], 0) + 1
    return {"batch_id": batch_id, "commands": rows, "counts": counts,
            "done": not any(r["state"] in ("queued", "sent") for r in rows)}


def tariffs_overview(ctx: BillingContext) -> list[dict]:
    """tariff_list with, per tariff, the meters billed by it now and which version is in force."""
    now = ctx.now()
    with ctx.engine.connect() as conn:
        counts = sql.meter_counts_by_tariff(conn, now)
    out = []
    for t in tariff_list(ctx):
        in_force = max((v for v in t["versions"] if v["valid_from"] <= now),
                       key=lambda v: (v["valid_from"], v["version_no"]), default=None)
        versions = [{**v, "valid_from_local": ctx.local(v["valid_from"]),
                     "in_force": in_force is not None and v["id"] == in_force["id"],
                     "future": v["valid_from"] > now} for v in t["versions"]]
        out.append({**t, "versions": versions, "meters": counts.get(t["id"], 0)})
    return out


def api_clients(ctx: BillingContext) -> list[dict]:
    with ctx.engine.connect() as conn:
        return [{**r, "created_at": ctx.local(r["created_at"]),
                 "revoked_at": ctx.local(r["revoked_at"]) if r["revoked_at"] else None} for r in sql.api_clients(conn)]


def sale_limit(ctx: BillingContext) -> Decimal | None:
    """The hoarding limit (囤积金额上限) the desk shows next to the amount; None: no limit."""
    from billing.settings import hoarding_limit
    with ctx.engine.connect() as conn:
        return hoarding_limit(conn)
