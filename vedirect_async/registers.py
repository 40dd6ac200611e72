"""The HEX register table: id -> catalogue name, type, scale, unit, n/a value, write range.

Pure code, no I/O. Types and scales are VELIB's (protocol.md section 3.5); where go-victron
reads a register unsigned and VELIB signed (0xEDD7, 0xED7D), it is signed (section 8).

Names are catalogue names in :mod:`vedirect_async.fields`'s style (snake_case, safe in MQTT
topics, CSV headers and metric names). A register that carries the same quantity as a text
field has that field's name and unit, so a HEX value and a text value of one device meet
under one name: 0xEDBB and ``VPV`` are both ``panel_voltage`` in V. Two families send their
main voltage and current in different registers (``voltage`` is 0xED8D on a battery monitor
or an inverter, 0xEDD5 on an MPPT): :func:`resolve` picks by the device's family.

``value = raw * scale + offset``, with ``na`` the raw value VELIB reserves for "not
available" (decoded to ``None``). Writable registers carry the range a Set may use
(``minimum``/``maximum`` in the register's unit) and ``nvm`` when the device stores them in
non-volatile memory (0xEDE0-0xEDFF: do not write them from a loop; protocol.md section 6.14).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Literal

from .daily import HistoryDay, HistoryTotal
from .errors import HexError
from .fields import (
    AR_BITS,
    CS,
    ERR,
    LOAD_OUTPUT_CONTROL,
    MODE,
    MON,
    MPPT,
    OR_BITS,
    UNAVAILABLE,
    Value,
)

__all__ = [
    "LOAD_OUTPUT_CONTROL",
    "REGISTERS",
    "Kind",
    "Meaning",
    "Register",
    "RegisterValue",
    "catalogue_value",
    "decode_value",
    "encode_value",
    "lookup",
    "parse_id",
    "resolve",
]

Kind = Literal[
    "un8", "un16", "sn16", "un32", "sn32", "string", "version", "product", "day", "total"
]
# How a decoded number reads in a reading: as is, an enum name, bit reasons or on/off.
Meaning = Literal["number", "enum", "bitmask", "on_off"]
_STRUCT = {"un8": "<B", "un16": "<H", "sn16": "<h", "un32": "<I", "sn32": "<i"}
# Families as fields.product_family names them; "common" registers exist on every device.
Family = Literal["common", "bmv", "mppt", "inverter"]


@dataclass(frozen=True, slots=True)
class Register:
    """One HEX register (see the module docstring for the fields' meaning)."""

    id: int
    name: str
    kind: Kind
    scale: float = 1
    unit: str = ""
    na: int | None = None
    family: Family = "common"
    description: str = ""
    offset: float = 0
    meaning: Meaning = "number"
    table: Mapping[int, str] | None = None
    writable: bool = False
    minimum: float | None = None
    maximum: float | None = None
    nvm: bool = False
    size: int | None = None  # fixed value length in bytes (strings: zero padded to it)

    @property
    def signed(self) -> bool:
        """Whether the raw number is two's complement."""
        return self.kind.startswith("sn")

    @property
    def width(self) -> int | None:
        """Bytes of a value: 1, 2 or 4 for numbers, the fixed size of strings and records."""
        fmt = _STRUCT.get(self.kind)
        return struct.calcsize(fmt) if fmt else self.size

    @property
    def hex_id(self) -> str:
        """The id as written in configuration and docs, e.g. ``"0xEDDB"``."""
        return f"0x{self.id:04X}"

    def in_range(self, value: float) -> bool:
        """Whether a Set of ``value`` (in the register's unit) is allowed."""
        if not self.writable:
            return False
        low = -math.inf if self.minimum is None else self.minimum
        high = math.inf if self.maximum is None else self.maximum
        return low <= value <= high


@dataclass(frozen=True, slots=True)
class RegisterValue:
    """A decoded register value. ``value`` is None when the device says "not available"."""

    register: int
    name: str
    value: int | float | str | HistoryDay | HistoryTotal | None
    unit: str


_R = Register
_V, _A, _KWH = 0.01, 0.1, 0.01  # V, A, kWh per unit on the wire
_NA8, _NA16, _NA32 = 0xFF, 0xFFFF, 0xFFFFFFFF  # unsigned n/a
_NS16, _NS32 = 0x7FFF, 0x7FFFFFFF  # signed n/a
_BASE: tuple[Register, ...] = (
    # -- common to all devices
    _R(0x0100, "product_id", "product", size=4, description="product id"),
    _R(0x0102, "firmware", "version", size=3, description="application (firmware) version"),
    _R(0x0104, "group_id", "un8", description="group id"),
    _R(0x010A, "serial_number", "string", size=16, description="serial number"),
    _R(0x010B, "model_name", "string", size=32, description="model name"),
    _R(0x0120, "uptime", "un32", 1, "s", description="time since the device started"),
    _R(0x0140, "capabilities", "un32", description="capabilities bit field"),
    _R(0x0200, "device_mode", "un8", description="device mode"),
    _R(0x0201, "charger_state", "un8", na=_NA8, description="state of operation"),
    _R(0x0207, "off_reason", "un32", description="off reasons"),
    _R(0x031C, "warning_reason", "un16", description="warning reasons"),
    _R(0x031E, "alarm_reason", "un16", description="alarm reasons"),
    _R(0x034E, "relay", "un8", description="relay on"),
    _R(
        0xEDEC,
        "temperature",
        "un16",
        0.01,
        "°C",
        _NA16,
        offset=-273.15,
        description="battery temperature (0.01 K on the wire)",
    ),
    # -- BMV-70x/71x and SmartShunt (0xED8D is an inverter's DC voltage too)
    _R(0xED8D, "voltage", "sn16", _V, "V", _NS16, "bmv", "main (battery) voltage"),
    _R(0xED7D, "aux_voltage", "sn16", _V, "V", _NS16, "bmv", "auxiliary (starter) voltage"),
    _R(0xED8F, "current", "sn16", _A, "A", _NS16, "bmv", "main (battery) current"),
    _R(0xED8C, "current_high_resolution", "sn32", 0.001, "A", _NS32, "bmv", "current (mA)"),
    _R(0xED8E, "power", "sn16", 1, "W", _NS16, "bmv", "power"),
    _R(0xEEFF, "consumed_ah", "sn32", _A, "Ah", _NS32, "bmv", "consumed amp-hours"),
    _R(0x0FFF, "soc", "un16", 0.01, "%", _NA16, "bmv", "state of charge"),
    _R(0x0FFE, "time_to_go", "un16", 1, "min", _NA16, "bmv", "time to go"),
    _R(0x0382, "mid_voltage", "un16", _V, "V", _NA16, "bmv", "mid-point voltage"),
    _R(0x0383, "mid_deviation", "sn16", _A, "%", _NS16, "bmv", "mid-point deviation"),
    _R(0xEEB6, "synchronised", "un8", family="bmv", description="synchronised (SOC valid)"),
    _R(0xEEB8, "monitor_mode", "sn16", family="bmv", description="DC monitor mode"),
    _R(0x0300, "history_deepest_discharge", "sn32", _A, "Ah", None, "bmv", "H1"),
    _R(0x0301, "history_last_discharge", "sn32", _A, "Ah", None, "bmv", "H2"),
    _R(0x0302, "history_average_discharge", "sn32", _A, "Ah", None, "bmv", "H3"),
    _R(0x0303, "history_charge_cycles", "un32", 1, "", None, "bmv", "H4"),
    _R(0x0304, "history_full_discharges", "un32", 1, "", None, "bmv", "H5"),
    _R(0x0305, "history_cumulative_ah", "sn32", _A, "Ah", None, "bmv", "H6"),
    _R(0x0306, "history_min_voltage", "sn32", _V, "V", None, "bmv", "H7"),
    _R(0x0307, "history_max_voltage", "sn32", _V, "V", None, "bmv", "H8"),
    _R(0x0308, "history_since_full_charge", "un32", 1, "s", None, "bmv", "H9"),
    _R(0x0309, "history_auto_syncs", "un32", 1, "", None, "bmv", "H10"),
    _R(0x030A, "history_low_voltage_alarms", "un32", 1, "", None, "bmv", "H11"),
    _R(0x030B, "history_high_voltage_alarms", "un32", 1, "", None, "bmv", "H12"),
    _R(0x030C, "history_low_aux_voltage_alarms", "un32", 1, "", None, "bmv", "H13"),
    _R(0x030D, "history_high_aux_voltage_alarms", "un32", 1, "", None, "bmv", "H14"),
    _R(0x030E, "history_min_aux_voltage", "sn32", _V, "V", None, "bmv", "H15"),
    _R(0x030F, "history_max_aux_voltage", "sn32", _V, "V", None, "bmv", "H16"),
    _R(0x0310, "history_discharged_energy", "un32", _KWH, "kWh", None, "bmv", "H17"),
    _R(0x0311, "history_charged_energy", "un32", _KWH, "kWh", None, "bmv", "H18"),
    _R(0x1000, "battery_capacity", "un16", 1, "Ah", None, "bmv", "battery capacity"),
    _R(0xEEFC, "alarm_buzzer", "un8", family="bmv", description="alarm buzzer on"),
    # -- BlueSolar / SmartSolar MPPT
    _R(0xEDBB, "panel_voltage", "un16", _V, "V", _NA16, "mppt", "panel voltage"),
    _R(0xEDBC, "panel_power", "un32", 0.01, "W", _NA32, "mppt", "panel power"),
    _R(0xEDBD, "panel_current", "un16", _A, "A", _NA16, "mppt", "panel current"),
    _R(0xEDB3, "tracker_mode", "un8", 1, "", _NA8, "mppt", "tracker operation mode"),
    _R(0xEDD5, "voltage", "un16", _V, "V", _NA16, "mppt", "charger (battery) voltage"),
    _R(0xEDD7, "current", "sn16", _A, "A", _NS16, "mppt", "charger (battery) current"),
    _R(0xEDDA, "error", "un8", family="mppt", description="charger error"),
    _R(0xEDDB, "charger_temperature", "sn16", 0.01, "°C", _NS16, "mppt", "charger temperature"),
    _R(0xEDDC, "yield_total", "un32", _KWH, "kWh", None, "mppt", "user yield (resettable)"),
    _R(0xEDDD, "yield_system", "un32", _KWH, "kWh", None, "mppt", "system yield"),
    _R(0xEDD3, "yield_today", "un16", _KWH, "kWh", None, "mppt", "yield today"),
    _R(0xEDD2, "max_power_today", "un16", 1, "W", None, "mppt", "maximum power today"),
    _R(0xEDD1, "yield_yesterday", "un16", _KWH, "kWh", None, "mppt", "yield yesterday"),
    _R(0xEDD0, "max_power_yesterday", "un16", 1, "W", None, "mppt", "maximum power yesterday"),
    _R(0xEDA8, "load", "un8", family="mppt", description="load output on"),
    _R(0xEDAB, "load_output_control", "un8", family="mppt", description="load output control"),
    _R(0xEDAD, "load_current", "un16", _A, "A", _NA16, "mppt", "load output current"),
    _R(0xEDF0, "battery_max_current", "un16", _A, "A", None, "mppt", "maximum charge current"),
    _R(0xEDF7, "absorption_voltage", "un16", _V, "V", None, "mppt", "absorption voltage"),
    _R(0xEDF6, "float_voltage", "un16", _V, "V", None, "mppt", "float voltage"),
    _R(0x2027, "network_dc_input_power", "un32", 0.01, "W", _NA32, "mppt", "network DC input"),
    _R(0x2030, "solar_activity", "un8", family="mppt", description="solar activity"),
    _R(0x104F, "history_total", "total", family="mppt", size=34, description="daily totals"),
    *(
        _R(
            0x1050 + n,
            f"history_day_{n}",
            "day",
            family="mppt",
            size=34,
            description=f"daily history, {n} days ago",
        )
        for n in range(31)
    ),
    # -- Phoenix inverter
    _R(0x2200, "ac_out_voltage", "sn16", _V, "V", _NS16, "inverter", "AC output voltage"),
    _R(0x2201, "ac_out_current", "sn16", _A, "A", _NS16, "inverter", "AC output current"),
    _R(0x2205, "ac_out_apparent_power", "sn32", 1, "VA", _NS32, "inverter", "AC output VA"),
    _R(0x0230, "ac_out_voltage_setpoint", "un16", _V, "V", None, "inverter", "AC out setpoint"),
)

# What a number means in a reading (default: a number): the text field's enum or bit table.
_MEANINGS: Mapping[int, tuple[Meaning, Mapping[int, str] | None]] = MappingProxyType(
    {
        0x0200: ("enum", MODE),
        0x0201: ("enum", CS),
        0x0207: ("bitmask", OR_BITS),
        0x031C: ("bitmask", AR_BITS),
        0x031E: ("bitmask", AR_BITS),
        0x034E: ("on_off", None),
        0xEEB6: ("on_off", None),
        0xEEB8: ("enum", MON),
        0xEEFC: ("on_off", None),
        0xEDB3: ("enum", MPPT),
        0xEDDA: ("enum", ERR),
        0xEDA8: ("on_off", None),
        0xEDAB: ("enum", LOAD_OUTPUT_CONTROL),
        0x2030: ("on_off", None),
    }
)
# Writable registers: (minimum, maximum in the unit, stored in non-volatile memory). The
# limits keep a Set inside what the register can mean; a device checks its own (a 20 A
# charger refuses 30 A with flag 0x04). 0xEDE0-0xEDFF live in NVM (protocol.md 3.5, 6.14).
_WRITABLE: Mapping[int, tuple[float, float, bool]] = MappingProxyType(
    {
        0x0200: (0, 253, False),
        0x1000: (1, 9999, False),
        0xEEFC: (0, 1, False),
        0xEDAB: (0, 7, False),
        0xEDF0: (0, 6553.4, True),
        0xEDF7: (8, 70, True),
        0xEDF6: (8, 70, True),
        0x0230: (100, 250, False),
    }
)


def _complete(reg: Register) -> Register:
    meaning, table = _MEANINGS.get(reg.id, ("number", None))
    reg = replace(reg, meaning=meaning, table=table)
    limits = _WRITABLE.get(reg.id)
    if limits is None:
        return reg
    low, high, nvm = limits
    return replace(reg, writable=True, minimum=low, maximum=high, nvm=nvm)


_TABLE: tuple[Register, ...] = tuple(_complete(reg) for reg in _BASE)
REGISTERS: Mapping[int, Register] = MappingProxyType({reg.id: reg for reg in _TABLE})
# Registers whose quantity another family reads from another register (voltage, current)
# share the name; an inverter's DC voltage is the battery monitor's 0xED8D.
_SHARED_FAMILIES: Mapping[int, tuple[str, ...]] = MappingProxyType({0xED8D: ("bmv", "inverter")})
_BY_NAME: Mapping[str, tuple[Register, ...]] = MappingProxyType(
    {name: tuple(r for r in _TABLE if r.name == name) for name in {r.name for r in _TABLE}}
)


def _families(reg: Register) -> tuple[str, ...]:
    return _SHARED_FAMILIES.get(reg.id, (reg.family,))


def parse_id(text: str) -> int | None:
    """``"0xEDDB"`` (any case, 1-4 hex digits after ``0x``) -> 0xEDDB; None if not an id."""
    if text[:2] not in ("0x", "0X") or not 3 <= len(text) <= 6:
        return None
    try:
        return int(text[2:], 16)
    except ValueError:
        return None


def resolve(key: str | int, family: str | None = None) -> Register:
    """The register for an id (``0xEDDB``, ``"0xEDDB"``) or a catalogue name.

    A name two families read from different registers (``voltage``, ``current``) needs the
    device's ``family`` (:func:`vedirect_async.fields.product_family`). Raises ``KeyError``
    with a one-line explanation for an unknown or ambiguous key. An id that is not in the
    table is unknown here too (a device may still answer it: use :func:`parse_id` for those).
    """
    number = key if isinstance(key, int) else parse_id(key)
    if number is not None:
        reg = REGISTERS.get(number)
        if reg is None:
            raise KeyError(f"register 0x{number:04X} is not in the register table")
        return reg
    assert isinstance(key, str)
    found = _BY_NAME.get(key, ())
    if family is not None and len(found) > 1:
        found = tuple(r for r in found if family in _families(r) or r.family == "common")
    if len(found) == 1:
        return found[0]
    if not found:
        raise KeyError(f"unknown register {key!r}: expected an id like 0xEDDB or a register name")
    where = ", ".join(f"{r.hex_id} on {'/'.join(_families(r))}" for r in found)
    raise KeyError(f"register {key!r} depends on the device: {where}; give the id")


def lookup(key: str | int, family: str | None = None) -> Register | None:
    """:func:`resolve`, or None when the key is unknown or ambiguous."""
    try:
        return resolve(key, family)
    except KeyError:
        return None


# -- values -------------------------------------------------------------------------------


def _scaled(raw: int, reg: Register) -> int | float | None:
    if reg.na is not None and raw == reg.na:
        return None
    if reg.scale == 1 and reg.offset == 0:
        return raw
    # Divide by the decimal power rather than multiply by 0.01: 8765 / 100 == 87.65 exactly as
    # printed, 8765 * 0.01 == 87.65000000000001.
    value = raw / round(1 / reg.scale) if reg.scale < 1 else raw * reg.scale
    return round(value + reg.offset, 2) if reg.offset else value


def decode_value(register: int, value: bytes) -> RegisterValue:
    """Decode a register's raw value bytes into a named, scaled value.

    An unknown register comes back with its raw bytes as upper-case hex text. A value whose
    length does not fit its register's type raises :class:`~vedirect_async.errors.HexError`.
    """
    reg = REGISTERS.get(register)
    if reg is None:
        return RegisterValue(register, f"0x{register:04X}", value.hex().upper(), "")
    decoded: int | float | str | HistoryDay | HistoryTotal | None
    if reg.kind in _STRUCT:
        fmt = _STRUCT[reg.kind]
        if len(value) != struct.calcsize(fmt):
            raise HexError(f"{reg.name}: {len(value)} bytes, {reg.kind} needs {fmt}")
        decoded = _scaled(struct.unpack(fmt, value)[0], reg)
    elif reg.kind == "string":
        decoded = value.split(b"\x00", 1)[0].decode("ascii", "backslashreplace")
    elif reg.kind == "product":
        # 4 bytes: 00 PIDlo PIDhi FF (VE.Direct MPPTs differ from VE.Can; bytes 1-2 hold it).
        if len(value) != 4:
            raise HexError(f"product id: {len(value)} bytes, expected 4")
        decoded = int.from_bytes(value[1:3], "little")
    elif reg.kind == "version":
        decoded = _app_version(value)
    elif reg.kind == "day":
        decoded = HistoryDay.parse(value)
    else:
        decoded = HistoryTotal.parse(value)
    return RegisterValue(register, reg.name, decoded, reg.unit)


def _app_version(value: bytes) -> str:
    """un24 0xHHMMLL: HH = 0 means vMM.LL; else vHH.MM, LL = 0xFF release, other LL beta."""
    if len(value) not in (3, 4):
        raise HexError(f"app version: {len(value)} bytes, expected 3")
    number = int.from_bytes(value[:3], "little")
    hh, mm, ll = number >> 16, (number >> 8) & 0xFF, number & 0xFF
    if hh == 0:
        return f"{mm:x}.{ll:02x}"
    return f"{hh:x}.{mm:02x}" + ("" if ll == 0xFF else f"-beta-{ll:02x}")


def encode_value(register: int, value: float | str | HistoryDay | HistoryTotal | None) -> bytes:
    """Raw value bytes of ``register`` holding ``value`` (in its unit, e.g. 15.0 A).

    Numbers for numeric registers and the product id, text for strings and ``"1.59"``-style
    versions, records for history registers, None for "not available" (the register's n/a
    value). Raises HexError when the value does not fit.
    """
    reg = REGISTERS.get(register)
    if reg is None:
        raise HexError(f"register 0x{register:04X} is not in the register table")
    if value is None:
        if reg.na is None:
            raise HexError(f"{reg.name} has no 'not available' value")
        return reg.na.to_bytes(struct.calcsize(_STRUCT[reg.kind]), "little")
    if isinstance(value, HistoryDay | HistoryTotal):
        if reg.kind not in ("day", "total"):
            raise HexError(f"{reg.name} is not a history record")
        return value.encode()
    if isinstance(value, str):
        return _encode_text(reg, value)
    if reg.kind == "product":
        return b"\x00" + int(value).to_bytes(2, "little") + b"\xff"
    if reg.kind not in _STRUCT:
        raise HexError(f"{reg.name} has no numeric type")
    raw = round((value - reg.offset) / reg.scale)
    try:
        return struct.pack(_STRUCT[reg.kind], raw)
    except struct.error as exc:
        raise HexError(f"{reg.name}: {value} does not fit {reg.kind}") from exc


def _encode_text(reg: Register, text: str) -> bytes:
    if reg.kind == "version":
        major, _, minor = text.partition(".")
        try:  # release "3.16" -> HH=3 MM=0x16 LL=FF (as 0x0102 reads back)
            return bytes((0xFF, int(minor, 16), int(major, 16)))
        except ValueError as exc:
            raise HexError(f"{reg.name}: {text!r} is not a version like 1.59") from exc
    if reg.kind != "string":
        raise HexError(f"{reg.name} is not a text register")
    data = text.encode("ascii", "strict")
    size = reg.size or len(data) + 1
    if len(data) > size:
        raise HexError(f"{reg.name}: {text!r} is longer than {size} bytes")
    return data + bytes(size - len(data))


def catalogue_value(reg: Register, value: object) -> Value:
    """A decoded number as a reading holds it: enum names, bit reasons, on/off as bool.

    ``None`` (the device's n/a) is :data:`~vedirect_async.fields.UNAVAILABLE`; strings and
    plain numbers stay as they are; an unknown enum code reads ``"unknown (n)"`` as in text.
    """
    if value is None:
        return UNAVAILABLE
    if isinstance(value, str):
        return value
    if not isinstance(value, int | float):
        raise TypeError(f"{reg.name}: a record has no catalogue value")
    if reg.meaning == "number" or not isinstance(value, int):
        return value
    if reg.meaning == "on_off":
        return value != 0
    table = reg.table or {}
    if reg.meaning == "enum":
        return table.get(value, f"unknown ({value})")
    return tuple(
        table.get(bit, f"bit {bit}") for bit in range(value.bit_length()) if value >> bit & 1
    )
