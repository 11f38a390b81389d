"""Values that come back from the browser (component values, stores, grid rows, the page router's location),
checked before a callback hands them to a service: a wrong type or size becomes None or an empty list, which
the callback answers with its own message; never an exception (a 500 the operator cannot read)."""
from __future__ import annotations

import datetime as dt
import functools
import inspect
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


def key_text(value, longest: int = 100) -> str | None:
    """A text that names a row (a receipt number, a user name, a batch, a building): a printable string of at
    most `longest` characters, or None; no stored name holds more, or a NUL (which PostgreSQL cannot be asked)."""
    if isinstance(value, str) and value and len(value) <= longest and value.isprintable():
        return value
    return None


def shown(value) -> str:
    """A value as a message quotes it: printable, at most 40 characters."""
    return "".join(ch if ch.isprintable() else "?" for ch in str(value)[:40])


def texts(value) -> list[str]:
    """The strings of a multi-select's list (other elements dropped)."""
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def mapping(value) -> dict:
    """A dcc.Store's object, or {} for anything else."""
    return value if isinstance(value, dict) else {}


# --- the callback request itself --------------------------------------------------------------------
def install_callback_checks(app) -> None:
    """Refuse, before Dash reads it, a /_dash-update-component request Dash would answer with a 500: a body
    that is not the shape the browser sends (400), a callback the app does not have (404), or a location the
    page router cannot read (400); and answer a file Dash does not serve under /_dash-component-suites/ with a
    404. Each refusal is JSON in the operator's language. A browser never sends such a request.

    The check wraps Dash's view, so it runs after every before_request hook (sign-in, same-origin check,
    callback permissions): a stranger learns nothing from it."""
    from dash.exceptions import DependencyException

    endpoint = app.config.routes_pathname_prefix + UPDATE_COMPONENT.lstrip("/")
    dispatch = app.server.view_functions[endpoint]

    @functools.wraps(dispatch)
    def checked(*args, **kwargs):
        refusal = _callback_refusal(request.get_json(silent=True), app.callback_map)
        return refusal if refusal is not None else dispatch(*args, **kwargs)

    if inspect.iscoroutinefunction(dispatch):  # Dash with dash[async]
        @functools.wraps(dispatch)
        async def checked(*args, **kwargs):  # noqa: F811
            refusal = _callback_refusal(request.get_json(silent=True), app.callback_map)
            return refusal if refusal is not None else await dispatch(*args, **kwargs)

    app.server.view_functions[endpoint] = checked
    app.server.register_error_handler(DependencyException, lambda _exc: _refusal(404, "not_served"))


def _refusal(status: int, code: str) -> Response:
    message = t(f"inputs.{code}", request_lang())
    return Response(json.dumps({"error": code, "message": message}, ensure_ascii=False), status=status,
                    mimetype="application/json")


def _callback_refusal(body, callbacks: dict) -> Response | None:
    if not isinstance(body, dict) or not isinstance(body.get("output"), str):
        return _refusal(400, "malformed_callback")
    from dash._callback import GLOBAL_CALLBACK_MAP
    spec = callbacks.get(body["output"]) or GLOBAL_CALLBACK_MAP.get(body["output"])
    if spec is None:
        return _refusal(404, "unknown_callback")
    inputs, state, changed = body.get("inputs"), body.get("state", []), body.get("changedPropIds", [])
    if not (isinstance(inputs, list) and isinstance(state, list) and len(inputs) == len(spec["inputs"])
            and len(state) == len(spec["state"]) and all(map(_dependency, inputs + state))
            and _outputs(body.get("outputs"), body["output"]) and isinstance(changed, list)
            and all(map(_changed_prop, changed)) and _outputs_defined(spec, body.get("outputs", []))):
        return _refusal(400, "malformed_callback")
    for dep in inputs:   # a pattern's input is a list of matches: never the page location
        if isinstance(dep, dict) and dep.get("id") == PAGES_LOCATION \
                and not _location_readable(dep.get("property"), dep.get("value")):
            return _refusal(400, "bad_location")
    return None


def _one_dependency(dep) -> bool:
    return (isinstance(dep, dict) and isinstance(dep.get("property"), str)
            and (isinstance(dep.get("id"), str) or (isinstance(dep.get("id"), dict) and bool(dep["id"]))))


def _dependency(dep) -> bool:
    """An input or state as Dash reads it: {id, property, value}, or a list of them (a pattern's matches)."""
    return all(map(_one_dependency, dep)) if isinstance(dep, list) else _one_dependency(dep)


def _outputs(outputs, output: str) -> bool:
    if output.startswith(".."):   # several outputs: one entry each
        return isinstance(outputs, list) and len(outputs) == output.count("...") + 1 and all(map(_dependency, outputs))
    return outputs is None or _dependency(outputs)


def _outputs_defined(spec: dict, outputs) -> bool:
    """The outputs name what the callback defines, shaped as the browser sends them: the same ids; for a pattern's
    output the ids of the components that matched, never the pattern itself, and a list of them for an ALL (or
    ALLSMALLER) pattern but one for a MATCH pattern, whose answer is one value. Dash checks the ids too
    (dash._validate.validate_output_spec) and the answer's shape after the callback ran, and answers a mismatch
    with a 500."""
    from dash.dependencies import Output
    from dash._validate import validate_output_spec
    from dash.exceptions import CallbackException
    defined = spec.get("output")
    if spec.get("no_output") or not isinstance(defined, (Output, list)) or not defined:
        return True
    try:
        validate_output_spec(defined, outputs, Output)
    except (CallbackException, KeyError, TypeError):
        return False
    pairs = zip(defined, outputs) if isinstance(defined, list) else [(defined, outputs)]
    return all(isinstance(sent, list) == _many(out.component_id) for out, sent in pairs)


def _many(ident) -> bool:
    """Does an output's id match any number of components (a pattern with ALL or ALLSMALLER)?"""
    from dash.dependencies import ALL, ALLSMALLER
    return isinstance(ident, dict) and any(v is ALL or v is ALLSMALLER for v in ident.values())


def _changed_prop(prop_id) -> bool:
    """"id.property", the id a pattern's JSON object when it starts with "{" (callback_context parses it)."""
    if not isinstance(prop_id, str) or "." not in prop_id:
        return False
    ident = prop_id.rsplit(".", 1)[0]
    if not ident.startswith("{"):
        return True
    try:
        return isinstance(json.loads(ident), dict)
    except ValueError:
        return False


def _location_readable(prop, value) -> bool:
    """Dash's page router (a built-in callback) fails on a pathname that is not a string starting with "/",
    or a search that is not a string."""
    if value is None:
        return True
    if prop == "pathname":
        return isinstance(value, str) and value.startswith("/")
    return prop != "search" or isinstance(value, str)
