"""The HTTP endpoint: /health, /metrics, the JSON API, the live stream, the CLI health check."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import math
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from tests.webfeed import FakeClock, Feed, free_port, make_config
from vedirect_async import cli
from vedirect_async.healthcheck import config_url, health_url
from vedirect_async.history import MAX_FIELDS, History, read_csv_tail
from vedirect_async.hub import Hub
from vedirect_async.outputs.csv_log import csv_output
from vedirect_async.reading import UNAVAILABLE, Reading
from vedirect_async.settings import Config, ConfigError, load_config
from vedirect_async.web import WebServer, make_app


@contextlib.asynccontextmanager
async def serve(
    config: Config, hub: Hub, clock: FakeClock | None = None
) -> AsyncIterator[TestClient[aiohttp.web.Request, aiohttp.web.Application]]:
    app = make_app(config, hub, clock=clock or time.monotonic)
    async with TestClient(TestServer(app)) as client:
        yield client


def write(path: str, text: str) -> None:
    Path(path).write_text(text)


def metrics(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Samples by (name, sorted labels)."""
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


# -- /health ---------------------------------------------------------------------------------


async def test_health_turns_503_when_silent_and_200_after_recovery(tmp_path: Path) -> None:
    """A device silent for longer than silence_timeout makes /health 503; a new reading heals it."""
    config = make_config(tmp_path, extra="[watchdog]\nsilence_timeout = 10\n")
    hub, clock = Hub(), FakeClock()
    feed = Feed(hub, clock=clock)
    async with serve(config, hub, clock) as client:
        feed.until_reading()
        resp = await client.get("/health")
        body = await resp.json()
        assert resp.status == 200, body
        assert body["status"] == "ok"
        dev = body["devices"]["bmv"]
        assert dev["fresh"] is True
        assert dev["reader_state"] == "reading"
        assert dev["last_reading_age"] == 0

        clock.advance(10.5)  # the device goes quiet past the window
        feed.state.restarts = 1
        resp = await client.get("/health")
        body = await resp.json()
        assert resp.status == 503
        assert body["status"] == "unhealthy"
        assert body["devices"]["bmv"]["fresh"] is False
        assert body["devices"]["bmv"]["last_reading_age"] == pytest.approx(10.5)
        assert body["devices"]["bmv"]["restarts"] == 1
        assert any("bmv" in p for p in body["problems"])

        feed.until_reading()  # it comes back
        resp = await client.get("/health")
        assert resp.status == 200


async def test_health_window_is_configurable(tmp_path: Path) -> None:
    """[http] health_max_age overrides the watchdog's silence_timeout as the freshness window."""
    config = make_config(tmp_path, http="health_max_age = 60")
    hub, clock = Hub(), FakeClock()
    feed = Feed(hub, clock=clock)
    async with serve(config, hub, clock) as client:
        feed.until_reading()
        clock.advance(59)
        assert (await client.get("/health")).status == 200
        clock.advance(2)
        resp = await client.get("/health")
        assert resp.status == 503
        assert (await resp.json())["max_age"] == 60


async def test_health_503_until_the_first_reading(tmp_path: Path) -> None:
    """A configured device with no reading yet is unhealthy from the start (no grace: Docker's
    start period covers start-up, issue 13); its first valid reading makes /health 200."""
    config = make_config(tmp_path)
    hub, clock = Hub(), FakeClock()
    feed = Feed(hub, clock=clock)
    async with serve(config, hub, clock) as client:
        resp = await client.get("/health")
        body = await resp.json()
        assert resp.status == 503, body
        assert body["devices"]["bmv"]["last_reading_age"] is None
        assert body["devices"]["bmv"]["fresh"] is False
        assert body["problems"] == ["bmv: no valid reading yet (0 s since start)"]
        clock.advance(3)
        body = await (await client.get("/health")).json()
        assert body["problems"] == ["bmv: no valid reading yet (3 s since start)"]
        feed.until_reading()
        resp = await client.get("/health")
        assert resp.status == 200, await resp.json()


