"""The one error type of work orders: billing's (a code, parameters, the text in either language), with its words
in the catalogs' workorder.error.<code>."""
from __future__ import annotations

from billing.errors import BillingError


class WorkOrderError(BillingError):
    """Something the operator, the worker or the API client can fix; nothing was written. `code` is stable (the
    intake API returns it)."""

    @property
    def key(self) -> str:
        return f"workorder.error.{self.code}"
