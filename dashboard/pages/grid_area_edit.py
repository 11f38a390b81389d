"""A transformer area's record (/grid/areas/edit?id=, 台区编辑; grid.edit): the transformer's nameplate, its
transformer terminal and master meter with the CT ratio, the meters it feeds (whole floors and numbers typed), and
its cameras (televideo: links to each camera's page or snapshot). Every change goes through grid.areas (the whole
form checked first, nothing written on a mistake, the operation log)."""
from __future__ import annotations

import dash
from dash import ALL, Input, Output, State, ctx, dcc, html, no_update
from dash.exceptions import PreventUpdate

from collectors.site_setup import Who
from core.clock import utcnow
from dashboard import access
from dashboard.auth import forbidden_page, guarded_callback, source_address
from dashboard.components.area_edit import area_form, area_links, camera_list, camera_section, done, refused
from dashboard.i18n import request_lang, t
from dashboard.ids import GridAreaEdit as ID
from dashboard.inputs import record_id
from dashboard.services import operator_name, profiles, runtime
from grid import areas
from grid.line_loss import area_choices

dash.register_page(__name__, path=access.GRID_AREA_EDIT.path, title="Wattline", name="grid_area_edit")


def _kinds() -> dict[str, str]:
    registry = profiles()
    return {name: registry.get(name).kind for name in registry.names()}


def _who() -> Who:
    return Who(operator_name(), source_address())


def layout(id=None, **_query):   # noqa: A002 - the query parameter's name
    lang = request_lang()
    denied = forbidden_page(access.GRID_AREA_EDIT, lang)
    if denied is not None:
        return denied
    engine = runtime().engine
    choices = area_choices(engine)
    head = [html.H1(t("area_edit.heading", lang), className="h4"),
            html.P(t("area_edit.help", lang), className="small text-muted")]
    if not choices:
        return html.Div([*head, html.P(t("area_edit.no_areas", lang))], className="container-fluid", id=ID.PAGE)
    wanted = record_id(id) if id not in (None, "") else choices[0][0]
    form = areas.area_form(engine, wanted, _kinds()) if wanted is not None else None
    if form is None:
        return html.Div([*head, area_links(choices, -1), html.P(t("area_edit.unknown_area", lang), role="alert")],
                        className="container-fluid", id=ID.PAGE)
    return html.Div([
        *head,
        area_links(choices, form["area"]["id"]),
        dcc.Store(id=ID.AREA, data=form["area"]["id"]),
        html.H2(form["area"]["name"], className="h5"),
        area_form(form, lang),
        camera_section(areas.cameras(engine, form["area"]["id"]), lang),
    ], className="container-fluid", id=ID.PAGE)


@guarded_callback("grid.area_edit.save", access.GRID_AREA_EDIT,
                  output={"result": Output(ID.RESULT, "children"), "fed": Output(ID.FED, "children")},
                  inputs={"n": Input(ID.SAVE, "n_clicks"), "area": State(ID.AREA, "data"),
                          "rating": State(ID.RATING, "value"), "nominal": State(ID.NOMINAL, "value"),
                          "group": State(ID.GROUP, "value"), "terminal": State(ID.TERMINAL, "value"),
                          "master": State(ID.MASTER, "value"), "ct_ratio": State(ID.CT_RATIO, "value"),
                          "floors": State(ID.FLOORS, "value"), "addresses": State(ID.ADDRESSES, "value")},
                  prevent_initial_call=True)
def save(n, area, rating, nominal, group, terminal, master, ct_ratio, floors, addresses):
    if not n:
        raise PreventUpdate
    lang = request_lang()
    form = {"rating_kva": rating, "nominal_voltage": nominal, "connection_group": group, "terminal": terminal,
            "master": master, "ct_ratio": ct_ratio, "groups": floors, "addresses": addresses}
    try:
        out = areas.edit_area(runtime().engine, _who(), area, form, _kinds(), utcnow())
    except areas.AreaError as exc:
        return {"result": refused(exc.texts(lang), lang), "fed": no_update}
    name = next((n for i, n in area_choices(runtime().engine) if i == record_id(area)), "")
    return {"result": done(t("area_edit.saved", lang, area=name, meters=out["meters"], added=out["added"],
                             removed=out["removed"])),
            "fed": t("area_edit.meters_fed", lang, count=out["meters"])}


@guarded_callback("grid.area_edit.camera_add", access.GRID_AREA_EDIT,
                  output={"result": Output(ID.CAMERA_RESULT, "children"),
                          "cameras": Output(ID.CAMERAS, "children", allow_duplicate=True),
                          "name": Output(ID.CAMERA_NAME, "value"), "url": Output(ID.CAMERA_URL, "value")},
                  inputs={"n": Input(ID.CAMERA_ADD, "n_clicks"), "area": State(ID.AREA, "data"),
                          "name": State(ID.CAMERA_NAME, "value"), "url": State(ID.CAMERA_URL, "value"),
                          "kind": State(ID.CAMERA_KIND, "value")},
                  prevent_initial_call=True)
def add_camera(n, area, name, url, kind):
    if not n:
        raise PreventUpdate
    lang = request_lang()
    engine = runtime().engine
    try:
        areas.add_camera(engine, _who(), area, name, url, kind, utcnow())
    except areas.AreaError as exc:
        return {"result": refused(exc.texts(lang), lang), "cameras": no_update, "name": no_update, "url": no_update}
    shown = " ".join(str(name).split())[:100]
    return {"result": done(t("area_edit.camera_added", lang, name=shown)),
            "cameras": camera_list(areas.cameras(engine, area), lang), "name": "", "url": ""}


@guarded_callback("grid.area_edit.camera_remove", access.GRID_AREA_EDIT,
                  output={"result": Output(ID.CAMERA_RESULT, "children", allow_duplicate=True),
                          "cameras": Output(ID.CAMERAS, "children", allow_duplicate=True)},
                  inputs={"clicks": Input({"type": ID.CAMERA_REMOVE, "camera": ALL}, "n_clicks"),
                          "area": State(ID.AREA, "data")},
                  prevent_initial_call=True)
def remove_camera(clicks, area):
    trigger = ctx.triggered_id
    if not isinstance(trigger, dict) or not any(c for c in (clicks if isinstance(clicks, list) else [])
                                                if isinstance(c, int) and not isinstance(c, bool)):
        raise PreventUpdate     # the buttons drawn again, not pressed
    lang = request_lang()
    engine = runtime().engine
    try:
        areas.remove_camera(engine, _who(), area, trigger.get("camera"), utcnow())
    except areas.AreaError as exc:
        return {"result": refused(exc.texts(lang), lang), "cameras": no_update}
    return {"result": done(t("area_edit.camera_removed", lang)), "cameras": camera_list(areas.cameras(engine, area),
                                                                                          lang)}
