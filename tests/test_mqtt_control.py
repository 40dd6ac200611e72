"""MQTT commands and HA control entities (issue 15) against a real mosquitto, writing to the
built-in simulated MPPT (which answers HEX like a real one)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiomqtt

from vedirect_async.config import DeviceConfig, WatchdogConfig
from vedirect_async.control import Controller
from vedirect_async.hub import Hub
from vedirect_async.outputs.mqtt import MqttOutput
from vedirect_async.service import Service
from vedirect_async.session import DeviceSession
from vedirect_async.settings import load_config

from .mosquitto import Mosquitto
from .test_mqtt import broker, mqtt_config, running, subscriber
from .test_mqtt_ha import render

__all__ = ["broker"]  # the fixture, used by name

STATE = "vedirect/mppt/state"
WRITABLE = ["battery_max_current", "device_mode", "load_output_control"]


@dataclass
class Rig:
    hub: Hub
    session: DeviceSession
    control: Controller
    output: MqttOutput


@contextlib.asynccontextmanager
async def mppt(broker: Mosquitto) -> AsyncIterator[Rig]:
    hub = Hub()
    config = DeviceConfig(name="mppt", port="simulator:mppt", registers=[], writable=WRITABLE)
    session = DeviceSession(config, hub, WatchdogConfig())
    control = Controller([session], [config], interval=0.0, nvm_interval=0.0)
    output = MqttOutput(mqtt_config(broker), device_names=["mppt"])
    output.control = control
    sub = hub.subscribe("test")
    task = asyncio.create_task(session.run())
    try:
        async with asyncio.timeout(10):  # identified, the writable registers read once
            while session.poller.polls < 1:
                await sub.get()
        yield Rig(hub, session, control, output)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def publish(broker: Mosquitto, topic: str, payload: str, *, retain: bool = False) -> None:
    async with aiomqtt.Client(broker.host, broker.port) as client:
        await client.publish(topic, payload, qos=1, retain=retain)


async def test_command_topic_writes_and_the_state_shows_the_read_back(broker: Mosquitto) -> None:
    async with (
        mppt(broker) as rig,
        subscriber(broker, STATE, "homeassistant/+/vedirect_mppt/+/config") as sub,
        running(rig.output, rig.hub),
    ):
        number = "homeassistant/number/vedirect_mppt/battery_max_current_set/config"
        config = (await sub.wait_for(lambda m: m.topic == number)).json()
        assert config["command_topic"] == "vedirect/mppt/set/battery_max_current"
        assert (config["min"], config["max"], config["step"]) == (0, 20, 0.1)  # a 100/20
        assert config["unit_of_measurement"] == "A"
        assert config["state_topic"] == STATE
        assert config["retain"] is False
        switch = "homeassistant/switch/vedirect_mppt/device_mode_set/config"
        switch_config = (await sub.wait_for(lambda m: m.topic == switch)).json()
        select = "homeassistant/select/vedirect_mppt/load_output_control_set/config"
        select_config = (await sub.wait_for(lambda m: m.topic == select)).json()
        assert {"off", "auto", "on"} <= set(select_config["options"])

        start = len(sub.messages)
        await publish(broker, "vedirect/mppt/set/battery_max_current", "7.5")
        await publish(broker, "vedirect/mppt/set/device_mode", "off")
        state = await sub.wait_for(
            lambda m: (
                m.topic == STATE
                and m.json().get("battery_max_current") == 7.5
                and m.json().get("device_mode") == "off"
            ),
            start=start,
        )
        payload = state.payload.decode()
        assert render(config["value_template"], payload) == "7.5"
        assert render(switch_config["value_template"], payload) == "off"
        assert render(select_config["value_template"], payload) in select_config["options"]
        assert rig.control.counts[("mppt", "confirmed")] == 2


async def test_retained_command_is_ignored_at_connection(broker: Mosquitto) -> None:
    """A stale retained "off" on the broker never switches the device; a live command works."""
    await publish(broker, "vedirect/mppt/set/device_mode", "off", retain=True)
    async with (
        mppt(broker) as rig,
        subscriber(broker, STATE) as sub,
        running(rig.output, rig.hub),
    ):
        await sub.wait_for(lambda m: m.topic == STATE)
        start = len(sub.messages)
        await publish(broker, "vedirect/mppt/set/battery_max_current", "9.5")
        state = await sub.wait_for(
            lambda m: m.topic == STATE and m.json().get("battery_max_current") == 9.5, start=start
        )
        assert json.loads(state.payload)["device_mode"] != "off"
        # counted where an operator sees it: vedirect_output_events_total{counter=...}
        assert rig.output.state.counters.get("retained_commands_ignored") == 1
        assert rig.control.counts[("mppt", "confirmed")] == 1
        assert sum(rig.control.counts.values()) == 1  # the retained one was never even tried


async def test_commands_outside_the_allowlist_do_nothing(broker: Mosquitto) -> None:
    async with (
        mppt(broker) as rig,
        subscriber(broker, STATE) as sub,
        running(rig.output, rig.hub),
    ):
        await sub.wait_for(lambda m: m.topic == STATE)
        await publish(broker, "vedirect/mppt/set/absorption_voltage", "15")
        await publish(broker, "vedirect/mppt/set/battery_max_current", "way too much")
        await publish(broker, "vedirect/mppt/set/battery_max_current", "6")
        start = len(sub.messages)
        await sub.wait_for(
            lambda m: m.topic == STATE and m.json().get("battery_max_current") == 6, start=start
        )
        counts = rig.control.counts
        assert counts[("mppt", "not_allowed")] == 1
        assert counts[("mppt", "bad_value")] == 1
        assert counts[("mppt", "confirmed")] == 1


async def test_the_service_wires_writes_to_mqtt(broker: Mosquitto, tmp_path: Path) -> None:
    """The whole service: its MQTT output takes commands through the sessions' policy."""
    path = tmp_path / "config.toml"
    path.write_text(
        '[[device]]\nname = "mppt"\nport = "simulator:mppt"\nregisters = []\n'
        'writable = ["battery_max_current"]\n[csv]\nenabled = false\n[http]\nenabled = false\n'
        f'[mqtt]\nenabled = true\nhost = "{broker.host}"\nport = {broker.port}\n'
    )
    service = Service(load_config(path, environ={}))
    stop = asyncio.Event()
    async with subscriber(broker, STATE) as sub:
        task = asyncio.create_task(service.run(stop))
        try:
            await sub.wait_for(lambda m: m.topic == STATE and "battery_max_current" in m.json())
            start = len(sub.messages)
            await publish(broker, "vedirect/mppt/set/battery_max_current", "4.5")
            await sub.wait_for(
                lambda m: m.topic == STATE and m.json().get("battery_max_current") == 4.5,
                start=start,
            )
            assert service.control.counts[("mppt", "confirmed")] == 1
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)
