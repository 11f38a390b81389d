"""The demo's simulator page (/grid/simulator) on the demo site, through its callbacks as the browser calls them: the
admin puts a stuck tap changer, a door and a supply offset on an area's terminal and the collector reads them back
over Modbus on the next poll (the field shows the stuck tap); each change in the operation log; a manager or a
cashier is refused with nothing changed; bad offsets refused in English and Chinese; a site without the simulator
offers nothing. And the demo's first start: one area seeded out of the band, which the automatic voltage control
steps back."""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import time

import pytest
import sqlalchemy as sa

from collectors.schedule import POLL_JOB
from dashboard.i18n import t
from dashboard.ids import GridSimulator as ID
from serve.demo_field import DEMO_OFFSET_PCT
from storage import audit
from storage import grid_control as store
from storage.schema import transformer_area

from tests.webclient import signed_in_client, start_demo_runtime

PATH = "/grid/simulator"
BAND_HIGH = 220.0 * 1.07      # the demo areas' band: +-7 % of their 220 V nominal phase voltage


@pytest.fixture(scope="module")
def rt(tmp_path_factory):
    runtime = start_demo_runtime(tmp_path_factory.mktemp("simulator"))
    yield runtime
    runtime.stop()


@pytest.fixture(scope="module")
def admin(rt):
    return signed_in_client(rt, "admin")


def _area(rt, name: str) -> dict:
    return next(a for a in rt.demo_field.areas() if a["name"] == name)


def _switch(client, area_id, control: str, on: int):
    from dashboard.auth import GUARDED_CALLBACKS
    spec = client.callback_spec(GUARDED_CALLBACKS["grid.simulator.switch"].output)
    button = {"control": control, "on": on, "type": ID.SWITCH}
    body = {"output": spec["output"], "outputs": [{"id": ID.RESULT, "property": "children"},
                                                  {"id": ID.STATE, "property": "children"}],
            "inputs": [[{"id": button, "property": "n_clicks", "value": 1}]],
            "state": [{"id": ID.AREA, "property": "value", "value": area_id}],
            "changedPropIds": [json.dumps(button, separators=(",", ":"), sort_keys=True) + ".n_clicks"]}
    return client.post_json("/_dash-update-component", body)


def _offset(client, area_id, typed):
    return client.callback("grid.simulator.offset", {f"{ID.OFFSET_APPLY}.n_clicks": 1, f"{ID.AREA}.value": area_id,
                                                     f"{ID.OFFSET}.value": typed})


def _text(r) -> str:
    return json.dumps(r.json(), ensure_ascii=False)


def _telemetry(rt, area_id: int) -> dict:
    with rt.engine.connect() as conn:
        mid = conn.execute(sa.select(transformer_area.c.terminal_meter_id)
                           .where(transformer_area.c.id == area_id)).scalar_one()
        seen = store.telemetry(conn, mid)
        extra = conn.execute(sa.text("SELECT door_open FROM meter_state WHERE meter_id = :m"), {"m": mid}).scalar()
    return {**seen, "door_open": extra}


def _log(rt, action: str) -> list[dict]:
    with rt.engine.connect() as conn:
        return audit.entries(conn, action=action)


def test_the_page_lists_the_areas_and_what_is_put_on_the_chosen_terminal(rt, admin):
    page = admin.page(PATH)
    assert page.status == 200
    text = _text(page)
    assert all(f"Area B{n}" in text for n in (1, 2, 3, 4)) and ID.OFFSET_APPLY in text
    assert t("simulator.switch.stuck_tap", "en") in text and t("simulator.turn_on", "en") in text
    b3 = _area(rt, "Area B3")
    shown = _text(admin.callback("grid.simulator.show", {f"{ID.AREA}.value": b3["id"]}))
    assert b3["terminal"] in shown and f"/grid/area?id={b3['id']}" in shown


def test_a_stuck_tap_and_an_open_door_are_put_on_the_terminal_read_on_the_next_poll_and_logged(rt, admin):
    area = _area(rt, "Area B1")
    r = _switch(admin, area["id"], "stuck_tap", 1)
    assert r.status == 200, r.text[-500:]
    assert t("simulator.switched", "en", area="Area B1", control=t("simulator.switch.stuck_tap", "en"),
             state=t("simulator.on", "en")) in _text(r)
    assert rt.demo_field.state(area["id"])["switches"]["stuck_tap"] is True
    assert "stuck_tap" in rt.field_thread.field.meter(area["terminal"]).faults
    assert _switch(admin, area["id"], "door_open", 1).status == 200
    rt.jobs.run(POLL_JOB)
    assert bool(_telemetry(rt, area["id"])["door_open"]), "the door read over Modbus"
    rows = _log(rt, "simulator.fault")
    stuck = next(row for row in rows if '"stuck_tap": true' in row["after"])
    assert stuck["operator"] == "admin" and stuck["target"] == "area:Area B1"
    assert json.loads(stuck["before"]) == {"stuck_tap": False}
    assert json.loads(stuck["after"]) == {"stuck_tap": True, "terminal": area["terminal"]}
    for control in ("stuck_tap", "door_open"):
        assert _switch(admin, area["id"], control, 0).status == 200
    assert not any(rt.demo_field.state(area["id"])["switches"].values())


