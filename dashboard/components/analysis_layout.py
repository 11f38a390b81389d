"""Page builders of the analysis pages: forms, grids, workbooks and the words around them (figures:
dashboard/components/analysis.py)."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

from urllib.parse import urlencode

import dash_ag_grid as dag
import dash_bootstrap_components as dbc
import pandas as pd
from dash import Input, Output, clientside_callback, dcc, html

from core.clock import show_local, zone_label
from core.workbook import DATETIME, MONEY, ExportWorkbook
from dashboard import access
from dashboard.components.cashier import field
from dashboard.components.grid import NUMBER_COLUMN, grid_locale
from dashboard.components.tables import STACK, labelled_cells
from dashboard.i18n import t
from dashboard.ids import AnalysisInstrument

KWH = "0.00"
HISTORY_COLUMNS = ("ts", "energy_total", "energy_sharp", "energy_peak", "energy_flat", "energy_valley",
                   "power_total", "voltage_a", "current_a", "pf_total", "frequency", "balance", "purchase_count",
                   "relay_closed", "flags", "gap_minutes", "comm_gap")
_NUMBERS = {"energy_total", "energy_sharp", "energy_peak", "energy_flat", "energy_valley", "power_total",
            "voltage_a", "current_a", "pf_total", "frequency", "balance", "purchase_count", "gap_minutes"}
GAP_ROW = {"styleConditions": [{"condition": "params.data.comm_gap", "style": {"backgroundColor": "#f8d7da"}}]}
ESTIMATED_ROW = {"styleConditions": [
    {"condition": "params.data.gap", "style": {"backgroundColor": "#f8d7da"}},
    {"condition": "params.data.estimated", "style": {"backgroundColor": "#fff3cd"}}]}


def place_text(meter: dict, lang: str) -> str:
    """Where a meter is, as one phrase: building, floor, room (or its transformer area)."""
    floor = meter.get("floor")
    parts = [meter.get("building"), t("analysis.energy.floor_name", lang, floor=int(floor))
             if floor is not None and not pd.isna(floor) else None, meter.get("room") or meter.get("area")]
    return " · ".join(str(p) for p in parts if isinstance(p, str) and p) or "—"


def device_options(devices: list[dict], lang: str) -> list[dict]:
    return [{"label": f"{d['address']} · {place_text(d, lang)}", "value": d["address"]} for d in devices]


def range_form(ids, applied: dict, lang: str, *, devices: list[dict], extra: list | None = None,
               may_export: bool = False, export_id: str | None = None) -> dbc.Row:
    """Meter, first and last day, Query (and Export to Excel for an operator who may export)."""
    return dbc.Row([
        field(t("analysis.meter", lang), dcc.Dropdown(id=ids.METER, options=device_options(devices, lang),
                                                      value=applied.get("meter"), searchable=True,
                                                      placeholder=t("analysis.meter_placeholder", lang)),
              ids.METER, xs=12, md=4),
        field(t("analysis.from", lang), dbc.Input(id=ids.FROM, type="date", value=applied.get("from")), ids.FROM,
              xs=6, md=2),
        field(t("analysis.to", lang), dbc.Input(id=ids.TO, type="date", value=applied.get("to")), ids.TO,
              xs=6, md=2),
        *(extra or []),
        dbc.Col([dbc.Button(t("analysis.query", lang), id=ids.QUERY, color="primary", className="me-2"),
                 dbc.Button(t("analysis.export", lang), id=export_id, color="outline-secondary")
                 if may_export and export_id else None],
                xs=12, md=4, className="d-flex align-items-end"),
    ], className="g-2 mb-2")


# --- reading history --------------------------------------------------------------------------------------
def history_grid_rows(rows: pd.DataFrame, lang: str) -> list[dict]:
    """The readings as grid rows: times as text in site time, flags and relay in words, numbers rounded."""
    out = []
    for r in rows.to_dict("records"):
        row = {"ts": show_local(r["ts"].to_pydatetime() if hasattr(r["ts"], "to_pydatetime") else r["ts"]),
               "flags": ", ".join(t(f"analysis.flag.{f}", lang) for f in r["flags"]),
               "relay_closed": _relay(r["relay_closed"], lang), "comm_gap": bool(r["comm_gap"]),
               "comm_gap_text": t("analysis.history.gap_yes", lang) if r["comm_gap"] else ""}
        for c in _NUMBERS:
            v = r.get(c)
            row[c] = None if v is None or (isinstance(v, float) and v != v) else (
                float(v) if isinstance(v, Decimal) else round(float(v), 3) if isinstance(v, float) else v)
        out.append(row)
    return out


def _relay(value, lang: str) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return t("analysis.history.relay_on" if value else "analysis.history.relay_off", lang)


def history_columns(lang: str, zone) -> list[dict]:
    cols = []
    for c in HISTORY_COLUMNS:
        name = t(f"analysis.col.{c}", lang)
        if c == "ts":
            cols.append({"field": "ts", "headerName": name,   # site time, named once in the navbar (exports name it)
                         "pinned": "left", "minWidth": 150, "cellDataType": "text"})
        elif c == "comm_gap":
            cols.append({"field": "comm_gap_text", "headerName": name})
        else:
            cols.append({"field": c, "headerName": name, **(NUMBER_COLUMN if c in _NUMBERS else {})})
    return cols


def data_grid(grid_id: str, rows: list[dict], columns: list[dict], lang: str, *, row_style: dict | None = None,
              pinned_bottom: list[dict] | None = None, height: str = "50vh", select_row: bool = False) -> dag.AgGrid:
    options = {"localeText": grid_locale(lang), "animateRows": False, "enableCellTextSelection": True,
               "pagination": True, "paginationPageSize": 100}
    if select_row:
        options["rowSelection"] = {"mode": "singleRow", "enableClickSelection": True, "checkboxes": False}
    if pinned_bottom is not None:
        options["pinnedBottomRowData"] = pinned_bottom
    return dag.AgGrid(id=grid_id, rowData=rows, columnDefs=columns, columnSize="autoSize",
                      defaultColDef={"sortable": True, "filter": True, "resizable": True},
                      getRowStyle=row_style, dashGridOptions=options,
                      style={"height": height, "width": "100%"}, className="ag-theme-quartz")


def history_summary(history, lang: str) -> list:
    """What the query found, the comm gaps, and the cap when it was reached."""
    said = [html.Span(t("analysis.history.summary", lang, n=len(history.rows), meter=history.meter["address"],
                        place=place_text(history.meter, lang), gaps=history.gaps,
                        minutes=f"{history.expected_minutes:g}"))]
    if history.truncated:
        said += [" ", html.Strong(t("analysis.history.truncated", lang, cap=history.row_cap), className="text-warning")]
    return said


def history_workbook(history, shown: dict, lang: str, zone) -> ExportWorkbook:
    """Every reading shown as a workbook: registers and kWh two decimals, balance as money, times as Excel
    date-times in site time (the header names the zone), a second sheet with the query."""
    book = ExportWorkbook()
    headers = [t(f"analysis.col.{c}", lang) for c in HISTORY_COLUMNS]
    headers[0] = t("clock.column", lang, name=headers[0], zone=zone_label(zone))
    formats = {0: DATETIME, **{i: KWH for i, c in enumerate(HISTORY_COLUMNS) if c.startswith("energy_")},
               HISTORY_COLUMNS.index("balance"): MONEY}
    ws = book.add_sheet(t("analysis.history.sheet", lang), headers, widths=(20, *([12] * 16)), formats=formats)
    for r in history.rows.to_dict("records"):
        values = []
        for c in HISTORY_COLUMNS:
            v = r.get(c)
            if c == "ts":
                v = v.to_pydatetime() if hasattr(v, "to_pydatetime") else v
            elif c == "flags":
                v = ", ".join(t(f"analysis.flag.{f}", lang) for f in v)
            elif c == "relay_closed":
                v = _relay(v, lang)
            elif c == "comm_gap":
                v = t("analysis.history.gap_yes", lang) if v else ""
            elif isinstance(v, float) and v != v:
                v = None
            values.append(v)
        ws.append(values)
    query_sheet(book, shown, lang, len(history.rows), meter=f"{history.meter['address']} "
                                                            f"({place_text(history.meter, lang)})")
    return book


def query_sheet(book: ExportWorkbook, shown: dict, lang: str, rows: int, **named) -> None:
    """The export's second sheet: the query that made it, and how many rows it wrote."""
    meta = book.add_sheet(t("analysis.query_sheet", lang), freeze=None)
    for key, label in (("from", "analysis.from"), ("to", "analysis.to")):
        meta.append([t(label, lang), shown.get(key) or ""])
    for label, value in named.items():
        meta.append([t(f"analysis.{label}", lang), value])
    meta.append([t("analysis.rows", lang), rows])


