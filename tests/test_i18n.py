"""Both languages everywhere: catalogs agree, and third-party widgets get our texts."""
from __future__ import annotations


def test_every_grid_speaks_the_operators_language():
    from dashboard.components.grid import grid_locale
    en, zh = grid_locale("en"), grid_locale("zh")
    assert set(en) == set(zh) and {"noRowsToShow", "page", "nextPage", "contains"} <= set(en)
    assert zh["noRowsToShow"] != en["noRowsToShow"]
