"""The transformer areas' live pages on the demo site, through their callbacks as the browser calls them: the list
with every area, one area's values as its terminal last read them, a week of one-minute telemetry drawn with at most
the point budget a line (and a zoom drawing the window's every poll), a junk area number answered with a message,
the pages closed to a worker, the controls refused in the operator's language with nothing queued; and in Chromium
on a 390 px phone, the area page fits without sideways scroll (en, zh) and its trends follow the phone turned
sideways."""
from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import pytest
import sqlalchemy as sa

from dashboard.components.grid_area import TREND_BUDGET, fmt, trend_points
from dashboard.i18n import t
from dashboard.ids import GridArea as ID
from dashboard.ids import GridAreas as LID
from storage.schema import command, meter_state, transformer_area

from tests.webclient import signed_in_client, start_demo_runtime

WEEK_AREA = "Area B2"


@pytest.fixture(scope="module")
def rt(tmp_path_factory):
    runtime = start_demo_runtime(tmp_path_factory.mktemp("gridarea"))
    _seed_a_week(runtime)
    yield runtime
    runtime.stop()


def _area(rt, name: str) -> dict:
    with rt.engine.connect() as conn:
        return dict(conn.execute(sa.select(transformer_area).where(transformer_area.c.name == name))
                    .mappings().one())


def _seed_a_week(rt) -> None:
    """A week of one-minute polls of one area's terminal before the demo's own history (bulk, from a frame)."""
    from grid.demo import READING_KEYS, terminal_telemetry
    from storage.timeseries import append_device_history, append_readings
    area = _area(rt, WEEK_AREA)
    with rt.engine.connect() as conn:
        first = conn.execute(sa.text("SELECT min(ts) FROM readings WHERE meter_id = :m"),
                             {"m": area["terminal_meter_id"]}).scalar_one()
    ts = pd.date_range(end=pd.Timestamp(first) - pd.Timedelta(minutes=1), periods=6 * 24 * 60, freq="min")
    frame = terminal_telemetry(ts).assign(meter_id=area["terminal_meter_id"])
    with rt.engine.begin() as conn:
        append_readings(conn, frame[["ts", "meter_id", *READING_KEYS]])
        append_device_history(conn, frame.drop(columns=list(READING_KEYS)))


def _walk(node, found: list):
    if isinstance(node, dict):
        found.append(node)
        for v in node.values():
            _walk(v, found)
    elif isinstance(node, list):
        for v in node:
            _walk(v, found)
    return found


def _by_id(body, ident) -> dict:
    return next(n["props"] for n in _walk(body, []) if isinstance(n.get("props"), dict)
                and n["props"].get("id") == ident)


def test_the_list_shows_every_area_with_a_link_to_its_page(rt):
    client = signed_in_client(rt, "operator")
    page = client.page("/grid/areas")
    assert page.status == 200
    text = json.dumps(page.json())
    for n in (1, 2, 3, 4):
        area = _area(rt, f"Area B{n}")
        assert f"Area B{n}" in text and f"/grid/area?id={area['id']}" in text
    r = client.callback("grid.areas.refresh", {f"{LID.TICK}.n_intervals": 1})
    assert r.status == 200 and "Area B4" in r.text


