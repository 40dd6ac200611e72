"""Home Assistant's own code judges our MQTT discovery payloads (run by scripts/ha-contract).

Runs inside a venv with ``homeassistant`` installed (Python 3.13), never in the project's.
Input: a JSON file of cases ``{"kind", "topic", "config", "states": [state JSON text...]}``
written by scripts/ha-contract from the simulator's devices. For each case:

1. the discovery topic must match HA's discovery topic pattern;
2. the config goes through the MQTT platform's DISCOVERY_SCHEMA (sensor or binary_sensor),
   as HA's discovery does: a vol.Invalid means HA rejects the entity; a key it strips means
   HA ignores that option (only ``default_entity_id`` on HA before 2025.10 is expected);
3. device class, unit and state class are checked against the sensor tables
   (DEVICE_CLASS_UNITS, DEVICE_CLASS_STATE_CLASSES); any WARNING HA logs while validating
   counts as a failure;
4. ``value_template`` (and ``json_attributes_template``) are rendered with HA's template
   engine against every state payload, and the result goes through the same decisions as
   the MQTT sensor's state handler (None, numeric, options, 255 characters) and HA's
   SensorEntity.state validation; a binary sensor must render ON, OFF or None;
5. the entity id HA would give (from object_id before 2025.10) is reported.

Exit status 0: nothing rejected or dropped; 1: failures, each printed on one line.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import tempfile
from collections import Counter
from typing import Any

import voluptuous as vol
from awesomeversion import AwesomeVersion
from homeassistant.components.mqtt import binary_sensor as mqtt_binary_sensor
from homeassistant.components.mqtt import sensor as mqtt_sensor
from homeassistant.components.mqtt.discovery import TOPIC_MATCHER
from homeassistant.components.mqtt.models import MqttValueTemplate, PayloadSentinel
from homeassistant.components.sensor import (
    DEVICE_CLASS_STATE_CLASSES,
    DEVICE_CLASS_UNITS,
    SensorDeviceClass,
    SensorEntity,
    SensorStateClass,
)
from homeassistant.const import __version__ as HA_VERSION  # noqa: N812
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity import async_generate_entity_id
from homeassistant.util.json import json_loads

PAYLOAD_NONE = "None"
MAX_LENGTH_STATE_STATE = 255
#: keys HA drops on purpose on this version (read only by newer versions)
EXPECTED_DROPS = (
    {"default_entity_id"} if AwesomeVersion(HA_VERSION) < AwesomeVersion("2025.10") else set()
)


class _Warnings(logging.Handler):
    """Collects every WARNING+ record HA logs while a case is checked."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record.getMessage())


class _Probe(SensorEntity):
    """A bare SensorEntity: HA's own state validation, without a platform."""


