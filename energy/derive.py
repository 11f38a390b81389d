"""Energy per meter and interval from the cumulative registers: resets, swaps and spikes are never counted (the
interval is marked as a gap and left empty), a silence whose register moved plausibly is spread over its time
(pro rata, marked estimated), and each interval's energy is cut into 15-minute pieces with its TOU split.

Pure numpy / pandas: storage reads the frames, energy.rollups writes the sums.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

REGISTERS = ("energy_total", "energy_sharp", "energy_peak", "energy_flat", "energy_valley")
ENERGY = ("energy_kwh", "energy_sharp", "energy_peak", "energy_flat", "energy_valley")
TOU = ENERGY[1:]
QUARTER_S = 900
FLAT = 2                       # index of "flat" in (sharp, peak, flat, valley): a meter without a TOU split
REGISTER_STEP_KWH = 0.01       # registers show 0.01 kWh: a fall this small is rounding, not a reset
TOU_TOLERANCE = 0.02           # the TOU registers' increases sum to the total's within 2 % (+ a step each)

# why an interval is not counted
RESET, SWAP, SPIKE = "reset", "swap", "spike"


@dataclass(frozen=True)
class DeriveRules:
    """What counts as plausible ([analytics] in the configuration)."""
    ceiling_kw: float = 60.0
    spike_margin: float = 1.5
    estimate_after_s: float = 65 * 60.0

    @classmethod
    def from_config(cls, analytics) -> "DeriveRules":
        return cls(analytics.ceiling_kw, analytics.spike_margin, analytics.estimate_after_minutes * 60.0)


def _seconds(ts) -> np.ndarray:
    return np.asarray(ts, dtype="datetime64[s]").astype(np.int64)


def intervals(frame: pd.DataFrame, rules: DeriveRules = DeriveRules(),
              epoch_starts: dict[int, list[dt.datetime]] | None = None) -> pd.DataFrame:
    """One row per pair of consecutive readings of a meter.

    `frame`: meter_id, ts (naive UTC), the registers (REGISTERS; TOU ones may be null) and power_total, any order.
    Returns meter_id, t0, t1 (UTC seconds), energy_kwh and the TOU increases (NaN where the meter's own split is
    missing or inconsistent), gap ('' counted, else RESET | SWAP | SPIKE: energy 0) and estimated (a silence
    longer than rules.estimate_after_s, counted and to be spread). `epoch_starts`: per meter, when a meter replaced
    in place started counting (an interval across one is a swap whatever its registers say).
    """
    f = frame[frame["energy_total"].notna()]
    f = f.sort_values(["meter_id", "ts"], kind="stable").drop_duplicates(["meter_id", "ts"], keep="last")
    meter = f["meter_id"].to_numpy(dtype=np.int64)
    ts = _seconds(f["ts"].to_numpy())
    reg = np.column_stack([pd.to_numeric(f[c], errors="coerce").to_numpy(dtype=float) if c in f else
                           np.full(len(f), np.nan) for c in REGISTERS]) if len(f) else np.zeros((0, 5))
    power = (pd.to_numeric(f["power_total"], errors="coerce").to_numpy(dtype=float) if "power_total" in f
             else np.full(len(f), np.nan))
    same = meter[1:] == meter[:-1]
    a = np.flatnonzero(same)           # interval i runs from reading a[i] to a[i] + 1
    b = a + 1
    d = reg[b] - reg[a]
    t0, t1 = ts[a], ts[b]
    hours = (t1 - t0) / 3600.0
    # a meter's highest power seen in this frame, at least the configured ceiling
    top = pd.Series(np.nan_to_num(np.abs(power), nan=0.0)).groupby(meter).max() if len(f) else pd.Series(dtype=float)
    limit_kw = np.maximum(rules.ceiling_kw, top.reindex(meter[a]).to_numpy(dtype=float))
    total = d[:, 0]
    gap = np.full(len(a), "", dtype=object)
    gap[total > limit_kw * hours * rules.spike_margin + REGISTER_STEP_KWH] = SPIKE
    gap[total < -REGISTER_STEP_KWH] = RESET
    if epoch_starts:
        present = set(np.unique(meter).tolist())
        for mid, starts in epoch_starts.items():
            if mid not in present:
                continue
            rows = np.flatnonzero(meter[a] == mid)
            for since in starts:
                s = int(np.datetime64(since, "s").astype(np.int64))
                gap[rows[(t0[rows] < s) & (s <= t1[rows])]] = SWAP
    counted = gap == ""
    total = np.where(counted, np.maximum(total, 0.0), 0.0)
    tou = d[:, 1:]
    tou_ok = (np.isfinite(tou).all(axis=1) & (tou >= -REGISTER_STEP_KWH).all(axis=1)
              & (np.abs(np.nan_to_num(tou).sum(axis=1) - total) <= TOU_TOLERANCE * total + 4 * REGISTER_STEP_KWH))
    tou = np.where(tou_ok[:, None], np.maximum(tou, 0.0), np.nan)
    tou[~counted] = 0.0
    out = pd.DataFrame({"meter_id": meter[a], "t0": t0, "t1": t1, "energy_kwh": total})
    for i, c in enumerate(TOU):
        out[c] = tou[:, i]
    out["gap"] = gap
    out["estimated"] = counted & ((t1 - t0) > rules.estimate_after_s)
    return out


def quarter_pieces(iv: pd.DataFrame) -> pd.DataFrame:
    """Each interval cut at 15-minute boundaries (UTC seconds; every zone's offset is a multiple of 15 minutes,
    so these are the site's quarters too), its energy pro rata by time. Columns: meter_id, q (quarter start,
    UTC seconds), the energy columns (TOU NaN where the interval had no split of its own), estimated, gap."""
    t0 = iv["t0"].to_numpy(dtype=np.int64)
    t1 = iv["t1"].to_numpy(dtype=np.int64)
    k0 = t0 // QUARTER_S
    k1 = -(-t1 // QUARTER_S)
    n = np.maximum(k1 - k0, 1)
    idx = np.repeat(np.arange(len(iv)), n)
    first = np.repeat(np.cumsum(n) - n, n)
    k = k0[idx] + (np.arange(len(idx)) - first)
    q = k * QUARTER_S
    span = np.maximum(t1 - t0, 1)[idx]
    frac = (np.minimum(t1[idx], q + QUARTER_S) - np.maximum(t0[idx], q)) / span
    out = {"meter_id": iv["meter_id"].to_numpy(dtype=np.int64)[idx], "q": q}
    for c in ENERGY:
        out[c] = iv[c].to_numpy(dtype=float)[idx] * frac
    out["estimated"] = iv["estimated"].to_numpy(dtype=bool)[idx]
    out["gap"] = (iv["gap"].to_numpy() != "")[idx]
    return pd.DataFrame(out)


def local_offsets(seconds: np.ndarray, tz: dt.tzinfo) -> np.ndarray:
    """The site's UTC offset in seconds at each UTC instant (any zone, daylight saving too)."""
    uniq, inv = np.unique(seconds, return_inverse=True)
    idx = pd.DatetimeIndex(uniq.astype("datetime64[s]")).tz_localize("UTC")
    local = idx.tz_convert(tz).tz_localize(None)
    off = (local.to_numpy(dtype="datetime64[s]").astype(np.int64) - uniq)
    return off[inv]


