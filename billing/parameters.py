"""Default parameters (默认参数设置): the site's defaults an admin keeps on /admin/parameters, each change audited with
its before and after. Stored in the shared `setting` table (billing.settings keys, plus the poll intervals and the
operators' alarm SMS numbers, which override the configuration file's once set here)."""
from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, replace
from decimal import Decimal

import sqlalchemy as sa

from billing import settings as S
from billing.context import BillingContext
from billing.credit import Actor, authorize
from billing.errors import BillingError
from billing.meter_settings import parse_overload
from billing.money import parse_amount
from core import permissions as P
from storage import audit
from storage.billing import get_setting, set_setting, tariff_by_id

POLL_INTERVAL = "collector.poll_interval_s"
STATE_POLL_INTERVAL = "collector.state_poll_interval_s"
ALARM_NUMBERS = "sms.alarm_numbers"
MIN_INTERVAL_S, MAX_INTERVAL_S = 10, 31 * 86400
MAX_EXPIRY_H = 24 * 31
MAX_ALARM_NUMBERS = 20
_PHONE = re.compile(r"\+?[0-9]{5,20}")


@dataclass(frozen=True)
class Parameters:
    overload_w: int
    alarm1: Decimal
    alarm2: Decimal
    default_tariff_id: int | None
    hoarding_limit: Decimal | None       # None: no limit
    poll_interval_s: float               # the full reading
    state_poll_interval_s: float         # the fast state poll
    alarm_numbers: tuple[str, ...]       # operators' phones for alarm SMS
    command_expiry_h: float

    def words(self) -> dict:
        """As the operation log keeps it (JSON-friendly)."""
        out = asdict(self)
        out["alarm_numbers"] = list(self.alarm_numbers)
        return out


FIELDS = tuple(Parameters.__dataclass_fields__)


def read_parameters(conn: sa.Connection, *, poll_interval_s: float, state_poll_interval_s: float,
                    alarm_numbers: tuple[str, ...] = ()) -> Parameters:
    """The parameters in force; the keyword arguments are the configuration file's, used until set here."""
    alarm1, alarm2 = S.alarm_amounts(conn)
    poll = get_setting(conn, POLL_INTERVAL)
    state = get_setting(conn, STATE_POLL_INTERVAL)
    numbers = get_setting(conn, ALARM_NUMBERS)
    return Parameters(
        overload_w=int(S.meter_limits(conn)["overload_w"]), alarm1=alarm1, alarm2=alarm2,
        default_tariff_id=S.default_tariff_id(conn), hoarding_limit=S.hoarding_limit(conn),
        poll_interval_s=float(poll) if poll else float(poll_interval_s),
        state_poll_interval_s=float(state) if state else float(state_poll_interval_s),
        alarm_numbers=tuple(json.loads(numbers)) if numbers is not None else tuple(alarm_numbers),
        command_expiry_h=S.command_expiry_hours(conn))


def _field(field: str, exc: BillingError) -> BillingError:
    exc.field = field
    return exc


def _interval(field: str, value) -> float:
    try:
        seconds = parse_amount(value, decimals=0, maximum=Decimal(MAX_INTERVAL_S))
    except BillingError:
        seconds = None
    if seconds is None or seconds < MIN_INTERVAL_S:
        raise _field(field, BillingError("interval_invalid", value=_shown(value), low=MIN_INTERVAL_S,
                                         high=MAX_INTERVAL_S))
    return float(seconds)


def _numbers(value) -> tuple[str, ...]:
    parts = [p for p in re.split(r"[\s,;，；、]+", str(value or "").strip()) if p]
    if len(parts) > MAX_ALARM_NUMBERS:
        raise _field("alarm_numbers", BillingError("alarm_numbers_too_many", limit=MAX_ALARM_NUMBERS))
    for p in parts:
        if not _PHONE.fullmatch(p):
            raise _field("alarm_numbers", BillingError("phone_invalid", phone=_shown(p)))
    return tuple(dict.fromkeys(parts))


