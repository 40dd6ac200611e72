"""VE.Direct HEX protocol: encode and decode HEX records (pure code).

Wire format (protocol.md section 3.2), one record::

    ':'  <command: 1 hex digit>  <payload: 2 hex digits per byte>  <check: 2 hex digits>  '\\n'

- Digits are upper case; numbers are little-endian.
- Check rule: (command + sum of payload bytes + check) mod 256 == 0x55 (the command nibble
  counts as a value 0x0-0xF).
- Get / Set / Async payload: register id (2 bytes LE), flags (1 byte), value (1, 2 or 4
  bytes LE, a zero-padded string, or a fixed record such as an MPPT history day). What a
  register's value means is :mod:`vedirect_async.registers`' table; the history records are
  :mod:`vedirect_async.daily`'s.

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
from typing import TYPE_CHECKING

from .errors import HexError
from .registers import REGISTERS, RegisterValue, decode_value

if TYPE_CHECKING:
    from vedirect_async.parser import HexRecord

__all__ = [
    "AppVersion",
    "Command",
    "Done",
    "ErrorResponse",
    "Flags",
    "HexError",
    "HexFrame",
    "Message",
    "PingResponse",
    "RegisterMessage",
    "Response",
    "UnknownResponse",
    "app_version_request",
    "check_byte",
    "decode_message",
    "get_request",
    "ping_request",
    "product_id_request",
    "restart_request",
    "set_request",
]


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
    """Set a register to raw ``value`` bytes (``registers.encode_value``); the reply echoes it."""
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
        """The value decoded with the register table (``registers.decode_value``)."""
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
