"""Demo billing data: tariffs of the demo site, accounts for its opened rooms, and the backfill's purchases as
confirmed sales, so 90 days of sales match the readings and the ledger's counts match the meters'.

Written straight into the tables (one transaction, no commands): the simulated meters already
carry these tariffs, limits and purchases. A few accounts hold two meters (neighbouring rooms).
"""
from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal

import pandas as pd
import sqlalchemy as sa

from billing import pii
from billing.context import BillingContext
from billing.money import from_fen, receipt_number
from billing.settings import DEFAULT_TARIFF
from billing.tariffs import validate_prices, version_values
from storage import audit
from storage import billing as store
from storage.schema import meter

OPERATOR = "demo"
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉萍红娥玲芬燕彬鹏辉晨阳欣怡浩宇子涵梓轩佳琪思远文博"
TWO_METER_EVERY = 40   # one room in 40 shares its account with the next room on its floor


def _tariffs_of_site() -> dict[str, tuple[str, dict]]:
    """The demo site's tariffs (simulator.site: buildings 1-2 flat, 3 time of use, 4 tiered), as billing inputs."""
    return {
        "Flat 0.60": ("flat", {"prices": {"flat": "0.6000"}}),
        "Time of use (Building 3)": ("tou", {"prices": {"sharp": "1.0000", "peak": "0.8000", "flat": "0.6000",
                                                         "valley": "0.3500"},
                                             "segments": [(0, 3), (420, 2), (480, 1), (660, 2), (1080, 1),
                                                          (1140, 0), (1260, 1), (1380, 3)]}),
        "Monthly tiers (Building 4)": ("tiered", {"tiers": [(200, "0.5600"), (400, "0.6100"), (None, "0.8600")]}),
    }


def _tariff_for_building(building: str) -> str:
    return {"Building 3": "Time of use (Building 3)", "Building 4": "Monthly tiers (Building 4)"}.get(building,
                                                                                                    "Flat 0.60")


def _person(rng: random.Random, n: int) -> tuple[str, str, str]:
    name = rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2))))
    phone = f"13{rng.randint(0, 9)}{rng.randint(10000000, 99999999)}"
    born = dt.date(2002, 1, 1) + dt.timedelta(days=rng.randint(0, 2000))
    first17 = f"110105{born:%Y%m%d}{n % 1000:03d}"
    return name, phone, first17 + pii.national_id_check_char(first17)


def seed_demo_billing(ctx: BillingContext, site, purchases: pd.DataFrame, history_start: dt.datetime,
                      purchase_counts: dict[str, int]) -> dict:
    """Tariffs, accounts and the backfill's purchases; `purchase_counts` are the simulated meters' counts now."""
    rng = random.Random(2026)
    now = ctx.now()
    since = history_start - dt.timedelta(days=1)
    per_meter = purchases.groupby("meter_address").size().to_dict() if len(purchases) else {}
    specs = [m for m in site.meters() if m.profile in ("acrel-ddsy1352", "acrel-dtsy1352") and m.prepaid_enabled]
    with ctx.engine.begin() as conn:
        if store.tariffs(conn):
            return {"accounts": 0, "sales": 0}  # seeded before
        tariff_ids = {}
        for name, (mode, body) in _tariffs_of_site().items():
            checked = validate_prices(mode, body.get("prices"), body.get("segments"), body.get("tiers"))
            tid = store.insert_tariff(conn, name=name, mode=mode, created_at=now, created_by=OPERATOR)
            store.insert_version(conn, tariff_id=tid, version_no=1, valid_from=since, created_at=now,
                                 created_by=OPERATOR, **version_values(checked))
            tariff_ids[name] = tid
        store.set_setting(conn, DEFAULT_TARIFF, str(tariff_ids["Flat 0.60"]), now)
        ids = {a: (i, r) for i, a, r in conn.execute(sa.select(meter.c.id, meter.c.address, meter.c.room_id))}
        store.insert_meter_tariffs(conn, [
            dict(meter_id=ids[m.address][0], tariff_id=tariff_ids[_tariff_for_building(m.building)], valid_from=since,
                 operator=OPERATOR) for m in site.meters() if m.address in ids and m.profile.startswith("acrel")])
        groups: list[list] = []
        i = 0
        while i < len(specs):
            m = specs[i]
            nxt = specs[i + 1] if i + 1 < len(specs) else None
            if i % TWO_METER_EVERY == 0 and nxt is not None and nxt.floor == m.floor and nxt.building == m.building:
                groups.append([m, nxt])
                i += 2
            else:
                groups.append([m])
                i += 1
        account_of: dict[str, int] = {}
        opened = []
        for n, group in enumerate(groups, start=1):
            name, phone, nid = _person(rng, n)
            first = group[0]
            account_id = store.insert_account(
                conn, room_id=ids[first.address][1], holder_name=name, phone=phone,
                national_id_enc=pii.encrypt_national_id(ctx.pii_key, nid), status="open", opened_at=since,
                operator=OPERATOR)
            for m in group:
                count_now = purchase_counts.get(m.address, m.purchase_count)
                base = count_now - int(per_meter.get(m.address, 0))
                if base < 0:
                    raise ValueError(f"demo meter {m.address}: {per_meter.get(m.address)} purchases in the history "
                                     f"but count {count_now}")
                store.insert_link(conn, account_id=account_id, meter_id=ids[m.address][0], base_purchase_count=base,
                                  now=since, operator=OPERATOR)
                account_of[m.address] = account_id
                opened.append(ids[m.address][0])
        store.set_meter_status(conn, opened, "opened")
        sales = purchases[purchases["meter_address"].isin(account_of)] if len(purchases) else purchases
        entry_ids = store.next_entry_ids(conn, len(sales))
        rows = []
        for entry_id, p in zip(entry_ids, sales.itertuples(index=False)):
            ts = pd.Timestamp(p.ts).to_pydatetime().replace(tzinfo=None)
            rows.append(dict(id=entry_id, receipt_no=receipt_number("sale", entry_id, ctx.local_day(ts)), kind="sale",
                             amount=from_fen(int(p.amount_fen)), account_id=account_of[p.meter_address],
                             meter_id=ids[p.meter_address][0], purchase_count=int(p.purchase_count_after),
                             operator=OPERATOR, source="demo", created_at=ts, state="confirmed", confirmed_at=ts))
        for start in range(0, len(rows), 2000):
            store.insert_entries(conn, rows[start:start + 2000])
        audit.record(conn, operator=OPERATOR, action="billing.demo_seed", target="demo", ts=now,
                     after={"accounts": len(groups), "sales": len(rows),
                            "two_meter_accounts": sum(len(g) == 2 for g in groups),
                            "sold": str(sum((r["amount"] for r in rows), Decimal("0.00")))})
    return {"accounts": len(groups), "sales": len(rows), "two_meter_accounts": sum(len(g) == 2 for g in groups)}
