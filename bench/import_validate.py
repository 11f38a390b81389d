"""Topology import: how long checking a large file takes and how much memory it needs (streaming validation).

Generates a valid topology of N meters (16 buses of 30 units per gateway, one room each) as CSV (UTF-8 and
GB18030) and XLSX, then checks each file in a fresh process (app.py import --check's path:
collectors.topology_import.check_file against an empty DuckDB file; nothing is written) and prints the
seconds and the process's peak resident memory. Target: 300,000 rows in at most 15 s and 500 MB.

Usage: .venv/bin/python bench/import_validate.py [--rows 300000] [--formats csv,gb18030,xlsx] [--keep DIR]
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

HEADER = ["楼栋", "楼层", "房间", "台区", "网关", "IP", "规约", "总线", "端口", "站号", "表型", "表号"]
PER_BUS, BUSES = 30, 16


def site_rows(n: int):
    for i in range(n):
        g, rest = divmod(i, PER_BUS * BUSES)
        bus_no, unit = divmod(rest, PER_BUS)
        floor = unit // 5 + 1
        yield [f"{g + 1}号楼", floor, f"{g + 1}-{bus_no + 1}{unit + 1:02d}", "", f"GW-{g + 1:04d}",
               f"10.{g // 250}.{g % 250}.1", "socket", bus_no + 1, 15020 + bus_no, unit + 1, "acrel-ddsy1352",
               f"{202600000000 + i:012d}"]


def write_csv(path: Path, n: int, encoding: str) -> None:
    with path.open("w", newline="", encoding=encoding) as f:
        w = csv.writer(f)
        w.writerow(HEADER)
        w.writerows(site_rows(n))


def write_xlsx(path: Path, n: int) -> None:
    """As Excel saves a sheet: text in the shared-strings table (t="s"), numbers as numbers, a dimension.
    (openpyxl writes inline strings instead, which its reader parses several times slower.)"""
    import zipfile
    from xml.sax.saxutils import escape

    from openpyxl.utils import get_column_letter
    strings: dict[str, int] = {}

    def cell(ref: str, v) -> str:
        if isinstance(v, int):
            return f'<c r="{ref}"><v>{v}</v></c>'
        if v == "":
            return ""
        return f'<c r="{ref}" t="s"><v>{strings.setdefault(v, len(strings))}</v></c>'

    cols = [get_column_letter(i + 1) for i in range(len(HEADER))]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        with z.open("xl/worksheets/sheet1.xml", "w") as f:
            f.write(('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
                     '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
                     f'<dimension ref="A1:{cols[-1]}{n + 1}"/><sheetData>').encode())
            for r, values in enumerate(_with_header(site_rows(n)), start=1):
                f.write((f'<row r="{r}">' + "".join(cell(f"{c}{r}", v) for c, v in zip(cols, values))
                         + "</row>").encode())
            f.write(b"</sheetData></worksheet>")
        with z.open("xl/sharedStrings.xml", "w") as f:
            f.write(('<?xml version="1.0" encoding="UTF-8" standalone="yes"?><sst xmlns="http://schemas.'
                     f'openxmlformats.org/spreadsheetml/2006/main" count="{len(strings)}" uniqueCount="{len(strings)}">'
                     ).encode())
            for text in strings:
                f.write(f"<si><t>{escape(text)}</t></si>".encode())
            f.write(b"</sst>")
        main = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
        rel = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
        ct = "application/vnd.openxmlformats-officedocument.spreadsheetml"
        z.writestr("[Content_Types].xml", (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?><Types xmlns="http://schemas.openxmlformats.org/'
            'package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-'
            'package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>'
            f'<Override PartName="/xl/workbook.xml" ContentType="{ct}.sheet.main+xml"/>'
            f'<Override PartName="/xl/worksheets/sheet1.xml" ContentType="{ct}.worksheet+xml"/>'
            f'<Override PartName="/xl/sharedStrings.xml" ContentType="{ct}.sharedStrings+xml"/></Types>'))
        z.writestr("_rels/.rels", (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?><Relationships xmlns="http://schemas.'
            f'openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="{rel}/officeDocument" '
            'Target="xl/workbook.xml"/></Relationships>'))
        z.writestr("xl/workbook.xml", (
            f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><workbook xmlns="{main}" xmlns:r="{rel}">'
            '<sheets><sheet name="topology" sheetId="1" r:id="rId1"/></sheets></workbook>'))
        z.writestr("xl/_rels/workbook.xml.rels", (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?><Relationships xmlns="http://schemas.'
            f'openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="{rel}/worksheet" '
            f'Target="worksheets/sheet1.xml"/><Relationship Id="rId2" Type="{rel}/sharedStrings" '
            'Target="sharedStrings.xml"/></Relationships>'))


def _with_header(rows):
    yield HEADER
    yield from rows


def measure(path: str, db: str) -> dict:
    """Runs in its own process: the peak memory is this check's alone."""
    from collectors.profiles import ProfileRegistry
    from collectors.topology_import import ROW_LIMIT, check_file
    from storage.engine import dispose, open_engine
    from storage.migrations import migrate
    engine = open_engine(f"duckdb:///{db}")
    migrate(engine)
    profiles = set(ProfileRegistry().names())
    before = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    result = check_file(engine, path, profiles, row_limit=max(ROW_LIMIT, 10_000_000))
    seconds = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_SELF)
    dispose(engine)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return {**result, "seconds": round(seconds, 2), "cpu_seconds": round(cpu, 2),
            "rss_before_mb": round(before.ru_maxrss / 1024), "peak_rss_mb": round(after.ru_maxrss / 1024)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=300_000)
    ap.add_argument("--formats", default="csv,gb18030,xlsx")
    ap.add_argument("--keep", help="write the files here and keep them")
    ap.add_argument("--measure", nargs=2, metavar=("FILE", "DB"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        print(json.dumps(measure(*args.measure)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        where = Path(args.keep or tmp)
        where.mkdir(parents=True, exist_ok=True)
        print(f"{args.rows:,} rows, {os.cpu_count()} CPU(s), Python {sys.version.split()[0]}, "
              f"load average {os.getloadavg()[0]:.1f}")
        for fmt in args.formats.split(","):
            path = where / (f"topology-{fmt}.csv" if fmt in ("csv", "gb18030") else "topology.xlsx")
            t0 = time.perf_counter()
            if fmt == "xlsx":
                write_xlsx(path, args.rows)
            else:
                write_csv(path, args.rows, "utf-8" if fmt == "csv" else "gb18030")
            made = time.perf_counter() - t0
            db = where / f"check-{fmt}.duckdb"
            out = subprocess.run([sys.executable, __file__, "--measure", str(path), str(db)], capture_output=True,
                                 text=True, check=True)
            figures = json.loads(out.stdout.strip().splitlines()[-1])
            kind = figures["encoding"] or figures["format"]
            print(f"{fmt:8} {path.stat().st_size / 1e6:7.1f} MB file (written in {made:5.1f} s): checked "
                  f"{figures['rows']:,} rows ({kind}) in {figures['seconds']:6.2f} s "
                  f"({figures['cpu_seconds']:.2f} s CPU), "
                  f"peak RSS {figures['peak_rss_mb']} MB (after imports {figures['rss_before_mb']} MB)")


if __name__ == "__main__":
    main()
