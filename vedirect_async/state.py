"""The service's shared state records: one owner writes each, everyone else reads.

- :class:`DeviceState`: written only by the device's
  :class:`~vedirect_async.session.DeviceSession` (reader state, reason, counters, freshness,
  the stuck flag). The watchdog reads it and asks the session to act; ``/health``,
  ``/metrics`` and the outputs read it through the hub's ``devices`` view, typed as the
  read-only :class:`DeviceView` (so ``mypy --strict`` refuses a write from anyone else), and learn
  of reader-state changes from :meth:`Hub.device_changes <vedirect_async.hub.Hub.device_changes>`
  (a :class:`DeviceChange` per change), never by polling.
- :class:`OutputState`: written only by its output (and by the service's supervisor when the
  output crashes), read by ``/health`` and ``/metrics``.

Pure data: no asyncio, no I/O.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field
from datetime import date
from typing import Protocol

from .commands import HexStats, Identity
from .daily import DailyRecord
from .parser import ParserStats

__all__ = [
    "DeviceChange",
    "DeviceState",
    "DeviceView",
    "OutputHealth",
    "OutputState",
    "ReaderState",
]


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
    """Per-device counters and freshness. Its session is the only writer."""

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
    undecodable: int = 0  # known fields whose value did not parse (published as unavailable)
    hex: HexStats = field(default_factory=HexStats)  # the HEX command path's counters
    identity: Identity | None = None  # what the device said over HEX (PID, firmware, serial, model)
    daily: tuple[DailyRecord, ...] = ()  # MPPT history over HEX, today first (issue 14)
    daily_date: date | None = None  # the local date when ``daily`` was read (its day 0)

    def snapshot(self) -> DeviceChange:
        """The reader state as an immutable record (what change subscribers receive)."""
        return DeviceChange(
            self.name, self.state, self.reason, self.stuck, self.daily, self.daily_date
        )


class DeviceView(Protocol):
    """A :class:`DeviceState` as everyone but its session sees it: every field, read-only.

    :attr:`Hub.devices <vedirect_async.hub.Hub.devices>` hands these out, so an assignment
    outside the session (``hub.devices[name].state = ...``) is a type error, not a convention.
    """

    @property
    def name(self) -> str: ...
    @property
    def port(self) -> str: ...
    @property
    def state(self) -> ReaderState: ...
    @property
    def reason(self) -> str: ...
    @property
    def parser(self) -> ParserStats: ...
    @property
    def readings(self) -> int: ...
    @property
    def restarts(self) -> int: ...
    @property
    def identical_readings(self) -> int: ...
    @property
    def identical_since(self) -> float | None: ...
    @property
    def stuck(self) -> bool: ...
    @property
    def stuck_events(self) -> int: ...
    @property
    def last_byte(self) -> float | None: ...
    @property
    def last_reading(self) -> float | None: ...
    @property
    def last_reading_wall(self) -> float | None: ...
    @property
    def unknown_labels(self) -> int: ...
    @property
    def undecodable(self) -> int: ...
    @property
    def hex(self) -> HexStats: ...
    @property
    def identity(self) -> Identity | None: ...
    @property
    def daily(self) -> tuple[DailyRecord, ...]: ...
    @property
    def daily_date(self) -> date | None: ...
    def snapshot(self) -> DeviceChange: ...


@dataclass(frozen=True, slots=True)
class DeviceChange:
    """A device's reader state at one moment: sent to ``hub.device_changes()`` subscribers
    whenever its state, reason or stuck flag changes, or its daily history is read."""

    device: str
    state: ReaderState
    reason: str
    stuck: bool = False
    daily: tuple[DailyRecord, ...] = ()  # as DeviceState.daily
    daily_date: date | None = None  # None: no history read (yet)


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
