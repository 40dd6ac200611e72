"""VE.Direct HEX protocol: encode and decode HEX records and register values (pure code).

Wire format (protocol.md section 3.2), one record::

    ':'  <command: 1 hex digit>  <payload: 2 hex digits per byte>  <check: 2 hex digits>  '\\n'

- Digits are upper case; numbers are little-endian.
- Check rule: (command + sum of payload bytes + check) mod 256 == 0x55 (the command nibble
  counts as a value 0x0-0xF).
- Get / Set / Async payload: register id (2 bytes LE), flags (1 byte), value (1, 2 or 4
  bytes LE, a zero-padded string, or a fixed record such as an MPPT history day).

Every ``parse`` raises :class:`HexError` (a ``ValueError``) on malformed input; nothing here
does I/O. The text parser (:mod:`vedirect_async.parser`) already hands over only records whose
check byte is right, as :class:`~vedirect_async.parser.HexRecord`; :meth:`HexFrame.from_record`
takes those.
"""

from __future__ import annotations

import enum
import re
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from vedirect_async.parser import HexRecord

__all__ = [
    "REGISTERS",
    "AppVersion",
    "Command",
    "Done",
    "ErrorResponse",
    "Flags",
    "HexError",
    "HexFrame",
    "HistoryDay",
    "HistoryTotal",
    "Message",
    "PingResponse",
    "Register",
    "RegisterMessage",
    "RegisterValue",
    "Response",
    "UnknownResponse",
    "app_version_request",
    "check_byte",
    "decode_message",
    "decode_value",
    "encode_value",
    "get_request",
    "ping_request",
    "product_id_request",
    "restart_request",
    "set_request",
]


class HexError(ValueError):
    """A HEX record, payload or register value that does not follow the protocol."""


class Command(enum.IntEnum):
    """Host-to-device commands (protocol.md section 3.3)."""

    ENTER_BOOT = 0x0  # never sent by this project
    PING = 0x1
    APP_VERSION = 0x3
    PRODUCT_ID = 0x4
    RESTART = 0x6
    GET = 0x7
    SET = 0x8
    ASYNC = 0xA  # device to host only


class Response(enum.IntEnum):
    """Device-to-host response nibbles (go-victron definitions.go, OpenDTU VeDirectData.h)."""

    DONE = 0x1  # answer to app version / product id
    UNKNOWN = 0x3  # the command was not known
    ERROR = 0x4  # framing or check error in what the device received (":4AAAAFD")
    PING = 0x5  # answer to ping: the application version
    GET = 0x7
    SET = 0x8
    ASYNC = 0xA


class Flags(enum.IntFlag):
    """Flags byte of Get/Set/Async; a host sends 0, any bit set in a reply means no value."""

    NONE = 0x00
    UNKNOWN_ID = 0x01
    NOT_SUPPORTED = 0x02
    PARAMETER_ERROR = 0x04


_DIGITS_RE = re.compile(rb"[0-9A-F]+")


def check_byte(command: int, payload: bytes) -> int:
    """The check byte that makes command + payload + check sum to 0x55 mod 256."""
    return (0x55 - command - sum(payload)) & 0xFF


@dataclass(frozen=True, slots=True)
class HexFrame:
    """One HEX record: a command/response nibble and its payload bytes (check excluded)."""

    command: int
    payload: bytes = b""

    def __post_init__(self) -> None:
        if not 0 <= self.command <= 0xF:
            raise HexError(f"command {self.command} is not one hex digit")

    def encode(self) -> bytes:
        """The record as it goes on the wire, ':' through '\\n'."""
        check = check_byte(self.command, self.payload)
        return b":%X%s%02X\n" % (self.command, self.payload.hex().upper().encode(), check)

    @classmethod
    def parse(cls, data: bytes) -> HexFrame:
        """Parse a record, with or without its ':' and '\\n'; the check byte must be right."""
        digits = data.removeprefix(b":").removesuffix(b"\n")
        if not _DIGITS_RE.fullmatch(digits):
            raise HexError(f"not upper-case hex digits: {data[:40]!r}")
        if len(digits) < 3 or len(digits) % 2 == 0:
            raise HexError(f"a record is 1 command digit + whole bytes + check: {data[:40]!r}")
        raw = bytes.fromhex("0" + digits.decode("ascii"))
        if sum(raw) & 0xFF != 0x55:
            raise HexError(f"check byte wrong (sum 0x{sum(raw) & 0xFF:02X}, not 0x55)")
        return cls(raw[0], raw[1:-1])

    def to_frame(self) -> HexFrame:
        """Itself (every message type has ``to_frame``)."""
        return self

    @classmethod
    def from_record(cls, record: HexRecord) -> HexFrame:
        """Build from a record the text parser has already verified."""
        return cls.parse(record.digits)


