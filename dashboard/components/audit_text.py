"""How an operation-log row reads: action names, targets, before/after fields, sources and times in the
operator's language and the site's time zone (the log itself keeps codes, JSON and naive UTC).

Words come from the catalogs ([audit.actions], [audit.target], [audit.field], [audit.value], [source]);
something the catalogs do not name yet (a log row written by an older or newer version) shows as stored."""
from __future__ import annotations

import datetime as dt
import json

from core.clock import show_stored_text, show_time
from dashboard.i18n import LANGUAGES, catalog, t

# target "kind:value" (billing, storage) and "callback name" (dashboard.auth refusals)
TARGET_KINDS = ("meter", "account", "tariff", "building", "api_client", "alarm", "transfer_request",
                "building_group", "room", "gateway", "area")
# targets written as a fixed word, by the action that writes it (an operator called "demo" stays "demo")
LITERAL_TARGETS = {"ledger": "billing.records_export", "meters": "meter.export", "operation log": "audit.export",
                   "demo": "billing.demo_seed", "demo site": "topology.import"}
# fields whose values are codes with their own words elsewhere in the catalogs
_ROLE_FIELDS = {"roles"}
_STATE_FIELDS = {"state", "status", "failed_trip"}
# the credit gate's action names (billing.credit.ACTIONS) and why a sign-in failed (operators.service)
MONEY_ACTIONS = ("sale", "refund", "reversal_of_sale", "reversal_of_refund", "transfer_read", "transfer_entered",
                 "closing_refund", "settle_by_hand")
LOGIN_REASONS = ("unknown operator", "wrong password", "inactive", "locked")


def _label(key: str, lang: str) -> str | None:
    return catalog(lang if lang in LANGUAGES else "en").get(key)


def action_label(code: str, lang: str) -> str:
    """"billing.sale" -> "Sale" / "售电"; an action without a label shows its code."""
    return _label(f"audit.actions.{code}", lang) or code


def family_label(family: str, lang: str) -> str:
    """"billing." (every billing.* action) -> "Billing (all)"."""
    return _label(f"audit.family.{family.rstrip('.')}", lang) or f"{family}*"


def target_label(target: str | None, action: str, lang: str) -> str:
    """"meter:202611210001" -> "Meter 202611210001"; a role's name as the role; anything else as stored."""
    if not target:
        return ""
    kind, sep, value = target.partition(":")
    if sep and kind in TARGET_KINDS:
        return t(f"audit.target.{kind}", lang, value=value)
    if target.startswith("callback "):
        return t("audit.target.callback", lang, value=target.removeprefix("callback "))
    if action == "role.permissions":
        return _label(f"admin.role.{target}", lang) or target
    if LITERAL_TARGETS.get(target) == action or (action == "billing.setting" and target.startswith("billing.")):
        return _label(f"audit.target.{target}", lang) or target
    return target


def source_label(source: str | None, lang: str) -> str:
    """desk / api / demo / cli ... in words; a network address as it is."""
    if not source:
        return ""
    return _label(f"source.{source}", lang) or source


def field_label(key: str, lang: str) -> str:
    return _label(f"audit.field.{key}", lang) or key


def value_text(key: str, value, lang: str, zone: dt.tzinfo) -> str:
    """One before/after value in words: yes/no, lists, roles, states, stored times in site time."""
    if value is None or value == "":
        return t("audit.value.empty", lang)
    if isinstance(value, bool):
        return t("admin.yes" if value else "admin.no", lang)
    if isinstance(value, list):
        return t("audit.list_separator", lang).join(value_text(key, v, lang, zone) for v in value) \
            or t("audit.value.empty", lang)
    if isinstance(value, dict):
        return "; ".join(_line(k, v, lang, zone) for k, v in value.items()) or t("audit.value.empty", lang)
    text = str(value)
    if key in _ROLE_FIELDS:
        return _label(f"admin.role.{text}", lang) or text
    if key == "language":
        return _label("lang.name", text) if text in LANGUAGES else text
    if key == "permission":
        return _label(f"admin.permissions.{text}", lang) or text
    if key in _STATE_FIELDS:
        return _label(f"cashier.state.{text}", lang) or text
    if key == "mode":
        return _label(f"tariffs.mode.{text}", lang) or text
    if key == "kind":
        return _label(f"billing.kind.{text}", lang) or _label(f"command.kind.{text}", lang) or text
    if (key == "action" and text in MONEY_ACTIONS) or (key == "reason" and text in LOGIN_REASONS):
        return t(f"audit.value.{text}", lang)
    when = show_stored_text(text, zone)
    return text if when is None else when


def change_text(stored: str | None, lang: str, zone: dt.tzinfo) -> str:
    """The log's before/after JSON as "field: value" lines; text that is not a JSON object stays as it is."""
    if not stored:
        return ""
    try:
        data = json.loads(stored)
    except ValueError:
        return stored
    if not isinstance(data, dict):
        return value_text("", data, lang, zone)
    return "\n".join(_line(k, v, lang, zone) for k, v in data.items())


def _line(key: str, value, lang: str, zone: dt.tzinfo) -> str:
    return t("audit.field_line", lang, field=field_label(key, lang), value=value_text(key, value, lang, zone))


def entry_words(e: dict, lang: str, zone: dt.tzinfo) -> dict:
    """One operation-log row (storage.audit.search) as people read it: time in site time, words for codes."""
    return {"ts": show_time(e["ts"], zone), "operator": e["operator"], "action": action_label(e["action"], lang),
            "action_code": e["action"], "target": target_label(e["target"], e["action"], lang),
            "before": change_text(e["before"], lang, zone), "after": change_text(e["after"], lang, zone),
            "source": source_label(e["source"], lang)}
