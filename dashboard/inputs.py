"""Values that come back from the browser (component values, stores, grid rows, the page router's location),
checked before a callback hands them to a service: a wrong type or size becomes None or an empty list, which
the callback answers with its own message; never an exception (a 500 the operator cannot read)."""
from __future__ import annotations

import datetime as dt
import json

from flask import Response, request

from dashboard.i18n import request_lang, t

MAX_ID = 2 ** 31 - 1   # ids are INTEGER columns (int4 on PostgreSQL): a larger number names no row
FIRST_DAY, LAST_DAY = dt.date(1900, 1, 1), dt.date(2999, 12, 31)  # a form's days; beyond them no clock converts
UPDATE_COMPONENT = "/_dash-update-component"
PAGES_LOCATION = "_pages_location"


def record_id(value) -> int | None:
    """A row id: a positive int, or a string of ASCII digits, up to MAX_ID; anything else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        value = value.strip()
        if not (value.isascii() and value.isdigit() and len(value) <= 10):
            return None
        value = int(value)
    if isinstance(value, int) and 0 < value <= MAX_ID:
        return value
    return None


def record_ids(value) -> list[int]:
    """The valid row ids of a list that came back from the browser (others dropped), in order, once each."""
    if not isinstance(value, list):
        return []
    ids = (record_id(v) if isinstance(v, int) else None for v in value)
    return list(dict.fromkeys(i for i in ids if i is not None))


class BadValue(ValueError):
    """A typed value the page cannot read; str() is the value as typed (cut short), for the page's message."""

    def __init__(self, value):
        super().__init__(str(value)[:40])


def day(value) -> dt.date | None:
    """A day typed or picked (an ISO date, or the date part of a date and time); None when empty; BadValue when
    it is not a date, or lies outside FIRST_DAY..LAST_DAY."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise BadValue(value)
    try:
        found = dt.date.fromisoformat(value.strip()[:10])
    except ValueError:
        raise BadValue(value) from None
    if not FIRST_DAY <= found <= LAST_DAY:
        raise BadValue(value)
    return found


def moment(value) -> dt.datetime | None:
    """A date and time typed or picked (ISO, the site's local time, no zone); None when empty; BadValue as `day`."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise BadValue(value)
    try:
        found = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise BadValue(value) from None
    if not FIRST_DAY <= found.date() <= LAST_DAY:
        raise BadValue(value)
    return found.replace(tzinfo=None)


def text(value) -> str | None:
    """A string as typed, or None for anything else (a number, a list, a dict, null)."""
    return value if isinstance(value, str) else None


def texts(value) -> list[str]:
    """The strings of a multi-select's list (other elements dropped)."""
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def mapping(value) -> dict:
    """A dcc.Store's object, or {} for anything else."""
    return value if isinstance(value, dict) else {}


# --- the page router ---------------------------------------------------------------------------------
def refuse_malformed_page_location() -> Response | None:
    """A Flask before_request hook: Dash's page router (a built-in callback) fails with a 500 on a pathname
    that is not a string starting with "/" or a search that is not a string. A browser never sends one;
    whoever does gets a 400 in their language."""
    if request.path != UPDATE_COMPONENT or request.method != "POST":
        return None
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list):
        return None
    for dep in body["inputs"]:
        if not isinstance(dep, dict) or dep.get("id") != PAGES_LOCATION:
            continue
        value = dep.get("value")
        prop = dep.get("property")
        if value is None:
            continue
        bad = (prop == "pathname" and not (isinstance(value, str) and value.startswith("/"))) or \
              (prop == "search" and not isinstance(value, str))
        if bad:
            message = t("inputs.bad_location", request_lang())
            return Response(json.dumps({"error": "bad_location", "message": message}, ensure_ascii=False),
                            status=400, mimetype="application/json")
    return None
