"""Text filters of every search: literal substring and equality matches that behave alike on DuckDB and PostgreSQL."""
from __future__ import annotations

import sqlalchemy as sa

from core.phone import search_digits


def contains_text(column, text: str, *, any_case: bool = False):
    """`column` holds `text` anywhere, literally: a typed % or _ (or the escape character) matches itself, not
    any text (SQL LIKE with every wildcard in `text` escaped, and ESCAPE). Searches call this, never like()
    with an f-string. A text with a NUL matches nothing: no stored text holds one, and PostgreSQL refuses it."""
    if "\x00" in text:
        return sa.false()
    if any_case:
        return sa.func.lower(column).contains(text.lower(), autoescape=True)
    return column.contains(text, autoescape=True)


def phone_matches(text: str):
    """An account whose phone holds the digits of `text`, when `text` looks like (part of) a phone number:
    "13800138000", "138 0013 8000" and "+86 138-0013-8000" all find "+86 138-0013-8000" (account.phone_digits)."""
    from storage.schema import account
    digits = search_digits(text)
    return contains_text(account.c.phone_digits, digits) if digits else sa.false()


def equals_text(column, text: str):
    """`column` = `text`; a text with a NUL equals nothing (PostgreSQL cannot even be asked)."""
    return sa.false() if "\x00" in text else column == text
