"""The aiohttp application (routes, security headers, the live page and its static files) and
:class:`WebServer`, which serves it on ``[http] host:port``."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path

from aiohttp import web

from ..config import Config
from ..hub import Hub
from .api import handle_history, handle_readings
from .common import checked_query
from .health import handle_api_health, handle_health
from .metrics import HubCollector, handle_metrics
from .state import WEB, WebState
from .stream import handle_stream

__all__ = ["WebServer", "make_app"]

_LOGGER = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent.parent / "static"
SHUTDOWN_TIMEOUT = 3.0


async def handle_page(request: web.Request) -> web.FileResponse:
    checked_query(request, ("device",))
    return web.FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})


_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault("Content-Security-Policy", _CSP)


def make_app(
    config: Config,
    hub: Hub,
    *,
    clock: Callable[[], float] = time.monotonic,
    wall: Callable[[], float] = time.time,
) -> web.Application:
    """The aiohttp application (no I/O until it starts). ``clock`` must match Reading.monotonic."""
    app = web.Application(client_max_size=1024)
    state = WebState(config, hub, clock, wall)
    state.registry.register(HubCollector(state))
    app[WEB] = state

    async def on_startup(_app: web.Application) -> None:
        await state.start()

    async def on_shutdown(_app: web.Application) -> None:
        await state.stop()

    app.on_startup.append(on_startup)
    app.on_shutdown.append(on_shutdown)
    app.on_response_prepare.append(_security_headers)
    app.router.add_get("/", handle_page)
    app.router.add_get("/health", handle_health)
    app.router.add_get("/metrics", handle_metrics)
    app.router.add_get("/api/health", handle_api_health)
    app.router.add_get("/api/readings", handle_readings)
    app.router.add_get("/api/history", handle_history)
    app.router.add_get("/api/stream", handle_stream, allow_head=False)
    app.router.add_static("/static", STATIC_DIR, show_index=False, follow_symlinks=False)
    return app


class WebServer:
    """Serves :func:`make_app` on ``[http] host:port`` until cancelled."""

    def __init__(self, config: Config, hub: Hub) -> None:
        self._config = config
        self._hub = hub
        self.serving = asyncio.Event()  # set once the port accepts connections

    async def run(self) -> None:
        app = make_app(self._config, self._hub)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self._config.http.host, self._config.http.port)
            await site.start()
            self.serving.set()
            _LOGGER.info(
                "http: serving on http://%s:%d/", self._config.http.host, self._config.http.port
            )
            await asyncio.Event().wait()  # until cancelled
        finally:
            self.serving.clear()
            await runner.cleanup()
