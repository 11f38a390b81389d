"""SMS-SUBMIT PDUs (3GPP TS 23.040 / 23.038, sent with AT+CMGS in PDU mode per TS 27.005): encoding, and decoding.

Plain text goes in the GSM 7-bit default alphabet (extension-table characters as ESC + code, two septets),
anything else (Chinese) in UCS2; a text longer than one SMS (160 septets / 70 UCS2 units) goes as
concatenated parts of 153 septets / 67 units, each with a user data header carrying an 8-bit reference,
the part count and the part's number. Numbers with a leading "+" are international (type of address 145),
others as dialled (129), the defaults TS 27.005 gives for <toda>.

Hand-written rather than taken from python-gsmmodem(-new / -2025): that encoder, unchanged since 2021 in
every fork, maps "`" to the code of "§" (0x5F), raises a bare ValueError on characters outside the BMP and
can split a UCS2 surrogate pair or a 7-bit escape across parts; the tables and packing here are short.
`decode_submit` is the other direction, for the fake modem in the tests and for reading a modem's log.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

# TS 23.038 6.2.1: the default alphabet, code = index
GSM7_BASIC = ("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
              "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
# TS 23.038 6.2.1.1: the extension table, reached by ESC (0x1B)
GSM7_EXTENSION = {"\f": 0x0A, "^": 0x14, "{": 0x28, "}": 0x29, "\\": 0x2F, "[": 0x3C, "~": 0x3D, "]": 0x3E,
                  "|": 0x40, "€": 0x65}
ESC = 0x1B
_BASIC_CODE = {ch: i for i, ch in enumerate(GSM7_BASIC) if i != ESC}
_EXTENSION_CHAR = {code: ch for ch, code in GSM7_EXTENSION.items()}

DCS_GSM7 = 0x00
DCS_UCS2 = 0x08
SINGLE_SEPTETS, PART_SEPTETS = 160, 153      # one SMS / one part after the 6-octet concatenation header
SINGLE_UCS2, PART_UCS2 = 70, 67              # in UTF-16 code units
MAX_PARTS = 255

_NUMBER = re.compile(r"\+?[0-9]{3,20}")


class PduError(ValueError):
    """The number or the text cannot be put in an SMS (bad digits, too many parts)."""


@dataclass(frozen=True)
class SubmitPdu:
    """One SMS-SUBMIT as the modem takes it: hex of SMSC field + TPDU, and the TPDU's length for AT+CMGS."""
    hex: str
    tpdu_length: int


@dataclass(frozen=True)
class DecodedSubmit:
    number: str                 # "+8613800138000" for international, digits as sent otherwise
    text: str                   # this part's text
    dcs: int                    # DCS_GSM7 or DCS_UCS2
    message_reference: int
    concat: tuple[int, int, int] | None   # (reference, parts, this part's number from 1) or None
    tpdu_length: int


def normalize_number(number: str) -> str:
    """The number as it goes on air: spaces, dashes, dots and brackets dropped; "+" then 3-20 ASCII digits."""
    if not isinstance(number, str):
        raise PduError(f"{number!r} is not a phone number")
    compact = re.sub(r"[\s\-.()]", "", number)
    if not _NUMBER.fullmatch(compact):
        raise PduError(f"{number!r} is not a phone number (digits, perhaps a leading +)")
    return compact


def gsm7_codes(text: str) -> list[int] | None:
    """The text as default-alphabet codes (extension characters as ESC + code), or None if it needs UCS2."""
    codes: list[int] = []
    for ch in text:
        code = _BASIC_CODE.get(ch)
        if code is not None:
            codes.append(code)
        elif ch in GSM7_EXTENSION:
            codes += (ESC, GSM7_EXTENSION[ch])
        else:
            return None
    return codes