# -- requests (host to device) ------------------------------------------------------------


def ping_request() -> HexFrame:
    """Ping (``:154``); answered with a :class:`PingResponse`."""
    return HexFrame(Command.PING)


def app_version_request() -> HexFrame:
    """Application version (``:352``); answered with :class:`Done`."""
    return HexFrame(Command.APP_VERSION)


def product_id_request() -> HexFrame:
    """Product id (``:451``); answered with :class:`Done`."""
    return HexFrame(Command.PRODUCT_ID)


def restart_request() -> HexFrame:
    """Restart (``:64F``); not answered, the device restarts."""
    return HexFrame(Command.RESTART)


def get_request(register: int) -> HexFrame:
    """Get a register (``:7`` id flags); answered with a Get :class:`RegisterMessage`."""
    return RegisterMessage(Command.GET, register).to_frame()


def set_request(register: int, value: bytes) -> HexFrame:
    """Set a register to raw ``value`` bytes (see :func:`encode_value`); the reply echoes it."""
    return RegisterMessage(Command.SET, register, Flags.NONE, value).to_frame()


# -- messages (device to host) --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AppVersion:
    """A 16-bit application version as in ping replies: top 2 bits type, then BCD-ish digits.

    ``0x4116`` is application v1.16 (pmarches decodes the top bits as the firmware type,
    3 = release candidate).
    """

    raw: int

    @property
    def kind(self) -> int:
        """The top two bits (firmware type)."""
        return self.raw >> 14

    @property
    def version(self) -> str:
        """The version as the device shows it, e.g. "1.16"."""
        number = self.raw & 0x3FFF
        return f"{number >> 8:x}.{number & 0xFF:02x}"


@dataclass(frozen=True, slots=True)
class PingResponse:
    """Response 5 to a ping: the application version."""

    version: AppVersion

    def to_frame(self) -> HexFrame:
        """The record this message is."""
        return HexFrame(Response.PING, self.version.raw.to_bytes(2, "little"))


@dataclass(frozen=True, slots=True)
class Done:
    """Response 1 ("done") to app version or product id: a 16-bit number (LE)."""

    payload: bytes

    @property
    def number(self) -> int:
        """The payload as a little-endian number (e.g. 0xA056 for a product id)."""
        return int.from_bytes(self.payload, "little")

    def to_frame(self) -> HexFrame:
        """The record this message is."""
        return HexFrame(Response.DONE, self.payload)


@dataclass(frozen=True, slots=True)
class UnknownResponse:
    """Response 3: the device did not know the command."""

    payload: bytes = b""

    def to_frame(self) -> HexFrame:
        """The record this message is."""
        return HexFrame(Response.UNKNOWN, self.payload)


@dataclass(frozen=True, slots=True)
class ErrorResponse:
    """Response 4: the device received a malformed record (``:4AAAAFD``)."""

    payload: bytes = b"\xaa\xaa"

    def to_frame(self) -> HexFrame:
        """The record this message is."""
        return HexFrame(Response.ERROR, self.payload)


@dataclass(frozen=True, slots=True)
class RegisterMessage:
    """Get / Set request or reply, or an Async message: register id, flags, raw value."""

    command: Command  # GET, SET or ASYNC
    register: int
    flags: Flags = Flags.NONE
    value: bytes = b""

    def __post_init__(self) -> None:
        if self.command not in (Command.GET, Command.SET, Command.ASYNC):
            raise HexError(f"command {self.command!r} carries no register")
        if not 0 <= self.register <= 0xFFFF:
            raise HexError(f"register 0x{self.register:X} is not 16 bits")

    @property
    def ok(self) -> bool:
        """False when a flag says the register is unknown, unsupported or the value bad."""
        return self.flags == Flags.NONE

    def to_frame(self) -> HexFrame:
        """The record this message is."""
        payload = struct.pack("<HB", self.register, self.flags) + self.value
        return HexFrame(self.command, payload)

    def encode(self) -> bytes:
        """The record on the wire."""
        return self.to_frame().encode()

    @classmethod
    def parse(cls, data: bytes) -> RegisterMessage:
        """Parse a Get, Set or Async record."""
        message = decode_message(HexFrame.parse(data))
        if not isinstance(message, RegisterMessage):
            raise HexError(f"not a register message: {data[:40]!r}")
        return message

    def decoded(self) -> RegisterValue:
        """The value decoded with the register table (see :func:`decode_value`)."""
        if not self.ok:
            reg = REGISTERS.get(self.register)
            name = reg.name if reg else f"0x{self.register:04X}"
            return RegisterValue(self.register, name, None, reg.unit if reg else "")
        return decode_value(self.register, self.value)


