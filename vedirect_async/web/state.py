"""Per-app state of the HTTP endpoint: the configuration, the hub, the history ring fed from
live readings (backfilled from the CSV log at start-up), the live-stream clients, and the
scrubbing of configured secrets from anything served."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import re
from collections.abc import Callable, Mapping
from pathlib import Path

from aiohttp import web
from prometheus_client import CollectorRegistry

from .. import fields
from ..config import SECRET_KEYS, Config, ConfigError
from ..csv_columns import device_path, parse_columns
from ..history import History, read_csv_tail
from ..hub import Hub, OutputHealth, Subscription
from ..reading import Reading
from .guard import ConnectionGuard

__all__ = ["WEB", "WebState"]

_LOGGER = logging.getLogger(__name__)

MAX_HISTORY_CAPACITY = 86_400  # points per device (24 h at 1 s), whatever the config says
BACKFILL_TIMEOUT = 10.0  # seconds for reading the CSV tail at start-up (a dead disk)
STREAM_STALL_TIMEOUT = 10.0  # seconds a live-stream client may leave data unread before it goes


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
        elif isinstance(obj, list | tuple | Mapping):
            for item in obj.values() if isinstance(obj, Mapping) else obj:
                walk(item)  # a Mapping: Config.sections (the outputs' sections)

    walk(config)
    return tuple(sorted(set(found), key=len, reverse=True))


_URL_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")


class WebState:
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
        # stream clients whose data is piling up in our buffers, the one stalled longest first
        self.stalled: dict[Subscription, float] = {}
        self.stream_stall_timeout = STREAM_STALL_TIMEOUT
        self.streams_dropped = 0  # stream clients dropped because they took nothing
        self.guard: ConnectionGuard | None = None  # the serving WebServer's, for /metrics
        self.secrets = _secret_values(config)
        self._unlisten: Callable[[], None] | None = None
        self._meta: dict[str, tuple[str, str]] = {}
        self.registry = CollectorRegistry(auto_describe=False)  # the app adds its collector

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


WEB = web.AppKey("vedirect_web", WebState)


def _charted(name: str) -> bool:
    """Fields worth a history column: not the device's own slow history counters (H1-H18)."""
    return not name.startswith("history_")
