"""``Decoder``: the sans-IO VE.Direct protocol engine of one device (bytes in, events out).

Modelled on h11's ``Connection``: it owns the :class:`~vedirect_async.parser.Parser` (framing,
checksums) and the :class:`~vedirect_async.reading.Assembler` (blocks -> readings), does no
I/O and reads no clock of its own unless asked to, and is driven by whoever has the bytes::

    decoder = Decoder("bmv")
    for event in decoder.feed(chunk, time.monotonic()):
        if type(event) is Reading: ...      # one complete, verified update
        elif type(event) is HexRecord: ...  # a verified HEX record (answer or async :A)
        else: ...                           # ErrorEvent: bytes rejected (already counted)

Events come out in stream order. Every byte is accounted for in :attr:`parser_stats`; every
block in :attr:`stats`. A lost text block (checksum, oversize, malformed) is reported *and*
ends the update in progress, so a reading never merges across the loss.

HEX records are passed through untouched (``HexRecord``): the device session dispatches
them (answers to its commands, asynchronous ``:A`` values). Decoding their payload is
:mod:`vedirect_async.hexframe`'s job, so this module stays the one place text and HEX are
separated, and nothing here grows when the command path does.

The reader (``session``), ``decode``, the tests and the benches use this one object, and
nothing else wires a parser to an assembler (``tests/test_architecture.py`` checks it; only the
assembler's own tests feed it blocks by hand). A test or bench that looks at framing alone
uses a bare ``Parser``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import cast

from .parser import ErrorEvent, ErrorKind, HexRecord, Parser, ParserStats, TextBlock
from .reading import Assembler, AssemblerStats, Reading

__all__ = ["Decoder", "DecoderEvent"]

# What :meth:`Decoder.feed` returns, in stream order.
DecoderEvent = Reading | HexRecord | ErrorEvent

# Parser errors that lose a text block (and so the update it belonged to).
_TEXT_LOSSES = frozenset({ErrorKind.CHECKSUM, ErrorKind.OVERSIZE, ErrorKind.MALFORMED})


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Decoder:
    """Bytes of one device in, :data:`DecoderEvent` out; never raises on device input."""

    __slots__ = ("_assembler", "_parser")

    def __init__(self, device: str, *, stale_after: float = 3.0) -> None:
        self._parser = Parser()
        self._assembler = Assembler(device, stale_after=stale_after)

    # -- counters and learned facts (read-only views) ----------------------------------------

    @property
    def device(self) -> str:
        return self._assembler.device

    @property
    def parser_stats(self) -> ParserStats:
        """Byte and block counters of the framer (the same object for the decoder's life)."""
        return self._parser.stats

    @property
    def stats(self) -> AssemblerStats:
        """Update counters: readings, incomplete, orphans, unknown labels, undecodable..."""
        return self._assembler.stats

    @property
    def unknown_label_names(self) -> list[str]:
        """Up to 32 distinct labels not in the catalogue, in order of arrival."""
        return self._assembler.unknown_label_names

    @property
    def blocks_per_update(self) -> int | None:
        """The learned number of text blocks per update (None until learned)."""
        return self._assembler.blocks_per_update

    @property
    def buffered(self) -> int:
        """Bytes held for an incomplete block or record (bounded)."""
        return self._parser.buffered

    # -- input ---------------------------------------------------------------------------------

    def feed(self, data: bytes, mono: float, wall: datetime | None = None) -> list[DecoderEvent]:
        """Consume ``data`` (any chunking); return the events it completed, in stream order.

        ``mono`` (``time.monotonic()``) stamps the readings and judges stale halves; ``wall``
        (UTC) is their wall-clock time. Without ``wall`` the clock is read once, and only if
        the chunk completes a block (most chunks of a serial port complete none).
        """
        events = self._parser.feed(data)
        if not events:
            return []
        assembler = self._assembler
        out: list[DecoderEvent] = []
        for event in events:
            if type(event) is TextBlock:
                if wall is None:
                    wall = _utcnow()
                reading = assembler.feed(event, wall, mono)
                if reading is not None:
                    out.append(reading)
            elif type(event) is ErrorEvent:
                if event.kind in _TEXT_LOSSES:
                    assembler.block_lost()  # no merge across the loss
                out.append(event)
            else:
                out.append(cast(HexRecord, event))  # the session's business
        return out

    def flush(self, mono: float, wall: datetime | None = None) -> Reading | None:
        """End of input: the update in progress if it may be complete (see Assembler.flush)."""
        return self._assembler.flush(wall or _utcnow(), mono)

    def reset(self) -> None:
        """Forget partial blocks, records and updates (the port was reopened); keep counters
        and what was learned about the device."""
        self._parser.reset()
        self._assembler.reset()
