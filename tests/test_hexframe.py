"""HEX records: every vector of protocol.md section 7, register decoding, history records."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.parser_vectors import T8B_HEX, T9_HEX, T12_HEX
from vedirect_async.daily import HistoryDay, HistoryTotal
from vedirect_async.hexframe import (
    AppVersion,
    Command,
    Done,
    ErrorResponse,
    Flags,
    HexError,
    HexFrame,
    PingResponse,
    RegisterMessage,
    UnknownResponse,
    app_version_request,
    check_byte,
    decode_message,
    get_request,
    ping_request,
    product_id_request,
    restart_request,
    set_request,
)
from vedirect_async.parser import HexRecord, Parser
from vedirect_async.registers import REGISTERS, decode_value, encode_value

# protocol.md 7.3 "HEX vectors checked = 0x55", every one.
ALL_VECTORS = [
    b":154",
    b":51641F9",
    b":352",
    b":11641FD",
    b":451",
    b":1000351",
    b":156A05E",
    b":64F",
    b":7F0ED0071",
    b":7F0ED009600DB",
    b":8F0ED0064000C",
    b":4AAAAFD",
    b":3020050",
    b":A0102000543",
    b":A0002000148",
    b":AD7ED00020085",
    b":55041BF",
    b":70010003E",
    b":7001000C80076",
    b":7FF0F0040",
    b":78DED00D4",
    b":78FED00D2",
    b":70001000056A0FF58",
    b":70001000062A0FF4C",
    b":7FF0F003D22E1",
    b":78DED00E804E8",
    b":78CED00D5",
    b":7FFEE0061",
    b":7FE0F0041",
    b":7BCED00A5",
    b":7BBED00A6",
    b":70102004B",
    b":7DAED0087",
    b":7D5ED008C",
    b":7D7ED008A",
    b":70001004D",
    b":70A01004851313834304D4145493400000000008D",
    b":ABBED008D28EE",
    b":AD5ED009714DE",
    b":ABCED0045A10000BC",
]


@pytest.mark.parametrize("vector", ALL_VECTORS, ids=lambda v: v.decode())
def test_vector_round_trip(vector: bytes) -> None:
    """Each section 7 vector parses (check = 0x55) and encodes back to the same bytes."""
    frame = HexFrame.parse(vector + b"\n")
    assert frame.encode() == vector + b"\n"
    assert HexFrame.parse(vector) == frame  # ':' and '\n' are optional for parse
    assert (
        frame.command + sum(frame.payload) + check_byte(frame.command, frame.payload)
    ) % 256 == 0x55
    assert decode_message(frame).to_frame() == frame


@pytest.mark.parametrize("vector", ALL_VECTORS, ids=lambda v: v.decode())
def test_vector_through_text_parser(vector: bytes) -> None:
    """The text parser hands every vector over as a HexRecord that HexFrame accepts."""
    (record,) = Parser().feed(vector + b"\n")
    assert isinstance(record, HexRecord)
    assert HexFrame.from_record(record).encode() == vector + b"\n"


@pytest.mark.parametrize(
    ("build", "wire"),
    [
        (ping_request, b":154\n"),
        (app_version_request, b":352\n"),
        (product_id_request, b":451\n"),
        (restart_request, b":64F\n"),
        (lambda: get_request(0xEDF0), b":7F0ED0071\n"),
        (lambda: get_request(0x0FFF), b":7FF0F0040\n"),
        (lambda: get_request(0xED8D), b":78DED00D4\n"),
        (lambda: get_request(0xED8F), b":78FED00D2\n"),
        (lambda: get_request(0x1000), b":70010003E\n"),
        (lambda: get_request(0xED8C), b":78CED00D5\n"),
        (lambda: get_request(0xEEFF), b":7FFEE0061\n"),
        (lambda: get_request(0x0FFE), b":7FE0F0041\n"),
        (lambda: get_request(0xEDBC), b":7BCED00A5\n"),
        (lambda: get_request(0xEDBB), b":7BBED00A6\n"),
        (lambda: get_request(0x0201), b":70102004B\n"),
        (lambda: get_request(0xEDDA), b":7DAED0087\n"),
        (lambda: get_request(0xEDD5), b":7D5ED008C\n"),
        (lambda: get_request(0xEDD7), b":7D7ED008A\n"),
        (lambda: get_request(0x0100), b":70001004D\n"),
        (lambda: set_request(0xEDF0, encode_value(0xEDF0, 10.0)), b":8F0ED0064000C\n"),
    ],
)
def test_requests(build: object, wire: bytes) -> None:
    """Requests encode exactly as protocol.md sections 3.3, 3.4 and 7 give them."""
    assert callable(build)
    frame = build()
    assert isinstance(frame, HexFrame)
    assert frame.encode() == wire


def test_ping_response() -> None:
    """:51641F9 is a ping response with application version 0x4116 = v1.16."""
    message = decode_message(HexFrame.parse(b":51641F9\n"))
    assert message == PingResponse(AppVersion(0x4116))
    assert isinstance(message, PingResponse)
    assert message.version.version == "1.16"
    assert message.version.kind == 1
    assert decode_message(HexFrame.parse(b":55041BF")) == PingResponse(AppVersion(0x4150))


def test_done_responses() -> None:
    """Done carries the app version (:11641FD) or the product id (:1000351, :156A05E)."""
    assert decode_message(HexFrame.parse(b":11641FD")) == Done(b"\x16\x41")
    pid = decode_message(HexFrame.parse(b":1000351"))
    assert isinstance(pid, Done)
    assert pid.number == 0x0300
    pid = decode_message(HexFrame.parse(b":156A05E"))
    assert isinstance(pid, Done)
    assert pid.number == 0xA056


def test_unknown_and_error_responses() -> None:
    """:3020050 is "unknown command"; :4AAAAFD is the device's framing/check error."""
    assert decode_message(HexFrame.parse(b":3020050")) == UnknownResponse(b"\x02\x00")
    assert decode_message(HexFrame.parse(b":4AAAAFD")) == ErrorResponse()
    assert ErrorResponse().to_frame().encode() == b":4AAAAFD\n"


