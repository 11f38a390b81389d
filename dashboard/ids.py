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
    """The worker's phone: my orders (/work)."""
    PAGE = "work-page"
    LIST = "work-orders"
    EMPTY = "work-empty"
    MESSAGES_LINK = "work-messages"
    FIELD = "work-field"          # data-csrf, data-defer-bytes ...: what assets/field.js reads
    SHOW_CLOSED = "work-show-closed"
    MORE = "work-more"            # the rest of a long list, drawn on a tap (dashboard.components.field.FIRST_CARDS)
    REST = "work-rest"            # those orders' cards, kept undrawn until then

    @staticmethod
    def order_card(order_id: int) -> str:
        return f"work-order-{order_id}"


class FieldOrder:
    """One order on the worker's phone (/work/order?id=N)."""
    PAGE = "field-order-page"
    BODY = "field-order-body"
    VERSION = "field-order-version"       # bumped after a change: the body is drawn again
    ORDER_ID = "field-order-id"
    MESSAGE = "field-order-message"
    STATE = "field-order-state"
    FLAG = "field-order-flag"
    MAP_LINK = "field-order-map"
    METER = "field-order-meter"
    # transitions the worker takes
    ACTION = "field-order-action"         # pattern: {"type": ACTION, "action": name}
    REASON = "field-order-reason"
    # the customer's confirmation
    CONFIRM_PANEL = "field-confirm"
    STAGE = "field-confirm-stage"
    QR_INPUT = "field-confirm-qr"
    SCAN = "field-confirm-scan"
    SCAN_VIDEO = "field-confirm-video"
    SCAN_NOTE = "field-confirm-scan-note"
    SIGNATURE = "field-confirm-signature"
    SIGNATURE_CLEAR = "field-confirm-signature-clear"
    SIGNATURE_DATA = "field-confirm-signature-data"
    RATING = "field-confirm-rating"
    CONFIRM = "field-confirm-submit"
    CONFIRM_REQUEST = "field-confirm-request"   # {signature, n}: filled by assets/field.js on the button's click
    # the operating card
    STEP_DONE = "field-step-done"               # pattern: {"type": STEP_DONE, "step": id}
    STEP_VALUE = "field-step-value"
    STEP_SAVE = "field-step-save"
    STEP_MESSAGE = "field-step-message"
    # materials and fees
    MATERIAL_QTY = "field-material-qty"         # pattern: {"type": ..., "material": id}
    MATERIAL_PRICE = "field-material-price"
    MATERIAL_SAVE = "field-material-save"
    MATERIAL_MESSAGE = "field-material-message"
    MATERIAL_REMOVE = "field-material-remove"   # pattern: a line the worker added
    NEW_PICK = "field-material-new-pick"        # a new line: from the type's catalogue ...
    NEW_NAME = "field-material-new-name"        # ... or typed
    NEW_QTY = "field-material-new-qty"
    NEW_PRICE = "field-material-new-price"
    NEW_ADD = "field-material-new-add"
    BLOCKED = "field-order-blocked"             # the notice on a phone the office blocked
    TOTALS = "field-order-totals"
    FEE_AMOUNT = "field-fee-amount"
    FEE_METHOD = "field-fee-method"
    FEE_COLLECT = "field-fee-collect"
    # evidence
    EVIDENCE = "field-evidence"
    EVIDENCE_LIST = "field-evidence-list"
    FILE_INPUT = "field-evidence-file"          # made by assets/field.js inside FILE_SLOT
    FILE_SLOT = "field-evidence-file-slot"
    FILE_STEP = "field-evidence-step"
    SEND_NOW = "field-evidence-send"
    SEND_LATER = "field-evidence-later"
    SEND_QUEUED = "field-evidence-send-queued"
    QUEUE = "field-evidence-queue"
    UPLOAD_STATUS = "field-evidence-status"
    UPLOADED = "field-evidence-uploaded"        # a store assets/field.js bumps when an upload finished


class Messages:
    """Messages between the office and workers (/messages)."""
    PAGE = "messages-page"
    LIST = "messages-list"
    TO = "messages-to"
    ORDER = "messages-order"
    SUBJECT = "messages-subject"
    BODY = "messages-body"
    ATTACH = "messages-attach"          # evidence ids (typed or picked from the order's files)
    SEND = "messages-send"
    RESULT = "messages-result"
    READ = "messages-read"              # pattern: {"type": READ, "message": id}
    VERSION = "messages-version"

    @staticmethod
    def item(message_id: int) -> str:
        return f"messages-item-{message_id}"


