"""The simulator's meter-side secure frame against the vectors of specs/secure-frame.md."""

import os

import pytest
from Crypto.Cipher import DES3
from Crypto.Hash import CMAC

from simulator import secure
from simulator.secure import Command, TEST_MASTER_KEY
from simulator.tariff import DEFAULT_TOU_SEGMENTS, Tariff

ADDRESS = "202611210001"
RECHARGE_FRAME = ("202611210001A1B2C3D4E5F607183B890956F025CE879AEF2C7FFD413E166821A56007A332C5E6FE4495D3894346")
RELAY_FRAME = "202611210001010203040506070824E9199249C5A9F96239523B0145E7DAA662321160C409A0"


def test_per_meter_keys_match_the_spec_vectors():
    keys = secure.meter_keys(TEST_MASTER_KEY, ADDRESS)
    assert keys.encryption.hex().upper() == "2F43589BD31F46FD3DBCDF752A2CF22AF8B967D0B3E3F83E"
    assert keys.mac.hex().upper() == "B5ADCBC4389B32EC6E34A479F78001540E3E5DB05E6ED997"


def test_recharge_vector_plaintext_and_frame_match_byte_for_byte():
    payload = secure.recharge_payload(5000)
    plaintext = secure.build_plaintext(Command.RECHARGE, 7, 1795000000, payload)
    frame = secure.seal_frame(TEST_MASTER_KEY, ADDRESS, Command.RECHARGE, 7, 1795000000, payload,
                              iv=bytes.fromhex("A1B2C3D4E5F60718"))
    assert plaintext.hex().upper() == "0101000000076AFD86C0000400001388"
    assert frame.hex().upper() == RECHARGE_FRAME
    assert len(frame) == 46


def test_relay_trip_vector_plaintext_and_frame_match_byte_for_byte():
    payload = secure.relay_payload(secure.RelayAction.TRIP)
    plaintext = secure.build_plaintext(Command.RELAY, 3, 1795000060, payload)
    frame = secure.seal_frame(TEST_MASTER_KEY, ADDRESS, Command.RELAY, 3, 1795000060, payload,
                              iv=bytes.fromhex("0102030405060708"))
    assert plaintext.hex().upper() == "0110000000036AFD86FC000100"
    assert frame.hex().upper() == RELAY_FRAME
    assert len(frame) == 38


def test_meter_opens_the_recharge_vector_to_its_plaintext():
    keys = secure.meter_keys(TEST_MASTER_KEY, ADDRESS)
    plain = secure.open_frame(keys, ADDRESS, bytes.fromhex(RECHARGE_FRAME))
    assert (plain.command, plain.counter, plain.issued_at, plain.payload) == (1, 7, 1795000000, bytes.fromhex("00001388"))


@pytest.mark.parametrize("position", [0, 6, 14, 30, 45])
def test_meter_rejects_the_vector_with_any_flipped_byte(position):
    keys = secure.meter_keys(TEST_MASTER_KEY, ADDRESS)
    frame = bytearray.fromhex(RECHARGE_FRAME)
    frame[position] ^= 0x01
    with pytest.raises(secure.BadFrame):
        secure.open_frame(keys, ADDRESS, bytes(frame))


def test_meter_rejects_a_frame_for_another_address():
    keys = secure.meter_keys(TEST_MASTER_KEY, "202611210002")
    with pytest.raises(secure.BadFrame):
        secure.open_frame(keys, "202611210002", bytes.fromhex(RECHARGE_FRAME))


def test_own_cmac_agrees_with_pycryptodome_for_lengths_0_to_40():
    key = secure.meter_keys(TEST_MASTER_KEY, ADDRESS).mac
    for length in range(41):
        data = os.urandom(length)
        assert secure.cmac_3des(key, data) == CMAC.new(key, data, ciphermod=DES3).digest()


def test_padding_always_adds_0x80_then_zeros_to_a_block():
    assert secure.pad_iso9797_m2(b"") == bytes.fromhex("8000000000000000")
    assert secure.pad_iso9797_m2(b"\x01" * 8) == b"\x01" * 8 + bytes.fromhex("8000000000000000")
    assert secure.pad_iso9797_m2(b"\x01" * 7) == b"\x01" * 7 + b"\x80"
    assert secure.unpad_iso9797_m2(secure.pad_iso9797_m2(b"\x00\x80\x00")) == b"\x00\x80\x00"


def test_unpadding_rejects_a_block_without_the_0x80_marker():
    with pytest.raises(secure.BadFrame):
        secure.unpad_iso9797_m2(b"\x01" * 8)


def test_adjust_parity_gives_every_byte_odd_parity():
    adjusted = secure.adjust_parity(bytes(range(256)))
    assert all(bin(b).count("1") % 2 == 1 for b in adjusted)
    assert all(a & 0xFE == b & 0xFE for a, b in zip(adjusted, range(256)))


@pytest.mark.parametrize("length", [30, 31, 46, 47])
def test_mailbox_registers_round_trip_frames_of_odd_and_even_length(length):
    frame = os.urandom(length)
    registers = secure.frame_to_registers(frame)
    assert registers[0] == length
    assert len(registers) == 1 + (length + 1) // 2
    assert secure.registers_to_frame(registers) == frame


def test_tariff_payload_round_trips_a_time_of_use_tariff():
    tariff = Tariff(1, (10000, 8000, 6000, 3500), DEFAULT_TOU_SEGMENTS)
    assert secure.parse_tariff_payload(secure.tariff_payload(tariff)) == tariff


def test_tariff_payload_with_trailing_bytes_is_invalid():
    payload = secure.tariff_payload(Tariff(0, (0, 0, 6000, 0))) + b"\x00"
    with pytest.raises(secure.InvalidPayload):
        secure.parse_tariff_payload(payload)


def test_tiered_tariff_must_end_with_an_unbounded_tier():
    payload = secure.tariff_payload(Tariff(2, (0, 0, 5600, 0), (), ((200, 5600), (400, 6100))))
    with pytest.raises(secure.InvalidPayload):
        secure.parse_tariff_payload(payload)
