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
    Migration(9, "the control room: alarm engine, notifications, batch commands, meter settings, site setup",
              lambda conn: _control_room(conn)),
    Migration(10, "energy analytics and the report centre: energy rollups, cashiers' closed days",
              lambda conn: _analytics(conn)),
    Migration(11, "field work orders: types, operating cards, orders and their events, evidence, messages, terminals",
              lambda conn: _work_orders(conn)),
    Migration(12, "work orders: lines a worker adds to an order, blocked terminals' reason",
              lambda conn: _work_order_additions(conn)),
    Migration(13, "transformer areas: nameplate, master meter and CT ratio, terminal (line loss, power quality)",
              lambda conn: _transformer_areas(conn)),
    Migration(14, "frozen midnight registers of the transformer areas' meters (line loss)", create_tables_since(14)),
    Migration(15, "transformer areas: the five remotes (automatic voltage control settings and actions, telesignals, "
                  "cameras)", create_tables_since(15)),
    Migration(16, "the meters an area feeds in a table of their own (area_meter), so a meter with accounts can move "
                  "to another area on DuckDB", lambda conn: _area_meter(conn)),
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
    """command.purpose: what the command's settlement does (billing.settlement's registry), and command.account_id:
    the account it was queued for. Existing rows are filled once from what they hold: a money command from its
    ledger entry (kind and account), a batch "close-<account>" -> closing, "open-<account>", "add-<account>-..."
    and "replace-<account>-..." -> opening, then kind tariff -> tariff_push, limits -> limits_push, a relay kind ->
    relay, anything else -> other. (The only place a batch id is read: the code never routes by it again.)
    purpose is added NOT NULL with a default that is dropped once the rows are filled (DuckDB cannot SET NOT NULL
    on a table with updates in the same transaction). Skipped when the column is there (created at this version)."""
    present = conn.execute(sa.text(
        "SELECT count(*) FROM information_schema.columns WHERE table_schema = current_schema() "
        "AND table_name = 'command' AND column_name = 'purpose'")).scalar()
    if present:
        return
    conn.execute(sa.text("ALTER TABLE command ADD COLUMN purpose VARCHAR(20) NOT NULL DEFAULT 'other'"))
    _add_column(conn, "command", "account_id", "INTEGER")
    cmd = sa.table("command", sa.column("id"), sa.column("kind"), sa.column("batch_id"), sa.column("purpose"),
                   sa.column("ledger_entry_id"), sa.column("account_id"))
    entry = sa.table("ledger_entry", sa.column("id"), sa.column("kind"), sa.column("account_id"))
    of_entry = entry.c.id == cmd.c.ledger_entry_id
    by_kind = {"sale": "sale", "refund": "refund", "reversal": "reversal", "transfer_in": "transfer",
               "closing_refund": "closing"}
    conn.execute(cmd.update().where(cmd.c.ledger_entry_id.is_not(None)).values(
        purpose=sa.func.coalesce(sa.select(sa.case(*((entry.c.kind == k, v) for k, v in by_kind.items()),
                                                   else_="other")).where(of_entry).scalar_subquery(), "other"),
        account_id=sa.select(entry.c.account_id).where(of_entry).scalar_subquery()))
    for prefix, purpose in (("close-", "closing"), ("open-", "opening"), ("add-", "opening"),
                            ("replace-", "opening")):
        batches = conn.execute(sa.select(cmd.c.batch_id).where(cmd.c.batch_id.like(f"{prefix}%")).distinct()).scalars()
        for batch in list(batches):
            number = batch[len(prefix):].split("-", 1)[0]
            account_id = int(number) if number.isdigit() else None
            conn.execute(cmd.update().where(cmd.c.batch_id == batch, cmd.c.purpose == "other")
                         .values(purpose=purpose))
            conn.execute(cmd.update().where(cmd.c.batch_id == batch, cmd.c.account_id.is_(None))
                         .values(account_id=account_id))
    for kinds, purpose in ((("tariff",), "tariff_push"), (("limits",), "limits_push"),
                           (("trip", "close", "keep_power", "restore_prepaid"), "relay")):
        conn.execute(cmd.update().where(cmd.c.purpose == "other", cmd.c.kind.in_(kinds)).values(purpose=purpose))
    conn.execute(sa.text("ALTER TABLE command ALTER COLUMN purpose DROP DEFAULT"))


