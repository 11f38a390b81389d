"""The energy analysis's drill-down and its hostile inputs, as pure functions: which place a click opens, what a
chart row is labelled, what a floor sent by the browser reads as."""
from __future__ import annotations

import pandas as pd
import pytest

from dashboard.components.analysis_layout import (BadQuery, drilled, energy_link, floor_value, labelled, place_level,
                                                  read_range)
from energy.insights import load_grain

SITE = {"building": None, "floor": None, "rooms": []}


def test_a_click_walks_site_building_floor_room_and_stops_at_a_room():
    building = drilled(SITE, "Building 2")
    assert building == {"building": "Building 2", "floor": None, "rooms": []} and place_level(building) == 1
    floor = drilled(building, 3)
    assert floor["floor"] == 3 and place_level(floor) == 2
    room = drilled(floor, "B2-301")
    assert room["rooms"] == ["B2-301"] and place_level(room) == 3
    assert drilled(room, "202611210001") is None


@pytest.mark.parametrize("place, key", [(SITE, 3), (SITE, None), (SITE, ["Building 1"]),
                                        ({"building": "B", "floor": None, "rooms": []}, "3"),
                                        ({"building": "B", "floor": None, "rooms": []}, True)])
def test_a_click_whose_point_names_no_place_of_the_next_level_opens_nothing(place, key):
    assert drilled(place, key) is None


@pytest.mark.parametrize("sent, floor", [(3, 3), ("3", 3), (" -1 ", -1), ("３", None), ("3.5", None),
                                         ("=1+1", None), (True, None), (10 ** 12, None), ("", None), (None, None)])
def test_a_floor_from_the_browser_is_a_small_whole_number_or_nothing(sent, floor):
    assert floor_value(sent) == floor


def test_rows_are_labelled_in_the_operators_language_and_keyed_for_the_click():
    df = pd.DataFrame({"period": pd.to_datetime(["2026-11-20"] * 2), "building": ["B1", "B1"],
                       "floor": pd.array([1, pd.NA], dtype="Int64"), "energy_kwh": [1.0, 2.0]})
    out = labelled(df, "floor", "zh")
    assert list(out["label"]) == ["1 层", "? 层"] and list(out["key"]) == [1, None]
    assert list(labelled(df, "site", "en")["label"]) == ["Site", "Site"]


def test_a_chart_link_opens_the_energy_analysis_with_its_query_encoded():
    assert energy_link(building="Building 1", floor=2, room="B1-201&x") == \
        "/analysis/energy?building=Building+1&floor=2&room=B1-201%26x"


def test_the_load_curve_takes_the_finest_step_within_the_point_budget():
    assert [load_grain(d) for d in (1, 15, 16, 62, 63, 400)] == ["15min", "15min", "hour", "hour", "day", "day"]


@pytest.mark.parametrize("first, last, said", [
    ("1950-01-01", "1950-01-31", "Choose the first and the last day."),      # the rollups hold 2000-2200
    ("2026-11-30", "2026-11-01", "The first day (2026-11-30) is after the last day (2026-11-01)."),
    ("2026-11-01", "2027-12-06", "At most 400 days at a time: choose fewer days."),    # 401 days
    ("2026-13-01", "2026-11-01", "“2026-13-01” is not a date."),
    (None, "2026-11-01", "Choose the first and the last day."),
])
def test_days_an_analysis_page_cannot_ask_for_are_refused_in_words(first, last, said):
    with pytest.raises(BadQuery) as refused:
        read_range(first, last, 400, "en")
    assert str(refused.value) == said
