"""Builders of the transformer area's edit page (/grid/areas/edit): the areas to choose from, the nameplate and
devices form, the meters fed by floor and by number, the cameras with their links, and the page's answers."""
from __future__ import annotations

from urllib.parse import urlencode

import dash_bootstrap_components as dbc
from dash import dcc, html

from dashboard.components.cashier import field
from dashboard.i18n import t
from dashboard.ids import GridAreaEdit as ID
from grid.areas import CAMERA_KINDS, NAME_MAX, NUMBER_MAX, URL_MAX

PATH = "/grid/areas/edit"
NEW_TAB = {"target": "_blank"}   # a link's browsing context, not a component id (tests/test_ids.py reads `target`)


def _number(value) -> str:
    return "" if value is None else f"{float(value):g}"


def area_links(choices: list[tuple[int, str]], current: int) -> html.Div:
    """The areas as links (wrapping on a phone), the one shown marked."""
    return html.Div([dbc.Button(name, href=f"{PATH}?{urlencode({'id': area_id})}", size="sm",
                                color="primary" if area_id == current else "secondary",
                                outline=area_id != current, className="me-1 mb-1")
                     for area_id, name in choices], className="d-flex flex-wrap mb-2")


def _meter_options(meters: list[dict], lang: str) -> list[dict]:
    return [{"label": t("area_edit.none", lang), "value": ""}] + [
        {"label": f"{m['address']}" + (f" · {m['building']}" if m.get("building") else ""), "value": str(m["id"])}
        for m in meters]


def _group_label(g: dict, lang: str) -> str:
    if g["floor"] == "":
        return t("area_edit.group_no_floor", lang, building=g["building"], fed=g["fed"], meters=g["meters"])
    return t("area_edit.group", lang, building=g["building"], floor=g["floor"], fed=g["fed"], meters=g["meters"])


def area_form(form: dict, lang: str) -> html.Div:
    """The nameplate, the terminal and master meter with the CT ratio, and the meters fed."""
    area = form["area"]
    text = dict(type="text", inputMode="decimal", maxLength=NUMBER_MAX, autoComplete="off")
    return html.Div([
        html.H2(t("area_edit.nameplate", lang), className="h5 mt-2"),
        dbc.Row([
            field(t("area_edit.field.rating_kva", lang), dbc.Input(id=ID.RATING, value=_number(area["rating_kva"]),
                                                                   **text), ID.RATING, xs=6, md=3),
            field(t("area_edit.field.nominal_voltage", lang),
                  dbc.Input(id=ID.NOMINAL, value=_number(area["nominal_voltage"]), **text), ID.NOMINAL, xs=6, md=3),
            field(t("area_edit.field.connection_group", lang),
                  dbc.Input(id=ID.GROUP, value=area["connection_group"] or "", type="text", maxLength=20,
                            autoComplete="off"), ID.GROUP, xs=6, md=3),
            field(t("area_edit.field.ct_ratio", lang),
                  dbc.Input(id=ID.CT_RATIO, value=_number(area["ct_ratio"]), type="text", maxLength=NUMBER_MAX,
                            autoComplete="off", placeholder="200/5"), ID.CT_RATIO, xs=6, md=3),
        ], className="g-2"),
        html.P(t("area_edit.ct_help", lang), className="small text-muted mb-1"),
        dbc.Row([
            field(t("area_edit.field.terminal", lang),
                  dcc.Dropdown(id=ID.TERMINAL, options=_meter_options(form["terminals"], lang), clearable=False,
                               value=str(area["terminal_meter_id"] or "")), ID.TERMINAL, xs=12, md=6),
            field(t("area_edit.field.master", lang),
                  dcc.Dropdown(id=ID.MASTER, options=_meter_options(form["masters"], lang), clearable=False,
                               value=str(area["master_meter_id"] or "")), ID.MASTER, xs=12, md=6),
        ], className="g-2 mb-2"),
        dbc.Row([
            field(t("area_edit.field.groups", lang),
                  dcc.Dropdown(id=ID.FLOORS, multi=True, value=form["selected_groups"],
                               options=[{"label": _group_label(g, lang), "value": g["key"]} for g in form["groups"]]),
                  ID.FLOORS, xs=12),
        ], className="g-2"),
        html.P(t("area_edit.groups_help", lang), className="small text-muted mb-1"),
        dbc.Row([
            field(t("area_edit.field.addresses", lang),
                  dbc.Textarea(id=ID.ADDRESSES, value="\n".join(form["listed"]), rows=3, maxLength=20000), ID.ADDRESSES,
                  xs=12),
        ], className="g-2"),
        html.P(t("area_edit.addresses_help", lang), className="small text-muted mb-1"),
        html.P(t("area_edit.meters_fed", lang, count=form["meters_fed"]), id=ID.FED, className="small"),
        dbc.Button(t("area_edit.save", lang), id=ID.SAVE, color="primary", className="mb-2"),
        html.Div(id=ID.RESULT, role="status"),
    ])


