"""What a callback accepts from the browser (dashboard/inputs.py): ids that can name a row, strings, days and times
a clock can convert; everything else is None, [] or a BadValue the page words."""
from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from core.clock import show_stored_text
from dashboard import inputs


@pytest.mark.parametrize("value, expected", [(7, 7), ("7", 7), (" 12 ", 12), (2 ** 31 - 1, 2 ** 31 - 1)])
def test_a_row_id_is_a_positive_whole_number_within_an_integer_column(value, expected):
    assert inputs.record_id(value) == expected


@pytest.mark.parametrize("value", [0, -1, 2 ** 31, 10 ** 40, "99999999999999999999", "٥", "５", "1_0", "1e3", 1.0,
                                   True, None, "", [1], {"id": 1}])
def test_anything_else_names_no_row(value):
    assert inputs.record_id(value) is None


def test_a_list_of_ids_keeps_the_valid_ones_once_in_order():
    assert inputs.record_ids([3, "4", 3, 10 ** 40, True, None, 1]) == [3, 1]
    assert inputs.record_ids("3,4") == [] and inputs.record_ids({"ids": [1]}) == []


@pytest.mark.parametrize("value, expected", [("2026-11-21", dt.date(2026, 11, 21)),
                                             ("2026-11-21T08:00", dt.date(2026, 11, 21)), ("", None), (None, None)])
def test_a_day_is_read_from_a_date_or_the_date_of_a_date_and_time(value, expected):
    assert inputs.day(value) == expected


@pytest.mark.parametrize("value", ["0001-01-01", "9999-12-31", "2026-13-01", "21/11/2026", 20261121, ["2026-11-21"],
                                   "x" * 100_000])
def test_a_day_no_clock_can_convert_or_that_is_no_date_is_a_bad_value_quoted_short(value):
    with pytest.raises(inputs.BadValue) as caught:
        inputs.day(value)
    assert len(str(caught.value)) <= 40


def test_a_time_is_read_without_its_zone_and_refused_beyond_the_years_a_clock_converts():
    assert inputs.moment("2026-11-21T08:30") == dt.datetime(2026, 11, 21, 8, 30)
    assert inputs.moment("2026-11-21T08:30+05:00") == dt.datetime(2026, 11, 21, 8, 30)
    for bad in ("0001-01-01T00:00", "9999-12-31T23:59", "noon", 12):
        with pytest.raises(inputs.BadValue):
            inputs.moment(bad)


def test_texts_and_stores_of_the_wrong_type_become_empty():
    assert inputs.text(5) is None and inputs.text("a") == "a"
    assert inputs.texts(["cashier", 1, None, ["x"]]) == ["cashier"] and inputs.texts("cashier") == []
    assert inputs.mapping([1]) == {} and inputs.mapping({"a": 1}) == {"a": 1}


def test_a_stored_time_text_at_the_edge_of_the_calendar_is_shown_as_it_was_written():
    zone = ZoneInfo("Asia/Shanghai")
    assert show_stored_text("0001-01-01 00:00:00", ZoneInfo("America/New_York")) is None
    assert show_stored_text("9999-12-31 23:00:00", zone) is None
    assert show_stored_text("2026-11-21 00:00:00", zone) == "2026-11-21 08:00:00"
