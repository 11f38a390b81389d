"""The GSM-modem SMS backend: PDUs against published examples, and sending through a fake modem on a real pty."""
from __future__ import annotations

import datetime as dt
import threading
import time

import pytest

from core.config import SmsConfig, site_zone
from notify.backends import SendFailed, build_backend
from notify.gsm import GsmModemBackend
from notify.outbox import Outbox, messages, queue_message
from notify.pdu import (DCS_GSM7, DCS_UCS2, PduError, count_parts, decode_submit, encode_submit,
                        normalize_number)
from tests.fake_modem import FakeModem

CUSTOMER = "+8613800138000"
LONG_CHINESE = "尊敬的用户：您的房间 3-1-502 电费余额为 ¥12.50，已低于报警金额 ¥20.00，请及时购电，以免停电。" * 3


@pytest.fixture
def modem():
    with FakeModem() as fake:
        yield fake


def backend_for(fake: FakeModem, pin: str = "", **timeouts) -> GsmModemBackend:
    timeouts.setdefault("answer_timeout_s", 1.0)
    timeouts.setdefault("send_timeout_s", 2.0)
    return GsmModemBackend(fake.device, 115200, pin, **timeouts)


# -- PDUs ------------------------------------------------------------------------------------------------
def test_published_7bit_pdus_are_encoded_byte_for_byte():
    # Nordic Semiconductor's AT+CMGS example (service centre +448888888, validity 0x0B), AT+CMGS=42
    nordic = encode_submit("+358401234567", "Testing a sms messaging over lte", smsc="+448888888", validity=0x0B)
    assert nordic[0].hex == ("069144888888F811000C9153481032547600000B20D4F29C9E769F4161"
                             "D0BC3D07B5CBF379F89C769F416F7B590E62D3CB")
    assert nordic[0].tpdu_length == 42
    # the classic "hellohello" SMS-SUBMIT (relative validity 0xAA)
    hello = encode_submit("+46708251358", "hellohello", validity=0xAA)
    assert hello[0].hex == "0011000B916407281553F80000AA0AE8329BFD4697D9EC37"


def test_a_published_ucs2_pdu_to_a_national_number_is_encoded_byte_for_byte():
    # Neoway's AT command manual: "hello" in UCS2 to 13421839693 without a service centre, AT+CMGS=23
    pdu = encode_submit("13421839693", "hello", ucs2=True)[0]
    assert pdu.hex == "0001000B813124819396F300080A00680065006C006C006F"
    assert pdu.tpdu_length == 23


def test_a_number_with_a_plus_goes_international_and_one_without_as_dialled():
    assert decode_submit(encode_submit("+86 138-0013-8000", "x")[0].hex).number == CUSTOMER
    national = encode_submit("13800138000", "x")[0].hex
    assert national[8:10] == "81" and decode_submit(national).number == "13800138000"


@pytest.mark.parametrize("bad", ["", "+", "12", "abc", "１３８００１３８０００", "138\x000138000", "1" * 21, "+86+138"])
def test_what_is_not_a_phone_number_is_refused(bad):
    with pytest.raises(PduError):
        normalize_number(bad)


def test_extension_characters_take_two_septets_and_an_escape_never_ends_a_part():
    assert count_parts("{" * 80) == 1 and count_parts("{" * 81) == 2      # 162 septets
    text = "a" * 152 + "€" + "b" * 10                                       # the € would straddle 153
    parts = [decode_submit(p.hex) for p in encode_submit(CUSTOMER, text, reference=9)]
    assert [p.text for p in parts] == ["a" * 152, "€" + "b" * 10]
    assert all(p.dcs == DCS_GSM7 and p.concat[0] == 9 for p in parts)


def test_a_long_chinese_text_goes_in_67_character_parts_under_one_reference():
    pdus = encode_submit(CUSTOMER, LONG_CHINESE, reference=200)
    parts = [decode_submit(p.hex) for p in pdus]
    assert [p.concat for p in parts] == [(200, len(parts), n) for n in range(1, len(parts) + 1)]
    assert all(len(p.text) == 67 for p in parts[:-1]) and "".join(p.text for p in parts) == LONG_CHINESE
    assert all(p.dcs == DCS_UCS2 for p in parts) and all(p.tpdu_length <= 140 + 15 for p in pdus)


def test_an_emoji_is_never_cut_from_its_other_half():
    text = "电" * 66 + "😀" + "费" * 10               # the surrogate pair would straddle units 67 and 68
    parts = [decode_submit(p.hex) for p in encode_submit(CUSTOMER, text)]
    assert [p.text for p in parts] == ["电" * 66, "😀" + "费" * 10]


