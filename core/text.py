"""The application's texts: one catalog per language (core/locales/<lang>.toml), the same keys in both.

Pages, exports, receipts, the API's error messages and the command line look their texts up here; domain
errors carry a code and parameters and are put into words where they are shown (`error_text`).
"""
from __future__ import annotations

import tomllib
from functools import lru_cache
from pathlib import Path

LANGUAGES = ("en", "zh")
DEFAULT = "en"
_DIR = Path(__file__).resolve().parent / "locales"


def _flatten(table: dict, prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in table.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = str(v)
    return out


@lru_cache(maxsize=None)
def catalog(lang: str) -> dict[str, str]:
    return _flatten(tomllib.loads((_DIR / f"{lang}.toml").read_text(encoding="utf-8")))


CATALOG = {lang: catalog(lang) for lang in LANGUAGES}


def t(key: str, lang: str = DEFAULT, **fmt) -> str:
    """The text of `key` in `lang`, formatted with `fmt`; an unknown key raises (tests catch it)."""
    text = catalog(lang if lang in LANGUAGES else DEFAULT)[key]
    return text.format(**fmt) if fmt else text


def permission_label(permission: str, lang: str = DEFAULT) -> str:
    """A permission's name as an operator reads it (the catalog's admin.permissions.<name>), else its code."""
    return catalog(lang if lang in LANGUAGES else DEFAULT).get(f"admin.permissions.{permission}", permission)


def missing_keys() -> dict[str, set[str]]:
    """Keys present in one catalog and absent from another."""
    all_keys = set().union(*(catalog(lang).keys() for lang in LANGUAGES))
    return {lang: all_keys - set(catalog(lang)) for lang in LANGUAGES if all_keys - set(catalog(lang))}


def error_text(error, lang: str = DEFAULT) -> str:
    """A domain error (anything with `key` and `params`, such as billing.errors.BillingError) in `lang`: its
    catalog text formatted with its parameters; a permission is named as the operator reads it."""
    params = {k: str(v) for k, v in getattr(error, "params", {}).items()}
    if "permission" in params:
        params.setdefault("permission_label", permission_label(params["permission"], lang))
    return t(error.key, lang, **params)


def quoted(value, most: int = 40) -> str:
    """A value as a message may quote it: printable (others shown as "?"), at most `most` characters."""
    return "".join(ch if ch.isprintable() else "?" for ch in str(value)[:most])