@pytest.mark.parametrize(
    ("wire", "register", "name", "value", "unit"),
    [
        (b":7F0ED009600DB", 0xEDF0, "battery_max_current", 15.0, "A"),
        (b":8F0ED0064000C", 0xEDF0, "battery_max_current", 10.0, "A"),
        (b":7FF0F003D22E1", 0x0FFF, "soc", 87.65, "%"),
        (b":78DED00E804E8", 0xED8D, "voltage", 12.56, "V"),
        (b":7001000C80076", 0x1000, "battery_capacity", 200, "Ah"),
        (b":70001000056A0FF58", 0x0100, "product_id", 0xA056, ""),
        (b":70001000062A0FF4C", 0x0100, "product_id", 0xA062, ""),
        (b":A0102000543", 0x0201, "charger_state", 5, ""),
        (b":A0002000148", 0x0200, "device_mode", 1, ""),
        (b":AD7ED00020085", 0xEDD7, "current", 0.2, "A"),
        (b":ABBED008D28EE", 0xEDBB, "panel_voltage", 103.81, "V"),
        (b":AD5ED009714DE", 0xEDD5, "voltage", 52.71, "V"),
        (b":ABCED0045A10000BC", 0xEDBC, "panel_power", 412.85, "W"),
        (b":70A01004851313834304D4145493400000000008D", 0x010A, "serial_number", "HQ1840MAEI4", ""),
        (b":ADBED00D10AA8", 0xEDDB, "charger_temperature", 27.69, "°C"),
        (b":A8DED00971426", 0xED8D, "voltage", 52.71, "V"),
        (b":A8FED000D00C2", 0xED8F, "current", 1.3, "A"),
        (b":A8CED001E050000AF", 0xED8C, "current_high_resolution", 1.31, "A"),
        (b":A200100560C0000C8", 0x0120, "uptime", 3158, "s"),
    ],
)
def test_register_values(wire: bytes, register: int, name: str, value: object, unit: str) -> None:
    """Register replies and async messages decode to named, scaled values in their units."""
    message = RegisterMessage.parse(wire)
    assert message.register == register
    assert message.ok
    decoded = message.decoded()
    assert (decoded.name, decoded.value, decoded.unit) == (name, value, unit)
    assert message.encode() == wire + b"\n"