# -- the modem -------------------------------------------------------------------------------------------
def test_plain_text_reaches_the_phone_in_7bit(modem):
    result = backend_for(modem).send(CUSTOMER, "Room 3-1-502: balance 12.50 [alarm 1] {ref ~7}")
    [message] = modem.wait_delivered(1)
    assert message.text == "Room 3-1-502: balance 12.50 [alarm 1] {ref ~7}" and message.number == CUSTOMER
    assert message.parts[0].dcs == DCS_GSM7 and result.parts == 1 and result.reference
    assert modem.commands[:5] == ["AT", "ATE0", "AT+CMEE=1", "AT+CPIN?", "AT+CMGF=0"]


def test_chinese_text_reaches_the_phone_in_ucs2_and_reads_back(modem):
    backend_for(modem).send("13800138000", "您的电费余额为 ¥12.50，请及时购电。")
    [message] = modem.wait_delivered(1)
    assert message.text == "您的电费余额为 ¥12.50，请及时购电。" and message.parts[0].dcs == DCS_UCS2


def test_a_long_chinese_text_arrives_as_parts_the_phone_joins(modem):
    result = backend_for(modem).send(CUSTOMER, LONG_CHINESE)
    [message] = modem.wait_delivered(1)
    assert message.text == LONG_CHINESE and len(message.parts) == result.parts == 3
    assert len(result.reference.split(",")) == 3 and not modem.protocol_errors


def test_the_pin_is_entered_when_the_sim_asks_for_it():
    with FakeModem(pin="4321", pin_ready_after_s=0.2) as fake:
        backend_for(fake, pin="4321").send(CUSTOMER, "hello")
        assert fake.wait_delivered(1)[0].text == "hello"
        assert "AT+CPIN=4321" in fake.commands and fake.sim_state == "READY"


def test_a_sim_that_asks_for_a_pin_none_configured_fails_for_good_and_nothing_is_sent():
    with FakeModem(pin="4321") as fake:
        with pytest.raises(SendFailed) as failed:
            backend_for(fake).send(CUSTOMER, "hello")
        assert not failed.value.retryable and "PIN" in failed.value.reason
        assert not any(c.startswith(("AT+CPIN=", "AT+CMGS")) for c in fake.commands)


def test_a_pin_the_sim_refuses_is_never_tried_a_second_time():
    with FakeModem(pin="4321") as fake:
        backend = backend_for(fake, pin="1111")
        for _ in range(3):
            with pytest.raises(SendFailed) as failed:
                backend.send(CUSTOMER, "hello")
            assert not failed.value.retryable
        assert fake.commands.count("AT+CPIN=1111") == 1 and fake.pin_tries == 2 and fake.sim_state == "SIM PIN"


def test_cms_error_500_is_reported_retryable_and_the_next_send_goes_out(modem):
    backend = backend_for(modem)
    modem.fail_next_send(500)
    with pytest.raises(SendFailed) as failed:
        backend.send(CUSTOMER, "first try")
    assert failed.value.retryable and "+CMS ERROR: 500" in failed.value.reason
    backend.send(CUSTOMER, "first try")
    assert [m.text for m in modem.wait_delivered(1)] == ["first try"]


def test_a_number_the_network_refuses_is_not_retried(modem):
    modem.refuse_number("+8613900000000", cms_error=1)
    with pytest.raises(SendFailed) as failed:
        backend_for(modem).send("+86 139 0000 0000", "hello")
    assert not failed.value.retryable and "unassigned" in failed.value.reason and not modem.delivered


def test_a_bad_number_is_refused_before_anything_reaches_the_modem(modem):
    with pytest.raises(SendFailed) as failed:
        backend_for(modem).send("１３８００１３８０００", "hello")
    assert not failed.value.retryable and modem.commands == []


def test_a_text_longer_than_255_parts_fails_for_good_before_reaching_the_modem(modem):
    with pytest.raises(SendFailed) as failed:
        backend_for(modem).send(CUSTOMER, "电" * (67 * 255 + 1))
    assert not failed.value.retryable and "256 SMS" in failed.value.reason and modem.commands == []