def test_the_area_page_shows_its_terminals_latest_reading(rt):
    area = _area(rt, "Area B1")
    with rt.engine.connect() as conn:
        state = dict(conn.execute(sa.select(meter_state).where(
            meter_state.c.meter_id == area["terminal_meter_id"])).mappings().one())
    client = signed_in_client(rt, "operator")
    page = client.page("/grid/area", f"?id={area['id']}")
    assert page.status == 200
    body = page.json()["response"]
    live = json.dumps(_by_id(body, ID.LIVE), ensure_ascii=False)
    for key, digits in (("voltage_a", 1), ("voltage_c", 1), ("current_b", 1), ("thd_u_a", 1), ("thd_i_c", 1),
                        ("current_n", 1), ("power_total", 1), ("reactive_total", 1), ("pf_total", 3),
                        ("oil_temp", 1), ("humidity", 0)):
        assert fmt(state[key], digits) in live, key
    assert t("grid_area.tap_of", "en", position=state["tap_position"], count=5) in live
    shown = {n["props"]["data-breaker"]: n["props"]["data-state"] for n in _walk(_by_id(body, ID.SIGNALS), [])
             if isinstance(n.get("props"), dict) and "data-breaker" in n["props"]}
    assert shown == {str(i): "closed" if state[f"breaker_{i}"] else "open" for i in range(1, 9)}
    # the area's cameras open in a new tab that cannot reach back into this page
    links = [n["props"] for n in _walk(_by_id(body, ID.CAMERAS), []) if n.get("type") == "A"]
    from grid.areas import cameras
    assert len(links) == len(cameras(rt.engine, area["id"]))
    assert all(a["target"] == "_blank" and a["rel"] == "noopener noreferrer" and a["href"].startswith("http")
               for a in links)
    # the tick reads them again, as the terminal's latest state says
    r = client.callback("grid.area.live", {f"{ID.TICK}.n_intervals": 1, f"{ID.AREA}.data": area["id"]})
    out = r.json()["response"]
    assert fmt(state["voltage_b"], 1) in json.dumps(out[ID.LIVE])
    assert t(f"grid_area.comm.{state['comm_state']}", "en") in json.dumps(out[ID.SIGNALS])


def test_a_week_of_one_minute_telemetry_is_drawn_with_at_most_the_budget_a_line(rt):
    area = _area(rt, WEEK_AREA)
    client = signed_in_client(rt, "manager")
    r = client.callback("grid.area.range", {f"{ID.RANGE}.value": "7d", f"{ID.AREA}.data": area["id"]})
    out = r.json()["response"]
    traces = out[ID.CHART]["figure"]["data"]
    names = {tr["name"] for tr in traces}
    assert {"UA", "UB", "UC", "IA", "IN", "THDu A", "THDi C"} <= names
    sizes = trend_points(out[ID.CHART]["figure"])
    assert max(sizes) <= TREND_BUDGET and min(sizes) > TREND_BUDGET // 2   # 10,000 polls thinned, not dropped
    applied = out[ID.APPLIED]["data"]
    with rt.engine.connect() as conn:
        polls = conn.execute(sa.text("SELECT count(DISTINCT ts) FROM readings WHERE meter_id = :m AND ts >= :a "
                                     "AND ts < :b"), {"m": area["terminal_meter_id"], "a": applied["start"],
                                                      "b": applied["end"]}).scalar_one()
    assert polls > 6 * 24 * 60
    assert out[ID.TREND_NOTE]["children"] == t("grid_area.trend_note", "en", n=f"{polls:,}",
                                               budget=f"{TREND_BUDGET:,}")   # the polls in the range, said
    # zooming into two hours draws every poll of them
    end = dt.datetime.fromisoformat(applied["start"]) + dt.timedelta(days=2)
    start = end - dt.timedelta(hours=2)
    local = [rt.billing.local(x).strftime("%Y-%m-%d %H:%M:%S") for x in (start, end)]
    r = client.callback("grid.area.zoom", {f"{ID.CHART}.relayoutData": {"xaxis.range[0]": local[0],
                                                                         "xaxis.range[1]": local[1]},
                                           f"{ID.APPLIED}.data": applied, f"{ID.AREA}.data": area["id"]})
    zoomed = r.json()["response"][ID.CHART]["figure"]
    assert {n for tr, n in zip(zoomed["data"], trend_points(zoomed)) if tr["name"] == "UA"} == {120}


@pytest.mark.parametrize("ident", ["999999", "abc", "1.5", "-1", "９", "1e3", ""])
def test_a_junk_area_number_is_answered_with_a_message(rt, ident):
    client = signed_in_client(rt, "operator")
    page = client.page("/grid/area", f"?id={ident}")
    assert page.status == 200
    assert (t("grid_area.unknown_area", "en") in page.text) or (ident == "" and ID.LIVE in page.text)


