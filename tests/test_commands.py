"""The sans-IO command layer: requests on the wire, answers matched and typed (protocol.md 3.3/3.4).

Every worked example of the protocol notes is here, each as request bytes -> answer -> result.
"""

from __future__ import annotations

import pytest

from vedirect_async.commands import (
    DeviceError,
    Invalid,
    ProductId,
    Rejected,
    Request,
    Unsupported,
    Value,
    Version,
    async_value,
    describe,
    parse_register,
    register_label,
)
from vedirect_async.hexframe import Command, Flags, HexError, HexFrame, RegisterMessage
from vedirect_async.parser import HexRecord, Parser


def record(wire: bytes) -> HexRecord:
    """A record as the reader gets it: through the real parser (check byte verified)."""
    events = Parser().feed(wire if wire.endswith(b"\n") else wire + b"\n")
    assert len(events) == 1, events
    assert isinstance(events[0], HexRecord), events
    return events[0]


def value_of(result: object) -> object:
    assert isinstance(result, Value), result
    return result.value.value


# -- the worked examples: request frame, answer, typed result ---------------------------------


def test_get_battery_max_current_victrons_example() -> None:
    """protocol.md 3.4: :7F0ED0071 -> :7F0ED009600DB = 150 x 0.1 A = 15.0 A."""
    request = Request.get(0xEDF0)
    assert request.frame == b":7F0ED0071\n"
    assert request.frame == bytes.fromhex("3A 37 46 30 45 44 30 30 37 31 0A")
    result = request.match(record(b":7F0ED009600DB"))
    assert value_of(result) == 15.0
    assert isinstance(result, Value)
    assert result.value.unit == "A"
    assert describe(result) == "0xEDF0 (battery_max_current): 15.0 A"


@pytest.mark.parametrize(
    ("register", "sent", "answer", "expected"),
    [
        (0x0FFF, b":7FF0F0040\n", b":7FF0F003D22E1", 87.65),  # SOC, 0.01 %
        (0xED8D, b":78DED00D4\n", b":78DED00E804E8", 12.56),  # main voltage, 0.01 V
        (0x1000, b":70010003E\n", b":7001000C80076", 200),  # battery capacity, Ah
        (0x0100, b":70001004D\n", b":70001000062A0FF4C", 0xA062),  # product id register
        (0x0100, b":70001004D\n", b":70001000056A0FF58", 0xA056),
        (0x010A, b":70A010043\n", b":70A01004851313834304D4145493400000000008D", "HQ1840MAEI4"),
    ],
)
def test_get_worked_examples(register: int, sent: bytes, answer: bytes, expected: object) -> None:
    request = Request.get(register)
    assert request.frame == sent
    assert value_of(request.match(record(answer))) == pytest.approx(expected)


def test_ping_answer_is_the_firmware_version() -> None:
    request = Request.ping()
    assert request.frame == b":154\n"
    result = request.match(record(b":51641F9"))
    assert result == Version("1.16", 0x4116)
    assert describe(result) == "firmware 1.16"


def test_app_version_and_product_id_answered_by_done() -> None:
    assert Request.app_version().frame == b":352\n"
    assert Request.app_version().match(record(b":11641FD")) == Version("1.16", 0x4116)
    assert Request.product_id().frame == b":451\n"
    assert Request.product_id().match(record(b":1000351")) == ProductId(0x0300)
    assert Request.product_id().match(record(b":156A05E")) == ProductId(0xA056)
    # A 3-byte (VELIB un24) version: 0x0116FF -> release 1.16.
    done = HexFrame(0x1, bytes([0xFF, 0x16, 0x01])).encode()
    assert Request.app_version().match(record(done)) == Version("1.16", 0x0116FF)


def test_set_is_confirmed_by_its_echo() -> None:
    """:8F0ED0064000C sets 10.0 A; the device answers with the same record."""
    request = Request.set_scaled(0xEDF0, 10.0)
    assert request.frame == b":8F0ED0064000C\n"
    assert value_of(request.match(record(b":8F0ED0064000C"))) == 10.0


# -- answers that are no value: typed, never raised ------------------------------------------


@pytest.mark.parametrize(
    ("flags", "reason"),
    [
        (Flags.UNKNOWN_ID, "unknown register"),
        (Flags.NOT_SUPPORTED, "not supported"),
        (Flags.PARAMETER_ERROR, "parameter error"),
        (Flags.UNKNOWN_ID | Flags.PARAMETER_ERROR, "unknown register, parameter error"),
        (Flags(0x80), "flags 0x80"),
    ],
)
def test_flags_become_rejected(flags: Flags, reason: str) -> None:
    for request, command in (
        (Request.get(0xEDF0), Command.GET),
        (Request.set(0xEDF0, b"\x64\x00"), Command.SET),
    ):
        answer = RegisterMessage(command, 0xEDF0, flags).encode()
        result = request.match(record(answer))
        assert result == Rejected(0xEDF0, flags)
        assert isinstance(result, Rejected)
        assert result.reason == reason
        assert "refused by the device" in describe(result)


