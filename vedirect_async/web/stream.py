"""``GET /api/stream``: Server-Sent Events with each new reading, for the live page.

Clients are capped (``[http] max_stream_clients``); each gets a small latest-only hub
subscription, so a slow browser loses old readings, never memory.

A client that never reads must not hold a slot for minutes (issue 16: eight such clients
locked the live page out). Its connection gets a small fixed kernel send buffer (no
autotuning to megabytes) and a small write buffer, so unread data shows within a few tens of
KB; once data has waited unread for ``stream_stall_timeout`` (10 s) the client is dropped,
and a new client finding every slot taken replaces the one stalled longest at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket

from aiohttp import web

from ..errors import SubscriptionClosed
from ..hub import Subscription
from .common import checked_query, reading_json
from .state import WEB, WebState

__all__ = ["handle_stream"]

_LOGGER = logging.getLogger(__name__)

STREAM_QUEUE = 16  # per stream client; latest-only, so at most one reading per device
STREAM_KEEPALIVE = 15.0  # seconds between SSE comments on a quiet stream
STREAM_SNDBUF = 16384  # bytes of kernel send buffer per stream client (Linux doubles it)
STREAM_HIGH_WATER = 8192  # bytes queued in the process before a write waits for the client


class _StalledError(Exception):
    """The client left data unread for longer than the stall timeout."""


class _Client:
    """One stream client's connection and since when its data waits unread."""

    def __init__(self, state: WebState, sub: Subscription, transport: asyncio.Transport) -> None:
        self.state = state
        self.sub = sub
        self.transport = transport
        self.loop = asyncio.get_running_loop()

    def small_buffers(self) -> None:
        """A fixed small kernel send buffer and write buffer, so unread data shows soon."""
        with contextlib.suppress(OSError, AttributeError):
            sock = self.transport.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, STREAM_SNDBUF)
        self.transport.set_write_buffer_limits(high=STREAM_HIGH_WATER)

    def check(self) -> None:
        """Note whether sent data still waits in our buffers; raise once it waited too long."""
        if not self.transport.get_write_buffer_size():
            self.state.stalled.pop(self.sub, None)
            return
        since = self.state.stalled.setdefault(self.sub, self.loop.time())
        if self.loop.time() - since >= self.state.stream_stall_timeout:
            raise _StalledError

    def wait(self) -> float:
        """Seconds to wait for a reading before writing a keepalive (and checking again)."""
        since = self.state.stalled.get(self.sub)
        if since is None:
            return STREAM_KEEPALIVE
        left = since + self.state.stream_stall_timeout - self.loop.time()
        return max(0.0, min(STREAM_KEEPALIVE, left))

    async def send(self, data: bytes, response: web.StreamResponse) -> None:
        async with asyncio.timeout(self.state.stream_stall_timeout):
            await response.write(data)  # waits only when aiohttp drains (every 64 KiB)
        self.check()


def _make_room(state: WebState) -> bool:
    """With every slot taken: drop the client stalled longest, if any is stalled."""
    for sub in state.stalled:
        _LOGGER.info("http: live-stream slots full: dropping a client that reads nothing")
        state.streams_dropped += 1
        sub.close()  # its handler's get() ends and it returns
        state.streams.discard(sub)
        del state.stalled[sub]
        return True
    return False


def _sse(event: str, data: object) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def handle_stream(request: web.Request) -> web.StreamResponse:
    query = checked_query(request, ("device",))
    state = request.app[WEB]
    wanted = query.get("device")
    if len(state.streams) >= state.config.http.max_stream_clients and not _make_room(state):
        raise web.HTTPServiceUnavailable(
            text=json.dumps({"error": "too many live-stream clients; try again later"}),
            content_type="application/json",
            headers={"Retry-After": "10"},
        )
    transport = request.transport
    if transport is None or transport.is_closing():
        raise web.HTTPServiceUnavailable()  # the client is already gone
    sub = state.hub.subscribe(
        f"http-stream-{next(state.stream_ids)}", maxsize=STREAM_QUEUE, latest_only=True
    )
    state.streams.add(sub)
    client = _Client(state, sub, transport)
    client.small_buffers()
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",
        }
    )
    try:
        await response.prepare(request)
        await client.send(b"retry: 3000\n\n", response)
        for reading in list(state.hub.latest.values()):
            if wanted is None or reading.device == wanted:
                data = reading_json(reading, state.meta, state.scrub)
                await client.send(_sse("reading", data), response)
        while True:
            try:
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
                # that races the result, which would keep this handler alive at shutdown.
                async with asyncio.timeout(client.wait()):
                    reading = await sub.get()
            except TimeoutError:
                client.check()
                await client.send(b": keepalive\n\n", response)
                continue
            except SubscriptionClosed:
                break  # server shutting down, or this client dropped to make room
            if wanted is None or reading.device == wanted:
                data = reading_json(reading, state.meta, state.scrub)
                await client.send(_sse("reading", data), response)
    except (_StalledError, TimeoutError):
        if not sub.closed:  # else _make_room dropped it and counted it already
            state.streams_dropped += 1
        _LOGGER.debug("http: live-stream client %s dropped: it reads nothing", request.remote)
    except ConnectionResetError as exc:
        _LOGGER.debug("http: live-stream client %s gone: %r", request.remote, exc)
    finally:
        sub.close()
        state.streams.discard(sub)
        state.stalled.pop(sub, None)
    if transport.get_write_buffer_size():
        # data the client never read would hold the connection, and aiohttp's final write
        # would wait for it: close now
        transport.abort()
    return response