def _alarm_service(conn: sa.Connection) -> None:
    """alarm_event: subject, level, message code and parameters, acknowledgement; one open event per subject
    and kind (open_key UNIQUE). The table is rebuilt, not altered: DuckDB cannot drop meter_id (its foreign key)
    nor add a UNIQUE constraint to a table. Every row is carried over with its id: meter_id becomes the subject
    (meter, or site 0 where it was empty), levels 1 and 2 stay (AlarmLevel.WARNING, CRITICAL), the free-text
    message becomes code "text" with the text as its parameter. Where an old database held two open events of
    one meter and kind, the earliest stays open and the others are closed at their own opening time. The id
    sequence stays as it is. Skipped when the table has open_key already (created at this version)."""
    import json
    from storage.schema import alarm_event
    present = conn.execute(sa.text(
        "SELECT count(*) FROM information_schema.columns WHERE table_schema = current_schema() "
        "AND table_name = 'alarm_event' AND column_name = 'open_key'")).scalar()
    if present:
        return
    old = conn.execute(sa.text("SELECT id, meter_id, kind, level, opened_at, closed_at, message FROM alarm_event "
                               "ORDER BY id")).mappings().all()
    conn.execute(sa.text("DROP TABLE alarm_event"))
    conn.execute(sa.schema.CreateTable(alarm_event))  # the table only: its id sequence exists already
    rows, open_keys = [], set()
    for r in old:
        subject_kind, subject_id = ("meter", r["meter_id"]) if r["meter_id"] is not None else ("site", 0)
        key, closed_at = None, r["closed_at"]
        if closed_at is None:
            key = f"{subject_kind}:{subject_id}:{r['kind']}"
            if key in open_keys:
                key, closed_at = None, r["opened_at"]
            open_keys.add(key)
        rows.append({"id": r["id"], "kind": r["kind"], "level": r["level"], "subject_kind": subject_kind,
                     "subject_id": subject_id, "open_key": key, "opened_at": r["opened_at"],
                     "updated_at": closed_at or r["opened_at"], "closed_at": closed_at, "message_code": "text",
                     "message_params": json.dumps({"text": r["message"] or ""}, ensure_ascii=False)})
    if rows:
        conn.execute(alarm_event.insert(), rows)


def _device_history(conn: sa.Connection) -> None:
    """History of master meters and transformer terminals: the device_readings table (PostgreSQL: with its
    (meter_id, ts) index, declared PostgreSQL-only in schema.py). Nothing to fill: older polls kept no history."""
    from storage.schema import device_readings
    device_readings.create(conn, checkfirst=True)


def _control_room(conn: sa.Connection) -> None:
    """Version 9 (issue 10), one part per capability, each idempotent on its own."""
    _alarm_engine(conn)
    _notifications(conn)
    _batch_control(conn)
    _meter_settings(conn)
    _site_setup(conn)


def _alarm_engine(conn: sa.Connection) -> None:
    """Alarm engine: what evaluation and acknowledgement with a note keep."""
    create_tables_since(9.1)(conn)
    _add_column(conn, "alarm_event", "ack_note", "VARCHAR(500)")


def _notifications(conn: sa.Connection) -> None:
    """Notification outbox (SMS to customers and operators) and its dead letters, and each account's message
    language (NULL: the site's)."""
    create_tables_since(9.2)(conn)
    _add_column(conn, "account", "language", "VARCHAR(5)")


def _batch_control(conn: sa.Connection) -> None:
    """Batches of remote commands from the control page and the control API, and each API client's scopes
    (NULL: payment only, what every client of before could do)."""
    create_tables_since(9.3)(conn)
    _add_column(conn, "api_client", "scopes", "VARCHAR(100)")


def _meter_settings(conn: sa.Connection) -> None:
    """Per-meter settings as pushed and as read back from the meter."""
    create_tables_since(9.4)(conn)


def _site_setup(conn: sa.Connection) -> None:
    """Site setup from the browser: building groups, and each building's group (NULL: none)."""
    create_tables_since(9.5)(conn)
    _add_column(conn, "building", "group_id", "INTEGER")


def _analytics(conn: sa.Connection) -> None:
    """Version 10 (issue 11), one part per capability, each idempotent on its own."""
    _energy_rollups(conn)
    _report_centre(conn)


def _energy_rollups(conn: sa.Connection) -> None:
    """Energy per meter and interval derived from the cumulative registers, and its rollups."""
    create_tables_since(10.1)(conn)


