"""Two UI languages: one catalog per language (dashboard/locales/<lang>.toml), the same keys in both.

The language of a request: the signed-in operator's saved choice, else the `wl_lang` cookie,
else the browser's Accept-Language, else English. /lang/<code> switches (see dashboard/app.py).
"""
from __future__ import annotations

import tomllib
from functools import lru_cache
from pathlib import Path

LANGUAGES = ("en", "zh")
DEFAULT = "en"
COOKIE = "wl_lang"
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


def request_lang() -> str:
    """The language of the current Flask request (outside a request: English)."""
    from flask import has_request_context, request
    if not has_request_context():
        return DEFAULT
    try:
        from flask_login import current_user
        saved = getattr(current_user, "language", None) if current_user and current_user.is_authenticated else None
    except Exception:  # flask-login not set up on this app
        saved = None
    if saved in LANGUAGES:
        return saved
    cookie = request.cookies.get(COOKIE)
    if cookie in LANGUAGES:
        return cookie
    best = request.accept_languages.best_match(["zh", "zh-CN", "en"]) if request.accept_languages else None
    return "zh" if best and best.startswith("zh") else DEFAULT
