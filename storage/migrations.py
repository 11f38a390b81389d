"""Schema versions: create a fresh database at the head version, or walk an older one forward."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Callable

import sqlalchemy as sa

from core.clock import utcnow as _utcnow
from storage.engine import StorageError, is_duckdb
from storage.schema import metadata, schema_version


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    apply: Callable[[sa.Connection], None]  # runs inside the migration's transaction


def create_tables_since(version: int) -> Callable[[sa.Connection], None]:
    """A migration step creating the tables tagged `info={"since": version}` in schema.py."""
    def apply(conn: sa.Connection) -> None:
        tables = [t for t in metadata.sorted_tables if t.info.get("since") == version]
        metadata.create_all(conn, tables=tables)
    return apply


# Version 1 is the first release's schema (issue 2). A fresh database is created from the
# MetaData at HEAD and stamped; an older one is walked forward by these steps, so a site's data
# survives upgrades. New tables carry info={"since": N} in schema.py and are created by version
# N's step; a change to an existing table needs an explicit step (ALTER ...) in its version.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(2, "operators, roles, permissions, login lockout (issue 3)", create_tables_since(2)),
    Migration(3, "accounts, tariffs, ledger, receipts, API clients (issue 4)", create_tables_since(3)),
    Migration(4, "PostgreSQL: BRIN index on readings.ts", lambda conn: _readings_time_index(conn)),
    Migration(5, "purchase-count epochs: meters replaced in place", lambda conn: _count_epochs(conn)),
    Migration(6, "old meters carried over once (retired_meter), entered transfers awaiting approval",
              lambda conn: _retired_meters(conn)),
    Migration(7, "retired tariffs; accounts' phone numbers as digits for search",
              lambda conn: _retired_tariffs_and_phone_digits(conn)),
    Migration(8, "foundations: commands' purpose, alarm subjects and levels, history of master meters and "
                 "transformer terminals", lambda conn: _foundations(conn)),
)
HEAD = 1 + len(MIGRATIONS)


def _post_create(conn: sa.Connection) -> None:
    if not is_duckdb(conn.engine):
        conn.execute(sa.text("CREATE INDEX IF NOT EXISTS ix_readings_meter_ts ON readings (meter_id, ts)"))
        _readings_time_index(conn)


def _readings_time_index(conn: sa.Connection) -> None:
    """PostgreSQL: a BRIN index on readings.ts (rows arrive in time order, so it stays tiny) for the
    queries by time across all meters, e.g. today's energy; DuckDB's zone maps already do this."""
    if not is_duckdb(conn.engine):
        conn.execute(sa.text("CREATE INDEX IF NOT EXISTS ix_readings_ts_brin ON readings USING brin (ts)"))


def _count_epochs(conn: sa.Connection) -> None:
    """Version 5: meter, account_meter and ledger_entry gain count_epoch (0 for every existing row).
    Skips a table that has it already (DuckDB has no ADD COLUMN IF NOT EXISTS for NOT NULL columns)."""
    for table in ("meter", "account_meter", "ledger_entry"):
        present = conn.execute(sa.text(  # (SQLAlchemy's inspector does not work on DuckDB here)
            "SELECT count(*) FROM information_schema.columns WHERE table_schema = current_schema() "
            "AND table_name = :t AND column_name = 'count_epoch'"), {"t": table}).scalar()
        if not present:
            conn.execute(sa.text(f"ALTER TABLE {table} ADD COLUMN count_epoch INTEGER NOT NULL DEFAULT 0"))


def _retired_meters(conn: sa.Connection) -> None:
    """Version 6: the retired_meter and transfer_request tables; every balance already carried over (a live
    transfer_in) is recorded as its old meter's one carry-over, the earliest if a meter's was carried twice."""
    create_tables_since(6)(conn)
    from storage.schema import ledger_entry, meter, retired_meter
    if conn.execute(sa.select(sa.func.count()).select_from(retired_meter)).scalar():
        return
    old = meter.alias("old")
    rows = conn.execute(
        sa.select(ledger_entry.c.id, ledger_entry.c.amount, ledger_entry.c.account_id, ledger_entry.c.meter_id,
                  ledger_entry.c.operator, ledger_entry.c.created_at, ledger_entry.c.count_epoch,
                  ledger_entry.c.transfer_from, meter.c.address, old.c.id.label("old_id"),
                  old.c.count_epoch.label("old_epoch"))
        .join(meter, meter.c.id == ledger_entry.c.meter_id)
        .outerjoin(old, old.c.address == ledger_entry.c.transfer_from)
        .where(ledger_entry.c.kind == "transfer_in", ledger_entry.c.state.in_(("pending", "confirmed")))
        .order_by(ledger_entry.c.id)).mappings().all()
    seen, out = set(), []
    for r in rows:
        if r["transfer_from"]:                      # from another meter, known to the site or not
            key = (r["transfer_from"], r["old_epoch"] or 0)
            old_id = r["old_id"]
        else:                                       # a meter replaced in place: its previous epoch
            key = (r["address"], max(r["count_epoch"] - 1, 0))
            old_id = r["meter_id"]
        if key in seen:
            continue
        seen.add(key)
        out.append(dict(address=key[0], count_epoch=key[1], meter_id=old_id, status="retired", balance=r["amount"],
                        entered=old_id is None, account_id=r["account_id"], new_meter_id=r["meter_id"],
                        ledger_entry_id=r["id"], recorded_at=r["created_at"], operator=r["operator"]))
    if out:
        conn.execute(retired_meter.insert(), out)


def _add_column(conn: sa.Connection, table: str, column: str, sql_type: str) -> None:
    """ALTER TABLE ... ADD COLUMN, unless the table has it (a step interrupted after its DDL on DuckDB)."""
    present = conn.execute(sa.text(
        "SELECT count(*) FROM information_schema.columns WHERE table_schema = current_schema() "
        "AND table_name = :t AND column_name = :c"), {"t": table, "c": column}).scalar()
    if not present:
        conn.execute(sa.text(f"ALTER TABLE {table} ADD COLUMN {column} {sql_type}"))


def _retired_tariffs_and_phone_digits(conn: sa.Connection) -> None:
    """Version 7: tariff gains display_name (renamed: none yet) and retired_at / retired_by (none retired); account
    gains phone_digits, filled from every stored phone as typed (core.phone.phone_digits), so a search by digits
    finds the accounts of before too."""
    from core.phone import phone_digits
    _add_column(conn, "tariff", "display_name", "VARCHAR(100)")
    _add_column(conn, "tariff", "retired_at", "TIMESTAMP")
    _add_column(conn, "tariff", "retired_by", "VARCHAR(100)")
    _add_column(conn, "account", "phone_digits", "VARCHAR(30)")
    table = sa.table("account", sa.column("id"), sa.column("phone"), sa.column("phone_digits"))
    rows = conn.execute(sa.select(table.c.id, table.c.phone).where(table.c.phone.is_not(None))).all()
    updates = [{"row_id": row_id, "digits": phone_digits(phone)} for row_id, phone in rows]
    if updates:
        conn.execute(table.update().where(table.c.id == sa.bindparam("row_id"))
                     .values(phone_digits=sa.bindparam("digits")), updates)


def _foundations(conn: sa.Connection) -> None:
    """Version 8 (issue 9), three parts, each idempotent on its own."""
    _command_purpose(conn)
    _alarm_service(conn)
    _device_history(conn)


def _command_purpose(conn: sa.Connection) -> None:
    """command.purpose: what the command's settlement does (billing.settlement's registry)."""


def _alarm_service(conn: sa.Connection) -> None:
    """alarm_event: subject, level, message code and parameters, acknowledgement; one open event per subject
    and kind."""


def _device_history(conn: sa.Connection) -> None:
    """History of master meters and transformer terminals."""


def current_version(conn: sa.Connection) -> int | None:
    if not sa.inspect(conn).has_table("schema_version"):
        return None
    return conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar()


def migrate(engine: sa.Engine, migrations: tuple[Migration, ...] = MIGRATIONS,
            now: Callable[[], dt.datetime] | None = None) -> int:
    """Bring the database to the head version; return it. Refuses a newer or a foreign database."""
    head = max([1, *(m.version for m in migrations)])
    if [m.version for m in migrations] != list(range(2, head + 1)):
        raise StorageError("migrations must be numbered 2, 3, ... without gaps")
    stamp_time = (now or _utcnow)()
    with engine.begin() as conn:
        version = current_version(conn)
        if version is None:
            existing = sa.inspect(conn).get_table_names()
            if existing:
                raise StorageError(
                    "the database has tables but no schema_version table: it is not a Wattline "
                    f"database (found {', '.join(sorted(existing)[:5])}); point the configuration at another one"
                )
            metadata.create_all(conn)
            _post_create(conn)
            conn.execute(schema_version.insert().values(
                version=head, applied_at=stamp_time, description="created at this version"))
            return head
        if version > head:
            raise StorageError(
                f"the database is at schema version {version}, newer than this program's {head}: "
                "upgrade Wattline before opening it"
            )
        for m in migrations:
            target = m.version
            if target <= version:
                continue
            m.apply(conn)
            conn.execute(schema_version.insert().values(
                version=target, applied_at=stamp_time, description=m.description))
        return head
