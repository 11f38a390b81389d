"""Site setup (/site, 系统设置; site.edit): building groups, buildings, rooms, gateways and meters added, edited,
moved and retired; a topology file previewed row by row and imported; a gateway's connection tested; the device
profiles listed and a site profile file checked. Every change goes through collectors.site_setup (the import's
rules, the operation log)."""
from __future__ import annotations

import base64
import binascii

import dash
from dash import Input, Output, State, no_update
from dash.exceptions import PreventUpdate

from collectors.site_setup import SiteSetupError, Who, check_profile, connection_test, profile_list
from collectors.topology_import import ImportIssue, TopologyImportError
from core import permissions as P
from dashboard import access
from dashboard.auth import forbidden_page, guarded_callback, source_address
from dashboard.components.site_setup import (
    NEW, building_options, done, gateway_options, group_options, issues_alert, listing, preview, preview_ok,
    profile_result, room_options, site_page, test_result,
)
from dashboard.i18n import request_lang, t
from dashboard.ids import SiteSetup as ID
from dashboard.services import operator_name, profiles, site_setup

EDIT = P.SITE_EDIT
dash.register_page(__name__, path="/site", title="Wattline", name="site")


def layout(**_query):
    lang = request_lang()
    denied = forbidden_page(access.SITE_SETUP, lang)
    if denied is not None:
        return denied
    registry = profiles()
    return site_page(site_setup().snapshot(), registry.names(), profile_list(registry), lang)


def _who() -> Who:
    return Who(operator_name(), source_address())


def _choice(value):
    """A record dropdown's value: None for "new", else the id as typed by the page (the service checks it)."""
    return None if value in (None, NEW) else value


def _refreshed(lang: str) -> dict:
    snap = site_setup().snapshot()
    return {"listing": listing(snap, lang), "groups": group_options(snap, lang),
            "building_groups": [{"label": "—", "value": NEW}] + group_options(snap, lang)[1:],
            "buildings": building_options(snap, lang), "room_buildings": building_options(snap, lang, new=False),
            "rooms": room_options(snap, lang), "meter_rooms": [{"label": "—", "value": NEW}]
            + room_options(snap, lang, new=False),
            "gateways": gateway_options(snap, lang), "meter_gateways": gateway_options(snap, lang, new=False)}


_LISTS = {"listing": (ID.LISTING, "children"), "groups": (ID.GROUP, "options"),
          "building_groups": (ID.BUILDING_GROUP, "options"), "buildings": (ID.BUILDING, "options"),
          "room_buildings": (ID.ROOM_BUILDING, "options"), "rooms": (ID.ROOM, "options"),
          "meter_rooms": (ID.METER_ROOM, "options"), "gateways": (ID.GATEWAY, "options"),
          "meter_gateways": (ID.METER_GATEWAY, "options")}


def _outputs() -> dict:
    return {"result": Output(ID.RESULT, "children", allow_duplicate=True),
            **{k: Output(i, p, allow_duplicate=True) for k, (i, p) in _LISTS.items()}}


def _run(change, message_key: str, **fmt) -> dict:
    """Do one change; the page's answer: what was done and the lists as they are now, or why nothing was."""
    lang = request_lang()
    try:
        change()
    except SiteSetupError as exc:
        return {"result": issues_alert(exc.issues, lang), **{k: no_update for k in _LISTS}}
    return {"result": done(t(message_key, lang, **fmt)), **_refreshed(lang)}


def _shown(value) -> str:
    return " ".join(str(value or "").split())[:100]


@guarded_callback("site.group_save", EDIT, output=_outputs(),
                  inputs={"n": Input(ID.GROUP_SAVE, "n_clicks"), "group": State(ID.GROUP, "value"),
                          "name": State(ID.GROUP_NAME, "value")}, prevent_initial_call=True)
def save_group(n, group, name):
    if not n:
        raise PreventUpdate
    return _run(lambda: site_setup().save_group(_who(), name, _choice(group)), "site.saved_group", name=_shown(name))


@guarded_callback("site.building_save", EDIT, output=_outputs(),
                  inputs={"n": Input(ID.BUILDING_SAVE, "n_clicks"), "building": State(ID.BUILDING, "value"),
                          "name": State(ID.BUILDING_NAME, "value"), "group": State(ID.BUILDING_GROUP, "value")},
                  prevent_initial_call=True)