async def test_health_output_states(tmp_path: Path) -> None:
    """A failed output makes /health 503; degraded only when configured as unhealthy."""
    hub, clock = Hub(), FakeClock()
    feed = Feed(hub, clock=clock)
    feed.until_reading()
    csv_state = hub.output("csv")
    csv_state.ok()
    async with serve(make_config(tmp_path), hub, clock) as client:
        hub.output("domoticz").degraded("retrying: HTTP 500")
        resp = await client.get("/health")
        body = await resp.json()
        assert resp.status == 200
        assert body["outputs"]["domoticz"] == {
            "health": "degraded",
            "reason": "retrying: HTTP 500",
            "last_success": None,
            "successes": 0,
            "failures": 0,
        }
        assert body["outputs"]["csv"]["last_success"] is not None
        hub.output("domoticz").failed("connection refused")
        resp = await client.get("/health")
        assert resp.status == 503
        body = await resp.json()
        assert "output domoticz: failed (connection refused)" in body["problems"]
        page_view = await client.get("/api/health")  # the page's poll: same body, always 200
        assert page_view.status == 200
        assert (await page_view.json())["problems"] == body["problems"]

    strict = make_config(tmp_path, http='unhealthy_output_states = ["degraded", "failed"]')
    hub.output("domoticz").degraded("retrying")
    async with serve(strict, hub, clock) as client:
        assert (await client.get("/health")).status == 503


def test_unhealthy_output_states_validated(tmp_path: Path) -> None:
    """An unknown output state in the config is a one-line config error."""
    path = tmp_path / "c.toml"
    path.write_text('[http]\nunhealthy_output_states = ["broken"]\n')
    with pytest.raises(ConfigError, match=r"http.unhealthy_output_states\[0\] = 'broken'"):
        load_config(path, environ={})


# -- secrets, 404, 400, read-only ------------------------------------------------------------


async def test_secrets_never_served(tmp_path: Path) -> None:
    """Configured passwords and URL credentials never appear in any response body."""
    config = make_config(
        tmp_path,
        extra='[domoticz]\npassword = "hunter2-dz"\n[mqtt]\npassword = "hunter2-mq"\n',
    )
    hub, clock = Hub(), FakeClock()
    feed = Feed(hub, clock=clock)
    feed.until_reading()
    hub.output("domoticz").failed("401 for http://admin:hunter2-dz@127.0.0.1:8080/json.htm")
    hub.output("mqtt").degraded("auth hunter2-mq rejected")
    hub.output("mqtt").count("hunter2-mq")  # even a silly counter name must not leak it
    feed.state.reason = "reopened with hunter2-dz"
    async with serve(config, hub, clock) as client:
        for path in ("/health", "/api/health", "/metrics", "/api/readings", "/api/history", "/"):
            resp = await client.get(path)
            text = await resp.text()
            assert resp.status in (200, 503), path
            assert "hunter2" not in text, path
        body = await (await client.get("/health")).json()
        assert body["outputs"]["domoticz"]["reason"] == "401 for http://***@127.0.0.1:8080/json.htm"


async def test_unknown_paths_and_methods(tmp_path: Path) -> None:
    """Unknown paths are 404 and no endpoint accepts a write method."""
    async with serve(make_config(tmp_path), Hub()) as client:
        assert (await client.get("/nope")).status == 404
        assert (await client.get("/static/../web.py")).status in (403, 404)
        for path in ("/health", "/api/readings", "/api/history", "/"):
            assert (await client.post(path, data=b"x")).status == 405
            assert (await client.delete(path)).status == 405


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("device=bmv&foo=1", "unknown query parameter 'foo'"),
        ("device=nope", "unknown device 'nope'"),
        ("device=bmv&field=soc,bogus_field", "unknown field 'bogus_field'"),
        ("device=bmv&field=,", "field is empty"),
        ("device=bmv&since=yesterday", "since='yesterday'"),
        ("device=bmv&since=nan", "finite"),
        ("device=bmv&max_points=0", "max_points"),
        ("device=bmv&max_points=99999999", "max_points"),
        ("device=bmv&max_points=ten", "max_points"),
        ("device=bmv&device=bmv", "more than once"),
        ("device=bmv&since=" + "9" * 2000, "longer than"),
    ],
)
async def test_history_bad_parameters(tmp_path: Path, query: str, message: str) -> None:
    """Bad /api/history parameters give 400 with a JSON message naming the problem."""
    async with serve(make_config(tmp_path), Hub()) as client:
        resp = await client.get(f"/api/history?{query}")
        assert resp.status == 400
        assert message in (await resp.json())["error"]


