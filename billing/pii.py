"""Personal data of account holders: national ID validated, encrypted at rest (AES-256-GCM), shown masked."""
from __future__ import annotations

import base64
import os
import re

from Crypto.Cipher import AES

from billing.errors import BillingError

_PREFIX = "v1:"
_AAD = b"wattline account national_id v1"
_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"


def national_id_check_char(first17: str) -> str:
    """GB 11643 check character of the first 17 digits of a resident identity number."""
    return _CHECK[sum(int(c) * w for c, w in zip(first17, _WEIGHTS)) % 11]


def normalize_national_id(value: str) -> str:
    """An 18-character resident identity number with a valid check character, upper-case X; else BillingError."""
    text = (value or "").strip().replace(" ", "").upper()
    if not re.fullmatch(r"[0-9]{17}[0-9X]", text) or national_id_check_char(text[:17]) != text[17]:
        raise BillingError("national_id_invalid")
    return text


def mask_national_id(national_id: str | None) -> str:
    """110105********1234 style: region code and the last four, never the birth date."""
    if not national_id:
        return ""
    return national_id[:6] + "*" * (len(national_id) - 10) + national_id[-4:]


def mask_name(name: str) -> str:
    """张* / 欧阳** / J*** : the first character only, as receipts print it."""
    name = (name or "").strip()
    return name[:1] + "*" * max(1, len(name) - 1) if name else ""


def mask_phone(phone: str | None) -> str:
    digits = (phone or "").strip()
    return digits[:3] + "****" + digits[-4:] if len(digits) >= 8 else digits


def encrypt_national_id(key: bytes, national_id: str) -> str:
    if len(key) != 32:
        raise ValueError("the personal-data key must be 32 bytes (AES-256)")
    nonce = os.urandom(12)
    cipher = AES.new(key, AES.MODE_GCM, nonce=nonce)
    cipher.update(_AAD)
    ciphertext, tag = cipher.encrypt_and_digest(national_id.encode("ascii"))
    return _PREFIX + base64.b64encode(nonce + ciphertext + tag).decode("ascii")


def decrypt_national_id(key: bytes, stored: str | None) -> str | None:
    """The clear number, or None if nothing is stored; ValueError if the key is wrong or the text altered."""
    if not stored:
        return None
    if not stored.startswith(_PREFIX):
        raise ValueError("unknown national ID encryption version")
    raw = base64.b64decode(stored[len(_PREFIX):])
    nonce, ciphertext, tag = raw[:12], raw[12:-16], raw[-16:]
    cipher = AES.new(key, AES.MODE_GCM, nonce=nonce)
    cipher.update(_AAD)
    return cipher.decrypt_and_verify(ciphertext, tag).decode("ascii")


def normalize_phone(value: str | None) -> str | None:
    text = (value or "").strip()
    if not text:
        return None
    if not re.fullmatch(r"\+?[0-9][0-9 \-]{4,28}", text):
        raise BillingError("phone_invalid", phone=text)
    return text


def normalize_holder(value: str | None) -> str:
    text = " ".join((value or "").split())
    if not text:
        raise BillingError("holder_missing")
    if len(text) > 100:
        raise BillingError("holder_too_long")
    return text
