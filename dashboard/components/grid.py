"""What every dash-ag-grid shares: AG Grid's own texts (filters, pagination, empty state) in the operator's language."""
from __future__ import annotations

from dashboard.i18n import catalog


def grid_locale(lang: str) -> dict[str, str]:
    """AG Grid localeText from the catalog section [grid]."""
    prefix = "grid."
    return {k[len(prefix):]: v for k, v in catalog(lang).items() if k.startswith(prefix)}
