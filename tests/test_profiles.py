"""Device profiles: loading, refusals with file and line, decoding of hand-made registers."""
from __future__ import annotations

import math
import struct
from decimal import Decimal
from pathlib import Path

import pytest

from collectors.profiles import ProfileError, ProfileRegistry, load_profile_dir, load_profile_file

GOOD = """\
[profile]
name = "test-meter"
model = "T-1"
kind = "meter-3p"
word_order = "big"

[[block]]
table = "holding"
start = 0x0100
count = 10

[[point]]
key = "voltage_a"
address = 0x0100
type = "u16"
scale = 0.1
unit = "V"

[[point]]
key = "energy_total"
address = 0x0102
type = "u32"
scale = 0.01
unit = "kWh"
"""


def write(tmp_path: Path, text: str, name: str = "p.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def refusal(tmp_path: Path, text: str) -> ProfileError:
    path = write(tmp_path, text)
    with pytest.raises(ProfileError) as info:
        load_profile_file(path)
    assert str(path) in str(info.value)
    return info.value


def line_of(text: str, needle: str, nth: int = 0) -> int:
    hits = [i for i, line in enumerate(text.splitlines(), start=1) if needle in line]
    return hits[nth]


def test_a_valid_profile_loads_with_its_blocks_and_points(tmp_path):
    prof = load_profile_file(write(tmp_path, GOOD))
    assert prof.name == "test-meter" and prof.mailbox is None
    assert [(b.table, b.start, b.count) for b in prof.blocks] == [("holding", 0x100, 10)]
    assert [p.key for p in prof.points] == ["voltage_a", "energy_total"]


def test_unknown_type_is_refused_with_the_line_of_the_type(tmp_path):
    text = GOOD.replace('type = "u32"', 'type = "u24"')
    err = refusal(tmp_path, text)
    assert err.line == line_of(text, 'type = "u24"')
    assert f":{err.line}:" in str(err) and "u24" in str(err)


def test_unknown_table_is_refused(tmp_path):
    text = GOOD.replace('table = "holding"', 'table = "coils"')
    err = refusal(tmp_path, text)
    assert err.line == line_of(text, 'table = "coils"') and "coils" in str(err)


def test_unknown_word_order_is_refused(tmp_path):
    text = GOOD.replace('word_order = "big"', 'word_order = "middle"')
    err = refusal(tmp_path, text)
    assert err.line == line_of(text, "word_order") and "middle" in str(err)


def test_unknown_kind_is_refused(tmp_path):
    text = GOOD.replace('kind = "meter-3p"', 'kind = "toaster"')
    err = refusal(tmp_path, text)
    assert err.line == line_of(text, "kind =") and "toaster" in str(err)


def test_overlapping_blocks_in_one_table_are_refused_at_the_second_block(tmp_path):
    text = GOOD.replace("[[point]]", '[[block]]\ntable = "holding"\nstart = 0x0105\ncount = 10\n\n[[point]]', 1)
    err = refusal(tmp_path, text)
    assert err.line == line_of(text, "[[block]]", 1) and "overlaps" in str(err)


def test_blocks_at_the_same_addresses_in_different_tables_are_allowed(tmp_path):
    text = GOOD.replace("[[point]]", '[[block]]\ntable = "input"\nstart = 0x0100\ncount = 10\n\n[[point]]', 1)
    text = text.replace('key = "voltage_a"', 'key = "voltage_a"\ntable = "holding"')
    text = text.replace('key = "energy_total"', 'key = "energy_total"\ntable = "input"')
    prof = load_profile_file(write(tmp_path, text))
    assert [p.table for p in prof.points] == ["holding", "input"]


def test_a_point_outside_every_block_is_refused_at_its_address(tmp_path):
    text = GOOD.replace("address = 0x0102", "address = 0x0200")
    err = refusal(tmp_path, text)
    assert err.line == line_of(text, "address = 0x0200") and "outside every block" in str(err)


def test_a_32_bit_point_whose_second_register_leaves_the_block_is_refused(tmp_path):
    text = GOOD.replace("address = 0x0102", "address = 0x0109")
    err = refusal(tmp_path, text)
    assert err.line == line_of(text, "address = 0x0109") and "2 registers" in str(err)


def test_a_block_over_125_registers_is_refused(tmp_path):
    text = GOOD.replace("count = 10", "count = 126")
    err = refusal(tmp_path, text)
    assert err.line == line_of(text, "count = 126") and "125" in str(err)


def test_a_block_with_no_registers_is_refused(tmp_path):
    text = GOOD.replace("count = 10", "count = 0")
    err = refusal(tmp_path, text)
    assert err.line == line_of(text, "count = 0")


def test_a_duplicate_point_key_is_refused_at_the_second_point(tmp_path):
    text = GOOD.replace('key = "energy_total"', 'key = "voltage_a"')
    err = refusal(tmp_path, text)
    assert err.line == line_of(text, "[[point]]", 1) and "duplicate key 'voltage_a'" in str(err)


def test_a_bit_name_that_repeats_a_point_key_is_refused(tmp_path):
    text = GOOD + '\n[[point]]\nkey = "status"\naddress = 0x0104\ntype = "bits"\nbits = { voltage_a = 3 }\n'
    err = refusal(tmp_path, text)
    assert err.line == line_of(text, "[[point]]", 2) and "voltage_a" in str(err)


def test_a_bits_point_without_bits_is_refused(tmp_path):
    text = GOOD + '\n[[point]]\nkey = "status"\naddress = 0x0104\ntype = "bits"\n'
    err = refusal(tmp_path, text)
    assert err.line == line_of(text, "[[point]]", 2) and "bits" in str(err)


def test_a_missing_required_point_field_is_refused_at_its_table(tmp_path):
    text = GOOD.replace('type = "u32"\n', "")
    err = refusal(tmp_path, text)
    assert err.line == line_of(text, "[[point]]", 1) and "'type'" in str(err)


def test_a_block_missing_its_count_or_with_a_misspelt_key_is_refused_at_its_line(tmp_path):
    text = GOOD.replace("count = 10\n", "")
    err = refusal(tmp_path, text)
    assert err.line == line_of(text, "[[block]]") and "[[block]] is missing required key 'count'" in str(err)
    text = GOOD.replace("start = 0x0100", "strat = 0x0100")
    err = refusal(tmp_path, text)
    assert err.line == line_of(text, "strat") and "unknown key 'strat' in [[block]]" in str(err)


def test_a_missing_profile_name_is_refused(tmp_path):
    text = GOOD.replace('name = "test-meter"\n', "")
    err = refusal(tmp_path, text)
    assert err.line == line_of(text, "[profile]") and "'name'" in str(err)


def test_a_misspelt_key_is_refused_rather_than_ignored(tmp_path):
    text = GOOD.replace("scale = 0.01", "scael = 0.01")
    err = refusal(tmp_path, text)
    assert err.line == line_of(text, "scael") and "scael" in str(err)


def test_invalid_toml_is_refused_with_its_line(tmp_path):
    text = GOOD.replace("count = 10", "count = = 10")
    err = refusal(tmp_path, text)
    assert err.line == line_of(text, "count = = 10")


def test_two_files_with_one_profile_name_in_a_directory_are_refused(tmp_path):
    write(tmp_path, GOOD, "a.toml")
    second = write(tmp_path, GOOD.replace('model = "T-1"', 'model = "T-2"'), "b.toml")
    with pytest.raises(ProfileError) as info:
        load_profile_dir(tmp_path)
    assert f"{second}:{line_of(GOOD, 'name =')}:" in str(info.value) and "a.toml" in str(info.value)


def test_registry_lists_the_four_built_in_profiles():
    assert ProfileRegistry().names() == ["acrel-ddsy1352", "acrel-dtsy1352", "eastron-sdm630", "wattline-ttu"]


def test_registry_names_the_known_profiles_when_one_is_missing():
    with pytest.raises(ProfileError) as info:
        ProfileRegistry().get("acrel-xyz")
    assert "acrel-xyz" in str(info.value) and "eastron-sdm630" in str(info.value)


def test_a_user_profile_with_a_built_in_name_replaces_the_built_in(tmp_path):
    write(tmp_path, GOOD.replace('name = "test-meter"', 'name = "eastron-sdm630"'))
    registry = ProfileRegistry(tmp_path)
    assert registry.get("eastron-sdm630").model == "T-1"
    assert registry.overridden == {"eastron-sdm630"}


def test_a_missing_user_directory_is_refused(tmp_path):
    with pytest.raises(ProfileError, match="does not exist"):
        ProfileRegistry(tmp_path / "nope")


# ---------------------------------------------------------------- decoding

def acrel_registers(**at: int) -> list[int]:
    regs = [0] * 48
    for addr, value in at.items():
        regs[int(addr[1:], 16) - 0x200] = value
    return regs


def test_acrel_realtime_block_decodes_scaled_values_and_status_bits():
    prof = ProfileRegistry().get("acrel-ddsy1352")
    regs = acrel_registers(r200=7, r201=2301, r204=523, r207=0xFFF6, r20A=1150, r212=950,
                           r215=0x0001, r216=0x86A0, r21F=0, r220=5000, r221=12,
                           r224=(1 << 13) | (1 << 6), r225=0b0110, r226=9, r22E=5001)
    v = prof.decode({("holding", 0x200): regs})
    assert v["meter_type"] == 7 and isinstance(v["meter_type"], int)
    assert v["voltage_a"] == 230.1 and v["current_a"] == 5.23
    assert v["power_a"] == -0.01 and v["power_total"] == 1.15 and v["pf_total"] == 0.95
    assert v["energy_total"] == 1000.0
    assert v["purchase_count"] == 12 and v["command_seq"] == 9 and v["frequency"] == 50.01
    assert v["relay_closed"] is True and v["alarm1"] is True and v["alarm2"] is False and v["fault"] is False
    assert v["keep_power"] is False and v["prepaid_enabled"] is True and v["forced_trip"] is True
    assert v["tamper"] is False


def test_balance_decodes_to_an_exact_decimal_in_yuan():
    prof = ProfileRegistry().get("acrel-ddsy1352")
    v = prof.decode({("holding", 0x200): acrel_registers(r21F=0x0001, r220=0x0001)})
    assert v["balance"] == Decimal("655.37") and isinstance(v["balance"], Decimal)
    assert str(v["balance"]) == "655.37"


def test_acrel_configuration_block_decodes_money_limits_and_prices_as_decimals():
    prof = ProfileRegistry().get("acrel-ddsy1352")
    regs = [0] * 29
    regs[0x47 - 0x46] = 2000        # alarm1 20.00 yuan
    regs[0x49 - 0x46] = 500         # alarm2 5.00 yuan
    regs[0x5E - 0x46] = 6000        # flat price 0.6000 yuan/kWh
    regs[0x61 - 0x46] = 6000        # overload W
    regs[0x62 - 0x46] = 1           # TOU
    v = prof.decode({("holding", 0x46): regs})
    assert v["alarm1_limit"] == Decimal("20.00") and v["alarm2_limit"] == Decimal("5.00")
    assert v["price_flat"] == Decimal("0.6000") and isinstance(v["price_flat"], Decimal)
    assert v["overload_limit"] == 6000 and v["tariff_mode"] == 1
    assert "balance" not in v  # only the blocks given are decoded


def f32_regs(*values: float) -> list[int]:
    out = []
    for value in values:
        hi, lo = struct.unpack(">HH", struct.pack(">f", value))
        out += [hi, lo]
    return out


def test_sdm630_floats_decode_without_binary_noise_and_power_in_kw():
    prof = ProfileRegistry().get("eastron-sdm630")
    regs = [0] * 76
    regs[0:2] = f32_regs(230.1)
    regs[0xC:0xE] = f32_regs(1234.5)      # W
    regs[0x48:0x4A] = f32_regs(98765.4)
    regs[0x3C:0x3E] = f32_regs(2500.0)    # var
    v = prof.decode({("input", 0): regs, ("input", 0xE0): f32_regs(4.2, 0, 0, 0, 0, 2.5, 2.6, 2.7)})
    assert v["voltage_a"] == 230.1
    assert v["power_a"] == 1.2345
    assert v["energy_total"] == 98765.4
    assert v["thd_u_c"] == 2.7 and v["current_n"] == 4.2 and v["reactive_total"] == 2.5


def test_nan_and_infinite_floats_decode_as_none():
    prof = ProfileRegistry().get("eastron-sdm630")
    regs = [0] * 76
    regs[0:2] = f32_regs(math.nan)
    regs[2:4] = f32_regs(math.inf)
    v = prof.decode({("input", 0): regs})
    assert v["voltage_a"] is None and v["voltage_b"] is None and v["voltage_c"] == 0.0


def test_little_word_order_puts_the_low_word_first(tmp_path):
    text = GOOD.replace('word_order = "big"', 'word_order = "little"')
    prof = load_profile_file(write(tmp_path, text))
    regs = [0] * 10
    regs[2], regs[3] = 0x86A0, 0x0001  # 100000 low word first
    assert prof.decode({("holding", 0x100): regs})["energy_total"] == 1000.0


def test_ttu_status_bits_name_the_breakers():
    prof = ProfileRegistry().get("wattline-ttu")
    v = prof.decode({("holding", 0x40): [3, 5, 0b101, 1, (1 << 8) | (1 << 15) | 1]})
    assert v["tap_position"] == 3 and v["tap_count"] == 5 and v["capacity_mode"] == 1
    assert v["door_open"] is True and v["smoke"] is False
    assert v["breaker_1"] is True and v["breaker_8"] is True and v["breaker_2"] is False


def test_a_block_with_the_wrong_register_count_is_refused():
    prof = ProfileRegistry().get("acrel-ddsy1352")
    with pytest.raises(ValueError, match="48 registers"):
        prof.decode({("holding", 0x200): [0] * 47})


def test_an_overdrawn_balance_decodes_negative():
    prof = ProfileRegistry().get("acrel-ddsy1352")
    minus_12_34 = (1 << 32) - 1234
    v = prof.decode({("holding", 0x200): acrel_registers(r21F=minus_12_34 >> 16, r220=minus_12_34 & 0xFFFF)})
    assert v["balance"] == Decimal("-12.34")
