"""Logging for the service: one line per event, a device name in each, repeats rate-limited.

- :func:`setup_logging` configures the root logger from ``[logging]``: stderr by default (what
  containers and systemd collect), optionally a rotating file too. Records are formatted and
  written by a background thread (:class:`logging.handlers.QueueListener`), so a slow or dead
  disk never blocks the event loop.
- :class:`RateLimitedLogger` lets any module log a repeating event at most once per interval
  per key, with the number of suppressed repeats appended to the next line.
"""

from __future__ import annotations

import logging
import logging.handlers
import queue
import sys
import time
from collections.abc import Callable
from typing import Any

from .config import LoggingConfig

__all__ = ["LOG_FORMAT", "LoggingHandle", "RateLimitedLogger", "setup_logging"]

LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"

# Libraries that are chatty at DEBUG about things the service already reports itself.
_QUIET_LIBRARIES = ("asyncio", "serial_asyncio_fast", "aiohttp.access")


class LoggingHandle:
    """What :func:`setup_logging` installed; :meth:`close` flushes and removes it."""

    def __init__(
        self,
        listener: logging.handlers.QueueListener,
        root_handler: logging.Handler,
        sinks: list[logging.Handler],
    ) -> None:
        self._listener = listener
        self._root_handler = root_handler
        self._sinks = sinks

    def close(self) -> None:
        """Write out every queued record, then detach the handlers (idempotent)."""
        root = logging.getLogger()
        if self._root_handler in root.handlers:
            root.removeHandler(self._root_handler)
            self._listener.stop()  # drains the queue before returning
            for sink in self._sinks:
                sink.close()


def setup_logging(config: LoggingConfig) -> LoggingHandle:
    """Route the root logger to stderr (and ``config.file``, rotated) at ``config.level``."""
    formatter = logging.Formatter(LOG_FORMAT)
    sinks: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if config.file:
        sinks.append(
            logging.handlers.RotatingFileHandler(
                config.file,
                maxBytes=config.max_bytes,
                backupCount=config.backup_count,
                encoding="utf-8",
                delay=True,  # the file is opened by the listener thread, not here
            )
        )
    for sink in sinks:
        sink.setFormatter(formatter)
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    root_handler = logging.handlers.QueueHandler(records)
    listener = logging.handlers.QueueListener(records, *sinks, respect_handler_level=False)
    root = logging.getLogger()
    root.setLevel(config.level)
    root.addHandler(root_handler)
    if config.level == "DEBUG":
        for name in _QUIET_LIBRARIES:
            logging.getLogger(name).setLevel(logging.INFO)
    listener.start()
    return LoggingHandle(listener, root_handler, sinks)


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
