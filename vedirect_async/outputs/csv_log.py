"""CSV log: one row per reading (``interval = 0``) or per interval, whole lines only.

The default file is the old script's ``vedirect_data.csv`` with its columns and units
(``Time,Volts,Amps,AHr,SOC`` = BMV ``V``, ``I``, ``CE``, ``SOC`` in V, A, Ah and %).

Decisions (the README's "CSV log" part says the same for users):

- **Schedule.** ``interval = 0``: a FIFO subscription, one row per reading (a full queue
  drops the oldest readings, counted as ``readings_dropped``). ``interval > 0``: a coalescing
  subscription (newest reading per device) and one row per device per tick, ticks on an
  absolute monotonic schedule (start + k * interval, missed ticks skipped, never caught up).
  A device with no new reading since the last tick gets no row: a gap in the log means the
  device was silent, never repeated stale values.
- **Time** is the reading's own timestamp, ISO 8601 to the second: local time with its UTC
  offset (``2026-11-25T17:39:32+01:00``, unambiguous across DST) or UTC (``...Z``).
- **Values** are in the catalogue unit, written at the device's resolution (V with 3
  decimals, SOC with 1...); UNAVAILABLE (``---``) and absent fields are empty cells; ON/OFF
  as ``ON``/``OFF``; bitmask reasons joined with ``|``; TTG's infinity as ``inf``.
- **Several devices**: one file per device (each file has one header and one device's
  columns). ``{device}`` in ``path`` names the files; without it a single device writes
  ``path`` itself and several devices write ``<stem>_<device><suffix>``.
- **Whole lines only.** The file is opened unbuffered in append mode and each row is one
  ``write`` of a complete line, so a cancellation or SIGTERM never splits a line (the write
  completes in its thread). A short write or an error (disk full) truncates the file back
  to its last complete line. On (re)open a partial last line left by a power cut is cut off.
- **Header once**: a new or empty file gets the header. An existing file whose header
  differs (columns changed) is renamed aside like a rotated file and a new file started,
  never mixed. Every row the path is checked to still be the open file (deleted, moved,
  directory removed: reopened, or a failure if that is impossible).
- **Failures** (disk full, permission denied, directory missing, hung disk) are logged once
  per cause at WARNING, counted, shown as ``degraded`` (``failed`` once rows are being lost)
  with the reason, and retried with capped backoff; rows wait in a bounded queue meanwhile.
  Directories are never created: a missing one is usually an unmounted disk.
- **Rotation** (``daily`` / ``size``) renames the full file to
  ``<stem>.<YYYY-MM-DD>[.N]<suffix>`` (the day of its last row) and starts a new one; old
  data is never rewritten (SD cards). ``retention`` rotated files are kept per device.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import math
import os
import re
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import aiofiles
import aiofiles.os

from ..config import Config, CsvConfig
from ..csv_columns import ColumnError, Rows, device_path, parse_columns
from ..errors import SubscriptionClosed
from ..hub import Hub, OutputState, Subscription
from ..reading import Reading
from .base import Output

# ColumnError and parse_columns: re-exported only until config.py imports them from
# csv_columns (after the config split lands); then this line goes.
__all__ = ["ColumnError", "CsvFile", "CsvOutput", "csv_output", "next_tick", "parse_columns"]

_LOGGER = logging.getLogger(__name__)
_T = TypeVar("_T")

_SHUTDOWN_BUDGET = 0.8  # seconds to flush at shutdown (the service allows outputs 1 s)
_HEAD_BYTES = 65536  # a header or a last line longer than this is not ours

_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC


class _Moved(Exception):  # noqa: N818 - a signal between two functions, not an error
    """The path no longer names the open file (deleted, renamed, directory removed)."""


def _append_sync(
    fd: int, path: Path | None, ident: tuple[int, int] | None, data: bytes, size: int, *, sync: bool
) -> int:
    """In a worker thread, one call per row: check that ``path`` (unless None) still names the
    open file, append ``data`` with one ``write``, cut the file back to ``size`` (its last
    complete line) on a short write or an error, fsync if asked. Returns len(data)."""
    if path is not None:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise _Moved from None
        if (st.st_dev, st.st_ino) != ident:
            raise _Moved
    try:
        written = os.write(fd, data)
    except OSError:
        _cut(fd, size)
        raise
    if written != len(data):
        _cut(fd, size)
        raise OSError(errno.ENOSPC, f"short write ({written} of {len(data)} bytes)")
    if sync:
        os.fsync(fd)
    return written


def _cut(fd: int, size: int) -> None:
    try:
        os.ftruncate(fd, size)
    except OSError:
        _LOGGER.debug("csv: cutting back to %d bytes failed", size, exc_info=True)


# aiofiles runs these in its worker threads, off the event loop
_append = aiofiles.os.wrap(_append_sync)
_open = aiofiles.os.wrap(os.open)
_close = aiofiles.os.wrap(os.close)
_fstat = aiofiles.os.wrap(os.fstat)
_ftruncate = aiofiles.os.wrap(os.ftruncate)


def next_tick(start: float, interval: float, now: float) -> float:
    """The first tick ``start + k * interval`` strictly after ``now`` (missed ticks skipped)."""
    k = math.floor((now - start) / interval) + 1
    return start + max(k, 1) * interval


# -- one file --------------------------------------------------------------------------------


class CsvFile:
    """One device's CSV file: header, whole-line appends, repair, rotation, retention.

    Every method may raise OSError or TimeoutError; after one the file is closed and the next
    :meth:`append` reopens it (and repairs its tail). No I/O in the constructor.
    """

    def __init__(
        self,
        path: Path,
        header: bytes,
        *,
        rotate: str = "none",
        max_bytes: int = 10_000_000,
        retention: int = 30,
        fsync: bool = False,
        timeout: float = 10.0,
        utc: bool = False,
    ) -> None:
        self.path = path
        self.header = header
        self.rotate = rotate
        self.max_bytes = max_bytes
        self.retention = retention
        self.fsync = fsync
        self.timeout = timeout
        self.utc = utc
        self.rotations = 0
        self.repaired = 0  # partial last lines cut off at open
        self.moved_aside = 0  # files with another header renamed aside
        self._fd: int | None = None
        self._generation = 0  # bumped when the fd is closed: late bookkeeping is ignored
        self.rows_appended = 0  # rows that landed in the file (any file of this path)
        self._ident: tuple[int, int] | None = None
        self._size = 0  # bytes in the file, all complete lines
        self._day: date | None = None  # day of the newest row in the file
        self._busy: asyncio.Future[Any] | None = None  # an operation still running

    @property
    def is_open(self) -> bool:
        return self._fd is not None

    def _day_of(self, timestamp: float) -> date:
        moment = datetime.fromtimestamp(timestamp, UTC)
        return (moment if self.utc else moment.astimezone()).date()

    async def _io(self, operation: Awaitable[_T]) -> _T:
        """Run one file operation with the timeout; one at a time, even after a timeout."""
        busy = self._busy
        if busy is not None:
            if isinstance(operation, Coroutine):
                operation.close()  # not run: one operation at a time
            if not busy.done():
                raise TimeoutError(f"a file operation is still hanging after {self.timeout} s")
            self._busy = None
            await self._forget()
            raise TimeoutError("the previous file operation had hung; reopening the file")
        task = asyncio.ensure_future(operation)
        task.add_done_callback(_retrieve)
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that
            # races the operation finishing, and shutdown would then hang on this output.
            async with asyncio.timeout(self.timeout):
                return await asyncio.shield(task)
        except TimeoutError:
            self._busy = task
            self._generation += 1  # abandoned: its late result must not be used
            raise TimeoutError(f"file operation took longer than {self.timeout} s") from None
        except asyncio.CancelledError:
            if not task.done():
                self._busy = task  # still running in its thread: settle() waits for it
                self._generation += 1
            raise

    async def settle(self, within: float) -> bool:
        """Wait (up to ``within`` s) for an operation left running by a cancellation."""
        busy = self._busy
        if busy is None:
            return True
        await asyncio.wait([busy], timeout=within)
        if not busy.done():
            return False
        self._busy = None
        await self._forget()  # the interrupted bookkeeping is unknown: reopen to be exact
        return True

    async def _forget(self) -> None:
        """Close the file after an interrupted operation, without the one-at-a-time check."""
        fd, self._fd = self._fd, None
        self._generation += 1
        if fd is not None:
            try:
                async with asyncio.timeout(self.timeout):
                    await _close(fd)
            except (OSError, TimeoutError):
                _LOGGER.debug("csv: closing %s failed", self.path, exc_info=True)

    async def append(self, line: bytes, day: date) -> None:
        """Append one complete line (rotating first if due)."""
        if self._fd is None:
            await self._open(day)
        if self._size > len(self.header) and (
            (self.rotate == "daily" and self._day is not None and day != self._day)
            or (self.rotate == "size" and self._size + len(line) > self.max_bytes)
        ):
            await self._rotate()
            await self._open(day)
        try:
            await self._write(line, check=True, row=True)
        except _Moved:
            _LOGGER.info("csv: %s was removed or replaced; reopening", self.path)
            await self.close()
            await self._open(day)
            await self._write(line, check=False, row=True)
        self._day = day

    async def close(self) -> None:
        """Close the file (errors ignored: every row on disk is already complete)."""
        if self._busy is not None:
            return  # an operation still runs on the fd: _forget() closes it once it returns
        fd, self._fd = self._fd, None
        self._generation += 1
        if fd is not None:
            try:
                await self._io(_close(fd))
            except (OSError, TimeoutError):
                _LOGGER.debug("csv: closing %s failed", self.path, exc_info=True)

    async def _open(self, day: date) -> None:
        """Open for append: header for a new file, move aside a foreign one, repair the tail."""
        keep: int | None = None
        try:
            st = await self._io(aiofiles.os.stat(self.path))
        except FileNotFoundError:
            st = None
        if st is not None and st.st_size > 0:
            file_day = self._day_of(st.st_mtime)
            keep = await self._io(self._inspect(st.st_size))
            if keep is None:
                _LOGGER.warning(
                    "csv: %s has other columns than configured; starting a new file", self.path
                )
                self.moved_aside += 1
                await self._move_aside(file_day)
            elif self.rotate == "daily" and keep > len(self.header) and file_day != day:
                await self._move_aside(file_day)
                self.rotations += 1
            else:
                self._day = file_day
        generation = self._generation

        async def opening() -> int:
            opened: int = await _open(self.path, _FLAGS, 0o644)
            if generation != self._generation:  # timed out or cancelled meanwhile: no leak
                await _close(opened)
                raise TimeoutError("open finished after it was given up")
            return opened

        fd = await self._io(opening())
        self._fd = fd
        try:
            st = await self._io(_fstat(fd))
            self._ident, self._size = (st.st_dev, st.st_ino), st.st_size
            if keep is not None and keep < self._size:
                _LOGGER.warning(
                    "csv: %s ended with a partial line (%d bytes); cut off",
                    self.path,
                    self._size - keep,
                )
                await self._io(_ftruncate(fd, keep))
                self._size = keep
                self.repaired += 1
            if self._size == 0:
                await self._write(self.header, check=False)
        except BaseException:
            await self.close()
            raise

    async def _inspect(self, size: int) -> int | None:
        """Size up to the last complete line if the header matches, else None."""
        async with aiofiles.open(self.path, "rb") as f:
            head = await f.read(min(size, len(self.header)))
            if head != self.header[: len(head)]:
                return None
            if size <= len(self.header):
                return size if head == self.header else 0
            start = max(0, size - _HEAD_BYTES)
            await f.seek(start)
            tail = await f.read(size - start)
        end = tail.rfind(b"\n")
        if end < 0:
            return None  # no complete line in the last 64 KiB: not a file of ours
        return start + end + 1

    async def _write(self, data: bytes, *, check: bool, row: bool = False) -> None:
        """Append whole lines in one worker-thread call (see :func:`_append_sync`).

        The bookkeeping runs in the same task as the write, so it happens even when the
        caller is cancelled meanwhile (``rows_appended`` then tells whether the row landed).
        """
        fd, generation = self._fd, self._generation
        assert fd is not None
        path = self.path if check else None

        async def operation() -> None:
            written = await _append(fd, path, self._ident, data, self._size, sync=self.fsync)
            if generation == self._generation:
                self._size += written
            if row:
                self.rows_appended += 1

        try:
            await self._io(operation())
        except OSError:
            await self.close()  # _append_sync cut the file back; reopen on the next row
            raise

    async def _rotate(self) -> None:
        await self.close()
        assert self._day is not None
        await self._move_aside(self._day)
        self.rotations += 1

    async def _move_aside(self, day: date) -> None:
        """Rename the file to ``<stem>.<day>[.N]<suffix>`` and apply the retention.

        N is one more than the highest N of that day already there, so a name freed by the
        retention is never reused (the order of the rotated files stays their age).
        """
        stem, suffix = self.path.stem, self.path.suffix
        rotated = await self._rotated()
        numbers = [n for d, n, _ in rotated if d == day.isoformat()]
        n = max(numbers) + 1 if numbers else 0
        name = f"{stem}.{day.isoformat()}{f'.{n}' if n else ''}{suffix}"
        await self._io(aiofiles.os.rename(self.path, self.path.with_name(name)))
        _LOGGER.info("csv: %s moved to %s", self.path, name)
        rotated.append((day.isoformat(), n, name))
        if self.retention:
            rotated.sort()
            for _, _, old in rotated[: max(0, len(rotated) - self.retention)]:
                await self._io(aiofiles.os.remove(self.path.with_name(old)))
                _LOGGER.info("csv: removed old %s (retention %d)", old, self.retention)

    async def _rotated(self) -> list[tuple[str, int, str]]:
        """The rotated files of this path: (day, N, name)."""
        stem, suffix = re.escape(self.path.stem), re.escape(self.path.suffix)
        pattern = re.compile(rf"{stem}\.(\d{{4}}-\d\d-\d\d)(?:\.(\d+))?{suffix}")
        names = await self._io(aiofiles.os.listdir(self.path.parent))
        found = []
        for name in names:
            match = pattern.fullmatch(name)
            if match:
                found.append((match.group(1), int(match.group(2) or 0), name))
        return found


def _retrieve(task: asyncio.Future[Any]) -> None:
    """Mark a background operation's exception as seen (it is reported where awaited)."""
    if not task.cancelled():
        task.exception()


