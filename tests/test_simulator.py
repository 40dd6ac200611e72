"""Simulator: generated streams, HEX records, corruption, replay, pacing, and the pty CLI."""

from __future__ import annotations

import asyncio
import itertools
import os
import select
import signal
import sys
import tty
from datetime import UTC, datetime
from pathlib import Path

import pytest

from vedirect_async.decoder import Decoder
from vedirect_async.hexframe import Command, RegisterMessage
from vedirect_async.parser import HexRecord, Parser, TextBlock, encode_block
from vedirect_async.reading import Reading
from vedirect_async.simulator import (
    CAPACITY_AH,
    KINDS,
    PtyLine,
    SimulatedDevice,
    async_record,
    open_stream,
    split_capture,
)

ROOT = Path(__file__).resolve().parent.parent
DAY = 86_400

Raw = dict[bytes, bytes]


def _fields(block: TextBlock) -> dict[str, str]:
    return {label.decode(): value.decode() for label, value in block.fields}


def _blocks(data: bytes) -> tuple[list[TextBlock], Parser]:
    parser = Parser()
    events = parser.feed(data)
    return [e for e in events if isinstance(e, TextBlock)], parser


@pytest.fixture(scope="module")
def bmv_day() -> list[tuple[Raw, Raw]]:
    """One simulated day of a BMV-712 (seed 7), parsed: (main block, H block) per second."""
    device = SimulatedDevice("bmv712", seed=7, start=datetime(2026, 6, 21, tzinfo=UTC))
    parser = Parser()
    updates: list[tuple[Raw, Raw]] = []
    for _ in range(DAY):
        main, history = parser.feed(device.next_second())
        assert isinstance(main, TextBlock)
        assert isinstance(history, TextBlock)
        updates.append((dict(main.fields), dict(history.fields)))
    assert parser.stats.checksum_errors == 0
    assert parser.stats.bytes_discarded == 0
    return updates


# -- generated streams --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "blocks_per_second", "first_labels"),
    [
        ("bmv712", 2, ["PID", "V", "VS", "I", "P", "CE", "SOC", "TTG", "Alarm", "Relay", "AR"]),
        ("smartshunt", 2, ["PID", "V", "VS", "I", "P", "CE", "SOC", "TTG", "Alarm", "AR", "BMV"]),
        ("mppt", 1, ["PID", "FW", "SER#", "V", "I", "VPV", "PPV", "CS", "MPPT", "OR", "ERR"]),
    ],
)
def test_each_kind_sends_its_blocks_every_second(
    kind: str, blocks_per_second: int, first_labels: list[str]
) -> None:
    """Every second parses into the device's block count with 0 errors, in real field order."""
    device = SimulatedDevice(kind, seed=1)
    parser = Parser()
    for _ in range(300):
        blocks = [e for e in parser.feed(device.next_second()) if isinstance(e, TextBlock)]
        assert len(blocks) == blocks_per_second
        assert list(_fields(blocks[0]))[: len(first_labels)] == first_labels
        for block in blocks:  # the fast template path gives exactly encode_block's bytes
            assert encode_block(block.fields) == block.raw
    assert parser.stats.checksum_errors == parser.stats.malformed == 0
    assert parser.stats.bytes_discarded == 0


@pytest.mark.parametrize(
    ("kind", "product"),
    [
        ("bmv712", "BMV-712 Smart"),
        ("smartshunt", "SmartShunt 500A/50mV"),
        ("mppt", "SmartSolar MPPT 100/20"),
    ],
)
def test_every_simulated_field_is_in_the_catalogue(kind: str, product: str) -> None:
    """The assembler makes one reading per second with no unknown or undecodable field."""
    device = SimulatedDevice(kind, seed=6)
    decoder = Decoder(kind)
    readings = []
    for second in range(200):
        for event in decoder.feed(device.next_second(), float(second), device.time):
            assert isinstance(event, Reading)
            readings.append(event)
    assert len(readings) == 200
    assert decoder.parser_stats.blocks_ok == decoder.stats.blocks  # text blocks only
    assert decoder.stats.unknown_labels == decoder.stats.undecodable == 0
    assert decoder.stats.incomplete == decoder.stats.orphans == 0
    assert {r.product for r in readings} == {product}


