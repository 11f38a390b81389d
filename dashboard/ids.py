"""Component ids, one constant per id, grouped by page; pages and callbacks import them from here.

One class per page (`from dashboard.ids import Sell as ID`), pattern-matching and computed ids as factory functions
of their class (`Sell.pick(address)`, `Sell.pick(dash.ALL)` in a callback, `Tariffs.price("peak")`); `Shared` holds
the few ids more than one page shows, `Shell` the navbar's, `Login` the plain-HTML sign-in page's. The values never
change: browser tests, assets/*.js and stored client state name them. tests/test_ids.py holds every page and
component module to it (no id spelled by hand, none shared between two classes)."""
from __future__ import annotations


class Overview:
    PAGE = "overview-page"
    KPIS = "ov-kpis"
    LEGEND = "ov-legend"
    MAP = "ov-map"                 # the TileMap; its `selected` prop is the clicked meter
    BUILDING = "ov-filter-building"
    FLOOR = "ov-filter-floor"
    STATE = "ov-filter-state"
    SEARCH = "ov-search"
    INTERVAL = "ov-interval"
    STORE = "ov-tiles-store"       # version, filter, tile-set signature and state codes of the map
    VERSION = "ov-version"         # the data version alone, so the side panel refreshes with the map
    PANEL = "ov-panel"
    PANEL_BODY = "ov-panel-body"
    PANEL_STATE = "ov-panel-state"
    PANEL_SELL = "ov-panel-sell"     # the link to the cashier desk, for operators who may sell
    PANEL_SETTINGS = "ov-panel-settings"   # the link to the meter's settings
    PANEL_CONTROL = "ov-panel-control"     # the link to the control page with this meter selected
    PANEL_CURVE = "ov-panel-curve"
    PANEL_BALANCE = "ov-panel-balance"
    PANEL_RELAY = "ov-panel-relay"
    FILTERS = "ov-filters"
    UPDATED = "ov-updated"

    @staticmethod
    def kpi(name: str) -> str:
        """One figure of the KPI row ("online", "lost", ...); its tooltip is kpi_tip(name)."""
        return f"ov-kpi-{name}"

    @staticmethod
    def kpi_tip(name: str) -> str:
        return f"ov-kpi-{name}-tip"

    @staticmethod
    def legend_count(state: str) -> str:
        """How many meters the legend counts in one map state."""
        return f"ov-legend-count-{state}"


class Work:
    PAGE = "work-page"
    CAN_DO = "work-can-do"
    ACCOUNT_LINK = "work-account"
    PASSWORD_LINK = "work-password"
    STATUS_LINK = "work-status"
    COMING = "work-coming"


class Meters:
    PAGE = "meters-page"
    GRID = "meters-grid"
    EXPORT = "meters-export"
    EXPORT_REQUEST = "meters-export-request"  # {"ids": [...], "filter": {...}}: the rows the grid shows
    DOWNLOAD = "meters-download"
    REFRESH = "meters-refresh"
    COUNT = "meters-count"
    MESSAGE = "meters-message"


class Sell:
    """/sell, the cashier desk (dashboard/components/cashier.py builds it, dashboard/pages/sell.py wires it)."""
    PAGE = "sell-page"
    SEARCH = "sell-search"
    FIND = "sell-find"
    MATCHES = "sell-matches"
    PICK = "sell-pick"                 # the type of one match's button: see pick()
    METER = "sell-meter"               # dcc.Store: the chosen meter's address
    CARD = "sell-card"
    METER_CARD = "sell-meter-card"
    NO_METER = "sell-no-meter"
    NO_MATCH = "sell-no-match"
    ADDRESS = "sell-address"
    BALANCE = "sell-balance"
    PURCHASE_COUNT = "sell-count"
    AMOUNT = "sell-amount"
    SELL = "sell-sell"
    MORE = "sell-more"                 # the accordion of refund and reversal
    REFUND_AMOUNT = "sell-refund-amount"
    REFUND_REASON = "sell-refund-reason"
    REFUND = "sell-refund"
    REVERSE_RECEIPT = "sell-reverse-receipt"
    REVERSE_REASON = "sell-reverse-reason"
    REVERSE = "sell-reverse"
    REQUEST = "sell-request"           # dcc.Store: request_id of the next sale or refund (a double click sells once)
    RESULT = "sell-result"
    FAILED = "sell-failed"
    WATCH = "sell-watch"               # dcc.Store: {"receipt", "state", "since"} of the entry being followed
    TICK = "sell-tick"
    PRINT = "sell-print"
    PRINTED = "sell-printed"
    COMMAND_STATE = "sell-command-state"
    RECEIPT_BLOCK = "receipt-block"    # the receipt with its command state and Print button (cashier.receipt_block)

    @staticmethod
    def pick(address) -> dict:
        """One match's button among several (`address`: the meter's number, or dash.ALL in a callback)."""
        return {"type": Sell.PICK, "index": address}