class Checker:
    def __init__(self, hass: HomeAssistant) -> None:
        self.hass = hass
        self.failures: Counter[str] = Counter()  # one line per problem, with its count
        self.entity_ids: Counter[str] = Counter()
        self.renders = 0
        self.dropped_ok: Counter[str] = Counter()
        self.warnings = _Warnings()
        logging.getLogger("homeassistant").addHandler(self.warnings)

    def fail(self, case: dict[str, Any], what: str) -> None:
        self.failures[f"{case['kind']} {case['topic']}: {what}"] += 1

    def check(self, case: dict[str, Any]) -> None:
        self.warnings.records.clear()
        topic: str = case["topic"]
        match = TOPIC_MATCHER.fullmatch(topic.split("/", 1)[1])
        if match is None:
            self.fail(case, "discovery topic does not match HA's pattern")
            return
        component = match["component"]
        schemas = {
            "sensor": mqtt_sensor.DISCOVERY_SCHEMA,
            "binary_sensor": mqtt_binary_sensor.DISCOVERY_SCHEMA,
        }
        if component not in schemas:
            self.fail(case, f"component {component!r} not checked here")
            return
        config: dict[str, Any] = case["config"]
        try:
            valid: dict[str, Any] = schemas[component](dict(config))
        except vol.Invalid as exc:
            self.fail(case, f"rejected by the discovery schema: {exc}")
            return
        for key in sorted(set(config) - set(valid)):
            if key in EXPECTED_DROPS:
                self.dropped_ok[key] += 1
            else:
                self.fail(case, f"option {key!r} dropped by HA {HA_VERSION}")
        object_id = valid.get("object_id")
        if object_id:
            entity_id = async_generate_entity_id(f"{component}.{{}}", object_id, None, self.hass)
            self.entity_ids[entity_id] += 1
            if entity_id != f"{component}.{object_id}":
                self.fail(case, f"entity id {entity_id} differs from object_id {object_id}")
            if config.get("default_entity_id", entity_id) != entity_id:
                self.fail(case, f"default_entity_id differs from {entity_id}")
        else:
            self.fail(case, "no object_id: HA before 2025.10 would build the id from the names")
        if component == "sensor":
            self._sensor_tables(case, valid)
        for state in case["states"]:
            if component == "sensor":
                self._sensor_state(case, valid, state)
            else:
                self._binary_state(case, valid, state)
            self._attributes(case, valid, state)
        for message in self.warnings.records:
            self.fail(case, f"HA logged: {message}")

    def _sensor_tables(self, case: dict[str, Any], valid: dict[str, Any]) -> None:
        device_class = valid.get("device_class")
        unit = valid.get("unit_of_measurement")
        state_class = valid.get("state_class")
        if device_class is None or device_class == SensorDeviceClass.ENUM:
            return
        units = DEVICE_CLASS_UNITS.get(device_class)
        if units is not None and unit not in units:
            self.fail(case, f"unit {unit!r} not valid for device class {device_class}")
        classes = DEVICE_CLASS_STATE_CLASSES.get(device_class, set(SensorStateClass))
        if state_class is not None and state_class not in classes:
            self.fail(case, f"state class {state_class} impossible for {device_class}")

    def _render(self, template: Any, payload: str) -> Any:
        template.hass = self.hass
        self.renders += 1
        return MqttValueTemplate(template).async_render_with_possible_json_value(
            payload, PayloadSentinel.DEFAULT
        )

    def _sensor_state(self, case: dict[str, Any], valid: dict[str, Any], payload: str) -> None:
        rendered = self._render(valid["value_template"], payload)
        if not isinstance(rendered, str):
            self.fail(case, f"template gave {rendered!r}, not text")
            return
        if rendered == PAYLOAD_NONE:
            return  # unknown state: accepted
        probe = _Probe()
        probe.hass = self.hass
        probe.entity_id = "sensor.contract_probe"
        probe._attr_device_class = valid.get("device_class")
        probe._attr_state_class = valid.get("state_class")
        probe._attr_native_unit_of_measurement = valid.get("unit_of_measurement")
        probe._attr_options = valid.get("options")
        if probe._numeric_state_expected and rendered == "":
            self.fail(case, f"empty state ignored (payload {payload[:80]}...)")
            return
        options = valid.get("options")
        if not probe._numeric_state_expected:
            if options and rendered not in options:
                self.fail(case, f"invalid option {rendered!r} ignored by HA")
                return
            if len(rendered) > MAX_LENGTH_STATE_STATE:
                self.fail(case, f"state longer than 255 characters: {rendered[:40]}...")
                return
        probe._attr_native_value = rendered
        try:
            probe.state  # noqa: B018 - HA's own validation of the state
        except ValueError as exc:
            self.fail(case, f"state {rendered!r} rejected: {exc}")

    def _binary_state(self, case: dict[str, Any], valid: dict[str, Any], payload: str) -> None:
        rendered = str(self._render(valid["value_template"], payload))
        allowed = {valid["payload_on"], valid["payload_off"], PAYLOAD_NONE}
        if rendered.strip() and rendered not in allowed:
            self.fail(case, f"no matching payload for {rendered!r}")

    def _attributes(self, case: dict[str, Any], valid: dict[str, Any], payload: str) -> None:
        template = valid.get("json_attributes_template")
        if template is None:
            return
        rendered = self._render(template, payload)
        try:
            attributes = json_loads(rendered)
        except ValueError:
            self.fail(case, f"attributes are not JSON: {rendered!r}")
            return
        if not isinstance(attributes, dict):
            self.fail(case, f"attributes are not a JSON object: {rendered!r}")


async def _main(cases: list[dict[str, Any]]) -> int:
    with tempfile.TemporaryDirectory() as config_dir:
        hass = HomeAssistant(config_dir)
        checker = Checker(hass)
        for case in cases:
            checker.check(case)
        await hass.async_stop(force=True)
    kinds = Counter(case["kind"] for case in cases)
    print(f"Home Assistant {HA_VERSION}: {len(cases)} discovery payloads", end=" ")
    print("(" + ", ".join(f"{kind} {count}" for kind, count in sorted(kinds.items())) + "),")
    print(f"{checker.renders} template renderings, {len(checker.entity_ids)} entity ids")
    for key, count in checker.dropped_ok.items():
        print(f"note: {key} ignored by this HA version ({count} payloads; object_id gives the id)")
    duplicates = [entity_id for entity_id, n in checker.entity_ids.items() if n > 1]
    for entity_id in duplicates:
        checker.failures[f"entity id {entity_id} used by more than one payload"] += 1
    for failure, count in checker.failures.items():
        print("FAIL", failure, f"(x{count})" if count > 1 else "")
    failed = {failure.split(": ")[0] for failure in checker.failures}
    print(f"{len(cases) - len(failed)} passed, {len(failed)} failed")
    return 1 if checker.failures else 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.ERROR)
    with open(sys.argv[1], encoding="utf-8") as file:
        sys.exit(asyncio.run(_main(json.load(file))))