def test_bmv_and_smartshunt_identity_fields() -> None:
    """BMV-712 and SmartShunt carry their real PID, model, firmware; only the BMV has Relay."""
    bmv, h_block = _blocks(SimulatedDevice("bmv712", seed=2).next_second())[0]
    shunt = _blocks(SimulatedDevice("smartshunt", seed=2).next_second())[0][0]
    b, s = _fields(bmv), _fields(shunt)
    assert (b["PID"], b["BMV"], b["FW"], b["MON"]) == ("0xA381", "712 Smart", "0408", "0")
    assert (s["PID"], s["BMV"], s["FW"]) == ("0xA389", "SmartShunt 500A/50mV", "0405")
    assert "Relay" in b
    assert "Relay" not in s
    assert "MON" not in s
    labels = list(_fields(h_block))
    assert labels == [f"H{n}" for n in (*range(1, 13), 15, 16, 17, 18)]


def test_bmv_day_values_are_plausible(bmv_day: list[tuple[Raw, Raw]]) -> None:
    """A day: SOC in 0..100 % and = (capacity + CE) / capacity, V in 12 V range, P = V * I."""
    capacity_mah = CAPACITY_AH * 1000
    for main, _history in bmv_day:
        soc, ce = int(main[b"SOC"]), int(main[b"CE"])
        volts, amps = int(main[b"V"]) / 1000, int(main[b"I"]) / 1000
        assert 0 <= soc <= 1000
        assert ce <= 0
        assert abs(soc - 1000 * (capacity_mah + ce) / capacity_mah) <= 1
        assert 10.5 <= volts <= 15.0
        assert abs(int(main[b"P"]) - volts * amps) <= 1
        if amps < 0:  # TTG counts down while discharging, -1 (infinite) otherwise
            assert int(main[b"TTG"]) >= 0
        else:
            assert main[b"TTG"] == b"-1"


def test_bmv_day_discharges_at_night_and_charges_by_day(
    bmv_day: list[tuple[Raw, Raw]],
) -> None:
    """Night hours draw from the battery, midday charges it, and CE integrates the current."""

    def mean_current(first_hour: int, last_hour: int) -> float:
        rows = bmv_day[first_hour * 3600 : last_hour * 3600]
        return sum(int(main[b"I"]) for main, _ in rows) / len(rows) / 1000

    assert mean_current(0, 5) < -0.5
    assert mean_current(9, 15) > 2.0
    # Between two seconds CE moves by the current over one second (charge current times
    # the charge efficiency), unless the monitor synchronised to 100 %.
    for (before, _), (after, _) in itertools.pairwise(bmv_day):
        step = int(after[b"CE"]) - int(before[b"CE"])
        if after[b"CE"] == b"0":
            continue
        assert abs(step - int(after[b"I"]) / 3600 * (0.95 if int(after[b"I"]) > 0 else 1)) <= 2


def test_bmv_day_history_counters_grow(bmv_day: list[tuple[Raw, Raw]]) -> None:
    """H6 (Ah drawn) only falls, H17/H18 (0.01 kWh) only grow, H7/H8 bound every V seen."""
    first, last = bmv_day[0][1], bmv_day[-1][1]
    assert int(last[b"H6"]) < int(first[b"H6"])
    assert int(last[b"H17"]) > int(first[b"H17"])
    assert int(last[b"H18"]) > int(first[b"H18"])
    for (_, h0), (m1, h1) in itertools.pairwise(bmv_day):
        assert int(h1[b"H6"]) <= int(h0[b"H6"])
        assert int(h1[b"H17"]) >= int(h0[b"H17"])
        assert int(h1[b"H18"]) >= int(h0[b"H18"])
        assert int(h1[b"H7"]) <= int(m1[b"V"]) <= int(h1[b"H8"])
        assert int(h1[b"H1"]) <= int(m1[b"CE"])  # deepest discharge is at least this deep
        if int(h1[b"H10"]) > int(h0[b"H10"]):  # a synchronisation resets SOC and H9
            assert m1[b"SOC"] == b"1000"
            assert h1[b"H9"] == b"0"
        elif h0[b"H9"] != b"0":
            assert int(h1[b"H9"]) == int(h0[b"H9"]) + 1


