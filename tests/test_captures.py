"""Every real capture in ../shared/captures, read in place: counts, chunking, update rule,
corruption. The captures are never copied into the repository."""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from vedirect_async.decoder import Decoder
from vedirect_async.parser import ErrorEvent, ErrorKind, Parser, TextBlock
from vedirect_async.reading import UNAVAILABLE, Reading

WALL = datetime(2026, 1, 1, tzinfo=UTC)
BVM = "karioja-vedirect__bvm702.dump"
SMARTSOLAR = "karioja-vedirect__smartsolar_1.39.dump"
BLUESOLAR = "karioja-vedirect__bluesolar_1.23.dump"
REV3 = "KinDR007-VictronMPPT-ESPHOME__fake-smartsolar-mppt-150-70-rev3.derived.bin"
BMV712 = "KinDR007-VictronMPPT-ESPHOME__fake-bmv712.derived.bin"
IP22 = "KinDR007-VictronMPPT-ESPHOME__fake-bluesmart-ip22-0xa332.derived.bin"
ORION = "KinDR007-VictronMPPT-ESPHOME__fake-orion-xs-0xa3f0.derived.bin"


@dataclass(frozen=True)
class Expected:
    blocks: int  # checksum-valid text blocks
    readings: int
    product: str | None = None
    firmware: str | None = None


# Pinned per file. The .txt files are text renderings (CR stripped, checksum bytes replaced,
# or a hex viewer's output): no block in them can verify, so they give 0 readings.
EXPECTED: dict[str, Expected] = {
    BVM: Expected(906, 453, "BMV-700", "3.08"),
    SMARTSOLAR: Expected(493, 493, "SmartSolar MPPT 100/20", "1.39"),
    BLUESOLAR: Expected(248, 248, "BlueSolar MPPT 75/15", "1.23"),
    REV3: Expected(4, 2, "SmartSolar MPPT 150/70 rev2", "3.16"),
    BMV712: Expected(2, 1, "BMV-712 Smart", "4.08"),
    IP22: Expected(1, 1, "Blue Smart IP22 Charger 24/8", "3.42"),
    "KinDR007-VictronMPPT-ESPHOME__fake-bluesmart-ip65-0xa30a.derived.bin": Expected(
        2, 2, "Blue Smart IP65 Charger 12/25", "3.25"
    ),
    ORION: Expected(2, 2, "Smart BuckBoost 12V/12V-50A / Orion XS 12V/12V-50A", "1.12"),
    "KinDR007-VictronMPPT-ESPHOME__fake-smartsolar-mppt.derived.bin": Expected(
        1, 1, "SmartSolar MPPT 75/15", "1.56"
    ),
    "KinDR007-VictronMPPT-ESPHOME__smartsolar-mppt-example-pdus.derived.bin": Expected(
        6, 6, "SmartSolar MPPT 75/15", "1.56"
    ),
    "KinDR007-VictronMPPT-ESPHOME__smartsolar-mppt-example-pdus.txt": Expected(0, 0),
    "SignalK-vedirect-serial-usb__one.txt": Expected(0, 0),
    "SignalK-vedirect-serial-usb__sampleOutput.txt": Expected(0, 0),
    "ckeller42-vedirect-influx__history_mppt7515.txt": Expected(0, 0),
    "dbr-vedirect-rs__mppt_75_15.txt": Expected(0, 0),
}


@dataclass
class Run:
    """What one pass over a byte stream produced."""

    readings: list[Reading]
    blocks: list[TextBlock]  # the verified text blocks, as the parser frames them
    errors: list[ErrorEvent]
    emitted_at: list[int]  # index of the block on which each reading was emitted
    decoder: Decoder
    flushed: bool = False  # a reading only came out at end of input (held back)


LINE_BYTES_PER_S = 19200 / 10  # VE.Direct: 19200 baud, 8N1


