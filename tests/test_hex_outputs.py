"""Register values and the HEX identity reach the outputs (issue 14 step 4), end to end from
the built-in simulated MPPT, which answers HEX like a real one."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from tests.webfeed import make_config
from vedirect_async.config import DeviceConfig, WatchdogConfig
from vedirect_async.hub import Hub
from vedirect_async.outputs.mqtt.discovery import discovery_configs
from vedirect_async.outputs.mqtt.topics import Topics, state_payload
from vedirect_async.present import domoticz_value
from vedirect_async.reading import Reading
from vedirect_async.session import DeviceSession
from vedirect_async.web import make_app
from vedirect_async.web.common import reading_json


@pytest.fixture
async def mppt_reading() -> AsyncIterator[Reading]:
    """The first reading of a simulated MPPT that carries its polled charger temperature."""
    hub = Hub()
    session = DeviceSession(
        DeviceConfig(name="mppt", port="simulator:mppt", register_interval=30),
        hub,
        WatchdogConfig(),
    )
    sub = hub.subscribe("test")
    task = asyncio.get_running_loop().create_task(session.run())

    async def first() -> Reading:
        while True:
            reading = await sub.get()
            if "charger_temperature" in reading.values and reading.serial:
                return reading

    try:
        yield await asyncio.wait_for(first(), 10)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_register_value_in_the_reading_and_the_api(mppt_reading: Reading) -> None:
    value = mppt_reading.values["charger_temperature"]
    assert isinstance(value, float)
    assert 0 < value < 80
    data = reading_json(mppt_reading, lambda name: (name, ""), lambda text: text)
    assert data["values"]["charger_temperature"]["value"] == value
    shown = mppt_reading.as_json()["values"]
    assert isinstance(shown, dict)
    assert shown["charger_temperature"] == value


async def test_register_value_in_the_mqtt_state(mppt_reading: Reading) -> None:
    state = state_payload(mppt_reading)
    assert state["charger_temperature"] == mppt_reading.values["charger_temperature"]


async def test_hex_identity_in_the_ha_device(mppt_reading: Reading) -> None:
    """Serial and firmware as the device told them (the text stream has them too here)."""
    configs = discovery_configs(Topics("vedirect", "mppt", "homeassistant"), mppt_reading)
    device = next(iter(configs.values()))["device"]
    assert device["serial_number"] == mppt_reading.serial
    assert device["sw_version"] == mppt_reading.firmware


async def test_register_value_in_metrics_and_domoticz(
    mppt_reading: Reading, tmp_path: Path
) -> None:
    """/metrics exports it (vedirect_value, no unit label yet); a Domoticz idx can map it."""
    hub = Hub()
    hub.publish(mppt_reading)
    async with TestClient(TestServer(make_app(make_config(tmp_path), hub))) as client:
        text = await (await client.get("/metrics")).text()
    line = next(
        line
        for line in text.splitlines()
        if line.startswith("vedirect_value{") and 'field="charger_temperature"' in line
    )
    assert float(line.rsplit(" ", 1)[1]) == pytest.approx(
        mppt_reading.values["charger_temperature"]
    )
    value = mppt_reading.values["charger_temperature"]
    assert domoticz_value("temperature", value, "charger_temperature") == (0, f"{value:.2f}")
