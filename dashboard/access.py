"""Which permissions open each page: read by the page's layout (which refuses without them) and by the navbar."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

from core import permissions as P


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


OVERVIEW = PageAccess("/", (P.METER_VIEW,))
METERS = PageAccess("/meters", (P.METER_VIEW,))
SELL = PageAccess("/sell", (P.SALE_CREATE, P.SALE_REFUND, P.SALE_REVERSE))
ACCOUNTS = PageAccess("/accounts", (P.ACCOUNT_OPEN, P.ACCOUNT_CLOSE, P.TRANSFER_ENTERED))  # + approvals
RECORDS = PageAccess("/records", (P.REPORT_VIEW,))
RECONCILIATION = PageAccess("/reconciliation", (P.REPORT_VIEW,))
ALARMS = PageAccess("/alarms", (P.ALARM_VIEW, P.ALARM_ACK))
ALARM_HISTORY = PageAccess("/alarms/history", (P.ALARM_VIEW,))
NOTIFICATIONS = PageAccess("/notifications", (P.NOTIFICATION_VIEW, P.NOTIFICATION_RESEND))
TARIFFS = PageAccess("/tariffs", (P.TARIFF_EDIT, P.TARIFF_PUSH))
METER_SETTINGS = PageAccess("/meter-settings", (P.METER_VIEW, P.SETTINGS_PUSH))
PARAMETERS = PageAccess("/admin/parameters", (P.SETTINGS_EDIT,))
QR_LABELS = PageAccess("/qr", (P.ACCOUNT_OPEN,))
# A field worker's home until work orders exist: what they can do here now (their account, the status)
WORK = PageAccess("/work", (P.WORKORDER_EXECUTE,))
STATUS = PageAccess("/status", ())
AUDIT = PageAccess("/audit", (P.AUDIT_VIEW,))
USERS = PageAccess("/admin/users", (P.USER_MANAGE,))
ROLES = PageAccess("/admin/roles", (P.USER_MANAGE,))
API_CLIENTS = PageAccess("/admin/api-clients", (P.API_CLIENT_MANAGE,))
SITE_SETUP = PageAccess("/site", (P.SITE_EDIT,))
CONTROL = PageAccess("/control", (P.RELAY_BATCH, P.RELAY_COMMAND))

# In the order an operator's home page is chosen: the first one they may open.
PAGES: tuple[PageAccess, ...] = (OVERVIEW, METERS, SELL, ACCOUNTS, RECORDS, RECONCILIATION, ALARMS, ALARM_HISTORY,
                                 NOTIFICATIONS, TARIFFS,
                                 QR_LABELS, WORK, STATUS, AUDIT, USERS, ROLES, API_CLIENTS, SITE_SETUP,
                                 METER_SETTINGS, PARAMETERS, CONTROL)


def home_path(may: Callable[[str], bool]) -> str:
    """Where an operator lands on "/": the Overview if they may open it, else their first page."""
    return next((page.path for page in PAGES if page.open_to(may)), STATUS.path)
