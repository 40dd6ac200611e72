"""The serial reader on a real pseudo-terminal: readings, unplug/replug, open failures."""

from __future__ import annotations

import asyncio
import errno
import logging
from pathlib import Path

import pytest
import serial

from vedirect_async.config import WatchdogConfig
from vedirect_async.hub import ReaderState
from vedirect_async.parser import encode_block
from vedirect_async.session import describe_open_error

from .pty_device import PtyDevice, bmv_block, start_reader, wait_until

FAST = WatchdogConfig(silence_timeout=5, invalid_timeout=5, backoff_initial=0.02, backoff_max=0.1)


async def test_reader_on_pty_publishes_decoded_readings(
    device: PtyDevice, running: list[asyncio.Task[None]]
) -> None:
    """Blocks written into a pty reached through a by-id style link arrive as readings."""
    hub, _reader = await start_reader(str(device.link), FAST, running)
    sub = hub.subscribe("test")
    device.stream(bmv_block)
    reading = await asyncio.wait_for(sub.get(), 5)
    assert reading.device == "bmv"
    assert reading.values["soc"] == pytest.approx(87.3)
    assert reading.values["current"] == pytest.approx(-3.2)
    for _ in range(5):
        await asyncio.wait_for(sub.get(), 5)
    state = hub.device("bmv")
    assert state.state is ReaderState.READING
    assert state.readings >= 6
    assert state.parser.blocks_ok >= 6
    assert state.parser.checksum_errors == 0
    assert state.last_byte is not None
    assert state.last_reading is not None


async def test_unplug_then_replug_at_same_path_reads_again(
    device: PtyDevice, running: list[asyncio.Task[None]], caplog: pytest.LogCaptureFixture
) -> None:
    """Closing the pty gives connection_lost, the reader backs off, and reads the new pty."""
    caplog.set_level(logging.INFO, logger="vedirect_async")
    hub, reader = await start_reader(str(device.link), FAST, running)
    sub = hub.subscribe("test")
    device.stream(bmv_block)
    await asyncio.wait_for(sub.get(), 5)

    device.stop()
    device.unplug()
    state = hub.device("bmv")
    await wait_until(lambda: state.state is ReaderState.RECONNECTING, reader.changed)
    assert "lost" in state.reason or "not found" in state.reason
    # While it is gone, reopening fails ("not found") a few times, quietly.
    await wait_until(lambda: "not found" in state.reason, reader.changed)

    device.plug()
    await wait_until(lambda: reader.opened_at is not None, reader.changed)
    device.stream(bmv_block)
    while sub.get_nowait() is not None:
        pass
    await asyncio.wait_for(sub.get(), 5)
    await wait_until(lambda: state.state is ReaderState.READING, reader.changed, within=1)
    assert reader.sessions == 2
    assert state.restarts == 1
    assert state.reason == ""
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "lost" in warnings[0].getMessage()
    assert "bmv:" in warnings[0].getMessage()
    assert any("reading again" in r.getMessage() for r in caplog.records)


async def test_missing_port_warns_once_then_retries_quietly(
    tmp_path: Path, running: list[asyncio.Task[None]], caplog: pytest.LogCaptureFixture
) -> None:
    """A port that does not exist: one WARNING naming it, then DEBUG repeats with backoff."""
    caplog.set_level(logging.DEBUG, logger="vedirect_async")
    port = str(tmp_path / "ttyUSB9")
    hub, reader = await start_reader(port, FAST, running, name="mppt", wait_open=False)
    failures = 0

    def count() -> bool:
        nonlocal failures
        failures += 1
        return failures >= 4

    await wait_until(count, reader.changed)
    lines = [r for r in caplog.records if "not found" in r.getMessage()]
    assert [r.levelno for r in lines[:3]] == [logging.WARNING, logging.DEBUG, logging.DEBUG]
    assert lines[0].getMessage().startswith(f"mppt: port {port} not found")
    state = hub.device("mppt")
    assert state.state is ReaderState.RECONNECTING
    assert reader.sessions == 0


