"""HTTP endpoint: ``/health``, ``/metrics``, the JSON API, a live stream and the live page.

Everything is read from the hub at request time; nothing here changes the service (GET and
HEAD only). Every response is bounded: query strings are short, history answers are thinned
to a point cap, live-stream clients are capped and each gets a small coalescing queue, so a
slow browser loses old readings, never memory.

- ``GET /health``: 200 when every device has a valid reading younger than its freshness window
  (``[http] health_max_age``, default the watchdog's ``silence_timeout``) and no output is in
  one of ``[http] unhealthy_output_states``; 503 otherwise. JSON body with the details.
- ``GET /metrics``: Prometheus text exposition from a per-app registry whose collector reads
  the hub at scrape time.
- ``GET /api/readings``, ``GET /api/history``, ``GET /api/stream`` (Server-Sent Events).
- ``GET /``: the live page (``static/``: own HTML, CSS and chart code; no CDN).

The container health check, ``python -m vedirect_async health``, is in :mod:`.healthcheck`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import json
import logging
import math
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from . import fields
from .config import SECRET_KEYS, Config, ConfigError
from .errors import SubscriptionClosed
from .history import History, read_csv_tail
from .hub import Hub, OutputHealth, ReaderState, Subscription
from .outputs.csv_log import device_path, parse_columns
from .reading import UNAVAILABLE, Reading, Value

__all__ = ["WebServer", "make_app", "reading_json"]

_LOGGER = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).with_name("static")
MAX_QUERY_STRING = 1024  # bytes; every valid query here is far shorter
MAX_HISTORY_POINTS = 5000  # points per /api/history answer (max_points may ask for fewer)
DEFAULT_HISTORY_POINTS = 1500
MAX_HISTORY_VALUES = 100_000  # points x fields per answer
MAX_HISTORY_CAPACITY = 86_400  # points per device (24 h at 1 s), whatever the config says
STREAM_QUEUE = 16  # per stream client; latest-only, so at most one reading per device
STREAM_KEEPALIVE = 15.0  # seconds between SSE comments on a quiet stream
STREAM_WRITE_TIMEOUT = 10.0  # a client that does not take a write for this long is dropped
BACKFILL_TIMEOUT = 10.0  # seconds for reading the CSV tail at start-up (a dead disk)
SHUTDOWN_TIMEOUT = 3.0
MAX_TEXT_LABEL = 64  # text values longer than this are not exported as metric labels


# -- per-app state --------------------------------------------------------------------------


def _secret_values(config: Config) -> tuple[str, ...]:
    """Every non-empty secret in the configuration (to scrub from anything we serve)."""
    found: list[str] = []

    def walk(obj: object) -> None:
        if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            for f in dataclasses.fields(obj):
                value = getattr(obj, f.name)
                if f.name in SECRET_KEYS and isinstance(value, str) and value:
                    found.append(value)
                else:
                    walk(value)
        elif isinstance(obj, list):
            for item in obj:
                walk(item)

    walk(config)
    return tuple(sorted(set(found), key=len, reverse=True))


_URL_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")


class _Web:
    """State shared by the handlers of one app."""

    def __init__(
        self,
        config: Config,
        hub: Hub,
        clock: Callable[[], float],
        wall: Callable[[], float],
    ) -> None:
        self.config = config
        self.hub = hub
        self.clock = clock
        self.wall = wall
        self.started = clock()
        self.max_age = config.http.health_max_age or config.watchdog.silence_timeout
        self.bad_output_states = frozenset(
            OutputHealth(s) for s in config.http.unhealthy_output_states
        )
        self.history_interval = config.http.history_interval or config.csv.interval or 30.0
        capacity = int(config.http.history_hours * 3600 / self.history_interval)
        self.history = History(
            min(capacity, MAX_HISTORY_CAPACITY), self.history_interval, keep=_charted
        )
        self.streams: set[Subscription] = set()
        self.stream_ids = itertools.count(1)
        self.secrets = _secret_values(config)
        self._unlisten: Callable[[], None] | None = None
        self._meta: dict[str, tuple[str, str]] = {}
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_HubCollector(self))

    def scrub(self, text: str) -> str:
        """``text`` with configured secrets and URL credentials replaced by ``***``."""
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return _URL_USERINFO.sub("***@", text)

    def meta(self, name: str) -> tuple[str, str]:
        """(VE.Direct label, unit) of a catalogue field name; (name, "") when unknown."""
        known = self._meta.get(name)
        if known is None:
            field = fields.lookup(name)
            known = (name, "") if field is None else (field.label, field.unit)
            if len(self._meta) < 1024:  # unknown labels come from devices: stay bounded
                self._meta[name] = known
        return known

    def device_names(self) -> list[str]:
        names = dict.fromkeys(d.name for d in self.config.device)
        names.update(dict.fromkeys(self.hub.devices))
        names.update(dict.fromkeys(self.hub.latest))
        return list(names)

    def last_reading(self, name: str) -> float | None:
        """Monotonic time of the device's newest valid reading (reader state or the hub)."""
        state = self.hub.devices.get(name)
        latest = self.hub.latest.get(name)
        times = [
            t
            for t in (
                state.last_reading if state else None,
                latest.monotonic if latest else None,
            )
            if t is not None
        ]
        return max(times) if times else None

    async def start(self) -> None:
        """Backfill the history from the CSV log, then sample live readings into it."""
        self.started = self.clock()
        await self._backfill()
        self._unlisten = self.hub.add_listener(self._on_reading)

    def _on_reading(self, reading: Reading) -> None:
        self.history.add(reading)

    async def stop(self) -> None:
        if self._unlisten is not None:
            self._unlisten()
            self._unlisten = None
        for sub in list(self.streams):
            sub.close()  # the stream handler's get() ends, so it returns promptly

    def _csv_sources(self) -> list[tuple[str, Path, dict[str, str]]]:
        """(device, CSV file, header -> field) for each device, as the CSV output writes them."""
        devices = [d.name for d in self.config.device]
        columns = parse_columns(self.config.csv.columns, devices)
        return [
            (
                device,
                device_path(self.config.csv.path, device, devices),
                {c.header: c.source for c in columns if c.device in (None, device)},
            )
            for device in devices
        ]

    async def _backfill(self) -> None:
        if not self.history.capacity:
            return
        try:
            sources = self._csv_sources()
        except ConfigError as exc:
            _LOGGER.warning("http: history not backfilled: %s", exc)
            return
        for device, path, headers in sources:
            try:
                if not await asyncio.wait_for(asyncio.to_thread(path.is_file), BACKFILL_TIMEOUT):
                    continue
                result = await asyncio.wait_for(
                    asyncio.to_thread(
                        read_csv_tail, path, self.history.capacity, device, headers.get
                    ),
                    BACKFILL_TIMEOUT,
                )
            except (OSError, ValueError, TimeoutError) as exc:
                _LOGGER.warning("http: %s: history not backfilled from %s: %s", device, path, exc)
                continue
            added = 0
            for name, points in result.points.items():
                for t, values in points:
                    added += self.history.add_point(name, t, values)
            _LOGGER.info(
                "http: %s: history backfilled with %d points from %s (%d rows skipped)",
                device,
                added,
                path,
                result.skipped,
            )


