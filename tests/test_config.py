"""Configuration defaults and overrides; the site master key's file, permissions and secrecy."""
from __future__ import annotations

import os
import stat

import pytest

from core.config import ConfigError, load_config
from core.keys import KeyError_, MasterKey, load_master_key
from dashboard.i18n import CATALOG, missing_keys

VECTOR_KM = bytes.fromhex("0123456789ABCDEFFEDCBA98765432100F1E2D3C4B5A6978")


def test_no_file_gives_working_defaults():
    cfg = load_config(None, env={})
    assert cfg.database_url == "duckdb:///data/energy.duckdb"
    assert cfg.port == 8050 and cfg.poll_interval_s == 1800 and cfg.lost_after == 3
    demo = cfg.for_demo()
    assert demo.database_url == "duckdb:///data/demo.duckdb" and demo.poll_interval_s == 60


def test_a_config_file_and_the_environment_override_defaults(tmp_path):
    f = tmp_path / "site.toml"
    f.write_text('[database]\nurl = "duckdb:///srv/site.duckdb"\n[collector]\npoll_interval_s = 900\n'
                 '[demo]\nbase_port = 16000\n')
    cfg = load_config(None, env={"WATTLINE_CONFIG": str(f), "PORT": "9000"})
    assert cfg.database_url == "duckdb:///srv/site.duckdb"
    assert cfg.poll_interval_s == 900 and cfg.port == 9000 and cfg.demo.base_port == 16000


@pytest.mark.parametrize("text, message", [
    ("[collector]\npoll_intervall_s = 5\n", "unknown key collector.poll_intervall_s"),
    ("[colector]\n", "unknown section [colector]"),
    ("[server]\nport = 70000\n", "outside 1..65535"),
    ("[server]\nport = \"eighty\"\n", "not a valid value"),
    ("[database]\nurl = \"sqlite:///x\"\n", "must start with duckdb: or postgresql"),
    ("[server\n", "site.toml"),
    ("[limits]\nlogin_per_user = \"ten a minute\"\n", "limits.login_per_user = 'ten a minute' is not a rate"),
    ("[limits]\napi_per_client = 30\n", "limits.api_per_client = 30 is not a rate"),
    ("[limits]\nbody_bytes = \"4M\"\n", "limits.body_bytes = '4M' must be a whole number of bytes"),
    ("[limits]\napi_body_bytes = 10\n", "limits.api_body_bytes = 10 must be a whole number of bytes"),
    ("[limits]\nlogin_per_ip = \"5/minute\"\n", "unknown key limits.login_per_ip"),
    ("[site]\npublic_url = \"energy.example.edu\"\n", "site.public_url = 'energy.example.edu' is not"),
    ("[site]\npublic_url = \"javascript:alert(1)\"\n", "site.public_url"),
])
def test_a_wrong_config_file_is_refused_with_its_name_and_the_key(tmp_path, text, message):
    f = tmp_path / "site.toml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")) as err:
        load_config(f, env={})
    assert str(f) in str(err.value)


def test_request_limits_have_defaults_and_are_read_from_the_limits_section(tmp_path):
    defaults = load_config(None, env={}).limits
    assert (defaults.login_per_address, defaults.login_per_user) == ("30/minute", "10/minute")
    assert (defaults.api_body_bytes, defaults.body_bytes) == (64 * 1024, 4 * 1024 * 1024)
    f = tmp_path / "site.toml"
    f.write_text('[limits]\nlogin_per_user = "5/minute;20/hour"\napi_body_bytes = 131072\n')
    limits = load_config(f, env={}).limits
    assert (limits.login_per_user, limits.api_body_bytes) == ("5/minute;20/hour", 131072)
    assert limits.login_per_address == defaults.login_per_address


def test_the_public_url_is_configured_or_in_the_demo_this_machine(tmp_path):
    assert load_config(None, env={}).public_url is None
    assert load_config(None, env={"PORT": "8123"}).for_demo().public_url == "http://127.0.0.1:8123"
    f = tmp_path / "site.toml"
    f.write_text('[site]\npublic_url = "https://energy.example.edu/"\n')
    assert load_config(f, env={}).for_demo().public_url == "https://energy.example.edu/"


def test_the_master_key_file_is_created_private_on_first_run(tmp_path):
    path = tmp_path / "keys" / "master.key"
    key = load_master_key(path, env={})
    assert len(key.bytes) == 24
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_master_key(path, env={}).bytes == key.bytes


def test_a_master_key_file_others_can_read_is_refused(tmp_path):
    path = tmp_path / "master.key"
    load_master_key(path, env={})
    os.chmod(path, 0o644)
    with pytest.raises(KeyError_, match="chmod 600"):
        load_master_key(path, env={})


def test_the_environment_key_wins_and_is_never_shown(tmp_path):
    key = load_master_key(tmp_path / "unused.key", env={"WATTLINE_MASTER_KEY": VECTOR_KM.hex()})
    assert key.bytes == VECTOR_KM
    assert VECTOR_KM.hex() not in repr(key).lower() and "***" in str(key)
    assert not (tmp_path / "unused.key").exists()


def test_a_short_or_degenerate_key_is_refused():
    with pytest.raises(KeyError_, match="24 bytes"):
        MasterKey(b"\x01" * 16, "test")
    with pytest.raises(KeyError_, match="single DES"):
        MasterKey(bytes.fromhex("0123456789ABCDEF") * 3, "test")


def test_both_languages_have_every_key():
    assert missing_keys() == {}
    assert set(CATALOG) == {"en", "zh"}