class Terminals:
    """Workers' phones (/workorders/terminals)."""
    PAGE = "terminals-page"
    DAYS = "terminals-days"
    TABLE = "terminals-table"
    RATES = "terminals-rates"
    PICK = "terminals-pick"            # block / unblock: the phone, the reason, the buttons, the answer
    REASON = "terminals-reason"
    BLOCK = "terminals-block"
    UNBLOCK = "terminals-unblock"
    RESULT = "terminals-result"


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


class AnalysisHistory:
    """/analysis/history, one meter's reading history (抄表历史记录查询)."""
    PAGE = "ahist-page"
    METER = "ahist-meter"
    FROM = "ahist-from"
    TO = "ahist-to"
    QUERY = "ahist-query"
    RESULT = "ahist-result"
    SUMMARY = "ahist-summary"
    CHART = "ahist-chart"
    GRID = "ahist-grid"
    APPLIED = "ahist-applied"          # dcc.Store: the query of the rows shown
    EXPORT = "ahist-export"
    DOWNLOAD = "ahist-download"


class AnalysisInstrument:
    """/analysis/instrument, an instrument's register difference (计量仪表能耗查询)."""
    PAGE = "ainst-page"
    METER = "ainst-meter"
    FROM = "ainst-from"
    TO = "ainst-to"
    QUERY = "ainst-query"
    RESULT = "ainst-result"
    BODY = "ainst-body"
    ENERGY = "ainst-energy"            # the energy counted (kWh x CT ratio)


class GridLineLoss:
    """/grid/line-loss, line loss per transformer area (台区线损)."""
    PAGE = "gll-page"
    AREA = "gll-area"
    FROM = "gll-from"
    TO = "gll-to"
    BY = "gll-by"
    QUERY = "gll-query"
    RESULT = "gll-result"
    CHART = "gll-chart"
    TABLE = "gll-table"
    MISSING = "gll-missing"
    HINTS = "gll-hints"


class GridAreas:
    """/grid/areas, every transformer area's live state (台区监测)."""
    PAGE = "gas-page"
    TICK = "gas-tick"
    LIST = "gas-list"
    UPDATED = "gas-updated"


class GridArea:
    """/grid/area?id=, one transformer area live: telemetry, signals, alarms, trends, controls, action log."""
    PAGE = "gar-page"
    AREA = "gar-area"                # dcc.Store: the area's id
    TICK = "gar-tick"
    UPDATED = "gar-updated"
    LIVE = "gar-live"
    SIGNALS = "gar-signals"
    ALARMS = "gar-alarms"
    CAMERAS = "gar-cameras"
    RANGE = "gar-range"
    CHART = "gar-chart"
    TREND_NOTE = "gar-trend-note"
    APPLIED = "gar-applied"          # dcc.Store: the trend window drawn (start, end: naive UTC ISO)
    CONTROLS = "gar-controls"
    OUTLET = "gar-outlet"
    TAP = "gar-tap"
    MODE = "gar-mode"
    CONFIRM = "gar-confirm"          # the confirmation dialog
    CONFIRM_TEXT = "gar-confirm-text"
    REASON = "gar-reason"
    SEND = "gar-send"
    CANCEL = "gar-cancel"
    PENDING = "gar-pending"          # dcc.Store: the action the dialog confirms
    CONTROL_RESULT = "gar-control-result"
    ACTIONS = "gar-actions"
    ACTION = "gar-action"

    @staticmethod
    def action(name) -> dict:
        """A control's button ("breaker_open", "tap_up", ...; dash.ALL in the one callback that reads them)."""
        return {"type": GridArea.ACTION, "index": name}


class AnalysisEnergy:
    """/analysis/energy, energy by place and period (能耗分析报表)."""
    PAGE = "aen-page"
    FROM = "aen-from"
    TO = "aen-to"
    BUILDING = "aen-building"
    FLOOR = "aen-floor"
    ROOMS = "aen-rooms"
    BY = "aen-by"
    QUERY = "aen-query"
    RESULT = "aen-result"
    CRUMBS = "aen-crumbs"
    CHART = "aen-chart"
    TOTAL = "aen-total"
    GRID = "aen-grid"
    APPLIED = "aen-applied"            # dcc.Store: the query of the rows shown
    EXPORT = "aen-export"
    DOWNLOAD = "aen-download"

    @staticmethod
    def crumb(level) -> dict:
        """One breadcrumb button (`level`: 0 site, 1 building, 2 floor; dash.ALL in a callback)."""
        return {"type": "aen-crumb", "level": level}