WEB = web.AppKey("vedirect_web", _Web)


def _charted(name: str) -> bool:
    """Fields worth a history column: not the device's own slow history counters (H1-H18)."""
    return not name.startswith("history_")


# -- JSON views -----------------------------------------------------------------------------


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def _json_value(value: Value) -> tuple[object, str | None]:
    """(JSON-safe value, special) where special is "unavailable" or "infinite"."""
    if value is UNAVAILABLE:
        return None, "unavailable"
    if isinstance(value, float) and not math.isfinite(value):
        if math.isnan(value):
            return None, "unavailable"
        return None, "infinite" if value > 0 else "-infinite"
    if isinstance(value, tuple):
        return list(value), None
    return value, None


def reading_json(
    reading: Reading, meta: Callable[[str], tuple[str, str]], scrub: Callable[[str], str]
) -> dict[str, Any]:
    """A reading as JSON-ready data: identity, time, and each value with its label and unit."""
    values: dict[str, dict[str, object]] = {}
    for name, value in reading.values.items():
        label, unit = meta(name)
        shown, special = _json_value(value)
        if isinstance(shown, str):
            shown = scrub(shown)
        entry: dict[str, object] = {"value": shown, "unit": unit, "label": label}
        if special:
            entry["special"] = special
        values[name] = entry
    return {
        "device": reading.device,
        "time": reading.time.isoformat(timespec="seconds"),
        "timestamp": reading.time.timestamp(),
        "pid": f"0x{reading.pid:04X}" if reading.pid is not None else None,
        "product": reading.product,
        "serial": reading.serial,
        "firmware": reading.firmware,
        "values": values,
    }


