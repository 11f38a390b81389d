"""Secure command frame: the spec's test vectors byte for byte, tamper refusal, payload validation."""
from __future__ import annotations

import struct
from decimal import Decimal

import pytest

from collectors import secureframe as sf

KM = bytes.fromhex("0123456789ABCDEFFEDCBA98765432100F1E2D3C4B5A6978")
ADDRESS = "202611210001"
RECHARGE_FRAME = bytes.fromhex(
    "202611210001A1B2C3D4E5F607183B890956F025CE879AEF2C7FFD413E166821A56007A332C5E6FE4495D3894346")
RELAY_FRAME = bytes.fromhex(
    "202611210001010203040506070824E9199249C5A9F96239523B0145E7DAA662321160C409A0")


def test_meter_keys_match_the_spec_vectors():
    k_e, k_m = sf.meter_keys(KM, ADDRESS)
    assert k_e.hex().upper() == "2F43589BD31F46FD3DBCDF752A2CF22AF8B967D0B3E3F83E"
    assert k_m.hex().upper() == "B5ADCBC4389B32EC6E34A479F78001540E3E5DB05E6ED997"


def test_recharge_plaintext_matches_the_spec_vector():
    plaintext = sf.build_plaintext(sf.Command.RECHARGE, 7, 1795000000, sf.recharge_payload(5000))
    assert plaintext.hex().upper() == "0101000000076AFD86C0000400001388"


def test_recharge_frame_matches_the_spec_vector():
    frame = sf.encrypt_frame(KM, ADDRESS, sf.Command.RECHARGE, 7, 1795000000,
                             sf.recharge_payload(sf.fen_from_yuan("50.00")), iv=bytes.fromhex("A1B2C3D4E5F60718"))
    assert frame == RECHARGE_FRAME and len(frame) == 46


def test_relay_trip_plaintext_and_frame_match_the_spec_vectors():
    plaintext = sf.build_plaintext(sf.Command.RELAY, 3, 1795000060, sf.relay_payload("trip"))
    assert plaintext.hex().upper() == "0110000000036AFD86FC000100"
    frame = sf.encrypt_frame(KM, ADDRESS, sf.Command.RELAY, 3, 1795000060, sf.relay_payload(sf.RelayAction.TRIP),
                             iv=bytes.fromhex("0102030405060708"))
    assert frame == RELAY_FRAME and len(frame) == 38


def test_decode_frame_returns_the_command_counter_time_and_payload():
    assert sf.decode_frame(KM, RECHARGE_FRAME) == (sf.Command.RECHARGE, 7, 1795000000, struct.pack(">I", 5000))
    assert sf.decode_frame(KM, RELAY_FRAME) == (sf.Command.RELAY, 3, 1795000060, b"\x00")


@pytest.mark.parametrize("position", [0, 5, 6, 13, 14, 30, 45])
def test_a_frame_with_any_byte_flipped_is_refused(position):
    tampered = bytearray(RECHARGE_FRAME)
    tampered[position] ^= 0x01
    with pytest.raises(sf.FrameError):
        sf.decode_frame(KM, bytes(tampered))


def test_a_frame_under_another_master_key_is_refused():
    other = bytes(reversed(KM))
    with pytest.raises(sf.FrameError, match="MAC"):
        sf.decode_frame(other, RECHARGE_FRAME)


def test_a_frame_for_another_meter_is_refused_when_the_address_is_checked():
    with pytest.raises(sf.FrameError, match="another meter"):
        sf.decode_frame(KM, RECHARGE_FRAME, address="202611210002")


def test_a_truncated_frame_is_refused():
    with pytest.raises(sf.FrameError, match="length"):
        sf.decode_frame(KM, RECHARGE_FRAME[:-3])


def test_random_ivs_make_each_frame_different_and_each_decodes():
    a = sf.encrypt_frame(KM, ADDRESS, sf.Command.RECHARGE, 8, 1795000000, sf.recharge_payload(100))
    b = sf.encrypt_frame(KM, ADDRESS, sf.Command.RECHARGE, 8, 1795000000, sf.recharge_payload(100))
    assert a != b
    assert sf.decode_frame(KM, a) == sf.decode_frame(KM, b)


@pytest.mark.parametrize("address", ["20261121000", "2026112100011", "20261121000A", " 202611210001", 202611210001])
def test_a_meter_address_that_is_not_12_digits_is_refused(address):
    with pytest.raises(ValueError, match="12 digits"):
        sf.meter_address_bytes(address)


def test_meter_address_becomes_six_bcd_bytes():
    assert sf.meter_address_bytes("202611210001") == bytes([0x20, 0x26, 0x11, 0x21, 0x00, 0x01])


def test_a_wrong_length_master_key_is_refused_without_showing_the_key():
    short = KM[:16]
    with pytest.raises(ValueError) as info:
        sf.meter_keys(short, ADDRESS)
    assert "24 bytes" in str(info.value)
    assert short.hex() not in str(info.value).lower() and repr(short) not in str(info.value)


