"""MQTT output against a real mosquitto: state, availability, HA discovery, Domoticz, faults."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import ssl
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from aiomqtt.exceptions import MqttConnectError

from vedirect_async import fields
from vedirect_async.config import (
    Config,
    CsvConfig,
    DeviceConfig,
    DomoticzDevice,
    HttpConfig,
    WatchdogConfig,
)
from vedirect_async.decoder import Decoder
from vedirect_async.errors import PermanentDeliveryError, TransientDeliveryError
from vedirect_async.hub import DeviceState, Hub, OutputHealth, ReaderState
from vedirect_async.outputs import REGISTRY
from vedirect_async.outputs.domoticz import DomoticzConfig
from vedirect_async.outputs.mqtt import (
    UNKNOWN_OPTION,
    MqttOutput,
    Topics,
    discovery_configs,
    entity_for,
    safe_topic_level,
    state_payload,
)
from vedirect_async.outputs.mqtt.config import MqttConfig
from vedirect_async.outputs.mqtt.link import delivery_error
from vedirect_async.reading import UNAVAILABLE, Reading
from vedirect_async.service import Service
from vedirect_async.simulator import SimulatedDevice

from .mosquitto import Mosquitto, free_port, require_mosquitto
from .pty_device import PtyDevice, bmv_block

ROOT = Path(__file__).resolve().parent.parent
WAIT = 10.0  # upper bound for any awaited condition

# -- Home Assistant's MQTT sensor schema (home-assistant.io/integrations/sensor.mqtt and
# homeassistant/components/sensor/const.py DEVICE_CLASS_UNITS / DEVICE_CLASS_STATE_CLASSES),
# for the device classes this project can produce.
HA_UNITS: dict[str, set[str | None]] = {
    "voltage": {"µV", "mV", "V", "kV", "MV"},
    "current": {"mA", "A"},
    "power": {"W", "kW", "MW", "GW", "TW"},
    "apparent_power": {"VA", "mVA", "kVA"},
    "energy": {"J", "kJ", "MJ", "GJ", "mWh", "Wh", "kWh", "MWh", "GWh", "TWh", "cal", "kcal"},
    "temperature": {"°C", "°F", "K"},
    "duration": {"d", "h", "min", "s", "ms"},
    "battery": {"%"},
    "enum": {None},
}
HA_STATE_CLASSES: dict[str | None, set[str | None]] = {
    "voltage": {"measurement", None},
    "current": {"measurement", None},
    "power": {"measurement", None},
    "apparent_power": {"measurement", None},
    "energy": {"total", "total_increasing", None},
    "temperature": {"measurement", None},
    "duration": {"measurement", "total", "total_increasing", None},
    "battery": {"measurement", None},
    "enum": {None},
    None: {"measurement", "total", "total_increasing", None},
}
HA_BINARY_CLASSES = {None, "problem", "power", "battery", "connectivity", "running", "safety"}
HA_SENSOR_KEYS = {
    "name", "unique_id", "object_id", "default_entity_id", "state_topic", "value_template",
    "availability_topic", "payload_available", "payload_not_available", "device", "origin",
    "device_class", "state_class", "unit_of_measurement", "options", "expire_after",
    "force_update", "qos", "json_attributes_topic", "json_attributes_template",
}  # fmt: skip
HA_BINARY_KEYS = (HA_SENSOR_KEYS - {"state_class", "unit_of_measurement", "options"}) | {
    "payload_on",
    "payload_off",
}
HA_DEVICE_KEYS = {
    "identifiers", "name", "manufacturer", "model", "model_id", "serial_number", "sw_version",
    "hw_version", "via_device", "connections", "configuration_url", "suggested_area",
}  # fmt: skip


# -- helpers --------------------------------------------------------------------------------


def simulated_readings(kind: str, count: int, device: str = "bmv") -> list[Reading]:
    """``count`` real readings: simulator bytes through the decoder."""
    sim = SimulatedDevice(kind, seed=7)
    decoder = Decoder(device)
    out: list[Reading] = []
    mono = 0.0
    while len(out) < count:
        mono += 1.0
        out += [e for e in decoder.feed(sim.next_second(), mono) if isinstance(e, Reading)]
    return out[:count]


@dataclass
class Seen:
    topic: str
    payload: bytes
    retain: bool

    def json(self) -> Any:
        return json.loads(self.payload)


class Subscriber:
    """A plain aiomqtt client recording everything it receives; waits on conditions."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self.client = client
        self.messages: list[Seen] = []
        self._changed = asyncio.Event()

    async def pump(self) -> None:
        async for message in self.client.messages:
            payload = message.payload
            assert isinstance(payload, bytes)
            self.messages.append(Seen(str(message.topic), payload, message.retain))
            self._changed.set()

    async def wait_for(self, predicate: Callable[[Seen], bool], *, start: int = 0) -> Seen:
        """The first message from index ``start`` matching ``predicate`` (bounded wait)."""
        async with asyncio.timeout(WAIT):
            while True:
                for seen in self.messages[start:]:
                    if predicate(seen):
                        return seen
                self._changed.clear()
                await self._changed.wait()

    def on(self, topic: str, start: int = 0) -> list[Seen]:
        return [m for m in self.messages[start:] if m.topic == topic]


