"""Secure command frame v1 (specs/secure-frame.md): keys, payloads, encryption and MAC.

Money goes in as integer fen (``fen_from_yuan`` converts exact decimal yuan); prices as
integer 1/10000 yuan per kWh (``price_units_from_yuan``). Every builder validates its
range and raises ValueError with a message fit for an operator.

The site master key never appears in logs, reprs or exception messages.

SET_TARIFF layout chosen where the spec reads two ways: the payload always carries both the
segment count and the tier count (0 when the mode does not use them):
mode u8, 4 prices u32, segment count u8, segments (u16 minute, u8 price index)*, tier count u8,
tiers (u32 bound, u32 price)*.
"""

from __future__ import annotations

import os
import re
import struct
from decimal import Decimal, InvalidOperation
from enum import IntEnum
from typing import NamedTuple

from Crypto.Cipher import DES3
from Crypto.Hash import CMAC

from core.money import from_fen

VERSION = 0x01
U32_MAX = 0xFFFFFFFF
LABEL_ENC = 0x45  # 'E'
LABEL_MAC = 0x4D  # 'M'
HEADER = struct.Struct(">BBIIH")
MAX_TOU_SEGMENTS = 14
MAX_TIERS = 4


class Command(IntEnum):
    RECHARGE = 0x01
    REFUND = 0x02
    SET_TARIFF = 0x03
    SET_LIMITS = 0x04
    RELAY = 0x10
    TIME_SYNC = 0x11
    TAP_SET = 0x40
    CAPACITY_MODE = 0x41
    BREAKER = 0x42


MONEY_COMMANDS = frozenset({Command.RECHARGE, Command.REFUND})


class Result(IntEnum):
    IDLE = 0
    APPLIED = 1
    ALREADY_APPLIED = 2
    BAD_FRAME = 3
    COUNT_MISMATCH = 4
    REPLAYED = 5
    INSUFFICIENT = 6
    INVALID_PAYLOAD = 7
    EXPIRED = 8
    BUSY = 9


class RelayAction(IntEnum):
    TRIP = 0
    CLOSE = 1
    KEEP_POWER_ON = 2
    KEEP_POWER_OFF = 3  # restore prepaid control


class TariffMode(IntEnum):
    FLAT = 0
    TIME_OF_USE = 1
    TIERED = 2


class FrameError(ValueError):
    """A frame that fails its MAC, its padding or its layout."""


class DecodedFrame(NamedTuple):
    command: int
    counter: int
    issued_at: int
    payload: bytes


# ---------------------------------------------------------------- addresses and keys

def meter_address_bytes(address: str) -> bytes:
    """12-digit nameplate number -> 6 bytes BCD; anything else is refused."""
    if not isinstance(address, str) or not re.fullmatch(r"[0-9]{12}", address):
        raise ValueError(f"meter address must be exactly 12 digits (got {address!r})")
    return bytes.fromhex(address)


def _check_master_key(km: bytes) -> bytes:
    if not isinstance(km, (bytes, bytearray)):
        raise TypeError("site master key must be bytes")
    if len(km) != 24:
        raise ValueError(f"site master key must be 24 bytes (3-key 3DES), got {len(km)} bytes")
    return bytes(km)


def _des3(key: bytes, mode: int, **kw):
    try:
        return DES3.new(key, mode, **kw)
    except ValueError:
        # pycryptodome refuses keys that degenerate to single DES; say so without the key.
        raise ValueError("key is not a valid 3-key 3DES key (it degenerates to single DES)") from None


def diversify_key(km: bytes, address: str | bytes, label: int) -> bytes:
    """K_L = adjust_parity(E(KM, A||L||01) || E(KM, A||L||02) || E(KM, A||L||03))."""
    km = _check_master_key(km)
    a = address if isinstance(address, bytes) else meter_address_bytes(address)
    if len(a) != 6:
        raise ValueError("meter address must be 6 BCD bytes")
    ecb = _des3(km, DES3.MODE_ECB)
    raw = b"".join(ecb.encrypt(a + bytes([label, i])) for i in (1, 2, 3))
    return DES3.adjust_key_parity(raw)


def meter_keys(km: bytes, address: str | bytes) -> tuple[bytes, bytes]:
    """(K_E, K_M) for one meter."""
    return diversify_key(km, address, LABEL_ENC), diversify_key(km, address, LABEL_MAC)


# ---------------------------------------------------------------- plaintext and frame

def _u32(name: str, value: int, low: int = 0) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{name} must be a whole number (got {value!r})")
    if not low <= value <= U32_MAX:
        raise ValueError(f"{name} must be between {low} and {U32_MAX} (got {value})")
    return value