def _health(state: _Web) -> tuple[bool, dict[str, Any]]:
    now = state.clock()
    problems: list[str] = []
    devices: dict[str, Any] = {}
    for name in state.device_names():
        dev = state.hub.devices.get(name)
        last = state.last_reading(name)
        age = None if last is None else max(0.0, now - last)
        if age is None:
            waiting = now - state.started
            fresh = waiting <= state.max_age  # start-up grace: the watchdog would not act yet
            if not fresh:
                problems.append(f"{name}: no valid reading in {waiting:.0f} s since start")
        else:
            fresh = age <= state.max_age
            if not fresh:
                problems.append(f"{name}: last valid reading {age:.0f} s ago")
        devices[name] = {
            "fresh": fresh,
            "last_reading_age": None if age is None else round(age, 3),
            "reader_state": str(dev.state) if dev else str(ReaderState.STARTING),
            "reason": state.scrub(dev.reason) if dev else "",
            "restarts": dev.restarts if dev else 0,
            "readings": dev.readings if dev else 0,
            "stuck": dev.stuck if dev else False,
        }
    outputs: dict[str, Any] = {}
    for name, out in state.hub.outputs.items():
        if out.health in state.bad_output_states:
            problems.append(
                f"output {name}: {out.health}" + (f" ({out.reason})" if out.reason else "")
            )
        outputs[name] = {
            "health": str(out.health),
            "reason": state.scrub(out.reason),
            "last_success": _iso(out.last_success),
            "successes": out.successes,
            "failures": out.failures,
        }
    ok = not problems
    body = {
        "status": "ok" if ok else "unhealthy",
        "problems": [state.scrub(p) for p in problems],
        "max_age": state.max_age,
        "devices": devices,
        "outputs": outputs,
        "time": _iso(state.wall()),
    }
    return ok, body


# -- metrics --------------------------------------------------------------------------------


_PARSER_HELP = {
    "bytes_in": "Bytes received from the device",
    "blocks_ok": "Checksum-verified text blocks",
    "checksum_errors": "Text blocks dropped for a bad checksum",
    "oversize": "Blocks or HEX records dropped for exceeding the protocol's size",
    "malformed": "Blocks dropped for a malformed record",
    "hex_ok": "Checksum-verified HEX records",
    "hex_bad": "HEX records dropped (bad checksum or digits)",
    "bytes_discarded": "Bytes thrown away while resynchronising",
    "resyncs": "Intact blocks recovered from behind a damaged block end",
}


