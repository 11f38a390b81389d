"""Tariffs a simulated prepaid meter charges by: flat, time-of-use and monthly tiered, plus its TOU segment table.

Prices are integers in 1/10000 yuan per kWh (the SET_TARIFF unit); 1 fen = 100 price units·kWh.
Price indexes follow the secure frame: 0 sharp, 1 peak, 2 flat, 3 valley.
Energy registers are split by the segment table whatever the tariff mode is, as real meters do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SHARP, PEAK, FLAT, VALLEY = 0, 1, 2, 3
SEGMENT_NAMES = ("sharp", "peak", "flat", "valley")

MODE_FLAT, MODE_TOU, MODE_TIERED = 0, 1, 2

# A common Chinese TOU split (local time): valley 23:00-07:00, flat 07:00-08:00 and 11:00-18:00,
# peak 08:00-11:00, 18:00-19:00 and 21:00-23:00, sharp 19:00-21:00.
DEFAULT_TOU_SEGMENTS: tuple[tuple[int, int], ...] = (
    (0, VALLEY), (7 * 60, FLAT), (8 * 60, PEAK), (11 * 60, FLAT),
    (18 * 60, PEAK), (19 * 60, SHARP), (21 * 60, PEAK), (23 * 60, VALLEY),
)
UNBOUNDED_TIER = 0xFFFFFFFF


@dataclass(frozen=True)
class Tariff:
    mode: int = MODE_FLAT
    prices: tuple[int, int, int, int] = (0, 0, 6000, 0)  # sharp, peak, flat, valley
    segments: tuple[tuple[int, int], ...] = ()             # (start minute of day, price index); () = keep the meter's table
    tiers: tuple[tuple[int, int], ...] = ()                # (upper bound kWh per month, price)

    def to_json(self) -> dict:
        return {"mode": self.mode, "prices": list(self.prices),
                "segments": [list(s) for s in self.segments], "tiers": [list(t) for t in self.tiers]}

    @classmethod
    def from_json(cls, data: dict) -> "Tariff":
        return cls(int(data["mode"]), tuple(int(p) for p in data["prices"]),
                   tuple((int(a), int(b)) for a, b in data.get("segments", ())),
                   tuple((int(a), int(b)) for a, b in data.get("tiers", ())))


FLAT_060 = Tariff(MODE_FLAT, (0, 0, 6000, 0))
TOU_DEMO = Tariff(MODE_TOU, (10000, 8000, 6000, 3500), DEFAULT_TOU_SEGMENTS)
TIERED_DEMO = Tariff(MODE_TIERED, (0, 0, 5600, 0), (), ((200, 5600), (400, 6100), (UNBOUNDED_TIER, 8600)))


def segment_table(segments: tuple[tuple[int, int], ...]) -> bytes:
    """Price index for each of the 1440 minutes of a day; minutes before the first start wrap to the last segment."""
    segments = tuple(sorted(segments)) or DEFAULT_TOU_SEGMENTS
    table = bytearray(1440)
    for i, (start, index) in enumerate(segments):
        end = segments[i + 1][0] if i + 1 < len(segments) else 1440
        table[start:end] = bytes((index,)) * (end - start)
    table[:segments[0][0]] = bytes((segments[-1][1],)) * segments[0][0]
    return bytes(table)


def tier_price(tiers: tuple[tuple[int, int], ...], monthly_kwh: float) -> int:
    for bound, price in tiers:
        if monthly_kwh < bound:
            return price
    return tiers[-1][1]


def price_for(tariff: Tariff, segment_index: int, monthly_kwh: float) -> int:
    """Price (1/10000 yuan per kWh) of the next kWh in this segment with this month's use so far."""
    if tariff.mode == MODE_TOU:
        return tariff.prices[segment_index]
    if tariff.mode == MODE_TIERED and tariff.tiers:
        return tier_price(tariff.tiers, monthly_kwh)
    return tariff.prices[FLAT]


def price_array(tariff: Tariff, segment_index: np.ndarray, monthly_kwh_before: np.ndarray) -> np.ndarray:
    """Vectorised price_for over arrays of the same shape."""
    if tariff.mode == MODE_TOU:
        return np.asarray(tariff.prices, dtype=np.int64)[segment_index]
    if tariff.mode == MODE_TIERED and tariff.tiers:
        bounds = np.array([b for b, _ in tariff.tiers], dtype=np.float64)
        prices = np.array([p for _, p in tariff.tiers], dtype=np.int64)
        idx = np.minimum(np.searchsorted(bounds, monthly_kwh_before, side="right"), len(prices) - 1)
        return prices[idx]
    return np.full(np.shape(segment_index), tariff.prices[FLAT], dtype=np.int64)