def test_error_frame_and_unknown_command_are_results() -> None:
    for request in (Request.ping(), Request.get(0xEDF0), Request.product_id()):
        assert request.match(record(b":4AAAAFD")) == DeviceError()
        assert isinstance(request.match(record(b":3020050")), Unsupported)


def test_value_of_wrong_length_is_invalid() -> None:
    answer = RegisterMessage(Command.GET, 0xEDF0, Flags.NONE, b"\x96").encode()  # un16 in 1 byte
    result = Request.get(0xEDF0).match(record(answer))
    assert isinstance(result, Invalid)
    assert result.raw == b"\x96"
    assert "malformed" in describe(result)


# -- records that are not the answer ---------------------------------------------------------


def test_other_register_async_and_wrong_nibble_do_not_match() -> None:
    request = Request.get(0xEDF0)
    assert request.match(record(b":7FF0F003D22E1")) is None  # a Get answer for SOC
    assert request.match(record(b":AF0ED009600D8")) is None  # an :A record of the same register
    assert request.match(record(b":8F0ED0064000C")) is None  # a Set answer of the same register
    assert request.match(record(b":51641F9")) is None  # a ping answer
    assert Request.ping().match(record(b":11641FD")) is None  # "done" is not a ping answer
    assert Request.set(0xEDF0, b"\x64\x00").match(record(b":7F0ED009600DB")) is None


def test_an_echoed_command_is_not_its_answer() -> None:
    """A line that echoes what it is sent: :7F0ED0071 back is no value, :154 no version."""
    for request in (
        Request.ping(),
        Request.app_version(),
        Request.product_id(),
        Request.get(0xEDF0),
    ):
        assert request.match(record(request.frame)) is None
    # ... and one command's echo is no answer to another either (":154" is an empty "done").
    assert Request.app_version().match(record(b":154")) is None
    assert Request.product_id().match(record(b":154")) is None


def test_undecodable_records_are_not_answers() -> None:
    """Too short for a register message, or a frame that does not parse: None, no exception."""
    short = HexFrame(0x7, b"\xf0").encode()
    assert Request.get(0xEDF0).match(record(short)) is None
    assert Request.get(0xEDF0).match(HexRecord(b"7ZZ")) is None
    assert async_value(HexRecord(b"A")) is None


def test_async_records_are_typed_values() -> None:
    """protocol.md 3.4, SmartSolar 150/70 capture: panel voltage, charger voltage, panel power."""
    assert value_of(async_value(record(b":ABBED008D28EE"))) == pytest.approx(103.81)
    assert value_of(async_value(record(b":AD5ED009714DE"))) == pytest.approx(52.71)
    assert value_of(async_value(record(b":ABCED0045A10000BC"))) == pytest.approx(412.85)
    assert value_of(async_value(record(b":A0102000543"))) == 5  # device state: float
    assert async_value(record(b":7F0ED009600DB")) is None  # a Get answer is no async value


# -- register names ----------------------------------------------------------------------------


def test_parse_register_ids_and_names() -> None:
    assert parse_register("0xEDDB") == 0xEDDB
    assert parse_register("0xeddb") == 0xEDDB
    assert parse_register("charger_temperature") == 0xEDDB
    assert parse_register("Charger_Temperature") == 0xEDDB
    assert parse_register(" 0x100 ") == 0x0100
    assert parse_register("charger temperature") == 0xEDDB
    assert parse_register("0x1234") == 0x1234  # not in the table: a device may still know it
    assert parse_register("voltage", "mppt") == 0xEDD5
    for bad in ("EDDB", "no such register", ""):
        with pytest.raises(ValueError, match="expected an id like 0xEDDB or a register name"):
            parse_register(bad)
    with pytest.raises(ValueError, match="not a 16-bit id"):
        parse_register("0x1FFFF")
    with pytest.raises(ValueError, match="depends on the device"):
        parse_register("voltage")
    assert register_label(0xEDDB) == "0xEDDB (charger_temperature)"
    assert register_label(0x1234) == "0x1234"


def test_requests_check_their_register() -> None:
    with pytest.raises(HexError):
        Request.get(0x10000)
    with pytest.raises(HexError):
        Request.set_scaled(0x010A, 1.0)  # a string register has no numeric value
    assert Request.get(0xEDF0).describe() == "get 0xEDF0 (battery_max_current)"
    assert Request.ping().describe() == "ping"
