"""Schema versions: create a fresh database at the head version, or walk an older one forward."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Callable

import sqlalchemy as sa

from storage.engine import StorageError, is_duckdb
from storage.schema import metadata, schema_version


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    apply: Callable[[sa.Connection], None]  # runs inside the migration's transaction


# Version 1 is the first release's schema (created from the MetaData). Every later change to
# storage/schema.py appends a Migration here that brings a version-(n-1) database to n, so a
# site's data survives upgrades; a fresh database is created at HEAD and stamped.
MIGRATIONS: tuple[Migration, ...] = ()
HEAD = 1 + len(MIGRATIONS)


def _post_create(conn: sa.Connection) -> None:
    if not is_duckdb(conn.engine):
        conn.execute(sa.text("CREATE INDEX IF NOT EXISTS ix_readings_meter_ts ON readings (meter_id, ts)"))


def current_version(conn: sa.Connection) -> int | None:
    if not sa.inspect(conn).has_table("schema_version"):
        return None
    return conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar()


def migrate(engine: sa.Engine, migrations: tuple[Migration, ...] = MIGRATIONS,
            now: Callable[[], dt.datetime] | None = None) -> int:
    """Bring the database to the head version; return it. Refuses a newer or a foreign database."""
    head = 1 + len(migrations)
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


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)