def build_plaintext(command: int, counter: int, issued_at: int, payload: bytes) -> bytes:
    command = Command(command)
    _u32("counter", counter, low=1)
    _u32("issued_at", issued_at)
    if len(payload) > 0xFFFF:
        raise ValueError("payload too long")
    return HEADER.pack(VERSION, command, counter, issued_at, len(payload)) + payload


def pad_iso9797_m2(data: bytes) -> bytes:
    data = data + b"\x80"
    return data + b"\x00" * (-len(data) % 8)


def unpad_iso9797_m2(data: bytes) -> bytes:
    stripped = data.rstrip(b"\x00")
    if not stripped or stripped[-1] != 0x80 or len(data) - len(stripped) > 7:
        raise FrameError("bad padding")
    return stripped[:-1]


def _mac(k_m: bytes, data: bytes) -> CMAC.CMAC:
    return CMAC.new(k_m, msg=data, ciphermod=DES3)


def encrypt_frame(km: bytes, address: str, command: int, counter: int, issued_at: int,
                  payload: bytes, iv: bytes | None = None) -> bytes:
    """A ‖ IV ‖ 3DES-CBC(K_E, IV, pad(plaintext)) ‖ CMAC-3DES(K_M, A ‖ IV ‖ ciphertext)."""
    a = meter_address_bytes(address)
    k_e, k_m = meter_keys(km, a)
    if iv is None:
        iv = os.urandom(8)
    if len(iv) != 8:
        raise ValueError("IV must be 8 bytes")
    plaintext = build_plaintext(command, counter, issued_at, payload)
    ciphertext = _des3(k_e, DES3.MODE_CBC, iv=iv).encrypt(pad_iso9797_m2(plaintext))
    body = a + iv + ciphertext
    return body + _mac(k_m, body).digest()


def decode_frame(km: bytes, frame: bytes, address: str | None = None) -> DecodedFrame:
    """Verify the MAC, decrypt and parse; FrameError if anything is off.

    If ``address`` is given, the frame must be addressed to that meter.
    """
    frame = bytes(frame)
    if len(frame) < 6 + 8 + 8 + 8 or (len(frame) - 22) % 8:
        raise FrameError(f"frame length {len(frame)} is not 22 + 8k bytes")
    a, iv, ciphertext, tag = frame[:6], frame[6:14], frame[14:-8], frame[-8:]
    if address is not None and a != meter_address_bytes(address):
        raise FrameError("frame is addressed to another meter")
    try:
        k_e, k_m = meter_keys(km, a)
    except ValueError:
        raise FrameError("frame address is not a BCD meter address") from None
    try:
        _mac(k_m, frame[:-8]).verify(tag)
    except ValueError:
        raise FrameError("MAC check failed") from None
    padded = _des3(k_e, DES3.MODE_CBC, iv=iv).decrypt(ciphertext)
    plaintext = unpad_iso9797_m2(padded)
    if len(plaintext) < HEADER.size:
        raise FrameError("plaintext shorter than its header")
    version, command, counter, issued_at, n = HEADER.unpack_from(plaintext)
    if version != VERSION:
        raise FrameError(f"unknown frame version {version}")
    if len(plaintext) != HEADER.size + n:
        raise FrameError("payload length does not match the header")
    return DecodedFrame(command, counter, issued_at, plaintext[HEADER.size:])


# ---------------------------------------------------------------- money

def _exact_decimal(value: Decimal | str, what: str) -> Decimal:
    if isinstance(value, float):
        raise TypeError(f"{what} must be a Decimal or a string, not float (floats are not exact)")
    if isinstance(value, bool) or not isinstance(value, (Decimal, str, int)):
        raise TypeError(f"{what} must be a Decimal or a string (got {type(value).__name__})")
    try:
        d = Decimal(value.strip() if isinstance(value, str) else value)
    except InvalidOperation:
        raise ValueError(f"{what} is not a number: {value!r}") from None
    if not d.is_finite():
        raise ValueError(f"{what} is not a number: {value!r}")
    if d < 0:
        raise ValueError(f"{what} cannot be negative (got {value})")
    return d


def fen_from_yuan(amount: Decimal | str) -> int:
    """Exact yuan (at most 2 decimals, not negative) -> integer fen."""
    d = _exact_decimal(amount, "amount")
    if d.normalize().as_tuple().exponent < -2:
        raise ValueError(f"amount has more than 2 decimals: {amount}")
    return int(d * 100)


yuan_from_fen = from_fen  # fen on the wire -> Decimal yuan (core.money)


def price_units_from_yuan(price: Decimal | str) -> int:
    """Exact yuan per kWh (at most 4 decimals) -> integer 1/10000 yuan per kWh."""
    d = _exact_decimal(price, "price")
    if d.normalize().as_tuple().exponent < -4:
        raise ValueError(f"price has more than 4 decimals: {price}")
    return int(d * 10000)


