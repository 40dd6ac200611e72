"""MQTT commands and Home Assistant control entities (issue 15), for one device's connection.

- ``<prefix>/<device>/set/<name>``: a command topic per register the device's ``writable``
  list allows (``<name>`` its catalogue name: ``battery_max_current``, ``device_mode``...), the
  payload the value in its display unit (``12.5``, ``on``, ``auto``). Each command goes through
  the write policy (:mod:`vedirect_async.control`: checks, rate limit, Set echo and read-back,
  logged with "asked by mqtt"); nothing is answered on MQTT, the new state is.
- **Retained commands are ignored** (counted, logged once a minute): a retained ``off`` left on
  the broker would otherwise switch the device off again at every reconnection. A command
  published with the retain flag while we are subscribed arrives as a live one (the broker
  clears the flag) and is obeyed once.
- Discovery: a ``switch``, ``number`` (min/max/step/unit from the register table and the
  device's limits) or ``select`` per control. Their state is the device's own value from the
  state topic (the read-back after a write, and every poll), never the command.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import aiomqtt

from ... import __version__
from ...control import Controller
from ...logsetup import RateLimitedLogger
from ...writable import Control
from .discovery import entity_name
from .topics import OFFLINE, ONLINE, Topics, safe_topic_level

__all__ = ["Commands", "command_topic", "control_configs"]

_LOGGER = logging.getLogger(__name__)
MAX_PAYLOAD = 64  # bytes of a command payload ("12.5", "off": a few)


def command_topic(topics: Topics, name: str) -> str:
    return f"{topics.base}/set/{safe_topic_level(name)}"


class Commands:
    """The command topics of one device: subscribe, and run each command through the policy."""

    def __init__(
        self, controller: Controller, device: str, topics: Topics, count: Callable[[str], None]
    ) -> None:
        """``count``: the output's counter (``OutputState.count``), shown on /metrics."""
        self.controller = controller
        self.device = device
        self.topics = topics
        self._count = count
        self._prefix = f"{topics.base}/set/"
        self._tasks: set[asyncio.Task[object]] = set()
        self._limited = RateLimitedLogger(_LOGGER, interval=60.0)

    @property
    def enabled(self) -> bool:
        control = self.controller.devices.get(self.device)
        return control is not None and bool(control.allowed)

    async def subscribe(self, client: aiomqtt.Client) -> None:
        if self.enabled:
            await client.subscribe(f"{self._prefix}+", qos=1)

    def handle(self, message: aiomqtt.Message) -> bool:
        """Whether ``message`` was a command (then it is handled); never raises, never waits."""
        topic = str(message.topic)
        if not topic.startswith(self._prefix):
            return False
        name = topic[len(self._prefix) :]
        if message.retain:
            self._count("retained_commands_ignored")
            self._limited.log(
                logging.INFO,
                "retained",
                "mqtt %s: retained command on %r ignored (a stale command must not act at "
                "reconnection; publish commands without retain)",
                self.device,
                topic[:120],
            )
            return True
        payload = message.payload
        raw = payload if isinstance(payload, bytes) else str(payload).encode()
        value = raw[:MAX_PAYLOAD].decode("utf-8", "replace").strip()
        # The policy coalesces a burst per register (a newer command supersedes a waiting one
        # at once), so there is at most one waiting task per register however many arrive.
        task = asyncio.get_running_loop().create_task(
            self.controller.write(self.device, name, value, "mqtt"), name=f"mqtt-set-{name[:40]}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    def controls(self) -> list[Control]:
        """The device's control entities (none until its product is known)."""
        control = self.controller.devices.get(self.device)
        return control.controls() if control is not None else []


def _template(control: Control) -> str:
    ref = f"value_json.get('{control.name}')"
    if control.register.id == 0x0200:  # device mode: the state JSON has MODE's names
        on = "'on'" if control.kind == "switch" else "'on' if v in ['charger', 'inverter'] else v"
        return (
            f"{{% set v = {ref} %}}"
            f"{{{{ none if v is none else ('off' if v in ['off', 'hibernate'] else {on}) }}}}"
        )
    if control.kind == "switch":  # on/off registers are booleans in the state JSON
        return f"{{% set v = {ref} %}}{{{{ none if v is none else ('on' if v else 'off') }}}}"
    return f"{{{{ {ref} }}}}"


def control_configs(topics: Topics, controls: list[Control]) -> dict[str, dict[str, Any]]:
    """Discovery topic -> config of each control entity."""
    node = topics.node_id
    out: dict[str, dict[str, Any]] = {}
    for control in controls:
        object_id = f"{safe_topic_level(control.name)}_set"
        entity_id = f"{node}_{object_id}"
        config: dict[str, Any] = {
            "name": entity_name(control.name),
            "unique_id": entity_id,
            "object_id": entity_id,  # HA before 2025.10
            "default_entity_id": f"{control.kind}.{entity_id}",  # HA 2025.10+
            "command_topic": command_topic(topics, control.name),
            "retain": False,  # commands must never be retained (they would be ignored)
            "qos": 1,
            "state_topic": topics.state,
            "value_template": _template(control),
            "availability_topic": topics.availability,
            "payload_available": ONLINE,
            "payload_not_available": OFFLINE,
            "device": {"identifiers": [node]},
            "origin": {"name": "vedirect_async", "sw_version": __version__},
        }
        if control.kind == "switch":
            config |= {"payload_on": "on", "payload_off": "off"}
            config |= {"state_on": "on", "state_off": "off"}
        elif control.kind == "select":
            config["options"] = list(control.options or {})
        else:
            config |= {"mode": "box", "step": control.step}
            if control.minimum is not None:
                config["min"] = control.minimum
            if control.maximum is not None:
                config["max"] = control.maximum
            if control.unit:
                config["unit_of_measurement"] = control.unit
        out[f"{topics.discovery_prefix}/{control.kind}/{node}/{object_id}/config"] = config
    return out