def test_a_modem_that_stops_answering_times_out_and_is_set_up_again_next_time(modem):
    backend = backend_for(modem, answer_timeout_s=0.5, send_timeout_s=0.5)
    backend.send(CUSTOMER, "one")
    modem.stop_answering()
    started = time.monotonic()
    with pytest.raises(SendFailed) as failed:
        backend.send(CUSTOMER, "two")
    assert failed.value.retryable and "within" in failed.value.reason
    assert time.monotonic() - started < 5            # bounded by the timeouts, not hanging
    modem.resume_answering()                          # the modem was power-cycled: echo on, text mode
    setup_before = modem.commands.count("AT+CMGF=0")
    backend.send(CUSTOMER, "two")
    assert [m.text for m in modem.wait_delivered(2)] == ["one", "two"]
    assert modem.commands.count("AT+CMGF=0") == setup_before + 1


def test_a_long_message_cut_off_midway_sends_only_its_missing_parts_on_the_retry(modem):
    backend = backend_for(modem)
    modem.fail_next_send(38, after=1)                 # part 2 meets "network out of order"
    with pytest.raises(SendFailed) as failed:
        backend.send(CUSTOMER, LONG_CHINESE)
    assert failed.value.retryable and failed.value.reason.startswith("part 2 of 3")
    backend.send(CUSTOMER, LONG_CHINESE)
    [message] = modem.wait_delivered(1)
    assert message.text == LONG_CHINESE and len(modem.submitted) == 3
    assert len({p.concat[0] for p in message.parts}) == 1


def test_messages_from_two_threads_go_one_at_a_time():
    with FakeModem(pace_s=0.02) as fake:
        backend = backend_for(fake)
        errors = []

        def send_three(who):
            for i in range(3):
                try:
                    backend.send(CUSTOMER, f"{who} {i}")
                except SendFailed as exc:
                    errors.append(exc)

        threads = [threading.Thread(target=send_three, args=(who,)) for who in ("a", "b")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert not errors and not fake.protocol_errors
        assert sorted(m.text for m in fake.wait_delivered(6)) == ["a 0", "a 1", "a 2", "b 0", "b 1", "b 2"]


def test_a_missing_serial_device_is_a_retryable_failure():
    with pytest.raises(SendFailed) as failed:
        GsmModemBackend("/dev/wattline-no-such-modem", answer_timeout_s=0.5).send(CUSTOMER, "hello")
    assert failed.value.retryable and "/dev/wattline-no-such-modem" in failed.value.reason


def test_the_configured_gsm_modem_backend_drives_the_configured_device(modem):
    backend = build_backend(SmsConfig(backend="gsm-modem", device=modem.device, baud=9600), "unused")
    assert backend.name == "gsm-modem"
    backend.send(CUSTOMER, "configured")
    assert modem.wait_delivered(1)[0].text == "configured"
    backend.close()


# -- through the outbox ----------------------------------------------------------------------------------
NOON = dt.datetime(2026, 11, 21, 4, 0)          # 12:00 at the site, outside the quiet hours


def _queue_alarm2(engine, phone: str, language: str) -> None:
    with engine.begin() as conn:
        queue_message(conn, recipient="customer", phone=phone, language=language, kind="alarm2", template="alarm2",
                      params={"room": "3-1-502", "balance": "¥4.00", "time": "11:58"}, now=NOON)


def test_a_silent_modem_fails_the_outbox_messages_in_bounded_time_and_they_go_out_when_it_answers(duck_engine):
    _queue_alarm2(duck_engine, "138 0013 8000", "zh")
    _queue_alarm2(duck_engine, "+8613900000001", "en")
    now = [NOON]
    with FakeModem() as fake:
        outbox = Outbox(duck_engine, backend_for(fake, answer_timeout_s=0.3, send_timeout_s=0.3),
                        zone=site_zone("+08:00"), clock=lambda: now[0])
        fake.stop_answering()
        first = outbox.send_due()                   # returns: neither message hangs the job
        assert (first.sent, first.failed, first.dead) == (0, 2, 0)
        with duck_engine.begin() as conn:
            assert {m["state"] for m in messages(conn)} == {"failed"}
        fake.resume_answering()
        now[0] = NOON + dt.timedelta(minutes=1)
        assert outbox.send_due().sent == 2
        delivered = {m.number: m.text for m in fake.wait_delivered(2)}
    with duck_engine.begin() as conn:
        sent = {m["phone"]: m for m in messages(conn)}
    assert delivered["13800138000"] == sent["138 0013 8000"]["text"] and "3-1-502" in delivered["13800138000"]
    assert delivered["+8613900000001"] == sent["+8613900000001"]["text"]
    assert {m["state"] for m in sent.values()} == {"sent"} and sent["138 0013 8000"]["backend"] == "gsm-modem"