class Shared:
    """Ids more than one page shows: a refusal on any desk page, the page refused to a visitor, the receipt."""
    DESK_ERROR = "desk-error"          # cashier.error_alert's default, and any notice of a refusal
    FORBIDDEN = "forbidden-page"
    RECEIPT_SHEET = "receipt-sheet"

    @staticmethod
    def entry_state(state_id: str) -> str:
        """A receipt block's entry-state badge, beside its command-state badge `state_id`."""
        return f"{state_id}-entry"


class Customer:
    """The customer's page from their QR code (dashboard/selfservice.py, plain HTML): the language link and the
    site clock are named as the shell's, so a browser test finds them the same."""
    LOW_BALANCE = "low-balance"
    NOTICE = "customer-notice"         # a refused or expired code, a closed account


class App:
    """The root around every page (dashboard/app.py); its data- attributes carry assets/refusals.js's texts."""
    ROOT = "app-root"


class Shell:
    """The navbar and footer around every page (dashboard/components/shell.py); LANG_SWITCH and LOGOUT_FORM are
    also the plain-HTML sign-in and sign-out pages' (dashboard/auth.py), so a browser test finds them the same."""
    NAV_ITEM = "nav-item"              # the type of a page link inside a dropdown: see nav_item()
    NAV_GROUP = "nav-group"            # ... and of the dropdown itself: see nav_group()
    NAV_TOGGLER = "nav-toggler"
    NAV_COLLAPSE = "nav-collapse"
    LANG_SWITCH = "lang-switch"
    USER_MENU = "user-menu"
    LOGOUT_FORM = "logout-form"
    LOGOUT_CSRF = "logout-csrf"
    LOGOUT_LINK = "logout-link"
    SITE_CLOCK = "site-clock"          # the line under every page naming the zone its times are in
    LOCATION = "_pages_location"       # Dash pages' own dcc.Location (not ours to name; named once here)
    ALARM_BADGE = "nav-alarm-badge"    # unacknowledged open alarms, beside the Alarms link
    ALARM_TICK = "nav-alarm-tick"      # its refresh

    @staticmethod
    def nav_link(path: str) -> str:
        """A top-level page link: "/admin/users" -> "nav-admin-users", "/" -> "nav-home"."""
        return f"nav-{path.strip('/').replace('/', '-') or 'home'}"

    @staticmethod
    def nav_item(group, path) -> dict:
        """A page link inside the dropdown `group` (dash.ALL for either in a callback)."""
        return {"type": Shell.NAV_ITEM, "group": group, "path": path}

    @staticmethod
    def nav_group(group) -> dict:
        return {"type": Shell.NAV_GROUP, "group": group}


class Login:
    """The plain-HTML sign-in and sign-out pages (dashboard/auth.py)."""
    FORM = "login-form"
    USERNAME = "login-username"
    PASSWORD = "login-password"
    SUBMIT = "login-submit"
    ERROR = "login-error"
    NOTICE = "login-notice"
    NO_OPERATOR = "login-no-operator"
    LOGOUT_SUBMIT = "logout-submit"
    LOGOUT_ERROR = "logout-error"


