"""The secure command frame, meter side (specs/secure-frame.md), implemented independently of collectors/.

Keys are diversified per meter from the site master key, the frame is 3DES-CBC encrypted and
authenticated with CMAC-3DES. CMAC and the ISO/IEC 9797-1 method 2 padding are written here
rather than taken from a library so that the simulator is a second, independent reading of the
spec. `seal_frame` (the sender side) exists for tests and tools only.
"""

from __future__ import annotations

import hmac
import os
import struct
from dataclasses import dataclass
from enum import IntEnum

from Crypto.Cipher import DES3

from simulator.tariff import Tariff

VERSION = 1
BLOCK = 8
ADDRESS_LEN = 6
MAC_LEN = 8
IV_LEN = 8
MIN_FRAME_LEN = ADDRESS_LEN + IV_LEN + BLOCK + MAC_LEN  # 30 bytes
HEADER_LEN = 12

LABEL_ENCRYPTION = 0x45  # 'E'
LABEL_MAC = 0x4D  # 'M'

# The test vector master key of secure-frame.md; the default of simulated sites.
TEST_MASTER_KEY = bytes.fromhex("0123456789ABCDEFFEDCBA98765432100F1E2D3C4B5A6978")


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
    KEEP_POWER_OFF = 3


class BadFrame(ValueError):
    """The frame fails authentication or structure checks (result BAD_FRAME)."""


class InvalidPayload(ValueError):
    """The frame is authentic but its payload does not fit its command (result INVALID_PAYLOAD)."""


@dataclass(frozen=True)
class Plaintext:
    version: int
    command: int
    counter: int
    issued_at: int
    payload: bytes


# ---------------------------------------------------------------- keys

def address_bcd(address: str) -> bytes:
    """12-digit meter number -> 6 bytes packed BCD ('202611210001' -> 20 26 11 21 00 01)."""
    if len(address) != 12 or not address.isdigit():
        raise ValueError(f"meter address must be 12 digits, got {address!r}")
    return bytes.fromhex(address)


def adjust_parity(key: bytes) -> bytes:
    """Set the least significant bit of every byte so that each byte has odd parity (DES convention)."""
    out = bytearray()
    for byte in key:
        high_seven = byte & 0xFE
        ones = bin(high_seven).count("1")
        out.append(high_seven | (0 if ones % 2 else 1))
    return bytes(out)


def diversify(master_key: bytes, address: str, label: int) -> bytes:
    """K_L = adjust_parity(E(KM, A||L||01) || E(KM, A||L||02) || E(KM, A||L||03))."""
    if len(master_key) != 24:
        raise ValueError("the site master key must be 24 bytes (3-key 3DES)")
    a = address_bcd(address)
    ecb = DES3.new(master_key, DES3.MODE_ECB)
    return adjust_parity(b"".join(ecb.encrypt(a + bytes((label, i))) for i in (1, 2, 3)))


@dataclass(frozen=True)
class MeterKeys:
    encryption: bytes
    mac: bytes


def meter_keys(master_key: bytes, address: str) -> MeterKeys:
    return MeterKeys(diversify(master_key, address, LABEL_ENCRYPTION),
                     diversify(master_key, address, LABEL_MAC))


# ---------------------------------------------------------------- padding and CMAC

def pad_iso9797_m2(data: bytes) -> bytes:
    """ISO/IEC 9797-1 padding method 2: one 0x80 byte, then 0x00 up to a multiple of 8 (always adds)."""
    return data + b"\x80" + b"\x00" * ((-len(data) - 1) % BLOCK)


def unpad_iso9797_m2(data: bytes) -> bytes:
    if not data or len(data) % BLOCK:
        raise BadFrame("padded plaintext is not a whole number of blocks")
    stripped = data.rstrip(b"\x00")
    if not stripped or stripped[-1] != 0x80 or len(data) - len(stripped) >= BLOCK:
        raise BadFrame("bad ISO 9797-1 method 2 padding")
    return stripped[:-1]


_RB_64 = 0x1B
_MASK_64 = (1 << 64) - 1