def test_a_worker_may_neither_open_the_pages_nor_read_them(rt):
    client = signed_in_client(rt, "worker")
    assert LID.LIST not in client.page("/grid/areas").text
    assert ID.LIVE not in client.page("/grid/area", "?id=1").text
    assert client.callback("grid.area.live", {f"{ID.TICK}.n_intervals": 1, f"{ID.AREA}.data": 1}).status == 403


def _counts(rt) -> tuple[int, int]:
    with rt.engine.connect() as conn:
        return (conn.execute(sa.select(sa.func.count()).select_from(command)).scalar_one(),
                conn.execute(sa.text("SELECT count(*) FROM grid_action")).scalar_one())


def _press(client, name: str, *, outlet=None, position=None, area_id=None):
    """A control's button pressed: the confirmation callback as the browser posts it (its buttons matched by ALL)."""
    from dashboard.auth import GUARDED_CALLBACKS
    from dashboard.components.grid_area import CONTROLS
    from tests.webclient import _outputs
    spec = client.callback_spec(GUARDED_CALLBACKS["grid.area.confirm"].output)
    pressed = json.dumps(ID.action(name), sort_keys=True, separators=(",", ":"))
    values = {f"{ID.OUTLET}.value": outlet, f"{ID.TAP}.value": position, f"{ID.AREA}.data": area_id}
    body = {"output": spec["output"], "outputs": _outputs(spec["output"]),
            "inputs": [[{"id": ID.action(n), "property": "n_clicks", "value": 1 if n == name else None}
                        for n in CONTROLS]],
            "state": [{"id": d["id"], "property": d["property"], "value": values.get(f"{d['id']}.{d['property']}")}
                      for d in spec["state"]],
            "changedPropIds": [f"{pressed}.n_clicks"]}
    return client.post_json("/_dash-update-component", body)


def _send(client, area_id: int, pending: dict, reason):
    return client.callback("grid.area.send", {f"{ID.SEND}.n_clicks": 1, f"{ID.PENDING}.data": pending,
                                              f"{ID.REASON}.value": reason, f"{ID.AREA}.data": area_id})


def test_a_control_asks_for_confirmation_and_an_operators_breaker_command_is_queued_and_logged(rt):
    area = _area(rt, "Area B3")
    client = signed_in_client(rt, "operator")
    page = json.dumps(client.page("/grid/area", f"?id={area['id']}").json())
    assert ID.OUTLET in page and t("grid_area.control.breaker_open", "en") in page
    out = _press(client, "breaker_open", outlet="8", area_id=area["id"]).json()["response"]
    assert out[ID.CONFIRM]["is_open"] is True and out[ID.PENDING]["data"]["outlet"] == "8"
    before = _counts(rt)
    out = _send(client, area["id"], out[ID.PENDING]["data"], "spare outlet check").json()["response"]
    assert '"data-done": "breaker_open"' in json.dumps(out[ID.CONTROL_RESULT])
    assert _counts(rt) == (before[0] + 1, before[1] + 1)
    assert t("grid_control.action.breaker_open", "en") in json.dumps(out[ID.ACTIONS], ensure_ascii=False)


def test_a_capacity_mode_set_by_hand_tells_the_operator_the_automatic_capacity_mode_is_off(rt):
    from grid import control
    from storage import grid_control as gstore
    area = _area(rt, "Area B1")
    with rt.engine.begin() as conn:
        control.automation_row(conn, area["id"], rt.billing.now(), enabled=True)
        gstore.update_automation(conn, area["id"], enabled=True, capacity_auto=True)
    client = signed_in_client(rt, "operator")
    typed_in = {"Sec-Fetch-Site": "none"}
    client.get("/lang/zh?next=/status", follow=False, headers=typed_in)
    try:
        out = _send(client, area["id"], {"name": "mode_small", "area": area["id"]}, "检修").json()["response"]
    finally:
        client.get("/lang/en?next=/status", follow=False, headers=typed_in)
    shown = json.dumps(out[ID.CONTROL_RESULT], ensure_ascii=False)
    assert "Area B1 的自动容量切换已退出" in shown and "投入自动" in shown
    assert "容量模式手动" in json.dumps(out[ID.CONTROLS], ensure_ascii=False)
    out = _send(client, area["id"], {"name": "mode_large", "area": area["id"]}, "back").json()["response"]
    assert "Automatic capacity mode" not in json.dumps(out[ID.CONTROL_RESULT]), "said once, when it is switched off"
    with rt.engine.connect() as conn:
        assert gstore.automation(conn, area["id"])["capacity_auto"] is False