def test_mppt_follows_the_sun_through_charger_states() -> None:
    """An MPPT day: off at night, bulk/absorption/float by day, yields grow, a new day at dawn."""
    device = SimulatedDevice("mppt", seed=5, start=datetime(2026, 6, 21, tzinfo=UTC))
    parser = Parser()
    states: set[bytes] = set()
    noon_power = 0
    yields: list[int] = []
    new_day_hours: list[int] = []
    previous: Raw = {}
    for second in range(DAY):
        (block,) = (e for e in parser.feed(device.next_second()) if isinstance(e, TextBlock))
        f = dict(block.fields)
        hour = second // 3600
        states.add(f[b"CS"])
        if hour in (1, 2, 3):  # night: off, for lack of input power
            assert (f[b"CS"], f[b"PPV"], f[b"OR"], f[b"MPPT"]) == (b"0", b"0", b"0x00000001", b"0")
        if hour == 13:
            noon_power = max(noon_power, int(f[b"PPV"]))
        if int(f[b"PPV"]) > 0:
            assert int(f[b"VPV"]) > int(f[b"V"])  # panels above the battery while producing
        if previous and f[b"HSDS"] != previous[b"HSDS"]:
            new_day_hours.append(hour)
            assert f[b"H22"] == previous[b"H20"]  # today's yield becomes yesterday's
            assert f[b"H20"] == b"0"
        yields.append(int(f[b"H19"]))
        previous = f
    assert parser.stats.checksum_errors == 0
    assert {b"0", b"3", b"4", b"5"} <= states
    assert 100 <= noon_power <= 300
    assert len(new_day_hours) == 1
    assert 4 <= new_day_hours[0] <= 7
    assert yields == sorted(yields)
    assert yields[-1] > yields[0]


def test_same_seed_same_bytes_other_seed_other_bytes() -> None:
    """A seed makes every option's output reproducible; another seed changes it."""
    a = SimulatedDevice("bmv712", seed=11, hex_records=True, corrupt=0.01)
    b = SimulatedDevice("bmv712", seed=11, hex_records=True, corrupt=0.01)
    c = SimulatedDevice("bmv712", seed=12, hex_records=True, corrupt=0.01)
    first = [a.next_second() for _ in range(200)]
    assert first == [b.next_second() for _ in range(200)]
    assert first != [c.next_second() for _ in range(200)]


def test_unknown_kind_and_bad_options_are_rejected() -> None:
    """An unknown kind or an impossible option is a ValueError naming what is expected."""
    with pytest.raises(ValueError, match="bmv712, mppt, smartshunt"):
        SimulatedDevice("bmv702")
    with pytest.raises(ValueError, match="between 0 and 1"):
        SimulatedDevice("mppt", corrupt=1.5)
    with pytest.raises(ValueError, match="bmv712, mppt, smartshunt or the path"):
        open_stream("no-such-device-or-file")
    with pytest.raises(ValueError, match="speed"):
        open_stream("bmv712", speed=0)


# -- HEX records ----------------------------------------------------------------------------


def test_async_record_matches_the_protocol_vectors() -> None:
    """Async records encode as the documented vectors and decode back to their values."""
    assert async_record(0x0201, 5) == b":A0102000543\n"  # device state 5 (float)
    assert async_record(0xEDD7, 0.2) == b":AD7ED00020085\n"  # charger current 0.2 A
    (record,) = Parser().feed(async_record(0xED8F, -12.3))  # signed: two's complement
    assert isinstance(record, HexRecord)
    message = RegisterMessage.parse(record.digits)
    assert message.command is Command.ASYNC
    assert message.decoded().value == -12.3


@pytest.mark.parametrize("kind", KINDS)
def test_hex_records_are_interleaved_without_disturbing_the_text(kind: str) -> None:
    """With HEX records on, they all verify and the text blocks are the clean run's, unchanged."""
    clean, _ = _blocks(b"".join(SimulatedDevice(kind, seed=3).iter_seconds(600)))
    mixed_bytes = b"".join(SimulatedDevice(kind, seed=3, hex_records=True).iter_seconds(600))
    parser = Parser()
    events = parser.feed(mixed_bytes)
    records = [e for e in events if isinstance(e, HexRecord)]
    assert len(records) > 200
    messages = [RegisterMessage.parse(r.digits) for r in records]
    assert {m.command for m in messages} == {Command.ASYNC}
    expected = {0xED8D, 0xED8F, 0x0FFF, 0xEEFF} if kind != "mppt" else {0xEDBB, 0xEDBC, 0x0201}
    assert expected <= {m.register for m in messages}
    assert all(m.decoded().value is not None for m in messages)  # in range for the register
    assert parser.stats.hex_bad == parser.stats.checksum_errors == 0
    assert [e for e in events if isinstance(e, TextBlock)] == clean
    # some records really interrupt a block (not only sit between blocks)
    inside = sum(
        1 for chunk in mixed_bytes.split(b"Checksum\t") if b":A" in chunk.split(b"\r\n", 1)[-1]
    )
    assert inside > 0


# -- corruption ----------------------------------------------------------------------------