def _shift_subkey(block: int) -> int:
    shifted = (block << 1) & _MASK_64
    return shifted ^ _RB_64 if block >> 63 else shifted


def cmac_3des(key: bytes, data: bytes) -> bytes:
    """CMAC (NIST SP 800-38B) over 3DES, 8-byte tag."""
    ecb = DES3.new(key, DES3.MODE_ECB)
    l_block = int.from_bytes(ecb.encrypt(b"\x00" * BLOCK), "big")
    k1 = _shift_subkey(l_block)
    k2 = _shift_subkey(k1)
    if data and len(data) % BLOCK == 0:
        body, last, subkey = data[:-BLOCK], data[-BLOCK:], k1
    else:
        cut = len(data) - len(data) % BLOCK
        body, last, subkey = data[:cut], pad_iso9797_m2(data[cut:]), k2
    chain = 0
    for i in range(0, len(body), BLOCK):
        chain = int.from_bytes(ecb.encrypt((chain ^ int.from_bytes(body[i:i + BLOCK], "big")).to_bytes(BLOCK, "big")), "big")
    final = chain ^ int.from_bytes(last, "big") ^ subkey
    return ecb.encrypt(final.to_bytes(BLOCK, "big"))


# ---------------------------------------------------------------- frames

def build_plaintext(command: int, counter: int, issued_at: int, payload: bytes = b"", version: int = VERSION) -> bytes:
    return struct.pack(">BBIIH", version, command, counter, issued_at, len(payload)) + payload


def seal_frame(master_key: bytes, address: str, command: int, counter: int, issued_at: int,
               payload: bytes = b"", iv: bytes | None = None, version: int = VERSION) -> bytes:
    """Sender side, for tests and tools: address || IV || 3DES-CBC(K_E, IV, padded plaintext) || CMAC."""
    keys = meter_keys(master_key, address)
    iv = os.urandom(IV_LEN) if iv is None else iv
    plaintext = build_plaintext(command, counter, issued_at, payload, version)
    ciphertext = DES3.new(keys.encryption, DES3.MODE_CBC, iv=iv).encrypt(pad_iso9797_m2(plaintext))
    head = address_bcd(address) + iv + ciphertext
    return head + cmac_3des(keys.mac, head)


def open_frame(keys: MeterKeys, address: str, frame: bytes) -> Plaintext:
    """Meter side: check structure, address, MAC, padding, version and length; raise BadFrame on any failure."""
    if len(frame) < MIN_FRAME_LEN or (len(frame) - ADDRESS_LEN - IV_LEN - MAC_LEN) % BLOCK:
        raise BadFrame(f"frame length {len(frame)} is not 22 + 8k")
    if frame[:ADDRESS_LEN] != address_bcd(address):
        raise BadFrame("frame is addressed to another meter")
    head, mac = frame[:-MAC_LEN], frame[-MAC_LEN:]
    if not hmac.compare_digest(cmac_3des(keys.mac, head), mac):
        raise BadFrame("MAC mismatch")
    iv = frame[ADDRESS_LEN:ADDRESS_LEN + IV_LEN]
    ciphertext = head[ADDRESS_LEN + IV_LEN:]
    plaintext = unpad_iso9797_m2(DES3.new(keys.encryption, DES3.MODE_CBC, iv=iv).decrypt(ciphertext))
    if len(plaintext) < HEADER_LEN:
        raise BadFrame("plaintext shorter than its header")
    version, command, counter, issued_at, length = struct.unpack(">BBIIH", plaintext[:HEADER_LEN])
    if version != VERSION:
        raise BadFrame(f"unknown frame version {version}")
    if length != len(plaintext) - HEADER_LEN:
        raise BadFrame("payload length field disagrees with the plaintext")
    return Plaintext(version, command, counter, issued_at, plaintext[HEADER_LEN:])


# ---------------------------------------------------------------- mailbox packing

def frame_to_registers(frame: bytes) -> list[int]:
    """Mailbox write image: register 0 = frame length in bytes, then the frame two bytes per register."""
    padded = frame + b"\x00" * (len(frame) % 2)
    return [len(frame)] + list(struct.unpack(f">{len(padded) // 2}H", padded))