class _HubCollector(Collector):
    """Reads the hub at scrape time; nothing is stored between scrapes."""

    def __init__(self, state: _Web) -> None:
        self._state = state

    def collect(self) -> Iterable[Metric]:
        state = self._state
        hub = state.hub
        now, wall = state.clock(), state.wall()
        yield from self._readings(state, now)
        yield from self._devices(state, now)
        published = CounterMetricFamily(
            "vedirect_hub_published", "Readings published to the hub", labels=[]
        )
        published.add_metric([], hub.published)
        yield published
        dropped = CounterMetricFamily(
            "vedirect_hub_dropped",
            "Readings a subscriber lost because its queue was full or superseded",
            labels=["subscription"],
        )
        queued = GaugeMetricFamily(
            "vedirect_hub_queued",
            "Readings waiting in a subscriber's queue",
            labels=["subscription"],
        )
        for sub in hub.subscriptions:
            dropped.add_metric([sub.name], sub.dropped)
            queued.add_metric([sub.name], len(sub))
        yield dropped
        yield queued
        yield from self._outputs(state, wall)
        clients = GaugeMetricFamily("vedirect_http_stream_clients", "Live-stream clients")
        clients.add_metric([], len(state.streams))
        yield clients
        tasks = GaugeMetricFamily("vedirect_async_tasks", "asyncio tasks alive in the service")
        with contextlib.suppress(RuntimeError):  # scraped outside the loop: no figure
            tasks.add_metric([], len(asyncio.all_tasks()))
        yield tasks

    @staticmethod
    def _readings(state: _Web, now: float) -> Iterator[Metric]:
        values = GaugeMetricFamily(
            "vedirect_value",
            "Latest numeric value of a device field, in the catalogue unit",
            labels=["device", "field", "unit"],
        )
        texts = GaugeMetricFamily(
            "vedirect_text",
            "Latest text/enum value of a device field (value in the label; always 1)",
            labels=["device", "field", "value"],
        )
        info = GaugeMetricFamily(
            "vedirect_device_info",
            "Device identity (always 1)",
            labels=["device", "pid", "product", "serial", "firmware"],
        )
        stamp = GaugeMetricFamily(
            "vedirect_reading_timestamp_seconds",
            "Wall-clock time of the latest reading",
            labels=["device"],
        )
        for device, reading in list(state.hub.latest.items()):
            for name, value in reading.values.items():
                if value is UNAVAILABLE:
                    continue
                if isinstance(value, bool | int | float):
                    values.add_metric([device, name, state.meta(name)[1]], float(value))
                elif isinstance(value, str | tuple):
                    text = ",".join(value) if isinstance(value, tuple) else value
                    if len(text) <= MAX_TEXT_LABEL:
                        texts.add_metric([device, name, state.scrub(text)], 1.0)
            info.add_metric(
                [
                    device,
                    f"0x{reading.pid:04X}" if reading.pid is not None else "",
                    reading.product or "",
                    reading.serial or "",
                    reading.firmware or "",
                ],
                1.0,
            )
            stamp.add_metric([device], reading.time.timestamp())
        yield values
        yield texts
        yield info
        yield stamp

    @staticmethod
    def _devices(state: _Web, now: float) -> Iterator[Metric]:
        labels = ["device"]
        age = GaugeMetricFamily(
            "vedirect_reading_age_seconds", "Seconds since the latest valid reading", labels=labels
        )
        fresh = GaugeMetricFamily(
            "vedirect_device_fresh",
            "1 if the device's latest reading is within the /health window",
            labels=labels,
        )
        reader = GaugeMetricFamily(
            "vedirect_reader_state",
            "Reader state (1 for the current one)",
            labels=["device", "state"],
        )
        counters = {
            "readings": CounterMetricFamily(
                "vedirect_readings", "Readings assembled", labels=labels
            ),
            "restarts": CounterMetricFamily(
                "vedirect_reader_restarts", "Reader restarts (watchdog or lost port)", labels=labels
            ),
            "unknown_labels": CounterMetricFamily(
                "vedirect_unknown_labels", "Fields with a label not in the catalogue", labels=labels
            ),
            "stuck_events": CounterMetricFamily(
                "vedirect_reader_stuck_events",
                "Times readings stayed byte-identical for watchdog.stuck_timeout",
                labels=labels,
            ),
        }
        stuck = GaugeMetricFamily(
            "vedirect_reader_stuck",
            "1 while readings have been byte-identical for watchdog.stuck_timeout",
            labels=labels,
        )
        byte_age = GaugeMetricFamily(
            "vedirect_byte_age_seconds", "Seconds since the last byte from the port", labels=labels
        )
        parser: dict[str, CounterMetricFamily] = {}
        for name in state.device_names():
            last = state.last_reading(name)
            if last is not None:
                age.add_metric([name], max(0.0, now - last))
                fresh.add_metric([name], float(now - last <= state.max_age))
            dev = state.hub.devices.get(name)
            if dev is None:
                continue
            for s in ReaderState:
                reader.add_metric([name, str(s)], float(dev.state is s))
            stuck.add_metric([name], float(dev.stuck))
            if dev.last_byte is not None:
                byte_age.add_metric([name], max(0.0, now - dev.last_byte))
            for key, family in counters.items():
                family.add_metric([name], getattr(dev, key))
            for key, count in dev.parser.as_dict().items():
                if key not in parser:
                    parser[key] = CounterMetricFamily(
                        f"vedirect_parser_{key}",
                        _PARSER_HELP.get(key, f"Parser counter {key}"),
                        labels=labels,
                    )
                parser[key].add_metric([name], count)
        yield age
        yield fresh
        yield reader
        yield stuck
        yield byte_age
        yield from counters.values()
        yield from parser.values()

    @staticmethod
    def _outputs(state: _Web, wall: float) -> Iterator[Metric]:
        labels = ["output"]
        successes = CounterMetricFamily(
            "vedirect_output_successes", "Successful deliveries", labels=labels
        )
        failures = CounterMetricFamily(
            "vedirect_output_failures", "Failed deliveries", labels=labels
        )
        restarts = CounterMetricFamily(
            "vedirect_output_restarts", "Output task restarts", labels=labels
        )
        last = GaugeMetricFamily(
            "vedirect_output_last_success_timestamp_seconds",
            "Wall-clock time of the last successful delivery",
            labels=labels,
        )
        health = GaugeMetricFamily(
            "vedirect_output_health",
            "Output health (1 for the current one)",
            labels=["output", "health"],
        )
        events = CounterMetricFamily(
            "vedirect_output_events", "Output-specific counters", labels=["output", "counter"]
        )
        for name, out in list(state.hub.outputs.items()):
            successes.add_metric([name], out.successes)
            failures.add_metric([name], out.failures)
            restarts.add_metric([name], out.restarts)
            if out.last_success is not None:
                last.add_metric([name], out.last_success)
            for h in OutputHealth:
                health.add_metric([name, str(h)], float(out.health is h))
            for counter, count in list(out.counters.items()):
                events.add_metric([name, state.scrub(counter)], count)
        yield from (successes, failures, restarts, last, health, events)


