"""What keeps hostile or broken clients from exhausting the service (issue 16).

- :class:`ConnectionGuard` caps the connections the server holds open. Descriptors are shared
  with the serial devices, the CSV files, the log file and the outputs' own connections, so
  the cap leaves a reserve under ``RLIMIT_NOFILE`` (:func:`connection_cap`). A connection
  beyond the cap replaces the one that has been idle longest (no request being handled),
  so an idle flood cannot lock out ``/health``; when every connection is busy, the new one
  is closed at once.
- Connections that send no complete request within ``IDLE_TIMEOUT`` are closed: that is
  aiohttp's ``keepalive_timeout``, which runs from the moment a connection is accepted and
  from the end of each response (its default of 3,630 s let 1,100 idle sockets exhaust the
  descriptors).
- :class:`RequestLog` replaces aiohttp's server logger: a malformed request is one short,
  rate-limited line instead of a traceback per request.
"""

from __future__ import annotations

import asyncio
import logging
import re
import resource
import sys
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Handler

from ..logsetup import RateLimitedLogger

__all__ = ["ConnectionGuard", "RequestLog", "connection_cap"]

IDLE_TIMEOUT = 5.0  # seconds to send a complete request (from accept, or after a response)
MAX_CONNECTIONS = 256  # open connections at most, whatever the descriptor limit allows
FD_RESERVE = 128  # descriptors kept for devices, files, logging and the outputs' connections
MIN_CONNECTIONS = 16  # even under a tiny descriptor limit, /health and the page get in
BACKLOG = 128  # listen backlog; asyncio may accept this many at once before any is closed
LOG_INTERVAL = 60.0  # seconds between two lines about the same kind of client trouble


def connection_cap(backlog: int = BACKLOG, limit: int = MAX_CONNECTIONS) -> int:
    """Connections to allow: ``limit``, less when the descriptor limit is low.

    asyncio accepts up to ``backlog`` sockets in one go before their protocols run, so those
    are kept free too: soft ``RLIMIT_NOFILE`` - ``FD_RESERVE`` - ``backlog``.
    """
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return limit
    return max(MIN_CONNECTIONS, min(limit, soft - FD_RESERVE - backlog))


@dataclass
class _Connection:
    transport: asyncio.Transport
    busy: int = 0  # requests being handled on it (a live stream counts for its whole life)


class ConnectionGuard:
    """Counts and caps the server's connections; wraps its protocol factory."""

    def __init__(self, cap: int | None = None, logger: logging.Logger | None = None) -> None:
        self.cap = cap  # None: no cap (an app served by a test server)
        # accepted connections, the one idle longest first (moved to the end when used)
        self._open: dict[asyncio.Transport, _Connection] = {}
        self.accepted = 0
        self.evicted = 0  # idle connections closed to make room
        self.refused = 0  # new connections closed because every open one was busy
        self._limited = RateLimitedLogger(logger or logging.getLogger(__name__), LOG_INTERVAL)

    @property
    def open(self) -> int:
        return len(self._open)

    def wrap(self, factory: Callable[[], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
        """A protocol factory for ``loop.create_server`` that applies the cap."""
        return lambda: _Guarded(self, factory())

    def admit(self, transport: asyncio.Transport) -> bool:
        """Take a new connection in, making room if needed; False when it must be closed."""
        if self.cap is not None and len(self._open) >= self.cap:
            idle = next((c for c in self._open.values() if not c.busy), None)
            if idle is None:
                self.refused += 1
                self._limited.log(
                    logging.WARNING,
                    "refused",
                    "http: %d connections open, all busy: a new one closed at once",
                    len(self._open),
                )
                return False
            del self._open[idle.transport]
            idle.transport.abort()
            self.evicted += 1
            self._limited.log(
                logging.WARNING,
                "evicted",
                "http: %d connections open (the cap): the one idle longest closed",
                self.cap,
            )
        self._open[transport] = _Connection(transport)
        self.accepted += 1
        return True

    def forget(self, transport: asyncio.Transport) -> None:
        self._open.pop(transport, None)

    async def handle(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Marks the connection busy while its request is handled (so it is never evicted).

        Called from the app's one middleware (``server.py``): a middleware of its own cost
        aiohttp's wrapper and a frame per request on top.
        """
        transport = request.transport
        conn = self._open.get(transport) if transport is not None else None
        if conn is None:
            return await handler(request)
        conn.busy += 1
        try:
            return await handler(request)
        finally:
            conn.busy -= 1
            if self._open.pop(conn.transport, None) is not None:
                self._open[conn.transport] = conn  # used just now: the last to be evicted


class _Guarded(asyncio.Protocol):
    """Forwards to aiohttp's protocol once the guard has admitted the connection."""

    def __init__(self, guard: ConnectionGuard, inner: asyncio.Protocol) -> None:
        self._guard = guard
        self._inner = inner
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)  # a TCP server's
        if not self._guard.admit(transport):
            transport.abort()
            return
        self._transport = transport
        self._inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is not None:
            self._guard.forget(self._transport)
            self._transport = None
            self._inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._transport is not None:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._transport is not None else None

    def pause_writing(self) -> None:
        if self._transport is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._transport is not None:
            self._inner.resume_writing()


_SPACES = re.compile(r"\s+")
MAX_DETAIL = 160  # characters of a bad request's description in the log


class RequestLog:
    """aiohttp's server logger (``logger=``): client errors as one rate-limited line.

    aiohttp logs every malformed request with ``logger.exception`` (a 591-byte traceback
    each, no limit). Here a malformed request (:class:`HttpProcessingError`) is one INFO line
    at most once a minute per kind, with a count of those held back; an exception from a
    handler (a bug of ours, answered 500) keeps its traceback but is rate-limited as well.
    """

    def __init__(self, logger: logging.Logger, interval: float = LOG_INTERVAL) -> None:
        self._logger = logger
        self._limited = RateLimitedLogger(logger, interval)

    def debug(self, msg: str, *args: object, **kwargs: object) -> None:
        exc = kwargs.pop("exc_info", None)
        if isinstance(exc, BaseException):
            msg, args = f"{msg}: %s", (*args, _describe(exc))
        self._logger.debug(msg, *args)

    def warning(self, msg: str, *args: object, **_kwargs: object) -> None:
        self._limited.log(logging.WARNING, "warning", msg, *args)

    def exception(self, msg: str, *args: object, **kwargs: object) -> None:
        exc = kwargs.get("exc_info", True)
        if not isinstance(exc, BaseException):
            exc = sys.exc_info()[1]
        text = f"http: {msg % args if args else msg}"
        if isinstance(exc, HttpProcessingError):
            key = f"bad-request:{type(exc).__name__}"
            self._limited.log(logging.INFO, key, "%s: %s", text, _describe(exc))
        else:
            self._limited.log(logging.ERROR, "handler", "%s", text, exc_info=exc is not None)


def _describe(exc: BaseException) -> str:
    """One line: the exception's kind and message, whitespace folded, cut short."""
    detail = str(exc.message if isinstance(exc, HttpProcessingError) else exc)
    detail = " ".join(line for line in detail.splitlines() if line.strip(" ^"))  # no caret line
    text = f"{type(exc).__name__}: {_SPACES.sub(' ', detail).strip()}"
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 3] + "..."
