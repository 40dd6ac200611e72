"""The watchdog: silent, garbled and stuck readers; the pure decision; the reopen backoff."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable

import pytest

from vedirect_async.backoff import Backoff
from vedirect_async.config import WatchdogConfig
from vedirect_async.hub import DeviceState, ReaderState
from vedirect_async.watchdog import check

from .pty_device import PtyDevice, bmv_block, start_reader, wait_until

CFG = WatchdogConfig(silence_timeout=10, invalid_timeout=30, stuck_timeout=0)


def state_with(**values: object) -> DeviceState:
    state = DeviceState("bmv", "/dev/ttyUSB0")
    for key, value in values.items():
        setattr(state, key, value)
    return state


@pytest.mark.parametrize(
    ("values", "now", "restart", "next_check"),
    [
        ({}, 5.0, None, 10.0),  # just opened, nothing yet: wait for the silence deadline
        ({}, 10.0, ReaderState.SILENT, 10.0),  # nothing at all for silence_timeout
        ({"last_byte": 9.0, "last_reading": 8.0}, 15.0, None, 19.0),
        ({"last_byte": 29.0}, 30.0, ReaderState.INVALID, 30.0),  # bytes, never a reading
        ({"last_byte": 39.0, "last_reading": 9.0}, 39.5, ReaderState.INVALID, 39.5),
        ({"last_byte": 12.0, "last_reading": 12.0}, 21.9, None, 22.0),
        ({"last_byte": -50.0, "last_reading": -50.0}, 1.0, None, 10.0),  # old session's times
    ],
)
def test_check_decides_restart_and_next_deadline(
    values: dict[str, float], now: float, restart: ReaderState | None, next_check: float
) -> None:
    """check(): silence beats invalid; times before the session opened do not count."""
    verdict = check(state_with(**values), 0.0, now, CFG)
    assert verdict.restart is restart
    assert verdict.next_check == pytest.approx(next_check)
    assert bool(verdict.reason) is (restart is not None)


def test_check_stuck_only_when_enabled_and_judged_on_readings() -> None:
    """Identical readings for stuck_timeout flag 'stuck' (never a restart); off by default."""
    identical = {"last_byte": 100.0, "last_reading": 100.0, "identical_since": 30.0}
    stuck_cfg = WatchdogConfig(silence_timeout=10, invalid_timeout=30, stuck_timeout=60)
    assert not check(state_with(identical_readings=70, **identical), 0.0, 100.5, CFG).stuck
    verdict = check(state_with(identical_readings=70, **identical), 0.0, 100.5, stuck_cfg)
    assert verdict.stuck
    assert verdict.restart is None
    changing = check(state_with(identical_readings=0, **identical), 0.0, 100.5, stuck_cfg)
    assert not changing.stuck


def test_backoff_doubles_with_jitter_up_to_the_cap_and_resets() -> None:
    """Delays grow about 2x per failure within +-20 %, never exceed the cap, reset to initial."""
    backoff = Backoff(1.0, 30.0, random.Random(1))
    delays = [backoff.next() for _ in range(10)]
    for i, delay in enumerate(delays[:5]):
        assert 0.8 * 2**i <= delay <= 1.2 * 2**i
    assert all(d <= 30.0 for d in delays)
    assert delays[-1] >= 24.0
    backoff.reset()
    assert 0.8 <= backoff.next() <= 1.2


async def test_silent_device_is_restarted_within_silence_timeout(
    device: PtyDevice, running: list[asyncio.Task[None]], caplog: pytest.LogCaptureFixture
) -> None:
    """Readings then silence: the reader is closed and reopened after silence_timeout."""
    config = WatchdogConfig(
        silence_timeout=0.3, invalid_timeout=5, backoff_initial=0.01, backoff_max=0.02
    )
    hub, reader = await start_reader(str(device.link), config, running, watchdog=True)
    sub = hub.subscribe("t")
    device.stream(bmv_block)
    await asyncio.wait_for(sub.get(), 5)
    device.stop()
    went_quiet = time.monotonic()
    await wait_until(lambda: reader.sessions >= 2, reader.changed)
    elapsed = time.monotonic() - went_quiet
    assert 0.25 <= elapsed <= 1.5
    state = hub.device("bmv")
    assert state.restarts == 1
    assert "no bytes for" in state.reason
    warning = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warning) == 1
    assert warning[0].startswith("bmv: no bytes for")
    # A silent device keeps being restarted, quietly (DEBUG), and reads again when it talks.
    await wait_until(lambda: reader.sessions >= 3, reader.changed)
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1
    device.stream(bmv_block)
    await wait_until(lambda: state.state is ReaderState.READING, reader.changed)


def garbage(n: int) -> bytes:
    return random.Random(n).randbytes(64).replace(b"\r\n", b"..")


def hex_only(n: int) -> bytes:
    return b":A0102000543\n"  # a device stuck sending HEX records, no text blocks


def wrong_baud(n: int) -> bytes:
    return bytes(b | 0x80 for b in bmv_block(n))  # what 9600-vs-19200 garbling looks like


@pytest.mark.parametrize("make", [garbage, hex_only, wrong_baud])
async def test_bytes_without_valid_readings_restart_after_invalid_timeout(
    device: PtyDevice, running: list[asyncio.Task[None]], make: Callable[[int], bytes]
) -> None:
    """Bytes keep coming but none form a valid reading: restart after invalid_timeout."""
    config = WatchdogConfig(
        silence_timeout=0.3, invalid_timeout=0.6, backoff_initial=0.01, backoff_max=0.02
    )
    hub, reader = await start_reader(str(device.link), config, running, watchdog=True)
    opened = time.monotonic()
    device.stream(make, interval=0.02)
    await wait_until(lambda: reader.sessions >= 2, reader.changed)
    assert 0.55 <= time.monotonic() - opened <= 2.0
    state = hub.device("bmv")
    assert "no valid reading" in state.reason, state.reason
    assert state.readings == 0
    assert state.parser.bytes_in > 0


async def test_identical_readings_are_counted_and_logged_not_restarted(
    device: PtyDevice, running: list[asyncio.Task[None]], caplog: pytest.LogCaptureFixture
) -> None:
    """stuck_timeout on: identical readings flag the device once; the reader is not restarted."""
    config = WatchdogConfig(
        silence_timeout=5, invalid_timeout=5, stuck_timeout=0.3, backoff_initial=0.01
    )
    hub, reader = await start_reader(str(device.link), config, running, watchdog=True)
    state = hub.device("bmv")
    device.stream(lambda n: bmv_block(0), interval=0.01)
    sub = hub.subscribe("t")

    async def until(stuck: bool) -> None:
        async with asyncio.timeout(5):
            while state.stuck is not stuck:
                await sub.get()

    await until(stuck=True)
    assert state.stuck_events == 1
    assert reader.sessions == 1
    assert state.restarts == 0
    assert state.state is ReaderState.READING
    stuck_logs = [r for r in caplog.records if "identical" in r.getMessage()]
    assert len(stuck_logs) == 1
    assert stuck_logs[0].levelno == logging.WARNING
    device.stream(bmv_block, interval=0.01)  # values move again
    await until(stuck=False)
    assert state.stuck_events == 1
