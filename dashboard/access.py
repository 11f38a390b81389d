"""Which permissions open each page: read by the page's layout (which refuses without them) and by the navbar."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable


@dataclass(frozen=True)
class PageAccess:
    path: str
    any_of: tuple[str, ...]  # any one of these opens the page; empty: every signed-in operator

    def open_to(self, may: Callable[[str], bool]) -> bool:
        return not self.any_of or any(may(p) for p in self.any_of)

    def open_with(self, permissions: Iterable[str]) -> bool:
        """For a role's permission set (tests, the admin's view of a role)."""
        held = set(permissions)
        return self.open_to(held.__contains__)


OVERVIEW = PageAccess("/", ("meter.view",))
METERS = PageAccess("/meters", ("meter.view",))
SELL = PageAccess("/sell", ("sale.create", "sale.refund", "sale.reverse"))
ACCOUNTS = PageAccess("/accounts", ("account.open", "account.close", "transfer.entered"))  # + approvals
RECORDS = PageAccess("/records", ("report.view",))
RECONCILIATION = PageAccess("/reconciliation", ("report.view",))
TARIFFS = PageAccess("/tariffs", ("tariff.edit", "tariff.push"))
QR_LABELS = PageAccess("/qr", ("account.open",))
# A field worker's home until work orders exist: what they can do here now (their account, the status)
WORK = PageAccess("/work", ("workorder.execute",))
STATUS = PageAccess("/status", ())
AUDIT = PageAccess("/audit", ("audit.view",))
USERS = PageAccess("/admin/users", ("user.manage",))
ROLES = PageAccess("/admin/roles", ("user.manage",))
API_CLIENTS = PageAccess("/admin/api-clients", ("api_client.manage",))

# In the order an operator's home page is chosen: the first one they may open.
PAGES: tuple[PageAccess, ...] = (OVERVIEW, METERS, SELL, ACCOUNTS, RECORDS, RECONCILIATION, TARIFFS, QR_LABELS,
                                 WORK, STATUS, AUDIT, USERS, ROLES, API_CLIENTS)


def home_path(may: Callable[[str], bool]) -> str:
    """Where an operator lands on "/": the Overview if they may open it, else their first page."""
    return next((page.path for page in PAGES if page.open_to(may)), STATUS.path)