# ---------------------------------------------------------------- payload builders

def _uint(name: str, value: int, high: int = 0xFF) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= high:
        raise ValueError(f"{name} must be a whole number 0..{high} (got {value!r})")
    return value


def recharge_payload(amount_fen: int) -> bytes:
    return struct.pack(">I", _u32("recharge amount (fen)", amount_fen, low=1))


def refund_payload(amount_fen: int) -> bytes:
    return struct.pack(">I", _u32("refund amount (fen)", amount_fen, low=1))


def _prices(prices: tuple[int, int, int, int] | list[int]) -> bytes:
    if len(prices) != 4:
        raise ValueError("a tariff has four prices: sharp, peak, flat, valley")
    names = ("sharp", "peak", "flat", "valley")
    return struct.pack(">4I", *(_u32(f"{n} price (1/10000 yuan/kWh)", p) for n, p in zip(names, prices)))


def tariff_flat_payload(price: int) -> bytes:
    """Flat tariff: the flat price filled, the others 0."""
    return (bytes([TariffMode.FLAT]) + _prices((0, 0, price, 0)) + b"\x00" + b"\x00")


def tariff_tou_payload(prices: tuple[int, int, int, int] | list[int],
                       segments: list[tuple[int, int]]) -> bytes:
    """Time-of-use: segments of (start minute-of-day, price index 0 sharp..3 valley), ascending.

    The last segment runs until the first one's start on the next day.
    """
    if not 1 <= len(segments) <= MAX_TOU_SEGMENTS:
        raise ValueError(f"a time-of-use tariff needs 1 to {MAX_TOU_SEGMENTS} segments (got {len(segments)})")
    out = bytearray([TariffMode.TIME_OF_USE]) + _prices(prices) + bytes([len(segments)])
    previous = -1
    for start, index in segments:
        if not isinstance(start, int) or isinstance(start, bool) or not 0 <= start < 1440:
            raise ValueError(f"segment start must be a minute of the day 0..1439 (got {start!r})")
        if start <= previous:
            raise ValueError("segment starts must be strictly ascending")
        previous = start
        out += struct.pack(">HB", start, _uint("segment price index", index, 3))
    return bytes(out + b"\x00")


def tariff_tiered_payload(prices: tuple[int, int, int, int] | list[int],
                          tiers: list[tuple[int, int]]) -> bytes:
    """Tiered: tiers of (upper bound kWh per month, price 1/10000 yuan/kWh); last bound 0xFFFFFFFF."""
    if not 1 <= len(tiers) <= MAX_TIERS:
        raise ValueError(f"a tiered tariff needs 1 to {MAX_TIERS} tiers (got {len(tiers)})")
    out = bytearray([TariffMode.TIERED]) + _prices(prices) + b"\x00" + bytes([len(tiers)])
    previous = -1
    for bound, price in tiers:
        _u32("tier upper bound (kWh per month)", bound)
        if bound <= previous:
            raise ValueError("tier upper bounds must be strictly ascending")
        previous = bound
        out += struct.pack(">II", bound, _u32("tier price (1/10000 yuan/kWh)", price))
    if tiers[-1][0] != U32_MAX:
        raise ValueError("the last tier's upper bound must be 0xFFFFFFFF (no limit)")
    return bytes(out)


def limits_payload(alarm1_fen: int, alarm2_fen: int, overload_w: int, overdraft_fen: int) -> bytes:
    return struct.pack(">4I", _u32("alarm1 (fen)", alarm1_fen), _u32("alarm2 (fen)", alarm2_fen),
                       _u32("overload limit (W)", overload_w), _u32("overdraft (fen)", overdraft_fen))


def relay_payload(action: int | str) -> bytes:
    if isinstance(action, str):
        try:
            action = RelayAction[action.strip().upper().replace("-", "_")]
        except KeyError:
            raise ValueError(f"relay action must be trip, close, keep-power-on or keep-power-off (got {action!r})") from None
    return bytes([_uint("relay action", action, 3)])


def time_sync_payload(unix_seconds: int) -> bytes:
    return struct.pack(">I", _u32("time (Unix seconds)", unix_seconds))


def tap_set_payload(position: int) -> bytes:
    return struct.pack(">H", _uint("tap position", position, 0xFFFF))


def capacity_mode_payload(mode: int) -> bytes:
    return bytes([_uint("capacity mode (0 small, 1 large)", mode, 1)])


def breaker_payload(outlet: int, action: int) -> bytes:
    if not isinstance(outlet, int) or isinstance(outlet, bool) or not 1 <= outlet <= 8:
        raise ValueError(f"breaker outlet must be 1..8 (got {outlet!r})")
    return bytes([outlet, _uint("breaker action (0 open, 1 close)", action, 1)])