class Accounts:
    """/accounts (dashboard/components/accounts.py builds it, dashboard/pages/accounts.py wires it)."""
    PAGE = "accounts-page"
    TABS = "acc-tabs"
    APPROVALS = "acc-approvals"              # the approvals tab's tab_id
    # opening
    BUILDING = "acc-building"
    ROOM = "acc-room"
    ROOM_METERS = "acc-room-meters"
    EXTRA_METERS = "acc-extra-meters"
    HOLDER = "acc-holder"
    PHONE = "acc-phone"
    NATIONAL_ID = "acc-national-id"
    TARIFF = "acc-tariff"
    OPEN = "acc-open"
    OPEN_RESULT = "acc-open-result"
    OPENED = "acc-opened"
    OPEN_PRINT = "acc-open-print"
    OPEN_STATE = "acc-open-state"
    OPEN_RECEIPT = "acc-open-receipt"
    # search and detail
    SEARCH = "acc-search"
    STATUS = "acc-status"
    FIND = "acc-find"
    GRID = "acc-grid"
    SELECTED = "acc-selected"                # dcc.Store: the account shown in the detail
    DETAIL = "acc-detail"
    DETAIL_CARD = "acc-detail-card"
    DETAIL_STATUS = "acc-detail-status"
    NATIONAL_ID_SHOWN = "acc-nid"
    ACTIONS = "acc-actions"
    ACTION_RESULT = "acc-action-result"
    ACTION_OK = "acc-action-ok"
    TICK = "acc-tick"
    ADD_BOX = "acc-add-box"
    ADD_METER = "acc-add-meter"
    ADD = "acc-add"
    TRANSFER_BOX = "acc-transfer-box"
    OLD_METER = "acc-old-meter"
    NEW_METER = "acc-new-meter"
    TRANSFER_MODE = "acc-transfer-mode"
    TRANSFER_AMOUNT = "acc-transfer-amount"
    TRANSFER_REASON = "acc-transfer-reason"
    TRANSFER = "acc-transfer"
    CLOSE_BOX = "acc-close-box"
    CLOSE_REASON = "acc-close-reason"
    CLOSE = "acc-close"
    CLOSE_CONFIRM = "acc-close-confirm"
    HAND_METER = "acc-hand-meter"
    HAND_AMOUNT = "acc-hand-amount"
    HAND_REASON = "acc-hand-reason"
    HAND = "acc-hand"
    HAND_CONFIRM = "acc-hand-confirm"
    CARD_BOX = "acc-card-box"
    CARD = "acc-card"
    CARD_SVG = "acc-card-svg"
    CARD_PREVIEW = "acc-card-preview"
    CARD_SAVED = "acc-card-saved"
    CARD_IMG = "acc-card-img"
    ENTRY = "acc-entry"                      # the type of one entry's receipt button: see entry()
    RECEIPT_NO = "acc-receipt-no"            # dcc.Store written by the entry buttons
    RECEIPT = "acc-receipt"
    RECEIPT_PRINT = "acc-receipt-print"
    RECEIPT_STATE = "acc-receipt-state"
    RECEIPT_BLOCK = "acc-receipt-block"
    PRINTED = "acc-printed"
    # openings and closings
    EV_KIND = "acc-ev-kind"
    EV_FROM = "acc-ev-from"
    EV_TO = "acc-ev-to"
    EV_BUILDING = "acc-ev-building"
    EV_OPERATOR = "acc-ev-operator"
    EV_TEXT = "acc-ev-text"
    EV_SEARCH = "acc-ev-search"
    EV_GRID = "acc-ev-grid"
    EV_COUNT = "acc-ev-count"
    # entered transfers awaiting a second operator
    APPROVAL_LIST = "acc-approval-list"
    APPROVAL_TABLE = "acc-approval-table"
    NO_APPROVALS = "acc-no-approvals"
    APPROVAL_PICK = "acc-approval-pick"
    APPROVAL_NOTE = "acc-approval-note"
    APPROVE = "acc-approve"
    REJECT = "acc-reject"
    APPROVAL_RESULT = "acc-approval-result"
    APPROVAL_REFRESH = "acc-approval-refresh"
    APPROVAL_OK = "acc-approval-ok"
    APPROVAL_ERROR = "acc-approval-error"

    @staticmethod
    def entry(receipt_no) -> dict:
        """One entry's receipt button in the detail (`receipt_no`, or dash.ALL in a callback)."""
        return {"type": Accounts.ENTRY, "index": receipt_no}


class Account:
    """/account: the signed-in operator's own password."""
    PAGE = "account-page"
    MUST_CHANGE = "account-must-change"
    CONTINUE = "account-continue"
    CURRENT = "account-current"
    NEW = "account-new"
    CONFIRM = "account-confirm"
    SAVE = "account-save"
    RESULT = "account-result"


