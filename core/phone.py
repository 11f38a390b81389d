"""Phone numbers as stored for search: the digits alone, whatever spaces, dashes or country code they were typed with."""
from __future__ import annotations

import re
import unicodedata

_COUNTRY_PREFIXES = ("+86", "0086")   # China's country code, typed before a number dialled from abroad
_SEARCHABLE = re.compile(r"\+?[0-9 ()./\-]+")


def phone_digits(text: str | None) -> str | None:
    """"+86 138-0013-8000" -> "13800138000": the number's digits (full-width ones read as 0-9), without a
    leading +86 / 0086 (or an 86 typed without its + before an 11-digit mobile number). None: no digit at all."""
    if not text:
        return None
    typed = unicodedata.normalize("NFKC", str(text)).strip()
    digits = "".join(ch for ch in typed if "0" <= ch <= "9")
    if typed.startswith("+86"):
        digits = digits[2:]
    elif typed.startswith("0086"):
        digits = digits[4:]
    elif len(digits) == 13 and digits.startswith("861"):
        digits = digits[2:]
    return digits or None


def search_digits(text: str | None, least: int = 3) -> str | None:
    """The digits to look for in stored numbers when a search looks like (part of) a phone number: only digits,
    spaces, dashes, dots, parentheses and a leading +, with at least `least` digits. None for any other text."""
    if not text:
        return None
    typed = unicodedata.normalize("NFKC", str(text)).strip()
    if not _SEARCHABLE.fullmatch(typed):
        return None
    digits = phone_digits(typed)
    return digits if digits and len(digits) >= least else None