Message = PingResponse | Done | UnknownResponse | ErrorResponse | RegisterMessage | HexFrame


def decode_message(frame: HexFrame) -> Message:
    """Classify a record received from a device by its response nibble.

    Responses this module does not model (and host commands seen on the line) come back as
    the :class:`HexFrame` itself.
    """
    command, payload = frame.command, frame.payload
    if command in (Response.GET, Response.SET, Response.ASYNC):
        if len(payload) < 3:
            raise HexError(f"register message too short: {frame.encode()!r}")
        register, flags = struct.unpack_from("<HB", payload)
        return RegisterMessage(Command(command), register, Flags(flags), payload[3:])
    if command == Response.PING and len(payload) == 2:
        return PingResponse(AppVersion(int.from_bytes(payload, "little")))
    if command == Response.DONE:
        return Done(payload)
    if command == Response.UNKNOWN:
        return UnknownResponse(payload)
    if command == Response.ERROR:
        return ErrorResponse(payload)
    return frame


# -- register table -----------------------------------------------------------------------

Kind = Literal[
    "un8", "un16", "sn16", "un32", "sn32", "string", "version", "product", "day", "total"
]
_STRUCT = {"un8": "<B", "un16": "<H", "sn16": "<h", "un32": "<I", "sn32": "<i"}


@dataclass(frozen=True, slots=True)
class Register:
    """One register: name, value type, scale (value = raw * scale + offset), unit, n/a value.

    Types and scales are VELIB's (protocol.md section 3.5). ``na`` is the raw value VELIB
    reserves for "not available"; it decodes to None.
    """

    name: str
    kind: Kind
    scale: float = 1
    unit: str = ""
    na: int | None = None
    offset: float = 0


@dataclass(frozen=True, slots=True)
class RegisterValue:
    """A decoded register value. ``value`` is None when the device says "not available"."""

    register: int
    name: str
    value: int | float | str | HistoryDay | HistoryTotal | None
    unit: str


def _history_days() -> dict[int, Register]:
    return {0x1050 + n: Register(f"history day -{n}", "day") for n in range(31)}


