"""QR identity of accounts and meters: signed URL tokens (HMAC-SHA256) and PNG / SVG QR codes.

A token is "<kind><id>.<tag>": kind "a" (account, by id) or "m" (meter, by its 12-digit number),
tag = the first 16 bytes of HMAC-SHA256(key, "wattline-qr-v1|" + kind + id), base64url without
padding. It is short enough for a small QR code and cannot be made up or altered without the key
(config qr_key_file, a 0600 file). Tokens do not expire: they are printed on labels and cards;
changing the key revokes every one of them.

PNG without Pillow: qrcode computes the module matrix and a few lines of zlib write a 1-bit PNG.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import re
import struct
import zlib
from dataclasses import dataclass

import qrcode

_LABEL = b"wattline-qr-v1|"
_TOKEN = re.compile(r"(a[0-9]{1,10}|m[0-9]{12})\.([A-Za-z0-9_-]{22})")


class BadToken(ValueError):
    """A QR token that is malformed or whose signature does not match (forged or altered)."""


@dataclass(frozen=True)
class QrSubject:
    kind: str   # "account" | "meter"
    key: str    # account id (as text) or meter address


def _tag(key: bytes, body: str) -> str:
    mac = hmac.new(key, _LABEL + body.encode("ascii"), hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")


def sign(key: bytes, kind: str, ident: int | str) -> str:
    if len(key) < 16:
        raise ValueError("the QR signing key must be at least 16 bytes")
    if kind == "account":
        body = f"a{int(ident)}"
    elif kind == "meter":
        if not re.fullmatch(r"[0-9]{12}", str(ident)):
            raise ValueError("a meter QR token needs the 12-digit meter number")
        body = f"m{ident}"
    else:
        raise ValueError(f"unknown QR subject {kind!r}")
    return f"{body}.{_tag(key, body)}"


def verify(key: bytes, token: str) -> QrSubject:
    """The account or meter a token names; BadToken if it is malformed, forged or altered."""
    m = _TOKEN.fullmatch(token or "")
    if not m:
        raise BadToken("malformed QR token")
    body, tag = m.groups()
    if not hmac.compare_digest(_tag(key, body), tag):
        raise BadToken("QR token signature does not match")
    return QrSubject("account" if body[0] == "a" else "meter", body[1:])


def url(base_url: str, token: str) -> str:
    """The customer page address a QR code carries."""
    return f"{base_url.rstrip('/')}/c/{token}"


def matrix(data: str) -> list[list[bool]]:
    qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=4)
    qr.add_data(data)
    qr.make(fit=True)
    return qr.get_matrix()


def png(data: str, scale: int = 6) -> bytes:
    """A black-on-white PNG of the QR code of `data` (1-bit grayscale, `scale` pixels per module)."""
    rows = matrix(data)
    size = len(rows) * scale
    raw = bytearray()
    for row in rows:
        bits = "".join(("0" if dark else "1") * scale for dark in row)  # 0 = black in grayscale
        bits += "0" * (-len(bits) % 8)
        line = b"\x00" + int(bits, 2).to_bytes(len(bits) // 8, "big")  # filter type 0
        raw += line * scale

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", size, size, 1, 0, 0, 0, 0)  # 1-bit grayscale
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(raw), 9))
            + chunk(b"IEND", b""))


def svg(data: str, scale: int = 6) -> str:
    """The same QR code as an SVG (for pages and labels)."""
    rows = matrix(data)
    n = len(rows)
    path = "".join(f"M{x},{y}h1v1h-1z" for y, row in enumerate(rows) for x, dark in enumerate(row) if dark)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {n} {n}" width="{n * scale}" '
            f'height="{n * scale}" shape-rendering="crispEdges"><rect width="{n}" height="{n}" fill="#fff"/>'
            f'<path d="{path}" fill="#000"/></svg>')
