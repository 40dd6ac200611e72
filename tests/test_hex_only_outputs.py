"""Values only HEX registers carry (no text label) show with their units everywhere: the
/api/readings unit, the /metrics unit label, a Home Assistant sensor with unit and class, and a
CSV column by name (issue 14: register values reach every output); the HEX command path's
counters are on /metrics."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from tests.webfeed import make_config
from vedirect_async.config import DeviceConfig, WatchdogConfig
from vedirect_async.csv_columns import parse_columns
from vedirect_async.hub import Hub
from vedirect_async.outputs.mqtt.discovery import discovery_configs
from vedirect_async.outputs.mqtt.topics import Topics
from vedirect_async.reading import Reading
from vedirect_async.session import DeviceSession
from vedirect_async.web import make_app

HEX_ONLY = {"charger_temperature": (28.5, "°C"), "battery_max_current": (15.0, "A")}


def _reading() -> Reading:
    values = {name: value for name, (value, _) in HEX_ONLY.items()}
    return Reading("bmv", datetime.now(UTC), time.monotonic(), values=values | {"voltage": 12.5})


async def test_api_and_metrics_show_the_unit(tmp_path: Path) -> None:
    hub = Hub()
    hub.publish(_reading())
    async with TestClient(TestServer(make_app(make_config(tmp_path), hub))) as client:
        shown = (await (await client.get("/api/readings")).json())["devices"]["bmv"]["values"]
        metrics = await (await client.get("/metrics")).text()
    for name, (value, unit) in HEX_ONLY.items():
        assert shown[name] == {"value": value, "unit": unit, "label": shown[name]["label"]}
        assert f'vedirect_value{{device="bmv",field="{name}",unit="{unit}"}} {value}' in metrics


def test_home_assistant_sensor_with_unit() -> None:
    configs = discovery_configs(Topics("vedirect", "bmv", "homeassistant"), _reading())
    temperature = next(c for t, c in configs.items() if "/charger_temperature/" in t)
    assert temperature["unit_of_measurement"] == "°C"
    assert temperature["device_class"] == "temperature"
    current = next(c for t, c in configs.items() if "/battery_max_current/" in t)
    assert current["unit_of_measurement"] == "A"


def test_csv_column_by_name() -> None:
    columns = parse_columns(
        ["Time", "Temp=charger_temperature", "Imax=battery_max_current"], ["bmv"]
    )
    assert [c.header for c in columns] == ["Time", "Temp", "Imax"]


async def test_metrics_show_the_hex_command_counters(tmp_path: Path) -> None:
    """The HEX command path's counters (DeviceState.hex) are on /metrics per device."""
    hub = Hub()
    session = DeviceSession(DeviceConfig(name="mppt", port="simulator:mppt"), hub, WatchdogConfig())
    sub = hub.subscribe("test")
    task = asyncio.get_running_loop().create_task(session.run())

    async def polled() -> None:
        while "charger_temperature" not in (await sub.get()).values:
            pass

    try:
        await asyncio.wait_for(polled(), 10)
        async with TestClient(TestServer(make_app(make_config(tmp_path), hub))) as client:
            metrics = await (await client.get("/metrics")).text()
            session.link.stats.stopped = True  # as when the device stops answering
            after = await (await client.get("/metrics")).text()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    samples = {
        line.split(" ")[0]: float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("vedirect_hex_")
    }
    # at connect: ping, product id, app version, serial, model; then the charger temperature
    assert samples['vedirect_hex_commands_total{device="mppt"}'] >= 6
    assert samples['vedirect_hex_no_answer_total{device="mppt"}'] == 0
    assert samples['vedirect_hex_stopped{device="mppt"}'] == 0
    assert 'vedirect_hex_stopped{device="mppt"} 1.0' in after
