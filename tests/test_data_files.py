"""The site's data on disk is its owner's alone: the data folder, the DuckDB file and its write-ahead log."""
from __future__ import annotations

import os
import stat

import pytest

from core.config import Config
from serve.runtime import Runtime
from tests.conftest import free_port


@pytest.fixture
def usual_umask():
    """A login shell's umask (files readable by everyone) while the test runs."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_fresh_start_keeps_the_data_folder_database_and_wal_from_other_users(tmp_path, usual_umask):
    data = tmp_path / "data"
    cfg = Config(database_url=f"duckdb:///{data / 'energy.duckdb'}", port=free_port(),
                 master_key_file=str(data / "master.key"), qr_key_file=str(data / "qr.key"), public_url="http://x.test")
    rt = Runtime(cfg).start()
    try:
        rt.accounts.add_operator("first-admin", None, "a-long-password", ["admin"], by="test", source="test")
        wal = data / "energy.duckdb.wal"
        assert wal.exists(), sorted(p.name for p in data.iterdir())
        assert _mode(data) == 0o700
        assert _mode(data / "energy.duckdb") == 0o600 and _mode(wal) == 0o600
        readable = {p.name: oct(_mode(p)) for p in data.rglob("*") if _mode(p) & 0o077}
        assert readable == {}
    finally:
        rt.stop()