def save_building(n, building, name, group):
    if not n:
        raise PreventUpdate
    return _run(lambda: site_setup().save_building(_who(), name, _choice(group), _choice(building)),
                "site.saved_building", name=_shown(name))


@guarded_callback("site.room_save", EDIT, output=_outputs(),
                  inputs={"n": Input(ID.ROOM_SAVE, "n_clicks"), "room": State(ID.ROOM, "value"),
                          "building": State(ID.ROOM_BUILDING, "value"), "name": State(ID.ROOM_NAME, "value"),
                          "floor": State(ID.ROOM_FLOOR, "value")}, prevent_initial_call=True)
def save_room(n, room, building, name, floor):
    if not n:
        raise PreventUpdate
    return _run(lambda: site_setup().save_room(_who(), _choice(building), name, floor, _choice(room)),
                "site.saved_room", name=_shown(name))


@guarded_callback("site.gateway_save", EDIT, output=_outputs(),
                  inputs={"n": Input(ID.GW_SAVE, "n_clicks"), "gateway": State(ID.GATEWAY, "value"),
                          "name": State(ID.GW_NAME, "value"), "host": State(ID.GW_HOST, "value"),
                          "framing": State(ID.GW_FRAMING, "value"), "timeout_s": State(ID.GW_TIMEOUT, "value"),
                          "retries": State(ID.GW_RETRIES, "value"), "buses": State(ID.GW_BUSES, "value")},
                  prevent_initial_call=True)
def save_gateway(n, gateway, name, host, framing, timeout_s, retries, buses):
    if not n:
        raise PreventUpdate
    buses = buses if isinstance(buses, str) else ""
    return _run(lambda: site_setup().save_gateway(_who(), name=name, host=host, framing=framing, timeout_s=timeout_s,
                                                  retries=retries, buses=buses, gateway_id=_choice(gateway)),
                "site.saved_gateway", name=_shown(name))


@guarded_callback("site.gateway_test", EDIT, Output(ID.TEST_RESULT, "children"),
                  inputs={"n": Input(ID.TEST, "n_clicks"), "host": State(ID.GW_HOST, "value"),
                          "framing": State(ID.GW_FRAMING, "value"), "timeout_s": State(ID.GW_TIMEOUT, "value"),
                          "port": State(ID.TEST_PORT, "value"), "unit": State(ID.TEST_UNIT, "value"),
                          "profile": State(ID.TEST_PROFILE, "value")}, changes_state=False, prevent_initial_call=True)
def test_gateway(n, host, framing, timeout_s, port, unit, profile):
    """Read one meter through the gateway as typed in the form (saved or not): nothing is written."""
    if not n:
        raise PreventUpdate
    lang = request_lang()
    try:
        result = connection_test(profiles(), host=host, port=port, framing=framing, unit=unit, profile=profile,
                                 timeout_s=timeout_s)
    except SiteSetupError as exc:
        return issues_alert(exc.issues, lang)
    return test_result(result, lang)


def _meter_change(kind: str, address, gateway, bus, unit, profile, room) -> dict:
    service, who = site_setup(), _who()
    actions = {
        "add": lambda: service.add_meter(who, address=address, gateway_id=_choice(gateway), bus_no=bus, unit=unit,
                                         profile=profile, room_id=_choice(room)),
        "edit": lambda: service.edit_meter(who, address, gateway_id=_choice(gateway), bus_no=bus, unit=unit,
                                           profile=profile),
        "move": lambda: service.move_meter(who, address, _choice(room)),
        "retire": lambda: service.retire_meter(who, address),
    }
    messages = {"add": "site.meter_added", "edit": "site.meter_edited", "move": "site.meter_moved",
                "retire": "site.meter_retired"}
    return _run(actions[kind], messages[kind], address=_shown(address))


def _meter_inputs(trigger: Input) -> dict:
    return {"n": trigger, "address": State(ID.METER, "value"), "gateway": State(ID.METER_GATEWAY, "value"),
            "bus": State(ID.METER_BUS, "value"), "unit": State(ID.METER_UNIT, "value"),
            "profile": State(ID.METER_PROFILE, "value"), "room": State(ID.METER_ROOM, "value")}


@guarded_callback("site.meter_add", EDIT, output=_outputs(), inputs=_meter_inputs(Input(ID.METER_ADD, "n_clicks")),
                  prevent_initial_call=True)