def split_text(text: str, ucs2: bool = False) -> tuple[int, list[bytes] | list[list[int]]]:
    """(DCS, parts): 7-bit code lists or UCS2 byte strings, one per SMS; several only for a long text.
    UCS2 when the text needs it, or when `ucs2` asks for it."""
    codes = None if ucs2 else gsm7_codes(text)
    if codes is not None:
        if len(codes) <= SINGLE_SEPTETS:
            return DCS_GSM7, [codes]
        parts, start = [], 0
        while start < len(codes):
            end = min(start + PART_SEPTETS, len(codes))
            if end < len(codes) and codes[end - 1] == ESC and _escape_open(codes, start, end):
                end -= 1                       # an escape and its character stay in one part
            parts.append(codes[start:end])
            start = end
        return _checked(DCS_GSM7, parts)
    units = text.encode("utf-16-be")
    if len(units) <= 2 * SINGLE_UCS2:
        return DCS_UCS2, [units]
    parts, start = [], 0
    while start < len(units):
        end = min(start + 2 * PART_UCS2, len(units))
        if end < len(units) and 0xD8 <= units[end - 2] <= 0xDB:
            end -= 2                           # a high surrogate stays with its low one
        parts.append(units[start:end])
        start = end
    return _checked(DCS_UCS2, parts)


def _escape_open(codes: list[int], start: int, end: int) -> bool:
    """Whether codes[end - 1] is an ESC that starts a pair (not the second half of one)."""
    i = start
    while i < end - 1:
        i += 2 if codes[i] == ESC else 1
    return i == end - 1


def _checked(dcs, parts):
    if len(parts) > MAX_PARTS:
        raise PduError(f"the text needs {len(parts)} SMS, more than {MAX_PARTS}")
    return dcs, parts


def count_parts(text: str) -> int:
    """How many SMS the text goes out as."""
    return len(split_text(text)[1])


def encode_submit(number: str, text: str, *, reference: int = 0, message_reference: int = 0,
                  smsc: str = "", validity: int | None = None, ucs2: bool = False) -> list[SubmitPdu]:
    """The SMS-SUBMIT PDUs for `text` to `number`, in order.

    reference: the 8-bit concatenation reference shared by the parts of a long text (ignored for one part);
    message_reference: TP-MR (0: the modem assigns one); smsc: the service centre ("" = the SIM's);
    validity: TP-VP in the relative format (0-255, e.g. 0xAA = 4 days), None for none;
    ucs2: UCS2 even for a text the 7-bit alphabet could carry.
    """
    destination = _address(normalize_number(number))
    smsc_field = _smsc_field(normalize_number(smsc)) if smsc else b"\x00"
    dcs, parts = split_text(text, ucs2)
    concatenated = len(parts) > 1
    first = 0x01 | (0x10 if validity is not None else 0) | (0x40 if concatenated else 0)
    pdus = []
    for number_in_order, part in enumerate(parts, start=1):
        header = bytes([0x05, 0x00, 0x03, reference & 0xFF, len(parts), number_in_order]) if concatenated else b""
        if dcs == DCS_GSM7:
            fill = (7 - (len(header) * 8) % 7) % 7
            user_data = header + pack_septets(part, fill_bits=fill)
            length = (len(header) * 8 + fill) // 7 + len(part)     # in septets, header included
        else:
            user_data = header + bytes(part)
            length = len(user_data)                               # in octets
        tpdu = bytes([first, message_reference & 0xFF]) + destination + bytes([0x00, dcs])
        if validity is not None:
            tpdu += bytes([validity & 0xFF])
        tpdu += bytes([length]) + user_data
        pdus.append(SubmitPdu(hex=(smsc_field + tpdu).hex().upper(), tpdu_length=len(tpdu)))
    return pdus


