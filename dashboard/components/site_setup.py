"""Builders of the site setup page (/site): the topology's forms and lists, the import's preview, a gateway's test
result, the device profiles."""
from __future__ import annotations

import dash_ag_grid as dag
import dash_bootstrap_components as dbc
from dash import dcc, html

from core.formatting import format_money
from dashboard.components.grid import grid_locale
from dashboard.i18n import t
from dashboard.ids import SiteSetup as ID

NEW = ""   # the "new ..." choice of a record dropdown
UPLOAD_BYTES = 3 << 20   # the browser refuses a larger file before sending it (collectors.site_setup.UPLOAD_LIMIT)


def issue_text(issue, lang: str) -> str:
    params = {k: str(v) for k, v in issue.params.items()}
    return t(f"site.issue.{issue.code}", lang, **params)


def column_label(column: str, lang: str) -> str:
    key = f"site.col.{column}"
    return t(key, lang) if column not in ("-", "") else "—"


def issues_alert(issues, lang: str) -> html.Div:
    """A refused form: each issue as "field: what is wrong" (nothing was written)."""
    items = [html.Li(f"{column_label(i.column, lang)}: {issue_text(i, lang)}") for i in issues]
    return html.Div(dbc.Alert([html.Div(t("site.refused", lang)), html.Ul(items, className="mb-0")], color="danger",
                              className="py-2 mb-2"), role="alert")


def done(text: str) -> dbc.Alert:
    return dbc.Alert(text, color="success", className="py-2 mb-2", id=ID.SAVED)


def group_options(snap: dict, lang: str) -> list[dict]:
    return [{"label": t("site.new_group", lang), "value": NEW}] + [
        {"label": g["name"], "value": str(g["id"])} for g in snap["groups"]]


def building_options(snap: dict, lang: str, new: bool = True) -> list[dict]:
    first = [{"label": t("site.new_building", lang), "value": NEW}] if new else []
    return first + [{"label": b["name"], "value": str(b["id"])} for b in snap["buildings"]]


def room_options(snap: dict, lang: str, new: bool = True) -> list[dict]:
    first = [{"label": t("site.new_room", lang), "value": NEW}] if new else []
    return first + [{"label": f"{r['building']} / {r['name']}", "value": str(r["id"])} for r in snap["rooms"]]


def gateway_options(snap: dict, lang: str, new: bool = True) -> list[dict]:
    first = [{"label": t("site.new_gateway", lang), "value": NEW}] if new else []
    return first + [{"label": f"{g['name']} ({g['host']})", "value": str(g["id"])} for g in snap["gateways"]]


def _grid(ident: str, rows: list[dict], cols: list[tuple[str, str]], lang: str, height: int | None = None):
    options = {"localeText": grid_locale(lang)}
    style = {"width": "100%"}
    if height is None:
        options["domLayout"] = "autoHeight"
    else:
        style["height"] = f"{height}px"
        options.update(pagination=True, paginationPageSize=50)
    return dag.AgGrid(id=ident, rowData=rows, columnDefs=[{"field": f, "headerName": t(k, lang)} for f, k in cols],
                      defaultColDef={"sortable": True, "resizable": True, "filter": True, "minWidth": 90},
                      columnSize="responsiveSizeToFit", dashGridOptions=options, style=style)


def listing(snap: dict, lang: str) -> html.Div:
    """The buildings, gateways and meters as they are now."""
    buildings = [{**b, "group": b["group"] or "—"} for b in snap["buildings"]]
    gateways = [{"name": g["name"], "host": g["host"], "framing": g["framing"], "timeout_s": g["timeout_s"],
                 "retries": g["retries"], "buses": ", ".join(f"{b['bus_no']}:{b['port']}" for b in g["buses"])}
                for g in snap["gateways"]]
    meters = [{"address": m["address"], "gateway": m["gateway"], "bus": m["bus_no"], "unit": m["unit"],
               "profile": m["profile"], "room": f"{m['building']} / {m['room']}" if m["room"] else "—",
               "status": t(f"site.status.{m['status']}", lang)} for m in snap["meters"]]
    return html.Div([
        html.H2(t("site.buildings_heading", lang), className="h6 mt-3"),
        _grid(ID.grid("buildings"), buildings, [("name", "site.col.building"), ("group", "site.col.group"),
                                                     ("rooms", "site.col.rooms"), ("meters", "site.col.meters")],
              lang),
        html.H2(t("site.gateways_heading", lang), className="h6 mt-3"),
        _grid(ID.grid("gateways"), gateways, [("name", "site.col.gateway"), ("host", "site.col.host"),
                                                   ("framing", "site.col.framing"), ("buses", "site.col.buses"),
                                                   ("timeout_s", "site.col.timeout_s"),
                                                   ("retries", "site.col.retries")], lang),
        html.H2(t("site.meters_heading", lang), className="h6 mt-3"),
        _grid(ID.grid("meters"), meters, [("address", "site.col.meter_address"), ("room", "site.col.room"),
                                               ("gateway", "site.col.gateway"), ("bus", "site.col.bus"),
                                               ("unit", "site.col.unit"), ("profile", "site.col.profile"),
                                               ("status", "site.col.status")], lang, height=420),
    ])


