"""The sans-IO parser: protocol.md section 7 vectors, HEX interleaving, chunking, caps, damage."""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import pytest

from tests.parser_vectors import (
    ALL_BLOCKS,
    S4,
    S5,
    STREAM,
    T1,
    T2A,
    T2B,
    T3A,
    T3B,
    T5,
    T8A,
    T8B,
    T8B_HEX,
    T9,
    T11,
    TEXT_VECTORS,
)
from vedirect_async.parser import (
    MAX_BLOCK_BYTES,
    MAX_FIELDS,
    MAX_HEX_DIGITS,
    MAX_LABEL_BYTES,
    MAX_VALUE_BYTES,
    ErrorEvent,
    ErrorKind,
    Event,
    HexRecord,
    Parser,
    TextBlock,
    checksum_byte,
    encode_block,
)

MAX_BUFFERED = MAX_BLOCK_BYTES + MAX_HEX_DIGITS
HEX_RE = re.compile(rb":([0-9A-F]+)\n")


def feed_all(data: bytes, chunks: Iterable[int] | None = None) -> tuple[list[Event], Parser]:
    """Feed ``data`` whole, or cut at the given chunk sizes; check the buffer bound throughout."""
    parser = Parser()
    events: list[Event] = []
    if chunks is None:
        events += parser.feed(data)
    else:
        pos = 0
        for size in chunks:
            events += parser.feed(data[pos : pos + size])
            assert parser.buffered <= MAX_BUFFERED
            pos += size
        events += parser.feed(data[pos:])
    assert parser.buffered <= MAX_BUFFERED
    return events, parser


def bytewise(data: bytes) -> list[Event]:
    """Feed ``data`` one byte at a time."""
    return feed_all(data, [1] * len(data))[0]


def random_chunks(data: bytes, seed: int) -> list[Event]:
    """Feed ``data`` in seeded random chunks of 1 to 300 bytes."""
    rng = random.Random(seed)
    sizes = []
    total = 0
    while total < len(data):
        sizes.append(rng.randint(1, 300))
        total += sizes[-1]
    return feed_all(data, sizes)[0]


def blocks(events: Sequence[Event]) -> list[bytes]:
    """The raw bytes of the text blocks among ``events``."""
    return [e.raw for e in events if isinstance(e, TextBlock)]


def hexes(events: Sequence[Event]) -> list[bytes]:
    """The digits of the HEX records among ``events``."""
    return [e.digits for e in events if isinstance(e, HexRecord)]


def errors(events: Sequence[Event]) -> list[ErrorEvent]:
    """The error events among ``events``."""
    return [e for e in events if isinstance(e, ErrorEvent)]


def accounted(events: Sequence[Event], parser: Parser) -> int:
    """Bytes the parser has put somewhere: emitted, discarded or still buffered."""
    emitted = sum(e.size for e in events if isinstance(e, TextBlock))
    emitted += sum(len(e.digits) + 2 for e in events if isinstance(e, HexRecord))
    return emitted + parser.stats.bytes_discarded + parser.buffered


# -- protocol.md section 7 vectors ----------------------------------------------------------


@pytest.mark.parametrize("name", list(TEXT_VECTORS))
def test_text_vector(name: str) -> None:
    """Every text vector of protocol.md 7.1/7.2 yields exactly its block and its HEX records."""
    hex_before, block, check, length = TEXT_VECTORS[name]
    assert len(block) == length
    assert block[-1] == check
    events, parser = feed_all(hex_before + block)
    assert blocks(events) == [block]
    assert hexes(events) == HEX_RE.findall(hex_before)
    assert errors(events) == []
    assert parser.buffered == 0
    assert parser.stats.blocks_ok == 1
    assert parser.stats.hex_ok == len(HEX_RE.findall(hex_before))
    # The sum rule itself: all bytes of the block, HEX excluded, sum to 0 mod 256.
    assert sum(block) % 256 == 0


def test_t1_fields_in_wire_order() -> None:
    """The FAQ example decodes to its 12 records, in order, as raw bytes."""
    (block,) = feed_all(T1)[0]
    assert isinstance(block, TextBlock)
    assert block.fields == (
        (b"PID", b"0x203"),
        (b"V", b"26201"),
        (b"I", b"0"),
        (b"P", b"0"),
        (b"CE", b"0"),
        (b"SOC", b"1000"),
        (b"TTG", b"-1"),
        (b"Alarm", b"OFF"),
        (b"Relay", b"OFF"),
        (b"AR", b"0"),
        (b"BMV", b"700"),
        (b"FW", b"0307"),
    )
    assert block.size == 112
    assert block.raw == T1