def test_a_supply_offset_typed_with_full_width_digits_moves_the_voltages_read_on_the_next_poll(rt, admin):
    area = _area(rt, "Area B2")
    r = _offset(admin, area["id"], "１０")
    assert r.status == 200 and t("simulator.offset_set", "en", area="Area B2", percent="+10") in _text(r)
    assert rt.demo_field.state(area["id"])["supply_offset_pct"] == 10.0
    rt.jobs.run(POLL_JOB)
    seen = _telemetry(rt, area["id"])
    assert max(seen[f"voltage_{p}"] for p in "abc") > BAND_HIGH, "out of the band, as read over Modbus"
    row = _log(rt, "simulator.supply_offset")[0]
    assert (row["operator"], row["target"]) == ("admin", "area:Area B2")
    assert json.loads(row["after"])["supply_offset_pct"] == 10.0
    assert _offset(admin, area["id"], "0").status == 200
    assert rt.demo_field.state(area["id"])["supply_offset_pct"] == 0.0


@pytest.mark.parametrize("role", ["manager", "cashier"])
def test_a_manager_or_a_cashier_is_refused_and_nothing_changes(rt, role):
    client = signed_in_client(rt, role)
    area = _area(rt, "Area B4")
    assert ID.OFFSET_APPLY not in client.page(PATH).text
    before, logged = rt.demo_field.state(area["id"]), len(_log(rt, "simulator.fault"))
    r = _switch(client, area["id"], "smoke", 1)
    assert r.status == 403 and r.json()["permission"] == "site.edit"
    assert _offset(client, area["id"], "5").status == 403
    assert rt.demo_field.state(area["id"]) | {"volts": None} == before | {"volts": None}
    assert len(_log(rt, "simulator.fault")) == logged and _log(rt, "permission.denied")[0]["operator"] == role


def test_the_service_refuses_an_operator_without_site_edit_too(rt):
    from billing.credit import Actor
    from serve.demo_field import SimulatorError
    area = _area(rt, "Area B4")
    with pytest.raises(SimulatorError) as refused:
        rt.demo_field.set_switch(Actor("olga", frozenset({"grid.adjust"})), area["id"], "water", True)
    assert refused.value.code == "permission"
    assert t("admin.permissions.site.edit", "zh") in refused.value.text("zh")
    assert rt.demo_field.state(area["id"])["switches"]["water"] is False


BAD_OFFSETS = [("50,5", "offset_decimal_comma"), ("abc", "offset_not_number"), ("=1+1", "offset_not_number"),
               ("1e309", "offset_not_number"), ("99999999999999999999", "offset_not_number"),
               ("25", "offset_out_of_range"), ("-20.5", "offset_out_of_range"), ("５\x00", "offset_not_number"),
               ("", "offset_required"), (10 ** 400, "offset_out_of_range"), (1e300, "offset_out_of_range"),
               (["1"], "offset_not_number"), (True, "offset_not_number")]


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_bad_offsets_are_refused_in_the_operators_language_and_nothing_changes(rt, lang):
    client = signed_in_client(rt, "admin")
    if lang == "zh":
        client.get("/lang/zh?next=/", follow=False, headers={"Sec-Fetch-Site": "none"})
    try:
        _refused_offsets(rt, client, lang)
    finally:   # the language chosen is the operator's own: back to English for the other tests
        client.get("/lang/en?next=/", follow=False, headers={"Sec-Fetch-Site": "none"})


def _refused_offsets(rt, client, lang: str) -> None:
    from serve.demo_field import SimulatorError, parse_offset
    area = _area(rt, "Area B3")
    logged = len(_log(rt, "simulator.supply_offset"))
    for typed, code in BAD_OFFSETS:
        with pytest.raises(SimulatorError) as refused:
            parse_offset(typed)
        assert refused.value.code == code, typed
        r = _offset(client, area["id"], typed)
        said = json.dumps(refused.value.text(lang), ensure_ascii=False)[1:-1]
        assert r.status == 200 and said in _text(r), (typed, r.status, r.text[:300])
    for not_a_number in (float("nan"), float("inf")):
        with pytest.raises(SimulatorError):
            parse_offset(not_a_number)
    assert rt.demo_field.state(area["id"])["supply_offset_pct"] == 0.0
    assert len(_log(rt, "simulator.supply_offset")) == logged
    assert ("请用小数点" in t("simulator.error.offset_decimal_comma", lang, value="50,5")) == (lang == "zh")


def test_junk_areas_and_controls_are_refused_in_words(rt, admin):
    for area in (None, "x", -1, 2 ** 40, True, {"id": 1}):
        r = _offset(admin, area, "5")
        assert r.status == 200 and t("simulator.error.area_unknown", "en") in _text(r), area
    b1 = _area(rt, "Area B1")
    assert t("simulator.error.control_unknown", "en") in _text(_switch(admin, b1["id"], "meltdown", 1))
    assert t("simulator.error.value_invalid", "en") in _text(_switch(admin, b1["id"], "smoke", 7))
    assert not any(rt.demo_field.state(b1["id"])["switches"].values())


