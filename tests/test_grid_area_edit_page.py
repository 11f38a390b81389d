"""The transformer area's edit page (/grid/areas/edit) on the demo site, through its callbacks as the browser calls
them: the form filled from the area, a change saved, a mistake refused in the operator's language with nothing
written, cameras added (a javascript: address refused) and removed, the demo's cameras shown as links opening a new
tab; an operator without grid.edit neither sees the page nor saves; on a phone the page fits 390 px."""
from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from dashboard.ids import GridAreaEdit as ID
from storage.schema import account_meter, area_meter, audit_log, camera, transformer_area

from tests.webclient import signed_in_client, start_demo_runtime

PATH = "/grid/areas/edit"


@pytest.fixture(scope="module")
def rt(tmp_path_factory):
    runtime = start_demo_runtime(tmp_path_factory.mktemp("areaedit"))
    yield runtime
    runtime.stop()


def _area(rt, name: str = "Area B2") -> dict:
    with rt.engine.connect() as conn:
        return dict(conn.execute(sa.select(transformer_area).where(transformer_area.c.name == name)).mappings().one())


def _props(text: str, ident) -> dict:
    """The props of the component with this id in a page's JSON."""
    found = []

    def walk(node):
        if isinstance(node, dict):
            if node.get("props", {}).get("id") == ident:
                found.append(node["props"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
    walk(json.loads(text))
    return found[0] if found else {}


FORM_IDS = (("rating", ID.RATING), ("nominal", ID.NOMINAL), ("group", ID.GROUP), ("terminal", ID.TERMINAL),
            ("master", ID.MASTER), ("ct_ratio", ID.CT_RATIO), ("floors", ID.FLOORS), ("addresses", ID.ADDRESSES))


def _save(client, area_id, lang: str = "en", **form):
    """The save button pressed with this form, the browser asking for `lang`."""
    from dashboard.auth import GUARDED_CALLBACKS
    from tests.webclient import callback_body
    values = {f"{ID.SAVE}.n_clicks": 1, f"{ID.AREA}.data": area_id,
              **{f"{i}.value": form.get(k) for k, i in FORM_IDS}}
    spec = client.callback_spec(GUARDED_CALLBACKS["grid.area_edit.save"].output)
    typed_in = {"Sec-Fetch-Site": "none"}    # the language switch as if typed into the address bar
    if lang != "en":
        client.get(f"/lang/{lang}?next=/", follow=False, headers=typed_in)
    try:
        return client.post_json("/_dash-update-component", callback_body(spec, values))
    finally:
        if lang != "en":
            client.get("/lang/en?next=/", follow=False, headers=typed_in)


def _form_of(client, area_id) -> dict:
    page = client.page(PATH, f"?id={area_id}")
    assert page.status == 200
    return {"rating": _props(page.text, ID.RATING)["value"], "nominal": _props(page.text, ID.NOMINAL)["value"],
            "group": _props(page.text, ID.GROUP)["value"], "terminal": _props(page.text, ID.TERMINAL)["value"],
            "master": _props(page.text, ID.MASTER)["value"], "ct_ratio": _props(page.text, ID.CT_RATIO)["value"],
            "floors": _props(page.text, ID.FLOORS)["value"], "addresses": _props(page.text, ID.ADDRESSES)["value"]}


def test_the_page_shows_the_area_as_imported_with_its_cameras_as_links(rt):
    client = signed_in_client(rt, "admin")
    area = _area(rt)
    page = client.page(PATH, f"?id={area['id']}")
    assert page.status == 200 and "Area B1" in page.text and "Area B4" in page.text
    form = _form_of(client, area["id"])
    assert (form["rating"], form["nominal"], form["group"], form["ct_ratio"]) == ("630", "220", "Dyn11", "1")
    assert form["terminal"] == str(area["terminal_meter_id"]) and len(form["floors"]) == 6 and form["addresses"] == ""
    links = [n for n in _links(page.text) if n.get("target") == "_blank"]
    assert len(links) == 2 and all(n["rel"] == "noopener noreferrer" and n["href"].startswith("http://192.0.2.")
                                   for n in links)


def _links(text: str) -> list[dict]:
    out = []

    def walk(node):
        if isinstance(node, dict):
            if node.get("type") == "A" and node.get("namespace") == "dash_html_components":
                out.append(node["props"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
    walk(json.loads(text))
    return out


def test_a_change_is_saved_and_logged(rt):
    client = signed_in_client(rt, "admin")
    area = _area(rt, "Area B3")
    form = {**_form_of(client, area["id"]), "rating": "８００", "ct_ratio": "400/5", "group": "yyn0"}
    r = _save(client, area["id"], **form)
    assert r.status == 200
    out = r.json()["response"]
    assert "Area B3 saved: it feeds 122 meters (0 added, 0 taken out)" in json.dumps(out[ID.RESULT])
    assert "122 meters" in json.dumps(out[ID.FED]), "120 rooms, the master meter and the terminal"
    after = _area(rt, "Area B3")
    assert (after["rating_kva"], after["ct_ratio"], after["connection_group"]) == (800.0, 80.0, "Yyn0")
    with rt.engine.connect() as conn:
        assert conn.execute(sa.select(audit_log.c.operator).where(audit_log.c.action == "grid.area_edit")
                            .order_by(audit_log.c.id.desc()).limit(1)).scalar_one() == "admin"


@pytest.mark.parametrize("lang, changes, words", [
    ("en", {"rating": "50,5"}, "has a comma"),
    ("zh", {"rating": "50,5"}, "含逗号"),
    ("en", {"ct_ratio": "200/0", "nominal": "99999"}, "outside 50..1000"),
    ("zh", {"terminal": "1"}, "不是台区终端"),
    ("en", {"addresses": "=HYPERLINK(\"x\")"}, "not a 12-digit meter number"),
    ("en", {"floors": "not a list"}, "not a list of floors"),
    ("zh", {"floors": ["Block 9/1", 3]}, "Block 9/1 不是本站点的楼层"),
])
def test_a_mistake_is_told_in_the_operators_language_and_nothing_is_written(rt, lang, changes, words):
    client = signed_in_client(rt, "admin")
    area = _area(rt, "Area B2")
    form = {**_form_of(client, area["id"]), **changes}
    with rt.engine.connect() as conn:
        logged = conn.execute(sa.select(sa.func.count()).where(audit_log.c.action.like("grid.%"))).scalar_one()
    r = _save(client, area["id"], lang, **form)
    assert r.status == 200
    assert words in json.dumps(r.json()["response"][ID.RESULT], ensure_ascii=False)
    assert _area(rt, "Area B2") == area
    with rt.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).where(audit_log.c.action.like("grid.%"))).scalar_one() == logged


def test_a_floor_of_sold_meters_moves_to_another_area(rt):
    """The demo's meters have accounts (and sales and commands, which DuckDB's foreign keys once held in their area
    by): a floor leaves Area B4 and joins Area B1, each save telling how many meters moved."""
    client = signed_in_client(rt, "admin")
    b4, b1 = _area(rt, "Area B4"), _area(rt, "Area B1")
    with rt.engine.connect() as conn:
        before = set(conn.execute(sa.select(area_meter.c.meter_id).where(area_meter.c.area_id == b1["id"])).scalars())
    form = _form_of(client, b4["id"])
    floor = form["floors"][-1]
    r = _save(client, b4["id"], **{**form, "floors": form["floors"][:-1]})
    assert "it feeds 102 meters (0 added, 20 taken out)" in json.dumps(r.json()["response"][ID.RESULT])
    form = _form_of(client, b1["id"])
    r = _save(client, b1["id"], **{**form, "floors": [*form["floors"], floor]})
    assert "Area B1 saved: it feeds 142 meters (20 added, 0 taken out)" in json.dumps(r.json()["response"][ID.RESULT])
    with rt.engine.connect() as conn:
        fed = set(conn.execute(sa.select(area_meter.c.meter_id).where(area_meter.c.area_id == b1["id"])).scalars())
        moved = sorted(fed - before)
        held = conn.execute(sa.select(sa.func.count(sa.distinct(account_meter.c.meter_id)))
                            .where(account_meter.c.meter_id.in_(moved))).scalar_one()
    assert len(fed) == 142 and len(moved) == 20 and held > 0, "meters with accounts were among those moved"
    assert floor in _form_of(client, b1["id"])["floors"] and floor not in _form_of(client, b4["id"])["floors"]


def _camera(client, area_id, name, url, kind="page"):
    return client.callback("grid.area_edit.camera_add", {
        f"{ID.CAMERA_ADD}.n_clicks": 1, f"{ID.AREA}.data": area_id, f"{ID.CAMERA_NAME}.value": name,
        f"{ID.CAMERA_URL}.value": url, f"{ID.CAMERA_KIND}.value": kind})


def test_cameras_are_added_and_removed_and_a_javascript_address_is_refused(rt):
    client = signed_in_client(rt, "admin")
    area = _area(rt, "Area B4")
    r = _camera(client, area["id"], "Gate", "javascript:alert(document.cookie)")
    assert "only http and https" in json.dumps(r.json()["response"][ID.CAMERA_RESULT])
    r = _camera(client, area["id"], "Gate", "https://gate.example/live", "snapshot")
    out = r.json()["response"]
    assert "Camera Gate added" in json.dumps(out[ID.CAMERA_RESULT]) and "https://gate.example/live" in json.dumps(
        out[ID.CAMERAS])
    with rt.engine.connect() as conn:
        cam_id = conn.execute(sa.select(camera.c.id).where(camera.c.name == "Gate")).scalar_one()
    r = _remove(client, cam_id, area["id"])
    assert r.status == 200 and "Camera removed" in json.dumps(r.json()["response"][ID.CAMERA_RESULT])
    with rt.engine.connect() as conn:
        assert conn.execute(sa.select(camera.c.id).where(camera.c.name == "Gate")).first() is None


def _remove(client, cam_id, area_id):
    from dashboard.auth import GUARDED_CALLBACKS
    spec = client.callback_spec(GUARDED_CALLBACKS["grid.area_edit.camera_remove"].output)
    button = {"camera": cam_id, "type": ID.CAMERA_REMOVE}
    body = {"output": spec["output"], "outputs": [{"id": ID.CAMERA_RESULT, "property": "children"},
                                                  {"id": ID.CAMERAS, "property": "children"}],
            "inputs": [[{"id": button, "property": "n_clicks", "value": 1}]],
            "state": [{"id": ID.AREA, "property": "data", "value": area_id}],
            "changedPropIds": [json.dumps(button, separators=(",", ":"), sort_keys=True) + ".n_clicks"]}
    return client.post_json("/_dash-update-component", body)


def test_an_operator_without_grid_edit_neither_sees_the_page_nor_saves(rt):
    client = signed_in_client(rt, "operator")
    area = _area(rt, "Area B1")
    assert ID.SAVE not in client.page(PATH, f"?id={area['id']}").text
    r = _save(client, area["id"], rating="1000")
    assert r.status == 403 and _area(rt, "Area B1") == area
    assert _camera(client, area["id"], "X", "https://x.example/").status == 403


@pytest.mark.parametrize("locale", ["en-US", "zh-CN"])
def test_on_a_phone_the_page_fits_390_px(rt, browser, locale):
    from tests.webclient import base_url, browser_signed_in
    context, page = browser_signed_in(browser, rt, "admin", width=390, locale=locale)
    try:
        page.goto(base_url(rt) + PATH)
        page.wait_for_selector(f"#{ID.SAVE}")
        page.click(f"#{ID.SAVE}")
        page.wait_for_selector(f"#{ID.RESULT} .alert")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
    finally:
        context.close()
