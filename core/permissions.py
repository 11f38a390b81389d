"""Permission names, one constant each: every check (callbacks, page rules, billing's authorize) names them
from here; operators/service.py describes them (PERMISSIONS) and grants them to roles."""
from __future__ import annotations

ACCOUNT_OPEN = "account.open"
ACCOUNT_CLOSE = "account.close"
SALE_CREATE = "sale.create"
SALE_REFUND = "sale.refund"
SALE_REVERSE = "sale.reverse"
TRANSFER_ENTERED = "transfer.entered"
RELAY_COMMAND = "relay.command"
RELAY_BATCH = "relay.batch"
TARIFF_EDIT = "tariff.edit"
TARIFF_PUSH = "tariff.push"
SETTINGS_EDIT = "settings.edit"
USER_MANAGE = "user.manage"
AUDIT_VIEW = "audit.view"
REPORT_VIEW = "report.view"
REPORT_EXPORT = "report.export"
METER_VIEW = "meter.view"
METER_EXPORT = "meter.export"
WORKORDER_DISPATCH = "workorder.dispatch"
WORKORDER_EXECUTE = "workorder.execute"
WORKORDER_REVIEW = "workorder.review"     # approve, reject and archive completed work orders
API_CLIENT_MANAGE = "api_client.manage"
ALARM_RESOLVE = "alarm.resolve"
ALARM_VIEW = "alarm.view"
ALARM_ACK = "alarm.ack"
SETTINGS_PUSH = "settings.push"
SITE_EDIT = "site.edit"
NOTIFICATION_VIEW = "notification.view"
NOTIFICATION_RESEND = "notification.resend"
SETTLEMENT_CLOSE = "settlement.close"   # close another cashier's day (日结); a cashier closes their own with sale.create
GRID_CONTROL = "grid.control"   # transformer areas: open / close outlet breakers, trip the area's arrears meters (遥控)
GRID_ADJUST = "grid.adjust"     # transformer areas: set the tap and capacity mode, switch automatic control (遥调)
GRID_EDIT = "grid.edit"         # transformer areas: nameplate, terminal, master meter, meters fed, cameras

# Every name above, in the order operators/service.py describes them.
ALL: tuple[str, ...] = tuple(value for name, value in list(globals().items())
                             if name.isupper() and isinstance(value, str))