def _field(label: str, control, md: int = 6) -> dbc.Col:
    return dbc.Col([dbc.Label(label, html_for=control.id, className="small mb-1"), control], xs=12, md=md,
                   className="mb-2")


def _select(ident: str, options: list[dict], value=NEW) -> dbc.Select:
    return dbc.Select(id=ident, options=options, value=value)


def _input(ident: str, **kw) -> dbc.Input:
    return dbc.Input(id=ident, autocomplete="off", **kw)


def _card(title: str, body: list) -> dbc.Card:
    return dbc.Card(dbc.CardBody([html.H2(title, className="h6"), *body]), className="mb-3")


def topology_tab(snap: dict, profile_names: list[str], lang: str) -> html.Div:
    framing = [{"label": t("site.framing.socket", lang), "value": "socket"},
               {"label": t("site.framing.rtu", lang), "value": "rtu"}]
    profiles = [{"label": n, "value": n} for n in profile_names]
    groups = _card(t("site.groups_heading", lang), [dbc.Row([
        _field(t("site.col.group", lang), _select(ID.GROUP, group_options(snap, lang))),
        _field(t("site.name", lang), _input(ID.GROUP_NAME, maxLength=100)),
    ]), dbc.Button(t("site.save", lang), id=ID.GROUP_SAVE, color="primary", size="sm")])
    buildings = _card(t("site.buildings_heading", lang), [dbc.Row([
        _field(t("site.col.building", lang), _select(ID.BUILDING, building_options(snap, lang))),
        _field(t("site.name", lang), _input(ID.BUILDING_NAME, maxLength=100)),
        _field(t("site.col.group", lang), _select(ID.BUILDING_GROUP, [{"label": "—", "value": NEW}]
                                                  + group_options(snap, lang)[1:])),
    ]), dbc.Button(t("site.save", lang), id=ID.BUILDING_SAVE, color="primary", size="sm")])
    rooms = _card(t("site.rooms_heading", lang), [dbc.Row([
        _field(t("site.col.room", lang), _select(ID.ROOM, room_options(snap, lang))),
        _field(t("site.col.building", lang), _select(ID.ROOM_BUILDING, building_options(snap, lang, new=False),
                                                     value=None)),
        _field(t("site.name", lang), _input(ID.ROOM_NAME, maxLength=100)),
        _field(t("site.col.floor", lang), _input(ID.ROOM_FLOOR, inputMode="numeric")),
    ]), html.P(t("site.room_hint", lang), className="small text-muted"),
        dbc.Button(t("site.save", lang), id=ID.ROOM_SAVE, color="primary", size="sm")])
    gateways = _card(t("site.gateways_heading", lang), [dbc.Row([
        _field(t("site.col.gateway", lang), _select(ID.GATEWAY, gateway_options(snap, lang))),
        _field(t("site.name", lang), _input(ID.GW_NAME, maxLength=100)),
        _field(t("site.col.host", lang), _input(ID.GW_HOST, maxLength=253)),
        _field(t("site.col.framing", lang), _select(ID.GW_FRAMING, framing, value="socket")),
        _field(t("site.col.timeout_s", lang), _input(ID.GW_TIMEOUT, value="1.0", inputMode="decimal"), md=3),
        _field(t("site.col.retries", lang), _input(ID.GW_RETRIES, value="1", inputMode="numeric"), md=3),
        _field(t("site.col.buses", lang), _input(ID.GW_BUSES, placeholder="1:4001, 2:4002")),
    ]), html.P(t("site.buses_hint", lang), className="small text-muted"),
        dbc.Button(t("site.save", lang), id=ID.GW_SAVE, color="primary", size="sm", className="mb-3"),
        html.H3(t("site.test_heading", lang), className="h6"),
        html.P(t("site.test_hint", lang), className="small text-muted"),
        dbc.Row([_field(t("site.col.port", lang), _input(ID.TEST_PORT, inputMode="numeric"), md=4),
                 _field(t("site.col.unit", lang), _input(ID.TEST_UNIT, value="1", inputMode="numeric"), md=4),
                 _field(t("site.col.profile", lang), _select(ID.TEST_PROFILE, profiles,
                                                             value=profile_names[0] if profile_names else None),
                        md=4)]),
        dbc.Button(t("site.test", lang), id=ID.TEST, color="secondary", size="sm"),
        dcc.Loading(html.Div(id=ID.TEST_RESULT, className="mt-2"))])
    meters = _card(t("site.meters_heading", lang), [dbc.Row([
        _field(t("site.col.meter_address", lang), _input(ID.METER, maxLength=40, inputMode="numeric")),
        _field(t("site.col.room", lang), _select(ID.METER_ROOM, [{"label": "—", "value": NEW}]
                                                 + room_options(snap, lang, new=False))),
        _field(t("site.col.gateway", lang), _select(ID.METER_GATEWAY, gateway_options(snap, lang, new=False),
                                                    value=None)),
        _field(t("site.col.bus", lang), _input(ID.METER_BUS, value="1", inputMode="numeric"), md=3),
        _field(t("site.col.unit", lang), _input(ID.METER_UNIT, inputMode="numeric"), md=3),
        _field(t("site.col.profile", lang), _select(ID.METER_PROFILE, profiles,
                                                    value=profile_names[0] if profile_names else None)),
    ]), html.P(t("site.meter_hint", lang), className="small text-muted"),
        html.Div([dbc.Button(t("site.meter_add", lang), id=ID.METER_ADD, color="primary", size="sm"),
                  dbc.Button(t("site.meter_edit", lang), id=ID.METER_EDIT, color="secondary", size="sm"),
                  dbc.Button(t("site.meter_move", lang), id=ID.METER_MOVE, color="secondary", size="sm"),
                  dbc.Button(t("site.meter_retire", lang), id=ID.METER_RETIRE, color="outline-danger", size="sm")],
                 className="d-flex flex-wrap gap-2"),
        dcc.ConfirmDialogProvider(children=html.Span(), id=ID.RETIRE_CONFIRM, message=t("site.retire_confirm", lang))])
    return html.Div([dbc.Row([dbc.Col(groups, xs=12, lg=6), dbc.Col(buildings, xs=12, lg=6)]),
                     dbc.Row([dbc.Col(rooms, xs=12, lg=6), dbc.Col(meters, xs=12, lg=6)]), gateways,
                     html.Div(listing(snap, lang), id=ID.LISTING)])


