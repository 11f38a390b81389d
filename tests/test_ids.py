"""Component ids: defined once per page in dashboard/ids.py; the modules moved there spell none by hand."""
from __future__ import annotations

import pathlib
import re

from dashboard import ids

ROOT = pathlib.Path(__file__).resolve().parents[1]
# Modules whose ids all come from dashboard/ids.py (the others still define their own: see ids.py's docstring).
MOVED = ("dashboard/pages/sell.py", "dashboard/components/cashier.py", "dashboard/pages/overview.py",
         "dashboard/components/overview.py", "dashboard/pages/meters.py", "dashboard/components/meter_grid.py",
         "dashboard/pages/work.py", "dashboard/components/work.py")
# the alert any desk page shows for a refusal (components/cashier.py error_alert); the page refused when signed out
SHARED = {"desk-error", "forbidden-page"}


def _pages() -> list[type]:
    return [v for v in vars(ids).values() if isinstance(v, type) and v.__module__ == ids.__name__]


def test_no_two_components_share_an_id():
    values = [v for page in _pages() for k, v in vars(page).items() if k.isupper() and isinstance(v, str)]
    assert len(values) == len(set(values))


def test_the_moved_pages_spell_no_component_id_by_hand():
    spelled = []
    for rel in MOVED:
        text = (ROOT / rel).read_text(encoding="utf-8")
        for n, line in enumerate(text.splitlines(), 1):
            for found in re.findall(r'\bid="([a-z][a-z0-9-]*)"', line):
                if found not in SHARED:
                    spelled.append(f"{rel}:{n} {found}")
    assert spelled == []


def test_a_pattern_id_factory_names_its_page_type():
    assert ids.Sell.pick("202611210001") == {"type": "sell-pick", "index": "202611210001"}