def run(data: bytes, chunks: list[int] | None = None) -> Run:
    """Feed ``data`` through a decoder in the given chunk sizes, each stamped when its last byte
    would have arrived; by default line by line, where no chunk completes two text blocks, so
    the block each reading was emitted on is known (``emitted_at``, only then)."""
    decoder = Decoder("capture")
    blocks = [e for e in Parser().feed(data) if isinstance(e, TextBlock)]  # framing alone
    out = Run([], blocks, [], [], decoder)
    if chunks is None:
        pieces = data.splitlines(keepends=True)
    else:
        starts = itertools.accumulate(chunks, initial=0)
        pieces = [data[start : start + size] for start, size in zip(starts, chunks, strict=False)]
    pos = 0
    for piece in pieces:
        pos += len(piece)
        before = decoder.parser_stats.blocks_ok
        events = decoder.feed(piece, pos / LINE_BYTES_PER_S, WALL)
        done = decoder.parser_stats.blocks_ok
        out.errors += [e for e in events if isinstance(e, ErrorEvent)]
        readings = [e for e in events if isinstance(e, Reading)]
        out.readings += readings
        if chunks is None:
            assert done - before <= 1, "a line completed two text blocks"
            out.emitted_at += [done - 1] * len(readings)
    assert decoder.parser_stats.blocks_ok == len(blocks)
    last = decoder.flush(pos / LINE_BYTES_PER_S, WALL)
    if last is not None:
        out.readings.append(last)
        out.emitted_at.append(len(blocks) - 1)
        out.flushed = True
    return out


def key(reading: Reading) -> tuple[object, ...]:
    """Everything of a reading except its timestamps."""
    return (
        tuple(reading.values.items()),
        reading.raw,
        reading.pid,
        reading.product,
        reading.serial,
        reading.firmware,
    )


def random_chunks(total: int, seed: int) -> list[int]:
    rng = random.Random(seed)
    sizes: list[int] = []
    while sum(sizes) < total:
        sizes.append(rng.choice((1, 2, 3, 7, 11, rng.randint(1, 300), rng.randint(1, 5000))))
    return sizes


@pytest.fixture(params=sorted(EXPECTED))
def capture(request: pytest.FixtureRequest, captures_dir: Path) -> tuple[str, bytes]:
    name: str = request.param
    return name, (captures_dir / name).read_bytes()


def test_every_capture_is_pinned(captures_dir: Path) -> None:
    """Each file in the captures folder has pinned expectations here (none is forgotten)."""
    present = {p.name for p in captures_dir.iterdir() if p.name != "SOURCES.md"}
    assert present == set(EXPECTED)


def test_counts_and_identity(capture: tuple[str, bytes]) -> None:
    """Each capture gives its pinned number of valid blocks and readings, and its identity."""
    name, data = capture
    expected = EXPECTED[name]
    result = run(data)
    assert result.decoder.parser_stats.blocks_ok == expected.blocks
    assert len(result.readings) == expected.readings
    assert result.decoder.stats.readings == expected.readings
    for reading in result.readings:
        assert reading.product == expected.product
        assert reading.firmware == expected.firmware
    # clean captures: no block lost or left over by the assembler
    assert result.decoder.stats.incomplete == 0
    assert result.decoder.stats.orphans == 0
    assert result.decoder.stats.unknown_labels == 0
    assert result.decoder.stats.undecodable == 0


def test_chunking_never_changes_the_readings(capture: tuple[str, bytes]) -> None:
    """Whole, one byte at a time and three seeded random chunkings give identical readings."""
    _, data = capture
    whole = [key(r) for r in run(data).readings]
    assert [key(r) for r in run(data, [1] * len(data)).readings] == whole
    for seed in (1, 2, 3):
        assert [key(r) for r in run(data, random_chunks(len(data), seed)).readings] == whole