# --- instrument energy difference ---------------------------------------------------------------------------
_REGISTER_COLUMNS = ("energy_total", "energy_sharp", "energy_peak", "energy_flat", "energy_valley")


def _kwh(v) -> str:
    return "—" if v is None else f"{v:,.2f}"


def instrument_body(diff, lang: str) -> list:
    """The registers at both ends, what was counted, the CT ratio, resets and the latest remote reading."""
    said = [html.P(f"{diff.meter['address']} · {place_text(diff.meter, lang)} · {diff.meter['profile']}",
                   className="fw-semibold mb-1")]
    if diff.start is None:
        return said + [html.P(t("analysis.instrument.no_readings", lang), className="text-warning"),
                       _latest(diff, lang)]
    start, end = show_local(diff.start.ts), show_local(diff.end.ts)
    head = html.Thead(html.Tr([html.Th(t("analysis.instrument.register", lang)),
                               html.Th([t("analysis.instrument.start", lang), html.Br(),
                                        html.Small(start, className="text-muted")]),
                               html.Th([t("analysis.instrument.end", lang), html.Br(),
                                        html.Small(end, className="text-muted")]),
                               html.Th(t("analysis.instrument.counted", lang))]))
    header = [t("analysis.instrument.register", lang), f"{t('analysis.instrument.start', lang)} {start}",
              f"{t('analysis.instrument.end', lang)} {end}", t("analysis.instrument.counted", lang)]
    body = html.Tbody([html.Tr(labelled_cells(header, [
        t(f"analysis.col.{c}", lang), _kwh(diff.start.registers[c]), _kwh(diff.end.registers[c]),
        html.Td(_kwh(diff.counted[c]), **{"data-register": c})]))
                       for c in _REGISTER_COLUMNS if diff.start.registers[c] is not None
                       or diff.end.registers[c] is not None])
    said.append(html.Div(dbc.Table([head, body], size="sm", striped=True, className=f"mb-2 {STACK}"),
                         className="table-responsive"))
    said.append(html.P([t("analysis.instrument.ct_ratio", lang), f": {diff.ct_ratio:g} · ",
                        t("analysis.instrument.difference", lang), ": ",
                        html.Strong(_kwh(diff.energy_kwh), id=AnalysisInstrument.ENERGY)], className="mb-1"))
    if not diff.ct_ratio_known:
        said.append(html.P(t("analysis.instrument.ct_unknown", lang), className="small text-muted mb-1"))
    said.append(html.P(t("analysis.instrument.resets", lang, n=diff.resets,
                         time=show_local(diff.first_reset)) if diff.resets
                       else t("analysis.instrument.no_reset", lang),
                       className="text-warning mb-1" if diff.resets else "small text-muted mb-1"))
    return said + [_latest(diff, lang)]