def test_fields_keep_spaces_slashes_and_hash() -> None:
    """Values with spaces and '/', and labels with '#' or '_', come through unchanged."""
    events, _ = feed_all(TEXT_VECTORS["T4a"][1] + TEXT_VECTORS["T12"][1] + TEXT_VECTORS["T10"][1])
    fields = [dict(e.fields) for e in events if isinstance(e, TextBlock)]
    assert fields[0][b"BMV"] == b"SmartShunt 500A/50mV"
    assert fields[1][b"HC#"] == b"136663"
    assert fields[2][b"AC_OUT_V"] == b"12003"


def test_whole_stream_of_all_vectors() -> None:
    """All vectors back to back (checksums ':', CR, LF, TAB, NUL; HEX between) all verify."""
    events, parser = feed_all(STREAM)
    assert blocks(events) == list(ALL_BLOCKS)
    assert errors(events) == []
    assert parser.stats.hex_ok == 13
    assert accounted(events, parser) == parser.stats.bytes_in == len(STREAM)


def test_hex_directly_after_checksum_byte() -> None:
    """A HEX record glued to a ':' or NUL checksum byte (no CR LF between) is parsed as HEX."""
    stream = S4 + b":55041BF\n" + S5 + b":A0102000543\n" + T2B
    for events in (feed_all(stream)[0], bytewise(stream)):
        assert blocks(events) == [S4, S5, T2B]
        assert hexes(events) == [b"55041BF", b"A0102000543"]


def test_hex_record_properties() -> None:
    """HexRecord exposes the command nibble and the payload bytes without the check byte."""
    (record,) = feed_all(b":7F0ED009600DB\n")[0]
    assert isinstance(record, HexRecord)
    assert record.command == 7
    assert record.payload == bytes([0xF0, 0xED, 0x00, 0x96, 0x00])


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (b":7F0ED009600DC\n", ErrorKind.HEX_CHECKSUM),
        (b":7F\n", ErrorKind.HEX_SYNTAX),
        (b":\n", ErrorKind.HEX_SYNTAX),
        (b":" + b"A" * (MAX_HEX_DIGITS + 50) + b"\n", ErrorKind.HEX_OVERSIZE),
    ],
)
def test_bad_hex_records(data: bytes, kind: ErrorKind) -> None:
    """A HEX record with a bad check, bad length or past the cap is an error, then T1 parses."""
    events, parser = feed_all(data + T1)
    assert [e.kind for e in errors(events)] == [kind]
    assert blocks(events) == [T1]
    assert parser.stats.hex_bad == 1
    assert accounted(events, parser) == len(data + T1)


def test_hex_with_damaged_end_byte() -> None:
    """A HEX record whose '\\n' became 0xFE (OpenDTU#1585) is dropped; the next block parses."""
    stream = T8A + b":ADBED00D10AA8\xfe" + T8B
    events, parser = feed_all(stream)
    assert blocks(events) == [T8A, T8B]
    assert parser.stats.hex_bad == 1


# -- HEX records inside blocks --------------------------------------------------------------


@pytest.mark.parametrize("block", [T1, T2A, T8B, T11, S5], ids=["T1", "T2a", "T8b", "T11", "S5"])
@pytest.mark.parametrize("burst", [b":A0102000543\n", T8B_HEX], ids=["one", "burst"])
def test_hex_inserted_at_every_position(block: bytes, burst: bytes) -> None:
    """HEX inserted between any two bytes (never as the checksum byte) leaves the block valid."""
    records = HEX_RE.findall(burst)
    checksum_at = len(block) - 1
    for at in range(len(block) + 1):
        if at == checksum_at:
            continue  # a ':' there IS the checksum byte
        stream = T2B + block[:at] + burst + block[at:] + T3B
        for events in (feed_all(stream)[0], bytewise(stream)):
            assert blocks(events) == [T2B, block, T3B], at
            assert hexes(events) == records, at
            assert errors(events) == [], at


