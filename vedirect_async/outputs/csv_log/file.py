"""One device's CSV file: whole-line appends, tail repair, header check, rotation, retention.

Every file operation runs in a worker thread (``asyncio.to_thread``) under a timeout, one at
a time per file, so a hung disk never blocks the event loop and a cancellation never splits a
line (the write completes in its thread). See the package docstring for the rules.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import re
from collections.abc import Awaitable, Coroutine
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["CsvFile"]

_LOGGER = logging.getLogger("vedirect_async.outputs.csv_log")
_T = TypeVar("_T")

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


def _inspect_sync(path: Path, header: bytes, size: int) -> int | None:
    """Size up to the last complete line if the file starts with ``header``, else None."""
    with path.open("rb") as f:
        head = f.read(min(size, len(header)))
        if head != header[: len(head)]:
            return None
        if size <= len(header):
            return size if head == header else 0
        start = max(0, size - _HEAD_BYTES)
        f.seek(start)
        tail = f.read(size - start)
    end = tail.rfind(b"\n")
    if end < 0:
        return None  # no complete line in the last 64 KiB: not a file of ours
    return start + end + 1


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
                    await asyncio.to_thread(os.close, fd)
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
                await self._io(asyncio.to_thread(os.close, fd))
            except (OSError, TimeoutError):
                _LOGGER.debug("csv: closing %s failed", self.path, exc_info=True)

    async def _open(self, day: date) -> None:
        """Open for append: header for a new file, move aside a foreign one, repair the tail."""
        keep: int | None = None
        try:
            st = await self._io(asyncio.to_thread(os.stat, self.path))
        except FileNotFoundError:
            st = None
        if st is not None and st.st_size > 0:
            file_day = self._day_of(st.st_mtime)
            keep = await self._io(
                asyncio.to_thread(_inspect_sync, self.path, self.header, st.st_size)
            )
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
            opened = await asyncio.to_thread(os.open, self.path, _FLAGS, 0o644)
            if generation != self._generation:  # timed out or cancelled meanwhile: no leak
                await asyncio.to_thread(os.close, opened)
                raise TimeoutError("open finished after it was given up")
            return opened

        fd = await self._io(opening())
        self._fd = fd
        try:
            st = await self._io(asyncio.to_thread(os.fstat, fd))
            self._ident, self._size = (st.st_dev, st.st_ino), st.st_size
            if keep is not None and keep < self._size:
                _LOGGER.warning(
                    "csv: %s ended with a partial line (%d bytes); cut off",
                    self.path,
                    self._size - keep,
                )
                await self._io(asyncio.to_thread(os.ftruncate, fd, keep))
                self._size = keep
                self.repaired += 1
            if self._size == 0:
                await self._write(self.header, check=False)
        except BaseException:
            await self.close()
            raise

    async def _write(self, data: bytes, *, check: bool, row: bool = False) -> None:
        """Append whole lines in one worker-thread call (see :func:`_append_sync`).

        The bookkeeping runs in the same task as the write, so it happens even when the
        caller is cancelled meanwhile (``rows_appended`` then tells whether the row landed).
        """
        fd, generation = self._fd, self._generation
        assert fd is not None
        path = self.path if check else None

        async def operation() -> None:
            written = await asyncio.to_thread(
                _append_sync, fd, path, self._ident, data, self._size, sync=self.fsync
            )
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
        await self._io(asyncio.to_thread(os.rename, self.path, self.path.with_name(name)))
        _LOGGER.info("csv: %s moved to %s", self.path, name)
        rotated.append((day.isoformat(), n, name))
        if self.retention:
            rotated.sort()
            for _, _, old in rotated[: max(0, len(rotated) - self.retention)]:
                await self._io(asyncio.to_thread(os.remove, self.path.with_name(old)))
                _LOGGER.info("csv: removed old %s (retention %d)", old, self.retention)

    async def _rotated(self) -> list[tuple[str, int, str]]:
        """The rotated files of this path: (day, N, name)."""
        stem, suffix = re.escape(self.path.stem), re.escape(self.path.suffix)
        pattern = re.compile(rf"{stem}\.(\d{{4}}-\d\d-\d\d)(?:\.(\d+))?{suffix}")
        names = await self._io(asyncio.to_thread(os.listdir, self.path.parent))
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
