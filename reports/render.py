"""A report's run and its files: rows with a totals row, written as XLSX (core.workbook: title row, the filters
used, header, widths, number formats, totals, frozen header), CSV (UTF-8 with a byte-order mark for Excel,
formula-looking text neutralised as in the workbook) or JSON (money as strings with two decimals). Exports are
written to the operation log (report.export)."""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from core import workbook as wb
from core.clock import zone_label
from core.text import t
from reports.registry import ReportEnv, report
from reports.spec import Column, ReportError, ReportParams, ReportSpec, read_params
from storage import audit

FORMATS = ("xlsx", "csv", "json")
MIME = {"xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "csv": "text/csv; charset=utf-8", "json": "application/json"}
NUMBER_FORMATS = {"money": wb.MONEY, "kwh": wb.KWH, "number": wb.KWH, "int": wb.INTEGER, "percent": wb.PERCENT,
                  "date": wb.DATE, "datetime": wb.DATETIME}
CENT = Decimal("0.01")


@dataclass
class ReportResult:
    spec: ReportSpec
    params: ReportParams
    columns: tuple[Column, ...]
    rows: list[dict]
    totals: dict | None          # the summed columns (None: the report has nothing to sum)


def run_report(env: ReportEnv, name: str, raw: Mapping[str, object], lang: str = "en") -> ReportResult:
    """Read the parameters (ReportError when they cannot be read), run the report, sum its totals."""
    spec = report(name)
    params = read_params(spec, raw, env.ctx.local(env.ctx.now()).date())
    try:
        rows = spec.run(env, params, lang)
    except ValueError as exc:
        if isinstance(exc, ReportError):
            raise
        raise ReportError("parameter_invalid", name=spec.name, value=str(exc)[:80]) from None
    columns = spec.columns_for(params)
    summed = [c for c in columns if c.total]
    totals = None
    if summed:
        totals = {c.key: sum((r.get(c.key) or 0 for r in rows), Decimal("0.00") if c.kind == "money" else 0)
                  for c in summed}
        for c in summed:
            if c.kind in ("kwh", "number"):
                totals[c.key] = round(float(totals[c.key]), 2)
    return ReportResult(spec, params, columns, rows, totals)


def title(spec: ReportSpec, lang: str) -> str:
    return t(spec.title_key, lang)


def filters_line(result: ReportResult, lang: str, zone) -> str:
    """The filters used, as the workbook's second row says them."""
    parts = [f"{t(f'report.param.{k}', lang)}: {v}" for k, v in result.params.shown().items()]
    parts.append(f"{t('report.param.zone', lang)}: {zone_label(zone)}")
    return "; ".join(parts)


def header(column: Column, lang: str) -> str:
    return t(f"report.col.{column.key}", lang)


def yes_no(lang: str) -> dict[bool, str]:
    """The words of a yes/no column, looked up once per file (not per cell: the catalogs are files)."""
    return {True: t("report.yes", lang), False: t("report.no", lang)}


def _cell(column: Column, value, words: dict[bool, str]):
    """A value as a file cell: booleans in words, money to the fen, kWh to two decimals."""
    if value is None:
        return None
    if column.kind == "bool":
        return words[bool(value)]
    if column.kind == "money":
        return Decimal(value).quantize(CENT)
    if column.kind in ("kwh", "number"):
        return round(float(value), 2)
    return value


def _column_cells(column: Column, values: list, words: dict[bool, str]) -> list:
    """One column's values as _cell makes them, a column at a time (a large export: one kind check per column)."""
    if column.kind == "bool":
        return [None if v is None else words[bool(v)] for v in values]
    if column.kind == "money":
        return [None if v is None else (v if type(v) is Decimal else Decimal(v)).quantize(CENT) for v in values]
    if column.kind in ("kwh", "number"):
        return [None if v is None else round(float(v), 2) for v in values]
    return values


def to_xlsx(result: ReportResult, lang: str, zone) -> bytes:
    cols = result.columns
    sheet = book = wb.StreamingWorkbook(
        title(result.spec, lang), [header(c, lang) for c in cols], widths=[c.width for c in cols],
        formats={i: NUMBER_FORMATS[c.kind] for i, c in enumerate(cols) if c.kind in NUMBER_FORMATS},
        preamble=[[title(result.spec, lang)], [filters_line(result, lang, zone)]])
    words = yes_no(lang)
    sheet.append_rows(zip(*[_column_cells(c, [r.get(c.key) for r in result.rows], words) for c in cols]))
    if result.totals is not None:
        sheet.append([t("report.total", lang) if i == 0 else _cell(c, result.totals.get(c.key), words)
                      for i, c in enumerate(cols)], bold=True)
    return book.to_bytes()


def _text(column: Column, value, words: dict[bool, str]) -> str:
    value = _cell(column, value, words)
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, Decimal):
        return f"{value:.2f}"
    if isinstance(value, float):
        return f"{value:.2f}"
    if isinstance(value, (int, dt.date)):
        return str(value)
    return wb.csv_text(str(value))