def test_not_available_values() -> None:
    """VELIB's n/a values (0xFFFF, 0x7FFF) decode to None, never to a number."""
    assert decode_value(0x0FFF, b"\xff\xff").value is None
    assert decode_value(0xED8D, b"\xff\x7f").value is None
    assert decode_value(0xEDEC, b"\xff\xff").value is None
    assert decode_value(0xEDEC, (29815).to_bytes(2, "little")).value == 25.0


def test_flags_mean_no_value() -> None:
    """A reply with a flag set (unknown id, not supported, parameter error) has no value."""
    message = RegisterMessage(Command.GET, 0x1050 + 5, Flags.UNKNOWN_ID)
    again = RegisterMessage.parse(message.encode())
    assert again.flags == Flags.UNKNOWN_ID
    assert not again.ok
    assert again.decoded().value is None
    assert again.decoded().name == "history_day_5"


def test_unknown_register_kept_raw() -> None:
    """Undocumented registers (0xEDB4 on the 150/70 rev3) keep their raw bytes as hex."""
    decoded = RegisterMessage.parse(b":AB4ED00BEA100004B").decoded()
    assert decoded.name == "0xEDB4"
    assert decoded.value == "BEA10000"


def test_async_records_of_captured_vectors() -> None:
    """Every async record of T8b, T9 and T12 decodes (known registers by name)."""
    records = Parser().feed(T8B_HEX + T9_HEX + T12_HEX)
    assert len(records) == 13
    for record in records:
        assert isinstance(record, HexRecord)
        message = decode_message(HexFrame.from_record(record))
        assert isinstance(message, RegisterMessage)
        assert message.command is Command.ASYNC
        message.decoded()


def test_history_day_t9() -> None:
    """T9's async history day decodes with the VELIB layout: max power 11 W, day 274."""
    message = RegisterMessage.parse(T9_HEX)
    assert message.register == 0x1050
    day = message.decoded().value
    assert isinstance(day, HistoryDay)
    assert day.max_power_w == 11
    assert day.day_sequence == 274
    assert day.battery_voltage_max == 12.61
    assert day.battery_voltage_min == 12.22
    assert day.time_bulk_min == 194
    assert day.battery_current_max == 0.9
    assert day.panel_voltage_max == 35.28
    assert day.yield_kwh == 0
    assert day.errors == (0, 0, 0, 0)
    assert day.encode() == message.value
    assert RegisterMessage(Command.ASYNC, 0x1050, Flags.NONE, day.encode()).encode() == T9_HEX


def test_history_day_not_available() -> None:
    """All-FF fields of a history day are None and encode back to all-FF."""
    raw = bytes(1) + b"\xff" * 33
    day = HistoryDay.parse(raw)
    assert day.yield_kwh is None
    assert day.day_sequence is None
    assert day.encode()[:9] == raw[:9]


def test_history_total() -> None:
    """The history total (0x104F) of the SmartSolar 1.39 capture decodes and round-trips."""
    wire = b":A4F1000010000000000000000000000000001000D0500F904FFFFFFFFFFFFFFFFFFFFFFFFFFE8\n"
    message = RegisterMessage.parse(wire)
    total = message.decoded().value
    assert isinstance(total, HistoryTotal)
    assert total.version == 1
    assert total.user_yield_kwh == 0
    assert total.battery_voltage_max == 12.93
    assert total.size == 34
    assert total.encode() == message.value


