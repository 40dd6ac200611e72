"""HEX commands, sans-IO: build the request frame, match the device's answer, type the result.

The device session (:mod:`vedirect_async.session`) owns the port and the clock; this module
only knows the protocol (protocol.md sections 3.2-3.4)::

    request = Request.get(0xEDF0)              # battery maximum current
    port.write(request.frame)                  # b":7F0ED0071\\n"
    ...
    result = request.match(record)             # for each verified HEX record received
    if result is None: ...                     # not the answer (an :A record, an echo...)
    elif isinstance(result, Value): result.value.value   # 15.0 (A)

How answers are matched (one command in flight per port, so a match is unambiguous):

- Ping: the response nibble 5 (the application version).
- Application version and product id: the nibble 1 ("done").
- Get and Set: the nibble of the command (7 or 8) *and* the register id; the flags decide
  between :class:`Value` (0) and :class:`Rejected` (unknown id, not supported, parameter error).
- Any command: the nibble 3 ("unknown command") is :class:`Unsupported`; ``:4AAAAFD`` (the
  device could not read what it received) is :class:`DeviceError`, worth a retry.
- A record byte-identical to the request (a line that echoes what it is sent) is never an
  answer, except for Set, whose real answer *is* the echo; a Get read-back tells the two apart.
- Asynchronous ``:A`` records never answer a command: :func:`async_value` types them.

Nothing here raises on device input: a record that does not decode is ``None`` (not an
answer) or, when it names the register asked for but its value has the wrong length,
:class:`Invalid`.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from dataclasses import dataclass

from .daily import HistoryDay, HistoryTotal
from .hexframe import (
    Command,
    Done,
    ErrorResponse,
    Flags,
    HexError,
    HexFrame,
    PingResponse,
    RegisterMessage,
    UnknownResponse,
    decode_message,
)
from .parser import HexRecord
from .registers import (
    REGISTERS,
    RegisterValue,
    catalogue_value,
    decode_value,
    encode_value,
    parse_id,
    resolve,
)

__all__ = [
    "CommandKind",
    "DeviceError",
    "HexStats",
    "Identity",
    "Invalid",
    "NoAnswer",
    "ProductId",
    "Rejected",
    "Request",
    "Result",
    "Unsupported",
    "Value",
    "Version",
    "async_value",
    "describe",
    "parse_register",
    "register_label",
    "register_problem",
]


class CommandKind(enum.StrEnum):
    """What a :class:`Request` asks for."""

    PING = "ping"
    APP_VERSION = "app version"
    PRODUCT_ID = "product id"
    GET = "get"
    SET = "set"


# -- results --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Value:
    """A Get answered (or a Set confirmed): the register's decoded value."""

    value: RegisterValue

    @property
    def register(self) -> int:
        return self.value.register


@dataclass(frozen=True, slots=True)
class Version:
    """A ping or application-version answer: the firmware version ("1.16")."""

    version: str
    raw: int


@dataclass(frozen=True, slots=True)
class ProductId:
    """A product-id answer."""

    pid: int


@dataclass(frozen=True, slots=True)
class Rejected:
    """A Get/Set answered with flags != 0: no value (unknown id, not supported, bad value)."""

    register: int
    flags: Flags

    @property
    def reason(self) -> str:
        names = [
            text
            for flag, text in (
                (Flags.UNKNOWN_ID, "unknown register"),
                (Flags.NOT_SUPPORTED, "not supported"),
                (Flags.PARAMETER_ERROR, "parameter error"),
            )
            if self.flags & flag
        ]
        return ", ".join(names) or f"flags 0x{int(self.flags):02X}"


@dataclass(frozen=True, slots=True)
class Unsupported:
    """The device answered "unknown command" (response 3)."""

    payload: bytes = b""


@dataclass(frozen=True, slots=True)
class DeviceError:
    """The device could not read what it received (``:4AAAAFD``): a garbled command."""

    payload: bytes = b"\xaa\xaa"


@dataclass(frozen=True, slots=True)
class Invalid:
    """The answer named the register asked for, but its value does not fit the register."""

    register: int
    raw: bytes
    reason: str


@dataclass(frozen=True, slots=True)
class NoAnswer:
    """No matching answer within the timeout, after ``attempts`` sends (set by the session)."""

    attempts: int


Result = Value | Version | ProductId | Rejected | Unsupported | DeviceError | Invalid | NoAnswer