def test_fen_from_yuan_is_exact():
    assert sf.fen_from_yuan("50.00") == 5000
    assert sf.fen_from_yuan(Decimal("0.01")) == 1
    assert sf.fen_from_yuan("12.5") == 1250
    assert sf.yuan_from_fen(1250) == Decimal("12.50")


@pytest.mark.parametrize("amount", ["1.001", "-5", "abc", "", "NaN", "Infinity"])
def test_fen_from_yuan_refuses_bad_amounts(amount):
    with pytest.raises(ValueError):
        sf.fen_from_yuan(amount)


def test_fen_from_yuan_refuses_floats():
    with pytest.raises(TypeError, match="float"):
        sf.fen_from_yuan(0.1)


def test_recharge_of_zero_or_over_u32_is_refused():
    with pytest.raises(ValueError, match="recharge amount"):
        sf.recharge_payload(0)
    with pytest.raises(ValueError, match="recharge amount"):
        sf.recharge_payload(2 ** 32)


def test_counter_zero_is_refused():
    with pytest.raises(ValueError, match="counter"):
        sf.build_plaintext(sf.Command.RELAY, 0, 1795000000, b"\x00")


def test_relay_actions_by_name():
    assert [sf.relay_payload(a) for a in ("trip", "close", "keep-power-on", "keep-power-off")] == \
        [b"\x00", b"\x01", b"\x02", b"\x03"]
    with pytest.raises(ValueError, match="relay action"):
        sf.relay_payload("open-sesame")
    with pytest.raises(ValueError, match="relay action"):
        sf.relay_payload(4)


def test_flat_tariff_payload_fills_the_flat_price():
    payload = sf.tariff_flat_payload(sf.price_units_from_yuan("0.60"))
    assert payload == bytes([0]) + struct.pack(">4I", 0, 0, 6000, 0) + b"\x00\x00"


def test_time_of_use_payload_lists_its_segments():
    payload = sf.tariff_tou_payload((12000, 9000, 6000, 3000), [(0, 3), (480, 1), (1320, 3)])
    assert payload[0] == 1 and payload[17] == 3
    assert struct.unpack_from(">HB", payload, 18) == (0, 3)
    assert payload[-1] == 0  # no tiers
    assert len(payload) == 1 + 16 + 1 + 3 * 3 + 1


def test_time_of_use_with_15_segments_is_refused():
    with pytest.raises(ValueError, match="1 to 14 segments"):
        sf.tariff_tou_payload((1, 1, 1, 1), [(i * 60, 0) for i in range(15)])


def test_time_of_use_segments_out_of_order_or_past_midnight_are_refused():
    with pytest.raises(ValueError, match="ascending"):
        sf.tariff_tou_payload((1, 1, 1, 1), [(480, 0), (0, 1)])
    with pytest.raises(ValueError, match="0..1439"):
        sf.tariff_tou_payload((1, 1, 1, 1), [(1440, 0)])
    with pytest.raises(ValueError, match="price index"):
        sf.tariff_tou_payload((1, 1, 1, 1), [(0, 4)])


def test_tiered_payload_ends_with_an_unbounded_tier():
    payload = sf.tariff_tiered_payload((0, 0, 0, 0), [(200, 5600), (400, 6100), (0xFFFFFFFF, 8600)])
    assert payload[0] == 2 and payload[17] == 0 and payload[18] == 3
    assert struct.unpack_from(">II", payload, 19 + 16) == (0xFFFFFFFF, 8600)


def test_tiered_payload_refuses_a_bounded_last_tier_and_five_tiers():
    with pytest.raises(ValueError, match="0xFFFFFFFF"):
        sf.tariff_tiered_payload((0, 0, 0, 0), [(200, 5600), (400, 6100)])
    with pytest.raises(ValueError, match="1 to 4 tiers"):
        sf.tariff_tiered_payload((0, 0, 0, 0), [(i, 1) for i in range(1, 5)] + [(0xFFFFFFFF, 1)])


def test_limits_time_tap_capacity_and_breaker_payloads():
    assert sf.limits_payload(2000, 500, 6000, 0) == struct.pack(">4I", 2000, 500, 6000, 0)
    assert sf.time_sync_payload(1795000000) == struct.pack(">I", 1795000000)
    assert sf.tap_set_payload(3) == b"\x00\x03"
    assert sf.capacity_mode_payload(1) == b"\x01"
    assert sf.breaker_payload(8, 0) == b"\x08\x00"
    with pytest.raises(ValueError, match="capacity mode"):
        sf.capacity_mode_payload(2)
    with pytest.raises(ValueError, match="outlet"):
        sf.breaker_payload(9, 1)
    with pytest.raises(ValueError, match="overload"):
        sf.limits_payload(2000, 500, -1, 0)


def test_price_units_allow_four_decimals_and_no_more():
    assert sf.price_units_from_yuan("0.5683") == 5683
    with pytest.raises(ValueError, match="4 decimals"):
        sf.price_units_from_yuan("0.56831")


def test_result_codes_follow_the_spec():
    assert [r.value for r in sf.Result] == list(range(10))
    assert sf.Result(2).name == "ALREADY_APPLIED" and sf.Result(9).name == "BUSY"
