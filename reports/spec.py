"""What a report is (a spec: name, title, permission, parameters, typed columns, one run function) and the one
place that reads a report's parameters, for the command line, the API and the pages alike: days as "2026-11-01"
only, first <= last, a range limit per report, known by/group values, places and names as printable text.
Anything else is a ReportError: a message in the reader's language, nothing run."""
from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from billing.errors import BillingError
from core import permissions as P
from core.text import quoted as _shown

COLUMN_KINDS = ("text", "money", "kwh", "number", "int", "date", "datetime", "percent", "bool")
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_METER = re.compile(r"[0-9]{12}")
TEXT_MAX = 100
FIRST_YEAR, LAST_YEAR = 2000, 2100
CHANNELS = ("desk", "api", "demo")
# What a caller may name, per parameter; every other key is no parameter of a report (and is refused).
PARAMETERS = ("from", "to", "by", "group", "place", "building", "floor", "room", "operator", "channel", "meter")


class ReportError(BillingError):
    """A report's parameters cannot be read (or the report cannot run): the catalogs' report.error.<code>."""

    @property
    def key(self) -> str:
        return f"report.error.{self.code}"

    @property
    def http_status(self) -> int:
        """The reports API's answer: no such report 404, anything else a request to fix (400)."""
        return 404 if self.code == "report_unknown" else 400


@dataclass(frozen=True)
class Column:
    key: str                    # the row's key (and the JSON/CSV name)
    kind: str                   # COLUMN_KINDS
    width: float = 14           # characters, in the workbook
    total: bool = False         # summed in the totals row
    api: bool = True            # in the API's rows (the documented shapes); every column goes to files and pages

    def __post_init__(self):
        if self.kind not in COLUMN_KINDS:
            raise ValueError(f"column {self.key}: kind {self.kind!r}")


@dataclass(frozen=True)
class ReportParams:
    first_day: dt.date | None = None
    last_day: dt.date | None = None
    by: str | None = None
    group: str | None = None
    building: str | None = None
    floor: int | None = None
    room: str | None = None
    operator: str | None = None
    channel: str | None = None
    meter: str | None = None

    def shown(self) -> dict:
        """The parameters given, as text (the workbook's filter row, the operation log)."""
        out = {"from": self.first_day, "to": self.last_day, "by": self.by, "group": self.group,
               "building": self.building, "floor": self.floor, "room": self.room, "operator": self.operator,
               "channel": self.channel, "meter": self.meter}
        return {k: str(v) for k, v in out.items() if v is not None}


@dataclass(frozen=True)
class ReportSpec:
    name: str                               # the command line's and the API's name: sales, lost-meters ...
    columns: tuple[Column, ...]
    run: Callable                           # run(env, params) -> list[dict]: ONE service function, rows shaped
    takes: frozenset[str] = frozenset()     # parameter names it reads (PARAMETERS); from/to come together
    by: tuple[str, ...] = ()                # values of `by` (the first is the default)
    groups: tuple[str, ...] = ()            # values of `group` ("" allowed: none) ; group columns: group_columns
    group_columns: Mapping[str, tuple[Column, ...]] = field(default_factory=dict)
    required: frozenset[str] = frozenset()  # parameters it cannot run without (beyond from/to)
    max_days: int = 366
    max_days_by: Mapping[str, int] = field(default_factory=dict)   # a tighter limit for some `by` (hour)
    default_group: str | None = None
    chart: str | None = None                # the column a page charts per period (None: no chart)
    permission: str = P.REPORT_VIEW
    export_permission: str = P.REPORT_EXPORT

    @property
    def title_key(self) -> str:
        return f"report.name.{self.name}"

    @property
    def ranged(self) -> bool:
        return "from" in self.takes

    def columns_for(self, params: ReportParams) -> tuple[Column, ...]:
        """The columns of a run with these parameters: the group's columns after the first (the period)."""
        extra = self.group_columns.get(params.group or "", ())
        if not extra:
            return self.columns
        return (self.columns[0], *extra, *self.columns[1:])