async def test_other_endpoints_reject_parameters(tmp_path: Path) -> None:
    """/health, /metrics and /api/readings reject unknown parameters with 400."""
    async with serve(make_config(tmp_path), Hub()) as client:
        for path in ("/health?x=1", "/metrics?x=1", "/api/readings?x=1", "/api/readings?device=zz"):
            assert (await client.get(path)).status == 400, path


# -- /metrics --------------------------------------------------------------------------------


async def test_metrics_expose_readings_and_counters(tmp_path: Path) -> None:
    """Readings, parser, hub, reader and output counters parse back from the exposition."""
    hub, clock = Hub(), FakeClock()
    feed = Feed(hub, clock=clock)
    slow = hub.subscribe("slowpoke", maxsize=2)
    for _ in range(6):
        feed.step()
    feed.state.restarts = 2
    out = hub.output("domoticz")
    out.ok()
    out.ok()
    out.failed("HTTP 500")
    out.count("rejected_idx", 3)
    async with serve(make_config(tmp_path), hub, clock) as client:
        resp = await client.get("/metrics")
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain; version=")
        m = metrics(await resp.text())
    latest = hub.latest["bmv"]
    soc = latest.values["soc"]
    assert isinstance(soc, float)
    assert m[("vedirect_value", (("device", "bmv"), ("field", "soc"), ("unit", "%")))] == soc
    assert m[
        ("vedirect_value", (("device", "bmv"), ("field", "voltage"), ("unit", "V")))
    ] == pytest.approx(float(latest.values["voltage"]))  # type: ignore[arg-type]
    stats = feed.decoder.parser_stats
    assert m[("vedirect_parser_blocks_ok_total", (("device", "bmv"),))] == stats.blocks_ok
    assert stats.blocks_ok >= 10
    for key in ("checksum_errors", "hex_ok", "hex_bad", "bytes_discarded"):
        assert (f"vedirect_parser_{key}_total", (("device", "bmv"),)) in m
    assert m[("vedirect_readings_total", (("device", "bmv"),))] == len(feed.published)
    assert m[("vedirect_reader_restarts_total", (("device", "bmv"),))] == 2
    assert m[("vedirect_reader_state", (("device", "bmv"), ("state", "reading")))] == 1
    assert m[("vedirect_reader_state", (("device", "bmv"), ("state", "silent")))] == 0
    assert m[("vedirect_hub_dropped_total", (("subscription", "slowpoke"),))] == slow.dropped
    assert slow.dropped == len(feed.published) - 2
    assert m[("vedirect_output_successes_total", (("output", "domoticz"),))] == 2
    assert m[("vedirect_output_failures_total", (("output", "domoticz"),))] == 1
    assert (
        m[("vedirect_output_events_total", (("counter", "rejected_idx"), ("output", "domoticz")))]
        == 3
    )
    assert m[
        ("vedirect_output_last_success_timestamp_seconds", (("output", "domoticz"),))
    ] == pytest.approx(out.last_success)
    assert m[("vedirect_output_health", (("health", "failed"), ("output", "domoticz")))] == 1
    assert m[("vedirect_reading_age_seconds", (("device", "bmv"),))] == 0
    assert m[("vedirect_byte_age_seconds", (("device", "bmv"),))] == 0
    assert m[("vedirect_reader_stuck", (("device", "bmv"),))] == 0
    assert m[("vedirect_reader_stuck_events_total", (("device", "bmv"),))] == 0


