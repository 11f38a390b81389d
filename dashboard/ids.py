"""Component ids, one constant per id, grouped by page; pages and callbacks import them from here."""
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