def camera_list(cameras: list[dict], lang: str) -> html.Div:
    """Each camera: its name and kind, a link opening it in a new tab, a remove button."""
    if not cameras:
        return html.P(t("area_edit.no_cameras", lang), className="small text-muted")
    rows = [html.Li([
        html.Span(c["name"], className="me-2 text-break"),
        html.Span(t(f"area_edit.kind.{c['kind']}", lang), className="badge text-bg-light me-2"),
        html.A(t("area_edit.open", lang), href=c["url"], rel="noopener noreferrer", className="me-2", **NEW_TAB),
        dbc.Button(t("area_edit.camera_remove", lang), id={"type": ID.CAMERA_REMOVE, "camera": c["id"]}, size="sm",
                   color="outline-danger"),
    ], className="mb-1 d-flex flex-wrap align-items-center") for c in cameras]
    return html.Ul(rows, className="list-unstyled mb-2")


def camera_section(cameras: list[dict], lang: str) -> html.Div:
    return html.Div([
        html.H2(t("area_edit.cameras", lang), className="h5 mt-3"),
        html.P(t("area_edit.cameras_help", lang), className="small text-muted"),
        html.Div(camera_list(cameras, lang), id=ID.CAMERAS),
        dbc.Row([
            field(t("area_edit.field.camera_name", lang),
                  dbc.Input(id=ID.CAMERA_NAME, type="text", maxLength=NAME_MAX, autoComplete="off"), ID.CAMERA_NAME,
                  xs=12, md=4),
            field(t("area_edit.field.url", lang),
                  dbc.Input(id=ID.CAMERA_URL, type="url", maxLength=URL_MAX, autoComplete="off",
                            placeholder="https://"), ID.CAMERA_URL, xs=12, md=5),
            field(t("area_edit.field.camera_kind", lang),
                  dbc.Select(id=ID.CAMERA_KIND, value=CAMERA_KINDS[0], options=[
                      {"label": t(f"area_edit.kind.{k}", lang), "value": k} for k in CAMERA_KINDS]), ID.CAMERA_KIND,
                  xs=12, md=3),
        ], className="g-2 mb-2"),
        dbc.Button(t("area_edit.camera_add", lang), id=ID.CAMERA_ADD, color="secondary", className="mb-2"),
        html.Div(id=ID.CAMERA_RESULT, role="status"),
    ])


def refused(texts: list[str], lang: str) -> html.Div:
    """A refused form: each issue on its line (nothing was written)."""
    return html.Div(dbc.Alert([html.Div(t("area_edit.not_saved", lang)),
                               html.Ul([html.Li(x) for x in texts], className="mb-0")],
                              color="danger", className="py-2 mb-2"), role="alert")


def done(text: str) -> dbc.Alert:
    return dbc.Alert(text, color="success", className="py-2 mb-2")

