"""Read models of billing for pages and the API: a meter's summary, meter lists, receipts, the customer page."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

from billing import pii
from billing.context import BillingContext
from billing.errors import BillingError
from billing.ledger import entry_view, known_balance
from billing.lookup import meter_by_number
from billing.money import amount_in_words
from billing.settings import alarm_amounts, low_balance_level
from core.formatting import plain_money
from storage import billing as store

METER_STATUSES = ("not_opened", "opened", "removed")


def _iso(t: dt.datetime | None) -> str | None:
    return None if t is None else t.isoformat(timespec="seconds") + "Z"


def meter_summary(ctx: BillingContext, address: str) -> dict:
    """A meter as the API shows it: place, status, account (holder masked), known balance, last reading."""
    with ctx.engine.connect() as conn:
        m = meter_by_number(conn, address)
        label = store.room_label(conn, m["room_id"])
        link = store.active_link(conn, m["id"])
        reading = store.meter_reading(conn, m["id"]) or {}
        bal = known_balance(conn, m["id"])
        pending = [e["receipt_no"] for e in store.entries_of_meter(conn, m["id"], 50, states=("pending",))]
        return {
            "meter_address": m["address"], "status": m["status"], "building": label["building"],
            "room": label["room"],
            "account": None if link is None else {"id": link["account_id"], "status": link["account_status"],
                                                  "holder": pii.mask_name(link["holder_name"])},
            "balance": plain_money(bal.balance), "balance_read_at": _iso(bal.reading_ts),
            "purchase_count": reading.get("purchase_count"), "comm_state": reading.get("comm_state"),
            "relay_closed": reading.get("relay_closed"), "pending_receipts": pending,
        }


def meters_list(ctx: BillingContext, *, building: str | None = None, status: str | None = None, page: int = 1,
                page_size: int = 50) -> dict:
    if status is not None and status not in METER_STATUSES:
        raise BillingError("filter_invalid", name="state", value=status)
    if page < 1 or not 1 <= page_size <= 500:
        raise BillingError("filter_invalid", name="page", value=page)
    with ctx.engine.connect() as conn:
        total, rows = store.meters_page(conn, building_name=building or None, status=status,
                                        offset=(page - 1) * page_size, limit=page_size)
    return {"page": page, "page_size": page_size, "total": total, "items": [
        {"meter_address": r["address"], "status": r["status"], "building": r["building"], "room": r["room"],
         "balance": plain_money(r["balance"]), "read_at": _iso(r["ts"]), "purchase_count": r["purchase_count"],
         "comm_state": r["comm_state"]} for r in rows]}


# A receipt's title says what moved which way: its entry's kind, and a reversal by what it reverses (a sale's
# reversal takes the money back from the meter and returns it to the customer; a refund's puts it back on the
# meter). The amount it prints is always the sum that moved, positive: the title carries the direction.
RECEIPT_TITLES = ("opening", "sale", "refund", "reversal_of_sale", "reversal_of_refund", "transfer_in",
                  "closing_refund")


def receipt_title(kind: str, reversed_kind: str | None = None) -> str:
    """One of RECEIPT_TITLES for an entry of `kind` (a reversal: of an entry of `reversed_kind`)."""
    return f"reversal_of_{reversed_kind}" if kind == "reversal" and reversed_kind else kind


def receipt(ctx: BillingContext, receipt_no: str) -> dict:
    """The fields of dashboard.components.receipt.ReceiptData for one entry (issued_at in site time): its title
    (receipt_title) and the amount that moved, positive, in figures and in capitals."""
    with ctx.engine.connect() as conn:
        e = store.entry_by_receipt(conn, (receipt_no or "").strip())
        if e is None:
            raise BillingError("entry_unknown", receipt=receipt_no)
        view = entry_view(conn, e)
        reversed_entry = store.entry_by_id(conn, e["reverses_entry_id"]) if e["reverses_entry_id"] else None
        a = store.account_by_id(conn, e["account_id"])
        m = store.meter_by_id(conn, e["meter_id"])
        label = store.room_label(conn, m["room_id"] if m["room_id"] is not None else a["room_id"])
    moved = abs(view.amount)
    return dict(receipt_no=view.receipt_no, kind=view.kind,
                title=receipt_title(view.kind, reversed_entry["kind"] if reversed_entry else None), amount=moved,
                amount_in_words=amount_in_words(moved), issued_at=ctx.local(view.created_at),
                operator=view.operator, meter_address=view.meter_address, room=label["room"],
                building=label["building"], holder=pii.mask_name(a["holder_name"]), balance_after=view.balance_after,
                purchase_count=view.purchase_count, reverses=view.reverses_receipt_no)


def daily_use(ctx: BillingContext, conn, meter_id: int, days: int = 30) -> list[tuple[dt.date, float]]:
    """kWh per site-local day over the last `days` days, from the cumulative energy register."""
    now = ctx.now()
    today = ctx.local_day(now)
    first = today - dt.timedelta(days=days - 1)
    start_local = dt.datetime.combine(first, dt.time())
    offset = ctx.local(now) - now
    rows = store.energy_readings(conn, meter_id, start_local - offset - dt.timedelta(hours=1))
    last_before: float | None = None
    per_day: dict[dt.date, list[float]] = {}
    for ts, energy in rows:
        if energy is None:
            continue
        day = ctx.local_day(ts)
        if day < first:
            last_before = energy
            continue
        per_day.setdefault(day, []).append(energy)
    out = []
    previous_end = last_before
    for i in range(days):
        day = first + dt.timedelta(days=i)
        values = per_day.get(day)
        if not values:
            out.append((day, 0.0))
            continue
        start = previous_end if previous_end is not None else values[0]
        out.append((day, round(max(values[-1] - start, 0.0), 2)))
        previous_end = values[-1]
    return out


def customer_view(ctx: BillingContext, kind: str, key: str, purchases: int = 10, days: int = 30) -> dict:
    """What the customer's QR page shows: holder (masked), room, and per meter balance, purchases, daily use."""
    with ctx.engine.connect() as conn:
        if kind == "account":
            a = store.account_by_id(conn, int(key))
            if a is None:
                raise BillingError("account_unknown", account=key)
            meter_ids = [x["meter_id"] for x in store.account_meters(conn, a["id"])]
        else:
            m = store.meter_by_address(conn, key)
            if m is None:
                raise BillingError("meter_unknown", meter=key)
            link = store.active_link(conn, m["id"])
            a = store.account_by_id(conn, link["account_id"]) if link else None
            meter_ids = [m["id"]]
        label = store.room_label(conn, a["room_id"] if a else store.meter_by_id(conn, meter_ids[0])["room_id"])
        thresholds = alarm_amounts(conn)
        meters = []
        for mid in meter_ids:
            m = store.meter_by_id(conn, mid)
            bal = known_balance(conn, mid)
            reading = store.meter_reading(conn, mid) or {}
            entries = [e for e in store.entries_of_meter(conn, mid, purchases * 3)
                       if a is None or e["account_id"] == a["id"]][:purchases]
            meters.append({
                "meter_address": m["address"], "balance": bal.balance,
                "low_level": low_balance_level(bal.balance, thresholds),
                "read_at": None if bal.reading_ts is None else ctx.local(bal.reading_ts),
                "relay_closed": reading.get("relay_closed"),
                "entries": [{"at": ctx.local(e["created_at"]), "kind": e["kind"], "amount": Decimal(e["amount"]),
                             "state": e["state"], "receipt_no": e["receipt_no"]} for e in entries],
                "daily": daily_use(ctx, conn, mid, days)})
        return {"holder": pii.mask_name(a["holder_name"]) if a else "", "account_status": a["status"] if a else None,
                "room": label["room"], "building": label["building"], "meters": meters,
                "alarm1": thresholds[0], "alarm2": thresholds[1]}