@dataclass(slots=True)
class HexStats:
    """Counters of one port's HEX traffic (bounded integers; nothing is kept per record)."""

    commands: int = 0  # commands asked for
    sent: int = 0  # frames written (retries included)
    answers: int = 0  # records that answered a command
    timeouts: int = 0  # sends that got no answer in time
    retries: int = 0
    no_answer: int = 0  # commands that ended without an answer
    rejected: int = 0  # answers with flags != 0
    error_frames: int = 0  # :4AAAAFD received
    echoes: int = 0  # our own command read back (a line that echoes)
    async_values: int = 0  # :A records with a value
    unmatched: int = 0  # other records: late answers, answers to nobody, undecodable
    stopped: bool = False  # the device is sent no more HEX (it never answered, or it pauses)


@dataclass(frozen=True, slots=True)
class Identity:
    """What a device told about itself over HEX (fields it did not answer stay None)."""

    pid: int | None = None
    firmware: str | None = None
    serial: str | None = None
    model: str | None = None


# -- requests -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Request:
    """One command to a device; :attr:`frame` goes on the wire, :meth:`match` reads answers."""

    kind: CommandKind
    register: int | None = None
    value: bytes = b""

    @classmethod
    def ping(cls) -> Request:
        return cls(CommandKind.PING)

    @classmethod
    def app_version(cls) -> Request:
        return cls(CommandKind.APP_VERSION)

    @classmethod
    def product_id(cls) -> Request:
        return cls(CommandKind.PRODUCT_ID)

    @classmethod
    def get(cls, register: int) -> Request:
        _check_register(register)
        return cls(CommandKind.GET, register)

    @classmethod
    def set(cls, register: int, value: bytes) -> Request:
        """Set ``register`` to the raw ``value`` bytes (see :meth:`set_scaled`)."""
        _check_register(register)
        return cls(CommandKind.SET, register, value)

    @classmethod
    def set_scaled(cls, register: int, value: float) -> Request:
        """Set a numeric register to ``value`` in its unit (15.0 A); HexError if it cannot."""
        return cls.set(register, encode_value(register, value))

    @property
    def message(self) -> HexFrame:
        """The request as a HEX frame."""
        kind = self.kind
        if kind is CommandKind.GET or kind is CommandKind.SET:
            command = Command.GET if kind is CommandKind.GET else Command.SET
            return RegisterMessage(command, self._register(), Flags.NONE, self.value).to_frame()
        return HexFrame(_SIMPLE[kind])

    @property
    def frame(self) -> bytes:
        """The bytes to write, ':' through '\\n'."""
        return self.message.encode()

    def describe(self) -> str:
        """Short text for logs: "get 0xEDF0 (battery maximum current)"."""
        if self.register is None:
            return str(self.kind)
        return f"{self.kind} {register_label(self.register)}"

    def match(self, record: HexRecord | HexFrame) -> Result | None:
        """The result if ``record`` answers this request, else None (never raises)."""
        try:
            frame = record if isinstance(record, HexFrame) else HexFrame.from_record(record)
            message = decode_message(frame)
        except HexError:
            return None
        if self.kind is not CommandKind.SET and frame == self.message:
            return None  # our own command echoed back by the line
        if isinstance(message, ErrorResponse):
            return DeviceError(message.payload)
        if isinstance(message, UnknownResponse):
            return Unsupported(message.payload)
        kind = self.kind
        if kind is CommandKind.PING:
            if isinstance(message, PingResponse):
                return Version(message.version.version, message.version.raw)
            return None
        if kind is CommandKind.APP_VERSION or kind is CommandKind.PRODUCT_ID:
            if not isinstance(message, Done) or not message.payload:
                return None  # (an empty "done" is a ping ':154' echoed back)
            if kind is CommandKind.PRODUCT_ID:
                return ProductId(message.number)
            return Version(_done_version(message.payload), message.number)
        if not isinstance(message, RegisterMessage) or message.register != self.register:
            return None
        expected = Command.GET if kind is CommandKind.GET else Command.SET
        if message.command != expected:
            return None  # an :A record of the same register is a value, not the answer
        return _register_result(message)

    def _register(self) -> int:
        if self.register is None:
            raise HexError(f"{self.kind} needs a register")
        return self.register


_SIMPLE = {
    CommandKind.PING: Command.PING,
    CommandKind.APP_VERSION: Command.APP_VERSION,
    CommandKind.PRODUCT_ID: Command.PRODUCT_ID,
}


def _check_register(register: int) -> None:
    if not 0 <= register <= 0xFFFF:
        raise HexError(f"register 0x{register:X} is not 16 bits")