@pytest.mark.parametrize("role, pending, reason, code", [
    ("manager", {"name": "breaker_open", "outlet": "3"}, "no right", "permission_denied"),
    ("analyst", {"name": "tap_up", "position": "4"}, "no right", "permission_denied"),
    ("operator", {"name": "breaker_close", "outlet": "９"}, "full-width digit", "outlet_invalid"),
    ("operator", {"name": "tap_set", "position": "50,5"}, "decimal comma", "tap_invalid"),
    ("operator", {"name": "tap_set", "position": "=1+2"}, "formula", "tap_invalid"),
])
def test_a_refused_control_is_told_in_the_operators_language_and_queues_nothing(rt, role, pending, reason, code):
    area = _area(rt, "Area B4")
    client = signed_in_client(rt, role)
    typed_in = {"Sec-Fetch-Site": "none"}    # the language switch as typed into the address bar
    client.get("/lang/zh?next=/status", follow=False, headers=typed_in)
    before = _counts(rt)
    try:
        out = _send(client, area["id"], {**pending, "area": area["id"]}, reason).json()["response"]
    finally:
        client.get("/lang/en?next=/status", follow=False, headers=typed_in)
    shown = json.dumps(out[ID.CONTROL_RESULT], ensure_ascii=False)
    assert f'"data-code": "{code}"' in shown and "已拒绝" in shown
    assert _counts(rt) == before


def test_a_control_without_a_reason_keeps_the_dialog_open_and_queues_nothing(rt):
    area = _area(rt, "Area B4")
    client = signed_in_client(rt, "operator")
    before = _counts(rt)
    out = _send(client, area["id"], {"name": "mode_small", "area": area["id"]}, "  ").json()["response"]
    assert ID.CONFIRM not in out or out[ID.CONFIRM]["is_open"] is not False
    assert '"data-code": "reason_required"' in json.dumps(out[ID.CONFIRM_TEXT])
    assert _counts(rt) == before


# the trends' drawing and its box, px
_CHART_WIDTHS = """(id) => {
  const box = document.getElementById(id), svg = box && box.querySelector('.main-svg');
  return {box: box ? box.clientWidth : 0, svg: svg ? svg.getBoundingClientRect().width : 0};
}"""


@pytest.mark.parametrize("locale", ["en-US", "zh-CN"])
def test_on_a_phone_the_area_page_fits_390_px(rt, browser, locale):
    from tests.webclient import base_url, browser_signed_in
    area = _area(rt, "Area B1")
    context, page = browser_signed_in(browser, rt, "operator", width=390, locale=locale)
    try:
        page.goto(base_url(rt) + f"/lang/{locale[:2]}?next=/status")
        page.goto(base_url(rt) + f"/grid/area?id={area['id']}")
        page.wait_for_selector(f"#{ID.CHART} .main-svg")
        page.wait_for_selector(f"#{ID.LIVE} table")
        assert t("grid_area.phases", locale[:2]) in page.inner_text(f"#{ID.LIVE}")   # in the language chosen
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        # the phone turned sideways: the trends follow the wider box (they kept their first width before)
        upright = page.evaluate(_CHART_WIDTHS, ID.CHART)
        assert abs(upright["svg"] - upright["box"]) <= 3 and upright["box"] <= 390, upright
        page.set_viewport_size({"width": 844, "height": 390})
        page.wait_for_function(f"(id) => ({_CHART_WIDTHS})(id).box > 600", arg=ID.CHART)
        try:
            page.wait_for_function(f"(id) => {{ const w = ({_CHART_WIDTHS})(id); return Math.abs(w.svg - w.box) <= 3; }}",
                                   arg=ID.CHART, timeout=10000)
        except Exception:
            pass   # the assertion below says what it measured
        sideways = page.evaluate(_CHART_WIDTHS, ID.CHART)
        assert abs(sideways["svg"] - sideways["box"]) <= 3 and sideways["box"] > 600, sideways
        assert page.evaluate("document.documentElement.scrollWidth") <= 844
        page.set_viewport_size({"width": 390, "height": 844})
        page.goto(base_url(rt) + "/grid/areas")
        page.wait_for_selector(f"#{LID.LIST}")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
    finally:
        context.close()


