"""The Decoder façade: the same readings as the parser and assembler it owns, HEX records and
problems passed through in stream order, one object for every user."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.test_captures import BVM, EXPECTED, REV3, key, random_chunks
from tests.test_captures import run as hand_wired
from vedirect_async.decoder import Decoder
from vedirect_async.parser import ErrorEvent, ErrorKind, HexRecord, encode_block
from vedirect_async.reading import Reading

WALL = datetime(2026, 1, 1, tzinfo=UTC)


def readings_of(decoder: Decoder, data: bytes, sizes: list[int] | None = None) -> list[Reading]:
    out: list[Reading] = []
    pos = 0
    for size in sizes or [len(data)]:
        out += [e for e in decoder.feed(data[pos : pos + size], 0.0, WALL) if type(e) is Reading]
        pos += size
    last = decoder.flush(0.0, WALL)
    return [*out, *([last] if last is not None else [])]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_decoder_gives_what_parser_and_assembler_give(name: str, captures_dir: Path) -> None:
    """On every real capture, in any chunking, the Decoder's readings are the hand-wired ones."""
    data = (captures_dir / name).read_bytes()
    expected = [key(r) for r in hand_wired(data).readings]
    decoder = Decoder("capture")
    assert [key(r) for r in readings_of(decoder, data)] == expected
    assert decoder.parser_stats.blocks_ok == EXPECTED[name].blocks
    assert decoder.stats.readings == len(expected)
    chunked = readings_of(Decoder("capture"), data, random_chunks(len(data), 4))
    assert [key(r) for r in chunked] == expected


def test_hex_records_come_out_in_stream_order(captures_dir: Path) -> None:
    """The 150/70 capture's 14 asynchronous HEX records are events, between its readings."""
    events = Decoder("mppt").feed((captures_dir / REV3).read_bytes(), 0.0, WALL)
    kinds = [type(e).__name__ for e in events]
    assert kinds.count("HexRecord") == 14
    assert kinds.count("Reading") == EXPECTED[REV3].readings  # each on its own last block
    first = next(e for e in events if isinstance(e, HexRecord))
    assert first.digits[:1] == b"A"  # an asynchronous :A record


def test_a_lost_block_is_reported_and_ends_the_update(captures_dir: Path) -> None:
    """A damaged block comes out as an ErrorEvent and the update it belonged to is dropped,
    so no reading merges across the loss."""
    decoder = Decoder("bmv")
    data = (captures_dir / BVM).read_bytes()
    clean = readings_of(Decoder("bmv"), data)
    second_h_block = data.index(b"\r\nH1\t", data.index(b"\r\nH1\t") + 1)
    damaged = data[: second_h_block + 6] + b"#" + data[second_h_block + 7 :]
    events = decoder.feed(damaged, 0.0, WALL)
    errors = [e for e in events if isinstance(e, ErrorEvent)]
    assert [e.kind for e in errors] == [ErrorKind.CHECKSUM]
    assert decoder.stats.incomplete == 1
    got = [e for e in events if isinstance(e, Reading)]
    assert len(got) == len(clean) - 1  # only the damaged update is missing


def test_wall_clock_is_read_only_for_chunks_that_complete_a_block() -> None:
    """Without ``wall`` the clock is read once per chunk that completes a block."""
    block = encode_block([(b"PID", b"0xA053"), (b"V", b"12800"), (b"HSDS", b"1")])
    decoder = Decoder("mppt")
    assert decoder.feed(block[:10], 1.0) == []
    assert decoder.buffered == 10
    (reading,) = decoder.feed(block[10:], 1.0)
    assert isinstance(reading, Reading)
    assert abs((datetime.now(UTC) - reading.time).total_seconds()) < 5
    assert reading.monotonic == 1.0


def test_reset_forgets_partial_input_but_keeps_counters() -> None:
    """After a reopen a half block is discarded (counted), and counters keep growing."""
    block = encode_block([(b"PID", b"0xA053"), (b"V", b"12800"), (b"HSDS", b"1")])
    decoder = Decoder("mppt")
    decoder.feed(block, 0.0, WALL)
    decoder.feed(block[:20], 0.0, WALL)
    decoder.reset()
    assert decoder.buffered == 0
    assert decoder.parser_stats.bytes_discarded == 20
    assert decoder.device == "mppt"
    assert decoder.feed(block, 1.0, WALL)
    assert decoder.stats.blocks == 2
