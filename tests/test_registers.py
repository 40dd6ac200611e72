"""The HEX register table: every entry round-trips, the notes' worked examples decode, lookup."""

from __future__ import annotations

import math

import pytest

from vedirect_async import fields
from vedirect_async.daily import HistoryDay, HistoryTotal
from vedirect_async.errors import HexError
from vedirect_async.hexframe import Command, Flags, HexFrame, RegisterMessage, get_request
from vedirect_async.registers import (
    REGISTERS,
    Register,
    catalogue_value,
    decode_value,
    encode_value,
    lookup,
    parse_id,
    resolve,
)

_RANGES = {"un8": (0, 0xFF), "un16": (0, 0xFFFF), "sn16": (-0x8000, 0x7FFF)}
_RANGES |= {"un32": (0, 0xFFFFFFFF), "sn32": (-0x80000000, 0x7FFFFFFF)}
_SAMPLE_DAY = HistoryDay(
    1, 1.23, 0.5, 14.4, 12.1, 0, (2, 0, 0, 0), 60, 120, 300, 250, 12.5, 40.12, 7
)
_SAMPLE_TOTAL = HistoryTotal(1, 0, (0, 0, 0, 0), 123.45, 200.0, 95.5, 14.6, 30)


def _samples(reg: Register) -> list[object]:
    """Values of ``reg``'s type: both ends of the raw range (not n/a) and one in the middle."""
    if reg.kind in _RANGES:
        low, high = _RANGES[reg.kind]
        raws = [low, high - 1 if reg.na == high else high, (low + high) // 3]
        return [decode_value(reg.id, _pack(reg, raw)).value for raw in raws]
    others: dict[str, list[object]] = {
        "string": ["HQ2230ABCDE"],
        "version": ["1.59", "3.16"],
        "product": [0xA05F, 0xA381],
        "day": [_SAMPLE_DAY],
        "total": [_SAMPLE_TOTAL],
    }
    return others[reg.kind]


def _pack(reg: Register, raw: int) -> bytes:
    assert reg.width is not None
    return raw.to_bytes(reg.width, "little", signed=reg.signed)


@pytest.mark.parametrize("reg", REGISTERS.values(), ids=lambda r: f"{r.hex_id}-{r.name}")
def test_every_register_round_trips(reg: Register) -> None:
    """Every entry: its values encode and decode back (raw bytes identical), through a frame."""
    for value in _samples(reg):
        assert value is not None
        raw = encode_value(reg.id, value)  # type: ignore[arg-type]
        if reg.width is not None:
            assert len(raw) == reg.width
        decoded = decode_value(reg.id, raw)
        assert (decoded.name, decoded.unit, decoded.value) == (reg.name, reg.unit, value)
        message = RegisterMessage(Command.GET, reg.id, Flags.NONE, raw)
        assert RegisterMessage.parse(message.encode()).decoded() == decoded
        assert encode_value(reg.id, decoded.value) == raw
    # the request that asks for it: ':7' + id LE + flags 00 + check
    assert (
        get_request(reg.id).encode() == HexFrame(7, reg.id.to_bytes(2, "little") + b"\0").encode()
    )


@pytest.mark.parametrize("reg", REGISTERS.values(), ids=lambda r: f"{r.hex_id}-{r.name}")
def test_every_register_entry_is_well_formed(reg: Register) -> None:
    """Names in catalogue style; shared names mean the text field's quantity in its unit."""
    assert reg.name.replace("_", "").isalnum()
    assert reg.name == reg.name.lower()
    assert reg.description
    if reg.na is not None:
        assert reg.kind in _RANGES
    field = fields.lookup(reg.name)  # every output finds the unit and states by name
    if reg.kind in ("day", "total"):
        assert field is None
        return
    assert field is not None, f"{reg.name}: add it to fields._HEX_ONLY"
    assert field.unit == reg.unit, reg.name
    if field.label not in fields.CATALOGUE:  # HEX only: the field is the register's
        assert field.label == reg.hex_id
        assert field.scale == reg.scale
    kinds = {"enum": fields.Kind.ENUM, "on_off": fields.Kind.ON_OFF}
    if reg.meaning in kinds:
        assert field.kind is kinds[reg.meaning]
        assert field.table == (reg.table or {})
    if reg.meaning in ("enum", "bitmask"):
        assert reg.table
    if reg.writable:
        assert reg.minimum is not None
        assert reg.maximum is not None
        # the limits are encodable values of the register
        encode_value(reg.id, reg.minimum)
        encode_value(reg.id, reg.maximum)
        assert reg.in_range(reg.minimum)
        assert not reg.in_range(reg.maximum + 1)
    else:
        assert not reg.in_range(0)
    assert reg.nvm == (reg.writable and 0xEDE0 <= reg.id <= 0xEDFF)


def test_the_issue_registers_are_there() -> None:
    """The registers issue 14 names, with the types and scales of protocol.md section 3.5."""
    expect = {
        0xEDDB: ("charger_temperature", "sn16", "°C"),
        0xEDF0: ("battery_max_current", "un16", "A"),
        0xEDF7: ("absorption_voltage", "un16", "V"),
        0xEDF6: ("float_voltage", "un16", "V"),
        0x0200: ("device_mode", "un8", ""),
        0xEDAB: ("load_output_control", "un8", ""),
        0xEDA8: ("load", "un8", ""),
        0xEDBB: ("panel_voltage", "un16", "V"),
        0xEDBC: ("panel_power", "un32", "W"),
        0x010A: ("serial_number", "string", ""),
        0x010B: ("model_name", "string", ""),
        0x104F: ("history_total", "total", ""),
    }
    for reg_id, (name, kind, unit) in expect.items():
        reg = REGISTERS[reg_id]
        assert (reg.name, reg.kind, reg.unit) == (name, kind, unit)
    assert [REGISTERS[0x1050 + n].name for n in (0, 30)] == ["history_day_0", "history_day_30"]
    assert 0x106F not in REGISTERS
    writable = {r.hex_id for r in REGISTERS.values() if r.writable}
    assert {"0xEDF0", "0xEDF7", "0xEDF6", "0x0200", "0xEDAB", "0x1000"} <= writable
    assert {r.hex_id for r in REGISTERS.values() if r.nvm} == {"0xEDF0", "0xEDF6", "0xEDF7"}


@pytest.mark.parametrize(
    ("wire", "name", "value", "unit"),
    [
        # protocol.md 3.4: Victron's worked example and the BMV ones
        (b":7F0ED009600DB", "battery_max_current", 15.0, "A"),
        (b":8F0ED0064000C", "battery_max_current", 10.0, "A"),
        (b":7FF0F003D22E1", "soc", 87.65, "%"),
        (b":78DED00E804E8", "voltage", 12.56, "V"),
        (b":7001000C80076", "battery_capacity", 200, "Ah"),
        (b":70001000062A0FF4C", "product_id", 0xA062, ""),
        (b":70001000056A0FF58", "product_id", 0xA056, ""),
        (b":70A01004851313834304D4145493400000000008D", "serial_number", "HQ1840MAEI4", ""),
        # 3.4: the SmartSolar 150/70 rev3 cross-check against its text
        (b":ABBED008D28EE", "panel_voltage", 103.81, "V"),
        (b":AD5ED009714DE", "voltage", 52.71, "V"),
        (b":ABCED0045A10000BC", "panel_power", 412.85, "W"),
        # 3.3: async device state 5 (float)
        (b":A0102000543", "charger_state", 5, ""),
    ],
)
def test_worked_examples(wire: bytes, name: str, value: object, unit: str) -> None:
    """The notes' worked examples decode to the value they give, and encode back exactly."""
    message = RegisterMessage.parse(wire)
    decoded = message.decoded()
    assert (decoded.name, decoded.value, decoded.unit) == (name, value, unit)
    assert encode_value(message.register, value) == message.value  # type: ignore[arg-type]


def test_serial_number_is_zero_padded_as_the_example() -> None:
    """A serial encodes as the example's 16 zero-padded bytes; too long a text is refused."""
    assert encode_value(0x010A, "HQ1840MAEI4") == b"HQ1840MAEI4" + bytes(5)
    with pytest.raises(HexError):
        encode_value(0x010A, "X" * 17)
    with pytest.raises(HexError):
        encode_value(0xEDF0, "15 A")


def test_battery_temperature_kelvin_offset() -> None:
    """0xEDEC is 0.01 K on the wire: 29815 is 25.00 °C, 0xFFFF not available."""
    assert decode_value(0xEDEC, (29815).to_bytes(2, "little")).value == 25.0
    assert encode_value(0xEDEC, 25.0) == (29815).to_bytes(2, "little")
    assert decode_value(0xEDEC, b"\xff\xff").value is None


@pytest.mark.parametrize(
    ("key", "family", "expected"),
    [
        ("0xEDDB", None, 0xEDDB),
        ("0xeddb", None, 0xEDDB),
        (0xEDDB, None, 0xEDDB),
        ("charger_temperature", None, 0xEDDB),
        ("battery_max_current", "mppt", 0xEDF0),
        ("voltage", "mppt", 0xEDD5),
        ("voltage", "bmv", 0xED8D),
        ("voltage", "inverter", 0xED8D),
        ("current", "mppt", 0xEDD7),
        ("current", "bmv", 0xED8F),
        ("serial_number", "bmv", 0x010A),
        ("history_day_3", None, 0x1053),
    ],
)
def test_lookup_by_id_or_catalogue_name(key: str | int, family: str | None, expected: int) -> None:
    """An id (any case) or a catalogue name finds its register; a family settles shared names."""
    assert resolve(key, family).id == expected
    assert lookup(key, family) == REGISTERS[expected]


def test_lookup_refuses_unknown_and_ambiguous_keys() -> None:
    """Unknown keys and a shared name without a family are one-line KeyErrors (lookup: None)."""
    with pytest.raises(KeyError, match="depends on the device: 0xED8D on bmv/inverter"):
        resolve("voltage")
    assert lookup("voltage") is None
    with pytest.raises(KeyError, match="unknown register 'no_such'"):
        resolve("no_such")
    with pytest.raises(KeyError, match="0xEDB4 is not in the register table"):
        resolve("0xEDB4")
    assert parse_id("0xEDB4") == 0xEDB4
    assert parse_id("EDB4") is None
    assert parse_id("0x12345") is None
    assert parse_id("0xZZ") is None


def test_catalogue_values_match_the_text_fields() -> None:
    """Enums, bit fields and on/off read as the text catalogue decodes them; n/a unavailable."""
    assert catalogue_value(REGISTERS[0x0201], 5) == fields.decode_value("CS", b"5") == "float"
    assert catalogue_value(REGISTERS[0xEDDA], 0) == fields.decode_value("ERR", b"0")
    assert catalogue_value(REGISTERS[0xEDB3], 2) == fields.decode_value("MPPT", b"2")
    assert catalogue_value(REGISTERS[0x0200], 4) == fields.decode_value("MODE", b"4")
    assert catalogue_value(REGISTERS[0x0200], 99) == "unknown (99)"
    assert catalogue_value(REGISTERS[0x0207], 1) == fields.decode_value("OR", b"0x00000001")
    assert catalogue_value(REGISTERS[0x031E], 5) == fields.decode_value("AR", b"5")
    assert catalogue_value(REGISTERS[0xEDA8], 1) is True
    assert catalogue_value(REGISTERS[0xEDAB], 1) == "auto"
    assert catalogue_value(REGISTERS[0xEDDB], 27.69) == 27.69
    assert catalogue_value(REGISTERS[0xEDDB], None) is fields.UNAVAILABLE
    assert catalogue_value(REGISTERS[0x010A], "HQ1") == "HQ1"
    with pytest.raises(TypeError):
        catalogue_value(REGISTERS[0x1050], _SAMPLE_DAY)


def test_out_of_type_values_are_refused() -> None:
    """A number that does not fit the register's type, or a record in a number, raises."""
    with pytest.raises(HexError):
        encode_value(0xEDF0, 1e9)
    with pytest.raises(HexError):
        encode_value(0xEDF0, _SAMPLE_DAY)
    with pytest.raises(HexError):
        encode_value(0xEDB4, 1)
    with pytest.raises(HexError):
        encode_value(0x0102, "one.two")
    assert math.isclose(REGISTERS[0xEDF0].scale, 0.1)