@pytest.mark.parametrize(("rate", "hex_records"), [(0.05, False), (0.002, False), (0.002, True)])
def test_corruption_is_counted_and_never_accepted(rate: float, hex_records: bool) -> None:
    """Corrupted bytes show up as parser errors; every accepted block is a clean-run block."""
    seconds = 1500
    clean, _ = _blocks(b"".join(SimulatedDevice("bmv712", seed=21).iter_seconds(seconds)))
    noisy = SimulatedDevice("bmv712", seed=21, hex_records=hex_records, corrupt=rate)
    data = b"".join(noisy.iter_seconds(seconds))
    accepted, parser = _blocks(data)
    assert parser.stats.checksum_errors > 0
    assert set(accepted) <= set(clean)
    assert len(accepted) < len(clean)
    if rate < 0.01:  # at a low rate most blocks still arrive
        assert len(accepted) > len(clean) // 2


def test_corruption_rate_is_the_requested_fraction_of_bytes() -> None:
    """About `corrupt` of all bytes differ from the clean stream."""
    clean = b"".join(SimulatedDevice("mppt", seed=8).iter_seconds(500))
    noisy = b"".join(SimulatedDevice("mppt", seed=8, corrupt=0.01).iter_seconds(500))
    assert len(noisy) == len(clean)
    changed = sum(a != b for a, b in zip(clean, noisy, strict=True))
    assert 0.008 < changed / len(clean) < 0.012


# -- replay ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "blocks_per_second"),
    [
        ("karioja-vedirect__bvm702.dump", 2),
        ("karioja-vedirect__smartsolar_1.39.dump", 1),
        ("KinDR007-VictronMPPT-ESPHOME__fake-smartsolar-mppt-150-70-rev3.derived.bin", 2),
    ],
)
def test_replay_gives_back_the_capture_one_update_per_second(
    captures_dir: Path, name: str, blocks_per_second: int
) -> None:
    """A replayed capture yields the file's bytes, split into whole updates, then loops."""
    data = (captures_dir / name).read_bytes()
    seconds = split_capture(data)
    assert b"".join(seconds) == data
    device = SimulatedDevice.from_capture(data, name=name)
    replayed = [device.next_second() for _ in seconds]
    assert replayed == seconds
    assert device.next_second() == seconds[0]  # loops like a device that keeps talking
    expected, _ = _blocks(data)
    assert _blocks(b"".join(replayed))[0] == expected
    middle = seconds[1:-1] or seconds  # a capture may begin or end inside a block
    counts = {len(_blocks(s)[0]) for s in middle}
    assert counts == {blocks_per_second}


def test_replay_without_blocks_is_refused() -> None:
    """Bytes with no text block cannot be replayed."""
    with pytest.raises(ValueError, match=r"no VE\.Direct text block"):
        SimulatedDevice.from_capture(b"garbage without blocks", name="x.bin")


# -- paced stream --------------------------------------------------------------------------


async def test_open_stream_delivers_seconds_in_order_at_speed() -> None:
    """At speed 200, 40 seconds arrive in order, equal to the generator's, no faster than paced."""
    expected = list(SimulatedDevice("smartshunt", seed=4).iter_seconds(40))
    loop = asyncio.get_running_loop()
    started = loop.time()
    got: list[bytes] = []

    async def collect() -> None:
        async for chunk in open_stream("smartshunt", speed=200, seed=4):
            got.append(chunk)
            if len(got) == 40:
                return

    await asyncio.wait_for(collect(), timeout=5)
    assert got == expected
    assert loop.time() - started >= 39 / 200  # absolute schedule: chunk n at n / speed


async def test_open_stream_replays_a_capture_file(captures_dir: Path) -> None:
    """A capture path replays through the paced stream as the file's updates."""
    path = captures_dir / "karioja-vedirect__bvm702.dump"
    seconds = split_capture(path.read_bytes())
    got: list[bytes] = []

    async def collect() -> None:
        async for chunk in open_stream(str(path), speed=1000):
            got.append(chunk)
            if len(got) == 5:
                return

    await asyncio.wait_for(collect(), timeout=5)
    assert got == seconds[:5]


# -- command line: pty and stdout ------------------------------------------------------------