REGISTERS: dict[int, Register] = {
    # common to all devices
    0x0100: Register("product id", "product"),
    0x0102: Register("app version", "version"),
    0x0104: Register("group id", "un8"),
    0x010A: Register("serial number", "string"),
    0x010B: Register("model name", "string"),
    0x0120: Register("uptime", "un32", 1, "s"),
    0x0140: Register("capabilities", "un32"),
    0x0200: Register("device mode", "un8"),
    0x0201: Register("device state", "un8", na=0xFF),
    0x0207: Register("off reason", "un32"),
    0x031C: Register("warning reason", "un16"),
    0x031E: Register("alarm reason", "un16"),
    0x034E: Register("relay state", "un8"),
    0xEDEC: Register("battery temperature", "un16", 0.01, "°C", 0xFFFF, -273.15),
    # BMV-70x/71x and SmartShunt
    0xED8D: Register("main voltage", "sn16", 0.01, "V", 0x7FFF),
    0xED7D: Register("aux voltage", "sn16", 0.01, "V", 0x7FFF),
    0xED8F: Register("current", "sn16", 0.1, "A", 0x7FFF),
    0xED8C: Register("current high resolution", "sn32", 0.001, "A", 0x7FFFFFFF),
    0xED8E: Register("power", "sn16", 1, "W", 0x7FFF),
    0xEEFF: Register("consumed Ah", "sn32", 0.1, "Ah", 0x7FFFFFFF),
    0x0FFF: Register("state of charge", "un16", 0.01, "%", 0xFFFF),
    0x0FFE: Register("time to go", "un16", 1, "min", 0xFFFF),
    0x0382: Register("mid-point voltage", "un16", 0.01, "V", 0xFFFF),
    0x0383: Register("mid-point deviation", "sn16", 0.1, "%", 0x7FFF),
    0xEEB6: Register("synchronised", "un8"),
    0xEEB8: Register("DC monitor mode", "sn16"),
    0x0300: Register("deepest discharge", "sn32", 0.1, "Ah"),
    0x0301: Register("last discharge", "sn32", 0.1, "Ah"),
    0x0302: Register("average discharge", "sn32", 0.1, "Ah"),
    0x0303: Register("charge cycles", "un32"),
    0x0304: Register("full discharges", "un32"),
    0x0305: Register("cumulative Ah drawn", "sn32", 0.1, "Ah"),
    0x0306: Register("minimum voltage", "sn32", 0.01, "V"),
    0x0307: Register("maximum voltage", "sn32", 0.01, "V"),
    0x0308: Register("seconds since full charge", "un32", 1, "s"),
    0x0309: Register("automatic synchronisations", "un32"),
    0x030A: Register("low voltage alarms", "un32"),
    0x030B: Register("high voltage alarms", "un32"),
    0x030C: Register("low aux voltage alarms", "un32"),
    0x030D: Register("high aux voltage alarms", "un32"),
    0x030E: Register("minimum aux voltage", "sn32", 0.01, "V"),
    0x030F: Register("maximum aux voltage", "sn32", 0.01, "V"),
    0x0310: Register("discharged energy", "un32", 0.01, "kWh"),
    0x0311: Register("charged energy", "un32", 0.01, "kWh"),
    0x1000: Register("battery capacity", "un16", 1, "Ah"),
    0xEEFC: Register("alarm buzzer", "un8"),
    # BlueSolar / SmartSolar MPPT
    0xEDBB: Register("panel voltage", "un16", 0.01, "V", 0xFFFF),
    0xEDBC: Register("panel power", "un32", 0.01, "W", 0xFFFFFFFF),
    0xEDBD: Register("panel current", "un16", 0.1, "A", 0xFFFF),
    0xEDB3: Register("tracker mode", "un8", na=0xFF),
    0xEDD5: Register("charger voltage", "un16", 0.01, "V", 0xFFFF),
    0xEDD7: Register("charger current", "sn16", 0.1, "A", 0x7FFF),  # VELIB: signed
    0xEDDA: Register("charger error", "un8"),
    0xEDDB: Register("charger internal temperature", "sn16", 0.01, "°C", 0x7FFF),
    0xEDDC: Register("user yield", "un32", 0.01, "kWh"),
    0xEDDD: Register("system yield", "un32", 0.01, "kWh"),
    0xEDD3: Register("yield today", "un16", 0.01, "kWh"),
    0xEDD2: Register("max power today", "un16", 1, "W"),
    0xEDD1: Register("yield yesterday", "un16", 0.01, "kWh"),
    0xEDD0: Register("max power yesterday", "un16", 1, "W"),
    0xEDA8: Register("load output state", "un8"),
    0xEDAD: Register("load current", "un16", 0.1, "A", 0xFFFF),
    0xEDF0: Register("battery maximum current", "un16", 0.1, "A"),
    0xEDF7: Register("absorption voltage", "un16", 0.01, "V"),
    0xEDF6: Register("float voltage", "un16", 0.01, "V"),
    0x2027: Register("network total DC input power", "un32", 0.01, "W", 0xFFFFFFFF),
    0x2030: Register("solar activity", "un8"),
    0x104F: Register("history total", "total"),
    **_history_days(),
    # Phoenix inverter
    0x2200: Register("AC out voltage", "sn16", 0.01, "V", 0x7FFF),
    0x2201: Register("AC out current", "sn16", 0.1, "A", 0x7FFF),
    0x2205: Register("AC out apparent power", "sn32", 1, "VA", 0x7FFFFFFF),
    0x0230: Register("AC out voltage setpoint", "un16", 0.01, "V"),
}


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
    length does not fit its register's type raises :class:`HexError`.
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


def encode_value(register: int, value: float) -> bytes:
    """Raw bytes for setting a numeric register to ``value`` in its unit (e.g. 15.0 A)."""
    reg = REGISTERS.get(register)
    if reg is None or reg.kind not in _STRUCT:
        raise HexError(f"register 0x{register:04X} has no numeric type")
    raw = round((value - reg.offset) / reg.scale)
    try:
        return struct.pack(_STRUCT[reg.kind], raw)
    except struct.error as exc:
        raise HexError(f"{reg.name}: {value} does not fit {reg.kind}") from exc


# -- MPPT history records (VELIB layout, protocol.md section 3.6) ---------------------------

# Day record, 34 bytes: version un8; yield, consumed un32 (0.01 kWh); battery V max, min un16
# (0.01 V); error database un8; errors 0-3 4 x un8; time in bulk, absorption, float un16 (min);
# max power un32 (W); battery current max un16 (0.1 A); panel Voc max un16 (0.01 V); day
# sequence number un16. All-FF means not available.
_DAY = struct.Struct("<BIIHHB4sHHHIHHH")
# Total record: version un8; error database un8; errors 4 x un8; user yield, system yield un32
# (0.01 kWh); panel Voc max, battery V max un16 (0.01 V); number of available days un8; then
# padding 0xFF.
_TOTAL = struct.Struct("<BB4sIIHHB")


