"""The operation log in words: every action code the code writes has a name in both languages, and a row's
target, before/after and source read as words (dashboard/components/audit_text.py)."""
from __future__ import annotations

import ast
import datetime as dt
import json
from pathlib import Path
from zoneinfo import ZoneInfo

from dashboard.components.audit_text import LOGIN_REASONS, MONEY_ACTIONS, change_text, entry_words
from dashboard.i18n import LANGUAGES, catalog, t

ROOT = Path(__file__).resolve().parent.parent
CODE = ("app.py", "billing", "collectors", "core", "dashboard", "grid", "notify", "operators", "serve", "storage",
        "workorders")
SHANGHAI = ZoneInfo("Asia/Shanghai")


def _python_files():
    for name in CODE:
        path = ROOT / name
        yield from ([path] if path.suffix == ".py" else sorted(path.rglob("*.py")) if path.is_dir() else [])


def _money_kinds() -> set[str]:
    from billing.credit import ACTIONS
    return {spec.kind for spec in ACTIONS.values()}


def _api_endpoints() -> set[str]:
    import flask

    from billing.api import payment_api
    app = flask.Flask("endpoints")
    app.register_blueprint(payment_api(None))
    return {rule.endpoint.rsplit(".", 1)[-1] for rule in app.url_map.iter_rules() if "." in rule.endpoint} | {"unknown"}


# f-strings that build an action code, and every code each can give
TEMPLATES = {"billing.{spec.kind}": lambda: {f"billing.{k}" for k in _money_kinds()},
             "api.{(request.endpoint.rsplit('.', 1)[-1] if request.endpoint else 'unknown')}":
                 lambda: {f"api.{e}" for e in _api_endpoints()},
             "workorder.{action}": lambda: {f"workorder.{a}" for a in _workorder_actions()}}


def _workorder_actions() -> set[str]:
    from workorders.model import ACTIONS
    return set(ACTIONS)


class _Actions(ast.NodeVisitor):
    """Action codes given to the operation-log writers: storage.audit.record(action=...), Accounts.record(user,
    action, ...), record_denied (permission.denied) and websecurity.security_event(action, ...)."""

    def __init__(self, path: Path, tree: ast.Module):
        self.path, self.codes, self.unknown, self.params = path, set(), [], [set()]
        self.constants = {t.id: n.value.value for n in tree.body if isinstance(n, ast.Assign)
                          and isinstance(n.value, ast.Constant) and isinstance(n.value.value, str)
                          for t in n.targets if isinstance(t, ast.Name)}

    def visit_FunctionDef(self, node):
        self.params.append({a.arg for a in node.args.args + node.args.kwonlyargs})
        self.generic_visit(node)
        self.params.pop()

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Call(self, node: ast.Call):
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        keyword = next((k.value for k in node.keywords if k.arg == "action"), None)
        if name == "record" and keyword is not None:
            self._take(keyword)
        elif name == "record" and isinstance(node.func, ast.Attribute) and len(node.args) >= 2 \
                and isinstance(node.args[1], (ast.Constant, ast.IfExp)):
            self._take(node.args[1])            # Accounts.record(username, "audit.export", ...)
        elif name == "record_denied":
            self.codes.add("permission.denied")
        elif name == "security_event" and node.args:
            self._take(node.args[0])
        self.generic_visit(node)

    def _take(self, expr: ast.expr):
        if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
            self.codes.add(expr.value)
        elif isinstance(expr, ast.IfExp):
            self._take(expr.body)
            self._take(expr.orelse)
        elif isinstance(expr, ast.Name) and expr.id in self.constants:
            self.codes.add(self.constants[expr.id])
        elif isinstance(expr, ast.Name) and expr.id in self.params[-1]:
            pass                                # handed through: its callers are read too
        elif isinstance(expr, ast.JoinedStr) and ast.unparse(expr)[2:-1] in TEMPLATES:
            self.codes |= TEMPLATES[ast.unparse(expr)[2:-1]]()
        else:
            self.unknown.append(f"{self.path.relative_to(ROOT)}:{expr.lineno}: {ast.unparse(expr)}")


def _written_action_codes() -> tuple[set[str], list[str]]:
    codes, unknown = set(), []
    for path in _python_files():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        v = _Actions(path, tree)
        v.visit(tree)
        codes |= v.codes
        unknown += v.unknown
    return codes, unknown


def test_every_action_code_written_in_the_code_has_a_name_in_both_languages():
    codes, unknown = _written_action_codes()
    assert not unknown, f"action codes this test cannot read (add them to TEMPLATES): {unknown}"
    assert {"billing.sale", "auth.login", "permission.denied", "meter.export", "api.create_sale"} <= codes
    missing = {lang: sorted(c for c in codes if f"audit.actions.{c}" not in catalog(lang)) for lang in LANGUAGES}
    assert missing == {lang: [] for lang in LANGUAGES}


def test_the_money_actions_named_in_words_are_the_credit_gates():
    from billing.credit import ACTIONS
    assert set(MONEY_ACTIONS) == set(ACTIONS)