# ---------------------------------------------------------------------------------------------
# the queries under the page, on each engine of the matrix
@pytest.fixture
def small_area(any_engine):
    """One area (master meter, terminal, one room meter) with two days of one-minute telemetry of its terminal."""
    from collectors.topology_import import import_topology
    from grid.demo import READING_KEYS, terminal_telemetry
    from storage.schema import meter
    from storage.timeseries import append_device_history, append_readings
    base = {"building": "Block T", "area": "Area T", "gateway": "GW-T", "host": "127.0.0.1", "framing": "socket",
            "bus": "1", "port": "15991"}
    rows = [{**base, "unit": "1", "profile": "eastron-sdm630", "meter_address": "202611300001",
             "area_role": "master", "ct_ratio": "1", "nominal_voltage": "220"},
            {**base, "unit": "2", "profile": "wattline-ttu", "meter_address": "202611300002", "area_role": "terminal"},
            {**base, "unit": "3", "profile": "acrel-ddsy1352", "meter_address": "202611300011"}]
    import_topology(any_engine, rows, {"acrel-ddsy1352", "eastron-sdm630", "wattline-ttu"}, dt.datetime(2026, 10, 1))
    with any_engine.connect() as conn:
        terminal = conn.execute(sa.select(meter.c.id).where(meter.c.address == "202611300002")).scalar_one()
        area_id = conn.execute(sa.text("SELECT id FROM transformer_area")).scalar_one()
    ts = pd.date_range("2026-11-01 00:00", periods=2 * 24 * 60, freq="min")
    frame = terminal_telemetry(ts).assign(meter_id=terminal)
    with any_engine.begin() as conn:
        append_readings(conn, frame[["ts", "meter_id", *READING_KEYS]])
        append_device_history(conn, frame.drop(columns=list(READING_KEYS)))
    return any_engine, area_id, frame


def test_two_days_of_telemetry_are_read_whole_and_drawn_within_the_budget(small_area):
    import zoneinfo

    from dashboard.components.grid_area import trends_figure
    from grid.telemetry import area_overview, area_trends, find_area
    from storage import alarms
    engine, area_id, frame = small_area
    area = find_area(engine, area_id)
    rows = area_trends(engine, area, dt.datetime(2026, 11, 1), dt.datetime(2026, 11, 3))
    assert len(rows) == len(frame) and rows["voltage_a"].round(6).tolist() == frame["voltage_a"].round(6).tolist()
    assert rows["thd_i_c"].notna().all() and rows["tap_position"].tolist() == frame["tap_position"].tolist()
    fig = trends_figure(rows, (area["band_low"], area["band_high"]), zoneinfo.ZoneInfo("Asia/Shanghai"), "zh")
    assert len(fig["data"]) == 18 and max(trend_points(fig)) <= TREND_BUDGET
    with engine.begin() as conn:    # an open alarm on the area counts on the list
        alarms.open_alarm(conn, alarms.AREA_SMOKE, ("area", area_id), alarms.AlarmLevel.CRITICAL, "area_smoke",
                          {"area": "Area T", "terminal": "202611300002"}, dt.datetime(2026, 11, 2))
    listed = area_overview(engine)
    assert listed["name"].tolist() == ["Area T"] and listed["alarms_open"].tolist() == [1]
