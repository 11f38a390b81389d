"""Component ids: defined once per page in dashboard/ids.py; no page or component module spells one by hand."""
from __future__ import annotations

import ast
import pathlib
import re

import dash

from dashboard import ids

ROOT = pathlib.Path(__file__).resolve().parents[1]
# Every page and component module takes its ids from dashboard/ids.py (a new one is guarded as soon as it exists),
# and so does the sign-in page's HTML in dashboard/auth.py.
MOVED = tuple(sorted(str(p.relative_to(ROOT)) for d in ("dashboard/pages", "dashboard/components")
                     for p in (ROOT / d).glob("*.py"))) + (
    "dashboard/app.py", "dashboard/auth.py", "dashboard/selfservice.py")
# where a component id is given: Input/Output/State's first argument and these keywords (tab_id and item_id name
# a tab or accordion item to its container, not a component)
ID_KEYWORDS = re.compile(r"^(id|ident|html_for|target|(?!tab_|item_)\w+_id)$")


def _pages() -> list[type]:
    return [v for v in vars(ids).values() if isinstance(v, type) and v.__module__ == ids.__name__]


def _spelled_in_code(rel: str) -> list[str]:
    """Ids written as a literal (or an f-string) where a component id is given, and as such a parameter's default."""
    tree = ast.parse((ROOT / rel).read_text(encoding="utf-8"))
    given = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = getattr(node.func, "id", getattr(node.func, "attr", ""))
            if name in ("Input", "Output", "State") and node.args:
                given.append(node.args[0])
            given += [k.value for k in node.keywords if k.arg and ID_KEYWORDS.match(k.arg)]
        elif isinstance(node, (ast.FunctionDef, ast.Lambda)):
            positional = node.args.posonlyargs + node.args.args
            given += [d for a, d in zip(positional[len(positional) - len(node.args.defaults):], node.args.defaults)
                      if ID_KEYWORDS.match(a.arg)]
            given += [d for a, d in zip(node.args.kwonlyargs, node.args.kw_defaults)
                      if d is not None and ID_KEYWORDS.match(a.arg)]
    spelled = []
    for value in given:
        if isinstance(value, ast.Dict):   # a pattern-matching id: its type
            value = next((v for k, v in zip(value.keys, value.values)
                          if isinstance(k, ast.Constant) and k.value == "type"), None)
        if isinstance(value, ast.JoinedStr) or (isinstance(value, ast.Constant) and isinstance(value.value, str)):
            spelled.append(f"{rel}:{value.lineno} {ast.unparse(value)}")
    return spelled


def test_no_two_components_share_an_id():
    values = [v for page in _pages() for k, v in vars(page).items() if k.isupper() and isinstance(v, str)]
    assert len(values) == len(set(values))


def test_the_moved_pages_spell_no_component_id_by_hand():
    spelled = []
    for rel in MOVED:
        text = (ROOT / rel).read_text(encoding="utf-8")
        for n, line in enumerate(text.splitlines(), 1):
            for found in re.findall(r'\b(?:id|for)="([a-z][a-z0-9-]*)"', line):
                spelled.append(f"{rel}:{n} {found}")
        spelled += _spelled_in_code(rel)
    assert spelled == []


def test_a_pattern_id_factory_names_its_page_type():
    assert ids.Sell.pick("202611210001") == {"type": "sell-pick", "index": "202611210001"}
    assert ids.Accounts.entry(dash.ALL) == {"type": "acc-entry", "index": dash.ALL}
    assert ids.Shell.nav_item("billing", "/records") == {"type": "nav-item", "group": "billing", "path": "/records"}
    assert ids.Shell.nav_group("system") == {"type": "nav-group", "group": "system"}


def test_computed_ids_keep_the_values_browser_tests_and_scripts_name():
    assert ids.Shell.nav_link("/admin/users") == "nav-admin-users" and ids.Shell.nav_link("/") == "nav-home"
    assert ids.Tariffs.price("peak") == "tar-price-peak" and ids.Tariffs.tier_bound(0) == "tar-tier-bound-0"
    assert ids.Tariffs.tier_price(2) == "tar-tier-price-2" and ids.Tariffs.card(7) == "tariff-7"
    assert ids.Status.figure("buses-lost") == "status-buses-lost"
    assert ids.Status.job_field("poll", "last-run") == "status-job-poll-last-run"
    assert ids.Overview.kpi("lost") == "ov-kpi-lost" and ids.Overview.kpi_tip("lost") == "ov-kpi-lost-tip"
    assert ids.Overview.legend_count("online") == "ov-legend-count-online"
    assert ids.Shared.entry_state(ids.Sell.COMMAND_STATE) == "sell-command-state-entry"