def _report_centre(conn: sa.Connection) -> None:
    """The report centre: cashiers' closed days (day-end settlement)."""
    create_tables_since(10.2)(conn)


def _work_orders(conn: sa.Connection) -> None:
    """Version 11 (issue 12), one part per capability, each idempotent on its own."""
    _work_order_core(conn)
    _field_side(conn)
    _work_order_office(conn)


def _work_order_core(conn: sa.Connection) -> None:
    """Order types, operating cards, orders, their events and materials, workers."""
    create_tables_since(11.1)(conn)


def _field_side(conn: sa.Connection) -> None:
    """Evidence files, customers' confirmations, messages, workers' terminals."""
    create_tables_since(11.2)(conn)


def _work_order_office(conn: sa.Connection) -> None:
    """Reviews and customer follow-up calls."""
    create_tables_since(11.3)(conn)


def _work_order_additions(conn: sa.Connection) -> None:
    """Version 12 (issue 12, the pieces after 11): work_order_material.added_by (a line the worker added, which they
    may remove again; NULL for the card's lines and every line before), terminal.state_reason / state_by / state_at
    (who blocked or unblocked a phone, when and why). Each column skipped when present (idempotent)."""
    _add_column(conn, "work_order_material", "added_by", "VARCHAR(100)")
    _add_column(conn, "terminal", "state_reason", "VARCHAR(300)")
    _add_column(conn, "terminal", "state_by", "VARCHAR(100)")
    _add_column(conn, "terminal", "state_at", "TIMESTAMP")


def _transformer_areas(conn: sa.Connection) -> None:
    """Version 13 (issue 13), one part per capability, each idempotent on its own."""
    _area_model(conn)


def _area_model(conn: sa.Connection) -> None:
    """13.1: transformer_area gains its nameplate (rating, nominal phase voltage, connection group), its master
    meter with the CT ratio and its terminal. Existing areas are filled once from their meters: the area's
    eastron-sdm630 is its master meter (ratio 1), its wattline-ttu its terminal, as the demo and the topology
    files of before placed them."""
    present = conn.execute(sa.text(
        "SELECT count(*) FROM information_schema.columns WHERE table_schema = current_schema() "
        "AND table_name = 'transformer_area' AND column_name = 'master_meter_id'")).scalar()
    for column, sql_type in (("rating_kva", "DOUBLE PRECISION"), ("nominal_voltage", "DOUBLE PRECISION"),
                             ("connection_group", "VARCHAR(20)"), ("master_meter_id", "INTEGER"),
                             ("terminal_meter_id", "INTEGER"), ("ct_ratio", "DOUBLE PRECISION")):
        _add_column(conn, "transformer_area", column, sql_type)
    if present:
        return
    area = sa.table("transformer_area", sa.column("id"), sa.column("master_meter_id"),
                    sa.column("terminal_meter_id"), sa.column("ct_ratio"))
    m = sa.table("meter", sa.column("id"), sa.column("area_id"), sa.column("profile"))
    for column, profile in (("master_meter_id", "eastron-sdm630"), ("terminal_meter_id", "wattline-ttu")):
        conn.execute(area.update().values({column: sa.select(sa.func.min(m.c.id)).where(
            m.c.area_id == area.c.id, m.c.profile == profile).scalar_subquery()}))
    conn.execute(area.update().where(area.c.master_meter_id.is_not(None)).values(ct_ratio=1.0))


def _area_meter(conn: sa.Connection) -> None:
    """16: area_meter takes meter.area_id's rows. PostgreSQL drops the old column; DuckDB cannot (a foreign key
    depends on it), so there it stays, read by nothing, and keeps the areas of version 15."""
    create_tables_since(16)(conn)
    if not conn.execute(sa.text(
            "SELECT count(*) FROM information_schema.columns WHERE table_schema = current_schema() "
            "AND table_name = 'meter' AND column_name = 'area_id'")).scalar():
        return
    conn.execute(sa.text(
        "INSERT INTO area_meter (meter_id, area_id) SELECT m.id, m.area_id FROM meter m "
        "WHERE m.area_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM area_meter am WHERE am.meter_id = m.id)"))
    if not is_duckdb(conn.engine):
        conn.execute(sa.text("ALTER TABLE meter DROP COLUMN area_id"))


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