class AnalysisInsights:
    """/analysis/insights, the energy insights' tabs."""
    PAGE = "ains-page"
    FROM = "ains-from"
    TO = "ains-to"
    BUILDING = "ains-building"
    FLOOR = "ains-floor"
    QUERY = "ains-query"
    RESULT = "ains-result"
    TABS = "ains-tabs"
    LOAD = "ains-load"
    LOAD_NOTE = "ains-load-note"
    HEATMAP = "ains-heatmap"
    TOU = "ains-tou"
    TOU_NOTE = "ains-tou-note"
    TOP = "ains-top"
    COMPARE = "ains-compare"
    PERIODS = "ains-periods"
    PERIODS_NOTE = "ains-periods-note"
    GO = "ains-go"                     # dcc.Location: where a click on a chart leads
    APPLIED = "ains-applied"           # dcc.Store: the query the tabs show


class AnalysisAnomalies:
    """/analysis/anomalies, high use, night base load and stopped registers with their curves."""
    PAGE = "aano-page"
    FROM = "aano-from"
    TO = "aano-to"
    Z = "aano-z"
    QUERY = "aano-query"
    RESULT = "aano-result"
    GRID = "aano-grid"
    CURVE = "aano-curve"


class ManagerDashboard:
    """/dashboard, the managers' landing page."""
    PAGE = "mdash-page"
    LOAD = "mdash-load"
    ENERGY = "mdash-energy"
    SALES = "mdash-sales"
    ALARMS = "mdash-alarms"
    TOP = "mdash-top"
    SHARE = "mdash-share"
    GO = "mdash-go"                    # dcc.Location: where a click on a chart leads


class ReportCentre:
    """/reports (the hub) and /reports/view?name=... (any registered report: filters, chart, grid, export)."""
    PAGE = "rpt-page"
    VIEW = "rpt-view-page"
    NAME = "rpt-name"                  # dcc.Store: the report shown
    FROM = "rpt-from"
    TO = "rpt-to"
    BY = "rpt-by"
    GROUP = "rpt-group"
    BUILDING = "rpt-building"
    FLOOR = "rpt-floor"
    ROOM = "rpt-room"
    OPERATOR = "rpt-operator"
    CHANNEL = "rpt-channel"
    METER = "rpt-meter"
    QUERY = "rpt-query"
    EXPORT = "rpt-export"
    DOWNLOAD = "rpt-download"
    RESULT = "rpt-result"
    CHART = "rpt-chart"
    GRID = "rpt-grid"
    GRID_BOX = "rpt-grid-box"          # the grid's box: a run replaces the grid (its columns follow the report)
    APPLIED = "rpt-applied"            # dcc.Store: the parameters of the rows shown (the export reads them again)


class Settlement:
    """/reports/settlement: cashiers' day-end settlement, closing a day, the printable handover."""
    PAGE = "stl-page"
    DAY = "stl-day"
    OPERATOR = "stl-operator"
    QUERY = "stl-query"
    GRID = "stl-grid"
    RESULT = "stl-result"
    CLOSE_WHO = "stl-close-who"
    CLOSE = "stl-close"
    PRINT = "stl-print"
    SHEET = "stl-sheet"                # the printable handover sheet
    GRID_BOX = "stl-grid-box"
    SHEET_BOX = "stl-sheet-box"


class WorkOrders:
    """/workorders: the office's order list (filters, search, grid) and a new order by hand or at the counter."""
    PAGE = "wol-page"
    TYPE = "wol-type"
    STATE = "wol-state"
    WORKER = "wol-worker"
    DISTRICT = "wol-district"
    DUE = "wol-due"                    # due soon / overdue
    TEXT = "wol-text"
    SEARCH = "wol-search"
    COUNT = "wol-count"
    GRID = "wol-grid"
    NEW_TYPE = "wol-new-type"
    NEW_PRIORITY = "wol-new-priority"
    NEW_CUSTOMER = "wol-new-customer"  # an account number or the customer's QR token (typed or scanned)
    NEW_DESCRIPTION = "wol-new-description"
    NEW_POLE = "wol-new-pole"
    NEW_LOCATION = "wol-new-location"
    NEW_CREATE = "wol-new-create"
    NEW_RESULT = "wol-new-result"
    NEW_DISTRICT = "wol-new-district"  # the building / transformer area of an order without a customer
    CARD_TYPE = "wol-card-type"        # the operating card's editor: the type, its lines, save, the answer
    CARD_TEXT = "wol-card-text"
    CARD_SAVE = "wol-card-save"
    CARD_RESULT = "wol-card-result"
    GO = "wol-go"                      # dcc.Location: the order opened from the grid


