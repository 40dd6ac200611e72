"""Sans-IO VE.Direct framer: bytes in, verified text blocks and HEX records out.

Wire format (VE.Direct protocol 3.33, text mode), one block::

    \\r\\n <label> \\t <value>  \\r\\n <label> \\t <value>  ...  \\r\\n Checksum \\t <byte>
    |<------------------ every byte sums to 0 mod 256 -------------------------->|

- The checksum byte is one raw byte, any value 0x00-0xFF (`:`, CR, LF, TAB and NUL
  included); no CR LF follows it.
- An asynchronous HEX record ``: <hex digits> \\n`` may arrive between any two bytes of a
  block, except as the checksum byte. Its bytes are not part of the text checksum and the
  block resumes after it.

The parser never raises on input. Bad input becomes an :class:`ErrorEvent`, is counted in
:class:`ParserStats`, and the parser resyncs at the next block start. Every buffer is capped,
so memory stays constant whatever arrives. Nothing of a block is returned before its checksum
verifies.
"""

from __future__ import annotations

import enum
import re
import zlib
from dataclasses import dataclass

__all__ = [
    "MAX_BLOCK_BYTES",
    "MAX_FIELDS",
    "MAX_HEX_DIGITS",
    "MAX_LABEL_BYTES",
    "MAX_VALUE_BYTES",
    "ErrorEvent",
    "ErrorKind",
    "Event",
    "HexRecord",
    "Parser",
    "ParserStats",
    "TextBlock",
    "checksum_byte",
    "encode_block",
]

# Limits. The protocol document sets none; implementers use label <= 8 (9 with NUL), value
# <= 32 (33), records <= 22 (raised from 18 in 3.30). protocol.md section 8 advises not to
# hard-limit below ~32 records, so these leave head-room while still bounding memory.
MAX_LABEL_BYTES = 16
MAX_VALUE_BYTES = 64
MAX_FIELDS = 40
# Longest real block seen is 188 bytes; 40 maximal records would be ~3.3 kB.
MAX_BLOCK_BYTES = 2048
# Longest HEX record: history day, 1 command digit + 2 * (2 id + 1 flags + 34 value + 1 check)
# = 77 digits. OpenDTU caps at 100 characters.
MAX_HEX_DIGITS = 128

_MARK = b"Checksum\t"  # the label that ends a block; its value is the checksum byte
_END = b"\r\nChecksum\t"  # the full end record without its byte (11 bytes)
_LABEL_RE = re.compile(rb"[A-Za-z0-9_#]+\Z")
_HEX_RE = re.compile(rb"[0-9A-F]*")
# One record: CR LF, a label of letters, digits, '_' or '#', TAB, a value without CR or LF.
_RECORD = rb"\r\n([A-Za-z0-9_#]{1,%d})\t([^\r\n]{0,%d})" % (MAX_LABEL_BYTES, MAX_VALUE_BYTES)
_RECORD_RE = re.compile(_RECORD)
_BODY_RE = re.compile(rb"(?:%s)+" % _RECORD.replace(b"(", b"(?:"))


class ErrorKind(enum.StrEnum):
    """Why bytes were rejected."""

    CHECKSUM = "checksum"  # block sum != 0 mod 256
    OVERSIZE = "oversize"  # block, label, value or record count past its cap
    MALFORMED = "malformed"  # checksum matched but the records are not label<TAB>value
    HEX_CHECKSUM = "hex_checksum"  # HEX record whose bytes do not sum to 0x55
    HEX_SYNTAX = "hex_syntax"  # ':' followed by something that is not a HEX record
    HEX_OVERSIZE = "hex_oversize"  # HEX record longer than MAX_HEX_DIGITS


class TextBlock:
    """A checksum-verified text block.

    ``raw`` is the block as it was on the wire (leading CR LF through the checksum byte, HEX
    records removed). ``fields`` are its records in wire order as (label, value) bytes; they
    are split on first use, so framing stays cheap for consumers that only count blocks.
    """

    __slots__ = ("_fields", "raw")

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self._fields: tuple[tuple[bytes, bytes], ...] | None = None

    @property
    def fields(self) -> tuple[tuple[bytes, bytes], ...]:
        """The records as (label, value) pairs; the parser has already checked their shape."""
        if self._fields is None:
            # "\r\nL1\tV1\r\nL2\tV2" -> ["", L1, V1, L2, V2]: two C calls, no loop.
            items = self.raw[:-12].replace(b"\t", b"\r\n").split(b"\r\n")
            self._fields = tuple(zip(items[1::2], items[2::2], strict=True))
        return self._fields

    @property
    def size(self) -> int:
        """Bytes on the wire, HEX records excluded."""
        return len(self.raw)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TextBlock) and other.raw == self.raw

    def __hash__(self) -> int:
        return hash(self.raw)

    def __repr__(self) -> str:
        return f"TextBlock({self.raw!r})"