def import_tab(lang: str) -> html.Div:
    return html.Div([
        html.P(t("site.import_hint", lang), className="small text-muted"),
        dcc.Upload(id=ID.UPLOAD, children=html.Div(t("site.upload", lang)), max_size=UPLOAD_BYTES, multiple=False,
                   className="border border-2 rounded p-3 text-center mb-2", style={"borderStyle": "dashed"}),
        dcc.Loading(html.Div(id=ID.PREVIEW)),
        dbc.Button(t("site.import", lang), id=ID.IMPORT, color="primary", size="sm", className="mt-2"),
        html.Div(id=ID.IMPORT_RESULT, className="mt-2"),
    ], className="pt-3")


def preview(issues, total: int, lang: str) -> html.Div:
    """Every row's issues (row, column, message) before anything is written."""
    rows = [{"row": i.row or "—", "column": column_label(i.column, lang), "message": issue_text(i, lang)}
            for i in issues]
    more = [html.P(t("site.more_issues", lang, n=total - len(issues)), className="small")] if total > len(issues) else []
    return html.Div([dbc.Alert(t("site.preview_bad", lang, n=total), color="danger", className="py-2 mb-2"),
                     _grid(ID.grid("preview"), rows, [("row", "site.col.row"), ("column", "site.col.column"),
                                                        ("message", "site.col.message")], lang), *more])


