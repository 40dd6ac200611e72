"""Home Assistant MQTT discovery: which entity each catalogue field becomes, its short
name, and the retained discovery configs (pure; also read by Domoticz's auto-discovery)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ... import __version__, fields
from ...reading import Reading
from .topics import OFFLINE, ONLINE, Topics, domoticz_safe, safe_topic_level

__all__ = [
    "UNKNOWN_OPTION",
    "Entity",
    "device_info",
    "discovery_configs",
    "entity_config",
    "entity_for",
    "entity_name",
]


@dataclass(frozen=True, slots=True)
class Entity:
    """How one catalogue field appears in Home Assistant."""

    component: str  # "sensor" or "binary_sensor"
    device_class: str | None = None
    state_class: str | None = None
    unit: str | None = None
    options: tuple[str, ...] = ()


#: the option an enum entity shows for a code missing from the catalogue's table (or a value
#: that did not decode): HA drops any state that is not one of the options, so an unknown
#: code must map to one; the code itself goes alongside as the ``received`` attribute
UNKNOWN_OPTION = "unknown code"

# Short entity names (HA shows "<device> <name>"; before 2025.10 it also built entity ids from
# them): no catalogue notes like "(infinite when not discharging)", stable across versions.
_NAMES: Mapping[str, str] = {
    "voltage": "Battery voltage",
    "voltage_2": "Battery 2 voltage",
    "voltage_3": "Battery 3 voltage",
    "aux_voltage": "Auxiliary voltage",
    "mid_voltage": "Mid-point voltage",
    "mid_deviation": "Mid-point deviation",
    "current": "Battery current",
    "current_2": "Battery 2 current",
    "current_3": "Battery 3 current",
    "load": "Load output",
    "temperature": "Battery temperature",
    "power": "Power",
    "consumed_ah": "Consumed amp-hours",
    "time_to_go": "Time to go",
    "alarm": "Alarm",
    "relay": "Relay",
    "history_deepest_discharge": "Deepest discharge",
    "history_last_discharge": "Last discharge",
    "history_average_discharge": "Average discharge",
    "history_charge_cycles": "Charge cycles",
    "history_full_discharges": "Full discharges",
    "history_cumulative_ah": "Cumulative amp-hours",
    "history_min_voltage": "Minimum voltage",
    "history_max_voltage": "Maximum voltage",
    "history_since_full_charge": "Time since full charge",
    "history_auto_syncs": "Automatic synchronisations",
    "history_low_voltage_alarms": "Low voltage alarms",
    "history_high_voltage_alarms": "High voltage alarms",
    "history_low_aux_voltage_alarms": "Low aux voltage alarms",
    "history_high_aux_voltage_alarms": "High aux voltage alarms",
    "history_min_aux_voltage": "Minimum aux voltage",
    "history_max_aux_voltage": "Maximum aux voltage",
    "history_discharged_energy": "Discharged energy",
    "history_charged_energy": "Charged energy",
    "yield_total": "Yield total",
    "error": "Error",
    "charger_state": "State",
    "monitor_mode": "Monitor mode",
    "day_sequence": "Day sequence number",
}
_NOTE = re.compile(r"\s*\([^)]*\)")


def entity_name(name: str) -> str:
    """The short HA entity name of a catalogue field (its description without notes)."""
    if name in _NAMES:
        return _NAMES[name]
    field = fields.lookup(name)
    text = _NOTE.sub("", field.description if field is not None else name.replace("_", " "))
    return text[:1].upper() + text[1:]


# Numeric units → (device_class, state_class). HA's rules: device_class voltage/current/power/
# apparent_power/temperature/battery accept only "measurement"; energy only total or
# total_increasing; duration any; no device class has "Ah", so those are plain measurements.
_BY_UNIT: Mapping[str, tuple[str | None, str | None]] = {
    "V": ("voltage", "measurement"),
    "A": ("current", "measurement"),
    "W": ("power", "measurement"),
    "VA": ("apparent_power", "measurement"),
    "°C": ("temperature", "measurement"),
    "min": ("duration", "measurement"),
    "s": ("duration", "measurement"),
    "Ah": (None, "measurement"),
    "%": (None, "measurement"),
    "kWh": ("energy", "total_increasing"),
    "": (None, "measurement"),
}
# Per-field exceptions to the unit rule.
_BY_NAME: Mapping[str, tuple[str | None, str | None]] = {
    "soc": ("battery", "measurement"),
    # a value set once a day is not a counter: as total_increasing HA's Energy dashboard would
    # count every day's figure as new energy, so no state class (valid for device_class energy)
    "yield_yesterday": ("energy", None),
    # cumulative Ah drawn only grows in magnitude (negative on the wire); HA: "total"
    "history_cumulative_ah": (None, "total"),
    # event counters: never go down (except by a reset on the device)
    "history_charge_cycles": (None, "total_increasing"),
    "history_full_discharges": (None, "total_increasing"),
    "history_auto_syncs": (None, "total_increasing"),
    "history_low_voltage_alarms": (None, "total_increasing"),
    "history_high_voltage_alarms": (None, "total_increasing"),
    "history_low_aux_voltage_alarms": (None, "total_increasing"),
    "history_high_aux_voltage_alarms": (None, "total_increasing"),
    # a sequence number, not a measurement
    "day_sequence": (None, None),
}
_BINARY_CLASS: Mapping[str, str | None] = {"alarm": "problem", "relay": None, "load": "power"}
_IDENTITY = frozenset({fields.Kind.PID, fields.Kind.FIRMWARE, fields.Kind.FIRMWARE_EXT})
_TEXT_KINDS = frozenset({fields.Kind.BITMASK, fields.Kind.HEX_BITMASK})


def entity_for(name: str) -> Entity | None:
    """The HA entity of a catalogue field; None for identity, free text and unknown labels."""
    field = fields.lookup(name)
    if field is None or field.name != name or field.kind in _IDENTITY:
        return None
    if field.kind is fields.Kind.TEXT:
        return None  # serial number, model, HC#: device info or opaque
    if field.kind is fields.Kind.ON_OFF:
        return Entity("binary_sensor", device_class=_BINARY_CLASS.get(name))
    if field.kind is fields.Kind.ENUM:
        # MODE lists "off" twice; ERR already has an "unknown" (code 255), hence "unknown code"
        options = (*dict.fromkeys(field.table.values()), UNKNOWN_OPTION)
        return Entity("sensor", device_class="enum", options=options)
    if field.kind in _TEXT_KINDS:
        return Entity("sensor")
    device_class, state_class = _BY_NAME.get(name) or _BY_UNIT.get(field.unit, (None, None))
    return Entity("sensor", device_class, state_class, field.unit or None)


def _value_template(name: str, entity: Entity) -> str:
    ref = f"value_json.{name}"
    if entity.component == "binary_sensor":
        return f"{{{{ 'None' if {ref} is none else ('ON' if {ref} else 'OFF') }}}}"
    field = fields.lookup(name)
    if field is not None and field.kind in _TEXT_KINDS:
        return f"{{{{ {ref} | join(', ') if {ref} else 'none' }}}}"
    if name == "time_to_go":  # "infinite" (not discharging) shows as unknown, not an error
        return f"{{{{ {ref} if {ref} is number else None }}}}"
    if entity.options:
        # never an invalid option (HA would drop the update and keep showing the old state)
        known = json.dumps(list(entity.options[:-1]), ensure_ascii=False)
        return (
            f"{{% set v = value_json.get('{name}') %}}"
            f"{{{{ v if v is none or v in {known} else '{UNKNOWN_OPTION}' }}}}"
        )
    return f"{{{{ {ref} }}}}"


def _attributes_template(name: str) -> str:
    """An enum entity's attributes: the value as decoded, e.g. ``unknown (99)``."""
    return f"{{{{ {{'received': value_json.get('{name}')}} | tojson }}}}"


