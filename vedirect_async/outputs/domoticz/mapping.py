"""What is posted: the ``[[domoticz.devices]]`` rows resolved against the devices, the
Domoticz device types of each kind, and the old script's ``udevices`` data (pure)."""

from __future__ import annotations

import json
from collections.abc import Mapping as MappingType
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote

from ...config import ConfigError, DomoticzDevice
from ...fields import lookup
from ...reading import Reading

#: catalogue fields whose change is posted at once (post_on_change)
TRIGGERS = ("alarm", "relay", "alarm_reason", "charger_state", "error", "off_reason", "load")
#: kind -> (Type, SubType) Domoticz reports for the matching device ("" = any subtype)
TYPES: MappingType[str, tuple[str, str]] = {
    "voltage": ("General", "Voltage"),
    "current": ("General", "Current"),
    "percentage": ("General", "Percentage"),
    "custom": ("General", "Custom Sensor"),
    "kwh": ("General", "kWh"),
    "text": ("General", "Text"),
    "alert": ("General", "Alert"),
    "usage": ("Usage", "Electric"),
    "temperature": ("Temp", ""),
}


def legacy_json(reading: Reading) -> str:
    """The old script's ``data=`` JSON: raw label/value strings, wire order, no spaces."""
    pairs = {label: value for label, value in reading.raw if label != "Checksum"}
    return json.dumps(pairs, ensure_ascii=False).replace(" ", "")


def enc(text: str, safe: str = ";") -> str:
    return quote(text, safe=safe)


@dataclass(frozen=True, slots=True)
class Post:
    """One request of a round."""

    key: str  # what it updates ("idx 12", "udevices bmv"), for change tracking
    query: str  # encoded, after "json.htm?"
    payload: str  # the value part, for "unchanged" detection
    idx: int | None
    what: str  # for messages: "bmv.V → idx 12"


@dataclass(slots=True)
class Mapping:
    """A resolved ``[[domoticz.devices]]`` row."""

    idx: int
    device: str
    kind: str
    label: str  # as configured, for messages
    key: str  # key in Reading.values
    power_key: str


def value_key(name: str) -> str:
    """The key in ``Reading.values`` of a field name or label."""
    found = lookup(name)
    return found.name if found is not None else name


def resolve(rows: Sequence[DomoticzDevice], devices: Sequence[str]) -> list[Mapping]:
    """The configured rows checked (one clear error each) and resolved to value keys."""
    out: list[Mapping] = []
    for i, row in enumerate(rows):
        where = f"domoticz.devices[{i}]"
        device = row.device
        if not device:
            if len(devices) != 1:
                raise ConfigError(
                    f"{where}.device is empty but there are {len(devices)} [[device]] "
                    f"tables: name one of {', '.join(devices)}"
                )
            device = devices[0]
        elif device not in devices:
            raise ConfigError(f"{where}.device = {device!r}: expected one of {', '.join(devices)}")
        if not row.field:
            raise ConfigError(f"{where}.field is empty: expected a field name or label")
        if row.idx < 1:
            raise ConfigError(f"{where}.idx = {row.idx}: expected the Domoticz idx (>= 1)")
        out.append(
            Mapping(
                row.idx,
                device,
                row.kind,
                row.field,
                value_key(row.field),
                value_key(row.power_field) if row.power_field else "",
            )
        )
    return out
