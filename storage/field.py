"""SQL of the work orders' field side: evidence and resumable uploads, customers' confirmations, messages, terminals."""
from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from storage.schema import (evidence, evidence_upload, message, message_attachment, meter, meter_state, operator,
                            terminal, terminal_seen, work_order, work_order_confirmation)


# --- who an order belongs to ---------------------------------------------------------------------------------
def order_assignee(conn: sa.Connection, order_id: int) -> tuple[bool, int | None]:
    """(the order exists, the operator id of its worker)."""
    row = conn.execute(sa.select(work_order.c.assigned_to).where(work_order.c.id == order_id)).first()
    return (row is not None, row[0] if row is not None else None)


# --- uploads ---------------------------------------------------------------------------------------------------
def upload(conn: sa.Connection, upload_id: str) -> dict | None:
    row = conn.execute(sa.select(evidence_upload).where(evidence_upload.c.upload_id == upload_id)).mappings().first()
    return dict(row) if row else None


def insert_upload(conn: sa.Connection, **values) -> None:
    conn.execute(evidence_upload.insert().values(**values))


def advance_upload(conn: sa.Connection, upload_id: str, offset: int, received: int, now: dt.datetime) -> bool:
    """Move `received` from `offset` on; False when another request moved it first (compare and set)."""
    res = conn.execute(evidence_upload.update()
                       .where(evidence_upload.c.upload_id == upload_id, evidence_upload.c.received == offset,
                              evidence_upload.c.evidence_id.is_(None))
                       .values(received=received, updated_at=now))
    return res.rowcount == 1


def finish_upload(conn: sa.Connection, upload_id: str, evidence_id: int, now: dt.datetime) -> None:
    conn.execute(evidence_upload.update().where(evidence_upload.c.upload_id == upload_id)
                 .values(evidence_id=evidence_id, updated_at=now))


def delete_upload(conn: sa.Connection, upload_id: str) -> None:
    conn.execute(evidence_upload.delete().where(evidence_upload.c.upload_id == upload_id,
                                                evidence_upload.c.evidence_id.is_(None)))


def stale_uploads(conn: sa.Connection, before: dt.datetime) -> list[str]:
    return list(conn.execute(sa.select(evidence_upload.c.upload_id).where(
        evidence_upload.c.evidence_id.is_(None), evidence_upload.c.updated_at < before)).scalars())


# --- evidence ------------------------------------------------------------------------------------------------
def insert_evidence(conn: sa.Connection, **values) -> int:
    return conn.execute(evidence.insert().values(**values).returning(evidence.c.id)).scalar_one()


def evidence_row(conn: sa.Connection, evidence_id: int) -> dict | None:
    row = conn.execute(sa.select(evidence).where(evidence.c.id == evidence_id)).mappings().first()
    return dict(row) if row else None


def evidence_of_order(conn: sa.Connection, order_id: int) -> list[dict]:
    q = sa.select(evidence).where(evidence.c.order_id == order_id).order_by(evidence.c.id)
    return [dict(r) for r in conn.execute(q).mappings()]


def evidence_count(conn: sa.Connection, *, sha256: str | None = None) -> int:
    q = sa.select(sa.func.count()).select_from(evidence)
    if sha256 is not None:
        q = q.where(evidence.c.sha256 == sha256)
    return conn.execute(q).scalar_one()


def evidence_messages(conn: sa.Connection, evidence_id: int) -> list[int]:
    """The messages a file is attached to."""
    return list(conn.execute(sa.select(message_attachment.c.message_id)
                             .where(message_attachment.c.evidence_id == evidence_id)).scalars())


def attachable_evidence(conn: sa.Connection, username: str, limit: int, *, worker_id: int | None) -> list[dict]:
    """Evidence one may attach to a message, newest first, with its order's number: every file (worker_id None,
    the office), or the files of the worker's own orders and those the worker uploaded."""
    q = (sa.select(evidence.c.id, evidence.c.order_id, evidence.c.kind, evidence.c.name, evidence.c.received_at,
                   evidence.c.uploaded_by, work_order.c.number)
         .select_from(evidence.outerjoin(work_order, work_order.c.id == evidence.c.order_id))
         .where(evidence.c.kind != "signature"))
    if worker_id is not None:
        q = q.where(sa.or_(work_order.c.assigned_to == worker_id, evidence.c.uploaded_by == username))
    q = q.order_by(evidence.c.received_at.desc(), evidence.c.id.desc()).limit(limit)
    return [dict(r) for r in conn.execute(q).mappings()]


def meter_live(conn: sa.Connection, meter_id: int) -> dict | None:
    """The platform's latest state of a meter: balance, relay, communication, when read."""
    q = (sa.select(meter.c.address, meter_state.c.balance, meter_state.c.relay_closed, meter_state.c.comm_state,
                   meter_state.c.ts, meter_state.c.alarm_level)
         .select_from(meter.outerjoin(meter_state, meter_state.c.meter_id == meter.c.id))
         .where(meter.c.id == meter_id))
    row = conn.execute(q).mappings().first()
    return dict(row) if row else None


# --- confirmations -------------------------------------------------------------------------------------------
def confirmation(conn: sa.Connection, order_id: int, stage: str) -> dict | None:
    row = conn.execute(sa.select(work_order_confirmation).where(
        work_order_confirmation.c.order_id == order_id, work_order_confirmation.c.stage == stage)).mappings().first()
    return dict(row) if row else None


