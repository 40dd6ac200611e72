"""``GET /metrics``: Prometheus text exposition from a per-app registry whose collector reads
the hub at scrape time (nothing is stored between scrapes)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Iterator

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..hub import OutputHealth, ReaderState
from ..reading import UNAVAILABLE
from .common import checked_query
from .state import WEB, WebState

__all__ = ["HubCollector", "handle_metrics"]

MAX_TEXT_LABEL = 64  # text values longer than this are not exported as metric labels


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

_HEX_HELP = {  # commands.HexStats: the HEX command path of a device's port
    "commands": "HEX commands asked for (register polls, identity, pings, writes)",
    "timeouts": "HEX sends the device did not answer in time",
    "retries": "HEX commands sent again after silence or an error frame",
    "no_answer": "HEX commands that ended without an answer",
    "rejected": "HEX answers with flags set (unknown register, not supported, bad value)",
    "error_frames": "HEX error frames (:4AAAAFD) received",
    "echoes": "Own HEX commands read back from the line",
    "async_values": "Asynchronous :A records with a value",
    "unmatched": "HEX records that answered no command in flight",
}


def _one(
    kind: type[CounterMetricFamily | GaugeMetricFamily], name: str, doc: str, value: float
) -> Metric:
    """A metric family with one unlabelled sample."""
    family = kind(name, doc, labels=[])
    family.add_metric([], value)
    return family


class HubCollector(Collector):
    """Reads the hub at scrape time; nothing is stored between scrapes."""

    def __init__(self, state: WebState) -> None:
        self._state = state

    def collect(self) -> Iterable[Metric]:
        state = self._state
        hub = state.hub
        now, wall = state.clock(), state.wall()
        yield from self._readings(state, now)
        yield from self._devices(state, now)
        yield _one(
            CounterMetricFamily,
            "vedirect_hub_published",
            "Readings published to the hub",
            hub.published,
        )
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
        yield _one(
            GaugeMetricFamily,
            "vedirect_http_stream_clients",
            "Live-stream clients",
            len(state.streams),
        )
        yield from self._http(state)
        tasks = GaugeMetricFamily("vedirect_async_tasks", "asyncio tasks alive in the service")
        with contextlib.suppress(RuntimeError):  # scraped outside the loop: no figure
            tasks.add_metric([], len(asyncio.all_tasks()))
        yield tasks

    @staticmethod
    def _http(state: WebState) -> Iterator[Metric]:
        yield _one(
            CounterMetricFamily,
            "vedirect_http_stream_dropped",
            "Live-stream clients dropped for leaving data unread",
            state.streams_dropped,
        )
        guard = state.guard
        if guard is None:
            return
        yield _one(GaugeMetricFamily, "vedirect_http_connections", "Open connections", guard.open)
        closed = CounterMetricFamily(
            "vedirect_http_connections_closed",
            "Connections closed by the cap: evicted (idle longest) or refused (all busy)",
            labels=["reason"],
        )
        closed.add_metric(["evicted"], guard.evicted)
        closed.add_metric(["refused"], guard.refused)
        yield closed

    @staticmethod
    def _readings(state: WebState, now: float) -> Iterator[Metric]:
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
    def _devices(state: WebState, now: float) -> Iterator[Metric]:
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
        hex_counters = {
            key: CounterMetricFamily(f"vedirect_hex_{key}", doc, labels=labels)
            for key, doc in _HEX_HELP.items()
        }
        hex_stopped = GaugeMetricFamily(
            "vedirect_hex_stopped",
            "1 once the device is sent no more HEX (it never answered, or its text pauses)",
            labels=labels,
        )
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
            for key, family in hex_counters.items():
                family.add_metric([name], getattr(dev.hex, key))
            hex_stopped.add_metric([name], float(dev.hex.stopped))
        yield age
        yield fresh
        yield reader
        yield stuck
        yield byte_age
        yield from counters.values()
        yield from parser.values()
        yield from hex_counters.values()
        yield hex_stopped

    @staticmethod
    def _outputs(state: WebState, wall: float) -> Iterator[Metric]:
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


async def handle_metrics(request: web.Request) -> web.Response:
    checked_query(request, ())
    body = generate_latest(request.app[WEB].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