def pack_septets(codes: list[int], fill_bits: int = 0) -> bytes:
    """Septets packed LSB first (TS 23.038 6.1.2.1.1), after `fill_bits` zero bits."""
    value, bits = 0, fill_bits
    for code in codes:
        value |= (code & 0x7F) << bits
        bits += 7
    return value.to_bytes((bits + 7) // 8, "little") if bits else b""


def unpack_septets(data: bytes, count: int, skip_bits: int = 0) -> list[int]:
    value = int.from_bytes(data, "little") >> skip_bits
    return [(value >> (7 * i)) & 0x7F for i in range(count)]


def decode_gsm7(codes: list[int]) -> str:
    out, escaped = [], False
    for code in codes:
        if escaped:
            out.append(_EXTENSION_CHAR.get(code, GSM7_BASIC[code] if code != ESC else " "))
            escaped = False
        elif code == ESC:
            escaped = True
        else:
            out.append(GSM7_BASIC[code])
    return "".join(out)


def _address(number: str) -> bytes:
    international = number.startswith("+")
    digits = number.lstrip("+")
    return bytes([len(digits), 0x91 if international else 0x81]) + _semi_octets(digits)


def _smsc_field(number: str) -> bytes:
    international = number.startswith("+")
    body = bytes([0x91 if international else 0x81]) + _semi_octets(number.lstrip("+"))
    return bytes([len(body)]) + body


def _semi_octets(digits: str) -> bytes:
    if len(digits) % 2:
        digits += "F"
    return bytes.fromhex("".join(digits[i + 1] + digits[i] for i in range(0, len(digits), 2)))


def _digits(data: bytes, count: int) -> str:
    nibbles = "".join(f"{b:02X}"[::-1] for b in data)
    return nibbles[:count]


def decode_submit(pdu_hex: str) -> DecodedSubmit:
    """Read one SMS-SUBMIT (with its SMSC field first, as AT+CMGS takes it). Raises PduError when malformed."""
    try:
        data = bytes.fromhex(pdu_hex.strip())
        smsc_length = data[0]
        tpdu = data[1 + smsc_length:]
        first, mr = tpdu[0], tpdu[1]
        if first & 0x03 != 0x01:
            raise PduError(f"not an SMS-SUBMIT (first octet {first:02X})")
        digits, toa = tpdu[2], tpdu[3]
        at = 4 + (digits + 1) // 2
        number = ("+" if toa & 0x70 == 0x10 else "") + _digits(tpdu[4:at], digits)
        dcs = tpdu[at + 1]
        at += 2
        vpf = (first >> 3) & 0x03
        at += {0: 0, 2: 1, 1: 7, 3: 7}[vpf]
        length = tpdu[at]
        user_data = tpdu[at + 1:]
        header = b""
        if first & 0x40:
            header = user_data[:1 + user_data[0]]
        concat = _concat(header[1:]) if header else None
        if dcs & 0x0C == 0x08:
            text = user_data[len(header):length].decode("utf-16-be")
        elif dcs & 0x0C == 0x00:
            skip = (len(header) * 8 + 6) // 7          # septets the header and its fill bits take
            if (length * 7 + 7) // 8 > len(user_data):
                raise PduError("user data shorter than its length says")
            codes = unpack_septets(user_data, length - skip, skip_bits=skip * 7)
            text = decode_gsm7(codes)
        else:
            raise PduError(f"data coding {dcs:02X} is not 7-bit or UCS2")
        return DecodedSubmit(number=number, text=text, dcs=dcs & 0x0C, message_reference=mr, concat=concat,
                             tpdu_length=len(tpdu))
    except (IndexError, ValueError, UnicodeDecodeError) as exc:
        if isinstance(exc, PduError):
            raise
        raise PduError(f"malformed PDU: {exc}") from None


def _concat(elements: bytes) -> tuple[int, int, int] | None:
    i = 0
    while i + 1 < len(elements):
        iei, size = elements[i], elements[i + 1]
        body = elements[i + 2:i + 2 + size]
        if iei == 0x00 and size == 3:
            return body[0], body[1], body[2]
        if iei == 0x08 and size == 4:
            return (body[0] << 8) | body[1], body[2], body[3]
        i += 2 + size
    return None
