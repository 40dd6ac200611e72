"""The device session: one ``[[device]]``'s port, its :class:`Decoder` and its state.

:class:`DeviceSession` (one per configured device) owns

- the **port**: opened and closed off the event loop by pyserial-asyncio-fast (19200 8N1; the
  path may be a ``/dev/serial/by-id/...`` link), or the in-process simulator stream for
  ``simulator:<kind>`` ports (the very same feed path, so the watchdog, counters and outputs
  behave exactly as with a device);
- the **decoder** (:class:`~vedirect_async.decoder.Decoder`, sans-IO): the asyncio Protocol's
  ``data_received`` feeds it and hands each reading to the hub synchronously: it never awaits,
  never does I/O, never lets an exception escape;
- its **state** (:class:`~vedirect_async.state.DeviceState`): the session is its only writer.
  The watchdog reads it and calls :meth:`DeviceSession.restart` / :meth:`report_stuck`;
  every change of reader state, reason or stuck flag is announced on the hub
  (:meth:`Hub.device_changed <vedirect_async.hub.Hub.device_changed>`), so nobody polls.

Any way the port can fail (missing, unplugged, permission denied, not a serial port, silent or
garbled as judged by the watchdog) ends the *connection*; :meth:`DeviceSession.run` logs one
line (the first failure of a streak at WARNING, repeats at DEBUG) and reopens after a capped
exponential backoff with jitter, reset by the first valid reading.

The way back to the device (issue 14's command path) goes through the same object:
:meth:`DeviceSession.command` sends a HEX command on the open port and awaits its answer
(:class:`~vedirect_async.hexlink.HexLink`: one command in flight, timeout, bounded retries),
and every verified HEX record the decoder separates from the text stream reaches
:meth:`DeviceSession._on_hex` on the event loop, where it settles the command in flight or,
as an asynchronous ``:A`` value, joins the device's register values. While a writable port is
open the session's :class:`~vedirect_async.poller.RegisterPoller` reads the device's identity
and its registers; their values are added to each text reading before it is published.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date
from typing import cast

import serial
import serial_asyncio_fast

from .backoff import Backoff
from .commands import Identity, Request, Result, Value, parse_register
from .config import DeviceConfig, WatchdogConfig
from .daily import DailyRecord
from .decoder import Decoder
from .errors import PortClosedError
from .hexlink import HexLink
from .hub import Hub
from .logsetup import RateLimitedLogger
from .parser import ErrorEvent, HexRecord
from .poller import RegisterPoller
from .reading import Reading
from .state import DeviceState, ReaderState

__all__ = ["SIMULATOR_PREFIX", "DeviceSession", "describe_open_error"]

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
    if code == errno.EBUSY or "Device or resource busy" in text or "exclusively lock" in text:
        return f"port {port} is busy (in use by another process?)"
    if code == errno.ENOTTY or "Inappropriate ioctl" in text:
        return f"{port} is not a serial port"
    return f"cannot open {port}: {text}"


class _SerialProtocol(asyncio.Protocol):
    """Adapter: bytes to the session's feed; the loss of the port ends the connection."""

    def __init__(
        self, feed: Callable[[bytes], None], lost: Callable[[Exception | None], None]
    ) -> None:
        self._feed = feed
        self._lost = lost

    def data_received(self, data: bytes) -> None:
        self._feed(data)  # DeviceSession._feed contains every exception itself

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost(exc)


@dataclass(frozen=True, slots=True)
class _Connection:
    """An open port (or simulator stream): how to write to it and how to close it."""

    close: Callable[[], Awaitable[None]]
    write: Callable[[bytes], None] | None  # None: this stream cannot be written to


