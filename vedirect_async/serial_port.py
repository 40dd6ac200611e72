"""Serial port → parser → assembler → hub, for one device; reopens whatever happens.

- The port is opened and closed off the event loop by pyserial-asyncio-fast (19200 8N1;
  the path may be a ``/dev/serial/by-id/...`` link). The asyncio Protocol's
  ``data_received`` only feeds the parser and hands readings to the hub synchronously: it
  never awaits, never does I/O, never lets an exception escape.
- ``simulator:<kind>`` ports read the simulator's in-process byte stream through the very same
  feed path, so the watchdog, counters and outputs behave exactly as with a device.
- Any way the port can fail (missing, unplugged, permission denied, not a serial port, silent
  or garbled as judged by the watchdog) ends the *session*; :meth:`DeviceReader.run` logs one
  line (the first failure of a streak at WARNING, repeats at DEBUG) and reopens after a capped
  exponential backoff with jitter, reset by the first valid reading.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import serial
import serial_asyncio_fast

from .backoff import Backoff
from .config import DeviceConfig, WatchdogConfig
from .hub import DeviceState, Hub, ReaderState
from .logsetup import RateLimitedLogger
from .parser import ErrorEvent, Parser, TextBlock
from .reading import Assembler, Reading

__all__ = ["SIMULATOR_PREFIX", "DeviceReader", "describe_open_error"]

_LOGGER = logging.getLogger(__name__)

SIMULATOR_PREFIX = "simulator:"
# Closing a port runs in an executor; a wedged USB adapter must not hold up a reopen forever.
_CLOSE_TIMEOUT = 2.0


def describe_open_error(port: str, exc: BaseException) -> str:
    """One line saying why ``port`` could not be opened, and what to do about it."""
    code = getattr(exc, "errno", None)
    if code is None and isinstance(exc.__context__, OSError):
        code = exc.__context__.errno
    text = str(exc)
    if code == errno.ENOENT or "No such file or directory" in text:
        return f"port {port} not found (unplugged? /dev/serial/by-id/... paths survive replugging)"
    if code == errno.EACCES or "Permission denied" in text:
        return (
            f"permission denied opening {port}: add the service user to the 'dialout' group "
            "(sudo usermod -aG dialout USER, then log in again)"
        )
    if code == errno.EBUSY or "Device or resource busy" in text:
        return f"port {port} is busy (in use by another process?)"
    if code == errno.ENOTTY or "Inappropriate ioctl" in text:
        return f"{port} is not a serial port"
    return f"cannot open {port}: {text}"


class _SerialProtocol(asyncio.Protocol):
    """Adapter: bytes to the reader's feed; the loss of the port to the reader's session."""

    def __init__(
        self, feed: Callable[[bytes], None], lost: Callable[[Exception | None], None]
    ) -> None:
        self._feed = feed
        self._lost = lost

    def data_received(self, data: bytes) -> None:
        self._feed(data)  # DeviceReader._feed contains every exception itself

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost(exc)


class DeviceReader:
    """Reads one ``[[device]]`` for as long as :meth:`run` runs; reopens on any failure.

    ``state`` (the hub's :class:`~vedirect_async.hub.DeviceState`) carries the reader state,
    reason, parser counters, freshness and restart count for ``/health`` and the watchdog.
    """

    def __init__(self, device: DeviceConfig, hub: Hub, watchdog: WatchdogConfig) -> None:
        self.name = device.name
        self.port = device.port
        self.baudrate = device.baudrate
        self.hub = hub
        self.state: DeviceState = hub.device(device.name, device.port)
        self.opened_at: float | None = None  # monotonic time the current session opened
        self.sessions = 0  # sessions opened so far
        self._parser = Parser()
        self.state.parser = self._parser.stats
        self._assembler = Assembler(device.name)
        self._unknown_logged = 0  # unknown labels already named in the log
        self._previous: Reading | None = None
        self._backoff = Backoff(watchdog.backoff_initial, watchdog.backoff_max)
        self._failures = 0  # failed sessions since the last valid reading
        self._end: asyncio.Future[str] | None = None
        self._changed = asyncio.Event()
        self._limited = RateLimitedLogger(_LOGGER, interval=300.0)

    # -- lifecycle ------------------------------------------------------------------------

    async def run(self) -> None:
        """Open, read, and on any failure reopen after a backoff; until cancelled."""
        state = self.state
        try:
            while True:
                reason = await self._session()
                self._failures += 1
                delay = self._backoff.next()
                level = logging.WARNING if self._failures == 1 else logging.DEBUG
                _LOGGER.log(level, "%s: %s; reopening in %.1f s", self.name, reason, delay)
                if state.state not in (ReaderState.SILENT, ReaderState.INVALID):
                    state.state = ReaderState.RECONNECTING
                state.reason = reason
                self._notify()
                await asyncio.sleep(delay)
                state.state = ReaderState.RECONNECTING
        finally:
            state.state = ReaderState.STOPPED
            self._notify()

    def restart(self, reason: str) -> None:
        """End the current session (the watchdog's lever); ``run`` logs and reopens."""
        end = self._end
        if end is not None and not end.done():
            end.set_result(reason)

    def changed(self) -> Awaitable[bool]:
        """Completes at the next change: session open/close, failed open, first reading."""
        return self._changed.wait()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _session(self) -> str:
        """One open port (or simulator stream) until it ends; returns why it ended."""
        loop = asyncio.get_running_loop()
        end: asyncio.Future[str] = loop.create_future()
        self._end = end
        self._parser.reset()  # a partial block of the last session must not merge into this
        self._assembler.reset()  # nor a half-assembled update
        close: Callable[[], Awaitable[None]]
        if self.port.startswith(SIMULATOR_PREFIX):
            close = self._open_simulator(self.port[len(SIMULATOR_PREFIX) :], end)
        else:
            try:
                close = await self._open_serial(end)
            except (serial.SerialException, OSError, ValueError) as exc:
                return describe_open_error(self.port, exc)
        self.sessions += 1
        self.state.state = ReaderState.STARTING
        self.opened_at = time.monotonic()
        self._notify()
        try:
            reason = await end
        finally:
            self.opened_at = None
            self._end = None
            await close()
            self._notify()
        self.state.restarts += 1
        return reason

    async def _open_serial(self, end: asyncio.Future[str]) -> Callable[[], Awaitable[None]]:
        """Open the port in an executor; returns an awaitable closer."""
        loop = asyncio.get_running_loop()
        closed: asyncio.Future[None] = loop.create_future()
        target = await loop.run_in_executor(None, os.path.realpath, self.port)

        def lost(exc: Exception | None) -> None:
            if not closed.done():
                closed.set_result(None)
            if not end.done():
                end.set_result(f"port {self.port} lost: {exc or 'closed'}")

        transport, _ = await serial_asyncio_fast.create_serial_connection(
            loop,
            lambda: _SerialProtocol(self._feed, lost),
            self.port,
            baudrate=self.baudrate,
            bytesize=serial.EIGHTBITS,
            parity=serial.PARITY_NONE,
            stopbits=serial.STOPBITS_ONE,
        )
        shown = self.port if target == self.port else f"{self.port} ({target})"
        _LOGGER.log(self._open_level, "%s: reading %s at %d 8N1", self.name, shown, self.baudrate)

        async def close() -> None:
            transport.close()
            try:
                # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation
                # that races the inner future's completion (the reader would then reopen).
                async with asyncio.timeout(_CLOSE_TIMEOUT):
                    await asyncio.shield(closed)
            except TimeoutError:
                _LOGGER.warning("%s: closing %s timed out; abandoning it", self.name, self.port)

        return close

    def _open_simulator(self, kind: str, end: asyncio.Future[str]) -> Callable[[], Awaitable[None]]:
        """Pump the simulator's stream into the feed from a task; returns its closer."""

        async def pump() -> None:
            try:
                # Imported on use: only simulator ports need it.
                from .simulator import open_stream  # noqa: PLC0415

                async for chunk in open_stream(kind):
                    self._feed(chunk)
            except ValueError as exc:
                reason = f"simulator {kind!r} unavailable: {exc}"
            except Exception as exc:  # a simulator bug must not kill the reader
                _LOGGER.exception("%s: simulator %r failed", self.name, kind)
                reason = f"simulator {kind!r} failed: {exc!r}"
            else:
                reason = f"simulator {kind!r} stream ended"
            if not end.done():
                end.set_result(reason)

        task = asyncio.get_running_loop().create_task(pump(), name=f"{self.name}-simulator")
        _LOGGER.log(self._open_level, "%s: reading the built-in simulator %r", self.name, kind)

        async def close() -> None:
            task.cancel()
            await asyncio.wait((task,))  # unlike `await task`, never mistakes our own cancel

        return close

    @property
    def _open_level(self) -> int:
        """INFO for a first open; DEBUG for the reopens of a failure streak (said once)."""
        return logging.DEBUG if self._failures else logging.INFO

    # -- the hot path: runs inside data_received ------------------------------------------

    def _feed(self, data: bytes) -> None:
        """Bytes → parser → assembler → hub. Never raises, never awaits."""
        try:
            now = time.monotonic()
            state = self.state
            state.last_byte = now
            assembler = self._assembler
            wall: datetime | None = None  # read once per chunk, and only if a block is in it
            for event in self._parser.feed(data):
                if type(event) is TextBlock:
                    if wall is None:
                        wall = datetime.now(UTC)
                    reading = assembler.feed(event, wall, now)
                    if reading is not None:
                        self._publish(reading)
                elif type(event) is ErrorEvent:
                    # a lost block ends the update in progress: no merge across the loss
                    assembler.feed_event(event, datetime.now(UTC), now)
                    self._bad_input(event)
        except Exception:
            self._limited.log(
                logging.ERROR,
                "feed",
                "%s: error handling %d bytes from %s (skipped)",
                self.name,
                len(data),
                self.port,
                exc_info=True,
            )

    def _bad_input(self, event: ErrorEvent) -> None:
        """Rejected bytes are counted by the parser; say so now and then, never per block."""
        self._limited.log(
            logging.INFO,
            event.kind,
            "%s: %s: %d bytes discarded%s (counted in the parser statistics)",
            self.name,
            event.kind,
            event.discarded,
            f" ({event.detail})" if event.detail else "",
        )

    def _publish(self, reading: Reading) -> None:
        state = self.state
        state.readings += 1
        state.last_reading = reading.monotonic
        state.last_reading_wall = time.time()
        state.unknown_labels = self._assembler.unknown_labels
        if len(self._assembler.unknown_label_names) > self._unknown_logged:
            self._log_unknown_labels()
        previous = self._previous
        if previous is not None and previous.raw == reading.raw:
            state.identical_readings += 1
        else:
            state.identical_readings = 0
            state.identical_since = reading.monotonic
        self._previous = reading
        if state.state is not ReaderState.READING:
            self._recovered()
        self.hub.publish(reading)

    def _log_unknown_labels(self) -> None:
        names = self._assembler.unknown_label_names
        _LOGGER.info(
            "%s: label(s) not in the catalogue, kept as text: %s",
            self.name,
            ", ".join(names[self._unknown_logged :]),
        )
        self._unknown_logged = len(names)

    def _recovered(self) -> None:
        """First valid reading of a session: reset backoff, say so if it had failed."""
        state = self.state
        if self._failures:
            _LOGGER.info(
                "%s: reading again from %s (after %d failed attempts; last: %s)",
                self.name,
                self.port,
                self._failures,
                state.reason,
            )
        self._failures = 0
        self._backoff.reset()
        state.state = ReaderState.READING
        state.reason = ""
        self._notify()
