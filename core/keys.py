"""Secrets that never enter the database or a log: the site master key and the QR signing key."""
from __future__ import annotations

import os
import secrets
from pathlib import Path

from Crypto.Cipher import DES3


class KeyError_(ValueError):
    """A key is missing, malformed or readable by others; the message says how to fix it."""


class MasterKey:
    """The 24-byte 3DES site master key. Its repr never shows the key."""

    __slots__ = ("_key", "origin")

    def __init__(self, key: bytes, origin: str):
        if len(key) != 24:
            raise KeyError_(f"the site master key from {origin} must be 24 bytes (48 hex digits), got {len(key)}")
        try:
            DES3.adjust_key_parity(key)  # refuses keys that degenerate to single DES
        except ValueError:
            raise KeyError_(f"the site master key from {origin} degenerates to single DES: use three different 8-byte parts") from None
        self._key = bytes(key)
        self.origin = origin

    @property
    def bytes(self) -> bytes:
        return self._key

    def __repr__(self) -> str:
        return f"MasterKey(origin={self.origin!r}, key=***)"

    __str__ = __repr__


def _new_3des_key() -> bytes:
    while True:
        try:
            return DES3.adjust_key_parity(secrets.token_bytes(24))
        except ValueError:
            continue


def _read_private_hex(path: Path, what: str) -> bytes:
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise KeyError_(f"{what} {path} is readable by other users (mode {mode:o}); run: chmod 600 {path}")
    text = path.read_text().strip()
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise KeyError_(f"{what} {path} must hold hex digits only") from None


def _create_private_hex(path: Path, key: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key.hex().upper() + "\n")


def load_master_key(key_file: str | os.PathLike, env_var: str = "WATTLINE_MASTER_KEY",
                    env: dict | None = None, create: bool = True) -> MasterKey:
    """From the environment variable (hex) if set, else the key file, created (mode 0600) on first run."""
    env = os.environ if env is None else env
    if env.get(env_var):
        try:
            return MasterKey(bytes.fromhex(env[env_var].strip()), f"${env_var}")
        except ValueError:
            raise KeyError_(f"${env_var} must hold 48 hex digits") from None
    path = Path(key_file)
    if not path.exists():
        if not create:
            raise KeyError_(f"no site master key: set ${env_var} or create {path}")
        _create_private_hex(path, _new_3des_key())
    return MasterKey(_read_private_hex(path, "master key file"), str(path))


def load_secret(key_file: str | os.PathLike, nbytes: int = 32) -> bytes:
    """A random secret kept in a 0600 file (created on first use), e.g. the QR signing key."""
    path = Path(key_file)
    if not path.exists():
        _create_private_hex(path, secrets.token_bytes(nbytes))
    return _read_private_hex(path, "key file")
