"""Evidence uploads (workorders/evidence.py) on both engines: type sniffed from the content and size limits (refused
with nothing stored), chunked uploads interrupted and resumed or retried without a second row or file, the final
hash check, the photo's own EXIF time and GPS kept beside the server's receipt time, and a worker kept out of
another worker's order."""
from __future__ import annotations

import datetime as dt
import hashlib
import io
import os

import pytest
import sqlalchemy as sa

from core.config import EvidenceConfig
from storage import field as store
from storage.schema import audit_log, evidence, evidence_upload
from workorders.evidence import EvidenceError, EvidenceStore, Uploader

NOW = dt.datetime(2026, 11, 21, 8, 0, 0)
WORKER = Uploader("wang", 7)


def jpeg(*, exif_time: str | None = None, gps: tuple[float, float] | None = None, size=(64, 48),
         noise: int = 0) -> bytes:
    """A real JPEG (Pillow), optionally with EXIF DateTimeOriginal and GPS; `noise` makes its bytes differ."""
    from PIL import Image
    img = Image.new("RGB", size, (noise % 256, 120, 40))
    exif = Image.Exif()
    if exif_time:
        exif.get_ifd(0x8769)[36867] = exif_time
    if gps:
        lat, lon = gps

        def dms(v: float):
            v = abs(v)
            d = int(v)
            m = int((v - d) * 60)
            s = round(((v - d) * 60 - m) * 60, 4)
            return (float(d), float(m), float(s))
        exif.get_ifd(0x8825).update({1: "N" if lat >= 0 else "S", 2: dms(lat), 3: "E" if lon >= 0 else "W",
                                     4: dms(lon)})
    out = io.BytesIO()
    img.save(out, "JPEG", exif=exif)
    return out.getvalue()


def png() -> bytes:
    from PIL import Image
    out = io.BytesIO()
    Image.new("L", (30, 10), 255).save(out, "PNG")
    return out.getvalue()


@pytest.fixture
def store_of(any_engine, tmp_path):
    def make(**limits) -> EvidenceStore:
        return EvidenceStore(any_engine, EvidenceConfig(**limits), lambda: NOW, root=tmp_path / "evidence")
    return make


def files_under(root) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


def rows(engine, table) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()


def upload_all(s: EvidenceStore, data: bytes, upload_id: str, kind: str = "photo", chunk: int = 1000, **kw):
    s.start(WORKER, upload_id=upload_id, size=len(data), sha256=hashlib.sha256(data).hexdigest(), kind=kind, **kw)
    state = None
    for at in range(0, len(data), chunk):
        state = s.put_chunk(WORKER, upload_id, at, data[at:at + chunk])
    return state


def test_a_photo_in_chunks_is_stored_once_by_its_hash_with_its_exif_time_and_gps(store_of, any_engine):
    s = store_of()
    data = jpeg(exif_time="2026:11:20 16:45:03", gps=(31.2304, 121.4737))
    state = upload_all(s, data, "u" * 20, lat=31.23, lon=121.47, name="IMG_0001.jpg")
    assert state.evidence_id is not None and state.received == len(data)
    digest = hashlib.sha256(data).hexdigest()
    assert files_under(s.root) == [f"{digest[:2]}/{digest}"]
    assert s.path_of(digest).read_bytes() == data
    with any_engine.connect() as conn:
        row = store.evidence_row(conn, state.evidence_id)
    assert (row["kind"], row["mime"], row["size"], row["uploaded_by"]) == ("photo", "image/jpeg", len(data), "wang")
    assert row["received_at"] == NOW and row["taken_at"] == dt.datetime(2026, 11, 20, 16, 45, 3)
    assert row["exif_lat"] == pytest.approx(31.2304, abs=1e-4) and row["exif_lon"] == pytest.approx(121.4737, abs=1e-4)
    assert (row["lat"], row["lon"], row["name"]) == (31.23, 121.47, "IMG_0001.jpg")


def test_an_interrupted_upload_resumes_at_the_servers_offset_without_a_duplicate(store_of, any_engine):
    s = store_of()
    data = jpeg(size=(300, 200), noise=3)
    sha = hashlib.sha256(data).hexdigest()
    uid = "resume-0123456789"
    s.start(WORKER, upload_id=uid, size=len(data), sha256=sha, kind="photo")
    s.put_chunk(WORKER, uid, 0, data[:1000])
    # the connection drops; the phone asks where the upload stands (announcing it again answers the same)
    again = s.start(WORKER, upload_id=uid, size=len(data), sha256=sha, kind="photo")
    assert again.received == 1000 and again.evidence_id is None
    # a chunk resent from 0 (the phone did not hear the answer) is refused with the server's offset
    with pytest.raises(EvidenceError) as exc:
        s.put_chunk(WORKER, uid, 0, data[:1000])
    assert exc.value.code == "offset_mismatch" and exc.value.params["received"] == 1000
    done = s.put_chunk(WORKER, uid, 1000, data[1000:])
    assert done.evidence_id is not None
    # the last chunk retried, and the whole upload announced again: the same row, no second file
    assert s.put_chunk(WORKER, uid, 1000, data[1000:]).evidence_id == done.evidence_id
    assert s.start(WORKER, upload_id=uid, size=len(data), sha256=sha, kind="photo").evidence_id == done.evidence_id
    assert rows(any_engine, evidence) == 1 and len(files_under(s.root)) == 1
    assert s.path_of(sha).read_bytes() == data


def test_the_same_photo_for_two_orders_is_one_file_and_two_rows(store_of, any_engine):
    s = store_of()
    data = jpeg(noise=9)
    a = upload_all(s, data, "first-upload-0001")
    b = upload_all(s, data, "second-upload-002")
    assert a.evidence_id != b.evidence_id and rows(any_engine, evidence) == 2
    assert len(files_under(s.root)) == 1


