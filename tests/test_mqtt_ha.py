"""What a real Home Assistant does with the MQTT output (issue 13), against a real mosquitto.

HA renders each ``value_template`` with Jinja2 against the state JSON and drops a state that is
not one of an enum entity's ``options``; before 2025.10 it builds entity ids from ``object_id``
(or, without one, from the device and entity names); it believes ``online`` on the
availability topic. These tests render the templates with Jinja2's sandbox as HA does (the
opt-in ``make contract`` runs the same payloads through HA's own code).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment

from vedirect_async import fields
from vedirect_async.hub import Hub, OutputHealth, ReaderState
from vedirect_async.outputs.mqtt import (
    UNKNOWN_OPTION,
    MqttOutput,
    Topics,
    discovery_configs,
    state_payload,
)
from vedirect_async.outputs.mqtt.config import MqttConfig
from vedirect_async.reading import UNAVAILABLE, Reading

from .mosquitto import Mosquitto
from .test_mqtt import broker, mqtt_config, running, simulated_readings, subscriber, until

__all__ = ["broker"]  # the fixture, used by name

ROOT = Path(__file__).resolve().parent.parent
KINDS = ("bmv712", "mppt", "smartshunt")
_JINJA = ImmutableSandboxedEnvironment()


def render(template: str, payload: str) -> str:
    """``template`` rendered as HA's MQTT sensor does: ``value`` and ``value_json`` set."""
    return _JINJA.from_string(template).render(value=payload, value_json=json.loads(payload))


def with_values(reading: Reading, **values: Any) -> Reading:
    return replace(reading, values=dict(reading.values) | values)


def unknown_everywhere(reading: Reading) -> Reading:
    """``reading`` with every enum field (at least MON) set to a code missing from its table."""
    changes = {
        name: "unknown (99)"
        for name in reading.values
        if (field := fields.lookup(name)) is not None and field.kind is fields.Kind.ENUM
    }
    return with_values(reading, **(changes or {"monitor_mode": "unknown (99)"}))


@pytest.mark.parametrize("kind", KINDS)
def test_every_rendered_enum_state_is_an_option(kind: str) -> None:
    """Known codes, unknown codes, undecodable text and --- all render to an option or None."""
    topics = Topics("vedirect", "dev", "homeassistant")
    base = simulated_readings(kind, 1)[0]
    unknown = unknown_everywhere(base)
    enums = [name for name, value in unknown.values.items() if value == "unknown (99)"]
    variants = [base, unknown, with_values(base, **dict.fromkeys(enums, "\\x00garbage"))]
    variants.append(with_values(base, **dict.fromkeys(enums, UNAVAILABLE)))
    for reading in variants:
        payload = json.dumps(state_payload(reading))
        for config in discovery_configs(topics, reading).values():
            if "options" not in config:
                continue
            state = render(config["value_template"], payload)
            assert state in config["options"] or state == "None", (config["name"], state)
            attributes = json.loads(render(config["json_attributes_template"], payload))
            name = config["unique_id"].removeprefix("vedirect_dev_")
            assert attributes == {"received": json.loads(payload)[name]}


async def test_unknown_error_code_reaches_ha_as_an_option_with_its_code(broker: Mosquitto) -> None:
    """ERR 99 through a real broker: state "unknown code", attribute received = unknown (99)."""
    hub = Hub()
    output = MqttOutput(mqtt_config(broker))
    reading = with_values(simulated_readings("mppt", 1, device="solar")[0], error="unknown (99)")
    topic = "homeassistant/sensor/vedirect_solar/error/config"
    async with subscriber(broker, "vedirect/solar/state", topic) as sub, running(output, hub):
        hub.publish(reading)
        config = (await sub.wait_for(lambda m: m.topic == topic)).json()
        state = await sub.wait_for(lambda m: m.topic == "vedirect/solar/state")
    payload = state.payload.decode()
    assert json.loads(payload)["error"] == "unknown (99)"  # the state JSON keeps the value
    assert render(config["value_template"], payload) == UNKNOWN_OPTION
    assert UNKNOWN_OPTION in config["options"]
    assert config["json_attributes_topic"] == "vedirect/solar/state"
    assert json.loads(render(config["json_attributes_template"], payload)) == {
        "received": "unknown (99)"
    }