def test_hex_inside_end_record_across_chunks() -> None:
    """The end record split by a HEX record and a chunk boundary ("Check" | HEX | "sum\\t")."""
    cut = T1.index(b"sum\t")
    stream = T1[:cut] + b":A0102000543\n" + T1[cut:]
    for size in range(1, 40):
        events, _ = feed_all(stream, [size] * (len(stream) // size + 1))
        assert blocks(events) == [T1], size


def test_colon_checksum_is_not_hex() -> None:
    """A ':' checksum byte followed by a block start is the checksum, not a HEX record."""
    events, parser = feed_all(T2A + T2B + S4 + T1)
    assert blocks(events) == [T2A, T2B, S4, T1]
    assert parser.stats.hex_bad == 0


# -- chunking ---------------------------------------------------------------------------------


def test_one_byte_equals_whole_equals_random_chunks() -> None:
    """Whole, one byte at a time and seeded random chunks give identical events and counters."""
    stream = b"\x00garbage\r\n" + STREAM + b"\r\nV\t1" + STREAM[:500]
    whole, parser = feed_all(stream)
    assert bytewise(stream) == whole
    for seed in range(20):
        assert random_chunks(stream, seed) == whole, seed
    assert accounted(whole, parser) == len(stream)


@pytest.mark.parametrize(
    "name",
    [
        "karioja-vedirect__bvm702.dump",
        "karioja-vedirect__bluesolar_1.23.dump",
        "karioja-vedirect__smartsolar_1.39.dump",
        "KinDR007-VictronMPPT-ESPHOME__fake-smartsolar-mppt-150-70-rev3.derived.bin",
        "KinDR007-VictronMPPT-ESPHOME__fake-bluesmart-ip65-0xa30a.derived.bin",
        "KinDR007-VictronMPPT-ESPHOME__fake-orion-xs-0xa3f0.derived.bin",
    ],
)
def test_capture_chunking_invariance(captures_dir: Path, name: str) -> None:
    """Each real capture gives the same events whole, byte by byte and in random chunks."""
    data = (captures_dir / name).read_bytes()
    whole, parser = feed_all(data)
    assert bytewise(data) == whole
    assert random_chunks(data, 7) == whole
    assert accounted(whole, parser) == len(data)


@pytest.mark.parametrize(
    ("name", "n_blocks", "n_hex", "n_bad"),
    [
        ("karioja-vedirect__bvm702.dump", 906, 0, 0),
        ("karioja-vedirect__bluesolar_1.23.dump", 248, 7, 0),
        ("karioja-vedirect__smartsolar_1.39.dump", 493, 2, 1),
        ("KinDR007-VictronMPPT-ESPHOME__fake-smartsolar-mppt-150-70-rev3.derived.bin", 4, 14, 0),
        ("KinDR007-VictronMPPT-ESPHOME__smartsolar-mppt-example-pdus.derived.bin", 6, 0, 1),
    ],
)
def test_capture_counts(
    captures_dir: Path, name: str, n_blocks: int, n_hex: int, n_bad: int
) -> None:
    """Pinned counts per capture: valid blocks, HEX records, only a partial first block bad."""
    events, parser = feed_all((captures_dir / name).read_bytes())
    assert parser.stats.blocks_ok == len(blocks(events)) == n_blocks
    assert parser.stats.hex_ok == n_hex
    assert parser.stats.checksum_errors == n_bad
    assert all(sum(raw) % 256 == 0 for raw in blocks(events))


def test_bvm702_colon_checksums(captures_dir: Path) -> None:
    """bvm702.dump: 7 of its 906 blocks end in ':' and all of them verify."""
    events, _ = feed_all((captures_dir / "karioja-vedirect__bvm702.dump").read_bytes())
    assert sum(raw.endswith(b":") for raw in blocks(events)) == 7


# -- caps and resync --------------------------------------------------------------------------


def check_caps(stream: bytes, expect: list[bytes], kinds: set[ErrorKind]) -> None:
    """Feed in 97-byte chunks: buffer under the cap, ``expect`` parses, errors are ``kinds``."""
    events, parser = feed_all(stream, [97] * (len(stream) // 97 + 1))
    assert blocks(events) == expect
    assert {e.kind for e in errors(events)} == kinds
    assert accounted(events, parser) == len(stream)


def test_endless_line_without_newline() -> None:
    """A record that never ends is dropped at the block cap; the next block parses."""
    check_caps(T1 + b"\r\nV\t" + b"1" * 100_000 + T2A + T2B, [T1, T2A, T2B], {ErrorKind.OVERSIZE})


def test_endless_hex_record() -> None:
    """A HEX record that never ends is dropped at the HEX cap; the next block parses."""
    check_caps(b":" + b"A" * 100_000 + T1 + T2B, [T1, T2B], {ErrorKind.HEX_OVERSIZE})


def test_endless_hex_record_inside_block() -> None:
    """An endless HEX record inside a block drops that block; the following block parses."""
    check_caps(
        T1[:40] + b":" + b"7" * 10_000 + T1[40:] + T2B,
        [T2B],
        {ErrorKind.HEX_OVERSIZE, ErrorKind.OVERSIZE, ErrorKind.CHECKSUM},
    )


def test_huge_garbage_with_crlf_then_blocks() -> None:
    """Random garbage (with CR LF and ':') is dropped in bounded steps; blocks after it parse."""
    rng = random.Random(3)
    garbage = bytes(rng.choice(b"\r\n:\t AZ09\x00\xff") for _ in range(50_000))
    events, parser = feed_all(garbage + T1 + T2B, [512] * 200)
    assert blocks(events)[-2:] == [T1, T2B]
    assert accounted(events, parser) == len(garbage + T1 + T2B)


@pytest.mark.parametrize("length", [0, 10, 100, 1000, 1900, 2000, 2100, 5000, 100_000])
def test_endless_record_then_h_block(length: int) -> None:
    """A run-away record, then a block without PID: kept once the run-away passed the cap.

    Garbage that contains CR LF cannot be told from the records of the block after it, so
    that block (unless it starts with PID) is lost when the garbage is shorter than the cap;
    the one after it is always kept.
    """
    events, _ = feed_all(b"\r\nV\t" + b"x" * length + T2B + T3A)
    got = blocks(events)
    assert got[-1] == T3A
    if length >= MAX_BLOCK_BYTES:
        assert got == [T2B, T3A]


def test_garbage_with_crlf_then_pid_block() -> None:
    """Garbage lines glued to a PID block: the PID record marks the block start, it is kept."""
    garbage = b"".join(b"\r\nX%d\t%d" % (i, i) for i in range(30))
    events, parser = feed_all(garbage + T3A + T3B)
    assert blocks(events) == [T3A, T3B]
    assert parser.stats.resyncs == 1


def test_buffered_stays_bounded_bytewise() -> None:
    """Fed one byte at a time, an endless block never holds more than the cap."""
    parser = Parser()
    for _ in range(MAX_BLOCK_BYTES * 3):
        parser.feed(b"7")
        assert parser.buffered <= MAX_BUFFERED
    parser.feed(b"\r\nV\t")
    for _ in range(MAX_BLOCK_BYTES * 3):
        parser.feed(b"7")
        assert parser.buffered <= MAX_BLOCK_BYTES
    assert blocks(parser.feed(T1)) == [T1]


@pytest.mark.parametrize(
    ("fields", "kind"),
    [
        ([(b"V", b"1")] * (MAX_FIELDS + 1), ErrorKind.OVERSIZE),
        ([(b"L" * (MAX_LABEL_BYTES + 1), b"1")], ErrorKind.OVERSIZE),
        ([(b"V", b"1" * (MAX_VALUE_BYTES + 1))], ErrorKind.OVERSIZE),
        ([(b"V", b"1\t2")], ErrorKind.MALFORMED),
        ([(b"V-", b"1")], ErrorKind.MALFORMED),
        ([(b"", b"1")], ErrorKind.MALFORMED),
    ],
)
def test_shape_caps(fields: list[tuple[bytes, bytes]], kind: ErrorKind) -> None:
    """Blocks with a good checksum but too many records, long fields or bad shape are rejected."""
    bad = encode_block(fields)
    events, parser = feed_all(bad + T1)
    assert [e.kind for e in errors(events)] == [kind]
    assert blocks(events) == [T1]
    assert parser.stats.blocks_ok == 1


def test_caps_are_inclusive() -> None:
    """A block with exactly MAX_FIELDS records of maximal label/value length is accepted."""
    fields = [(b"L" * MAX_LABEL_BYTES, b"v" * MAX_VALUE_BYTES)] * (MAX_BLOCK_BYTES // 90)
    big = encode_block(fields)
    assert len(big) <= MAX_BLOCK_BYTES
    many = encode_block([(b"V", b"1")] * MAX_FIELDS)
    assert blocks(feed_all(big + many)[0]) == [big, many]
    assert blocks(bytewise(big + many)) == [big, many]


# -- damage -----------------------------------------------------------------------------------

DAMAGE_STREAM_BLOCKS = (T2A, T2B, T3A, T3B, S4, T5, T11, S5, T9, T1)
DAMAGE_STREAM = b"".join(DAMAGE_STREAM_BLOCKS)


@pytest.mark.parametrize("value", [None, 0x3A, 0x0D, 0x0A, 0x09, 0x00], ids=str)
def test_one_damaged_byte_rejects_exactly_that_block(value: int | None) -> None:
    """Any one byte of any block damaged: that block is rejected, every other block accepted.

    This includes damage to a block's "\\r\\nChecksum\\t" end record (which glues it to the
    next block) and to its line ends; ``None`` flips the lowest bit.
    """
    offset = 0
    for k, block in enumerate(DAMAGE_STREAM_BLOCKS):
        expect = [b for i, b in enumerate(DAMAGE_STREAM_BLOCKS) if i != k]
        for i in range(len(block)):
            new = block[i] ^ 1 if value is None else value
            if new == block[i]:
                continue
            damaged = bytearray(DAMAGE_STREAM)
            damaged[offset + i] = new
            events, parser = feed_all(bytes(damaged))
            assert blocks(events) == expect, (k, i)
            assert accounted(events, parser) == len(damaged)
        offset += len(block)


def test_damaged_end_record_resync_is_counted() -> None:
    """A damaged end record is one checksum error plus one resync; the next block is kept."""
    damaged = T3A.replace(b"Checksum", b"Chexksum") + T3B
    events, parser = feed_all(damaged)
    assert blocks(events) == [T3B]
    assert parser.stats.checksum_errors == 1
    assert parser.stats.resyncs == 1


def test_corrupt_block_leaks_nothing() -> None:
    """A block with one changed value yields an error event only: no field of it anywhere."""
    bad = T1.replace(b"V\t26201", b"V\t26202")
    events, parser = feed_all(bad + T2B)
    assert blocks(events) == [T2B]
    assert all(b"26202" not in raw for raw in blocks(events))
    assert [e.kind for e in errors(events)] == [ErrorKind.CHECKSUM]
    assert parser.stats.checksum_errors == 1


def test_partial_first_block_is_dropped() -> None:
    """A stream that starts mid-block (as every real capture does) loses only that block."""
    for cut in range(1, len(T1)):
        events, _ = feed_all(T1[cut:] + T2B + T3A)
        assert blocks(events) == [T2B, T3A], cut


# -- API --------------------------------------------------------------------------------------


def test_reset_forgets_partial_block() -> None:
    """reset() drops a half-received block (counted as discarded) and starts clean."""
    parser = Parser()
    parser.feed(T1[:50])
    assert parser.buffered == 50
    parser.reset()
    assert parser.buffered == 0
    assert parser.stats.bytes_discarded == 50
    assert blocks(parser.feed(T1[50:] + T2B)) == [T2B]


def test_feed_accepts_bytearray_and_memoryview() -> None:
    """bytearray and memoryview input give blocks whose raw is immutable bytes."""
    for data in (bytearray(T1), memoryview(T1)):
        (block,) = Parser().feed(data)  # type: ignore[arg-type]
        assert isinstance(block, TextBlock)
        assert type(block.raw) is bytes
        assert block.raw == T1


def test_feed_empty() -> None:
    """Feeding nothing returns nothing and changes nothing."""
    parser = Parser()
    assert parser.feed(b"") == []
    assert parser.stats.as_dict()["bytes_in"] == 0


def test_stats_as_dict() -> None:
    """as_dict() names every counter; they add up after a mixed stream."""
    events, parser = feed_all(b"junk" + T8A + T8B_HEX + T8B + T1.replace(b"0307", b"0308"))
    stats = parser.stats.as_dict()
    assert set(stats) == {
        "bytes_in",
        "blocks_ok",
        "checksum_errors",
        "oversize",
        "malformed",
        "hex_ok",
        "hex_bad",
        "bytes_discarded",
        "resyncs",
    }
    assert stats["blocks_ok"] == 2
    assert stats["hex_ok"] == 8
    assert stats["checksum_errors"] == 1
    assert stats["bytes_discarded"] == 4 + len(T1)
    assert len(events) == 2 + 8 + 1


def test_encode_block_round_trip() -> None:
    """encode_block builds a block that parses back to the same records, checksum included."""
    fields = ((b"PID", b"0xA053"), (b"SER#", b"HQ1942K7LJ8"), (b"AC_OUT_V", b"12003"))
    block = encode_block(fields)
    assert block[-1] == checksum_byte(block[:-1])
    (event,) = Parser().feed(block)
    assert isinstance(event, TextBlock)
    assert event.fields == fields
    assert encode_block(TextBlock(T1).fields) == T1


def test_text_block_equality_and_repr() -> None:
    """TextBlocks compare and hash by their raw bytes."""
    assert TextBlock(T1) == TextBlock(T1)
    assert hash(TextBlock(T1)) == hash(TextBlock(T1))
    assert TextBlock(T1) != TextBlock(T2B)
    assert TextBlock(T1) != T1
    assert repr(TextBlock(b"\r\nChecksum\t\x00")).startswith("TextBlock(")


def test_t9_block_after_history_record() -> None:
    """The T9 history record and its block arrive as separate, verified events, HEX first."""
    events, _ = feed_all(TEXT_VECTORS["T9"][0] + T9)
    assert [type(e) for e in events] == [HexRecord, TextBlock]


@pytest.mark.parametrize("seed", range(8))
def test_five_percent_damaged_capture(captures_dir: Path, seed: int) -> None:
    """bvm702 with one byte damaged in 5 % of its blocks: 0 corrupt accepted, 0 intact lost."""
    data = (captures_dir / "karioja-vedirect__bvm702.dump").read_bytes()
    clean = blocks(feed_all(data)[0])
    rng = random.Random(seed)
    hit = set(rng.sample(range(len(clean)), len(clean) // 20))
    damaged = bytearray()
    for k, raw in enumerate(clean):
        block = bytearray(raw)
        if k in hit:
            at = rng.randrange(len(block))
            block[at] = rng.choice([b for b in range(256) if b != block[at]])
        damaged += block
    got = blocks(random_chunks(bytes(damaged), seed))
    assert got == [raw for k, raw in enumerate(clean) if k not in hit]


# -- control bytes (issue 16.1): values are printable text ------------------------------------


def test_a_nul_anywhere_in_a_block_rejects_it() -> None:
    """A NUL adds nothing to the byte sum, so a UART break's NUL passes the checksum: at every
    position of a real BMV block (checksum byte aside) the block is rejected and counted."""
    for pos in range(2, len(T1) - 1):
        damaged = T1[:pos] + b"\x00" + T1[pos:]
        events, parser = feed_all(damaged + T2A)
        assert blocks(events) == [T2A], pos  # the next block is still read
        assert all(b"\x00" not in block for block in blocks(events))
        assert parser.stats.blocks_ok == 1
        assert parser.stats.malformed + parser.stats.checksum_errors + parser.stats.oversize >= 1


@pytest.mark.parametrize("byte", [0x00, 0x01, 0x08, 0x0B, 0x1B, 0x1F, 0x7F])
def test_control_bytes_in_a_value_reject_the_block(byte: int) -> None:
    """Any control byte in a value (its checksum right) is malformed input, said so, counted."""
    bad = encode_block([(b"PID", b"0xA053"), (b"V", b"12" + bytes((byte,)) + b"800")])
    for events, parser in (feed_all(bad), feed_all(bad, [1] * len(bad))):
        assert blocks(events) == []
        (error,) = errors(events)
        assert error.kind is ErrorKind.MALFORMED
        assert f"control byte 0x{byte:02X}" in error.detail
        assert parser.stats.malformed == 1
        assert accounted(events, parser) == len(bad)


def test_a_control_byte_as_the_checksum_byte_is_fine() -> None:
    """The checksum byte may be any byte, a NUL or a control byte included."""
    for v in range(12000, 12400):
        block = encode_block([(b"PID", b"0xA053"), (b"V", b"%d" % v)])
        if block[-1] < 0x20:
            assert blocks(feed_all(block)[0]) == [block]
