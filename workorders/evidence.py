"""Evidence files of work orders: resumable chunked uploads, the type sniffed from the content, size limits, files
on disk by content hash (sha256) and their metadata (who, when, where, order step, the photo's own EXIF time and
GPS) in the database.

An upload is named by the phone (a random id it keeps with the queued file) and announced with its size and sha256;
chunks follow at the offset the server has (a chunk at another offset is answered with the server's offset, so a
retried or resumed upload continues where the bytes stop); the last chunk finishes it: the whole file's sha256 must
match, the content's type (filetype's magic numbers; a photo also opened by Pillow) must be an allowed one within its
kind's size limit, and only then is the file moved to <dir>/<aa>/<sha256> and its row written. A finished upload
asked again answers the same row: no second row, no second file. A refused one leaves nothing behind.

EXIF: Pillow (pinned in pyproject.toml) reads DateTimeOriginal and the GPS block.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import filetype
import sqlalchemy as sa

from core.config import EvidenceConfig
from storage import audit, field as store
from workorders.errors import WorkOrderError
from workorders.service import _coordinates  # a position from the browser, or none

KINDS = ("photo", "audio", "video", "signature")
# what each kind may be, as sniffed from the bytes
ALLOWED = {
    "photo": frozenset({"image/jpeg", "image/png", "image/webp", "image/heic", "image/avif"}),
    "audio": frozenset({"audio/mpeg", "audio/mp4", "audio/ogg", "audio/x-wav", "audio/aac", "audio/amr",
                        "video/webm"}),  # a browser's MediaRecorder writes audio as WebM, whose magic says video
    "video": frozenset({"video/mp4", "video/quicktime", "video/webm", "video/3gpp", "video/x-m4v"}),
    "signature": frozenset({"image/png"}),
}
_UPLOAD_ID = re.compile(r"[A-Za-z0-9_-]{16,64}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_SNIFF_BYTES = 8192


class FieldError(WorkOrderError):
    """Something on the field side refused (an upload, a confirmation, a message; nothing stored): `code` names
    the catalog text field.error.<code>, `status` the HTTP status the upload route answers."""

    def __init__(self, code: str, status: int = 400, **params):
        super().__init__(code, **params)
        self.status = status

    @property
    def key(self) -> str:
        return f"field.error.{self.code}"


EvidenceError = FieldError


@dataclass(frozen=True)
class Uploader:
    """Who sends: the operator's name and id, and whether they may add evidence to any order (the office)."""
    username: str
    operator_id: int | None
    any_order: bool = False
    address: str | None = None


@dataclass(frozen=True)
class UploadState:
    upload_id: str
    size: int
    received: int
    evidence_id: int | None = None
    sha256: str | None = None


def kind_limit(cfg: EvidenceConfig, kind: str) -> int:
    return {"photo": cfg.photo_bytes, "signature": cfg.photo_bytes, "audio": cfg.audio_bytes,
            "video": cfg.video_bytes}[kind]