@pytest.mark.parametrize("content, kind", [
    (b"MZ\x90\x00" + b"\x00" * 4000, "photo"),                   # a program called photo.jpg
    (b"%PDF-1.7\n" + b"x" * 4000, "photo"),
    (b"\xff\xd8\xff\xe0" + b"\x00" * 4000, "photo"),              # a JPEG header in front of nothing
    (b"<svg xmlns='http://www.w3.org/2000/svg'></svg>" * 40, "photo"),
    (None, "audio"),                                             # a real JPEG sent as audio
    (None, "signature"),                                         # a JPEG as a signature (only PNG)
])
def test_evidence_of_a_wrong_type_is_refused_with_nothing_stored(store_of, any_engine, content, kind):
    s = store_of()
    data = content if content is not None else jpeg(noise=1)
    with pytest.raises(EvidenceError) as exc:
        upload_all(s, data, "wrongtype-000001", kind=kind, name="photo.jpg")
    assert exc.value.code == "wrong_type" and exc.value.status == 415
    assert rows(any_engine, evidence) == 0 and rows(any_engine, evidence_upload) == 0
    assert files_under(s.root) == []


def test_evidence_over_the_limit_is_refused_at_once_with_nothing_stored(store_of, any_engine):
    s = store_of(photo_bytes=2048)
    data = jpeg(size=(400, 400), noise=5)
    assert len(data) > 2048
    with pytest.raises(EvidenceError) as exc:
        s.start(WORKER, upload_id="too-large-000001", size=len(data), sha256=hashlib.sha256(data).hexdigest(),
                kind="photo")
    assert exc.value.code == "too_large" and exc.value.status == 413 and "2 KiB" in exc.value.message("en")
    assert rows(any_engine, evidence_upload) == 0 and files_under(s.root) == []


def test_more_bytes_than_announced_are_refused_and_the_upload_dropped(store_of, any_engine):
    s = store_of()
    data = jpeg(noise=11)
    s.start(WORKER, upload_id="liar-00000000001", size=100, sha256=hashlib.sha256(data[:100]).hexdigest(),
            kind="photo")
    with pytest.raises(EvidenceError) as exc:
        s.put_chunk(WORKER, "liar-00000000001", 0, data)
    assert exc.value.code == "too_large"
    assert rows(any_engine, evidence_upload) == 0 and files_under(s.root) == []


def test_bytes_that_do_not_match_the_announced_hash_are_refused(store_of, any_engine):
    s = store_of()
    data = jpeg(noise=12)
    s.start(WORKER, upload_id="badhash-00000001", size=len(data), sha256="0" * 64, kind="photo")
    with pytest.raises(EvidenceError) as exc:
        s.put_chunk(WORKER, "badhash-00000001", 0, data)
    assert exc.value.code == "hash_mismatch"
    assert rows(any_engine, evidence) == 0 and files_under(s.root) == []


@pytest.mark.parametrize("field, value, code", [
    ("size", "50,5", "bad_size"), ("size", "５０", "bad_size"), ("size", 10 ** 20, "bad_size"),
    ("size", 1.5, "bad_size"), ("size", True, "bad_size"), ("size", 0, "empty_file"),
    ("sha256", "=HYPERLINK(1)", "bad_hash"), ("kind", "exe", "bad_kind"),
    ("upload_id", "../../etc/passwd", "bad_upload_id"), ("upload_id", "a\x00" * 10, "bad_upload_id"),
    ("step", "1e3", "bad_step"), ("order_id", "-1", "order_not_found"),
])
def test_hostile_announcements_are_refused_with_a_message(store_of, any_engine, field, value, code):
    s = store_of()
    args = {"upload_id": "hostile-00000001", "size": 1000, "sha256": "a" * 64, "kind": "photo", field: value}
    with pytest.raises(EvidenceError) as exc:
        s.start(WORKER, **args)
    assert exc.value.code == code
    assert exc.value.message("zh") and exc.value.message("en")
    assert rows(any_engine, evidence_upload) == 0


def test_another_operators_upload_is_not_found(store_of):
    s = store_of()
    data = png()
    s.start(WORKER, upload_id="mine-00000000001", size=len(data), sha256=hashlib.sha256(data).hexdigest(),
            kind="signature")
    other = Uploader("li", 8)
    for call in (lambda: s.status(other, "mine-00000000001"),
                 lambda: s.put_chunk(other, "mine-00000000001", 0, data),
                 lambda: s.start(other, upload_id="mine-00000000001", size=len(data),
                                 sha256=hashlib.sha256(data).hexdigest(), kind="signature")):
        with pytest.raises(EvidenceError) as exc:
            call()
        assert exc.value.code == "upload_not_found"
    assert s.status(WORKER, "mine-00000000001").received == 0


def test_a_stale_unfinished_upload_is_forgotten_with_its_bytes(any_engine, tmp_path):
    now = [NOW]
    s = EvidenceStore(any_engine, EvidenceConfig(), lambda: now[0], root=tmp_path / "ev")
    data = jpeg(noise=13)
    s.start(WORKER, upload_id="stale-0000000001", size=len(data), sha256=hashlib.sha256(data).hexdigest(),
            kind="photo")
    s.put_chunk(WORKER, "stale-0000000001", 0, data[:500])
    now[0] = NOW + dt.timedelta(days=8)
    assert s.forget_stale() == 1
    assert rows(any_engine, evidence_upload) == 0 and files_under(s.root) == []
    assert os.path.isdir(tmp_path / "ev")