class DeviceSession:
    """Reads one ``[[device]]`` for as long as :meth:`run` runs; reopens on any failure.

    ``state`` (a :class:`~vedirect_async.state.DeviceState`, also in ``hub.devices``) carries
    the reader state, reason, parser counters, freshness and restart count; only this object
    writes it.
    """

    def __init__(self, device: DeviceConfig, hub: Hub, watchdog: WatchdogConfig) -> None:
        self.name = device.name
        self.port = device.port
        self.baudrate = device.baudrate
        self.hub = hub
        self.state: DeviceState = hub.device(device.name, device.port)
        self.opened_at: float | None = None  # monotonic time the current connection opened
        self.sessions = 0  # connections opened so far
        self.decoder = Decoder(device.name)
        self.state.parser = self.decoder.parser_stats
        self.hex_records = 0  # verified HEX records received (answers and async :A records)
        self.link = HexLink(device.name, self.write)
        self.state.hex = self.link.stats  # the same object: read-only for everyone else
        self.text_pause = 2.5  # s without a reading after a HEX command: the device paused
        self._text_pauses = 0  # such pauses on this connection
        self._last_mono: float | None = None  # the previous reading of this connection
        self.poller = RegisterPoller(
            device.name,
            self.link,
            tuple(
                parse_register(r) for r in [*device.registers, *device.writable] if r != "defaults"
            ),
            device.register_interval,
            defaults="defaults" in device.registers,
            on_history=self._history_read,
            on_identity=self._identified,
        )
        self._unknown_logged = 0  # unknown labels already named in the log
        self._previous: Reading | None = None
        self._backoff = Backoff(watchdog.backoff_initial, watchdog.backoff_max)
        self._failures = 0  # failed connections since the last valid reading
        self._end: asyncio.Future[str] | None = None
        self._connection: _Connection | None = None
        self._changed = asyncio.Event()
        self._limited = RateLimitedLogger(_LOGGER, interval=300.0)
        self._stuck_timeout = watchdog.stuck_timeout

    # -- lifecycle ------------------------------------------------------------------------

    async def run(self) -> None:
        """Open, read, and on any failure reopen after a backoff; until cancelled."""
        try:
            while True:
                reason = await self._connect()
                self._failures += 1
                delay = self._backoff.next()
                level = logging.WARNING if self._failures == 1 else logging.DEBUG
                _LOGGER.log(level, "%s: %s; reopening in %.1f s", self.name, reason, delay)
                # A watchdog verdict (SILENT/INVALID) stays visible through the backoff.
                current = self.state.state
                keep = current in (ReaderState.SILENT, ReaderState.INVALID)
                if not self._set(current if keep else ReaderState.RECONNECTING, reason):
                    self._notify()  # another failed attempt is news to waiters, not to the hub
                await asyncio.sleep(delay)
                self._set(ReaderState.RECONNECTING)
        finally:
            self._set(ReaderState.STOPPED)

    def restart(self, reason: str, verdict: ReaderState | None = None) -> None:
        """End the current connection (the watchdog's lever); ``run`` logs and reopens.

        ``verdict`` (SILENT or INVALID) is shown as the reader state until the reopen.
        """
        end = self._end
        if end is None or end.done():
            return
        if verdict is not None:
            self._set(verdict, reason)
        end.set_result(reason)

    def report_stuck(self, stuck: bool) -> None:
        """The watchdog's judgement on identical readings: flag (once, counted) or clear."""
        state = self.state
        if stuck == state.stuck:
            return
        state.stuck = stuck
        if stuck:
            state.stuck_events += 1
            _LOGGER.warning(
                "%s: the last %d readings were identical for %g s or more (stuck_timeout); "
                "counted, not restarting",
                self.name,
                state.identical_readings + 1,
                self._stuck_timeout,
            )
        else:
            _LOGGER.info("%s: readings are changing again", self.name)
        self.hub.device_changed(state)

    def report_crash(self, what: str, reason: str) -> None:
        """The service's supervisor saw ``what`` (the reader, its watchdog) fail: say so."""
        self._set(self.state.state, f"{what} crashed: {reason}")

    def changed(self) -> Awaitable[bool]:
        """Completes at the next change: connection open/close, failed open, first reading."""
        return self._changed.wait()

    async def command(self, request: Request, *, retries: int | None = None) -> Result:
        """Send a HEX command on the open port and await its typed answer (see HexLink);
        ``retries`` overrides the link's resends on silence (0 = send once).

        Raises :class:`~vedirect_async.errors.PortClosedError` when no writable port is open.
        """
        return await self.link.command(request, retries=retries)

    def write(self, data: bytes) -> None:
        """Put ``data`` on the open port (a HEX command). Never blocks: the transport buffers.

        Raises :class:`~vedirect_async.errors.PortClosedError` when no port is open or the stream
        cannot be written to (the built-in simulator's text stream).
        """
        connection = self._connection
        if connection is None or connection.write is None:
            raise PortClosedError(f"{self.name}: no writable port open")
        connection.write(data)

    def _set(self, reader_state: ReaderState, reason: str | None = None) -> bool:
        """The one place the reader state changes: write it; if it changed, wake ``changed()``
        waiters and tell the hub. Returns whether anything changed."""
        state = self.state
        if state.state is reader_state and (reason is None or reason == state.reason):
            return False
        state.state = reader_state
        if reason is not None:
            state.reason = reason
        self._notify()
        self.hub.device_changed(state)
        return True

    def _notify(self) -> None:
        """Wake ``changed()`` waiters (open/close) without a reader-state change."""
        self._changed.set()
        self._changed = asyncio.Event()

    async def _connect(self) -> str:
        """One open port (or simulator stream) until it ends; returns why it ended."""
        loop = asyncio.get_running_loop()
        end: asyncio.Future[str] = loop.create_future()
        self._end = end
        self.decoder.reset()  # a partial block or update of the last connection must not merge
        if self.port.startswith(SIMULATOR_PREFIX):
            connection = self._open_simulator(self.port[len(SIMULATOR_PREFIX) :], end)
        else:
            try:
                connection = await self._open_serial(end)
            except (serial.SerialException, OSError, ValueError) as exc:
                return describe_open_error(self.port, exc)
        self.sessions += 1
        self._connection = connection
        self.opened_at = time.monotonic()
        if not self._set(ReaderState.STARTING):
            self._notify()  # the open itself is news to the watchdog
        poller: asyncio.Task[None] | None = None
        self.poller.reset()
        self._last_mono, self._text_pauses = None, 0
        if connection.write is not None and not self.link.mute:
            poller = loop.create_task(self.poller.run(), name=f"{self.name} HEX poller")
        try:
            reason = await end
        finally:
            if poller is not None:
                poller.cancel()
                await asyncio.gather(poller, return_exceptions=True)
            self.opened_at = None
            self._end = None
            self._connection = None
            await connection.close()
            self._notify()
        self.state.restarts += 1
        return reason

    async def _open_serial(self, end: asyncio.Future[str]) -> _Connection:
        """Open the port in an executor; returns the connection."""
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
            exclusive=True,  # one reader per port: `hex` and a second service are refused
        )
        shown = self.port if target == self.port else f"{self.port} ({target})"
        _LOGGER.log(self._open_level, "%s: reading %s at %d 8N1", self.name, shown, self.baudrate)

        async def close() -> None:
            transport.close()
            try:
                # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation
                # that races the inner future's completion (the session would then reopen).
                async with asyncio.timeout(_CLOSE_TIMEOUT):
                    await asyncio.shield(closed)
            except TimeoutError:
                _LOGGER.warning("%s: closing %s timed out; abandoning it", self.name, self.port)

        return _Connection(close, transport.write)

    def _open_simulator(self, kind: str, end: asyncio.Future[str]) -> _Connection:
        """Pump the simulator's stream into the feed from a task; returns the connection.

        A generated device also takes HEX commands (its ``write``), so it is polled like a
        real one; a replayed capture cannot be written to."""
        # Imported on use: only simulator ports need it.
        from .simulator import open_stream  # noqa: PLC0415
        from .simulator.stream import SimulatorStream  # noqa: PLC0415

        problem = ""
        try:
            stream = open_stream(kind, name=self.name)  # a stable identity
        except ValueError as exc:
            stream, problem = None, f"simulator {kind!r} unavailable: {exc}"

        async def pump() -> None:
            if stream is None:
                reason = problem
            else:
                try:
                    async for chunk in stream:
                        self._feed(chunk)
                except Exception as exc:  # a simulator bug must not kill the session
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

        write = stream.write if isinstance(stream, SimulatorStream) else None
        return _Connection(close, write)

    @property
    def _open_level(self) -> int:
        """INFO for a first open; DEBUG for the reopens of a failure streak (said once)."""
        return logging.DEBUG if self._failures else logging.INFO

    # -- the hot path: runs inside data_received ------------------------------------------

    def _feed(self, data: bytes) -> None:
        """Bytes → decoder → hub (readings) / command path (HEX). Never raises, never awaits."""
        try:
            now = time.monotonic()
            self.state.last_byte = now
            for event in self.decoder.feed(data, now):
                if type(event) is Reading:
                    self._publish(event)
                elif type(event) is ErrorEvent:
                    self._bad_input(event)
                else:
                    self._on_hex(cast(HexRecord, event))
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

    def _identified(self, identity: Identity) -> None:
        """The poller read the device's identity over HEX: keep it on the device state."""
        self.state.identity = identity

    def _history_read(self, days: tuple[DailyRecord, ...], today: date) -> None:
        """The poller read the device's history (MPPT days): keep it on the device state."""
        self.state.daily = days
        self.state.daily_date = today
        self.hub.device_changed(self.state)  # MQTT publishes it (retained)

    def _on_hex(self, record: HexRecord) -> None:
        """A verified HEX record: an answer to the command in flight, or an async value."""
        self.hex_records += 1
        value = self.link.on_record(record)
        if isinstance(value, Value):
            self.poller.on_async(value.value)

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
        self._watch_text_pause(reading.monotonic)
        state.readings += 1
        state.last_reading = reading.monotonic
        state.last_reading_wall = time.time()
        stats = self.decoder.stats
        state.unknown_labels = stats.unknown_labels
        state.undecodable = stats.undecodable
        if len(self.decoder.unknown_label_names) > self._unknown_logged:
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
        self.hub.publish(self.poller.merge(reading))

    def _watch_text_pause(self, now: float) -> None:
        """Older firmware stops its text stream for seconds after any HEX command (protocol.md
        section 6.12): a gap of ``text_pause`` s or more in the readings with a command sent
        inside it, twice on one connection, stops HEX for this device (one log line)."""
        previous, self._last_mono = self._last_mono, now
        sent = self.link.last_sent
        if previous is None or sent is None or not previous <= sent < now:
            return
        if now - previous < self.text_pause:
            return
        self._text_pauses += 1
        if self._text_pauses >= 2:
            self.link.stop(
                f"the text stream paused {now - previous:.1f} s after HEX commands (older firmware)"
            )

    def _log_unknown_labels(self) -> None:
        names = self.decoder.unknown_label_names
        _LOGGER.info(
            "%s: label(s) not in the catalogue, kept as text: %s",
            self.name,
            ", ".join(names[self._unknown_logged :]),
        )
        self._unknown_logged = len(names)

    def _recovered(self) -> None:
        """First valid reading of a connection: reset backoff, say so if it had failed."""
        if self._failures:
            _LOGGER.info(
                "%s: reading again from %s (after %d failed attempts; last: %s)",
                self.name,
                self.port,
                self._failures,
                self.state.reason,
            )
        self._failures = 0
        self._backoff.reset()
        self._set(ReaderState.READING, "")
