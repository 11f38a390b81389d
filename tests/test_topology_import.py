"""Topology import from CSV and XLSX: valid files create the site; any bad row writes nothing."""
from __future__ import annotations

import csv
import json

import openpyxl
import pytest
import sqlalchemy as sa

from collectors.topology_import import TopologyImportError, check_file, import_file
from storage.audit import entries
from storage.schema import building, gateway, meter
from tests.test_app import run_app

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


# ---------------------------------------------------------------------------------------------
# What the import cannot keep is refused with its row and column

def _csv_bytes(rows, header=HEADER, encoding="utf-8") -> bytes:
    import io
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue().encode(encoding)


def _refused(engine, path, now, **options) -> TopologyImportError:
    with pytest.raises(TopologyImportError) as err:
        import_file(engine, path, PROFILES, now, **options)
    assert _count(engine, meter) == 0 and _count(engine, building) == 0
    return err.value


@pytest.mark.parametrize("char", ["\x00", "\x07", "\x1b", "\u202e"])
def test_a_control_character_in_a_room_name_is_refused_with_row_and_column(duck_engine, tmp_path, fixed_now, char):
    rows = _good_rows()
    rows[2][2] = f"A-1{char}13"
    path = tmp_path / "ctrl.csv"
    path.write_bytes(_csv_bytes(rows))
    (issue,) = _refused(duck_engine, path, fixed_now).issues
    assert (issue.row, issue.column, issue.code) == (4, "room", "control_character")
    assert issue.params == {"char": f"U+{ord(char):04X}", "position": 4}


def test_a_control_character_excel_wrote_into_an_xlsx_cell_is_refused(duck_engine, tmp_path, fixed_now):
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(HEADER)
    for r in _good_rows():
        ws.append(r)
    ws["A3"] = "Dorm_x0000_A"          # how Excel stores a character XML cannot carry
    wb.save(tmp_path / "ctrl.xlsx")
    (issue,) = _refused(duck_engine, tmp_path / "ctrl.xlsx", fixed_now).issues
    assert (issue.row, issue.column, issue.code, issue.params["char"]) == (3, "building", "control_character", "U+0000")


@pytest.mark.parametrize("column, limit", [("room", 100), ("building", 100), ("gateway", 100), ("host", 253)])
def test_a_name_longer_than_its_column_keeps_is_refused(duck_engine, tmp_path, fixed_now, column, limit):
    rows = _good_rows()
    rows[0][HEADER.index(column)] = "a" * (limit + 1)
    path = tmp_path / "long.csv"
    path.write_bytes(_csv_bytes(rows))
    issues = _refused(duck_engine, path, fixed_now).issues
    assert [(i.row, i.column, i.code, i.params) for i in issues] == [
        (2, column, "too_long", {"length": limit + 1, "limit": limit})]


@pytest.mark.parametrize("column, value", [
    ("meter_address", "２０２６１１２１１００１"),     # full-width
    ("meter_address", "٢٠٢٦١١٢١١٠٠١"),                 # Arabic-Indic
    ("bus", "１"), ("port", "۱۵۰۲۰"), ("unit", "１"),   # full-width, extended Arabic-Indic
])
def test_digits_other_than_0_to_9_are_refused(duck_engine, tmp_path, fixed_now, column, value):
    rows = _good_rows()
    rows[0][HEADER.index(column)] = value
    path = tmp_path / "digits.csv"
    path.write_bytes(_csv_bytes(rows))
    issues = _refused(duck_engine, path, fixed_now).issues
    assert [(i.row, i.column, i.code) for i in issues] == [(2, column, "non_ascii_digits")]
    assert "digits other than 0-9" in str(issues[0])


def test_a_header_naming_one_column_twice_is_refused(duck_engine, tmp_path, fixed_now):
    path = tmp_path / "twice.csv"
    path.write_bytes(_csv_bytes([r + [r[2]] for r in _good_rows()], header=HEADER + ["room"]))
    (issue,) = _refused(duck_engine, path, fixed_now).issues
    assert (issue.row, issue.column, issue.code, issue.params) == (1, "room", "column_twice",
                                                                   {"first": "C", "second": "M"})


def test_an_english_and_a_chinese_header_for_one_column_are_refused(duck_engine, tmp_path, fixed_now):
    path = tmp_path / "twice.csv"
    path.write_bytes(_csv_bytes([r + [r[11]] for r in _good_rows()], header=HEADER + ["表号"]))
    (issue,) = _refused(duck_engine, path, fixed_now).issues
    assert (issue.row, issue.column, issue.code) == (1, "meter_address", "column_twice")


