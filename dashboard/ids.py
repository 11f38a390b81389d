"""Component ids, one constant per id, grouped by page; pages and callbacks import them from here.

One class per page (`from dashboard.ids import Sell as ID`), pattern-matching ids as factory functions of their
class (`Sell.pick(address)`, `Sell.pick(dash.ALL)` in a callback). The values never change: browser tests and stored
client state name them. Moved here so far: Overview, Work, Meters, Sell (tests/test_ids.py holds their modules to
it); the other pages still define ids as constants in their components module."""
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
    PANEL_CURVE = "ov-panel-curve"
    PANEL_BALANCE = "ov-panel-balance"
    PANEL_RELAY = "ov-panel-relay"
    FILTERS = "ov-filters"
    UPDATED = "ov-updated"


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

    @staticmethod
    def pick(address) -> dict:
        """One match's button among several (`address`: the meter's number, or dash.ALL in a callback)."""
        return {"type": Sell.PICK, "index": address}
