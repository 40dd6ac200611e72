"""The aiohttp application (routes, security headers, the live page and its static files) and
:class:`WebServer`, which serves it on ``[http] host:port``."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path

from aiohttp import HttpVersion10, web
from aiohttp.typedefs import Handler, Middleware

from ..config import Config
from ..control import Controller
from ..hub import Hub
from .api import handle_history, handle_readings
from .common import checked_query
from .control import CONTROL, WriteCollector, handle_controls, handle_write
from .daily import handle_daily
from .guard import BACKLOG, IDLE_TIMEOUT, ConnectionGuard, RequestLog, connection_cap
from .health import handle_api_health, handle_health
from .metrics import HubCollector, handle_metrics
from .state import WEB, WebState
from .stream import handle_stream

__all__ = ["WebServer", "make_app"]

_LOGGER = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent.parent / "static"
# The page's own files, the only names /static/ serves: nothing from the request reaches the
# filesystem (a 300-character name once gave a 500 "File name too long"; "app.js/" was served).
STATIC_FILES = frozenset({"app.js", "chart.js", "control.js", "style.css"})
SHUTDOWN_TIMEOUT = 3.0


async def handle_page(request: web.Request) -> web.FileResponse:
    checked_query(request, ("device",))
    return web.FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})


async def handle_static(request: web.Request) -> web.FileResponse:
    checked_query(request, ())
    name = request.match_info["name"]
    if name not in STATIC_FILES:
        raise web.HTTPNotFound()
    return web.FileResponse(STATIC_DIR / name, headers={"Cache-Control": "no-cache"})


def _middleware(guard: ConnectionGuard | None) -> Middleware:
    """The app's one middleware (one, not two: each costs aiohttp a wrapper per request).

    A request line without a version (HTTP/0.9) gets no answer: the connection is closed.
    aiohttp would answer it ``HTTP/0.9 200 OK`` with headers, which no HTTP/0.9 client reads
    and no HTTP/1.x client sent; closing is what a 0.9 server does after its reply anyway.
    Any other request is handled with its connection marked busy by ``guard``
    (:meth:`ConnectionGuard.handle`), when the app is served with one.
    """

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.version < HttpVersion10:
            if request.transport is not None:
                request.transport.abort()
            raise web.HTTPBadRequest()  # not sent: the connection is gone
        if guard is None:
            return await handler(request)
        return await guard.handle(request, handler)

    return middleware


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
    guard: ConnectionGuard | None = None,
    control: Controller | None = None,
) -> web.Application:
    """The aiohttp application (no I/O until it starts). ``clock`` must match Reading.monotonic.

    ``guard``: the connection guard of the server that serves it (marks connections busy).
    """
    app = web.Application(client_max_size=1024, middlewares=[_middleware(guard)])
    state = WebState(config, hub, clock, wall)
    state.guard = guard
    state.registry.register(HubCollector(state))
    app[WEB] = state
    if control is not None:  # writes (issue 15): POST /api/devices/<device>/<name>
        app[CONTROL] = control
        state.registry.register(WriteCollector(control))

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
    app.router.add_get("/api/daily", handle_daily)
    app.router.add_get("/api/stream", handle_stream, allow_head=False)
    app.router.add_get("/static/{name}", handle_static)
    app.router.add_post("/api/devices/{device}/{name}", handle_write)
    app.router.add_get("/api/controls", handle_controls)
    return app


class _GuardedSite(web.BaseSite):
    """A TCP site whose connections pass the :class:`ConnectionGuard` first."""

    __slots__ = ("_guard", "_host", "_port")

    def __init__(
        self, runner: web.BaseRunner, host: str, port: int, guard: ConnectionGuard, backlog: int
    ) -> None:
        super().__init__(runner, backlog=backlog)
        self._host = host
        self._port = port
        self._guard = guard

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None  # set by runner.setup()
        self._server = await asyncio.get_running_loop().create_server(
            self._guard.wrap(server), self._host, self._port, backlog=self._backlog
        )


class WebServer:
    """Serves :func:`make_app` on ``[http] host:port`` until cancelled.

    ``max_connections`` (default :func:`connection_cap`) and ``idle_timeout`` are for tests.
    """

    def __init__(
        self,
        config: Config,
        hub: Hub,
        *,
        max_connections: int | None = None,
        idle_timeout: float = IDLE_TIMEOUT,
        control: Controller | None = None,
    ) -> None:
        self._config = config
        self._control = control
        self._hub = hub
        self._max_connections = max_connections
        self._idle_timeout = idle_timeout
        self.guard: ConnectionGuard | None = None  # set while running
        self.app: web.Application | None = None  # set while running
        self.serving = asyncio.Event()  # set once the port accepts connections

    async def run(self) -> None:
        cap = self._max_connections or connection_cap(BACKLOG)
        guard = self.guard = ConnectionGuard(cap)
        app = self.app = make_app(self._config, self._hub, guard=guard, control=self._control)
        runner = web.AppRunner(
            app,
            access_log=None,
            shutdown_timeout=SHUTDOWN_TIMEOUT,
            keepalive_timeout=self._idle_timeout,
            logger=RequestLog(logging.getLogger("vedirect_async.web.requests")),
        )
        await runner.setup()
        host, port = self._config.http.host, self._config.http.port
        try:
            await _GuardedSite(runner, host, port, guard, BACKLOG).start()
            self.serving.set()
            _LOGGER.info(
                "http: serving on http://%s:%d/ (at most %d connections, "
                "closed after %g s without a complete request)",
                host,
                port,
                cap,
                self._idle_timeout,
            )
            await asyncio.Event().wait()  # until cancelled
        finally:
            self.serving.clear()
            await runner.cleanup()