def _slugify(text: str) -> str:
    """HA's entity-id slug (homeassistant.util.slugify) for the ASCII text used here."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


@pytest.mark.parametrize("kind", KINDS)
def test_entity_ids_and_names_are_short_and_stable(kind: str) -> None:
    """object_id for HA < 2025.10 and default_entity_id for 2025.10+ give the same short id."""
    reading = simulated_readings(kind, 1, device="bmv")[0]
    configs = discovery_configs(Topics("vedirect", "bmv", "homeassistant"), reading)
    for topic, config in configs.items():
        component = topic.split("/")[1]
        object_id = config["object_id"]
        assert _slugify(object_id) == object_id  # HA keeps it as it is
        assert config["default_entity_id"] == f"{component}.{object_id}"
        assert object_id.startswith("vedirect_bmv_")
        assert len(object_id) <= 48, object_id
        name = config["name"]
        assert "(" not in name, name
        assert " when " not in name, name
        assert len(name) <= 30, name
        assert name[0].isupper()
        assert config["device"]["name"] == "bmv"  # HA prefixes entity names with it
    ttg = configs.get("homeassistant/sensor/vedirect_bmv/time_to_go/config")
    if ttg is not None:
        assert (ttg["object_id"], ttg["name"]) == ("vedirect_bmv_time_to_go", "Time to go")
    names = [c["name"] for c in configs.values()]
    assert len(set(names)) == len(names)  # no two entities of a device share a name


def test_default_reconnect_cap_is_at_most_15_s() -> None:
    """A broker restart is followed within 15 s (it was 60: 47-57 s after mosquitto came back)."""
    assert MqttConfig().reconnect_max <= 15.0
    example = (ROOT / "config.toml").read_text()
    assert re.search(r"^reconnect_max = 15\b", example, re.MULTILINE)


async def test_broker_restart_reconnects_within_the_cap(broker: Mosquitto) -> None:
    """Broker down long enough for the backoff to reach its cap: back within the cap."""
    cap = 0.4
    hub = Hub()
    output = MqttOutput(
        mqtt_config(broker, reconnect_initial=0.05, reconnect_max=cap, discovery=False)
    )
    async with running(output, hub):
        hub.publish(simulated_readings("bmv712", 1)[0])
        state = hub.output("mqtt")
        await until(output, lambda: state.health is OutputHealth.OK)
        broker.stop()
        await until(output, lambda: state.failures >= 6)  # 0.05, 0.1, 0.2, 0.4, 0.4 ...
        broker.start()
        started = time.monotonic()
        await until(output, lambda: state.health is OutputHealth.OK)
        # the cap, plus connecting and publishing on a loaded 2-core machine
        assert time.monotonic() - started < cap + 1.5


async def test_fresh_state_is_published_before_online(broker: Mosquitto) -> None:
    """Start and broker restart: the old retained state is never vouched for by "online"."""
    async with aiomqtt.Client(broker.host, broker.port) as old:  # a previous run's leftovers
        await old.publish("vedirect/bmv/state", '{"voltage": 1.0}', qos=1, retain=True)
        await old.publish("vedirect/bmv/availability", "offline", qos=1, retain=True)
    hub = Hub()
    device = hub.device("bmv", "/dev/null")
    device.state = ReaderState.READING
    readings = simulated_readings("bmv712", 2)
    output = MqttOutput(mqtt_config(broker, discovery=False), device_names=["bmv"])
    topics = ("vedirect/bmv/state", "vedirect/bmv/availability")

    def order(messages: list[Any]) -> list[str]:
        return [
            "state" if m.topic == topics[0] else m.payload.decode()
            for m in messages
            if not m.retain
        ]

    async with subscriber(broker, *topics) as sub, running(output, hub):
        # connected, reader up, no reading of this run yet: not online
        first = await sub.wait_for(lambda m: m.topic == topics[1] and not m.retain)
        assert first.payload == b"offline"
        hub.publish(readings[0])
        await sub.wait_for(lambda m: m.payload == b"online")
        assert order(sub.messages)[:3] == ["offline", "state", "online"]
        assert sub.on(topics[0])[-1].json()["voltage"] == readings[0].values["voltage"]
    async with running(output, hub):
        state = hub.output("mqtt")
        await until(output, lambda: state.successes >= 1)
        broker.stop()  # persistence off: the retained messages go with it
        await until(output, lambda: state.health is not OutputHealth.OK)
        broker.start()
        async with subscriber(broker, *topics) as sub:
            await sub.wait_for(lambda m: m.payload == b"online")
            seen = [m for m in sub.messages if m.topic == topics[0] or m.payload == b"online"]
            assert [m.topic for m in seen][:2] == list(topics)
