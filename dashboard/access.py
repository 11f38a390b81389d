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
# A field worker's phone: my orders, one order, messages with the office
WORK = PageAccess("/work", (P.WORKORDER_EXECUTE,))
WORK_ORDER = PageAccess("/work/order", (P.WORKORDER_EXECUTE,))   # reached from /work, not from the navbar
MESSAGES = PageAccess("/messages", (P.WORKORDER_EXECUTE, P.WORKORDER_DISPATCH, P.WORKORDER_REVIEW))
TERMINALS = PageAccess("/workorders/terminals", (P.WORKORDER_DISPATCH, P.WORKORDER_REVIEW))
STATUS = PageAccess("/status", ())
AUDIT = PageAccess("/audit", (P.AUDIT_VIEW,))
USERS = PageAccess("/admin/users", (P.USER_MANAGE,))
ROLES = PageAccess("/admin/roles", (P.USER_MANAGE,))
API_CLIENTS = PageAccess("/admin/api-clients", (P.API_CLIENT_MANAGE,))
SITE_SETUP = PageAccess("/site", (P.SITE_EDIT,))
GRID_AREA_EDIT = PageAccess("/grid/areas/edit", (P.GRID_EDIT,))   # a transformer area's record, cameras
GRID_SIMULATOR = PageAccess("/grid/simulator", (P.SITE_EDIT,))   # the demo's simulated terminals: faults on demand
CONTROL = PageAccess("/control", (P.RELAY_BATCH, P.RELAY_COMMAND))
# Analysis (issue 11): the managers' dashboard and the analysts' energy views
DASHBOARD = PageAccess("/dashboard", (P.REPORT_VIEW,))
ANALYSIS_ENERGY = PageAccess("/analysis/energy", (P.REPORT_VIEW,))
ANALYSIS_HISTORY = PageAccess("/analysis/history", (P.REPORT_VIEW,))
ANALYSIS_INSTRUMENT = PageAccess("/analysis/instrument", (P.REPORT_VIEW,))
ANALYSIS_INSIGHTS = PageAccess("/analysis/insights", (P.REPORT_VIEW,))
ANALYSIS_ANOMALIES = PageAccess("/analysis/anomalies", (P.REPORT_VIEW,))
GRID_LINE_LOSS = PageAccess("/grid/line-loss", (P.REPORT_VIEW,))
# The transformer areas live (issue 13): every area's state, one area's telemetry, trends and controls (the controls'
# own permissions, grid.control and grid.adjust, are checked by grid.control on the server)
GRID_AREAS = PageAccess("/grid/areas", (P.METER_VIEW,))
GRID_AREA = PageAccess("/grid/area", (P.METER_VIEW,))      # from the list, not the navbar
# The report centre (issue 11): the hub, any registered report, the cashiers' day-end settlement
REPORTS = PageAccess("/reports", (P.REPORT_VIEW,))
REPORT_VIEW = PageAccess("/reports/view", (P.REPORT_VIEW,))
SETTLEMENT = PageAccess("/reports/settlement", (P.REPORT_VIEW,))
# Work orders, the office (issue 12): the order list, one order, the review queue, the KPIs
WORKORDERS = PageAccess("/workorders", (P.WORKORDER_DISPATCH, P.WORKORDER_REVIEW))
WORKORDER = PageAccess("/workorders/order", (P.WORKORDER_DISPATCH, P.WORKORDER_REVIEW))  # from the list, not the navbar
WORKORDER_REVIEW = PageAccess("/workorders/review", (P.WORKORDER_REVIEW,))
WORKORDER_KPIS = PageAccess("/workorders/kpis", (P.REPORT_VIEW, P.WORKORDER_DISPATCH, P.WORKORDER_REVIEW))

# In the order an operator's home page is chosen: the first one they may open.
PAGES: tuple[PageAccess, ...] = (OVERVIEW, METERS, SELL, ACCOUNTS, RECORDS, RECONCILIATION, ALARMS, ALARM_HISTORY,
                                 NOTIFICATIONS, TARIFFS,
                                 QR_LABELS, WORK, STATUS, AUDIT, USERS, ROLES, API_CLIENTS, SITE_SETUP,
                                 METER_SETTINGS, PARAMETERS, CONTROL,
                                 DASHBOARD, ANALYSIS_ENERGY, ANALYSIS_HISTORY, ANALYSIS_INSTRUMENT,
                                 ANALYSIS_INSIGHTS, ANALYSIS_ANOMALIES, GRID_LINE_LOSS, GRID_AREAS, GRID_AREA,
                                 REPORTS, REPORT_VIEW, SETTLEMENT,
                                 WORKORDERS, WORKORDER_REVIEW, WORKORDER_KPIS,
                                 MESSAGES, TERMINALS, GRID_AREA_EDIT)
PAGES += (GRID_SIMULATOR,)   # the demo's simulator page (/grid/simulator)


def home_path(may: Callable[[str], bool]) -> str:
    """Where an operator lands after signing in: the managers' dashboard for those who read reports and neither
    sell nor control (managers, analysts); else the Overview if they may open it, else their first page."""
    if DASHBOARD.open_to(may) and not any(may(p) for p in (P.SALE_CREATE, P.RELAY_COMMAND, P.RELAY_BATCH)):
        return DASHBOARD.path
    return next((page.path for page in PAGES if page.open_to(may)), STATUS.path)
