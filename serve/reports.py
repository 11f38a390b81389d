"""The report centre on the command line: `app.py report NAME ...` writes a report to a file or stdout (scheduled
exports); the reports API lives in reports.api."""
from __future__ import annotations

import sys
from pathlib import Path

from billing.context import BillingContext, utcnow
from reports.registry import ReportEnv
from reports.render import export_report
from reports.spec import ReportError


# ---------------------------------------------------------------------------------------------
# command line
def report_cli(cfg, name: str, raw: dict, fmt: str, out: str | None, operator: str, lang: str = "en") -> int:
    """Run one report on the configured database and write it to `out` (or stdout: csv and json); 2 on a
    parameter the report cannot read (its message on stderr). DuckDB lets one process open its file while the
    server runs none (not even read-only): the command then says so (StorageError) and the reports API serves."""
    from core.config import site_zone
    from storage.engine import dispose, open_engine
    from storage.migrations import migrate
    if fmt == "xlsx" and not out:
        print(f"error: {ReportError('xlsx_needs_out').message(lang)}", file=sys.stderr)
        return 2
    engine = open_engine(cfg.database_url)
    try:
        migrate(engine)
        ctx = BillingContext(engine, b"\0" * 32, clock=utcnow, tz=site_zone(cfg.timezone))  # no personal data
        env = ReportEnv(ctx, cfg.poll_interval_s, cfg.analytics.line_loss_limit)
        data, _filename = export_report(env, name, raw, fmt, operator=operator, lang=lang, source="cli")
    except ReportError as exc:
        print(f"error: {exc.message(lang)}", file=sys.stderr)
        return 2
    finally:
        dispose(engine)
    if out:
        Path(out).write_bytes(data)
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    return 0