@dataclass(frozen=True, slots=True)
class HexRecord:
    """A checksum-verified HEX record: the digits between ':' and '\\n' (ASCII, upper case)."""

    digits: bytes

    @property
    def command(self) -> int:
        """The command / response nibble (first digit)."""
        return int(self.digits[:1], 16)

    @property
    def payload(self) -> bytes:
        """The decoded bytes after the command nibble, check byte excluded."""
        return bytes.fromhex(self.digits[1:-2].decode("ascii"))


@dataclass(frozen=True, slots=True)
class ErrorEvent:
    """Bytes that were rejected, and why."""

    kind: ErrorKind
    discarded: int  # how many bytes this error threw away
    detail: str = ""


Event = TextBlock | HexRecord | ErrorEvent


@dataclass(slots=True)
class ParserStats:
    """Counters, readable at any time; they only grow."""

    bytes_in: int = 0
    blocks_ok: int = 0
    checksum_errors: int = 0
    oversize: int = 0
    malformed: int = 0
    hex_ok: int = 0
    hex_bad: int = 0
    bytes_discarded: int = 0
    resyncs: int = 0  # intact blocks recovered from behind a damaged block end

    def as_dict(self) -> dict[str, int]:
        """The counters by name (for metrics and the decode summary)."""
        return {name: getattr(self, name) for name in self.__slots__}


class _State(enum.Enum):
    IDLE = 0  # between blocks: waiting for "\r\n" or ':'
    BLOCK = 1  # inside a text block
    CHECKSUM = 2  # saw "Checksum\t"; the next byte, whatever it is, ends the block
    HEX = 3  # inside a HEX record


def _sums_to_zero(block: bytes) -> bool:
    """True if the bytes of ``block`` sum to 0 mod 256 (the text checksum rule)."""
    if len(block) <= 256:
        # Adler-32's low half is 1 + (byte sum mod 65521); for <= 256 bytes the sum is below
        # 65521, so it is the exact byte sum, computed in C about 9x faster than sum().
        return ((zlib.adler32(block) & 0xFFFF) - 1) & 0xFF == 0
    return sum(block) & 0xFF == 0


def checksum_byte(body: bytes) -> int:
    """The byte that makes ``body`` + byte sum to 0 mod 256."""
    return (-sum(body)) & 0xFF


def encode_block(fields: list[tuple[bytes, bytes]] | tuple[tuple[bytes, bytes], ...]) -> bytes:
    """Encode records as one text block with its checksum, as a device sends it."""
    body = b"".join(b"\r\n" + label + b"\t" + value for label, value in fields) + _END
    return body + bytes((checksum_byte(body),))


def _near_end_record(chunk: bytes) -> bool:
    """True if ``chunk`` (11 bytes) is "\\r\\nChecksum\\t" with one or two bytes damaged."""
    return len(chunk) == len(_END) and sum(a != b for a, b in zip(chunk, _END, strict=True)) <= 2


