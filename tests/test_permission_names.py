"""Permission names: one constant each in core.permissions, and the checks name them from there."""
from __future__ import annotations

import pathlib
import re

from core import permissions as P
from operators.service import DEFAULT_ROLE_PERMISSIONS, PERMISSIONS

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_every_constant_is_a_permission_operators_can_be_granted():
    assert set(P.ALL) <= set(PERMISSIONS)


def test_every_permission_has_a_constant():
    assert set(PERMISSIONS) <= set(P.ALL)
    assert len(P.ALL) == len(set(P.ALL))


def test_every_role_is_granted_only_named_permissions():
    for role, granted in DEFAULT_ROLE_PERMISSIONS.items():
        assert granted <= set(P.ALL), role


def test_no_callback_page_rule_or_billing_check_spells_a_permission_by_hand():
    literal = re.compile(r'"(' + "|".join(re.escape(name) for name in P.ALL) + r')"')
    # audit_text.py names operation-log actions; "meter.export" is one of those as well as a permission
    files = [path for path in (*ROOT.glob("dashboard/**/*.py"), *ROOT.glob("billing/*.py"), ROOT / "operators/service.py")
             if path.name != "audit_text.py"]
    spelled = [f"{path.relative_to(ROOT)}:{n}" for path in files
               for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
               if literal.search(line) and not line.lstrip().startswith("#")]
    assert spelled == []