class Users:
    """/admin/users (dashboard/components/admin.py builds it, dashboard/pages/admin_users.py wires it)."""
    PAGE = "users-page"
    GRID = "users-grid"
    RESULT = "users-result"
    ROLES = "users-roles"
    SET_ROLES = "users-set-roles"
    DEACTIVATE = "users-deactivate"
    ACTIVATE = "users-activate"
    TEMP_PASSWORD = "users-temp-password"
    RESET = "users-reset"
    NEW_USERNAME = "users-new-username"
    NEW_NAME = "users-new-name"
    NEW_PASSWORD = "users-new-password"
    NEW_ROLES = "users-new-roles"
    NEW_LANGUAGE = "users-new-language"
    ADD = "users-add"


class Roles:
    """/admin/roles: the role x permission matrix."""
    PAGE = "roles-page"
    GRID = "roles-grid"
    SAVE = "roles-save"
    RESULT = "roles-result"


class ApiClients:
    """/admin/api-clients."""
    PAGE = "api-clients-page"
    LIST = "api-list"
    NAME = "api-name"
    CREATE = "api-create"
    RESULT = "api-result"
    TOKEN = "api-token"                # the new client's token, shown once
    REVOKE_NAME = "api-revoke-name"
    REVOKE = "api-revoke"
    REVOKE_CONFIRM = "api-revoke-confirm"
    REVOKED = "api-revoked"


class Audit:
    """/audit, the operation log."""
    PAGE = "audit-page"
    OPERATOR = "audit-operator"
    ACTION = "audit-action"
    SINCE = "audit-since"
    UNTIL = "audit-until"
    SEARCH = "audit-search"
    RESULT = "audit-result"
    COUNT = "audit-count"
    GRID = "audit-grid"
    APPLIED = "audit-applied"          # dcc.Store: the filters of the rows shown
    EXPORT = "audit-export"
    DOWNLOAD = "audit-download"


class Records:
    """/records, the sales and refunds query."""
    PAGE = "records-page"
    FROM = "rec-from"
    TO = "rec-to"
    KINDS = "rec-kinds"
    OPERATOR = "rec-operator"
    BUILDING = "rec-building"
    TEXT = "rec-text"
    SEARCH = "rec-search"
    GRID = "rec-grid"
    COUNT = "rec-count"
    RESULT = "rec-result"
    APPLIED = "rec-applied"            # dcc.Store: the filters of the rows shown
    EXPORT = "rec-export"
    EXPORT_REQUEST = "rec-export-request"
    DOWNLOAD = "rec-download"
    EXPORTED = "rec-exported"


class Reconciliation:
    """/reconciliation: open alarms and the shadow-ledger comparison."""
    ALARMS = "recon-alarms"
    FIRST = "recon-first-day"
    LAST = "recon-last-day"
    RUN = "recon-run"
    SHADOW = "recon-shadow-grid"
    MESSAGE = "recon-message"
    NOTE = "recon-note"
    RESOLVE = "recon-resolve"
    RESOLVED = "recon-resolved"
    RESOLVED_OK = "recon-resolved-ok"


class Notifications:
    """/notifications: every SMS and its status, the dead letters and their resend."""
    STATE = "notify-state"
    GRID = "notify-grid"
    COUNTS = "notify-counts"
    REFRESH = "notify-refresh"
    RESEND = "notify-resend"
    RESULT = "notify-result"


class Alarms:
    """/alarms (open alarms, acknowledged with a note) and /alarms/history (query and XLSX export)."""
    KIND = "alarms-kind"
    LEVEL = "alarms-level"
    BUILDING = "alarms-building"
    GRID = "alarms-grid"
    COUNT = "alarms-count"
    REFRESH = "alarms-refresh"
    NOTE = "alarms-note"
    ACK = "alarms-ack"
    RESULT = "alarms-result"
    H_FROM = "alarms-h-from"
    H_TO = "alarms-h-to"
    H_BUILDING = "alarms-h-building"
    H_ROOM = "alarms-h-room"
    H_METER = "alarms-h-meter"
    H_KIND = "alarms-h-kind"
    H_LEVEL = "alarms-h-level"
    H_STATE = "alarms-h-state"
    H_SEARCH = "alarms-h-search"
    H_GRID = "alarms-h-grid"
    H_COUNT = "alarms-h-count"
    H_APPLIED = "alarms-h-applied"
    H_EXPORT = "alarms-h-export"
    H_DOWNLOAD = "alarms-h-download"
    H_RESULT = "alarms-h-result"