def _na(raw: int, size: int, divisor: int = 1) -> int | float | None:
    """None for an all-FF field, else the raw value divided by its decimal scale."""
    if raw == (1 << (8 * size)) - 1:
        return None
    return raw if divisor == 1 else raw / divisor


def _raw(value: float | None, size: int, divisor: int = 1) -> int:
    """Inverse of :func:`_na`."""
    return (1 << (8 * size)) - 1 if value is None else round(value * divisor)


@dataclass(frozen=True, slots=True)
class HistoryDay:
    """One MPPT history day (registers 0x1050 + n), values in kWh, V, A, W and minutes."""

    version: int
    yield_kwh: float | None
    consumed_kwh: float | None
    battery_voltage_max: float | None
    battery_voltage_min: float | None
    error_database: int
    errors: tuple[int, int, int, int]
    time_bulk_min: int | None
    time_absorption_min: int | None
    time_float_min: int | None
    max_power_w: int | None
    battery_current_max: float | None
    panel_voltage_max: float | None
    day_sequence: int | None

    @classmethod
    def parse(cls, value: bytes) -> HistoryDay:
        """Decode the 34-byte value of a history-day register."""
        if len(value) < _DAY.size:
            raise HexError(f"history day: {len(value)} bytes, expected {_DAY.size}")
        (ver, yld, cons, vmax, vmin, edb, errs, tb, ta, tf, pmax, imax, voc, seq) = (
            _DAY.unpack_from(value)
        )
        return cls(
            ver,
            _na(yld, 4, 100),
            _na(cons, 4, 100),
            _na(vmax, 2, 100),
            _na(vmin, 2, 100),
            edb,
            (errs[0], errs[1], errs[2], errs[3]),
            _int_na(tb, 2),
            _int_na(ta, 2),
            _int_na(tf, 2),
            _int_na(pmax, 4),
            _na(imax, 2, 10),
            _na(voc, 2, 100),
            _int_na(seq, 2),
        )

    def encode(self) -> bytes:
        """The 34-byte register value."""
        return _DAY.pack(
            self.version,
            _raw(self.yield_kwh, 4, 100),
            _raw(self.consumed_kwh, 4, 100),
            _raw(self.battery_voltage_max, 2, 100),
            _raw(self.battery_voltage_min, 2, 100),
            self.error_database,
            bytes(self.errors),
            _raw(self.time_bulk_min, 2),
            _raw(self.time_absorption_min, 2),
            _raw(self.time_float_min, 2),
            _raw(self.max_power_w, 4),
            _raw(self.battery_current_max, 2, 10),
            _raw(self.panel_voltage_max, 2, 100),
            _raw(self.day_sequence, 2),
        )


def _int_na(raw: int, size: int) -> int | None:
    return None if raw == (1 << (8 * size)) - 1 else raw


@dataclass(frozen=True, slots=True)
class HistoryTotal:
    """The MPPT history total (register 0x104F)."""

    version: int
    error_database: int
    errors: tuple[int, int, int, int]
    user_yield_kwh: float | None
    system_yield_kwh: float | None
    panel_voltage_max: float | None
    battery_voltage_max: float | None
    days_available: int
    size: int = _TOTAL.size  # length of the value on the wire (padded with 0xFF)

    @classmethod
    def parse(cls, value: bytes) -> HistoryTotal:
        """Decode the value of register 0x104F (padding after the fields is ignored)."""
        if len(value) < _TOTAL.size:
            raise HexError(f"history total: {len(value)} bytes, expected {_TOTAL.size}+")
        ver, edb, errs, user, system, voc, vmax, days = _TOTAL.unpack_from(value)
        return cls(
            ver,
            edb,
            (errs[0], errs[1], errs[2], errs[3]),
            _na(user, 4, 100),
            _na(system, 4, 100),
            _na(voc, 2, 100),
            _na(vmax, 2, 100),
            days,
            len(value),
        )

    def encode(self) -> bytes:
        """The register value, padded with 0xFF to ``size`` bytes."""
        packed = _TOTAL.pack(
            self.version,
            self.error_database,
            bytes(self.errors),
            _raw(self.user_yield_kwh, 4, 100),
            _raw(self.system_yield_kwh, 4, 100),
            _raw(self.panel_voltage_max, 2, 100),
            _raw(self.battery_voltage_max, 2, 100),
            self.days_available,
        )
        return packed + b"\xff" * (self.size - len(packed))
