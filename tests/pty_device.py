"""A fake VE.Direct device on a real pseudo-terminal, reachable through a stable symlink.

The reader under test opens ``link`` (as it would a ``/dev/serial/by-id/...`` path). The test
writes into the pty's master side. ``unplug()`` closes the pty (the reader gets
``connection_lost``, the link is removed); ``plug()`` makes a new pty behind the same link.
A pty ignores the baud rate, so :meth:`stream` paces its writes itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tty
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from vedirect_async.config import DeviceConfig, WatchdogConfig
from vedirect_async.hub import Hub
from vedirect_async.parser import encode_block
from vedirect_async.session import DeviceSession
from vedirect_async.watchdog import Watchdog

__all__ = ["PtyDevice", "bmv_block", "device", "running", "start_reader", "wait_until"]


def bmv_block(n: int, *, soc: bytes = b"873") -> bytes:
    """A valid one-block BMV-like update whose voltage changes with ``n``."""
    return encode_block(
        [
            (b"PID", b"0xA389"),
            (b"V", b"%d" % (12000 + n % 1000)),
            (b"I", b"-3200"),
            (b"P", b"-40"),
            (b"SOC", soc),
        ]
    )


class PtyDevice:
    """A pty whose slave is linked at ``link``; write into it with :meth:`write`."""

    def __init__(self, link: Path) -> None:
        self.link = link
        self.master: int | None = None
        self._slave: int | None = None
        self._task: asyncio.Task[None] | None = None

    def plug(self) -> None:
        """Create a fresh pty and point ``link`` at it."""
        master, slave = os.openpty()
        tty.setraw(slave)  # no line discipline games before the reader configures the port
        os.set_blocking(master, False)  # a full pty buffer must not block the test's loop
        tmp = self.link.with_suffix(".new")
        tmp.unlink(missing_ok=True)
        os.symlink(os.ttyname(slave), tmp)
        os.replace(tmp, self.link)
        self.master, self._slave = master, slave

    def unplug(self) -> None:
        """Close the pty and remove the link, as udev removes a ``/dev/serial/by-id`` link: the
        reader sees the device disappear. (A dangling link would point at a freed
        ``/dev/pts/N`` that the kernel hands to the next pty opened on this machine, perhaps
        another test's, and a reconnecting reader would read that device instead.)"""
        self.link.unlink(missing_ok=True)
        for fd in (self.master, self._slave):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.master = self._slave = None

    def write(self, data: bytes) -> None:
        """Write into the device side (dropped if the pty buffer is full)."""
        if self.master is not None:
            with contextlib.suppress(BlockingIOError):
                os.write(self.master, data)

    def stream(self, make: Callable[[int], bytes], interval: float = 0.005) -> None:
        """Write ``make(0)``, ``make(1)``, ... every ``interval`` s until :meth:`stop`."""

        async def run() -> None:
            n = 0
            while True:
                self.write(make(n))
                n += 1
                await asyncio.sleep(interval)  # pacing a device, not waiting for a result

        self.stop()
        self._task = asyncio.get_running_loop().create_task(run())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    def close(self) -> None:
        self.stop()
        self.unplug()
        self.link.unlink(missing_ok=True)


async def wait_until(
    predicate: Callable[[], bool], changed: Callable[[], Awaitable[object]], within: float = 5.0
) -> None:
    """Wait until ``predicate()`` holds, re-checking whenever ``changed()`` completes."""

    async def loop() -> None:
        while not predicate():
            await changed()

    await asyncio.wait_for(loop(), within)


@pytest.fixture
async def device(tmp_path: Path) -> AsyncIterator[PtyDevice]:
    """A plugged-in fake device behind a by-id style link."""
    dev = PtyDevice(tmp_path / "usb-VictronEnergy_BV_VE_Direct_cable_TEST-if00-port0")
    dev.plug()
    yield dev
    dev.close()


@pytest.fixture
async def running() -> AsyncIterator[list[asyncio.Task[None]]]:
    """Tasks started by a test; cancelled and awaited at its end."""
    tasks: list[asyncio.Task[None]] = []
    yield tasks
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def start_reader(
    port: str,
    config: WatchdogConfig,
    running: list[asyncio.Task[None]],
    *,
    watchdog: bool = False,
    name: str = "bmv",
    wait_open: bool = True,
) -> tuple[Hub, DeviceSession]:
    """A reader (and its watchdog) on ``port`` as tasks; waits until the port is open."""
    hub = Hub()
    reader = DeviceSession(DeviceConfig(name=name, port=port), hub, config)
    loop = asyncio.get_running_loop()
    running.append(loop.create_task(reader.run()))
    if watchdog:
        running.append(loop.create_task(Watchdog(config, reader).run()))
    if wait_open:
        await wait_until(lambda: reader.opened_at is not None, reader.changed)
    return hub, reader
