"""The CSV output: readings -> rows -> one :class:`~.file.CsvFile` per device, on the shared
delivery scaffold (:mod:`vedirect_async.outputs.delivery`): one :class:`Delivery` per file
(its retry timer and failure episode), a :class:`Schedule` for ``interval > 0``."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
from collections import deque
from collections.abc import Callable, Sequence
from datetime import UTC, date
from pathlib import Path
from typing import ClassVar

from ...backoff import Backoff
from ...csv_columns import CsvConfig, Rows, device_path, parse_columns
from ...errors import (
    DeliveryError,
    PermanentDeliveryError,
    SubscriptionClosed,
    TransientDeliveryError,
)
from ...hub import Hub, OutputState, Subscription
from ...reading import Reading
from ...state import OutputHealth
from ..base import Output
from ..delivery import Delivery, Schedule
from .file import CsvFile

__all__ = ["CsvOutput", "classify"]

_LOGGER = logging.getLogger("vedirect_async.outputs.csv_log")
_SHUTDOWN_BUDGET = 0.8  # seconds to flush at shutdown (the service allows outputs 1 s)

# errno -> (counter, what the reason says, permanent?). Permanent: a person has to act (fix
# the permissions, remount read-write); the output is *failed* at once, so /health shows it.
_ERRNO: dict[int, tuple[str, str, bool]] = {
    errno.ENOSPC: ("disk_full", "disk full", False),
    errno.EFBIG: ("disk_full", "disk full", False),
    errno.EDQUOT: ("disk_full", "disk full", False),
    errno.EACCES: ("permission_denied", "not writable", True),
    errno.EPERM: ("permission_denied", "not writable", True),
    errno.EROFS: ("read_only", "read-only filesystem", True),
}


def classify(exc: OSError | TimeoutError, path: Path) -> tuple[str, DeliveryError]:
    """(counter, typed error with the /health reason) for a failed file operation, decided by
    the exception's type and errno, never by its text."""
    if isinstance(exc, TimeoutError):
        return "timeouts", TransientDeliveryError(f"{path}: {exc} (disk hung?)")
    detail = exc.strerror or str(exc)
    if exc.errno in _ERRNO:
        counter, what, permanent = _ERRNO[exc.errno]
        kind = PermanentDeliveryError if permanent else TransientDeliveryError
        return counter, kind(f"{path}: {what} ({detail})")
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        return "missing_directory", TransientDeliveryError(
            f"{path}: directory {path.parent} is missing ({detail})"
        )
    return "io_errors", TransientDeliveryError(f"{path}: {detail}")


class _Target:
    """A device's file, its formatter, its pending rows and its delivery (retry, episode)."""

    def __init__(self, file: CsvFile, rows: Rows, queue_size: int, delivery: Delivery) -> None:
        self.file = file
        self.rows = rows
        self.pending: deque[tuple[bytes, date]] = deque()
        self.queue_size = queue_size
        self.delivery = delivery
        self.permanent = False  # the current failure needs a person (EACCES, EROFS)
        self.failed_rows = 0  # rows lost since the failure began
        self.inflight: int | None = None  # file.rows_appended before the row being written

    @property
    def health(self) -> OutputHealth:
        """Degraded while rows only wait; failed once rows are lost or a person must act."""
        if self.permanent or self.failed_rows:
            return OutputHealth.FAILED
        return OutputHealth.DEGRADED

    @property
    def reason(self) -> str:
        lost = f"; {self.failed_rows} rows lost" if self.failed_rows else ""
        return self.delivery.reason + lost