async def _simulate(*args: str) -> asyncio.subprocess.Process:
    """Start `python -m vedirect_async simulate ARGS` with piped stdout and stderr."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "vedirect_async",
        "simulate",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


async def test_simulate_pty_serves_blocks_and_stops_on_sigterm(tmp_path: Path) -> None:
    """`simulate --pty --link` prints the pty path, serves valid blocks, exits 0 on SIGTERM."""
    link_path = tmp_path / "ttyVE"
    link_path.symlink_to("/dev/pts/stale-from-a-crashed-run")  # replaced, not an error
    proc = await _simulate(
        "bmv712", "--pty", "--link", str(link_path), "--speed", "20", "--seed", "1"
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), timeout=10)
        path = line.decode().strip()
        assert path.startswith("/dev/pts/")
        assert os.readlink(link_path) == path
        fd = os.open(link_path, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
        loop = asyncio.get_running_loop()
        parser = Parser()
        blocks: list[TextBlock] = []
        enough = asyncio.Event()

        def readable() -> None:
            with_data = os.read(fd, 4096)
            blocks.extend(e for e in parser.feed(with_data) if isinstance(e, TextBlock))
            if len(blocks) >= 6:
                enough.set()

        loop.add_reader(fd, readable)
        try:
            await asyncio.wait_for(enough.wait(), timeout=10)
        finally:
            loop.remove_reader(fd)
            os.close(fd)
        assert parser.stats.checksum_errors == 0
        assert {_fields(b).get("PID") for b in blocks} >= {"0xA381"}
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), timeout=2) == 0
        assert not os.path.lexists(link_path)  # noqa: ASYNC240 -- its own link goes on exit
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_simulate_to_stdout_makes_a_capture(tmp_path: Path) -> None:
    """`simulate mppt --duration 30 --speed inf` writes 30 seconds of raw blocks to stdout."""
    proc = await _simulate("mppt", "--duration", "30", "--speed", "inf", "--seed", "9")
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=20)
    assert proc.returncode == 0
    assert out == b"".join(SimulatedDevice("mppt", seed=9).iter_seconds(30))


async def test_simulate_rejects_an_unknown_kind() -> None:
    """An unknown kind exits 2 with one line naming the valid kinds."""
    proc = await _simulate("bmv999")
    out, err = await asyncio.wait_for(proc.communicate(), timeout=20)
    assert proc.returncode == 2
    assert out == b""
    assert b"bmv712, mppt, smartshunt" in err


async def test_simulate_pty_stops_by_itself_after_duration() -> None:
    """`--duration` ends a pty run on its own (exit 0) once its device time has elapsed."""
    proc = await _simulate("smartshunt", "--pty", "--duration", "3", "--speed", "20")
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), timeout=10)
        assert line.startswith(b"/dev/pts/")
        assert await asyncio.wait_for(proc.wait(), timeout=10) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_simulate_stdout_stops_on_sigint() -> None:
    """SIGINT (Ctrl-C) stops an endless stdout run with exit 0."""
    proc = await _simulate("mppt", "--speed", "50")
    try:
        assert proc.stdout is not None
        first = await asyncio.wait_for(proc.stdout.readuntil(b"HSDS\t"), timeout=10)
        assert first.startswith(b"\r\nPID\t0xA05F")
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), timeout=2) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_simulate_never_replaces_a_regular_file_with_its_link(tmp_path: Path) -> None:
    """`--link` onto an existing regular file exits 2 and leaves the file alone."""
    precious = tmp_path / "data.csv"
    precious.write_text("keep me\n")
    proc = await _simulate("bmv712", "--pty", "--link", str(precious))
    out, err = await asyncio.wait_for(proc.communicate(), timeout=10)
    assert proc.returncode == 2
    assert out == b""
    assert b"not a symlink" in err
    assert precious.read_text() == "keep me\n"


def _read_exactly(fd: int, count: int) -> bytes:
    """Read `count` bytes from a non-blocking fd, waiting for readability (2 s at most)."""
    data = b""
    while len(data) < count:
        readable, _, _ = select.select([fd], [], [], 2.0)
        assert readable, f"only {data!r} arrived"
        data += os.read(fd, count - len(data))
    return data


def test_pty_line_discards_what_nobody_read_for_seconds() -> None:
    """Unread bytes older than `keep` are dropped before a write; a reader keeping up loses none."""
    master, slave = os.openpty()
    try:
        tty.setraw(slave)
        os.set_blocking(master, False)
        os.set_blocking(slave, False)
        now = [0.0]
        line = PtyLine(master, slave, keep=2.0, clock=lambda: now[0])
        line.write(b"stale")  # t = 0, and nobody reads it
        assert select.select([slave], [], [], 2.0)[0]  # the kernel has queued it
        now[0] = 10.0
        line.write(b"fresh")  # the queue holds bytes older than 2 s: they go first
        now[0] = 10.5
        line.write(b"+more")  # written 0.5 s after "fresh", which is still unread: kept
        assert _read_exactly(slave, 10) == b"fresh+more"
        assert line.discarded == 5
        assert not select.select([slave], [], [], 0)[0]  # nothing else queued
    finally:
        os.close(master)
        os.close(slave)