# ---------------------------------------------------------------------------------------------
# Encodings

CHINESE_ROWS = [["一号楼", "1", "101室", "", "网关甲", "127.0.0.1", "socket", "1", "15020", "1", "acrel-ddsy1352",
                 "202611210001"]]


@pytest.mark.parametrize("encoding, data", [
    ("utf-8-sig", b"\xef\xbb\xbf" + _csv_bytes(CHINESE_ROWS)),
    ("utf-8", _csv_bytes(CHINESE_ROWS)),
    ("gb18030", _csv_bytes(CHINESE_ROWS, encoding="gb18030")),
])
def test_utf8_with_or_without_bom_and_gb18030_are_read_and_named(duck_engine, tmp_path, fixed_now, encoding, data):
    path = tmp_path / "site.csv"
    path.write_bytes(data)
    result = import_file(duck_engine, path, PROFILES, fixed_now)
    assert (result["encoding"], result["format"], result["rows"], result["meters"]) == (encoding, "csv", 1, 1)
    with duck_engine.connect() as conn:
        assert conn.execute(sa.select(building.c.name)).scalar_one() == "一号楼"


def test_a_file_whose_bom_declares_utf8_is_refused_at_the_row_with_other_bytes(duck_engine, tmp_path, fixed_now):
    rows = _good_rows()
    data = b"\xef\xbb\xbf" + _csv_bytes(rows[:2]) + _csv_bytes([["一号楼", *rows[2][1:]]], header=[], encoding="gb18030")
    path = tmp_path / "mixed.csv"
    path.write_bytes(data.replace(b"\r\n\r\n", b"\r\n"))
    issues = _refused(duck_engine, path, fixed_now).issues
    assert [(i.row, i.code) for i in issues][:1] == [(4, "undecodable_bom")]


def test_a_file_given_as_utf8_is_refused_at_the_row_with_other_bytes(duck_engine, tmp_path, fixed_now):
    path = tmp_path / "site.csv"
    path.write_bytes(_csv_bytes(CHINESE_ROWS, encoding="gb18030"))
    err = _refused(duck_engine, path, fixed_now, encoding="utf-8")
    assert (err.issues[0].row, err.issues[0].code, err.issues[0].params) == (2, "undecodable", {"encoding": "UTF-8"})


def test_bytes_that_are_neither_utf8_nor_gb18030_are_refused_at_their_row(duck_engine, tmp_path, fixed_now):
    rows = _good_rows()
    path = tmp_path / "site.csv"
    path.write_bytes(_csv_bytes(rows).replace(b"A-113", b"A-1\xff\xff3"))
    issues = _refused(duck_engine, path, fixed_now).issues
    assert (issues[0].row, issues[0].code) == (4, "undecodable_detected")


def test_a_utf16_file_is_refused_with_what_to_save_instead(duck_engine, tmp_path, fixed_now):
    path = tmp_path / "site.csv"
    path.write_bytes(b"\xff\xfe" + "building\tgateway\r\n".encode("utf-16-le"))
    assert "save it as \"CSV UTF-8\"" in str(_refused(duck_engine, path, fixed_now))


# ---------------------------------------------------------------------------------------------
# Files too large to be a topology

def test_an_unclosed_quote_that_swallows_the_file_is_reported_at_its_row(duck_engine, tmp_path, fixed_now):
    rows = _good_rows()
    rows[1][2] = '"A-121'                                   # the quote opens a field that never closes
    path = tmp_path / "quote.csv"
    body = _csv_bytes(rows).replace(b'"""A-121"', b'"A-121')
    path.write_bytes(body + b"x" * 200 + b"\r\n" + (b"y" * 1000 + b"\r\n") * 150)
    err = _refused(duck_engine, path, fixed_now)
    assert (err.issues[-1].row, err.issues[-1].code) == (3, "field_too_large")
    assert "an unclosed quote?" in str(err)


def test_a_line_longer_than_a_megabyte_is_refused_with_its_row(duck_engine, tmp_path, fixed_now):
    rows = _good_rows()
    rows[3][2] = "r" * (1 << 20)
    path = tmp_path / "line.csv"
    path.write_bytes(_csv_bytes(rows))
    issues = _refused(duck_engine, path, fixed_now).issues
    assert [(i.row, i.code) for i in issues] == [(5, "line_too_long")]