async def test_regular_file_is_reported_as_not_a_serial_port(
    tmp_path: Path, running: list[asyncio.Task[None]]
) -> None:
    """The wrong kind of path (a plain file) is reported as such and retried."""
    path = tmp_path / "not-a-tty"
    path.write_bytes(b"")
    hub, reader = await start_reader(str(path), FAST, running, wait_open=False)
    state = hub.device("bmv")
    await wait_until(lambda: bool(state.reason), reader.changed)
    assert state.reason == f"{path} is not a serial port"


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (
            serial.SerialException(
                errno.EACCES,
                "could not open port /dev/ttyUSB0: [Errno 13] Permission denied: '/dev/ttyUSB0'",
            ),
            "permission denied opening /dev/ttyUSB0: add the service user to the 'dialout' "
            "group (sudo usermod -aG dialout USER, then log in again)",
        ),
        (
            serial.SerialException(
                errno.ENOENT,
                "could not open port /dev/ttyUSB0: [Errno 2] No such file or directory",
            ),
            "port /dev/ttyUSB0 not found (unplugged? /dev/serial/by-id/... paths survive "
            "replugging)",
        ),
        (
            serial.SerialException(errno.EBUSY, "could not open port: Device or resource busy"),
            "port /dev/ttyUSB0 is busy (in use by another process?)",
        ),
        (
            ValueError("Not a valid baudrate: 7"),
            "cannot open /dev/ttyUSB0: Not a valid baudrate: 7",
        ),
    ],
)
def test_open_errors_are_one_clear_line(exc: Exception, expected: str) -> None:
    """Each open failure becomes one line saying what is wrong and what to do."""
    assert describe_open_error("/dev/ttyUSB0", exc) == expected


async def test_feed_contains_exceptions_and_keeps_reading(
    device: PtyDevice, running: list[asyncio.Task[None]], caplog: pytest.LogCaptureFixture
) -> None:
    """An exception while handling bytes is logged and skipped; later readings still arrive."""
    hub, _reader = await start_reader(str(device.link), FAST, running)
    sub = hub.subscribe("test")
    exploded = 0

    def explode(reading: object) -> None:
        nonlocal exploded
        exploded += 1
        if exploded == 1:
            raise RuntimeError("boom")

    # A listener that raises is contained by the hub; a consumer bug deeper in the path is
    # contained by the reader: make publish itself fail once.
    publish = hub.publish

    def failing_publish(reading: object) -> None:
        explode(reading)
        publish(reading)  # type: ignore[arg-type]

    hub.publish = failing_publish  # type: ignore[method-assign]
    device.stream(bmv_block)
    await asyncio.wait_for(sub.get(), 5)
    await asyncio.wait_for(sub.get(), 5)
    assert exploded >= 3
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert errors[0].getMessage().startswith("bmv: error handling")
    assert errors[0].exc_info is not None


async def test_simulator_port_reads_through_the_same_path(
    running: list[asyncio.Task[None]],
) -> None:
    """simulator:bmv712 feeds the same parser/assembler/hub path as a serial port."""
    hub, _reader = await start_reader("simulator:bmv712", FAST, running)
    sub = hub.subscribe("test")
    reading = await asyncio.wait_for(sub.get(), 5)
    assert reading.device == "bmv"
    assert reading.product is not None
    assert "BMV" in reading.product
    state = hub.device("bmv")
    assert state.state is ReaderState.READING
    assert state.parser.blocks_ok >= 2


async def test_unknown_simulator_kind_is_one_clear_reason(
    running: list[asyncio.Task[None]],
) -> None:
    """simulator:nope fails like a missing port: a reason naming it, retried with backoff."""
    hub, reader = await start_reader("simulator:nope", FAST, running, wait_open=False)
    state = hub.device("bmv")
    await wait_until(lambda: state.state is ReaderState.RECONNECTING, reader.changed)
    assert state.reason.startswith("simulator 'nope' unavailable: ")


async def test_bad_blocks_and_unknown_labels_are_logged_once_not_per_block(
    device: PtyDevice, running: list[asyncio.Task[None]], caplog: pytest.LogCaptureFixture
) -> None:
    """Corrupt blocks are skipped and counted with one log line; a new label is named once."""
    caplog.set_level(logging.INFO, logger="vedirect_async")
    hub, _ = await start_reader(str(device.link), FAST, running)
    sub = hub.subscribe("test")

    def with_unknown(n: int) -> bytes:
        # every third block lost: a loss drops the update in progress, so two good blocks in
        # a row are needed for the reader to learn the update size and publish
        if n % 3 == 2:
            block = bmv_block(n)
            return block[:-1] + bytes([(block[-1] + 1) % 256])  # wrong checksum byte
        return encode_block([(b"PID", b"0xA389"), (b"V", b"%d" % (12000 + n)), (b"XYZ", b"42")])

    device.stream(with_unknown)
    for _ in range(10):
        reading = await asyncio.wait_for(sub.get(), 5)
        assert reading.values["XYZ"] == "42"
    state = hub.device("bmv")
    assert state.parser.checksum_errors >= 4
    assert state.unknown_labels >= 10
    messages = [r.getMessage() for r in caplog.records]
    assert len([m for m in messages if "checksum" in m]) == 1
    assert [m for m in messages if "XYZ" in m] == [
        "bmv: label(s) not in the catalogue, kept as text: XYZ"
    ]
