"""``GET /api/stream``: Server-Sent Events with each new reading, for the live page.

Clients are capped (``[http] max_stream_clients``); each gets a small latest-only hub
subscription, so a slow browser loses old readings, never memory.
"""

from __future__ import annotations

import asyncio
import json
import logging

from aiohttp import web

from ..errors import SubscriptionClosed
from .common import checked_query, reading_json
from .state import WEB

__all__ = ["handle_stream"]

_LOGGER = logging.getLogger(__name__)

STREAM_QUEUE = 16  # per stream client; latest-only, so at most one reading per device
STREAM_KEEPALIVE = 15.0  # seconds between SSE comments on a quiet stream
STREAM_WRITE_TIMEOUT = 10.0  # a client that does not take a write for this long is dropped


def _sse(event: str, data: object) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def handle_stream(request: web.Request) -> web.StreamResponse:
    query = checked_query(request, ("device",))
    state = request.app[WEB]
    wanted = query.get("device")
    if len(state.streams) >= state.config.http.max_stream_clients:
        raise web.HTTPServiceUnavailable(
            text=json.dumps({"error": "too many live-stream clients; try again later"}),
            content_type="application/json",
            headers={"Retry-After": "10"},
        )
    sub = state.hub.subscribe(
        f"http-stream-{next(state.stream_ids)}", maxsize=STREAM_QUEUE, latest_only=True
    )
    state.streams.add(sub)
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",
        }
    )
    try:
        await response.prepare(request)
        await response.write(b"retry: 3000\n\n")
        for reading in list(state.hub.latest.values()):
            if wanted is None or reading.device == wanted:
                await _send(response, "reading", reading_json(reading, state.meta, state.scrub))
        while True:
            try:
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
                # that races the result, which would keep this handler alive at shutdown.
                async with asyncio.timeout(STREAM_KEEPALIVE):
                    reading = await sub.get()
            except TimeoutError:
                async with asyncio.timeout(STREAM_WRITE_TIMEOUT):
                    await response.write(b": keepalive\n\n")
                continue
            except SubscriptionClosed:
                break  # server shutting down
            if wanted is None or reading.device == wanted:
                await _send(response, "reading", reading_json(reading, state.meta, state.scrub))
    except (ConnectionResetError, TimeoutError) as exc:
        _LOGGER.debug("http: live-stream client %s gone: %r", request.remote, exc)
    finally:
        sub.close()
        state.streams.discard(sub)
    return response


async def _send(response: web.StreamResponse, event: str, data: object) -> None:
    async with asyncio.timeout(STREAM_WRITE_TIMEOUT):
        await response.write(_sse(event, data))