def confirmations(conn: sa.Connection, order_id: int) -> list[dict]:
    q = sa.select(work_order_confirmation).where(work_order_confirmation.c.order_id == order_id)
    return [dict(r) for r in conn.execute(q.order_by(work_order_confirmation.c.id)).mappings()]


def insert_confirmation(conn: sa.Connection, **values) -> int:
    return conn.execute(work_order_confirmation.insert().values(**values)
                        .returning(work_order_confirmation.c.id)).scalar_one()


def update_confirmation(conn: sa.Connection, confirmation_id: int, **values) -> None:
    conn.execute(work_order_confirmation.update().where(work_order_confirmation.c.id == confirmation_id)
                 .values(**values))


# --- messages ------------------------------------------------------------------------------------------------
def insert_message(conn: sa.Connection, attachments: list[int] = (), **values) -> int:
    message_id = conn.execute(message.insert().values(**values).returning(message.c.id)).scalar_one()
    for evidence_id in attachments:
        conn.execute(message_attachment.insert().values(message_id=message_id, evidence_id=evidence_id))
    return message_id


def insert_reminder(conn: sa.Connection, **values) -> bool:
    """A reminder once per episode; False when it is there already."""
    exists = conn.execute(sa.select(message.c.id).where(message.c.episode == values["episode"])).first()
    if exists:
        return False
    conn.execute(message.insert().values(kind="reminder", **values))
    return True


def messages_of(conn: sa.Connection, username: str, limit: int = 200) -> list[dict]:
    """The messages `username` sent or received, newest first, each with its attachments' ids."""
    q = (sa.select(message).where(sa.or_(message.c.recipient == username, message.c.sender == username))
         .order_by(message.c.sent_at.desc(), message.c.id.desc()).limit(limit))
    rows = [dict(r) for r in conn.execute(q).mappings()]
    ids = [r["id"] for r in rows]
    files: dict[int, list[int]] = {}
    if ids:
        for mid, eid in conn.execute(sa.select(message_attachment.c.message_id, message_attachment.c.evidence_id)
                                     .where(message_attachment.c.message_id.in_(ids))):
            files.setdefault(mid, []).append(eid)
    for r in rows:
        r["attachments"] = files.get(r["id"], [])
    return rows


def message_row(conn: sa.Connection, message_id: int) -> dict | None:
    row = conn.execute(sa.select(message).where(message.c.id == message_id)).mappings().first()
    return dict(row) if row else None


def mark_read(conn: sa.Connection, message_id: int, now: dt.datetime) -> bool:
    res = conn.execute(message.update().where(message.c.id == message_id, message.c.read_at.is_(None))
                       .values(read_at=now))
    return res.rowcount == 1


def unread_count(conn: sa.Connection, username: str) -> int:
    return conn.execute(sa.select(sa.func.count()).select_from(message).where(
        message.c.recipient == username, message.c.read_at.is_(None))).scalar_one()


def message_partners(conn: sa.Connection) -> list[tuple[str, str]]:
    """Active operators (username, display name) one may write to."""
    q = (sa.select(operator.c.username, operator.c.display_name).where(operator.c.active.is_(True))
         .order_by(operator.c.username))
    return [(u, d) for u, d in conn.execute(q)]


# --- terminals -----------------------------------------------------------------------------------------------
def terminal_by_device(conn: sa.Connection, device_hash: str) -> dict | None:
    row = conn.execute(sa.select(terminal).where(terminal.c.device_hash == device_hash)).mappings().first()
    return dict(row) if row else None


def insert_terminal(conn: sa.Connection, **values) -> int:
    return conn.execute(terminal.insert().values(**values).returning(terminal.c.id)).scalar_one()


def update_terminal(conn: sa.Connection, terminal_id: int, **values) -> None:
    conn.execute(terminal.update().where(terminal.c.id == terminal_id).values(**values))


def mark_seen(conn: sa.Connection, terminal_id: int, operator_name: str, slot: dt.datetime) -> None:
    exists = conn.execute(sa.select(terminal_seen.c.slot).where(
        terminal_seen.c.terminal_id == terminal_id, terminal_seen.c.slot == slot)).first()
    if not exists:
        conn.execute(terminal_seen.insert().values(terminal_id=terminal_id, slot=slot, operator=operator_name))


def terminal_row(conn: sa.Connection, terminal_id: int) -> dict | None:
    row = conn.execute(sa.select(terminal).where(terminal.c.id == terminal_id)).mappings().first()
    return dict(row) if row else None


def terminals(conn: sa.Connection) -> list[dict]:
    q = sa.select(terminal).order_by(terminal.c.operator, terminal.c.last_seen_at.desc())
    return [dict(r) for r in conn.execute(q).mappings()]


def seen_slots(conn: sa.Connection, since: dt.datetime, until: dt.datetime) -> list[tuple[str, dt.datetime]]:
    """(operator, slot) with any of their terminals seen, each once."""
    q = (sa.select(terminal_seen.c.operator, terminal_seen.c.slot).distinct()
         .where(terminal_seen.c.slot >= since, terminal_seen.c.slot < until))
    return [(o, s) for o, s in conn.execute(q)]