class CsvOutput(Output):
    """The CSV log output (registered as ``csv``)."""

    name: ClassVar[str] = "csv"

    def __init__(
        self,
        config: CsvConfig,
        devices: Sequence[str],
        *,
        retry_initial: float = 1.0,
        retry_max: float = 30.0,
    ) -> None:
        self.config = config
        self.devices = tuple(devices)
        self.columns = parse_columns(config.columns, self.devices)
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self._targets: dict[str, _Target] = {}
        self.rows_written = 0
        self._progress = asyncio.Event()

    def subscribe(self, hub: Hub) -> Subscription:
        """FIFO of every reading for interval 0; newest per device for interval > 0."""
        return hub.subscribe(
            self.name, maxsize=self.config.queue_size, latest_only=self.config.interval > 0
        )

    def target(self, device: str, state: OutputState) -> _Target:
        """The file state of ``device`` (created on first use, no I/O)."""
        found = self._targets.get(device)
        if found is None:
            cfg = self.config
            utc = cfg.time_format == "utc"
            rows = Rows([c for c in self.columns if c.device in (None, device)], utc)
            file = CsvFile(
                device_path(cfg.path, device, self.devices),
                rows.header,
                rotate=cfg.rotate,
                max_bytes=cfg.max_bytes,
                retention=cfg.retention,
                fsync=cfg.fsync,
                timeout=cfg.timeout,
                utc=utc,
            )
            backoff = Backoff(self.retry_initial, self.retry_max)
            delivery = Delivery(self.name, state, backoff, logger=_LOGGER)
            found = self._targets[device] = _Target(file, rows, cfg.queue_size, delivery)
        return found

    async def run(self, readings: Subscription, state: OutputState) -> None:
        """Write rows until cancelled; then flush what is pending and close."""
        try:
            if self.config.interval <= 0:
                await self._every_reading(readings, state)
            else:
                await self._scheduled(readings, state)
        except asyncio.CancelledError:
            await self._shutdown(readings, state)
            raise
        except SubscriptionClosed:
            return  # unsubscribed

    async def _every_reading(self, readings: Subscription, state: OutputState) -> None:
        """One row per reading; rows waiting after a failure are retried on their own timer
        too, so they reach the disk even if no reading comes any more."""
        loop = asyncio.get_running_loop()
        while True:
            due = [
                t.delivery.retry_at
                for t in self._targets.values()
                if t.pending and t.delivery.retry_at is not None
            ]
            if due:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(0.0, min(due) - loop.time())):
                        await readings.wait()
            else:
                await readings.wait()
            while (reading := readings.get_nowait()) is not None:
                await self.write(reading, state)
            if readings.dropped:
                state.counters["readings_dropped"] = readings.dropped
            await self._retry_due(state)

    async def _scheduled(self, readings: Subscription, state: OutputState) -> None:
        """One row per device per tick with its newest reading; waiting rows retried per tick.
        Ticks are absolute (no drift); ticks missed by a slow disk are skipped and counted."""
        schedule = Schedule(self.config.interval)
        schedule.start()
        while True:
            await schedule.wait()
            for reading in readings.drain_latest().values():
                await self.write(reading, state)
            await self._retry_due(state)
            skipped = schedule.done()
            if skipped:
                state.count("ticks_skipped", skipped)

    async def _retry_due(self, state: OutputState) -> None:
        for target in self._targets.values():
            if target.pending and target.delivery.due():
                await self._flush(target, state, force=False)

    async def write(self, reading: Reading, state: OutputState, *, force: bool = False) -> None:
        """Format one row and write it (after the rows still pending for that device)."""
        target = self.target(reading.device, state)
        utc = target.rows.utc
        day = (reading.time.astimezone(UTC) if utc else reading.time.astimezone()).date()
        if len(target.pending) >= target.queue_size:
            target.pending.popleft()
            target.failed_rows += 1
            state.count("rows_dropped")
        target.pending.append((target.rows.row(reading), day))
        await self._flush(target, state, force=force)

    async def _flush(self, target: _Target, state: OutputState, *, force: bool) -> None:
        if target.delivery.failing and not force and not target.delivery.due():
            self._show(state)
            return
        while target.pending:
            line, day = target.pending[0]
            target.inflight = target.file.rows_appended
            try:
                await target.file.append(line, day)
            except (OSError, TimeoutError) as exc:
                target.inflight = None
                self._failure(target, state, exc)
                return
            target.inflight = None
            self._written(target, state)
        if target.delivery.failing:
            lost = f"{target.failed_rows} rows lost meanwhile" if target.failed_rows else ""
            target.delivery.succeeded(report=False, detail=lost)
            target.failed_rows, target.permanent = 0, False
        state.counters["rotations"] = sum(t.file.rotations for t in self._targets.values())
        self._show(state, ok=True)

    def _written(self, target: _Target, state: OutputState) -> None:
        target.pending.popleft()
        state.count("rows")
        self.rows_written += 1
        self._progress.set()

    def _failure(self, target: _Target, state: OutputState, exc: OSError | TimeoutError) -> None:
        self._progress.set()
        counter, error = classify(exc, target.file.path)
        state.count("write_errors")
        state.count(counter)
        target.permanent = isinstance(error, PermanentDeliveryError)
        target.delivery.failed(error, health=target.health)
        self._show(state)

    def _show(self, state: OutputState, *, ok: bool = False) -> None:
        """Report the worst failing file (its reason), or ``ok`` after a success."""
        failing = [t for t in self._targets.values() if t.delivery.failing]
        if not failing:
            if ok:
                state.ok()
            return
        worst = max(failing, key=lambda t: t.health is OutputHealth.FAILED)
        state.health, state.reason = worst.health, worst.reason

    async def _shutdown(self, readings: Subscription, state: OutputState) -> None:
        """Cancelled: write what is queued or pending (bounded in time), close the files."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _SHUTDOWN_BUDGET
        for target in self._targets.values():
            # a hung disk must not hold the shutdown for the full per-operation timeout
            target.file.timeout = min(target.file.timeout, _SHUTDOWN_BUDGET / 2)
            await target.file.settle(max(0.0, deadline - loop.time()))
            if target.inflight is not None and target.file.rows_appended > target.inflight:
                self._written(target, state)  # the row being written when cancelled landed
            target.inflight = None
        if self.config.interval <= 0:
            while loop.time() < deadline and (reading := readings.get_nowait()) is not None:
                await self.write(reading, state, force=True)
        for target in self._targets.values():
            if target.pending and loop.time() < deadline:
                await self._flush(target, state, force=True)
            if target.pending:
                state.count("rows_dropped", len(target.pending))
                _LOGGER.warning(
                    "csv: %d rows for %s not written at shutdown",
                    len(target.pending),
                    target.file.path,
                )
                target.pending.clear()
            await target.file.close()

    async def wait_progress(self, predicate: Callable[[], bool]) -> None:
        """Return once ``predicate()`` holds, checked after every row written or failed."""
        while not predicate():
            self._progress.clear()
            await self._progress.wait()

    async def wait_written(self, rows: int) -> None:
        """Return once ``rows`` rows in total have been written (for tests and tools)."""
        await self.wait_progress(lambda: self.rows_written >= rows)

    async def aclose(self) -> None:
        """Close every file (run() normally did already)."""
        for target in self._targets.values():
            await target.file.close()