def test_each_reading_is_emitted_on_the_last_block_of_its_update(
    capture: tuple[str, bytes],
) -> None:
    """Proof of the update rule: a reading holds exactly the blocks from its PID block to the
    block it was emitted on, and the next block starts a new update (nothing held back)."""
    _, data = capture
    result = run(data)
    start = 0
    for reading, at in zip(result.readings, result.emitted_at, strict=True):
        blocks = result.blocks[start : at + 1]
        assert any(label == b"PID" for label, _ in blocks[0].fields)
        assert all(label != b"PID" for b in blocks[1:] for label, _ in b.fields)
        wire = [(k.decode(), v.decode("ascii")) for b in blocks for k, v in b.fields]
        assert list(reading.raw) == wire
        if at + 1 < len(result.blocks):
            assert any(label == b"PID" for label, _ in result.blocks[at + 1].fields)
        start = at + 1
    assert start == len(result.blocks)  # every block is in exactly one reading
    assert not result.flushed  # even the last update came out on its own last block


def test_bmv_capture_details(captures_dir: Path) -> None:
    """bvm702.dump: 453 two-block updates; 7 blocks end with the checksum byte ':'."""
    result = run((captures_dir / BVM).read_bytes())
    assert sum(1 for b in result.blocks if b.raw[-1:] == b":") == 7
    assert result.decoder.blocks_per_update == 2
    assert result.decoder.parser_stats.checksum_errors == 0
    first = result.readings[0]
    assert first.values["voltage"] == 12.065
    assert first.values["soc"] == 83.9
    assert first.values["consumed_ah"] == -65.473
    assert first.values["history_charged_energy"] == 85.27
    assert len(first.values) == 26


def test_mppt_split_capture_merges_both_halves(captures_dir: Path) -> None:
    """The 150/70 rev3 capture (HEX bursts between halves) gives whole, merged updates."""
    result = run((captures_dir / REV3).read_bytes())
    assert result.decoder.parser_stats.hex_ok == 14
    for reading in result.readings:
        assert {"voltage", "tracker_mode", "error", "yield_total", "day_sequence"} <= set(
            reading.values
        )
        assert reading.serial == "HQ2247EP3FN"


def _block_spans(data: bytes, blocks: list[TextBlock]) -> list[int]:
    """The offset in ``data`` of each verified block (HEX records only sit between blocks)."""
    spans, pos = [], 0
    for block in blocks:
        pos = data.index(block.raw, pos)
        spans.append(pos)
        pos += len(block.raw)
    return spans


def _damage(data: bytes, offset: int, block: TextBlock) -> bytes:
    """Flip the low bit of a digit of the block's first numeric value (a digit stays a digit)."""
    for label, value in block.fields:
        if value.lstrip(b"-").isdigit():
            inner = block.raw.index(b"\r\n" + label + b"\t" + value) + len(label) + 3
            at = offset + inner + len(value) - 1
            return data[:at] + bytes((data[at] ^ 1,)) + data[at + 1 :]
    raise AssertionError("no numeric field to damage")


@pytest.mark.parametrize(
    ("name", "index"),
    [
        (BVM, 0),  # main block of the very first update
        (BVM, 1),  # H block of the first update
        (BVM, 200),  # main block, steady state
        (BVM, 301),  # H block, steady state
        (BVM, 905),  # H block of the last update
        (SMARTSOLAR, 0),
        (SMARTSOLAR, 250),
        (SMARTSOLAR, 492),
        (BLUESOLAR, 100),
        (REV3, 1),  # ERR half of a split MPPT update
        (REV3, 2),  # PID half of the second update
    ],
)
def test_one_damaged_block_costs_exactly_its_update(
    captures_dir: Path, name: str, index: int
) -> None:
    """Flip one byte in one block: exactly that block is rejected, the update holding it is not
    emitted (not even its intact half), and every other reading is identical to the clean run."""
    data = (captures_dir / name).read_bytes()
    clean = run(data)
    offsets = _block_spans(data, clean.blocks)
    damaged = run(_damage(data, offsets[index], clean.blocks[index]))

    assert damaged.decoder.parser_stats.blocks_ok == clean.decoder.parser_stats.blocks_ok - 1
    assert (
        damaged.decoder.parser_stats.checksum_errors
        == clean.decoder.parser_stats.checksum_errors + 1
    )
    assert [b.raw for b in damaged.blocks] == [
        b.raw for i, b in enumerate(clean.blocks) if i != index
    ]
    lost = next(n for n, at in enumerate(clean.emitted_at) if at >= index)
    expected = [key(r) for n, r in enumerate(clean.readings) if n != lost]
    assert [key(r) for r in damaged.readings] == expected
    assert damaged.decoder.stats.incomplete + damaged.decoder.stats.orphans >= (
        1 if clean.decoder.blocks_per_update == 2 else 0
    )