def test_history_round_trip() -> None:
    """HistoryDay and HistoryTotal survive encode/parse unchanged."""
    day = HistoryDay(1, 1.23, 0.5, 14.4, 12.1, 0, (2, 0, 0, 0), 60, 120, 300, 250, 12.5, 40.12, 7)
    assert HistoryDay.parse(day.encode()) == day
    total = HistoryTotal(1, 0, (0, 0, 0, 0), 123.45, 200.0, 95.5, 14.6, 30)
    assert HistoryTotal.parse(total.encode()) == total


@pytest.mark.parametrize(
    "bad",
    [b":7F0ED0072\n", b":7f0ed0071\n", b":7F0ED007\n", b":\n", b":7F\n", b"7G0ED0071"],
)
def test_parse_rejects(bad: bytes) -> None:
    """Wrong check, lower case, odd byte count, empty or non-hex records raise HexError."""
    with pytest.raises(HexError):
        HexFrame.parse(bad)


def test_value_errors() -> None:
    """A value of the wrong length for its register type, or out of range, raises HexError."""
    with pytest.raises(HexError):
        decode_value(0xED8D, b"\x01")
    with pytest.raises(HexError):
        encode_value(0xEDF0, 1e9)
    with pytest.raises(HexError):
        encode_value(0x010A, 1)
    with pytest.raises(HexError):
        RegisterMessage.parse(b":154")
    with pytest.raises(HexError):
        HexFrame(16)


def test_register_table_is_consistent() -> None:
    """Every numeric register's n/a value fits its type, and history days span 0x1050-0x106E."""
    for reg in REGISTERS.values():
        if reg.na is not None:
            assert reg.kind in ("un8", "un16", "sn16", "un32", "sn32")
    assert REGISTERS[0x106E].name == "history_day_30"
    assert 0x106F not in REGISTERS


def test_app_version_register() -> None:
    """Register 0x0102 (un24): HH = 0 is vMM.LL, else vHH.MM with LL = FF release."""
    assert decode_value(0x0102, bytes([0x56, 0x01, 0x00])).value == "1.56"
    assert decode_value(0x0102, bytes([0xFF, 0x16, 0x03])).value == "3.16"
    assert decode_value(0x0102, bytes([0x01, 0x08, 0x02])).value == "2.08-beta-01"


@settings(max_examples=200, deadline=None)
@given(command=st.integers(min_value=0, max_value=15), payload=st.binary(max_size=40))
def test_any_frame_round_trips(command: int, payload: bytes) -> None:
    """Any command nibble and payload encodes to a record that parses back to the same frame."""
    frame = HexFrame(command, payload)
    wire = frame.encode()
    assert wire.startswith(b":")
    assert wire.endswith(b"\n")
    assert HexFrame.parse(wire) == frame
    (record,) = Parser().feed(wire)
    assert isinstance(record, HexRecord)
    assert HexFrame.from_record(record) == frame


@settings(max_examples=200, deadline=None)
@given(
    command=st.sampled_from([Command.GET, Command.SET, Command.ASYNC]),
    register=st.integers(min_value=0, max_value=0xFFFF),
    flags=st.integers(min_value=0, max_value=0xFF),
    value=st.binary(max_size=34),
)
def test_any_register_message_round_trips(
    command: Command, register: int, flags: int, value: bytes
) -> None:
    """Register messages round-trip; decoding their value never fails other than by HexError."""
    message = RegisterMessage(command, register, Flags(flags), value)
    again = RegisterMessage.parse(message.encode())
    assert again == message
    with contextlib.suppress(HexError):
        again.decoded()


@settings(max_examples=200, deadline=None)
@given(raw=st.binary(min_size=34, max_size=34))
def test_history_records_round_trip_any_bytes(raw: bytes) -> None:
    """Any 34 bytes decode as a history day / total and encode back to the same bytes."""
    assert HistoryDay.parse(raw).encode() == raw
    assert HistoryTotal.parse(raw).encode() == raw
