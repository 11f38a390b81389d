"""What /healthz and the overview need to know about the data plane, in two queries."""
from __future__ import annotations

import sqlalchemy as sa

from storage.schema import poll_cycle
from storage.topology import comm_summary, meter_count


def last_poll_cycle(conn: sa.Connection) -> dict | None:
    row = conn.execute(sa.select(poll_cycle).order_by(poll_cycle.c.id.desc()).limit(1)).mappings().first()
    return dict(row) if row else None


def data_plane_summary(conn: sa.Connection) -> dict:
    comm = comm_summary(conn)
    return {"meters": meter_count(conn), "meters_online": comm["online"], "meters_lost": comm["lost"],
            "buses_lost": comm["buses_lost"], "last_poll": last_poll_cycle(conn)}