def test_the_sign_in_failure_reasons_named_in_words_are_those_the_operators_service_writes():
    source = (ROOT / "operators" / "service.py").read_text(encoding="utf-8")
    assert all(f'"{reason}"' in source for reason in LOGIN_REASONS)


def _sale_row() -> dict:
    return {"ts": dt.datetime(2026, 3, 1, 8, 0), "operator": "cashier", "action": "billing.sale",
            "target": "meter:202611210001", "before": None, "source": "desk",
            "after": json.dumps({"account_id": 12, "action": "sale", "amount": "50.00", "purchase_count": 3,
                                 "reason": None, "receipt_no": "S2026030100000001"}, sort_keys=True)}


def test_a_sale_reads_in_english_words_and_site_time():
    row = entry_words(_sale_row(), "en", SHANGHAI)
    assert (row["ts"], row["action"], row["target"], row["source"]) == (
        "2026-03-01 16:00:00", "Sale", "Meter 202611210001", "Cashier desk")
    assert row["after"].split("\n") == ["Account: 12", "Action: sale", "Amount: 50.00", "Purchase count: 3",
                                        "Reason: —", "Receipt no.: S2026030100000001"]


def test_a_sale_reads_in_chinese_words():
    row = entry_words(_sale_row(), "zh", SHANGHAI)
    assert (row["action"], row["target"], row["source"]) == ("售电", "电表 202611210001", "收费台")
    assert "金额：50.00" in row["after"].split("\n") and "购电次数：3" in row["after"].split("\n")
    assert "{" not in row["after"] and "amount" not in row["after"]


def test_an_account_target_and_a_role_target_read_as_names():
    account = entry_words({**_sale_row(), "action": "billing.open_account", "target": "account:12"}, "zh", SHANGHAI)
    role = entry_words({**_sale_row(), "action": "role.permissions", "target": "cashier"}, "zh", SHANGHAI)
    assert (account["target"], role["target"]) == ("账户 12", t("admin.role.cashier", "zh"))


def test_a_network_address_and_an_operator_name_stay_as_they_are():
    row = entry_words({**_sale_row(), "action": "operator.add", "target": "eve", "source": "10.0.0.9"}, "en", SHANGHAI)
    assert (row["target"], row["source"]) == ("eve", "10.0.0.9")


def test_a_time_inside_a_change_is_shown_in_site_time():
    text = change_text(json.dumps({"failed_logins": 5, "locked_until": "2026-03-01 08:15:00"}), "en", SHANGHAI)
    assert text.split("\n") == ["Wrong passwords: 5", "Locked until: 2026-03-01 16:15:00"]


def test_yes_no_roles_and_languages_read_as_words():
    text = change_text(json.dumps({"active": False, "language": "zh", "roles": ["cashier", "analyst"]}), "zh",
                       SHANGHAI)
    assert text.split("\n") == ["在用：否", "语言：中文", f"角色：{t('admin.role.cashier', 'zh')}、{t('admin.role.analyst', 'zh')}"]


def test_an_unknown_field_and_an_unknown_action_show_their_keys():
    row = entry_words({**_sale_row(), "action": "future.thing", "after": json.dumps({"widget_count": 7})},
                      "zh", SHANGHAI)
    assert (row["action"], row["after"]) == ("future.thing", "widget_count：7")


def test_a_change_that_is_not_json_is_shown_as_stored():
    assert change_text("not json {", "en", SHANGHAI) == "not json {"


def _written_fields() -> set[str]:
    """The keys of every dict literal the code hands the operation log as before / after (and the details of a
    security event)."""
    fields = set()
    for path in _python_files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name not in ("record", "security_event"):
                continue
            for k in node.keywords:
                if k.arg in ("before", "after") and isinstance(k.value, ast.Dict):
                    fields |= {key.value for key in k.value.keys if isinstance(key, ast.Constant)}
                elif name == "security_event" and k.arg:
                    fields.add(k.arg)
    return fields


def test_every_field_the_code_writes_into_a_change_has_a_name_in_both_languages():
    fields = _written_fields()
    assert {"amount", "roles", "locked_until", "reason", "permission"} <= fields
    missing = {lang: sorted(f for f in fields if f"audit.field.{f}" not in catalog(lang)) for lang in LANGUAGES}
    assert missing == {lang: [] for lang in LANGUAGES}


def test_an_operator_named_like_a_fixed_target_keeps_the_name():
    for name in ("demo", "meter", "ledger"):
        row = entry_words({**_sale_row(), "action": "operator.add", "target": name}, "en", SHANGHAI)
        assert row["target"] == name


def test_a_setting_is_named_as_a_setting():
    row = entry_words({**_sale_row(), "action": "billing.setting", "target": "billing.hoarding_limit",
                       "before": json.dumps("1000.00"), "after": json.dumps("800.00")}, "zh", SHANGHAI)
    assert (row["target"], row["before"], row["after"]) == ("囤积金额上限", "1000.00", "800.00")