def test_a_site_without_the_simulator_says_so_and_offers_nothing(rt, admin):
    kept, rt.demo_field = rt.demo_field, None
    try:
        page = _text(admin.page(PATH))
        assert t("simulator.none", "en") in page and ID.OFFSET_APPLY not in page and ID.SWITCH not in page
        r = _offset(admin, 1, "5")
        assert r.status == 200 and t("simulator.none", "en") in _text(r)
    finally:
        rt.demo_field = kept


def test_the_callbacks_answer_no_bad_value_with_a_500(rt, admin):
    from tests.test_fuzz_inputs import _bodies, _failure, _server_callbacks, good_values
    b4 = _area(rt, "Area B4")   # good values that reach the service: a real area, an offset it takes
    good = {**good_values(rt), f"{ID.AREA}.value": b4["id"], f"{ID.OFFSET}.value": "1"}
    failures, sent = [], 0
    for spec in _server_callbacks(admin):
        if "gsim-" not in spec["output"]:
            continue
        for field, name, body in _bodies(spec, good):
            sent += 1
            r = admin.post_json("/_dash-update-component", body)
            if _failure(r.status, r.text):
                failures.append(f"{spec['output'][:60]} {field}={name}: {r.status}")
    assert sent > 50 and not failures, failures
    rt.demo_field.set_supply_offset(_admin_actor(), b4["id"], 0)
    for control, on in rt.demo_field.state(b4["id"])["switches"].items():
        if on:
            rt.demo_field.set_switch(_admin_actor(), b4["id"], control, False)


def _admin_actor():
    from billing.credit import Actor
    from operators.service import DEFAULT_ROLE_PERMISSIONS
    return Actor("admin", DEFAULT_ROLE_PERMISSIONS["admin"], address="127.0.0.1")


def test_the_demos_first_start_puts_one_area_out_of_the_band_and_the_automatic_voltage_control_steps_it_back(
        tmp_path):
    from grid import control
    from grid.avc import AutomaticVoltageControl
    demo = start_demo_runtime(tmp_path, database_url=f"duckdb:///{tmp_path / 'demo.duckdb'}")   # seeded afresh
    try:
        states = {a["name"]: demo.demo_field.state(a["id"]) for a in demo.demo_field.areas()}
        assert states["Area B1"]["supply_offset_pct"] == DEMO_OFFSET_PCT
        assert all(s["supply_offset_pct"] == 0.0 and not any(s["switches"].values())
                   for name, s in states.items() if name != "Area B1"), "nothing else disturbed"
        area = states["Area B1"]
        start_tap = area["tap_position"]
        demo.jobs.run(POLL_JOB)
        assert max(_telemetry(demo, area["id"])[f"voltage_{p}"] for p in "abc") > BAND_HIGH
        # the job as scheduled, then as it runs once the first delay (60 s) has passed
        AutomaticVoltageControl(demo.billing, enable_new_areas=True).run_once()
        later = dataclasses.replace(demo.billing, clock=lambda: demo.billing.now() + dt.timedelta(seconds=65))
        AutomaticVoltageControl(later, enable_new_areas=True).run_once()
        for _ in range(100):
            demo.dispatcher.run_once()
            time.sleep(0.05)
            if demo.demo_field.state(area["id"])["tap_position"] < start_tap:
                break
        assert demo.demo_field.state(area["id"])["tap_position"] == start_tap - 1, "one step down"
        taps = control.actions(demo.billing, area["id"]).query("action == 'tap'")
        assert list(taps["mode"])[-1:] == ["auto"] and list(taps["reason_code"])[-1:] == ["voltage_high"]
        others = [a["id"] for name, a in states.items() if name != "Area B1"]
        assert all(control.actions(demo.billing, i).query("action == 'tap'").empty for i in others)
    finally:
        demo.stop()


@pytest.mark.parametrize("locale", ["en-US", "zh-CN"])
def test_on_a_phone_the_page_fits_390_px_and_a_switch_turns_on_and_off(rt, browser, locale):
    from tests.webclient import base_url, browser_signed_in
    context, page = browser_signed_in(browser, rt, "admin", width=390, locale=locale)
    try:
        page.goto(base_url(rt) + PATH)
        page.locator(f"[id*='{ID.SWITCH}'][id*='harmonics'][id*='\"on\":1']").click()    # turn on
        page.wait_for_selector(f"[id*='{ID.SWITCH}'][id*='harmonics'][id*='\"on\":0']")    # now offers: turn off
        assert page.locator(f"#{ID.RESULT} .alert-success").count() == 1
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        page.locator(f"[id*='{ID.SWITCH}'][id*='harmonics'][id*='\"on\":0']").click()
        page.wait_for_selector(f"[id*='{ID.SWITCH}'][id*='harmonics'][id*='\"on\":1']")
    finally:
        context.close()
    first = rt.demo_field.areas()[0]
    assert rt.demo_field.state(first["id"])["switches"]["harmonics"] is False