async def test_metrics_special_values(tmp_path: Path) -> None:
    """Unavailable values are left out, infinity is +Inf, enum text becomes a label."""
    hub = Hub()
    now = time.monotonic()
    hub.publish(
        Reading(
            "bmv",
            datetime.now(UTC),
            now,
            {"soc": UNAVAILABLE, "time_to_go": math.inf, "alarm": True, "charger_state": "bulk"},
        )
    )
    async with serve(make_config(tmp_path), hub) as client:
        m = metrics(await (await client.get("/metrics")).text())
    names = {(n, dict(labels).get("field")) for n, labels in m}
    assert ("vedirect_value", "soc") not in names
    ttg = m[("vedirect_value", (("device", "bmv"), ("field", "time_to_go"), ("unit", "min")))]
    assert ttg == math.inf
    assert m[("vedirect_value", (("device", "bmv"), ("field", "alarm"), ("unit", "")))] == 1
    key = ("vedirect_text", (("device", "bmv"), ("field", "charger_state"), ("value", "bulk")))
    assert m[key] == 1


async def test_metrics_registry_is_per_app(tmp_path: Path) -> None:
    """Two apps in one process each expose their own hub (no global registry)."""
    hub_a, hub_b = Hub(), Hub()
    Feed(hub_a, "alpha", clock=time.monotonic).until_reading()
    Feed(hub_b, "beta", "mppt", clock=time.monotonic).until_reading()
    config = make_config(tmp_path)
    async with serve(config, hub_a) as a, serve(config, hub_b) as b:
        text_a = await (await a.get("/metrics")).text()
        text_b = await (await b.get("/metrics")).text()
    assert 'device="alpha"' in text_a
    assert 'device="beta"' not in text_a
    assert 'device="beta"' in text_b
    assert 'field="panel_power"' in text_b


# -- /api/readings, /api/history ------------------------------------------------------------


async def test_readings_api(tmp_path: Path) -> None:
    """/api/readings gives the latest reading per device with labels, units and specials."""
    hub, clock = Hub(), FakeClock()
    feed = Feed(hub, clock=clock)
    reading = feed.until_reading()
    Feed(hub, "solar", "mppt", clock=clock).until_reading()
    clock.advance(2.5)
    hub.publish(
        Reading(
            "odd",
            datetime.now(UTC),
            clock(),
            {"soc": UNAVAILABLE, "time_to_go": math.inf, "alarm_reason": ("low voltage",)},
        )
    )
    async with serve(make_config(tmp_path), hub, clock) as client:
        body = await (await client.get("/api/readings")).json()
        only = await (await client.get("/api/readings?device=solar")).json()
    assert set(body["devices"]) == {"bmv", "solar", "odd"}
    bmv = body["devices"]["bmv"]
    assert bmv["age"] == 2.5
    assert bmv["pid"] == f"0x{reading.pid:04X}"
    assert bmv["values"]["soc"] == {"value": reading.values["soc"], "unit": "%", "label": "SOC"}
    assert bmv["values"]["voltage"]["unit"] == "V"
    odd = body["devices"]["odd"]["values"]
    assert odd["soc"] == {"value": None, "unit": "%", "label": "SOC", "special": "unavailable"}
    assert odd["time_to_go"]["special"] == "infinite"
    assert odd["alarm_reason"]["value"] == ["low voltage"]
    assert set(only["devices"]) == {"solar"}
    assert only["devices"]["solar"]["values"]["panel_power"]["unit"] == "W"


def test_history_ring_is_bounded_and_sampled() -> None:
    """The ring keeps one point per interval and at most capacity points, oldest dropped."""
    history = History(capacity=5, interval=30)
    for second in range(0, 600, 10):  # a reading every 10 s for 10 minutes
        history.add_point("bmv", 1000.0 + second, {"soc": float(second), "alarm": True})
    assert history.points("bmv") == 5
    result = history.query("bmv", ["soc", "nothing"], since=0, max_points=100)
    assert result.times == [1000.0 + s for s in (450, 480, 510, 540, 570)]
    assert result.values["soc"] == [450.0, 480.0, 510.0, 540.0, 570.0]
    assert result.values["nothing"] == [None] * 5
    assert history.fields("bmv") == ["soc"]  # bools are not charted
    thinned = history.query("bmv", ["soc"], since=0, max_points=2)
    assert thinned.times[-1] == 1570.0  # the newest point always survives thinning
    assert len(thinned.times) == 2
    assert history.query("bmv", ["soc"], since=1540, max_points=10).times == [1540.0, 1570.0]