def topic_is(topic: str, message: Seen) -> bool:
    return message.topic == topic


def in_topic(part: str, message: Seen) -> bool:
    return part in message.topic


@contextlib.asynccontextmanager
async def subscriber(broker: Mosquitto, *topics: str) -> AsyncIterator[Subscriber]:
    async with aiomqtt.Client(broker.host, broker.port, timeout=WAIT) as client:
        for topic in topics:
            await client.subscribe(topic, qos=1)
        sub = Subscriber(client)
        task = asyncio.create_task(sub.pump())
        try:
            yield sub
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await task


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    require_mosquitto()
    mosq = Mosquitto(tmp_path / "broker").start()
    try:
        yield mosq
    finally:
        mosq.stop()


def mqtt_config(broker: Mosquitto, **changes: Any) -> MqttConfig:
    base = MqttConfig(
        enabled=True,
        host=broker.host,
        port=broker.port,
        client_id="test",
        reconnect_initial=0.05,
        reconnect_max=0.2,
        timeout=5.0,
    )
    return replace(base, **changes)


@contextlib.asynccontextmanager
async def running(output: MqttOutput, hub: Hub) -> AsyncIterator[asyncio.Task[None]]:
    subscription = output.subscribe(hub)
    task = asyncio.create_task(output.run(subscription, hub.output(output.name)))
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def until(output: MqttOutput, condition: Callable[[], bool]) -> None:
    """Wait (bounded) until ``condition()`` holds, re-checking at each output state change."""
    async with asyncio.timeout(WAIT):
        while not condition():
            output.state_changed.clear()
            await output.state_changed.wait()


# -- pure parts -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [("SER#", "SER"), ("bmv", "bmv"), ("a/b+c#d", "a_b_c_d"), ("HQ1234 5", "HQ1234_5"), ("#", "_")],
)
def test_safe_topic_level(text: str, expected: str) -> None:
    """Labels and names never reach a topic level with wildcards, slashes or spaces."""
    assert safe_topic_level(text) == expected
    topics = Topics("vedirect", f"dev{text}", "homeassistant")
    for topic in (topics.state, topics.availability, topics.field(text)):
        assert not set(topic) & {"#", "+", " "}
        assert topic.count("/") == 2


def test_state_payload_values_units_and_specials() -> None:
    """The state JSON has every value by catalogue name, units, null for ---, TTG infinite."""
    reading = simulated_readings("bmv712", 1)[0]
    values = dict(reading.values) | {"soc": UNAVAILABLE, "time_to_go": float("inf")}
    reading = replace(reading, values=values)
    payload = json.loads(json.dumps(state_payload(reading), allow_nan=False))
    assert payload["device"] == "bmv"
    assert payload["product"] == reading.product
    assert payload["time"].endswith("Z")
    assert payload["soc"] is None
    assert payload["time_to_go"] == "infinite"
    assert payload["voltage"] == reading.values["voltage"]
    assert payload["units"]["voltage"] == "V"
    assert payload["units"]["history_charged_energy"] == "kWh"
    assert isinstance(payload["alarm"], bool)
    assert isinstance(payload["alarm_reason"], list)
    assert "SER#" not in payload