def _mb(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB" if n >= 1 << 20 else f"{n / 1024:.0f} KiB"


class EvidenceStore:
    """Uploads and files under `cfg.dir`; `clock` gives naive UTC."""

    def __init__(self, engine: sa.Engine, cfg: EvidenceConfig, clock: Callable[[], dt.datetime],
                 root: str | Path | None = None):
        self.engine = engine
        self.cfg = cfg
        self.root = Path(root if root is not None else cfg.dir or "data/evidence")
        self.clock = clock
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    # --- paths ------------------------------------------------------------------------------------------
    def path_of(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256

    def _partial(self, upload_id: str) -> Path:
        return self.root / "partial" / upload_id

    def _lock(self, upload_id: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(upload_id, threading.Lock())

    # --- access ----------------------------------------------------------------------------------------
    def check_order(self, conn: sa.Connection, who: Uploader, order_id: int | None, action: str) -> None:
        """A worker adds to their own orders only; anything else is refused as not found (a worker learns nothing
        of other orders) and audited."""
        if order_id is None:
            return
        exists, assignee = store.order_assignee(conn, order_id)
        if exists and (who.any_order or (who.operator_id is not None and assignee == who.operator_id)):
            return
        with self.engine.begin() as log:
            audit.record(log, operator=who.username, action="workorder.denied", target=f"order {order_id}",
                         ts=self.clock(), after={"action": action}, source=who.address)
        raise FieldError("order_not_found", 404)

    # --- an upload -----------------------------------------------------------------------------------
    def start(self, who: Uploader, *, upload_id: str, size, sha256: str, kind: str, order_id=None, step=None,
              name: str | None = None, lat=None, lon=None) -> UploadState:
        """Announce an upload (or ask where it stands: the same id again answers its state)."""
        if not isinstance(upload_id, str) or not _UPLOAD_ID.fullmatch(upload_id):
            raise FieldError("bad_upload_id")
        with self.engine.connect() as conn:
            existing = store.upload(conn, upload_id)
        if existing is not None:
            if existing["operator"] != who.username:
                raise FieldError("upload_not_found", 404)
            return self._state(existing)
        kind = kind if kind in KINDS else None
        if kind is None:
            raise FieldError("bad_kind")
        size = _whole(size, "bad_size")
        if size <= 0:
            raise FieldError("empty_file")
        limit = kind_limit(self.cfg, kind)
        if size > limit:
            raise FieldError("too_large", 413, limit=_mb(limit))
        if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256.lower()):
            raise FieldError("bad_hash")
        order_id = None if order_id in (None, "") else _whole(order_id, "order_not_found")
        step = None if step in (None, "") else _whole(step, "bad_step")
        lat, lon = _coordinates(lat, lon)
        name = _clean_name(name)
        now = self.clock()
        with self.engine.connect() as conn:
            self.check_order(conn, who, order_id, "upload")
        with self.engine.begin() as conn:
            if store.upload(conn, upload_id) is None:
                store.insert_upload(conn, upload_id=upload_id, operator=who.username, order_id=order_id, step=step,
                                    kind=kind, size=size, sha256=sha256.lower(), name=name, received=0, lat=lat,
                                    lon=lon, created_at=now, updated_at=now)
            row = store.upload(conn, upload_id)
        self._partial(upload_id).parent.mkdir(parents=True, exist_ok=True)
        return self._state(row)

    def status(self, who: Uploader, upload_id: str) -> UploadState:
        with self.engine.connect() as conn:
            row = store.upload(conn, upload_id) if isinstance(upload_id, str) else None
        if row is None or row["operator"] != who.username:
            raise FieldError("upload_not_found", 404)
        return self._state(row)

    def put_chunk(self, who: Uploader, upload_id: str, offset, data: bytes) -> UploadState:
        """Write `data` at `offset`. Another offset than the server's: FieldError offset_mismatch (409) with the
        server's offset, nothing written. The last byte in: the upload is checked and finished (or refused and
        removed)."""
        with self._lock(upload_id):
            with self.engine.connect() as conn:
                row = store.upload(conn, upload_id)
            if row is None or row["operator"] != who.username:
                raise FieldError("upload_not_found", 404)
            if row["evidence_id"] is not None:
                return self._state(row)          # a retry of a finished upload: the same file
            offset = _whole(offset, "bad_offset")
            if offset != row["received"]:
                raise FieldError("offset_mismatch", 409, received=row["received"])
            if len(data) > self.cfg.chunk_bytes:
                raise FieldError("chunk_too_large", 413, limit=_mb(self.cfg.chunk_bytes))
            end = offset + len(data)
            if end > row["size"]:
                self._discard(upload_id)
                raise FieldError("too_large", 413, limit=_mb(kind_limit(self.cfg, row["kind"])))
            part = self._partial(upload_id)
            part.parent.mkdir(parents=True, exist_ok=True)
            with open(part, "r+b" if part.exists() else "wb") as f:
                f.seek(offset)
                f.write(data)
                f.truncate(end)
                f.flush()
                os.fsync(f.fileno())
            with self.engine.begin() as conn:
                store.advance_upload(conn, upload_id, offset, end, self.clock())
                row = store.upload(conn, upload_id)
            if end < row["size"]:
                return self._state(row)
            return self._finish(who, row)

    def _finish(self, who: Uploader, row: dict) -> UploadState:
        upload_id = row["upload_id"]
        part = self._partial(upload_id)
        digest = _sha256_of(part)
        if digest != row["sha256"]:
            self._discard(upload_id)
            raise FieldError("hash_mismatch", 422)
        mime = sniff(part)
        kind = row["kind"]
        if mime not in ALLOWED[kind]:
            self._discard(upload_id)
            raise FieldError("wrong_type", 415, kind=kind)
        taken_at = exif_lat = exif_lon = None
        if mime.startswith("image/"):
            try:
                taken_at, exif_lat, exif_lon = photo_metadata(part)
            except BadImage:
                self._discard(upload_id)
                raise FieldError("wrong_type", 415, kind=kind) from None
        target = self.path_of(digest)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            part.unlink(missing_ok=True)         # the same bytes are there already: one file, another row
        else:
            os.replace(part, target)
        now = self.clock()
        with self.engine.begin() as conn:
            current = store.upload(conn, upload_id)
            if current["evidence_id"] is not None:
                return self._state(current)
            evidence_id = store.insert_evidence(
                conn, order_id=row["order_id"], step=row["step"], kind=kind, mime=mime, size=row["size"],
                sha256=digest, name=row["name"], uploaded_by=row["operator"], received_at=now, lat=row["lat"],
                lon=row["lon"], taken_at=taken_at, exif_lat=exif_lat, exif_lon=exif_lon, upload_id=upload_id)
            store.finish_upload(conn, upload_id, evidence_id, now)
            audit.record(conn, operator=who.username, action="evidence.add",
                         target=f"order {row['order_id']}" if row["order_id"] else f"evidence {evidence_id}",
                         ts=now, after={"evidence": evidence_id, "kind": kind, "mime": mime, "size": row["size"],
                                        "sha256": digest}, source=who.address)
            row = store.upload(conn, upload_id)
        return self._state(row)

    def store_bytes(self, who: Uploader, data: bytes, *, kind: str, order_id=None, step=None,
                    name: str | None = None, lat=None, lon=None) -> int:
        """A small file in one go (a signature drawn on the screen): the same checks, the same store."""
        upload_id = "inline-" + hashlib.sha256(data + who.username.encode()).hexdigest()[:40]
        sha = hashlib.sha256(data).hexdigest()
        state = self.start(who, upload_id=upload_id, size=len(data), sha256=sha, kind=kind, order_id=order_id,
                           step=step, name=name, lat=lat, lon=lon)
        if state.evidence_id is None:
            state = self.put_chunk(who, upload_id, 0, data) if len(data) <= self.cfg.chunk_bytes else \
                self._put_all(who, upload_id, data)
        return state.evidence_id

    def _put_all(self, who: Uploader, upload_id: str, data: bytes) -> UploadState:
        state = None
        step_ = self.cfg.chunk_bytes
        for at in range(0, len(data), step_):
            state = self.put_chunk(who, upload_id, at, data[at:at + step_])
        return state

    def _discard(self, upload_id: str) -> None:
        self._partial(upload_id).unlink(missing_ok=True)
        with self.engine.begin() as conn:
            store.delete_upload(conn, upload_id)

    def forget_stale(self, older_than: dt.timedelta = dt.timedelta(days=7)) -> int:
        """Unfinished uploads untouched this long: their partial files and rows go."""
        with self.engine.connect() as conn:
            stale = store.stale_uploads(conn, self.clock() - older_than)
        for upload_id in stale:
            self._discard(upload_id)
        return len(stale)

    @staticmethod
    def _state(row: dict) -> UploadState:
        return UploadState(row["upload_id"], row["size"], row["received"], row["evidence_id"], row["sha256"])

    # --- reading -------------------------------------------------------------------------------------
    def file_for(self, who: Uploader, evidence_id) -> tuple[dict, Path]:
        """The row and file of `evidence_id` if `who` may see it: their own order's, a message's they are party
        to, or any for the office; otherwise refused as not found (and audited)."""
        evidence_id = _whole(evidence_id, "evidence_not_found")
        with self.engine.connect() as conn:
            row = store.evidence_row(conn, evidence_id)
            if row is None:
                raise FieldError("evidence_not_found", 404)
            if not who.any_order and row["uploaded_by"] != who.username:
                parties = set()
                for mid in store.evidence_messages(conn, evidence_id):
                    msg = store.message_row(conn, mid)
                    parties |= {msg["sender"], msg["recipient"]}
                if who.username not in parties:
                    if row["order_id"] is None:
                        raise FieldError("evidence_not_found", 404)
                    self.check_order(conn, who, row["order_id"], "view evidence")
        return row, self.path_of(row["sha256"])


# --- the content -------------------------------------------------------------------------------------------
def _sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def sniff(path: Path) -> str | None:
    """The type the content says it is (magic numbers), whatever the file was called."""
    with open(path, "rb") as f:
        head = f.read(_SNIFF_BYTES)
    kind = filetype.guess(head)
    return kind.mime if kind is not None else None


class BadImage(ValueError):
    pass


def photo_metadata(path: Path) -> tuple[dt.datetime | None, float | None, float | None]:
    """The photo's own time (EXIF DateTimeOriginal, else DateTime) and GPS position; BadImage if Pillow cannot
    read it as an image (a JPEG header in front of something else). HEIC/AVIF: Pillow may not decode them; their
    metadata is then left empty, not refused."""
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(path) as img:
            img.verify()
        with Image.open(path) as img:
            exif = img.getexif()
    except UnidentifiedImageError:
        if sniff(path) in ("image/heic", "image/avif"):
            return None, None, None
        raise BadImage(str(path)) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise BadImage(str(exc)) from None
    taken = None
    sub = exif.get_ifd(0x8769)  # Exif IFD
    for value in (sub.get(36867), exif.get(306)):  # DateTimeOriginal, DateTime
        if isinstance(value, str):
            try:
                taken = dt.datetime.strptime(value.strip("\x00 "), "%Y:%m:%d %H:%M:%S")
                break
            except ValueError:
                continue
    gps = exif.get_ifd(0x8825)
    lat = _gps_degrees(gps.get(2), gps.get(1), "S")
    lon = _gps_degrees(gps.get(4), gps.get(3), "W")
    if lat is None or lon is None or not (-90 <= lat <= 90 and -180 <= lon <= 180):
        lat = lon = None
    return taken, lat, lon


def _gps_degrees(dms, ref, negative: str) -> float | None:
    try:
        d, m, s = (float(x) for x in dms)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    value = d + m / 60 + s / 3600
    return round(-value if (ref or "").strip().upper() == negative else value, 7)


# --- edge checks -------------------------------------------------------------------------------------------
def _whole(value, code: str) -> int:
    """A whole number from an int or a string of ASCII digits (no "50,5", no full-width digits, no floats)."""
    if isinstance(value, bool):
        raise FieldError(code)
    if isinstance(value, int):
        n = value
    elif isinstance(value, str) and re.fullmatch(r"[0-9]{1,15}", value.strip()):
        n = int(value.strip())
    else:
        raise FieldError(code)
    if not 0 <= n < 10 ** 15:
        raise FieldError(code)
    return n


def _clean_name(name) -> str | None:
    if not isinstance(name, str):
        return None
    cleaned = "".join(ch for ch in name if ch.isprintable()).strip()[:200]
    return cleaned or None
