"""Property tests for the parser: whatever arrives, it never raises and never lets bad data out."""

from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.parser_vectors import ALL_BLOCKS, STREAM, T8B_HEX, T9_HEX
from vedirect_async.parser import (
    MAX_BLOCK_BYTES,
    MAX_HEX_DIGITS,
    ErrorEvent,
    Event,
    HexRecord,
    Parser,
    TextBlock,
    encode_block,
)

MAX_BUFFERED = MAX_BLOCK_BYTES + MAX_HEX_DIGITS
HEX_RECORDS = (*re.findall(rb":[0-9A-F]+\n", T8B_HEX + T9_HEX), b":4AAAAFD\n")
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def run(data: bytes, cuts: list[int]) -> tuple[list[Event], Parser]:
    """Feed ``data`` cut at the given (sorted, deduplicated here) offsets, checking invariants."""
    parser = Parser()
    events: list[Event] = []
    last = 0
    for cut in [*sorted({c % (len(data) + 1) for c in cuts}), len(data)]:
        events += parser.feed(data[last:cut])
        last = cut
        assert parser.buffered <= MAX_BUFFERED
    check_events(events, parser, len(data))
    return events, parser


def check_events(events: list[Event], parser: Parser, total: int) -> None:
    """Every emitted block verifies and has label/value shape; every byte is accounted for."""
    emitted = 0
    for event in events:
        if isinstance(event, TextBlock):
            assert sum(event.raw) % 256 == 0
            assert event.raw.startswith(b"\r\n")
            assert event.raw[-12:-1] == b"\r\nChecksum\t"
            assert encode_block(event.fields) == event.raw  # fields split cleanly
            emitted += event.size
        elif isinstance(event, HexRecord):
            assert sum(bytes.fromhex("0" + event.digits.decode())) % 256 == 0x55
            emitted += len(event.digits) + 2
        else:
            assert isinstance(event, ErrorEvent)
            assert event.discarded >= 0
    stats = parser.stats
    assert stats.blocks_ok == sum(isinstance(e, TextBlock) for e in events)
    assert stats.hex_ok == sum(isinstance(e, HexRecord) for e in events)
    assert stats.bytes_in == total
    assert emitted + stats.bytes_discarded + parser.buffered == total


def blocks(events: list[Event]) -> list[bytes]:
    """Raw bytes of the text blocks among ``events``."""
    return [e.raw for e in events if isinstance(e, TextBlock)]


cuts = st.lists(st.integers(min_value=0, max_value=100_000), max_size=20)


@FUZZ
@given(data=st.binary(max_size=3000), cuts=cuts)
def test_arbitrary_bytes(data: bytes, cuts: list[int]) -> None:
    """Arbitrary bytes in arbitrary chunks: no exception, invariants hold, chunking is invisible."""
    events, _ = run(data, cuts)
    assert run(data, [])[0] == events


@FUZZ
@given(
    data=st.lists(st.sampled_from(b"\r\n\t:ACF0123456789Chksum\x00\xff"), max_size=3000).map(bytes),
    cuts=cuts,
)
def test_protocol_alphabet(data: bytes, cuts: list[int]) -> None:
    """Random bytes drawn from the protocol's own alphabet (CR, LF, TAB, ':', hex digits)."""
    events, _ = run(data, cuts)
    assert run(data, [])[0] == events


piece = st.one_of(
    st.sampled_from(ALL_BLOCKS).map(lambda b: ("block", b)),
    st.sampled_from(HEX_RECORDS).map(lambda b: ("hex", b)),
    st.binary(max_size=60).map(lambda b: ("garbage", b)),
)


@FUZZ
@given(pieces=st.lists(piece, max_size=25), cuts=cuts)
def test_blocks_interleaved_with_garbage(pieces: list[tuple[str, bytes]], cuts: list[int]) -> None:
    """Real blocks among garbage and HEX: every block right after a block (or first) is kept."""
    data = b"".join(b for _, b in pieces)
    events, _ = run(data, cuts)
    got = blocks(events)
    must = [
        b
        for i, (kind, b) in enumerate(pieces)
        if kind == "block" and (i == 0 or pieces[i - 1][0] == "block")
    ]
    it = iter(got)
    assert all(any(g == b for g in it) for b in must)  # `must` is a sub-sequence of `got`


@FUZZ
@given(
    block=st.sampled_from(ALL_BLOCKS),
    inserts=st.lists(
        st.tuples(st.integers(min_value=0, max_value=1000), st.sampled_from(HEX_RECORDS)),
        max_size=8,
    ),
    cuts=cuts,
)
def test_hex_bursts_inside_blocks(
    block: bytes, inserts: list[tuple[int, bytes]], cuts: list[int]
) -> None:
    """HEX records at random places in a block (never as its checksum byte): all verify."""
    positions = sorted(
        ((at % (len(block) - 1), rec) for at, rec in inserts), key=lambda item: item[0]
    )
    out = bytearray()
    last = 0
    records = []
    for at, rec in positions:
        out += block[last:at] + rec
        records.append(rec[1:-1])
        last = at
    out += block[last:]
    events, _ = run(bytes(out) + block, cuts)
    assert blocks(events) == [block, block]
    assert [e.digits for e in events if isinstance(e, HexRecord)] == records


@FUZZ
@given(end=st.integers(min_value=0, max_value=len(STREAM)), cuts=cuts)
def test_truncated_stream(end: int, cuts: list[int]) -> None:
    """Any prefix of a real stream yields exactly the blocks completed within it."""
    events, _ = run(STREAM[:end], cuts)
    complete = []
    pos = 0
    for block in ALL_BLOCKS:
        pos = STREAM.index(block, pos) + len(block)
        if pos <= end:
            complete.append(block)
    assert blocks(events) == complete


@FUZZ
@given(
    at=st.integers(min_value=0, max_value=len(STREAM) - 1),
    value=st.integers(min_value=0, max_value=255),
    cuts=cuts,
)
def test_one_damaged_byte_anywhere(at: int, value: int, cuts: list[int]) -> None:
    """One damaged byte anywhere in a real stream: at most one block lost, none invented."""
    damaged = bytearray(STREAM)
    damaged[at] = value
    events, _ = run(bytes(damaged), cuts)
    got = blocks(events)
    assert len(got) >= len(ALL_BLOCKS) - 1
    it = iter(ALL_BLOCKS)
    assert all(any(g == b for b in it) for g in got)  # `got` is a sub-sequence of the blocks
