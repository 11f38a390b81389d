"""No page logs an error, as each role other than the administrator uses the pages its navbar offers (the walk and its
checks: tests/test_console_errors.py; a file of its own so the two walks run on two workers side by side)."""
from __future__ import annotations

import pytest

from operators.service import ROLES
from tests.test_console_errors import _reachable, _walk, rt  # noqa: F401  (rt: the module's demo site)


@pytest.mark.parametrize("role, lang", [(role, "zh" if i % 2 else "en") for i, role in enumerate(ROLES)
                                        if role != "admin"])
def test_every_page_a_role_may_open_used_by_it_logs_no_error(rt, browser, role, lang):  # noqa: F811
    paths = _reachable(role)
    assert paths, role
    problems = _walk(rt, browser, role, paths, lang)
    assert problems == [], "\n".join(problems)


def test_the_cashier_pages_used_by_a_cashier_log_no_error_in_both_languages(rt, browser):  # noqa: F811
    """The cashier's other language (the walk above gives it English): every page it may open, so each is also
    measured on a phone in both languages."""
    paths = _reachable("cashier")
    assert {"/sell", "/accounts", "/records", "/qr", "/meters"} <= set(paths)
    assert ROLES.index("cashier") % 2 == 0   # the walk above: English
    problems = _walk(rt, browser, "cashier", paths, "zh")
    assert problems == [], "\n".join(problems)