class WorkOrder:
    """/workorders/order?number=...: one order (timeline, card, materials, fees, evidence), dispatch, hold, cancel,
    review and the follow-up call."""
    PAGE = "wod-page"
    NUMBER = "wod-number"              # dcc.Store: the order shown
    SECTIONS = "wod-sections"          # what the page shows of the order, rebuilt after each move
    HEADER = "wod-header"
    TIMELINE = "wod-timeline"
    CARD = "wod-card"
    MATERIALS = "wod-materials"
    FEES = "wod-fees"
    EVIDENCE = "wod-evidence"
    FOLLOWUPS = "wod-followups"
    WORKER = "wod-worker"              # dispatch to (the nearest available suggested first)
    DISPATCH = "wod-dispatch"
    REASON = "wod-reason"              # hold / cancel / reject
    HOLD = "wod-hold"
    RELEASE = "wod-release"
    CANCEL = "wod-cancel"
    APPROVE = "wod-approve"
    REJECT = "wod-reject"
    ARCHIVE = "wod-archive"
    RESULT = "wod-result"
    CALL_AT = "wod-call-at"
    CALL_OUTCOME = "wod-call-outcome"
    CALL_RATING = "wod-call-rating"
    CALL_NOTE = "wod-call-note"
    CALL_SAVE = "wod-call-save"
    CALL_RESULT = "wod-call-result"


class WorkOrderReview:
    """/workorders/review: completed orders to approve or reject, approved ones to call back and archive."""
    PAGE = "wor-page"
    GRID = "wor-grid"
    GO = "wor-go"


class WorkOrderKpis:
    """/workorders/kpis: KPIs, charts, statistics tables (orders by type, tools, materials), XLSX export; and the
    work-order card on the managers' dashboard."""
    PAGE = "wok-page"
    FROM = "wok-from"
    TO = "wok-to"
    QUERY = "wok-query"
    RESULT = "wok-result"
    BODY = "wok-body"
    APPLIED = "wok-applied"            # dcc.Store: the period shown (the export reads it again)
    EXPORT = "wok-export"
    DOWNLOAD = "wok-download"
    EXPORTED = "wok-exported"
    MONTHS = "wok-months"
    REPAIR = "wok-repair"
    DASH_CARD = "wok-dash-card"

    @staticmethod
    def kpi(name: str) -> str:
        """One KPI's tile ("completion_rate", ...)."""
        return f"wok-kpi-{name}"


class GridAreaEdit:
    """/grid/areas/edit?id=, one transformer area's nameplate, devices, meters fed and cameras (grid.edit)."""
    PAGE = "gae-page"
    AREA = "gae-area"                  # dcc.Store: the area's id
    RATING = "gae-rating"
    NOMINAL = "gae-nominal"
    GROUP = "gae-group"                # the connection group
    TERMINAL = "gae-terminal"
    MASTER = "gae-master"
    CT_RATIO = "gae-ct-ratio"
    FLOORS = "gae-floors"              # the building/floor groups of meters fed
    ADDRESSES = "gae-addresses"
    SAVE = "gae-save"
    RESULT = "gae-result"
    FED = "gae-fed"
    CAMERAS = "gae-cameras"            # the list of cameras
    CAMERA_NAME = "gae-camera-name"
    CAMERA_URL = "gae-camera-url"
    CAMERA_KIND = "gae-camera-kind"
    CAMERA_ADD = "gae-camera-add"
    CAMERA_RESULT = "gae-camera-result"
    CAMERA_REMOVE = "gae-camera-remove"   # pattern: {"type": CAMERA_REMOVE, "camera": <id>}


class GridSimulator:
    """/grid/simulator (the demo only, site.edit): faults, inputs and the supply of an area's simulated terminal."""
    PAGE = "gsim-page"
    AREA = "gsim-area"                 # the area chosen (a dropdown)
    STATE = "gsim-state"               # what is put on its terminal now, with a button per switch
    OFFSET = "gsim-offset"             # the MV supply offset, typed (%)
    OFFSET_APPLY = "gsim-offset-apply"
    RESULT = "gsim-result"
    SWITCH = "gsim-switch"             # pattern: {"type": SWITCH, "control": <name>, "on": 0 | 1}
