"""Two UI languages for the web app: the catalogs live in core.text; this module adds the request's language.

The language of a request: the signed-in operator's saved choice, else the `wl_lang` cookie,
else the browser's Accept-Language, else English. /lang/<code> switches (see dashboard/app.py).
"""
from __future__ import annotations

from core.text import CATALOG, DEFAULT, LANGUAGES, catalog, error_text, missing_keys, permission_label, t  # noqa: F401

COOKIE = "wl_lang"


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
