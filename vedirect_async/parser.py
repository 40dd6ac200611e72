"""Sans-IO VE.Direct framer: bytes in, verified text blocks and HEX records out.

Wire format (VE.Direct protocol 3.33, text mode), one block::

    \\r\\n <label> \\t <value>  \\r\\n <label> \\t <value>  ...  \\r\\n Checksum \\t <byte>
    |<------------------ every byte sums to 0 mod 256 -------------------------->|

- The checksum byte is one raw byte, any value 0x00-0xFF (`:`, CR, LF, TAB and NUL
  included); no CR LF follows it.
- Values are printable text: a control byte (0x00-0x1F, 0x7F) anywhere in a block but its
  checksum byte rejects the block (``MALFORMED``, counted), even when the sum is right (a NUL
  from a UART break adds nothing to it).
- An asynchronous HEX record ``: <hex digits> \\n`` may arrive between any two bytes of a
  block, except as the checksum byte. Its bytes are not part of the text checksum and the
  block resumes after it.

The parser never raises on input. Bad input becomes an :class:`ErrorEvent`, is counted in
:class:`ParserStats`, and the parser resyncs at the next block start. Every buffer is capped,
so memory stays constant whatever arrives. Nothing of a block is returned before its checksum
verifies.

Byte accounting: every byte fed ends up in exactly one place, so at any time
``stats.bytes_in == Σ block.size + Σ (len(record.digits) + 2) + stats.bytes_discarded +
parser.buffered`` (the tests hold the parser to this).
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
MAX_FIELDS = 40  # records per block, the Checksum record not counted
# Longest real block seen is 188 bytes; 40 maximal records would be ~3.3 kB, so this cap is
# what bounds the text buffer.
MAX_BLOCK_BYTES = 2048
# Longest HEX record: history day, 1 command digit + 2 * (2 id + 1 flags + 34 value + 1 check)
# = 77 digits. OpenDTU caps at 100 characters.
MAX_HEX_DIGITS = 128
# After an oversize block (no end record within MAX_BLOCK_BYTES of its start) the parser
# rescans this many of the dropped bytes: a real block that ends later can only have started
# inside them (any block that started earlier would have ended inside the window), so blocks of
# up to this size that follow garbage are never lost.
_RESCAN_BYTES = 512

_MARK = b"Checksum\t"  # the label that ends a block; its value is the checksum byte
_END = b"\r\nChecksum\t"  # the full end record without its byte (11 bytes)
# Body of a block, from its leading CR LF up to (excluding) "Checksum\t": records CR LF,
# label of letters, digits, '_' or '#', TAB, value without control bytes (0x00-0x1F, 0x7F:
# CR, LF and TAB included) or ':' (a ':' in text starts a HEX record, so it never belongs to
# a value), then the CR LF of the end record. Values are printable text; a NUL adds nothing to
# the byte sum, so a UART break inside a value would pass the checksum: the shape rejects it.
# Possessive quantifiers: no backtracking, so the match is linear and fast (~6 ns/byte).
_BODY_RE = re.compile(
    rb"(?:\r\n[A-Za-z0-9_#]{1,%d}+\t[^\x00-\x1f\x7f:]{0,%d}+)++\r\n"
    % (MAX_LABEL_BYTES, MAX_VALUE_BYTES)
)
_BAD_VALUE_BYTE = re.compile(rb"[\x00-\x1f\x7f:]")
# A body shorter than this cannot hold more than MAX_FIELDS records (a record is >= 4 bytes:
# CR LF, a one-byte label, TAB), so the record count only needs checking above it.
_SHORT_BODY = 4 * (MAX_FIELDS + 1)
_LABEL_RE = re.compile(rb"[A-Za-z0-9_#]+\Z")
_HEX_DIGITS_RE = re.compile(rb"[0-9A-F]*")
# Bytes of a damaged end record that survive any one damaged byte: a block whose end record
# was hit glues onto the next block, and one of these within the 13 bytes before a record
# start tells that this record start is where the next block begins.
_END_HALVES = (b"Chec", b"ksum")
_BLOCK_START_PID = b"\r\nPID\t"  # PID is only ever the first record of a block


class ErrorKind(enum.StrEnum):
    """Why bytes were rejected."""

    CHECKSUM = "checksum"  # block sum != 0 mod 256
    OVERSIZE = "oversize"  # block, label, value or record count past its cap
    MALFORMED = "malformed"  # checksum matched but not label<TAB>printable value records
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
            # "\r\nL1\tV1\r\nL2\tV2" -> ["", L1, V1, L2, V2]: two C calls, no loop. Safe
            # because the parser only emits blocks with exactly one TAB per record.
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
    resyncs: int = 0  # intact blocks recovered from behind a damaged block or garbage

    def as_dict(self) -> dict[str, int]:
        """The counters by name (for metrics and the decode summary)."""
        return {name: getattr(self, name) for name in self.__slots__}


class _State(enum.Enum):
    IDLE = 0  # between blocks: waiting for "\r\n" or ':'
    BLOCK = 1  # inside a text block (the buffer holds b"\r" while its "\n" is awaited)
    CHECKSUM = 2  # saw "Checksum\t"; the next byte, whatever it is, ends the block
    HEX = 3  # inside a HEX record


_IDLE = _State.IDLE
_BLOCK = _State.BLOCK
_CHECKSUM = _State.CHECKSUM
_HEX = _State.HEX


def _sums_to_zero(block: bytes) -> bool:
    """True if the bytes of ``block`` sum to 0 mod 256 (the text checksum rule)."""
    # Adler-32's low 16 bits are (1 + byte sum) mod 65521. Up to 256 bytes the sum is at most
    # 65280 < 65521, so (adler32 - 1) & 0xFF is exactly the byte sum mod 256 (the high half
    # sits above bit 16 and drops out), computed in C about 9x faster than sum(). Longer
    # blocks are summed in 256-byte pieces the same way.
    if len(block) <= 256:
        return (zlib.adler32(block) - 1) & 0xFF == 0
    total = 0
    for i in range(0, len(block), 256):
        total += zlib.adler32(block[i : i + 256]) - 1
    return total & 0xFF == 0


def checksum_byte(body: bytes) -> int:
    """The byte that makes ``body`` + byte sum to 0 mod 256."""
    return (-sum(body)) & 0xFF


def encode_block(fields: list[tuple[bytes, bytes]] | tuple[tuple[bytes, bytes], ...]) -> bytes:
    """Encode records as one text block with its checksum, as a device sends it."""
    body = b"".join(b"\r\n" + label + b"\t" + value for label, value in fields) + _END
    return body + bytes((checksum_byte(body),))


def _well_formed(block: bytes) -> bool:
    """True if ``block`` (leading CR LF through checksum byte) has the shape of a text block."""
    end = len(block) - 10  # index of "Checksum\t"
    return (
        end >= 2
        and block[end:-1] == _MARK
        and _BODY_RE.fullmatch(block, 0, end) is not None
        and (end <= _SHORT_BODY or block.count(b"\t", 0, end) <= MAX_FIELDS)
    )


def _is_block(block: bytes) -> bool:
    """The full acceptance test: checksum, then shape."""
    return _sums_to_zero(block) and _well_formed(block)


class Parser:
    """Incremental VE.Direct framer. Feed it bytes in any chunking; it returns whole events.

    Feeding a stream whole, one byte at a time or in any chunks gives the same events.
    """

    __slots__ = ("_buf", "_hex", "_return", "_state", "stats")

    def __init__(self) -> None:
        self.stats = ParserStats()
        self._state = _IDLE
        self._return = _IDLE  # state to resume after a HEX record (IDLE or BLOCK)
        self._buf = bytearray()  # text bytes of the block in progress (HEX excluded)
        self._hex = bytearray()  # digits of the HEX record in progress

    def reset(self) -> None:
        """Forget any partial block or record (e.g. after the port was reopened)."""
        self.stats.bytes_discarded += self.buffered
        self._state = _IDLE
        self._return = _IDLE
        self._buf.clear()
        self._hex.clear()

    @property
    def buffered(self) -> int:
        """Bytes held for an incomplete block or record (bounded by the caps)."""
        # In a HEX record the ':' is held too (it is not in the digits buffer).
        return len(self._buf) + len(self._hex) + (self._state is _HEX)

    def feed(self, data: bytes) -> list[Event]:
        """Consume ``data``; return the events it completed, in stream order."""
        if type(data) is not bytes:
            data = bytes(data)  # bytearray / memoryview: blocks must be immutable bytes
        self.stats.bytes_in += len(data)
        events: list[Event] = []
        self._run(data, events)
        return events

    def _run(self, data: bytes, events: list[Event]) -> None:
        """The state machine over ``data`` (already counted in bytes_in)."""
        n = len(data)
        pos = 0
        ok = 0
        find = data.find
        count = data.count
        body_match = _BODY_RE.fullmatch
        adler32 = zlib.adler32
        append = events.append
        while pos < n:
            state = self._state
            if state is _IDLE:
                # Fast path, the common case: a whole block from here, no HEX inside. It
                # accepts exactly what the state machine below would accept, only cheaper:
                # one find for the end record, one regex for the shape (its value class
                # excludes ':', so a block with a HEX record inside falls through), one C
                # checksum. Anything else (partial block, HEX, damage) takes the slow path.
                if data[pos : pos + 2] == b"\r\n":
                    while True:  # block after block without going back to the top
                        # Blocks up to 256 bytes (all real ones): the end record must end
                        # by pos + 255 so that the checksum byte is at most at pos + 255.
                        mark = find(_MARK, pos, pos + 255)
                        end = mark + 10
                        if (
                            mark < 0
                            or end > n
                            or body_match(data, pos, mark) is None
                            or (mark - pos > _SHORT_BODY and count(b"\t", pos, mark) > MAX_FIELDS)
                        ):
                            break
                        block = data[pos:end]
                        if (adler32(block) - 1) & 0xFF:  # see _sums_to_zero
                            break
                        ok += 1
                        append(TextBlock(block))
                        pos = end
                        if data[pos : pos + 2] != b"\r\n":
                            break
                    if data[pos : pos + 2] == b"\r\n":
                        self._state = _BLOCK  # refused here: the state machine decides
                    continue
                pos = self._idle(data, pos, events)
            elif state is _BLOCK:
                pos = self._block(data, pos, events)
            elif state is _CHECKSUM:
                self._buf.append(data[pos])
                pos += 1
                self._finish_block(bytes(self._buf), events)
            else:
                pos = self._hex_record(data, pos, events)
        self.stats.blocks_ok += ok

    # -- states -------------------------------------------------------------------------

    def _idle(self, data: bytes, pos: int, events: list[Event]) -> int:
        """Skip to the next block start ("\\r\\n") or HEX record (':')."""
        n = len(data)
        start = data.find(b"\r\n", pos)
        colon = data.find(b":", pos, start if start >= 0 else n)
        if colon >= 0:
            self._state = _HEX
            if colon > pos and data[colon - 1] == 0x0D:
                # "\r" ":..." "\n": a HEX record between the CR and LF of a block start.
                self.stats.bytes_discarded += colon - 1 - pos
                self._buf.append(0x0D)
                self._return = _BLOCK
            else:
                self.stats.bytes_discarded += colon - pos
                self._return = _IDLE
            return colon + 1
        if start >= 0:
            self.stats.bytes_discarded += start - pos
            return start  # the fast path (or the state machine) takes it from here
        if data[n - 1] == 0x0D:  # a CR at the very end may start a block
            self.stats.bytes_discarded += n - 1 - pos
            self._buf.append(0x0D)
            self._state = _BLOCK
        else:
            self.stats.bytes_discarded += n - pos
        return n

    def _block(self, data: bytes, pos: int, events: list[Event]) -> int:
        """Accumulate block text up to its checksum byte, diverting HEX records."""
        n = len(data)
        buf = self._buf
        if len(buf) == 1:  # a lone CR: only "\n" (or a HEX record first) starts a block
            byte = data[pos]
            if byte == 0x0A:
                buf.append(0x0A)
                return pos + 1
            if byte != 0x3A:
                buf.clear()
                self.stats.bytes_discarded += 1
                self._state = _IDLE
                return pos  # the byte itself may start something: IDLE looks at it
        elif buf:
            # The end record may straddle a chunk or HEX boundary: "Check" | "sum\t".
            tail = bytes(buf[-8:])
            k = (tail + data[pos : pos + 9]).find(_MARK)
            if 0 <= k < len(tail):
                end = pos + k + len(_MARK) - len(tail)  # index of the checksum byte in data
                if len(buf) + end + 1 - pos > MAX_BLOCK_BYTES:
                    self._overflow(data[pos : end + 1], events)
                    return end + 1
                if end < n:
                    buf += data[pos : end + 1]
                    self._finish_block(bytes(buf), events)
                    return end + 1
                buf += data[pos:]
                self._state = _CHECKSUM
                return n
        room = MAX_BLOCK_BYTES - len(buf)  # text bytes this block may still take
        limit = min(n, pos + room)
        # The end record may end the data (its byte comes next time), but within the room it
        # must leave space for the checksum byte.
        mark = data.find(_MARK, pos, min(n, pos + room - 1))
        colon = data.find(b":", pos, mark if mark >= 0 else limit)
        if colon >= 0:
            buf += data[pos:colon]
            self._state = _HEX
            self._return = _BLOCK
            return colon + 1
        if mark >= 0:
            end = mark + len(_MARK)  # index of the checksum byte
            if end < n:
                buf += data[pos : end + 1]
                self._finish_block(bytes(buf), events)
                return end + 1
            buf += data[pos:]
            self._state = _CHECKSUM
            return n
        if limit - pos < room:  # the data ran out before the cap: wait for more
            buf += data[pos:]
            return n
        # No end record within MAX_BLOCK_BYTES of the start: drop, rescan the tail.
        self._overflow(data[pos:limit], events)
        return limit

    def _hex_record(self, data: bytes, pos: int, events: list[Event]) -> int:
        """Collect HEX digits up to '\\n'; anything else aborts the record."""
        n = len(data)
        hexbuf = self._hex
        nl = data.find(b"\n", pos)
        stop = nl if nl >= 0 else n
        # Take at most one digit past the cap: enough to know the record is oversize.
        stop = min(stop, pos + MAX_HEX_DIGITS + 1 - len(hexbuf))
        match = _HEX_DIGITS_RE.match(data, pos, stop)
        good_end = match.end() if match else pos
        hexbuf += data[pos:good_end]
        if len(hexbuf) > MAX_HEX_DIGITS:
            self._hex_error(ErrorKind.HEX_OVERSIZE, len(hexbuf) + 1, events)
            if self._return is _BLOCK:
                self._drop_block(
                    ErrorKind.OVERSIZE, "block interrupted by an oversize HEX record", events
                )
            self._state = _IDLE
            return good_end
        if good_end < (nl if nl >= 0 else n):
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
        if self._state is _BLOCK and len(self._buf) == 1:
            # "\r" ":junk": the CR was not a block start after all.
            self._buf.clear()
            self._state = _IDLE
            self.stats.bytes_discarded += len(digits) + 2
        elif self._state is _BLOCK:
            self._buf += b":" + digits
            if len(self._buf) > MAX_BLOCK_BYTES:
                self._overflow(b"", events)
        else:
            self.stats.bytes_discarded += len(digits) + 1

    def _hex_error(self, kind: ErrorKind, size: int, events: list[Event]) -> None:
        self.stats.hex_bad += 1
        self.stats.bytes_discarded += size
        self._hex.clear()
        events.append(ErrorEvent(kind, size))

    def _drop_block(self, kind: ErrorKind, detail: str, events: list[Event]) -> None:
        size = len(self._buf)
        self.stats.oversize += kind is ErrorKind.OVERSIZE
        self.stats.bytes_discarded += size
        self._buf.clear()
        self._state = _IDLE
        events.append(ErrorEvent(kind, size, detail))

    def _overflow(self, more: bytes, events: list[Event]) -> None:
        """The block in progress (buffer + ``more``) passed MAX_BLOCK_BYTES: drop it.

        Its last _RESCAN_BYTES are fed through the state machine again (see _RESCAN_BYTES),
        so a real block that started inside the garbage is still found.
        """
        text = bytes(self._buf) + more
        self._buf.clear()
        self._state = _IDLE
        rescan = text[-_RESCAN_BYTES:]
        dropped = len(text) - len(rescan)
        self.stats.oversize += 1
        self.stats.bytes_discarded += dropped
        events.append(
            ErrorEvent(ErrorKind.OVERSIZE, dropped, f"no block end within {MAX_BLOCK_BYTES} bytes")
        )
        # The rescan cannot overflow again: it starts with an empty buffer and is shorter
        # than the cap, so this recursion is one level deep.
        self._run(rescan, events)

    def _finish_block(self, block: bytes, events: list[Event]) -> None:
        """Verify a candidate block (leading CR LF through checksum byte) and emit it."""
        self._buf.clear()
        self._state = _IDLE
        stats = self.stats
        if _is_block(block):
            stats.blocks_ok += 1
            events.append(TextBlock(block))
            return
        # Resync. A damaged end record ("\r\nChecksum\t" with a damaged byte) glues the
        # damaged block to the intact one behind it; garbage that contains CR LF glues itself
        # to the block behind it. Look for where that intact block starts: a record start
        # right after the remains of an end record, or a PID record (only ever first in a
        # block). A suffix is accepted only if it passes the full test, and only at such a
        # start, so the tail of a damaged block never passes for a block (any record start
        # inside one would give it a 1-in-256 chance).
        start = block.find(b"\r\n", 2)
        last = len(block) - 12
        while 0 <= start <= last:
            before = block[max(0, start - 13) : start]
            if (
                any(half in before for half in _END_HALVES)
                or block.startswith(_BLOCK_START_PID, start)
            ) and _is_block(block[start:]):
                self._reject(block[:start], events, "before a resync")
                stats.resyncs += 1
                stats.blocks_ok += 1
                events.append(TextBlock(block[start:]))
                return
            start = block.find(b"\r\n", start + 2)
        self._reject(block, events, "")

    def _reject(self, block: bytes, events: list[Event], context: str) -> None:
        """Count and report a rejected candidate block, naming the rule it broke."""
        stats = self.stats
        stats.bytes_discarded += len(block)
        if not _sums_to_zero(block):
            stats.checksum_errors += 1
            events.append(ErrorEvent(ErrorKind.CHECKSUM, len(block), context))
            return
        # The sum matched: say which shape rule the block broke.
        if not block.startswith(b"\r\n") or block[-12:-1] != _END:
            stats.malformed += 1
            events.append(ErrorEvent(ErrorKind.MALFORMED, len(block), "no end record"))
            return
        records = block[2:-12].split(b"\r\n")
        for record in records:
            label, tab, value = record.partition(b"\t")
            bad = _BAD_VALUE_BYTE.search(value)
            if not tab or not _LABEL_RE.match(label) or bad:
                stats.malformed += 1
                detail = repr(record[:40])
                if tab and bad and bad[0] != b":":
                    detail = f"control byte 0x{bad[0][0]:02X} in a value: {detail}"
                events.append(ErrorEvent(ErrorKind.MALFORMED, len(block), detail))
                return
        stats.oversize += 1
        detail = "too many records" if len(records) > MAX_FIELDS else "label or value too long"
        events.append(ErrorEvent(ErrorKind.OVERSIZE, len(block), detail))