def add_meter(n, address, gateway, bus, unit, profile, room):
    if not n:
        raise PreventUpdate
    return _meter_change("add", address, gateway, bus, unit, profile, room)


@guarded_callback("site.meter_edit", EDIT, output=_outputs(), inputs=_meter_inputs(Input(ID.METER_EDIT, "n_clicks")),
                  prevent_initial_call=True)
def edit_meter(n, address, gateway, bus, unit, profile, room):
    if not n:
        raise PreventUpdate
    return _meter_change("edit", address, gateway, bus, unit, profile, room)


@guarded_callback("site.meter_move", EDIT, output=_outputs(), inputs=_meter_inputs(Input(ID.METER_MOVE, "n_clicks")),
                  prevent_initial_call=True)
def move_meter(n, address, gateway, bus, unit, profile, room):
    if not n:
        raise PreventUpdate
    return _meter_change("move", address, gateway, bus, unit, profile, room)


@guarded_callback("site.meter_retire", EDIT, output=_outputs(),
                  inputs=_meter_inputs(Input(ID.RETIRE_CONFIRM, "submit_n_clicks")), prevent_initial_call=True)
def retire_meter(n, address, gateway, bus, unit, profile, room):
    """After the confirmation dialog's OK (the retire button opens it)."""
    if not n:
        raise PreventUpdate
    return _meter_change("retire", address, gateway, bus, unit, profile, room)


dash.clientside_callback("(n) => n ? true : window.dash_clientside.no_update",
                         Output(ID.RETIRE_CONFIRM, "displayed"), Input(ID.METER_RETIRE, "n_clicks"),
                         prevent_initial_call=True)


def _content(contents) -> bytes | None:
    """A dcc.Upload's data URL as bytes (None: nothing or not base64)."""
    if not isinstance(contents, str) or "," not in contents:
        return None
    try:
        return base64.b64decode(contents.split(",", 1)[1], validate=True)
    except (binascii.Error, ValueError):
        return None


def _import(contents, filename, check_only: bool):
    lang = request_lang()
    content = _content(contents)
    if content is None:
        return issues_alert([ImportIssue(0, "-", "empty_file")], lang)
    try:
        result = site_setup().import_upload(_who(), str(filename or ""), content, check_only=check_only)
    except TopologyImportError as exc:
        return preview(exc.issues, exc.total, lang)
    if check_only:
        return preview_ok(result, lang)
    return done(t("site.imported", lang, rows=result["rows"], meters=result.get("meters", 0),
                  gateways=result.get("gateways", 0), rooms=result.get("rooms", 0)))


@guarded_callback("site.import_check", EDIT, Output(ID.PREVIEW, "children"),
                  inputs={"contents": Input(ID.UPLOAD, "contents"), "filename": State(ID.UPLOAD, "filename")},
                  changes_state=False, prevent_initial_call=True)
def check_upload(contents, filename):
    """Every row checked as the command line checks it; nothing is written."""
    if not contents:
        raise PreventUpdate
    return _import(contents, filename, check_only=True)


@guarded_callback("site.import", EDIT, Output(ID.IMPORT_RESULT, "children"),
                  inputs={"n": Input(ID.IMPORT, "n_clicks"), "contents": State(ID.UPLOAD, "contents"),
                          "filename": State(ID.UPLOAD, "filename")}, prevent_initial_call=True)
def import_upload(n, contents, filename):
    """The uploaded file imported: all rows or nothing (checked again: the database may have changed)."""
    if not n:
        raise PreventUpdate
    return _import(contents, filename, check_only=False)


@guarded_callback("site.profile_check", EDIT, Output(ID.PROFILE_RESULT, "children"),
                  inputs={"contents": Input(ID.PROFILE_UPLOAD, "contents"),
                          "filename": State(ID.PROFILE_UPLOAD, "filename")},
                  changes_state=False, prevent_initial_call=True)
def check_profile_file(contents, filename):
    """A site profile file loaded and validated (not saved): its name and size, or the line of its fault."""
    if not contents:
        raise PreventUpdate
    lang = request_lang()
    content = _content(contents)
    if content is None:
        return issues_alert([ImportIssue(0, "-", "empty_file")], lang)
    return profile_result(check_profile(str(filename or ""), content), lang)