class MeterSettings:
    """/meter-settings?meter=<number>: one meter's alarm amounts and overload threshold, ours beside the meter's."""
    PAGE = "mset-page"
    METER = "mset-meter"
    SHOW = "mset-show"
    TABLE = "mset-table"
    ALARM1 = "mset-alarm1"
    ALARM2 = "mset-alarm2"
    OVERLOAD = "mset-overload"
    PUSH = "mset-push"
    RESULT = "mset-result"


class Parameters:
    """/admin/parameters: the site's default parameters."""
    PAGE = "params-page"
    SAVE = "params-save"
    RESULT = "params-result"

    @staticmethod
    def field(name: str) -> str:
        """The input of one parameter (billing.parameters.FIELDS)."""
        return f"params-{name.replace('_', '-')}"


class Tariffs:
    """/tariffs: edit, push, rename and retire tariffs."""
    PAGE = "tariffs-page"
    LIST = "tar-list"
    MODES = "tar-modes"                      # dcc.Store: {tariff id: mode} of the tariffs listed
    TARGET = "tar-target"
    NAME = "tar-name"
    MODE = "tar-mode"
    VALID_FROM = "tar-valid-from"
    NEW_ONLY = "tar-new-only"
    FLAT_BOX = "tar-flat-box"
    TOU_BOX = "tar-tou-box"
    TIER_BOX = "tar-tier-box"
    FLAT_PRICE = "tar-flat-price"
    SEGMENTS = "tar-segments"
    SAVE = "tar-save"
    SAVE_RESULT = "tar-save-result"
    SAVED = "tar-saved"
    ZERO_CONFIRM = "tar-zero-confirm"        # dcc.ConfirmDialog: save a price of 0 after all?
    EDIT_BOX = "tar-edit-box"
    PUSH_BOX = "tar-push-box"
    PUSH_TARIFF = "tar-push-tariff"
    SCOPE = "tar-scope"
    PUSH_BUILDING = "tar-push-building"
    PUSH_METERS = "tar-push-meters"
    ASSIGN = "tar-assign"
    PUSH = "tar-push"
    PUSH_RESULT = "tar-push-result"
    PUSHED = "tar-pushed"
    BATCH = "tar-batch"
    BATCH_VIEW = "tar-batch-view"
    BATCH_COUNTS = "tar-batch-counts"
    TICK = "tar-tick"
    MANAGE_TARIFF = "tar-manage-tariff"
    NEW_NAME = "tar-new-name"
    RENAME = "tar-rename"
    RENAMED = "tar-renamed"
    RETIRE = "tar-retire"
    RETIRE_CONFIRM = "tar-retire-confirm"
    RETIRED = "tar-retired"
    MANAGE_RESULT = "tar-manage-result"

    @staticmethod
    def price(name: str) -> str:
        """The price input of one time-of-use period ("sharp", "peak", "flat", "valley")."""
        return f"tar-price-{name}"

    @staticmethod
    def tier_bound(i: int) -> str:
        return f"tar-tier-bound-{i}"

    @staticmethod
    def tier_price(i: int) -> str:
        return f"tar-tier-price-{i}"

    @staticmethod
    def card(tariff_id) -> str:
        """One tariff's card in the list."""
        return f"tariff-{tariff_id}"


class QrLabels:
    """/qr: a building's printable QR labels."""
    PAGE = "qr-page"
    BUILDING = "qr-building"
    SHOW = "qr-show"
    SHEET = "qr-sheet"
    LABEL_SHEET = "qr-label-sheet"
    COUNT = "qr-count"
    PRINT = "qr-print"
    PRINTED = "qr-printed"


class Status:
    """/status: the figures /healthz reports and the scheduled jobs."""
    PAGE = "status-page"
    LAST_POLL = "status-last-poll"
    JOBS = "status-jobs"

    @staticmethod
    def figure(name: str) -> str:
        """One figure's card ("meters", "online", "lost", "buses-lost")."""
        return f"status-{name}"

    @staticmethod
    def job_field(job: str, field: str) -> str:
        """One line of a job's card ("last-run", "result", "duration", "next-run", "runs", "error")."""
        return f"status-job-{job}-{field}"