def test_history_columns_are_bounded() -> None:
    """A device sending ever more fields cannot grow a point beyond MAX_FIELDS columns."""
    history = History(capacity=3, interval=0)
    for i in range(10):
        history.add_point("odd", float(i), {f"f{i}_{k}": 1.0 for k in range(20)})
    assert len(history.fields("odd")) == MAX_FIELDS
    assert history.points("odd") == 3


def test_history_clock_step_back_does_not_freeze() -> None:
    """A wall clock stepped backwards still records new points."""
    history = History(capacity=10, interval=30)
    history.add_point("bmv", 5000.0, {"soc": 1.0})
    assert history.add_point("bmv", 4000.0, {"soc": 2.0})
    assert not history.add_point("bmv", 4010.0, {"soc": 3.0})


def test_csv_tail_backfill(tmp_path: Path) -> None:
    """The CSV backfill reads the header and only the newest rows, skipping bad ones."""
    path = tmp_path / "log.csv"
    rows = ["Time,Volts,Amps,AHr,SOC"]
    rows += [f"2026-11-25 10:{m:02d}:00,12.{m:02d},-1.5,-3.0,{50 + m / 10}" for m in range(60)]
    rows.insert(30, "garbage,row")
    rows.append("2026-11-25 11:00:00,12.5,---,,77.0")
    path.write_text("\n".join(rows) + "\n")
    columns = {
        "Time": "time",
        "Volts": "voltage",
        "Amps": "current",
        "AHr": "consumed_ah",
        "SOC": "soc",
    }
    result = read_csv_tail(path, 10, "bmv", columns.get)
    points = result.points["bmv"]
    assert len(points) == 10
    assert points[-1] == (datetime(2026, 11, 25, 11, 0).timestamp(), {"voltage": 12.5, "soc": 77.0})
    assert points[0][1] == {"voltage": 12.51, "current": -1.5, "consumed_ah": -3.0, "soc": 55.1}
    big = read_csv_tail(path, 1000, "bmv", columns.get)
    assert big.skipped == 1
    assert len(big.points["bmv"]) == 61


async def test_history_api_backfill_and_live(tmp_path: Path) -> None:
    """/api/history serves CSV-backfilled points followed by live samples at the CSV interval."""
    config = make_config(tmp_path)
    start = datetime.now(UTC).timestamp() - 3600
    lines = ["Time,Volts,Amps,AHr,SOC"]
    for i in range(120):  # one hour at 30 s
        stamp = datetime.fromtimestamp(start + 30 * i, UTC).isoformat()
        lines.append(f"{stamp},12.{i % 100:02d},2.0,-10.0,{60 + i / 10:.1f}")
    write(config.csv.path, "\n".join(lines) + "\n")
    hub, clock = Hub(), FakeClock()
    wall = [datetime.now(UTC)]
    feed = Feed(hub, clock=clock, wall=lambda: wall[0])
    async with serve(config, hub, clock) as client:
        readings = []
        for _ in range(4):  # 4 readings 40 s apart: each one is sampled
            readings.append(feed.until_reading())
            wall[0] = datetime.fromtimestamp(wall[0].timestamp() + 40, UTC)
        resp = await client.get("/api/history?device=bmv&field=soc,voltage&since=-7200")
        body = await resp.json()
        assert resp.status == 200, body
        assert body["interval"] == 30
        assert body["capacity"] == 2880  # 24 h at the CSV interval
        assert body["fields"]["soc"] == {"label": "SOC", "unit": "%"}
        assert len(body["t"]) == 124
        assert body["t"][0] == pytest.approx(start)
        assert body["values"]["soc"][:2] == [60.0, 60.1]
        assert body["values"]["soc"][-4:] == [r.values["soc"] for r in readings]
        assert body["t"] == sorted(body["t"])
        recent = await (await client.get(f"/api/history?since={start + 3560}")).json()
        assert len(recent["t"]) == 5  # the last CSV row and the four live points
        assert "current" in recent["values"]  # no field = every charted numeric field
        assert "history_charge_cycles" not in recent["values"]  # H4 counters are not kept
        capped = await (await client.get("/api/history?field=soc&max_points=10")).json()
        assert len(capped["t"]) == 10
        assert capped["t"][-1] == body["t"][-1]