def check_ha_sensor(topic: str, config: dict[str, Any]) -> None:
    """One discovery config checked against HA's documented MQTT (binary_)sensor schema."""
    parts = topic.split("/")
    assert len(parts) == 5, topic
    assert (parts[0], parts[4]) == ("homeassistant", "config"), topic
    component = parts[1]
    assert component in ("sensor", "binary_sensor")
    for level in parts[2:4]:
        assert safe_topic_level(level) == level
    allowed = HA_SENSOR_KEYS if component == "sensor" else HA_BINARY_KEYS
    assert set(config) <= allowed, set(config) - allowed
    assert config["state_topic"]
    assert "#" not in config["state_topic"]
    assert config["unique_id"]
    assert config["default_entity_id"] == f"{component}.{config['unique_id']}"
    assert config["object_id"] == config["unique_id"]  # HA before 2025.10 reads only this
    assert config["availability_topic"]
    device = config["device"]
    assert set(device) <= HA_DEVICE_KEYS
    assert device["identifiers"]
    assert device["manufacturer"] == "Victron Energy"
    device_class = config.get("device_class")
    if component == "binary_sensor":
        assert device_class in HA_BINARY_CLASSES
        assert {config["payload_on"], config["payload_off"]} == {"ON", "OFF"}
        return
    unit = config.get("unit_of_measurement")
    state_class = config.get("state_class")
    if device_class is not None:
        assert device_class in HA_UNITS, device_class
        assert unit in HA_UNITS[device_class], (topic, device_class, unit)
    assert state_class in HA_STATE_CLASSES[device_class], (topic, device_class, state_class)
    if device_class == "enum":
        assert config["options"]
        assert unit is None
        assert state_class is None
    else:
        assert "options" not in config
    if state_class is not None:  # HA's statistics need a numeric state
        assert device_class != "enum"


@pytest.mark.parametrize("kind", ["bmv712", "mppt", "smartshunt"])
def test_discovery_configs_follow_ha_schema(kind: str) -> None:
    """Every discovery config of a simulated device passes HA's sensor schema rules."""
    reading = simulated_readings(kind, 1)[0]
    configs = discovery_configs(Topics("vedirect", "dev", "homeassistant"), reading)
    assert configs
    for topic, config in configs.items():
        check_ha_sensor(topic, config)
        # Domoticz's auto-discovery silently ignores these object ids (domoticz.md 2.2)
        object_id = topic.split("/")[3]
        for ident in (object_id, config["unique_id"]):
            assert "_alarm" not in ident
            assert "_sensitivity" not in ident
            assert not ident.endswith(("_min", "_max"))
            assert not ident.startswith(("min_", "max_"))


def test_entity_mapping_covers_catalogue() -> None:
    """Energy counters are total_increasing; enums carry options; relay/alarm/load are binary."""
    for label in ("H17", "H18", "H19", "H20"):
        entity = entity_for(fields.lookup(label).name)  # type: ignore[union-attr]
        assert entity is not None
        assert (entity.device_class, entity.state_class, entity.unit) == (
            "energy",
            "total_increasing",
            "kWh",
        )
    for label in ("CS", "ERR", "MPPT", "MODE", "MON"):
        field = fields.lookup(label)
        assert field is not None
        entity = entity_for(field.name)
        assert entity is not None
        assert entity.device_class == "enum"
        assert set(entity.options) == {*field.table.values(), UNKNOWN_OPTION}
    for label in ("Relay", "Alarm", "LOAD"):
        entity = entity_for(fields.lookup(label).name)  # type: ignore[union-attr]
        assert entity is not None
        assert entity.component == "binary_sensor"
    soc = entity_for("soc")
    assert soc is not None
    assert (soc.device_class, soc.unit) == ("battery", "%")
    for label in ("PID", "SER#", "FW", "BMV", "HC#"):
        assert entity_for(fields.lookup(label).name) is None  # type: ignore[union-attr]
    for field in fields.CATALOGUE.values():  # every field: a valid combination or none
        entity = entity_for(field.name)
        if entity is None or entity.component != "sensor":
            continue
        config: dict[str, Any] = {"state_topic": "s", "unique_id": "u", "availability_topic": "a"}
        config["default_entity_id"] = "sensor.u"
        config["object_id"] = "u"
        config["device"] = {"identifiers": ["x"], "manufacturer": "Victron Energy"}
        for key, value in (
            ("device_class", entity.device_class),
            ("state_class", entity.state_class),
            ("unit_of_measurement", entity.unit),
            ("options", list(entity.options) or None),
        ):
            if value is not None:
                config[key] = value
        check_ha_sensor(f"homeassistant/sensor/n/{field.name}/config", config)


def test_registry_factory() -> None:
    """The "mqtt" factory returns None when disabled and an output when enabled."""
    assert REGISTRY["mqtt"].factory(Config()) is None
    config = Config(sections={"mqtt": MqttConfig(enabled=True)})
    output = REGISTRY["mqtt"].factory(config)
    assert isinstance(output, MqttOutput)
    assert output.latest_only


# -- against a real broker ------------------------------------------------------------------