def split_by_segments(pieces: pd.DataFrame, tz: dt.tzinfo, tariffs: pd.DataFrame | None) -> pd.DataFrame:
    """Fill the TOU columns of pieces without the meter's own split: the whole piece goes to the segment of the
    tariff version in force at its start (by the site's wall-clock minute), or to flat without one.
    `tariffs`: meter_id, since (UTC seconds), segments (tuple of (start_minute, index)), one row per change."""
    missing = pieces["energy_sharp"].isna().to_numpy()
    if not missing.any():
        return pieces
    p = pd.DataFrame({"meter_id": pieces["meter_id"].to_numpy()[missing], "q": pieces["q"].to_numpy()[missing],
                      "_row": np.flatnonzero(missing)})
    index = np.full(len(p), FLAT, dtype=np.int64)
    if tariffs is not None and len(tariffs):
        keys = {segs: i for i, segs in enumerate(dict.fromkeys(tariffs["segments"]))}
        t = pd.DataFrame({"meter_id": tariffs["meter_id"].to_numpy(dtype=np.int64),
                          "since": tariffs["since"].to_numpy(dtype=np.int64),
                          "_seg": tariffs["segments"].map(keys).to_numpy(dtype=np.int64)}).sort_values("since")
        p = pd.merge_asof(p.sort_values("q"), t, left_on="q", right_on="since", by="meter_id", direction="backward")
        q = p["q"].to_numpy(dtype=np.int64)
        minute = ((q + local_offsets(q, tz)) % 86400) // 60
        seg = p["_seg"].to_numpy(dtype=float)    # NaN: no tariff in force yet
        index = np.full(len(p), FLAT, dtype=np.int64)
        for segs, key in keys.items():
            sel = seg == key
            if not segs or not sel.any():
                continue
            segs = sorted(segs)
            starts = np.array([s for s, _ in segs])
            which = np.array([i for _, i in segs])
            index[sel] = which[np.searchsorted(starts, minute[sel], side="right") - 1]  # before the first: last
    rows = p["_row"].to_numpy()
    energy = pieces["energy_kwh"].to_numpy(dtype=float)[rows]
    out = pieces.copy()
    for i, c in enumerate(TOU):
        col = out[c].to_numpy(dtype=float, copy=True)
        col[rows] = np.where(index == i, energy, 0.0)
        out[c] = col
    return out