def parse_parameters(conn: sa.Connection, current: Parameters, form: dict) -> Parameters:
    """The form's values (text as typed; absent keys keep the current value) as Parameters, or the first bad
    field's BillingError (its `field` names the input)."""
    values = {}
    for field in FIELDS:
        if field not in form:
            continue
        raw = form[field]
        try:
            if field in ("alarm1", "alarm2"):
                values[field] = parse_amount(raw, allow_zero=True)
            elif field == "overload_w":
                values[field] = parse_overload(raw)
            elif field == "hoarding_limit":
                values[field] = None if str(raw or "").strip() == "" else parse_amount(raw)
            elif field == "default_tariff_id":
                tid = None if raw in (None, "") else (int(raw) if str(raw).isdecimal() and len(str(raw)) < 10 else -1)
                if tid is not None and (tid < 0 or tariff_by_id(conn, tid) is None):
                    raise BillingError("tariff_unknown", tariff=_shown(raw))
                values[field] = tid
            elif field in ("poll_interval_s", "state_poll_interval_s"):
                values[field] = _interval(field, raw)
            elif field == "alarm_numbers":
                values[field] = _numbers(raw)
            elif field == "command_expiry_h":
                try:
                    hours = parse_amount(raw, decimals=0, maximum=Decimal(MAX_EXPIRY_H))
                except BillingError:
                    raise BillingError("expiry_invalid", value=_shown(raw), limit=MAX_EXPIRY_H) from None
                values[field] = float(hours)
        except BillingError as exc:
            raise _field(field, exc) from None
    new = replace(current, **values)
    if new.alarm2 > new.alarm1:
        raise _field("alarm2", BillingError("alarm2_above_alarm1", alarm1=new.alarm1, alarm2=new.alarm2))
    if new.state_poll_interval_s > new.poll_interval_s:
        raise _field("state_poll_interval_s", BillingError("state_poll_slower", state=int(new.state_poll_interval_s),
                                                           full=int(new.poll_interval_s)))
    if not all(math.isfinite(v) for v in (new.poll_interval_s, new.state_poll_interval_s, new.command_expiry_h)):
        raise _field("poll_interval_s", BillingError("interval_invalid", value="", low=MIN_INTERVAL_S,
                                                     high=MAX_INTERVAL_S))
    return new


def _stored(field: str, value) -> tuple[str, str]:
    """(setting key, stored text) of one parameter."""
    if field == "alarm1":
        return S.ALARM1, str(value)
    if field == "alarm2":
        return S.ALARM2, str(value)
    if field == "overload_w":
        return S.OVERLOAD_W, str(int(value))
    if field == "default_tariff_id":
        return S.DEFAULT_TARIFF, "" if value is None else str(value)
    if field == "hoarding_limit":
        return S.HOARDING_LIMIT, "" if value is None else str(value)
    if field == "poll_interval_s":
        return POLL_INTERVAL, str(int(value))
    if field == "state_poll_interval_s":
        return STATE_POLL_INTERVAL, str(int(value))
    if field == "alarm_numbers":
        return ALARM_NUMBERS, json.dumps(list(value))
    return S.COMMAND_EXPIRY_H, str(int(value))


def save_parameters(ctx: BillingContext, actor: Actor, form: dict, *, poll_interval_s: float,
                    state_poll_interval_s: float, alarm_numbers: tuple[str, ...] = ()) -> tuple[Parameters, list[str]]:
    """Check and store the form's parameters: (the parameters now in force, the fields that changed). One
    operation-log row per changed field with its before and after; nothing written when any field is refused."""
    authorize(ctx, actor, P.SETTINGS_EDIT, "admin.parameters")
    now = ctx.now()
    with ctx.engine.begin() as conn:
        current = read_parameters(conn, poll_interval_s=poll_interval_s, state_poll_interval_s=state_poll_interval_s,
                                  alarm_numbers=alarm_numbers)
        new = parse_parameters(conn, current, form)
        changed = [f for f in FIELDS if getattr(new, f) != getattr(current, f)]
        for field in changed:
            key, text = _stored(field, getattr(new, field))
            set_setting(conn, key, text, now)
            before, after = current.words()[field], new.words()[field]
            audit.record(conn, operator=actor.username[:100], action="settings.parameter", target=key, ts=now,
                         before={field: before}, after={field: after}, source=actor.address or actor.channel)
    return new, changed


def _shown(value) -> str:
    text = "".join(ch if ch.isprintable() else "?" for ch in str(value))
    return text[:20] + ("…" if len(text) > 20 else "")
