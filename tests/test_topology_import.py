"""Topology import from CSV and XLSX: valid files create the site; any bad row writes nothing."""
from __future__ import annotations

import csv

import openpyxl
import pytest
import sqlalchemy as sa

from collectors.topology_import import TopologyImportError, import_file
from storage.audit import entries
from storage.schema import building, gateway, meter

PROFILES = {"acrel-ddsy1352", "eastron-sdm630", "wattline-ttu"}
HEADER = ["building", "floor", "room", "area", "gateway", "host", "framing", "bus", "port", "unit", "profile",
          "meter_address"]


def _good_rows():
    rows = []
    for bus_no in (1, 2):
        for unit in (1, 2, 3):
            rows.append(["Dorm A", "1", f"A-1{bus_no}{unit}", "", "GW-A", "127.0.0.1", "socket", str(bus_no),
                         str(15020 + bus_no - 1), str(unit), "acrel-ddsy1352", f"20261121{bus_no}{unit:03d}"])
    rows.append(["Dorm A", "", "", "Area A", "GW-A-master", "127.0.0.1", "rtu", "1", "15030", "1",
                 "eastron-sdm630", "202611219001"])
    return rows


def _write_csv(path, rows, header=HEADER):
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def _count(engine, table):
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table)).scalar()


def test_a_valid_csv_creates_the_site(any_engine, tmp_path, fixed_now):
    created = import_file(any_engine, _write_csv(tmp_path / "site.csv", _good_rows()), PROFILES, fixed_now)
    assert created["meters"] == 7 and created["gateways"] == 2 and created["buses"] == 3
    assert created["areas"] == 1 and created["rooms"] == 6


def test_an_xlsx_with_chinese_headers_is_read(duck_engine, tmp_path, fixed_now):
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["楼栋", "楼层", "房间", "台区", "网关", "IP", "规约", "总线", "端口", "站号", "表型", "表号"])
    for r in _good_rows():
        ws.append([int(v) if v.isdigit() and len(v) < 6 else v for v in r])
    wb.save(tmp_path / "site.xlsx")
    created = import_file(duck_engine, tmp_path / "site.xlsx", PROFILES, fixed_now)
    assert created["meters"] == 7


def test_the_import_is_recorded_in_the_operation_log(duck_engine, tmp_path, fixed_now):
    import_file(duck_engine, _write_csv(tmp_path / "site.csv", _good_rows()), PROFILES, fixed_now, operator="alice")
    with duck_engine.connect() as conn:
        (e,) = entries(conn, "topology.import")
    assert e["operator"] == "alice" and '"meters": 7' in e["after"]


@pytest.mark.parametrize("row_index, column, value, expected", [
    (2, 11, "20261121", "not a 12-digit meter number"),
    (2, 10, "ddsy-unknown", "unknown profile"),
    (3, 8, "70000", "outside 1..65535"),
    (3, 9, "0", "outside 1..247"),
    (1, 6, "modbus", "must be socket"),
    (4, 5, "not a host!", "not an IP address or host name"),
    (0, 9, "x", "not a whole number"),
    (5, 0, "", "is empty"),
])
def test_a_bad_cell_is_reported_with_row_and_column_and_nothing_is_written(
        any_engine, tmp_path, fixed_now, row_index, column, value, expected):
    rows = _good_rows()
    rows[row_index][column] = value
    with pytest.raises(TopologyImportError) as err:
        import_file(any_engine, _write_csv(tmp_path / "bad.csv", rows), PROFILES, fixed_now)
    (issue,) = err.value.issues
    assert issue.row == row_index + 2 and issue.column == HEADER[column]
    assert expected in str(err.value)
    assert _count(any_engine, meter) == 0 and _count(any_engine, building) == 0 and _count(any_engine, gateway) == 0


def test_duplicate_meter_addresses_and_units_in_one_file_are_refused(duck_engine, tmp_path, fixed_now):
    rows = _good_rows()
    rows[1][11] = rows[0][11]            # same meter number twice
    rows[2][9] = rows[0][9]              # same unit twice on bus 1
    with pytest.raises(TopologyImportError) as err:
        import_file(duck_engine, _write_csv(tmp_path / "dup.csv", rows), PROFILES, fixed_now)
    text = str(err.value)
    assert "row 3, column meter_address" in text and "first on row 2" in text
    assert "row 4, column unit" in text
    assert _count(duck_engine, meter) == 0


def test_one_bus_given_two_ports_is_refused(duck_engine, tmp_path, fixed_now):
    rows = _good_rows()
    rows[1][8] = "15099"
    with pytest.raises(TopologyImportError, match="row 3, column port: GW-A bus 1 was given port 15020"):
        import_file(duck_engine, _write_csv(tmp_path / "ports.csv", rows), PROFILES, fixed_now)


def test_a_meter_already_on_another_bus_in_the_database_is_refused(duck_engine, tmp_path, fixed_now):
    import_file(duck_engine, _write_csv(tmp_path / "site.csv", _good_rows()), PROFILES, fixed_now)
    moved = [["Dorm B", "1", "B-101", "", "GW-B", "127.0.0.2", "socket", "1", "16000", "5", "acrel-ddsy1352",
              "202611211001"]]
    with pytest.raises(TopologyImportError, match="meter 202611211001 exists on GW-A bus 1 unit 1"):
        import_file(duck_engine, _write_csv(tmp_path / "moved.csv", moved), PROFILES, fixed_now)
    assert _count(duck_engine, building) == 1


def test_importing_the_same_file_twice_adds_nothing(duck_engine, tmp_path, fixed_now):
    path = _write_csv(tmp_path / "site.csv", _good_rows())
    import_file(duck_engine, path, PROFILES, fixed_now)
    created = import_file(duck_engine, path, PROFILES, fixed_now)
    assert created["meters"] == 0 and _count(duck_engine, meter) == 7


def test_a_file_without_the_required_columns_is_refused(duck_engine, tmp_path, fixed_now):
    path = _write_csv(tmp_path / "cols.csv", [["x"]], header=["building"])
    with pytest.raises(TopologyImportError, match="row 1, column gateway: required column is missing"):
        import_file(duck_engine, path, PROFILES, fixed_now)


def test_an_unsupported_file_type_is_refused(duck_engine, tmp_path, fixed_now):
    (tmp_path / "site.json").write_text("{}")
    with pytest.raises(TopologyImportError, match="only .csv and .xlsx"):
        import_file(duck_engine, tmp_path / "site.json", PROFILES, fixed_now)


def test_per_gateway_timeout_and_retries_are_taken_from_the_file(duck_engine, tmp_path, fixed_now):
    header = HEADER + ["timeout_s", "retries"]
    rows = [r + (["0.5", "2"] if r[4] == "GW-A" else ["", ""]) for r in _good_rows()]
    import_file(duck_engine, _write_csv(tmp_path / "site.csv", rows, header=header), PROFILES, fixed_now)
    with duck_engine.connect() as conn:
        got = dict((n, (t, r)) for n, t, r in conn.execute(
            sa.select(gateway.c.name, gateway.c.timeout_s, gateway.c.retries)))
    assert got == {"GW-A": (0.5, 2), "GW-A-master": (1.0, 1)}


def test_a_timeout_out_of_range_is_refused(duck_engine, tmp_path, fixed_now):
    header = HEADER + ["timeout_s"]
    rows = [r + ["90"] for r in _good_rows()]
    with pytest.raises(TopologyImportError, match="column timeout_s: 90 is outside"):
        import_file(duck_engine, _write_csv(tmp_path / "site.csv", rows, header=header), PROFILES, fixed_now)