class Parser:
    """Incremental VE.Direct framer. Feed it bytes in any chunking; it returns whole events."""

    __slots__ = ("_buf", "_hex", "_pending_cr", "_return", "_state", "stats")

    def __init__(self) -> None:
        self.stats = ParserStats()
        self._state = _State.IDLE
        self._return = _State.IDLE  # state to resume after a HEX record
        self._buf = bytearray()  # text bytes of the block in progress (HEX excluded)
        self._hex = bytearray()  # digits of the HEX record in progress
        self._pending_cr = False  # IDLE: the last byte seen was '\r'

    def reset(self) -> None:
        """Forget any partial block or record (e.g. after the port was reopened)."""
        partial = len(self._buf) + len(self._hex)
        if partial:
            self.stats.bytes_discarded += partial
        self._state = _State.IDLE
        self._return = _State.IDLE
        self._buf.clear()
        self._hex.clear()
        self._pending_cr = False

    @property
    def buffered(self) -> int:
        """Bytes held for an incomplete block or record (bounded by the caps)."""
        return len(self._buf) + len(self._hex)

    def feed(self, data: bytes) -> list[Event]:
        """Consume ``data``; return the events it completed, in stream order."""
        events: list[Event] = []
        stats = self.stats
        stats.bytes_in += len(data)
        n = len(data)
        pos = 0
        while pos < n:
            state = self._state
            if state is _State.IDLE:
                pos = self._idle(data, pos, events)
            elif state is _State.BLOCK:
                pos = self._block(data, pos, events)
            elif state is _State.CHECKSUM:
                self._buf.append(data[pos])
                pos += 1
                self._finish_block(bytes(self._buf), events)
            else:
                pos = self._hex_record(data, pos, events)
        return events

    # -- states -------------------------------------------------------------------------

    def _idle(self, data: bytes, pos: int, events: list[Event]) -> int:
        """Skip to the next block start ("\\r\\n") or HEX record (':')."""
        n = len(data)
        if self._pending_cr:
            self._pending_cr = False
            if data[pos] == 0x0A:
                self._start_block(b"\r\n")
                return pos + 1
            self.stats.bytes_discarded += 1
        start = data.find(b"\r\n", pos)
        colon = data.find(b":", pos, start if start >= 0 else n)
        if colon >= 0:
            self.stats.bytes_discarded += colon - pos
            self._state = _State.HEX
            self._return = _State.IDLE
            return colon + 1
        if start >= 0:
            self.stats.bytes_discarded += start - pos
            self._start_block(b"")
            return start
        if data[n - 1] == 0x0D:
            self.stats.bytes_discarded += n - 1 - pos
            self._pending_cr = True
        else:
            self.stats.bytes_discarded += n - pos
        return n

    def _start_block(self, prefix: bytes) -> None:
        self._buf.clear()
        self._buf += prefix
        self._state = _State.BLOCK

    def _block(self, data: bytes, pos: int, events: list[Event]) -> int:
        """Accumulate block text up to its checksum byte, diverting HEX records."""
        n = len(data)
        buf = self._buf
        if buf:
            # The end record may straddle a chunk or HEX boundary: "Check" | "sum\t".
            tail = bytes(buf[-8:])
            k = (tail + data[pos : pos + 9]).find(_MARK)
            if 0 <= k < len(tail):
                end = pos + k + len(_MARK) - len(tail)  # index of the checksum byte in data
                if end < n:
                    buf += data[pos : end + 1]
                    self._finish_block(bytes(buf), events)
                    return end + 1
                buf += data[pos:]
                self._state = _State.CHECKSUM
                return n
        m = data.find(_MARK, pos)
        colon = data.find(b":", pos, m if m >= 0 else n)
        if colon >= 0:
            buf += data[pos:colon]
            if len(buf) > MAX_BLOCK_BYTES:
                self._oversize_block(events)
                return colon  # the HEX record is handled from IDLE
            self._state = _State.HEX
            self._return = _State.BLOCK
            return colon + 1
        if m >= 0:
            end = m + len(_MARK)
            if end < n:
                if buf:
                    buf += data[pos : end + 1]
                    self._finish_block(bytes(buf), events)
                else:  # fast path: the whole block is in this chunk
                    self._finish_block(data[pos : end + 1], events)
                return end + 1
            buf += data[pos:]
            self._state = _State.CHECKSUM
            return n
        buf += data[pos:]
        if len(buf) > MAX_BLOCK_BYTES:
            self._oversize_block(events)
        return n

    def _hex_record(self, data: bytes, pos: int, events: list[Event]) -> int:
        """Collect HEX digits up to '\\n'; anything else aborts the record."""
        n = len(data)
        hexbuf = self._hex
        nl = data.find(b"\n", pos)
        stop = nl if nl >= 0 else n
        match = _HEX_RE.match(data, pos, stop)
        good_end = match.end() if match else pos
        hexbuf += data[pos:good_end]
        if len(hexbuf) > MAX_HEX_DIGITS:
            self._hex_error(ErrorKind.HEX_OVERSIZE, len(hexbuf) + 1, events)
            if self._return is _State.BLOCK:
                self._drop_block(
                    ErrorKind.OVERSIZE, "block interrupted by an oversize HEX record", events
                )
            self._state = _State.IDLE
            return good_end
        if good_end < stop:
            # Not a HEX record after all (a damaged byte became ':', or noise). Give the
            # ':' and the digits back to the text they interrupted, where the block's
            # checksum judges them, and go on with the offending byte as text.
            self._abort_hex(events)
            return good_end
        if nl < 0:
            return n
        digits = bytes(hexbuf)
        hexbuf.clear()
        self._state = self._return
        if len(digits) < 3 or len(digits) % 2 == 0:
            self._hex_error(ErrorKind.HEX_SYNTAX, len(digits) + 2, events)
        elif sum(bytes.fromhex("0" + digits.decode("ascii"))) & 0xFF != 0x55:
            self._hex_error(ErrorKind.HEX_CHECKSUM, len(digits) + 2, events)
        else:
            self.stats.hex_ok += 1
            events.append(HexRecord(digits))
        return nl + 1

    # -- helpers ------------------------------------------------------------------------

    def _abort_hex(self, events: list[Event]) -> None:
        self.stats.hex_bad += 1
        digits = bytes(self._hex)
        self._hex.clear()
        self._state = self._return
        if self._state is _State.BLOCK:
            self._buf += b":" + digits
            if len(self._buf) > MAX_BLOCK_BYTES:
                self._oversize_block(events)
        else:
            self.stats.bytes_discarded += len(digits) + 1

    def _hex_error(self, kind: ErrorKind, size: int, events: list[Event]) -> None:
        self.stats.hex_bad += 1
        self.stats.bytes_discarded += size
        self._hex.clear()
        events.append(ErrorEvent(kind, size))

    def _oversize_block(self, events: list[Event]) -> None:
        self._drop_block(ErrorKind.OVERSIZE, f"block longer than {MAX_BLOCK_BYTES} bytes", events)

    def _drop_block(self, kind: ErrorKind, detail: str, events: list[Event]) -> None:
        size = len(self._buf)
        self.stats.oversize += kind is ErrorKind.OVERSIZE
        self.stats.bytes_discarded += size
        self._buf.clear()
        self._state = _State.IDLE
        events.append(ErrorEvent(kind, size, detail))

    def _finish_block(self, block: bytes, events: list[Event]) -> None:
        """Verify a candidate block (leading CR LF through checksum byte) and emit it."""
        self._buf.clear()
        self._state = _State.IDLE
        stats = self.stats
        if _sums_to_zero(block) and block[-12:-1] == _END:
            self._emit(block, events)
            return
        # A damaged end record ("\r\nChecksum\t" with a flipped byte) glues the damaged
        # block to the intact one behind it. Find that one's start and save it.
        start = block.find(b"\r\n", 2)
        while 0 <= start < len(block) - 12:
            if (
                start >= 12
                and _near_end_record(block[start - 12 : start - 1])
                and _sums_to_zero(block[start:])
                and block[-12:-1] == _END
            ):
                stats.checksum_errors += 1
                stats.bytes_discarded += start
                stats.resyncs += 1
                events.append(ErrorEvent(ErrorKind.CHECKSUM, start, "damaged block end"))
                self._emit(block[start:], events)
                return
            start = block.find(b"\r\n", start + 2)
        stats.checksum_errors += 1
        stats.bytes_discarded += len(block)
        events.append(ErrorEvent(ErrorKind.CHECKSUM, len(block)))

    def _emit(self, block: bytes, events: list[Event]) -> None:
        """Check the shape of a verified block (caps, label<TAB>value records) and emit it."""
        if _BODY_RE.fullmatch(block, 0, len(block) - 12) and block.count(b"\t") <= MAX_FIELDS + 1:
            self.stats.blocks_ok += 1
            events.append(TextBlock(block))
            return
        # Slow path, only for rejects: say which rule the block broke.
        stats = self.stats
        stats.bytes_discarded += len(block)
        records = block[2:-12].split(b"\r\n")
        for record in records:
            label, tab, value = record.partition(b"\t")
            if (
                not tab
                or b"\t" in value
                or b"\r" in value
                or b"\n" in value
                or not _LABEL_RE.match(label)
            ):
                stats.malformed += 1
                events.append(ErrorEvent(ErrorKind.MALFORMED, len(block), repr(record[:40])))
                return
        stats.oversize += 1
        detail = "too many records" if len(records) > MAX_FIELDS else "label or value too long"
        events.append(ErrorEvent(ErrorKind.OVERSIZE, len(block), detail))