async def test_subscriber_sees_state_availability_and_discovery(broker: Mosquitto) -> None:
    """A subscriber gets online, the retained state JSON and valid discovery for the device."""
    hub = Hub()
    readings = simulated_readings("bmv712", 3, device="house")
    output = MqttOutput(mqtt_config(broker))
    async with subscriber(broker, "vedirect/#", "homeassistant/#") as sub, running(output, hub):
        for reading in readings:
            hub.publish(reading)
        await sub.wait_for(lambda m: m.topic == "vedirect/house/availability")
        last = readings[-1]
        state = await sub.wait_for(
            lambda m: (
                m.topic == "vedirect/house/state"
                and m.json()["time"].startswith(
                    last.time.isoformat(timespec="milliseconds").replace("+00:00", "")
                )
            )
        )
        assert sub.on("vedirect/house/availability")[-1].payload == b"online"
        data = state.json()
        assert data["voltage"] == last.values["voltage"]
        assert data["units"]["current"] == "A"
        discovery = [m for m in sub.messages if m.topic.startswith("homeassistant/")]
        assert discovery
        topics = {m.topic for m in discovery}
        assert "homeassistant/sensor/vedirect_house/voltage/config" in topics
        assert "homeassistant/binary_sensor/vedirect_house/relay/config" in topics
        for message in discovery:
            config = message.json()
            check_ha_sensor(message.topic, config)
            assert config["state_topic"] == "vedirect/house/state"
            assert config["availability_topic"] == "vedirect/house/availability"
            assert config["device"]["model"] == last.product
            assert config["device"].get("serial_number") == last.serial
        energy = json.loads(
            next(m.payload for m in discovery if m.topic.endswith("/history_charged_energy/config"))
        )
        assert energy["state_class"] == "total_increasing"
        assert energy["unit_of_measurement"] == "kWh"
        assert hub.outputs["mqtt"].health is OutputHealth.OK
    # a late subscriber gets the retained state and discovery
    async with subscriber(broker, "vedirect/#", "homeassistant/#") as late:
        seen = await late.wait_for(lambda m: m.topic == "vedirect/house/state")
        assert seen.retain
        offline = await late.wait_for(lambda m: m.topic == "vedirect/house/availability")
        assert offline.payload == b"offline"  # clean shutdown said goodbye


async def test_ha_birth_message_republishes_discovery(broker: Mosquitto) -> None:
    """When HA publishes homeassistant/status = online, the discovery configs come again."""
    hub = Hub()
    output = MqttOutput(mqtt_config(broker))
    async with subscriber(broker, "homeassistant/sensor/#") as sub, running(output, hub):
        hub.publish(simulated_readings("mppt", 1, device="solar")[0])
        first = await sub.wait_for(lambda m: m.topic.endswith("/panel_power/config"))
        mark = len(sub.messages)
        await sub.client.publish("homeassistant/status", "online")
        again = await sub.wait_for(lambda m: m.topic == first.topic, start=mark)
        assert again.json() == first.json()


async def test_reader_silenced_goes_offline_then_online(broker: Mosquitto) -> None:
    """The watchdog's view drives availability: silent → offline, reading again → online."""
    hub = Hub()
    device = hub.device("bmv", "/dev/null")
    device.state = ReaderState.READING
    output = MqttOutput(mqtt_config(broker), device_names=["bmv"])
    topic = "vedirect/bmv/availability"
    readings = simulated_readings("bmv712", 2)
    async with subscriber(broker, topic) as sub, running(output, hub):
        hub.publish(readings[0])  # "online" only follows a fresh state
        await sub.wait_for(lambda m: m.payload == b"online")
        mark = len(sub.messages)
        device.state = ReaderState.SILENT
        hub.device_changed(device)  # the session tells the hub; MQTT is told, never polls
        await sub.wait_for(lambda m: m.payload == b"offline", start=mark)
        mark = len(sub.messages)
        device.state = ReaderState.READING
        hub.device_changed(device)
        hub.publish(readings[1])
        await sub.wait_for(lambda m: m.payload == b"online", start=mark)


class _NoPollingHub(Hub):
    """A hub whose device table may not be read: an output that polls it fails."""

    polled = False

    @property
    def devices(self) -> Mapping[str, DeviceState]:
        type(self).polled = True
        raise AssertionError("the MQTT output polled hub.devices")