# -- handlers -------------------------------------------------------------------------------


def _bad_request(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=json.dumps({"error": message}), content_type="application/json")


def _query(request: web.Request, allowed: Iterable[str]) -> Mapping[str, str]:
    """The query parameters, checked: short, known names, each at most once."""
    if len(request.query_string) > MAX_QUERY_STRING:
        raise _bad_request(f"query string longer than {MAX_QUERY_STRING} bytes")
    allowed = set(allowed)
    for key in request.query:
        if key not in allowed:
            expected = ", ".join(sorted(allowed)) or "none"
            raise _bad_request(f"unknown query parameter {key!r} (expected: {expected})")
        if len(request.query.getall(key)) > 1:
            raise _bad_request(f"query parameter {key!r} given more than once")
    return request.query


def _json(data: object, status: int = 200) -> web.Response:
    return web.Response(
        text=json.dumps(data, separators=(",", ":"), allow_nan=False),
        status=status,
        content_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


async def _handle_health(request: web.Request) -> web.Response:
    _query(request, ())
    ok, body = _health(request.app[WEB])
    return _json(body, 200 if ok else 503)


async def _handle_api_health(request: web.Request) -> web.Response:
    """The /health body with status 200 either way (the page polls it: no console noise)."""
    _query(request, ())
    _ok, body = _health(request.app[WEB])
    return _json(body)


async def _handle_metrics(request: web.Request) -> web.Response:
    _query(request, ())
    body = generate_latest(request.app[WEB].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _handle_readings(request: web.Request) -> web.Response:
    query = _query(request, ("device",))
    state = request.app[WEB]
    now = state.clock()
    wanted = query.get("device")
    if wanted is not None and wanted not in state.device_names():
        raise _bad_request(f"unknown device {wanted!r} (known: {', '.join(state.device_names())})")
    devices: dict[str, Any] = {}
    for name, reading in list(state.hub.latest.items()):
        if wanted is not None and name != wanted:
            continue
        data = reading_json(reading, state.meta, state.scrub)
        data["age"] = round(max(0.0, now - reading.monotonic), 3)
        devices[name] = data
    return _json({"devices": devices})


def _parse_since(text: str, now: float) -> float:
    """Epoch seconds, or negative seconds relative to now, or an ISO 8601 time."""
    try:
        number = float(text)
    except ValueError:
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise _bad_request(
                f"since={text!r}: expected epoch seconds, -seconds (relative) or an ISO 8601 time"
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()
    if not math.isfinite(number):
        raise _bad_request(f"since={text!r}: expected a finite number")
    return now + number if number < 0 else number


async def _handle_history(request: web.Request) -> web.Response:
    query = _query(request, ("device", "field", "since", "max_points"))
    state = request.app[WEB]
    history = state.history
    known = list(dict.fromkeys([*state.device_names(), *history.devices]))
    device = query.get("device")
    if device is None:
        if len(known) != 1:
            raise _bad_request(f"device is required (one of: {', '.join(known)})")
        device = known[0]
    elif device not in known:
        raise _bad_request(f"unknown device {device!r} (known: {', '.join(known)})")
    available = history.fields(device)
    if "field" in query:
        wanted = [f.strip() for f in query["field"].split(",") if f.strip()]
        if not wanted:
            raise _bad_request("field is empty (expected field names separated by commas)")
        if len(wanted) > 64:
            raise _bad_request("at most 64 fields per request")
        for name in wanted:
            if not _field_known(name, available):
                raise _bad_request(f"unknown field {name!r} for {device}")
    else:
        wanted = available
    since = _parse_since(query.get("since", "0"), state.wall())
    try:
        max_points = int(query.get("max_points", DEFAULT_HISTORY_POINTS))
    except ValueError:
        raise _bad_request("max_points: expected an integer") from None
    if not 1 <= max_points <= MAX_HISTORY_POINTS:
        raise _bad_request(f"max_points: expected 1 to {MAX_HISTORY_POINTS}")
    if wanted:
        max_points = max(1, min(max_points, MAX_HISTORY_VALUES // len(wanted)))
    result = history.query(device, wanted, since, max_points)
    return _json(
        {
            "device": device,
            "interval": history.interval,
            "capacity": history.capacity,
            "since": since,
            "fields": {
                name: {"label": state.meta(name)[0], "unit": state.meta(name)[1]} for name in wanted
            },
            "t": result.times,
            "values": result.values,
        }
    )


def _field_known(name: str, available: list[str]) -> bool:
    """A field is acceptable if the history has it or the catalogue knows it."""
    return name in available or fields.lookup(name) is not None


def _sse(event: str, data: object) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def _handle_stream(request: web.Request) -> web.StreamResponse:
    query = _query(request, ("device",))
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


async def _handle_page(request: web.Request) -> web.FileResponse:
    _query(request, ("device",))
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
    state = _Web(config, hub, clock, wall)
    app[WEB] = state

    async def on_startup(_app: web.Application) -> None:
        await state.start()

    async def on_shutdown(_app: web.Application) -> None:
        await state.stop()

    app.on_startup.append(on_startup)
    app.on_shutdown.append(on_shutdown)
    app.on_response_prepare.append(_security_headers)
    app.router.add_get("/", _handle_page)
    app.router.add_get("/health", _handle_health)
    app.router.add_get("/metrics", _handle_metrics)
    app.router.add_get("/api/health", _handle_api_health)
    app.router.add_get("/api/readings", _handle_readings)
    app.router.add_get("/api/history", _handle_history)
    app.router.add_get("/api/stream", _handle_stream, allow_head=False)
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


# -- CLI: python -m vedirect_async health ------------------------------------------------
