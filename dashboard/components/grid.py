"""What every dash-ag-grid shares: AG Grid's own texts (filters, pagination, empty state) in the operator's language,
and how a column of numbers looks."""
from __future__ import annotations

from dashboard.i18n import catalog

# Numbers right-aligned under a header that stays left-aligned: AG Grid's "numericColumn" type also right-aligns
# the header, which puts its filter button at the column's left edge, far from the label; the records grid's
# amount column then read as an empty, unlabelled column beside it.
NUMBER_COLUMN = {"filter": "agNumberColumnFilter", "cellClass": "ag-right-aligned-cell"}


def grid_locale(lang: str) -> dict[str, str]:
    """AG Grid localeText from the catalog section [grid]."""
    prefix = "grid."
    return {k[len(prefix):]: v for k, v in catalog(lang).items() if k.startswith(prefix)}