# -- the output ------------------------------------------------------------------------------


def _describe(exc: BaseException, path: Path) -> tuple[str, str]:
    """(counter, health reason) for a failure."""
    if isinstance(exc, TimeoutError):
        return "timeouts", f"{path}: {exc} (disk hung?)"
    number = getattr(exc, "errno", None)
    detail = getattr(exc, "strerror", None) or str(exc)
    if number in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
        return "disk_full", f"{path}: disk full ({detail})"
    if number in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "permission_denied", f"{path}: not writable ({detail})"
    if number in (errno.ENOENT, errno.ENOTDIR):
        return "missing_directory", f"{path}: directory {path.parent} is missing ({detail})"
    return "io_errors", f"{path}: {detail}"


class _Target:
    """A device's file, its formatter, its pending rows and its retry state."""

    def __init__(self, file: CsvFile, rows: Rows, queue_size: int) -> None:
        self.file = file
        self.rows = rows
        self.pending: deque[tuple[bytes, date]] = deque()
        self.queue_size = queue_size
        self.reason = ""  # current failure, "" when writing fine
        self.failed_rows = 0  # rows lost since the failure began
        self.retry_at = 0.0
        self.delay = 0.0
        self.inflight: int | None = None  # file.rows_appended before the row being written


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

    def target(self, device: str) -> _Target:
        """The file state of ``device`` (created on first use, no I/O)."""
        found = self._targets.get(device)
        if found is None:
            cfg = self.config
            utc = cfg.time_format == "utc"
            columns = [c for c in self.columns if c.device in (None, device)]
            rows = Rows(columns, utc)
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
            found = self._targets[device] = _Target(file, rows, cfg.queue_size)
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
            due = [t.retry_at for t in self._targets.values() if t.pending]
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
        """One row per device per tick with its newest reading; waiting rows retried per tick."""
        loop = asyncio.get_running_loop()
        interval = self.config.interval
        start = loop.time()
        tick = start + interval
        while True:
            await asyncio.sleep(max(0.0, tick - loop.time()))
            for reading in readings.drain_latest().values():
                await self.write(reading, state)
            await self._retry_due(state)
            tick = next_tick(start, interval, loop.time())

    async def _retry_due(self, state: OutputState) -> None:
        now = asyncio.get_running_loop().time()
        for target in self._targets.values():
            if target.pending and now >= target.retry_at:
                await self._flush(target, state, force=False)

    async def write(self, reading: Reading, state: OutputState, *, force: bool = False) -> None:
        """Format one row and write it (after the rows still pending for that device)."""
        target = self.target(reading.device)
        utc = target.rows.utc
        day = (reading.time.astimezone(UTC) if utc else reading.time.astimezone()).date()
        if len(target.pending) >= target.queue_size:
            target.pending.popleft()
            target.failed_rows += 1
            state.count("rows_dropped")
        target.pending.append((target.rows.row(reading), day))
        await self._flush(target, state, force=force)

    async def _flush(self, target: _Target, state: OutputState, *, force: bool) -> None:
        loop = asyncio.get_running_loop()
        if target.reason and not force and loop.time() < target.retry_at:
            self._report(target, state)
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
        if target.reason:
            _LOGGER.info(
                "csv: %s writable again (%d rows lost meanwhile)",
                target.file.path,
                target.failed_rows,
            )
            target.reason, target.failed_rows, target.delay = "", 0, 0.0
        state.counters["rotations"] = sum(t.file.rotations for t in self._targets.values())
        failing = [t.reason for t in self._targets.values() if t.reason]
        if failing:
            state.degraded(failing[0])
        else:
            state.ok()

    def _written(self, target: _Target, state: OutputState) -> None:
        target.pending.popleft()
        state.count("rows")
        self.rows_written += 1
        self._progress.set()

    def _failure(self, target: _Target, state: OutputState, exc: BaseException) -> None:
        self._progress.set()
        counter, reason = _describe(exc, target.file.path)
        state.count("write_errors")
        state.count(counter)
        if reason != target.reason:
            _LOGGER.warning("csv: %s; rows wait and are retried", reason)
        else:
            _LOGGER.debug("csv: still failing: %s", reason)
        target.reason = reason
        target.delay = min(self.retry_max, max(self.retry_initial, target.delay * 2))
        target.retry_at = asyncio.get_running_loop().time() + target.delay
        self._report(target, state)

    def _report(self, target: _Target, state: OutputState) -> None:
        if target.failed_rows:
            reason = f"{target.reason}; {target.failed_rows} rows lost"
            if state.reason != reason or state.health != "failed":
                state.failed(reason)
        else:
            state.degraded(target.reason)

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


def csv_output(config: Config) -> CsvOutput | None:
    """The registry factory: the CSV output, or None when ``[csv] enabled = false``."""
    if not config.csv.enabled:
        return None
    return CsvOutput(config.csv, [device.name for device in config.device])