def test_a_file_with_more_rows_than_the_limit_is_refused_with_the_limit(duck_engine, tmp_path, fixed_now):
    path = _write_csv(tmp_path / "site.csv", _good_rows())
    err = _refused(duck_engine, path, fixed_now, row_limit=5)
    assert [(i.row, i.code, i.params) for i in err.issues] == [(7, "too_many_rows", {"limit": 5})]
    assert "more than 5 rows" in str(err)


def test_every_bad_row_is_counted_but_only_the_first_fifty_are_listed(duck_engine, tmp_path, fixed_now):
    rows = [["Dorm A", "1", f"A-{n}", "", "GW-A", "127.0.0.1", "socket", "1", "15020", str(n % 247 + 1),
             "acrel-ddsy1352", f"2026{n:04d}"] for n in range(120)]            # 8 digits: every row is bad
    err = _refused(duck_engine, _write_csv(tmp_path / "bad.csv", rows), fixed_now)
    assert err.total == 120 and len(err.issues) == 120
    assert "120 problem(s)" in str(err) and "... and 70 more" in str(err) and "row 51," in str(err)
    assert "row 52," not in str(err)


def test_issues_carry_a_code_and_json_parameters_for_a_page_to_translate(duck_engine, tmp_path, fixed_now):
    rows = _good_rows()
    rows[0][8] = "70000"
    (issue,) = _refused(duck_engine, _write_csv(tmp_path / "bad.csv", rows), fixed_now).issues
    assert json.loads(json.dumps(issue.as_dict())) == {
        "row": 2, "column": "port", "code": "out_of_range", "params": {"value": 70000, "low": 1, "high": 65535}}


def test_a_check_reads_every_row_and_writes_nothing(duck_engine, tmp_path, fixed_now):
    result = check_file(duck_engine, _write_csv(tmp_path / "site.csv", _good_rows()), PROFILES)
    assert result == {"rows": 7, "format": "csv", "encoding": "utf-8"}
    assert _count(duck_engine, meter) == 0


# ---------------------------------------------------------------------------------------------
# The command line

def test_the_command_line_imports_a_gb18030_file_and_names_its_encoding(tmp_path):
    path = tmp_path / "site.csv"
    path.write_bytes(_csv_bytes(CHINESE_ROWS, encoding="gb18030"))
    out = run_app("import", str(path), cwd=tmp_path,
                  env_extra={"WATTLINE_DATABASE_URL": f"duckdb:///{tmp_path / 'site.duckdb'}"})
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"imported": str(path), "buildings": 1, "rooms": 1, "areas": 0, "gateways": 1,
                                      "buses": 1, "meters": 1, "rows": 1, "format": "csv", "encoding": "gb18030"}


def test_the_command_line_refuses_a_file_declared_utf8_with_the_row(tmp_path):
    path = tmp_path / "site.csv"
    path.write_bytes(_csv_bytes(CHINESE_ROWS, encoding="gb18030"))
    out = run_app("import", "--encoding", "utf-8", "--check", str(path), cwd=tmp_path,
                  env_extra={"WATTLINE_DATABASE_URL": f"duckdb:///{tmp_path / 'site.duckdb'}"})
    assert out.returncode == 2
    assert "row 2, column -: bytes that are not UTF-8" in out.stderr and "nothing was imported" in out.stderr


def test_a_sheet_too_large_to_read_at_once_is_refused_with_advice_to_save_as_csv(duck_engine, tmp_path, fixed_now,
                                                                                    monkeypatch):
    import collectors.topology_import as ti
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(HEADER)
    for r in _good_rows():
        ws.append(r)
    wb.save(tmp_path / "big.xlsx")
    monkeypatch.setattr(ti, "XLSX_SHEET_BYTES", 1024)   # the site's limit, scaled down to this small sheet
    (issue,) = _refused(duck_engine, tmp_path / "big.xlsx", fixed_now).issues
    assert issue.code == "sheet_too_large" and "CSV" in str(issue)


def test_a_damaged_workbook_is_refused_with_a_message(duck_engine, tmp_path, fixed_now):
    path = tmp_path / "broken.xlsx"
    path.write_bytes(b"PK\x03\x04 this is not a workbook")
    (issue,) = _refused(duck_engine, path, fixed_now).issues
    assert issue.code == "workbook_unreadable"
