"""Logging for the service: one line per event, a device name in each, repeats rate-limited.

- :func:`setup_logging` configures the root logger from ``[logging]``: stderr by default (what
  containers and systemd collect), optionally a rotating file too. Records are formatted and
  written by a background thread, so a slow or dead disk never blocks the event loop; its queue
  is bounded (:data:`QUEUE_SIZE`): when stderr stalls, records are dropped and counted, and one
  line says how many once writing works again. A log file that fails is reported once a minute.
- :class:`RateLimitedLogger` lets any module log a repeating event at most once per interval
  per key, with the number of suppressed repeats appended to the next line.
"""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import queue
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from .config import LoggingConfig
from .errors import ConfigError

__all__ = ["LOG_FORMAT", "QUEUE_SIZE", "LoggingHandle", "RateLimitedLogger", "setup_logging"]

LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"

# Libraries that are chatty at DEBUG about things the service already reports itself.
_QUIET_LIBRARIES = ("asyncio", "serial_asyncio_fast", "aiohttp.access")


# Records waiting for the writer thread. A stalled stderr (a pipe nobody reads) or a hung disk
# then costs at most this many records of memory; more are dropped and counted.
QUEUE_SIZE = 10_000
# A failing log file is reported on stderr at most this often (not one traceback per record).
SINK_REPORT_INTERVAL = 60.0


class _BoundedQueueHandler(logging.handlers.QueueHandler):
    """Hands records to the writer thread; drops (and counts) them when its queue is full.

    The first record that fits again after drops is preceded by one WARNING saying how many
    were lost. Calls are serialized by the handler's lock.
    """

    def __init__(self, records: queue.Queue[logging.LogRecord | None]) -> None:
        super().__init__(records)
        self.records = records
        self.dropped = 0  # since start
        self._unreported = 0

    def enqueue(self, record: logging.LogRecord) -> None:
        try:
            if self._unreported:
                self.records.put_nowait(self._notice())
                self._unreported = 0
            self.records.put_nowait(record)
        except queue.Full:
            self.dropped += 1
            self._unreported += 1

    def flush_notice(self, timeout: float | None) -> None:
        """At the end: say how many records were dropped since the last notice, if any
        (waiting up to ``timeout`` for room; :class:`queue.Full` when there is none)."""
        with self.lock or contextlib.nullcontext():
            if self._unreported:
                self.records.put(self._notice(), timeout=timeout)
                self._unreported = 0

    def _notice(self) -> logging.LogRecord:
        return logging.LogRecord(
            __name__,
            logging.WARNING,
            __file__,
            0,
            "logging: %d records dropped: stderr or the log file did not keep up (%d since start)",
            (self._unreported, self.dropped),
            None,
        )


class _ReportingFileHandler(logging.handlers.RotatingFileHandler):
    """A rotating log file whose write errors are counted and reported at a sane rate on stderr
    (the standard handler prints a traceback per record)."""

    def __init__(self, config: LoggingConfig) -> None:
        super().__init__(
            config.file,
            maxBytes=config.max_bytes,
            backupCount=config.backup_count,
            encoding="utf-8",
        )
        self.failures = 0
        self._reported_at: float | None = None

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        self.failures += 1
        now = time.monotonic()
        if self._reported_at is not None and now - self._reported_at < SINK_REPORT_INTERVAL:
            return
        self._reported_at = now
        error = sys.exc_info()[1]
        with contextlib.suppress(Exception):
            sys.stderr.write(
                f"vedirect-async: log file {self.baseFilename}: {error}; "
                f"{self.failures} records not written so far\n"
            )


def _write_out(
    records: queue.Queue[logging.LogRecord | None], sinks: list[logging.Handler]
) -> None:
    """The writer thread: every record to every sink, until the None sentinel."""
    while True:
        record = records.get()
        if record is None:
            return
        for sink in sinks:
            sink.handle(record)


class LoggingHandle:
    """What :func:`setup_logging` installed; :meth:`close` flushes and removes it."""

    def __init__(
        self,
        thread: threading.Thread,
        root_handler: _BoundedQueueHandler,
        sinks: list[logging.Handler],
    ) -> None:
        self._thread = thread
        self._root_handler = root_handler
        self._sinks = sinks

    @property
    def dropped(self) -> int:
        """Records dropped because the writer thread fell :data:`QUEUE_SIZE` behind."""
        return self._root_handler.dropped

    def close(self, timeout: float | None = None) -> bool:
        """Write out every queued record, then detach the handlers (idempotent).

        With a ``timeout`` (seconds) this never waits longer: when the writer is stuck (stderr
        not read, a hung disk) it returns False and the records still queued are lost. True
        when everything was written.
        """
        root = logging.getLogger()
        if self._root_handler not in root.handlers:
            return not self._thread.is_alive()
        root.removeHandler(self._root_handler)
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            self._root_handler.flush_notice(timeout)
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            self._root_handler.records.put(None, timeout=left)
        except queue.Full:
            return False
        self._thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        if self._thread.is_alive():
            return False
        for sink in self._sinks:
            sink.close()
        return True


def setup_logging(config: LoggingConfig) -> LoggingHandle:
    """Route the root logger to stderr (and ``config.file``, rotated) at ``config.level``.

    The log file is opened here, so a file that cannot be written (a missing directory) is a
    :class:`ConfigError` at start-up instead of an error per record.
    """
    formatter = logging.Formatter(LOG_FORMAT)
    sinks: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if config.file:
        try:
            sinks.append(_ReportingFileHandler(config))
        except OSError as exc:
            raise ConfigError(
                f"logging.file = {config.file!r}: cannot open: {exc.strerror or exc} "
                "(expected a writable file in an existing directory)"
            ) from None
    for sink in sinks:
        sink.setFormatter(formatter)
    records: queue.Queue[logging.LogRecord | None] = queue.Queue(QUEUE_SIZE)
    root_handler = _BoundedQueueHandler(records)
    thread = threading.Thread(target=_write_out, args=(records, sinks), name="log", daemon=True)
    root = logging.getLogger()
    root.setLevel(config.level)
    root.addHandler(root_handler)
    if config.level == "DEBUG":
        for name in _QUIET_LIBRARIES:
            logging.getLogger(name).setLevel(logging.INFO)
    thread.start()
    return LoggingHandle(thread, root_handler, sinks)


class RateLimitedLogger:
    """Logs an event at most once per ``interval`` seconds per key; counts what it held back.

    >>> limited = RateLimitedLogger(_LOGGER, interval=60)
    >>> limited.log(logging.WARNING, "bmv:checksum", "bmv: %d checksum errors", n)

    The first call for a key always logs. Later calls within ``interval`` are suppressed and
    counted; the next call that logs appends ``(N similar suppressed)``.
    """

    def __init__(
        self,
        logger: logging.Logger,
        interval: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.interval = interval
        self._clock = clock
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def log(self, level: int, key: str, msg: str, *args: Any, exc_info: bool = False) -> bool:
        """Log ``msg % args`` unless ``key`` was logged less than ``interval`` ago."""
        if not self.logger.isEnabledFor(level):
            return False
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return False
        self._last[key] = now
        held = self._suppressed.pop(key, 0)
        if held:
            msg += " (%d similar suppressed)"
            args = (*args, held)
        self.logger.log(level, msg, *args, exc_info=exc_info)
        return True

    def reset(self, key: str) -> None:
        """Forget ``key``: its next event logs immediately (e.g. after a recovery)."""
        self._last.pop(key, None)
        self._suppressed.pop(key, None)
