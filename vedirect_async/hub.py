"""Broadcast hub: readings fan out to subscribers, each with its own bounded queue.

The reader calls :meth:`Hub.publish`, which never awaits and never blocks: a subscriber whose
queue is full loses its *oldest* reading (counted), never the newest. A "latest only"
subscription keeps at most one reading per device (coalescing), for rate-limited outputs.

The hub also holds the shared state that ``/health``, ``/metrics`` and the watchdog read:
per-device reader state and per-output state.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from .logsetup import RateLimitedLogger
from .parser import ParserStats
from .reading import Reading

__all__ = [
    "DeviceState",
    "Hub",
    "OutputHealth",
    "OutputState",
    "ReaderState",
    "Subscription",
]

_LOGGER = logging.getLogger(__name__)


class ReaderState(enum.StrEnum):
    """What a device's reader is doing."""

    STARTING = "starting"
    READING = "reading"  # port open, valid readings arriving
    SILENT = "silent"  # port open, no bytes for silence_timeout
    INVALID = "invalid"  # bytes, but no valid reading for invalid_timeout
    RECONNECTING = "reconnecting"  # port closed, waiting to reopen (backoff)
    STOPPED = "stopped"


@dataclass(slots=True)
class DeviceState:
    """Per-device counters and freshness, written by the reader and watchdog."""

    name: str
    port: str
    state: ReaderState = ReaderState.STARTING
    reason: str = ""
    parser: ParserStats = field(default_factory=ParserStats)
    readings: int = 0
    restarts: int = 0  # reader restarts by the watchdog or after a lost port
    identical_readings: int = 0  # consecutive byte-identical readings (stuck detection)
    identical_since: float | None = None  # monotonic time of the first of those readings
    stuck: bool = False  # identical for watchdog.stuck_timeout (counted, never restarted)
    stuck_events: int = 0
    last_byte: float | None = None  # monotonic
    last_reading: float | None = None  # monotonic
    last_reading_wall: float | None = None  # time.time()
    unknown_labels: int = 0


class OutputHealth(enum.StrEnum):
    """An output's own view of itself."""

    OK = "ok"
    DEGRADED = "degraded"  # working, but something is off (e.g. retrying, an idx rejected)
    FAILED = "failed"  # not delivering


@dataclass(slots=True)
class OutputState:
    """Per-output state, updated by the output, read by /health and /metrics."""

    name: str
    health: OutputHealth = OutputHealth.OK
    reason: str = ""
    last_success: float | None = None  # time.time()
    successes: int = 0
    failures: int = 0
    restarts: int = 0
    counters: dict[str, int] = field(default_factory=dict)

    def ok(self) -> None:
        """Record a success (and clear any degraded/failed reason)."""
        self.health = OutputHealth.OK
        self.reason = ""
        self.successes += 1
        self.last_success = time.time()

    def degraded(self, reason: str) -> None:
        self.health = OutputHealth.DEGRADED
        self.reason = reason

    def failed(self, reason: str) -> None:
        self.health = OutputHealth.FAILED
        self.reason = reason
        self.failures += 1

    def count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n


class Subscription:
    """One subscriber's bounded queue; async-iterate it to receive readings."""

    def __init__(
        self, name: str, maxsize: int, latest_only: bool, on_close: Callable[[Subscription], None]
    ) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be >= 1")
        self.name = name
        self.maxsize = maxsize
        self.latest_only = latest_only
        self.dropped = 0  # readings lost because the queue was full (or superseded)
        self.delivered = 0
        self._queue: collections.deque[Reading] = collections.deque()
        self._latest: dict[str, Reading] = {}
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False
        self._on_close = on_close

    def __len__(self) -> int:
        return len(self._latest) if self.latest_only else len(self._queue)

    def _put(self, reading: Reading) -> None:
        if self._closed:
            return
        if self.latest_only:
            if reading.device in self._latest:
                self.dropped += 1
                del self._latest[reading.device]  # re-insert: keep arrival order
            self._latest[reading.device] = reading
        else:
            if len(self._queue) >= self.maxsize:
                self._queue.popleft()
                self.dropped += 1
            self._queue.append(reading)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def get_nowait(self) -> Reading | None:
        """The next reading, or None if nothing is queued."""
        if self.latest_only:
            if not self._latest:
                return None
            device = next(iter(self._latest))
            reading = self._latest.pop(device)
        else:
            if not self._queue:
                return None
            reading = self._queue.popleft()
        self.delivered += 1
        return reading

    def drain_latest(self) -> dict[str, Reading]:
        """Take everything queued, newest per device (for outputs that post on a schedule)."""
        out: dict[str, Reading] = {}
        while (reading := self.get_nowait()) is not None:
            out[reading.device] = reading
        return out

    async def get(self) -> Reading:
        """Wait for the next reading. Raises asyncio.CancelledError when cancelled."""
        while (reading := self.get_nowait()) is None:
            await self.wait()
        return reading

    async def wait(self) -> None:
        """Wait until at least one reading is queued."""
        while not len(self):
            if self._closed:
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    def __aiter__(self) -> AsyncIterator[Reading]:
        return self

    async def __anext__(self) -> Reading:
        return await self.get()

    def close(self) -> None:
        """Unsubscribe; a waiting consumer gets StopAsyncIteration."""
        if self._closed:
            return
        self._closed = True
        self._on_close(self)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class Hub:
    """Fan-out of readings plus the shared device and output state."""

    def __init__(self) -> None:
        self._subscribers: list[Subscription] = []
        self.latest: dict[str, Reading] = {}
        self.devices: dict[str, DeviceState] = {}
        self.outputs: dict[str, OutputState] = {}
        self.published = 0
        self._listeners: list[Callable[[Reading], None]] = []
        self._limited = RateLimitedLogger(_LOGGER, interval=60.0)

    def subscribe(
        self, name: str, *, maxsize: int = 256, latest_only: bool = False
    ) -> Subscription:
        """A new subscription; readings published from now on are queued for it."""
        sub = Subscription(name, maxsize, latest_only, self._unsubscribe)
        self._subscribers.append(sub)
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        if sub in self._subscribers:
            self._subscribers.remove(sub)

    @property
    def subscriptions(self) -> tuple[Subscription, ...]:
        return tuple(self._subscribers)

    def add_listener(self, callback: Callable[[Reading], None]) -> Callable[[], None]:
        """A synchronous callback run on every reading (must be quick); returns unsubscribe."""
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback) if callback in self._listeners else None

    def device(self, name: str, port: str = "") -> DeviceState:
        """The state record of a device (created on first use)."""
        state = self.devices.get(name)
        if state is None:
            state = self.devices[name] = DeviceState(name, port)
        return state

    def output(self, name: str) -> OutputState:
        """The state record of an output (created on first use)."""
        state = self.outputs.get(name)
        if state is None:
            state = self.outputs[name] = OutputState(name)
        return state

    def publish(self, reading: Reading) -> None:
        """Hand a reading to every subscriber. Never awaits; never raises."""
        self.published += 1
        self.latest[reading.device] = reading
        for sub in self._subscribers:
            sub._put(reading)
        for callback in self._listeners:
            try:
                callback(reading)
            except Exception:
                self._limited.log(
                    logging.ERROR,
                    repr(callback),
                    "hub: listener %r failed on a reading of %s",
                    callback,
                    reading.device,
                    exc_info=True,
                )