class SiteSetup:
    """/site (系统设置): the site's topology, its import, a gateway's test and the device profiles."""
    PAGE = "site-page"
    TABS = "site-tabs"
    RESULT = "site-result"
    LISTING = "site-listing"
    GROUP = "site-group"
    GROUP_NAME = "site-group-name"
    GROUP_SAVE = "site-group-save"
    BUILDING = "site-building"
    BUILDING_NAME = "site-building-name"
    BUILDING_GROUP = "site-building-group"
    BUILDING_SAVE = "site-building-save"
    ROOM = "site-room"
    ROOM_BUILDING = "site-room-building"
    ROOM_NAME = "site-room-name"
    ROOM_FLOOR = "site-room-floor"
    ROOM_SAVE = "site-room-save"
    GATEWAY = "site-gateway"
    GW_NAME = "site-gw-name"
    GW_HOST = "site-gw-host"
    GW_FRAMING = "site-gw-framing"
    GW_TIMEOUT = "site-gw-timeout"
    GW_RETRIES = "site-gw-retries"
    GW_BUSES = "site-gw-buses"
    GW_SAVE = "site-gw-save"
    TEST_PORT = "site-test-port"
    TEST_UNIT = "site-test-unit"
    TEST_PROFILE = "site-test-profile"
    TEST = "site-test"
    TEST_RESULT = "site-test-result"
    METER = "site-meter"
    METER_GATEWAY = "site-meter-gateway"
    METER_BUS = "site-meter-bus"
    METER_UNIT = "site-meter-unit"
    METER_PROFILE = "site-meter-profile"
    METER_ROOM = "site-meter-room"
    METER_ADD = "site-meter-add"
    METER_EDIT = "site-meter-edit"
    METER_MOVE = "site-meter-move"
    METER_RETIRE = "site-meter-retire"
    RETIRE_CONFIRM = "site-retire-confirm"
    UPLOAD = "site-upload"
    PREVIEW = "site-preview"
    IMPORT = "site-import"
    IMPORT_RESULT = "site-import-result"
    PROFILES = "site-profiles"
    PROFILE_UPLOAD = "site-profile-upload"
    PROFILE_RESULT = "site-profile-result"
    SAVED = "site-saved"

    @staticmethod
    def grid(name: str) -> str:
        """One of the page's grids ("buildings", "gateways", "meters", "preview")."""
        return f"site-grid-{name}"

    @staticmethod
    def profile_grid(profile: str, part: str) -> str:
        """A device profile's "blocks" or "points" grid."""
        return f"site-profile-{profile}-{part}"


class Control:
    """/control (batch operations) and /control/batch?id=<id> (a batch's progress): dashboard/pages/control.py."""
    PAGE = "control-page"
    BUILDING = "control-building"
    FLOOR = "control-floor"
    STATE = "control-state"
    ACCOUNT = "control-account"
    TARIFF = "control-tariff"
    NUMBERS = "control-numbers"
    SELECT_NUMBERS = "control-select-numbers"
    NUMBERS_MESSAGE = "control-numbers-message"
    GRID = "control-grid"
    COUNT = "control-count"
    LINKED = "control-linked"             # what the page says of the meter its link (?meter=) named
    REASON = "control-reason"
    ALARM1 = "control-alarm1"
    ALARM2 = "control-alarm2"
    OVERLOAD = "control-overload"
    EXPORT = "control-export"
    DOWNLOAD = "control-download"
    EXPORT_MESSAGE = "control-export-message"
    CONFIRM = "control-confirm"
    CONFIRM_BODY = "control-confirm-body"
    SEND = "control-send"
    SEND_ANYWAY = "control-send-anyway"
    CLOSE_CONFIRM = "control-close-confirm"
    PENDING = "control-pending"           # {"action": ...}: what the confirmation is about
    MESSAGE = "control-message"
    BATCHES = "control-batches"
    BATCH_PAGE = "control-batch-page"
    BATCH_ID = "control-batch-id"
    BATCH_BODY = "control-batch-body"
    BATCH_TICK = "control-batch-tick"
    BATCH_CANCEL = "control-batch-cancel"
    BATCH_RETRY = "control-batch-retry"
    BATCH_MESSAGE = "control-batch-message"

    @staticmethod
    def action(name) -> dict:
        """One action button (`name`: billing.control.ACTIONS key, or dash.ALL in a callback)."""
        return {"type": "control-action", "action": name}
