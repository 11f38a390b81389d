"""What one poll cycle changed (CycleChanges): meters, buses and gateways lost or recovered, status bits, balances
crossing the site's alarm amounts or zero, relays. Pure functions of the previous state and the cycle's new rows.

A value is compared only when both the previous and the new one are known: a meter's first reading, or a
profile that does not report a bit, changes nothing. A balance "at or below" an amount is in that band (as the
meter's own alarm bits are): down through an amount means previous > amount >= new, up means the reverse.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Iterable, Mapping

from core.money import reading_fen

ALARM_BITS = ("alarm1", "alarm2", "arrears", "overload", "tamper", "fault")
ZERO = "zero"   # the threshold name of a balance running out (amount 0); the others are the site's "alarm1", "alarm2"
COMPARED = ("meter_id", *ALARM_BITS, "relay_closed", "balance", "balance_fen")


@dataclass(frozen=True)
class BitChange:
    meter_id: int
    bit: str          # one of ALARM_BITS
    old: bool
    new: bool


@dataclass(frozen=True)
class BalanceCrossing:
    meter_id: int
    threshold: str    # "alarm1" | "alarm2" | "zero"
    amount_fen: int   # the threshold's amount when the cycle ran
    direction: str    # "down" (now at or below it) | "up" (now above it)
    old_fen: int
    new_fen: int


@dataclass(frozen=True)
class RelayChange:
    meter_id: int
    closed: bool      # the new state: True closed (power on), False open


@dataclass(frozen=True)
class CycleChanges:
    """Published once per poll cycle on core.events.CYCLE_CHANGED, after the cycle's transaction commits.
    Meters, buses and gateways by their database ids; `at` is the cycle's time (naive UTC)."""
    at: dt.datetime
    meters_lost: tuple[int, ...] = ()
    meters_recovered: tuple[int, ...] = ()
    buses_lost: tuple[int, ...] = ()
    buses_recovered: tuple[int, ...] = ()
    gateways_lost: tuple[int, ...] = ()        # every polled bus of the gateway is lost
    gateways_recovered: tuple[int, ...] = ()
    bits: tuple[BitChange, ...] = ()
    balances: tuple[BalanceCrossing, ...] = ()
    relays: tuple[RelayChange, ...] = ()

    @property
    def empty(self) -> bool:
        return not any((self.meters_lost, self.meters_recovered, self.buses_lost, self.buses_recovered,
                        self.gateways_lost, self.gateways_recovered, self.bits, self.balances, self.relays))


def _known(v):
    """None for every spelling of "unknown" a frame row may hold (None, NaN, NaT, pd.NA)."""
    if v is None:
        return None
    try:
        if v != v:   # NaN, NaT
            return None
        bool(v == v)
    except (TypeError, ValueError):   # pd.NA refuses to be a bool
        return None
    return v


def _fen(row: Mapping, key_fen: str = "balance_fen", key_yuan: str = "balance") -> int | None:
    if _known(row.get(key_fen)) is not None:
        return int(round(float(row[key_fen])))
    yuan = _known(row.get(key_yuan))
    return None if yuan is None else reading_fen(Decimal(str(yuan)))


def compared_rows(frame) -> list[dict]:
    """The columns meter_changes compares, as row dicts (a whole meter_state row per meter costs 5x as much)."""
    return frame[[c for c in COMPARED if c in frame.columns]].to_dict("records") if len(frame) else []


def meter_changes(previous: Mapping[int, Mapping], rows: Iterable[Mapping], thresholds: Mapping[str, int]
                  ) -> tuple[tuple[BitChange, ...], tuple[BalanceCrossing, ...], tuple[RelayChange, ...]]:
    """Status bits, balance crossings and relay changes from each meter's previous meter_state row (balance in
    yuan) to its new row (balance in fen, as the cycle writes it). `thresholds`: name -> amount in fen."""
    bits: list[BitChange] = []
    balances: list[BalanceCrossing] = []
    relays: list[RelayChange] = []
    bands = sorted(((name, int(fen)) for name, fen in {**thresholds, ZERO: 0}.items()), key=lambda b: -b[1])
    for row in rows:
        mid = int(row["meter_id"])
        old = previous.get(mid)
        if not old:
            continue
        for bit in ALARM_BITS:
            a, b = _known(old.get(bit)), _known(row.get(bit))
            if a is not None and b is not None and bool(a) != bool(b):
                bits.append(BitChange(mid, bit, bool(a), bool(b)))
        a, b = _known(old.get("relay_closed")), _known(row.get("relay_closed"))
        if a is not None and b is not None and bool(a) != bool(b):
            relays.append(RelayChange(mid, bool(b)))
        before, after = _fen(old), _fen(row)
        if before is None or after is None or before == after:
            continue
        for name, amount in bands:
            if before > amount >= after:
                balances.append(BalanceCrossing(mid, name, amount, "down", before, after))
            elif after > amount >= before:
                balances.append(BalanceCrossing(mid, name, amount, "up", before, after))
    return tuple(bits), tuple(balances), tuple(relays)


def bus_changes(buses: Iterable[Mapping], unreachable: set[tuple[str, int]]
                ) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """(buses lost, buses recovered, gateways lost, gateways recovered) for the buses polled this cycle.
    `buses`: bus_id, gateway_id, host, port and the previous comm_state (None: never polled);
    `unreachable`: the (host, port) endpoints this cycle could not reach."""
    lost, recovered = [], []
    gateways: dict[int, list[tuple[bool, bool]]] = {}
    for b in buses:
        was = b["comm_state"] == "lost"
        now = (b["host"], int(b["port"])) in unreachable
        if now and not was:
            lost.append(b["bus_id"])
        elif was and not now:
            recovered.append(b["bus_id"])
        gateways.setdefault(b["gateway_id"], []).append((was, now))
    gw_lost = [g for g, s in gateways.items() if all(n for _, n in s) and not all(w for w, _ in s)]
    gw_back = [g for g, s in gateways.items() if all(w for w, _ in s) and not all(n for _, n in s)]
    return tuple(lost), tuple(recovered), tuple(sorted(gw_lost)), tuple(sorted(gw_back))
