"""HTTP endpoint: ``/health``, ``/metrics``, the JSON API, a live stream and the live page.

Everything is read from the hub at request time; nothing here changes the service (GET and
HEAD only). Every response is bounded: query strings are short, history answers are thinned
to a point cap, live-stream clients are capped and each gets a small coalescing queue, so a
slow browser loses old readings, never memory.

- ``GET /health`` (:mod:`.health`): 200 when every device has a valid reading younger than its
  freshness window (``[http] health_max_age``, default the watchdog's ``silence_timeout``) and
  no output is in one of ``[http] unhealthy_output_states``; 503 otherwise. JSON body with the
  details.
- ``GET /metrics`` (:mod:`.metrics`): Prometheus text exposition read from the hub at scrape
  time.
- ``GET /api/readings``, ``GET /api/history`` (:mod:`.api`), ``GET /api/stream``
  (:mod:`.stream`, Server-Sent Events).
- ``GET /``: the live page (``vedirect_async/static/``: own HTML, CSS and chart code; no CDN).

:mod:`.state` holds the per-app state, :mod:`.common` what the handlers share, :mod:`.server`
the application and :class:`WebServer`. The container health check,
``python -m vedirect_async health``, is :mod:`vedirect_async.healthcheck` (no aiohttp).
"""

from __future__ import annotations

from .common import reading_json
from .server import WebServer, make_app

__all__ = ["WebServer", "make_app", "reading_json"]