def _done_version(payload: bytes) -> str:
    """The version in a "done" answer to app version: 16 bits as ping, or VELIB's un24."""
    number = int.from_bytes(payload[:3], "little")
    if len(payload) >= 3:
        hh, mm, ll = number >> 16, (number >> 8) & 0xFF, number & 0xFF
        if hh == 0:
            return f"{mm:x}.{ll:02x}"
        return f"{hh:x}.{mm:02x}" + ("" if ll == 0xFF else f"-beta-{ll:02x}")
    number &= 0x3FFF  # 16 bits: the top two bits are the firmware type (as in a ping answer)
    return f"{number >> 8:x}.{number & 0xFF:02x}"


def _register_result(message: RegisterMessage) -> Value | Rejected | Invalid:
    if message.flags != Flags.NONE:
        return Rejected(message.register, message.flags)
    try:
        return Value(decode_value(message.register, message.value))
    except HexError as exc:
        return Invalid(message.register, message.value, str(exc))


def async_value(record: HexRecord | HexFrame) -> Value | Rejected | Invalid | None:
    """An asynchronous ``:A`` record as a typed value; None for any other record."""
    try:
        frame = record if isinstance(record, HexFrame) else HexFrame.from_record(record)
        message = decode_message(frame)
    except HexError:
        return None
    if not isinstance(message, RegisterMessage) or message.command != Command.ASYNC:
        return None
    return _register_result(message)


# -- register names -------------------------------------------------------------------------


def parse_register(text: str, family: str | None = None) -> int:
    """A register from ``"0xEDDB"`` (any 16-bit id, in the table or not) or its catalogue name
    (``"charger_temperature"``; spaces for underscores and any case accepted). A name that
    two families read from different registers (``voltage``) needs ``family`` or the id.
    ValueError with a one-line explanation otherwise."""
    text = text.strip()
    number = parse_id(text)
    if number is not None:
        return number
    if text[:2] in ("0x", "0X"):
        raise ValueError(f"{text!r} is not a 16-bit id")
    try:
        return resolve(re.sub(r"[\s\-]+", "_", text.lower()), family).id
    except KeyError as exc:
        raise ValueError(str(exc.args[0])) from None


def register_problem(text: str) -> str | None:
    """None if ``text`` names a register, else what was expected (for config errors)."""
    try:
        parse_register(text)
    except ValueError as exc:
        return f'a 16-bit register id like "0xEDDB", a register name or "defaults" ({exc})'
    return None


def register_label(register: int) -> str:
    """``"0xEDDB (charger_temperature)"``, or just the id for an unknown register."""
    reg = REGISTERS.get(register)
    return f"0x{register:04X}" + (f" ({reg.name})" if reg else "")


def describe(result: Result) -> str:
    """One line for a person: the value with its unit, or why there is none."""
    if isinstance(result, Value):
        value = result.value
        if value.value is None:
            return f"{register_label(value.register)}: not available"
        if isinstance(value.value, HistoryDay | HistoryTotal):
            return f"{register_label(value.register)}: {_record_text(value.value)}"
        unit = f" {value.unit}" if value.unit else ""
        return f"{register_label(value.register)}: {value.value}{unit}{_meaning(value)}"
    if isinstance(result, Version):
        return f"firmware {result.version}"
    if isinstance(result, ProductId):
        return f"product id 0x{result.pid:04X}"
    if isinstance(result, Rejected):
        return f"{register_label(result.register)}: refused by the device ({result.reason})"
    if isinstance(result, Unsupported):
        return "the device does not know this command"
    if isinstance(result, DeviceError):
        return "the device could not read the command (error frame :4AAAAFD)"
    if isinstance(result, Invalid):
        return f"{register_label(result.register)}: malformed value ({result.reason})"
    return f"no answer after {result.attempts} attempt(s)"


def _record_text(record: HistoryDay | HistoryTotal) -> str:
    """A history record on one line: ``yield_kwh=0.23, max_power_w=160, ...`` (n/a left out)."""
    parts = []
    for item in dataclasses.fields(record):
        value = getattr(record, item.name)
        if value is not None and item.name not in ("version", "error_database", "size"):
            parts.append(f"{item.name}={value}")
    return ", ".join(parts)


def _meaning(value: RegisterValue) -> str:
    """`` (bulk)`` for a code with a meaning (enum, on/off, bit field), as a reading shows it."""
    reg = REGISTERS.get(value.register)
    if reg is None or reg.meaning == "number" or not isinstance(value.value, int):
        return ""
    shown = catalogue_value(reg, value.value)
    if isinstance(shown, bool):
        return " (on)" if shown else " (off)"
    if isinstance(shown, tuple):
        return f" ({', '.join(map(str, shown)) or 'none'})"
    return f" ({shown})"
