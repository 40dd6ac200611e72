"""Topic names and the state payloads of the MQTT output (pure)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ... import fields
from ...config import DomoticzDevice
from ...present import domoticz_value, present
from ...reading import Reading, Value

__all__ = [
    "OFFLINE",
    "ONLINE",
    "Topics",
    "domoticz_messages",
    "domoticz_safe",
    "field_text",
    "safe_topic_level",
    "state_payload",
]

ONLINE = "online"
OFFLINE = "offline"

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
# Domoticz's auto-discovery silently ignores object ids like these (domoticz.md section 2.2)
_DOMOTICZ_IGNORED = (("_alarm", "_alm"), ("_sensitivity", "_sens"), ("_calibration", "_cal"))


def safe_topic_level(text: str) -> str:
    """``text`` as one MQTT topic level / HA object id: only ``[A-Za-z0-9_-]``, never empty.

    ``SER#``, ``+``, ``/`` and anything else outside the set become ``_``.
    """
    return _UNSAFE.sub("_", text).strip("_") or "_"


def domoticz_safe(object_id: str) -> str:
    """An object id Domoticz's auto-discovery does not skip (no ``_alarm``, ``_min``...)."""
    for bad, good in _DOMOTICZ_IGNORED:
        object_id = object_id.replace(bad, good)
    if object_id.startswith(("min_", "max_")):
        object_id = object_id[:3] + "imum" + object_id[3:]
    if object_id.endswith(("_min", "_max")):
        object_id += "imum"
    return object_id


@dataclass(frozen=True, slots=True)
class Topics:
    """The topic names of one device."""

    prefix: str
    device: str
    discovery_prefix: str

    @property
    def base(self) -> str:
        return f"{self.prefix}/{safe_topic_level(self.device)}"

    @property
    def state(self) -> str:
        return f"{self.base}/state"

    @property
    def daily(self) -> str:
        return f"{self.base}/daily"

    @property
    def availability(self) -> str:
        return f"{self.base}/availability"

    def field(self, name: str) -> str:
        return f"{self.base}/{safe_topic_level(name)}"

    @property
    def node_id(self) -> str:
        return safe_topic_level(f"{self.prefix}_{self.device}")

    @property
    def ha_status(self) -> str:
        return f"{self.discovery_prefix}/status"


# -- payloads --------------------------------------------------------------------------------

_META = ("time", "device", "product", "units")


def field_text(name: str, value: Value) -> str:
    """A value as plain text for per-field topics (:attr:`present.Presented.text`)."""
    return present(name, value).text


def state_payload(reading: Reading) -> dict[str, Any]:
    """The JSON object published on ``<prefix>/<device>/state``."""
    out: dict[str, Any] = {
        "time": reading.time.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "device": reading.device,
        "product": reading.product,
    }
    units: dict[str, str] = {}
    for name, value in reading.values.items():
        if name in _META:
            continue  # never let a device label overwrite the envelope
        out[name] = present(name, value).json
        unit = fields.unit_of(name)
        if unit:
            units[name] = unit
    out["units"] = units
    return out


# -- Domoticz over MQTT ------------------------------------------------------------------------


def domoticz_messages(
    mappings: Sequence[DomoticzDevice], reading: Reading, only_device: bool
) -> list[dict[str, Any]]:
    """The ``domoticz/in`` messages for one reading (``only_device``: one device configured)."""
    out: list[dict[str, Any]] = []
    for mapping in mappings:
        if mapping.device != reading.device and not (only_device and not mapping.device):
            continue
        name = _catalogue_name(mapping.field)
        value = reading.values.get(name)
        if value is None:
            continue
        power = (
            reading.values.get(_catalogue_name(mapping.power_field))
            if mapping.power_field
            else None
        )
        pair = domoticz_value(mapping.kind, value, name, power)  # the HTTP output's formatting
        if pair is not None:
            out.append({"idx": mapping.idx, "nvalue": pair[0], "svalue": pair[1]})
    return out


def _catalogue_name(name_or_label: str) -> str:
    found = fields.lookup(name_or_label)
    return found.name if found is not None else name_or_label