async def test_availability_follows_device_changes_without_polling(broker: Mosquitto) -> None:
    """Issue 12: MQTT is told of reader changes (hub.device_changes), it never polls the hub;
    a device it only hears of through a change gets its connection (and its offline)."""
    hub = _NoPollingHub()
    device = hub.device("bmv", "/dev/null")
    device.state = ReaderState.READING
    output = MqttOutput(mqtt_config(broker), device_names=["bmv"])
    readings = simulated_readings("bmv712", 2)
    async with subscriber(broker, "vedirect/+/availability") as sub, running(output, hub):
        hub.publish(readings[0])
        await sub.wait_for(
            lambda m: m.topic == "vedirect/bmv/availability" and m.payload == b"online"
        )
        mark = len(sub.messages)
        device.state = ReaderState.SILENT
        hub.device_changed(device)
        await sub.wait_for(lambda m: m.payload == b"offline", start=mark)
        other = hub.device("mppt", "/dev/null")
        other.state = ReaderState.SILENT
        hub.device_changed(other)
        await sub.wait_for(lambda m: m.topic == "vedirect/mppt/availability")
    assert not _NoPollingHub.polled


async def test_broker_restart_reconnects_with_current_state(broker: Mosquitto) -> None:
    """Broker killed and restarted: current state republished, no backlog, reader pace kept."""
    hub = Hub()
    readings = simulated_readings("bmv712", 400)
    output = MqttOutput(mqtt_config(broker, discovery=False))
    gaps: list[float] = []
    stop = asyncio.Event()

    async def reader() -> None:  # publishes at a fixed 10 ms pace, like a fast serial reader
        last = time.monotonic()
        for reading in readings:
            if stop.is_set():
                return
            hub.publish(reading)
            await asyncio.sleep(0.01)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    async with running(output, hub):
        feeder = asyncio.create_task(reader())
        async with subscriber(broker, "vedirect/bmv/state") as sub:
            await sub.wait_for(lambda m: True)
        state = hub.outputs["mqtt"]
        broker.stop()
        await until(output, lambda: state.health is not OutputHealth.OK)
        assert state.reason.startswith(f"bmv: broker 127.0.0.1:{broker.port} ")  # one line
        broker.start()
        await until(output, lambda: state.health is OutputHealth.OK)
        async with subscriber(broker, "vedirect/bmv/state") as sub:
            seen = await sub.wait_for(lambda m: True)
            assert seen.json()["voltage"] in {r.values["voltage"] for r in readings}
        stop.set()
        await feeder
    assert gaps
    assert max(gaps) < 0.25, max(gaps)  # the reader never stalled


async def test_no_backlog_while_disconnected(broker: Mosquitto) -> None:
    """Readings published while the broker is down collapse to the newest one per device."""
    hub = Hub()
    readings = simulated_readings("bmv712", 50)
    output = MqttOutput(mqtt_config(broker, discovery=False, retain=False))
    async with running(output, hub):
        async with subscriber(broker, "vedirect/bmv/state") as sub:
            hub.publish(readings[0])
            await sub.wait_for(lambda m: True)  # connected and published before the kill
        broker.stop()
        state = hub.outputs["mqtt"]
        await until(output, lambda: state.health is not OutputHealth.OK)
        for reading in readings[1:]:
            hub.publish(reading)
        async with contextlib.AsyncExitStack() as stack:
            broker.start()
            sub = await stack.enter_async_context(subscriber(broker, "vedirect/bmv/state"))
            await until(output, lambda: state.health is OutputHealth.OK)
            newest = readings[-1].values["voltage"]
            await sub.wait_for(lambda m: m.json()["voltage"] == newest)
            assert len(sub.messages) <= 2  # the current state (maybe once more), no backlog