async def test_history_backfill_follows_csv_config(tmp_path: Path) -> None:
    """Backfill reads each device's file with the configured columns, as the CSV output writes."""
    config = make_config(
        tmp_path,
        extra='[[device]]\nname = "solar"\nport = "simulator:mppt"\n',
    )
    csv = dataclasses.replace(
        config.csv,
        path=str(tmp_path / "log_{device}.csv"),
        columns=["When=time", "Battery=V", "soc", "solar:PPV"],
        time_format="utc",
    )
    config = config.with_section("csv", csv)
    now = int(time.time())
    stamp = datetime.fromtimestamp(now - 60, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    write(str(tmp_path / "log_bmv.csv"), f"When,Battery,soc\n{stamp},12.5,,\n")
    write(str(tmp_path / "log_solar.csv"), f"When,Battery,soc,PPV\n{stamp},13.1,,250\n")
    async with serve(config, Hub()) as client:
        bmv = await (await client.get("/api/history?device=bmv")).json()
        solar = await (await client.get("/api/history?device=solar")).json()
    assert bmv["t"] == [now - 60]
    assert bmv["values"] == {"voltage": [12.5]}
    assert solar["values"] == {"voltage": [13.1], "panel_power": [250.0]}


async def test_history_backfills_from_the_real_csv_output(tmp_path: Path) -> None:
    """Rows the CSV output wrote in a previous run come back as history points after a restart."""
    config = make_config(tmp_path)
    csv_config = dataclasses.replace(config.csv, interval=0)  # a row per reading
    output = csv_output(config.with_section("csv", csv_config))
    assert output is not None
    writer_hub, clock = Hub(), FakeClock()
    wall = [datetime.now(UTC) - timedelta(minutes=10)]
    feed = Feed(writer_hub, clock=clock, wall=lambda: wall[0])
    sub = output.subscribe(writer_hub)
    task = asyncio.create_task(output.run(sub, writer_hub.output("csv")))
    try:
        written = []
        for _ in range(5):
            written.append(feed.until_reading())
            wall[0] += timedelta(seconds=60)
        await asyncio.wait_for(output.wait_written(5), 5)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await output.aclose()
    async with serve(config, Hub()) as client:  # "the next start"
        body = await (await client.get("/api/history?device=bmv")).json()
    assert body["t"] == [float(int(r.time.timestamp())) for r in written]  # whole seconds
    assert body["values"]["soc"] == [r.values["soc"] for r in written]
    assert body["values"]["voltage"] == [r.values["voltage"] for r in written]
    assert set(body["values"]) == {"voltage", "current", "consumed_ah", "soc"}


async def test_history_ignores_a_broken_csv(tmp_path: Path) -> None:
    """A CSV without a Time column is logged and skipped; the server still starts."""
    config = make_config(tmp_path)
    write(config.csv.path, "a,b\n1,2\n")
    async with serve(config, Hub()) as client:
        body = await (await client.get("/api/history?device=bmv")).json()
        assert body["t"] == []


# -- /api/stream -----------------------------------------------------------------------------


async def _next_event(resp: aiohttp.ClientResponse) -> tuple[str, dict[str, object]]:
    event, data = "", ""
    while True:
        line = (await asyncio.wait_for(resp.content.readline(), 5)).decode().rstrip("\n")
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            data = line[6:]
        elif not line and event:
            return event, json.loads(data)


async def test_stream_sends_latest_then_live_readings(tmp_path: Path) -> None:
    """/api/stream sends the current readings at once, then each new one as an SSE event."""
    hub, clock = Hub(), FakeClock()
    feed = Feed(hub, clock=clock)
    first = feed.until_reading()
    async with serve(make_config(tmp_path), hub, clock) as client:
        resp = await client.get("/api/stream")
        assert resp.headers["Content-Type"] == "text/event-stream"
        event, data = await _next_event(resp)
        assert (event, data["timestamp"]) == ("reading", first.time.timestamp())
        waiting = asyncio.ensure_future(_next_event(resp))
        await asyncio.sleep(0)
        second = feed.until_reading()
        event, data = await asyncio.wait_for(waiting, 5)
        values = data["values"]
        assert isinstance(values, dict)
        assert values["soc"]["value"] == second.values["soc"]
        resp.close()


async def test_stream_clients_capped_and_closed_on_shutdown(tmp_path: Path) -> None:
    """Stream clients beyond max_stream_clients get 503; shutdown ends open streams promptly."""
    hub = Hub()
    Feed(hub, clock=time.monotonic).until_reading()
    config = make_config(tmp_path, http="max_stream_clients = 2")
    app = make_app(config, hub)
    server = TestServer(app)
    client: TestClient[aiohttp.web.Request, aiohttp.web.Application] = TestClient(server)
    await client.start_server()
    try:
        streams = [await client.get("/api/stream") for _ in range(2)]
        for resp in streams:
            await _next_event(resp)
        assert len([s for s in hub.subscriptions if s.name.startswith("http-stream")]) == 2
        refused = await client.get("/api/stream")
        assert refused.status == 503
        assert "too many" in (await refused.json())["error"]
    finally:
        started = time.monotonic()
        await asyncio.wait_for(client.close(), 10)
    assert time.monotonic() - started < 2.5  # not the shutdown timeout: streams were closed
    assert not [s for s in hub.subscriptions if s.name.startswith("http-stream")]


async def test_page_and_static_files(tmp_path: Path) -> None:
    """The page and its assets are served locally with a self-only content security policy."""
    async with serve(make_config(tmp_path), Hub()) as client:
        resp = await client.get("/")
        html = await resp.text()
        assert resp.status == 200
        assert "default-src 'none'" in resp.headers["Content-Security-Policy"]
        assert "http://" not in html
        assert "https://" not in html
        for asset in ("/static/app.js", "/static/chart.js", "/static/style.css"):
            resp = await client.get(asset)
            assert resp.status == 200, asset
            text = await resp.text()
            assert "https://" not in text
            assert "http://" not in text


# -- WebServer and the CLI health check ------------------------------------------------------


def test_health_url_maps_wildcards_to_loopback(tmp_path: Path) -> None:
    """The health URL of a server bound to a wildcard address targets loopback."""
    assert health_url("127.0.0.1", 9000) == "http://127.0.0.1:9000/health"
    assert health_url("0.0.0.0", 9001) == "http://127.0.0.1:9001/health"
    assert health_url("::", 9001) == "http://[::1]:9001/health"
    path = tmp_path / "config.toml"
    path.write_text('[http]\nhost = "0.0.0.0"\nport = 9002\n')
    assert config_url(str(path), {}) == "http://127.0.0.1:9002/health"
    env = {"VEDIRECT_HTTP__PORT": "9003", "VEDIRECT_HTTP__HOST": "::"}
    assert config_url(str(path), env) == "http://[::1]:9003/health"
    assert config_url(None, {}) == "http://127.0.0.1:8080/health"


async def test_webserver_and_cli_health(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """WebServer serves the real port; `health` exits 0 when healthy, 1 when not or unreachable."""
    port = free_port()
    config = make_config(tmp_path, port=port, extra="[watchdog]\nsilence_timeout = 10\n")
    config_path = tmp_path / "config.toml"
    hub = Hub()
    feed = Feed(hub, clock=time.monotonic)
    feed.until_reading()
    server = WebServer(config, hub)
    task = asyncio.create_task(server.run())
    try:
        await asyncio.wait_for(server.serving.wait(), 10)
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{port}/health") as resp,
        ):
            assert resp.status == 200
        args = ["--config", str(config_path), "health"]
        assert await asyncio.to_thread(cli.main, args) == 0
        assert capsys.readouterr().out == "healthy\n"
        hub.output("csv").failed("disk full")
        assert await asyncio.to_thread(cli.main, args) == 1
        assert "output csv: failed (disk full)" in capsys.readouterr().out
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 5)
    down = ["health", "--url", f"http://127.0.0.1:{port}/health", "--timeout", "1"]
    assert await asyncio.to_thread(cli.main, down) == 1  # the port is closed again
    assert capsys.readouterr().out.startswith("unhealthy: ")
    assert cli.main(["--config", str(tmp_path / "missing.toml"), "health"]) == 1