def device_info(topics: Topics, reading: Reading) -> dict[str, Any]:
    """The HA device block every entity of ``reading``'s device carries."""
    info: dict[str, Any] = {
        "identifiers": [topics.node_id],
        # the configured name only: HA prefixes every entity name with it
        "name": reading.device,
        "manufacturer": "Victron Energy",
        "model": reading.product or (f"PID 0x{reading.pid:04X}" if reading.pid else "VE.Direct"),
    }
    if reading.pid is not None:
        info["model_id"] = f"0x{reading.pid:04X}"
    if reading.serial:
        info["serial_number"] = reading.serial
    if reading.firmware:
        info["sw_version"] = reading.firmware
    return info


def entity_config(
    topics: Topics,
    device: dict[str, Any],
    entity: Entity,
    *,
    key: str,
    name: str,
    state_topic: str,
    value_template: str,
) -> tuple[str, dict[str, Any]]:
    """The discovery topic and config of one entity (``key``: its object id before it is
    made safe); the caller adds what is particular to it (options, attributes)."""
    node = topics.node_id
    object_id = domoticz_safe(safe_topic_level(key))
    entity_id = domoticz_safe(f"{node}_{object_id}")
    config: dict[str, Any] = {
        "name": name,
        "unique_id": entity_id,
        # the entity id <component>.<prefix>_<device>_<field> on every HA version: HA
        # before 2025.10 reads only object_id (and drops default_entity_id as an unknown
        # key); 2025.10+ reads default_entity_id, object_id is deprecated there (2026.4)
        "object_id": entity_id,
        "default_entity_id": f"{entity.component}.{entity_id}",
        "state_topic": state_topic,
        "value_template": value_template,
        "availability_topic": topics.availability,
        "payload_available": ONLINE,
        "payload_not_available": OFFLINE,
        "device": device,
        "origin": {"name": "vedirect_async", "sw_version": __version__},
    }
    if entity.component == "binary_sensor":
        config["payload_on"] = "ON"
        config["payload_off"] = "OFF"
    if entity.device_class:
        config["device_class"] = entity.device_class
    if entity.state_class:
        config["state_class"] = entity.state_class
    if entity.unit:
        config["unit_of_measurement"] = entity.unit
    return f"{topics.discovery_prefix}/{entity.component}/{node}/{object_id}/config", config


def discovery_configs(topics: Topics, reading: Reading) -> dict[str, dict[str, Any]]:
    """Discovery topic → config for every field of ``reading`` that makes an HA entity."""
    device = device_info(topics, reading)
    out: dict[str, dict[str, Any]] = {}
    for name in reading.values:
        entity = entity_for(name)
        if entity is None:
            continue
        topic, config = entity_config(
            topics,
            device,
            entity,
            key=name,
            name=entity_name(name),
            state_topic=topics.state,
            value_template=_value_template(name, entity),
        )
        if entity.options:
            config["options"] = list(entity.options)
            config["json_attributes_topic"] = topics.state
            config["json_attributes_template"] = _attributes_template(name)
        out[topic] = config
    return out