def sum_pieces(pieces: pd.DataFrame, key: str) -> pd.DataFrame:
    """Energy summed, flags or-ed, per meter and `key` (an integer or datetime column). numpy's unique and
    bincount: a poll cycle's few pieces per meter cost what pandas' groupby costs in overhead alone."""
    meter = pieces["meter_id"].to_numpy(dtype=np.int64)
    raw = pieces[key].to_numpy()
    k = raw.astype(np.int64) if raw.dtype.kind in "iuM" else np.asarray(raw, dtype=np.int64)
    if len(k) == 0:
        return pd.DataFrame({"meter_id": meter, key: raw, **{c: np.zeros(0) for c in ENERGY},
                             "estimated": np.zeros(0, bool), "gap": np.zeros(0, bool)})
    lo = k.min()
    span = int(k.max() - lo) + 1
    uniq, first, inv = np.unique(meter * span + (k - lo), return_index=True, return_inverse=True)
    out = {"meter_id": meter[first], key: raw[first]}
    for c in ENERGY:
        out[c] = np.bincount(inv, weights=pieces[c].to_numpy(dtype=float), minlength=len(uniq))
    for c in ("estimated", "gap"):
        out[c] = np.bincount(inv, weights=pieces[c].to_numpy(dtype=float), minlength=len(uniq)) > 0
    return pd.DataFrame(out)


def rollup_frames(quarters: pd.DataFrame, tz: dt.tzinfo) -> dict[str, pd.DataFrame]:
    """15-minute sums (meter_id, q) -> the three rollup frames: "15min" and "hour" keyed by ts (naive UTC start of
    the quarter / of the site's hour), "day" by day (the site's local date)."""
    q = quarters["q"].to_numpy(dtype=np.int64)
    local = q + local_offsets(q, tz)
    hour_utc = q - local % 3600
    out = {"15min": quarters.assign(ts=q.astype("datetime64[s]").astype("datetime64[us]")).drop(columns="q")}
    hours = sum_pieces(quarters.assign(h=hour_utc).drop(columns="q"), "h")
    out["hour"] = hours.assign(ts=hours["h"].to_numpy(dtype=np.int64).astype("datetime64[s]")
                               .astype("datetime64[us]")).drop(columns="h")
    days = sum_pieces(quarters.assign(d=local // 86400).drop(columns="q"), "d")
    out["day"] = days.assign(day=days["d"].to_numpy(dtype=np.int64).astype("datetime64[D]")).drop(columns="d")
    return out