def _latest(diff, lang: str) -> html.P:
    latest = diff.latest
    if not latest or latest.get("ts") is None:
        return html.P(t("analysis.instrument.latest_none", lang), className="small text-muted")
    values = ", ".join(f"{t(f'analysis.col.{c}', lang)} {latest[c]:,.2f}" for c in
                       ("energy_total", "power_total", "voltage_a", "current_a") if latest.get(c) is not None)
    comm = t(f"cashier.state.{latest.get('comm_state') or 'unknown'}", lang)
    return html.P([t("analysis.instrument.latest", lang, time=show_local(latest["ts"]), values=values or "—"), " · ",
                   t("analysis.instrument.comm", lang, state=comm)], className="small")


def default_days(today: dt.date, days: int = 7) -> dict:
    return {"from": (today - dt.timedelta(days=days - 1)).isoformat(), "to": today.isoformat()}


# --- energy analysis ----------------------------------------------------------------------------------------
ENERGY_COLUMNS = ("energy_kwh", "energy_sharp", "energy_peak", "energy_flat", "energy_valley")
BY_CHOICES = ("hour", "day", "month")
PERIOD_FORMAT = {"15min": "%Y-%m-%d %H:%M", "hour": "%Y-%m-%d %H:00", "day": "%Y-%m-%d", "month": "%Y-%m"}
# what a place shows its energy by, and what a click on one of its bars opens
NEXT_GROUP = {0: "building", 1: "floor", 2: "room", 3: "meter"}