def read_params(spec: ReportSpec, raw: Mapping[str, object], today: dt.date) -> ReportParams:
    """The parameters of a run of `spec` from strings (a query string, the command line, a page's filters);
    ReportError for anything it cannot read. Empty values count as not given."""
    given = {k: v for k, v in raw.items() if v not in (None, "")}
    for key, value in given.items():
        if key not in PARAMETERS or key not in spec.takes and not (key in ("building", "floor", "room")
                                                                   and "place" in spec.takes):
            raise ReportError("parameter_unknown", name=_shown(key), report=spec.name)
        if not isinstance(value, str):
            raise ReportError("parameter_invalid", name=key, value=_shown(str(value)))
    first = last = None
    if spec.ranged:
        if "from" not in given or "to" not in given:
            raise ReportError("range_missing")
        first, last = _day("from", given["from"]), _day("to", given["to"])
        if last < first:
            raise ReportError("range_reversed", first=first.isoformat(), last=last.isoformat())
    by = given.get("by", spec.by[0] if spec.by else None)
    if spec.by and by not in spec.by:
        raise ReportError("by_invalid", value=_shown(by), allowed=", ".join(spec.by))
    group = given.get("group", spec.default_group)
    if group is not None and group not in spec.groups:
        raise ReportError("group_invalid", value=_shown(group), allowed=", ".join(spec.groups) or "-")
    if spec.ranged:
        most = spec.max_days_by.get(by or "", spec.max_days)
        if (last - first).days + 1 > most:
            raise ReportError("range_too_long", days=(last - first).days + 1, most=most)
    building, floor, room = _place(given)
    for name in spec.required:
        if name not in given:
            raise ReportError("parameter_missing", name=name)
    meter = given.get("meter")
    if meter is not None and not _METER.fullmatch(meter):
        raise ReportError("meter_invalid", value=_shown(meter))
    channel = given.get("channel")
    if channel is not None and channel not in CHANNELS:
        raise ReportError("channel_invalid", value=_shown(channel), allowed=", ".join(CHANNELS))
    operator = _text("operator", given.get("operator"))
    del today  # days in the future are allowed: they read as empty
    return ReportParams(first, last, by, group, building, floor, room, operator, channel, meter)


def _day(name: str, text: str) -> dt.date:
    if not (text.isascii() and _DAY.fullmatch(text)):
        raise ReportError("day_invalid", name=name, value=_shown(text))
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        raise ReportError("day_invalid", name=name, value=_shown(text)) from None
    if not FIRST_YEAR <= day.year <= LAST_YEAR:
        raise ReportError("day_out_of_range", name=name, value=text, first=FIRST_YEAR, last=LAST_YEAR)
    return day


def _text(name: str, value: str | None) -> str | None:
    if value is None:
        return None
    text = value.strip()
    if not text or len(text) > TEXT_MAX or not text.isprintable():
        raise ReportError("text_invalid", name=name, value=_shown(value), most=TEXT_MAX)
    return text


def _place(given: Mapping[str, str]) -> tuple[str | None, int | None, str | None]:
    """building / floor / room, given apart (the API) or as one place "Building 1/3/101" (the command line)."""
    if "place" in given:
        if any(k in given for k in ("building", "floor", "room")):
            raise ReportError("place_twice")
        parts = [p.strip() for p in given["place"].split("/")]
        if len(parts) > 3:
            raise ReportError("place_invalid", value=_shown(given["place"]))
        given = dict(zip(("building", "floor", "room"), parts))
    building = _text("building", given.get("building"))
    floor_text = given.get("floor")
    floor = None
    if floor_text is not None:
        digits = floor_text.strip()
        if not (digits.isascii() and re.fullmatch(r"-?[0-9]{1,4}", digits)):
            raise ReportError("floor_invalid", value=_shown(floor_text))
        floor = int(digits)
    room = _text("room", given.get("room"))
    if (floor is not None or room is not None) and building is None:
        raise ReportError("place_needs_building")
    return building, floor, room