def test_damage_in_the_checksum_marker_does_not_cost_the_next_update(captures_dir: Path) -> None:
    """A flipped byte in a block's ``Checksum`` label loses only that block's update."""
    data = (captures_dir / BVM).read_bytes()
    clean = run(data)
    offsets = _block_spans(data, clean.blocks)
    index = 100
    at = offsets[index] + len(clean.blocks[index].raw) - 5  # inside "Checksum"
    damaged = run(data[:at] + bytes((data[at] ^ 0x20,)) + data[at + 1 :])
    assert any(e.kind is ErrorKind.CHECKSUM for e in damaged.errors)
    lost = next(n for n, at in enumerate(clean.emitted_at) if at >= index)
    assert [key(r) for r in damaged.readings] == [
        key(r) for n, r in enumerate(clean.readings) if n != lost
    ]


def _first(captures_dir: Path, name: str) -> Reading:
    return run((captures_dir / name).read_bytes()).readings[0]


def test_newer_labels_from_real_devices_decode(captures_dir: Path) -> None:
    """MON, VS, H15/H16 (BMV-712), FWE + HC# + T ``---`` (Blue Smart), DC_IN_* + OR (Orion XS)
    from real frames decode to named, scaled values; none is left as unknown text."""
    bmv = _first(captures_dir, BMV712)
    assert bmv.values["monitor_mode"] == "battery monitor"
    assert bmv.values["aux_voltage"] == 0.034
    assert bmv.values["history_max_aux_voltage"] == 0.038
    ip22 = _first(captures_dir, IP22)
    assert ip22.values["temperature"] is UNAVAILABLE
    assert ip22.values["hc"] == "57825"
    assert ip22.firmware == "3.42"
    orion = _first(captures_dir, ORION)
    assert orion.values["dc_in_voltage"] == 12.62
    assert orion.values["off_reason"] == ("no input power", "remote input")
    assert orion.values["charger_state"] == "off"


def test_five_percent_damaged_blocks_cost_exactly_their_updates(captures_dir: Path) -> None:
    """bvm702 x4 with one byte damaged in 5 % of blocks (seeded): every update with an intact
    pair of blocks comes out whole and identical; no update with a damaged block comes out."""
    data = (captures_dir / BVM).read_bytes() * 4
    clean = run(data)
    offsets = _block_spans(data, clean.blocks)
    rng = random.Random(5)
    hit = sorted(rng.sample(range(len(clean.blocks)), len(clean.blocks) // 20))
    damaged_data = data
    for index in hit:
        damaged_data = _damage(damaged_data, offsets[index], clean.blocks[index])
    damaged = run(damaged_data)
    assert damaged.decoder.parser_stats.blocks_ok == clean.decoder.parser_stats.blocks_ok - len(hit)
    assert (
        damaged.decoder.parser_stats.checksum_errors
        == clean.decoder.parser_stats.checksum_errors + len(hit)
    )
    lost_updates = {index // 2 for index in hit}  # two blocks per update, from the first byte
    expected = [key(r) for n, r in enumerate(clean.readings) if n not in lost_updates]
    assert [key(r) for r in damaged.readings] == expected
    assert all(len(r.values) == 26 for r in damaged.readings)