def registers_to_frame(registers: list[int]) -> bytes:
    """Inverse of frame_to_registers; raise BadFrame when the length register disagrees with the data."""
    if not registers:
        raise BadFrame("empty mailbox write")
    length, words = registers[0], registers[1:]
    if not (2 * len(words) - 1 <= length <= 2 * len(words)) or length == 0:
        raise BadFrame(f"mailbox length register {length} disagrees with {len(words)} data registers")
    return struct.pack(f">{len(words)}H", *words)[:length]


# ---------------------------------------------------------------- payloads

def u32_payload(value: int) -> bytes:
    return struct.pack(">I", value)


def recharge_payload(amount_fen: int) -> bytes:
    return struct.pack(">I", amount_fen)


def limits_payload(alarm1_fen: int, alarm2_fen: int, overload_w: int, overdraft_fen: int) -> bytes:
    return struct.pack(">IIII", alarm1_fen, alarm2_fen, overload_w, overdraft_fen)


def relay_payload(action: int) -> bytes:
    return bytes((action,))


def time_sync_payload(unix_seconds: int) -> bytes:
    return struct.pack(">I", unix_seconds)


def tap_payload(position: int) -> bytes:
    return struct.pack(">H", position)


def capacity_mode_payload(mode: int) -> bytes:
    return bytes((mode,))


def breaker_payload(outlet: int, action: int) -> bytes:
    return bytes((outlet, action))


def tariff_payload(tariff: Tariff) -> bytes:
    out = struct.pack(">B4I", tariff.mode, *tariff.prices)
    out += bytes((len(tariff.segments),))
    for start, index in tariff.segments:
        out += struct.pack(">HB", start, index)
    out += bytes((len(tariff.tiers),))
    for bound, price in tariff.tiers:
        out += struct.pack(">II", bound, price)
    return out


def parse_tariff_payload(payload: bytes) -> Tariff:
    """Parse and validate a SET_TARIFF payload; raise InvalidPayload when it is malformed."""
    try:
        mode, *prices = struct.unpack_from(">B4I", payload, 0)
        pos = 17
        n_segments = payload[pos]
        pos += 1
        segments = []
        for _ in range(n_segments):
            segments.append(struct.unpack_from(">HB", payload, pos))
            pos += 3
        n_tiers = payload[pos]
        pos += 1
        tiers = []
        for _ in range(n_tiers):
            tiers.append(struct.unpack_from(">II", payload, pos))
            pos += 8
    except (struct.error, IndexError) as exc:
        raise InvalidPayload(f"SET_TARIFF payload too short: {exc}") from None
    if pos != len(payload):
        raise InvalidPayload("SET_TARIFF payload has trailing bytes")
    if mode not in (0, 1, 2):
        raise InvalidPayload(f"unknown tariff mode {mode}")
    if n_segments > 14:
        raise InvalidPayload("more than 14 time-of-use segments")
    starts = [s for s, _ in segments]
    if any(s >= 1440 for s in starts) or starts != sorted(set(starts)):
        raise InvalidPayload("segment starts must be increasing minutes of the day")
    if any(i > 3 for _, i in segments):
        raise InvalidPayload("segment price index must be 0..3")
    if mode == 1 and not segments:
        raise InvalidPayload("a time-of-use tariff needs segments")
    if mode == 2:
        bounds = [b for b, _ in tiers]
        if not 1 <= len(tiers) <= 4 or bounds[-1] != 0xFFFFFFFF or bounds != sorted(set(bounds)):
            raise InvalidPayload("a tiered tariff needs 1..4 increasing tiers ending at 0xFFFFFFFF")
    elif tiers:
        raise InvalidPayload("tiers are only allowed in a tiered tariff")
    if mode == 0 and prices[2] == 0:
        raise InvalidPayload("a flat tariff needs the flat price")
    return Tariff(mode, tuple(prices), tuple(map(tuple, segments)), tuple(map(tuple, tiers)))