def preview_ok(result: dict, lang: str) -> dbc.Alert:
    return dbc.Alert(t("site.preview_ok", lang, n=result["rows"], format=result["format"].upper(),
                       encoding=result["encoding"] or "—"), color="success", className="py-2 mb-2")


def test_result(result: dict, lang: str) -> dbc.Alert:
    if not result["ok"]:
        return dbc.Alert([html.Div(t(f"site.test_{result['reason']}", lang)),
                          html.Small(result["detail"], className="text-muted")], color="danger", className="py-2")
    v = result["values"]
    parts = [t("site.test_ok", lang)]
    if v.get("balance") is not None:
        parts.append(t("site.test_balance", lang, balance=format_money(v["balance"])))
    if v.get("energy_total") is not None:
        parts.append(t("site.test_energy", lang, energy=v["energy_total"]))
    if v.get("relay_closed") is not None:
        parts.append(t("site.test_relay_closed" if v["relay_closed"] else "site.test_relay_open", lang))
    return dbc.Alert(" · ".join(parts), color="success", className="py-2")


def profiles_tab(profiles: list[dict], lang: str) -> html.Div:
    items = []
    for p in profiles:
        blocks = [{**b} for b in p["blocks"]]
        points = [{**pt, "scale": "" if pt["scale"] is None else pt["scale"], "unit": pt["unit"] or ""}
                  for pt in p["points"]]
        title = f"{p['name']} · {p['model']} · {p['kind']}" + (f" · {t('site.own_profile', lang)}" if p["own"] else "")
        items.append(dbc.AccordionItem([
            html.H3(t("site.blocks", lang), className="h6"),
            _grid(ID.profile_grid(p["name"], "blocks"), blocks, [("table", "site.col.table"), ("start", "site.col.start"),
                                                                ("count", "site.col.count"), ("every", "site.col.every")],
                  lang),
            html.H3(t("site.points", lang), className="h6 mt-2"),
            _grid(ID.profile_grid(p["name"], "points"), points, [("key", "site.col.key"), ("address", "site.col.address"),
                                                                ("type", "site.col.type"), ("scale", "site.col.scale"),
                                                                ("unit", "site.col.point_unit"),
                                                                ("bits", "site.col.bits")], lang),
        ], title=title))
    return html.Div([
        html.P(t("site.profiles_hint", lang), className="small text-muted"),
        dcc.Upload(id=ID.PROFILE_UPLOAD, children=html.Div(t("site.profile_upload", lang)), max_size=UPLOAD_BYTES,
                   multiple=False, className="border border-2 rounded p-3 text-center mb-2"),
        html.Div(id=ID.PROFILE_RESULT),
        dbc.Accordion(items, start_collapsed=True, always_open=True, id=ID.PROFILES),
    ], className="pt-3")


def profile_result(result: dict, lang: str) -> dbc.Alert:
    if result["ok"]:
        return dbc.Alert(t("site.profile_ok", lang, name=result["name"], blocks=result["blocks"], points=result["points"]),
                         color="success", className="py-2")
    where = t("site.profile_line", lang, line=result["line"]) if result["line"] else t("site.profile_file", lang)
    code = result.get("code")
    text = t(f"profile_error.{code}", lang, **result.get("params", {})) if code else result["message"]
    return dbc.Alert([html.Strong(where), " ", html.Span(text)], color="danger", className="py-2")


def site_page(snap: dict, profile_names: list[str], profiles: list[dict], lang: str) -> dbc.Container:
    return dbc.Container([
        html.H1(t("site.heading", lang), className="h4"),
        html.Div(id=ID.RESULT),
        dbc.Tabs([dbc.Tab(topology_tab(snap, profile_names, lang), label=t("site.tab_topology", lang),
                          tab_id="topology"),
                  dbc.Tab(import_tab(lang), label=t("site.tab_import", lang), tab_id="import"),
                  dbc.Tab(profiles_tab(profiles, lang), label=t("site.tab_profiles", lang), tab_id="profiles")],
                 id=ID.TABS, active_tab="topology"),
    ], fluid=True, id=ID.PAGE)