def to_csv(result: ReportResult, lang: str) -> str:
    """UTF-8 text starting with a byte-order mark (Excel then reads Chinese right); header: the column keys."""
    out = io.StringIO()
    out.write("\ufeff")
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow([c.key for c in result.columns])
    words = yes_no(lang)
    for r in result.rows:
        w.writerow([_text(c, r.get(c.key), words) for c in result.columns])
    if result.totals is not None:
        w.writerow([t("report.total", lang) if i == 0 else _text(c, result.totals.get(c.key), words)
                    for i, c in enumerate(result.columns)])
    return out.getvalue()


def json_value(column: Column, value, zone):
    """Money as a string with two decimals, kWh and hours as numbers to two decimals, times in site time with
    their offset ("2026-11-01T08:00:00+08:00"), days as "2026-11-01"."""
    if value is None:
        return None
    if column.kind == "money":
        return f"{Decimal(value).quantize(CENT):.2f}"
    if column.kind in ("kwh", "number"):
        return round(float(value), 2)
    if column.kind == "int":
        return int(value)
    if column.kind == "bool":
        return bool(value)
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=zone).isoformat(timespec="seconds")
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def json_rows(result: ReportResult, zone, api: bool = False) -> list[dict]:
    cols = [c for c in result.columns if c.api or not api]
    return [{c.key: json_value(c, r.get(c.key), zone) for c in cols} for r in result.rows]


def to_json(result: ReportResult, zone) -> str:
    body = {"report": result.spec.name, "filters": result.params.shown(), "rows": json_rows(result, zone)}
    if result.totals is not None:
        body["totals"] = {c.key: json_value(c, result.totals.get(c.key), zone) for c in result.columns if c.total}
    return json.dumps(body, ensure_ascii=False, indent=1)


def render(result: ReportResult, fmt: str, lang: str, zone) -> bytes:
    if fmt == "xlsx":
        return to_xlsx(result, lang, zone)
    if fmt == "csv":
        return to_csv(result, lang).encode("utf-8")
    if fmt == "json":
        return to_json(result, zone).encode("utf-8")
    raise ReportError("format_invalid", value=str(fmt)[:20], allowed=", ".join(FORMATS))


def export_report(env: ReportEnv, name: str, raw: Mapping[str, object], fmt: str, *, operator: str,
                  lang: str = "en", source: str | None = None) -> tuple[bytes, str]:
    """The report as a file (bytes, file name), and the export in the operation log (report.export)."""
    if fmt not in FORMATS:
        raise ReportError("format_invalid", value=str(fmt)[:20], allowed=", ".join(FORMATS))
    result = run_report(env, name, raw, lang)
    data = render(result, fmt, lang, env.ctx.tz)
    stamp = env.ctx.local(env.ctx.now()).strftime("%Y%m%d-%H%M")
    with env.ctx.engine.begin() as conn:
        audit.record(conn, operator=operator, action="report.export", target=f"report:{name}", ts=env.ctx.now(),
                     after={"format": fmt, "rows": len(result.rows), "filters": result.params.shown()},
                     source=source)
    return data, f"{name}-{stamp}.{fmt}"