async def test_auth_refused_is_one_clear_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Wrong password: output failed with a clear reason, logged once, password never shown."""
    secure = Mosquitto(tmp_path / "secure", users={"victron": "right-pass"}).start()
    try:
        hub = Hub()
        output = MqttOutput(
            mqtt_config(secure, username="victron", password="wrong-pass-123"),
            device_names=["bmv"],
        )
        caplog.set_level(logging.DEBUG, logger="vedirect_async")
        async with running(output, hub):
            state = hub.output("mqtt")
            await until(output, lambda: state.failures >= 3)
        assert state.health is OutputHealth.FAILED
        assert "refused the login" in state.reason
        warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(warnings) == 1, [r.getMessage() for r in warnings]
        assert "\n" not in warnings[0].getMessage()
        assert "wrong-pass-123" not in caplog.text
    finally:
        secure.stop()


async def test_right_password_connects(tmp_path: Path) -> None:
    """With the right username and password the output publishes."""
    secure = Mosquitto(tmp_path / "secure", users={"victron": "right-pass"}).start()
    try:
        hub = Hub()
        config = mqtt_config(secure, username="victron", password="right-pass")
        output = MqttOutput(config)
        async with running(output, hub):
            hub.publish(simulated_readings("bmv712", 1)[0])
            state = hub.output("mqtt")
            await until(output, lambda: state.successes >= 1)
        assert state.health is OutputHealth.OK
    finally:
        secure.stop()


async def test_unreachable_broker_is_rate_limited(caplog: pytest.LogCaptureFixture) -> None:
    """No broker: failed with "unreachable", retried with backoff, one WARNING line only."""
    hub = Hub()
    config = MqttConfig(
        enabled=True, port=free_port(), reconnect_initial=0.01, reconnect_max=0.05, timeout=2
    )
    output = MqttOutput(config, device_names=["bmv"])
    caplog.set_level(logging.INFO, logger="vedirect_async")
    async with running(output, hub):
        state = hub.output("mqtt")
        await until(output, lambda: state.failures >= 5)
    assert state.health is OutputHealth.FAILED
    assert "unreachable" in state.reason
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1


def _raised_from(context: BaseException, text: str) -> aiomqtt.MqttError:
    """An aiomqtt error as aiomqtt raises it: ``raise MqttError(...) from None`` inside an
    ``except`` (the original stays its ``__context__``)."""
    error = aiomqtt.MqttError(text)
    error.__context__ = context
    error.__suppress_context__ = True
    return error


def test_connection_errors_are_classified_by_type_not_text() -> None:
    """Issue 12: what an MQTT failure means comes from its type (and the exception it
    replaced), never from its text; a refused login is permanent (the retry waits the cap)."""
    where = "127.0.0.1:1"
    login = delivery_error(MqttConnectError(5), where, connected=False)
    assert type(login) is PermanentDeliveryError
    assert "refused the login" in login.reason
    other = delivery_error(MqttConnectError(3), where, connected=False)
    assert type(other) is TransientDeliveryError
    assert "refused the connection" in other.reason
    # the same text, different causes: the type decides, not the words
    refused = _raised_from(ConnectionRefusedError(111, "Connection refused"), "timed out")
    assert "unreachable" in delivery_error(refused, where, connected=False).reason
    slow = _raised_from(TimeoutError(), "Disconnected")
    assert "did not answer in time" in delivery_error(slow, where, connected=False).reason
    dropped = delivery_error(aiomqtt.MqttError("timed out"), where, connected=True)
    assert type(dropped) is TransientDeliveryError
    assert "dropped the connection" in dropped.reason


async def test_domoticz_in_messages(broker: Mosquitto) -> None:
    """domoticz/in gets {"idx", "nvalue": int, "svalue": str} per mapped field, not retained."""
    hub = Hub()
    mappings = [
        DomoticzDevice(idx=11, field="V", kind="voltage"),
        DomoticzDevice(idx=12, field="soc", kind="percentage"),
        DomoticzDevice(idx=13, field="H18", kind="kwh"),
        DomoticzDevice(idx=14, field="V", device="other", kind="voltage"),
    ]
    output = MqttOutput(
        mqtt_config(broker, domoticz_in="domoticz/in", discovery=False),
        domoticz_devices=mappings,
        device_names=["bmv"],
    )
    reading = simulated_readings("bmv712", 1)[0]
    async with subscriber(broker, "domoticz/in") as sub, running(output, hub):
        hub.publish(reading)
        await sub.wait_for(lambda m: m.json()["idx"] == 13)
        messages = {m.json()["idx"]: m.json() for m in sub.messages}
    assert set(messages) == {11, 12, 13}  # idx 14 belongs to another device
    for message in messages.values():
        assert isinstance(message["nvalue"], int)
        assert isinstance(message["svalue"], str)
    assert float(messages[11]["svalue"]) == reading.values["voltage"]
    _power, energy = messages[13]["svalue"].split(";")
    assert int(energy) == round(float(reading.values["history_charged_energy"]) * 1000)  # type: ignore[arg-type]


async def test_per_field_topics(broker: Mosquitto) -> None:
    """per_field_topics publishes plain values on <prefix>/<device>/<field>."""
    hub = Hub()
    output = MqttOutput(mqtt_config(broker, per_field_topics=True, discovery=False))
    reading = simulated_readings("bmv712", 1)[0]
    async with subscriber(broker, "vedirect/bmv/+") as sub, running(output, hub):
        hub.publish(reading)
        seen = await sub.wait_for(lambda m: m.topic == "vedirect/bmv/voltage")
        relay = await sub.wait_for(lambda m: m.topic == "vedirect/bmv/relay")
        pid = await sub.wait_for(lambda m: m.topic == "vedirect/bmv/product_id")
    assert float(seen.payload) == reading.values["voltage"]
    assert relay.payload in (b"ON", b"OFF")
    assert pid.payload.decode() == reading.values["product_id"]


async def test_sigkill_of_service_publishes_lwt_offline(broker: Mosquitto, tmp_path: Path) -> None:
    """The real service (simulated BMV) killed with SIGKILL: its LWT turns the device offline."""
    config = tmp_path / "config.toml"
    config.write_text(
        '[[device]]\nname = "bmv"\nport = "simulator:bmv712"\n'
        "[csv]\nenabled = false\n[http]\nenabled = false\n"
        f'[mqtt]\nenabled = true\nhost = "127.0.0.1"\nport = {broker.port}\n'
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    async with subscriber(broker, "vedirect/bmv/#") as sub:
        proc = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "vedirect_async", "run", "--config", str(config)),
            cwd=tmp_path,
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        killed = False
        try:
            await sub.wait_for(lambda m: m.topic.endswith("/state"))
            await sub.wait_for(
                lambda m: m.topic.endswith("/availability") and m.payload == b"online"
            )
            mark = len(sub.messages)
            proc.send_signal(signal.SIGKILL)
            killed = True
            await sub.wait_for(
                lambda m: m.topic == "vedirect/bmv/availability" and m.payload == b"offline",
                start=mark,
            )
        finally:
            # No second signal once it is dying: Popen.send_signal polls first, and a poll that
            # reaps the zombie before asyncio's child watcher does makes the watcher report 255.
            if not killed and proc.returncode is None:
                proc.kill()
            _, err = await asyncio.wait_for(proc.communicate(), WAIT)
    assert proc.returncode == -signal.SIGKILL, err.decode(errors="replace")[-2000:]


async def test_cancel_is_prompt_and_leaves_offline(broker: Mosquitto) -> None:
    """Cancelling the output returns promptly and leaves availability offline."""
    hub = Hub()
    output = MqttOutput(mqtt_config(broker), device_names=["bmv"])
    async with subscriber(broker, "vedirect/bmv/availability") as sub:
        async with running(output, hub) as task:
            hub.publish(simulated_readings("bmv712", 1)[0])  # "online" follows a fresh state
            await sub.wait_for(lambda m: m.payload == b"online")
            mark = len(sub.messages)
            started = time.monotonic()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            assert time.monotonic() - started < 2.0
        await sub.wait_for(lambda m: m.payload == b"offline", start=mark)


def test_domoticz_config_is_shared() -> None:
    """The factory passes [[domoticz.devices]] and device names on to the output."""
    config = Config(
        sections={
            "mqtt": MqttConfig(enabled=True, domoticz_in="domoticz/in"),
            "domoticz": DomoticzConfig(devices=[DomoticzDevice(idx=5, field="V", kind="voltage")]),
        }
    )
    output = REGISTRY["mqtt"].factory(config)
    assert isinstance(output, MqttOutput)
    assert [d.idx for d in output.domoticz_devices] == [5]
    assert output.device_names == ("bmv",)


# paho-mqtt 2.2 leaves the socket of a failed TLS handshake to the garbage collector, which
# warns when it closes it; the socket is closed all the same (nothing of ours to fix).
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_tls_with_ca_file(tmp_path: Path) -> None:
    """tls + ca_file reaches a TLS-only broker; without the CA the reason names the TLS error."""
    secure = Mosquitto(tmp_path / "tls", tls=True).start()
    try:
        assert secure.ca_file is not None
        hub = Hub()
        output = MqttOutput(mqtt_config(secure, tls=True, ca_file=str(secure.ca_file)))
        context = ssl.create_default_context(cafile=str(secure.ca_file))
        async with (
            aiomqtt.Client(secure.host, secure.port, tls_context=context, timeout=WAIT) as client,
            running(output, hub),
        ):
            await client.subscribe("vedirect/bmv/state", qos=1)
            sub = Subscriber(client)
            pump = asyncio.create_task(sub.pump())
            hub.publish(simulated_readings("bmv712", 1)[0])
            await sub.wait_for(lambda m: m.topic == "vedirect/bmv/state")
            pump.cancel()
        hub = Hub()
        output = MqttOutput(mqtt_config(secure, tls=True), device_names=["bmv"])  # system CAs
        async with running(output, hub):
            state = hub.output("mqtt")
            await until(output, lambda: state.failures >= 1)
        assert "CERTIFICATE_VERIFY_FAILED" in state.reason
    finally:
        secure.stop()


async def test_state_interval_limits_state_messages(broker: Mosquitto) -> None:
    """With state_interval, readings in between are not published (only the newest is kept)."""
    hub = Hub()
    device = hub.device("bmv", "/dev/null")
    device.state = ReaderState.READING
    readings = simulated_readings("bmv712", 10)
    output = MqttOutput(mqtt_config(broker, state_interval=3600.0), device_names=["bmv"])
    async with subscriber(broker, "vedirect/bmv/#") as sub, running(output, hub):
        hub.publish(readings[0])
        await sub.wait_for(lambda m: m.topic == "vedirect/bmv/state")
        mark = len(sub.messages)  # (an "offline" came before the first state)
        for reading in readings[1:]:
            hub.publish(reading)
        device.state = ReaderState.SILENT  # the next thing the connection publishes
        hub.device_changed(device)
        await sub.wait_for(lambda m: m.payload == b"offline", start=mark)
    assert len(sub.on("vedirect/bmv/state")) == 1


async def test_service_on_pty_silenced_reader_goes_offline_then_online(
    broker: Mosquitto, device: PtyDevice
) -> None:
    """The real service on a pty: device stops sending → offline (watchdog), resumes → online."""
    config = Config(
        device=[DeviceConfig(name="bmv", port=str(device.link))],
        watchdog=WatchdogConfig(
            silence_timeout=0.3, invalid_timeout=5, backoff_initial=0.01, backoff_max=0.05
        ),
        http=HttpConfig(enabled=False),
        sections={"csv": CsvConfig(enabled=False)},
    )
    output = MqttOutput(mqtt_config(broker, discovery=False), device_names=["bmv"])
    service = Service(config, outputs=[output])
    stop = asyncio.Event()
    topic = "vedirect/bmv/availability"
    async with subscriber(broker, topic, "vedirect/bmv/state") as sub:
        task = asyncio.create_task(service.run(stop))
        try:
            device.stream(bmv_block, interval=0.05)
            await sub.wait_for(lambda m: m.topic == topic and m.payload == b"online")
            state = await sub.wait_for(lambda m: m.topic == "vedirect/bmv/state")
            assert state.json()["product"]
            device.stop()  # silent: no bytes at all
            mark = len(sub.messages)
            await sub.wait_for(lambda m: m.topic == topic and m.payload == b"offline", start=mark)
            mark = len(sub.messages)
            device.stream(bmv_block, interval=0.05)
            await sub.wait_for(lambda m: m.topic == topic and m.payload == b"online", start=mark)
        finally:
            device.stop()
            stop.set()
            await asyncio.wait_for(task, WAIT)


async def test_two_sites_and_two_devices_share_a_broker(broker: Mosquitto) -> None:
    """Two sites (prefixes) with same-named devices never collide in topics or unique ids."""
    home, boat = Hub(), Hub()
    outputs = [
        (home, MqttOutput(mqtt_config(broker, prefix="vedirect/home", client_id="home"))),
        (boat, MqttOutput(mqtt_config(broker, prefix="vedirect/boat", client_id="boat"))),
    ]
    bmv = simulated_readings("bmv712", 1, device="bmv")[0]
    solar = simulated_readings("mppt", 1, device="solar")[0]
    states = ("vedirect/home/bmv/state", "vedirect/home/solar/state", "vedirect/boat/bmv/state")
    async with contextlib.AsyncExitStack() as stack:
        sub = await stack.enter_async_context(subscriber(broker, "vedirect/#", "homeassistant/#"))
        for hub, output in outputs:
            await stack.enter_async_context(running(output, hub))
        home.publish(bmv)
        home.publish(solar)
        boat.publish(bmv)
        for topic in states:
            await sub.wait_for(partial(topic_is, topic))
        for node in ("vedirect_home_bmv", "vedirect_home_solar", "vedirect_boat_bmv"):
            await sub.wait_for(partial(in_topic, f"/{node}/"))
    configs = [m.json() for m in sub.messages if m.topic.startswith("homeassistant/")]
    unique_ids = [c["unique_id"] for c in configs]
    assert len(set(unique_ids)) == len({m.topic for m in sub.messages if "config" in m.topic})
    assert {c["state_topic"] for c in configs} == set(states)