class BadQuery(ValueError):
    """A query the analysis pages cannot ask; str() is the reason in the operator's language."""


def read_range(first, last, max_days: int, lang: str) -> tuple[dt.date, dt.date]:
    """The first and last day the browser sent, checked: BadQuery (in words) when one is missing or not a day,
    they are the wrong way round, or they span more than `max_days`."""
    from dashboard import inputs
    from energy.analysis import YEARS
    from energy.history import HistoryError
    try:
        first_day, last_day = inputs.day(first), inputs.day(last)
    except inputs.BadValue as exc:
        raise BadQuery(t("analysis.bad_date", lang, value=str(exc))) from None
    if first_day is None or last_day is None or not all(YEARS[0] <= d.year <= YEARS[1] for d in (first_day, last_day)):
        raise BadQuery(HistoryError("no_range").message(lang))   # the rollups answer years 2000-2200 only
    if first_day > last_day:
        raise BadQuery(HistoryError("range_reversed", first=first_day, last=last_day).message(lang))
    if (last_day - first_day).days + 1 > max_days:
        raise BadQuery(HistoryError("range_too_long", days=max_days).message(lang))
    return first_day, last_day


def floor_value(value) -> int | None:
    """A floor number as the browser sent it (an int, or digits typed in a link); anything else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and -999 <= value <= 9999:
        return value
    text = value.strip() if isinstance(value, str) else ""
    if text.lstrip("-").isdigit() and text.isascii() and len(text) <= 5:
        return int(text)
    return None


def place_level(place: dict) -> int:
    """0 the site, 1 a building, 2 a floor, 3 a room or a set of rooms."""
    if place.get("rooms"):
        return 3
    if place.get("building") is None:
        return 0
    return 2 if place.get("floor") is not None else 1


def drilled(place: dict, key) -> dict | None:
    """The place a click on the bar of `key` opens (None at the last level: a room's meters)."""
    level = place_level(place)
    if level == 0 and isinstance(key, str):
        return {"building": key, "floor": None, "rooms": []}
    if level == 1 and isinstance(key, int) and not isinstance(key, bool):
        return {**place, "floor": key, "rooms": []}
    if level == 2 and isinstance(key, str):
        return {**place, "rooms": [key]}
    return None


def labelled(df: pd.DataFrame, group: str, lang: str) -> pd.DataFrame:
    """energy_report's rows with `label` (the place's name on a chart) and `key` (what a click opens)."""
    out = df.copy()
    if group == "site":
        out["key"], out["label"] = None, t("analysis.site", lang)
    elif group == "floor":
        out["key"] = pd.Series([None if pd.isna(f) else int(f) for f in out["floor"]], index=out.index, dtype=object)
        out["label"] = [t("analysis.energy.floor_name", lang, floor="?" if k is None else k) for k in out["key"]]
    else:
        out["key"] = out[group].astype(object).where(out[group].notna(), None)
        out["label"] = out["key"].map(lambda k: "—" if k is None else str(k))
    return out


def energy_grid_rows(df: pd.DataFrame, by: str, lang: str) -> list[dict]:
    fmt = PERIOD_FORMAT[by]
    return [{"period": pd.Timestamp(r["period"]).strftime(fmt), "place": r["label"],
             **{c: round(float(r[c]), 2) for c in ENERGY_COLUMNS},
             "estimated": bool(r["estimated"]), "gap": bool(r["gap"]),
             "marks": " ".join(t(f"analysis.energy.{m}", lang) for m in ("estimated", "gap") if r[m])}
            for r in df.to_dict("records")]


def energy_totals(df: pd.DataFrame, lang: str) -> dict:
    """The grid's pinned bottom row: the energy columns summed."""
    return {"period": t("analysis.energy.total", lang), "place": "",
            **{c: round(float(df[c].sum()), 2) if len(df) else 0.0 for c in ENERGY_COLUMNS}, "marks": ""}


def energy_columns(lang: str, zone) -> list[dict]:
    cols = [{"field": "period", "headerName": t("analysis.energy.period", lang),   # site time, named in the navbar
             "pinned": "left", "cellDataType": "text"},
            {"field": "place", "headerName": t("analysis.energy.place", lang), "cellDataType": "text"}]
    cols += [{"field": c, "headerName": t(f"analysis.col.{'energy_total' if c == 'energy_kwh' else c}", lang),
              **NUMBER_COLUMN, "valueFormatter": {"function": "d3.format(',.2f')(params.value)"}}
             for c in ENERGY_COLUMNS]
    cols.append({"field": "marks", "headerName": ""})
    return cols


def crumbs(place: dict, lang: str, crumb_id) -> list:
    """Site › building › floor › rooms: each but the last a button back to that level."""
    names = [t("analysis.site", lang)]
    if place.get("building") is not None:
        names.append(str(place["building"]))
    if place.get("floor") is not None:
        names.append(t("analysis.energy.floor_name", lang, floor=place["floor"]))
    if place.get("rooms"):
        names.append(", ".join(place["rooms"][:5]) + (" …" if len(place["rooms"]) > 5 else ""))
    out = []
    for level, name in enumerate(names):
        if out:
            out.append(html.Span(" › ", className="text-muted"))
        last = level == len(names) - 1
        out.append(html.Span(name, className="fw-semibold") if last else
                   dbc.Button(name, id=crumb_id(level), color="link", size="sm", className="p-0 align-baseline"))
    return out


def energy_form(ids, applied: dict, places: list[dict], lang: str, *, may_export: bool) -> dbc.Row:
    buildings = sorted({p["building"] for p in places if p.get("building")})
    return dbc.Row([
        field(t("analysis.from", lang), dbc.Input(id=ids.FROM, type="date", value=applied["from"]), ids.FROM,
              xs=6, md=2),
        field(t("analysis.to", lang), dbc.Input(id=ids.TO, type="date", value=applied["to"]), ids.TO, xs=6, md=2),
        field(t("analysis.energy.building", lang), dcc.Dropdown(id=ids.BUILDING, options=buildings,
                                                                value=applied.get("building"),
                                                                placeholder=t("analysis.site", lang)),
              ids.BUILDING, xs=6, md=2),
        field(t("analysis.energy.floor", lang), dcc.Dropdown(id=ids.FLOOR, options=floor_options(
            places, applied.get("building"), lang), value=applied.get("floor"), placeholder=t("analysis.any", lang)),
              ids.FLOOR, xs=6, md=1),
        field(t("analysis.energy.rooms", lang), dcc.Dropdown(id=ids.ROOMS, multi=True, options=room_options(
            places, applied.get("building"), applied.get("floor")), value=applied.get("rooms") or [],
            placeholder=t("analysis.any", lang)), ids.ROOMS, xs=12, md=3),
        field(t("analysis.energy.by", lang), dbc.RadioItems(
            id=ids.BY, inline=True, value=applied.get("by", "day"),
            options=[{"label": t(f"analysis.energy.by_{b}", lang), "value": b} for b in BY_CHOICES]), ids.BY,
              xs=12, md=2),
        dbc.Col([dbc.Button(t("analysis.query", lang), id=ids.QUERY, color="primary", className="me-2"),
                 dbc.Button(t("analysis.export", lang), id=ids.EXPORT, color="outline-secondary")
                 if may_export else None], xs=12, className="d-flex"),
    ], className="g-2 mb-2")


def floor_options(places: list[dict], building, lang: str) -> list[dict]:
    floors = sorted({p["floor"] for p in places if p.get("building") == building and p.get("floor") is not None})
    return [{"label": t("analysis.energy.floor_name", lang, floor=f), "value": f} for f in floors]


def room_options(places: list[dict], building, floor) -> list[str]:
    """Rooms of the building (and floor) chosen; with no building, every room as "Building/Room"."""
    if building is None:
        return sorted({f"{p['building']}/{p['room']}" for p in places if p.get("room") and p.get("building")})
    return sorted({p["room"] for p in places if p.get("room") and p.get("building") == building
                   and (floor is None or p.get("floor") == floor)})


def energy_workbook(df: pd.DataFrame, by: str, shown: dict, lang: str, zone) -> ExportWorkbook:
    """The rows shown as a workbook: period, place, kWh (two decimals) with its TOU split, the marks, a total row;
    the query on a second sheet."""
    book = ExportWorkbook()
    headers = [t("clock.column", lang, name=t("analysis.energy.period", lang), zone=zone_label(zone)),
               t("analysis.energy.place", lang),
               *(t(f"analysis.col.{'energy_total' if c == 'energy_kwh' else c}", lang) for c in ENERGY_COLUMNS),
               t("analysis.energy.estimated", lang), t("analysis.energy.gap", lang)]
    ws = book.add_sheet(t("analysis.energy.sheet", lang), headers, widths=(20, 18, 12, 12, 12, 12, 12, 10, 10),
                        formats={i: KWH for i in range(2, 7)})
    yes = t("analysis.yes", lang)
    for r in df.to_dict("records"):
        ws.append([pd.Timestamp(r["period"]).strftime(PERIOD_FORMAT[by]), r["label"],
                   *(round(float(r[c]), 2) for c in ENERGY_COLUMNS), yes if r["estimated"] else "",
                   yes if r["gap"] else ""])
    ws.append([t("analysis.energy.total", lang), "", *(round(float(df[c].sum()), 2) for c in ENERGY_COLUMNS)])
    place = " › ".join(str(v) for v in (shown.get("building"), shown.get("floor"), ", ".join(shown.get("rooms") or []))
                       if v not in (None, "")) or t("analysis.site", lang)
    query_sheet(book, shown, lang, len(df), **{"energy.place": place,
                                               "energy.by": t(f"analysis.energy.by_{by}", lang)})
    return book


# --- links from a chart into the energy analysis ---------------------------------------------------------------
def energy_link(**query) -> str:
    """The energy analysis opened at a place or over days (what a click on a dashboard or insights chart opens)."""
    return f"{access.ANALYSIS_ENERGY.path}?{urlencode({k: v for k, v in query.items() if v is not None})}"


def follow_link_clicks(location_id: str, *graph_ids: str) -> None:
    """A click on a point of these graphs opens the link its customdata carries (energy_link), in the browser:
    following a link changes nothing on the server, and the page it opens checks its own query."""
    clientside_callback(
        """function () {
            const cc = window.dash_clientside.callback_context;
            const click = cc.triggered.length ? cc.triggered[0].value : null;
            const point = click && click.points && click.points[0];
            let link = point && point.customdata;
            if (Array.isArray(link)) { link = link[0]; }
            if (typeof link !== "string" || !link.startsWith("%s?")) { return window.dash_clientside.no_update; }
            return link;
        }""" % access.ANALYSIS_ENERGY.path,
        Output(location_id, "href"), *(Input(g, "clickData") for g in graph_ids), prevent_initial_call=True,
    )
