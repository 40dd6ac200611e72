"""The daily history on MQTT (issue 14): ``<prefix>/<device>/daily`` and its HA sensors (pure).

The topic holds the device's history as ``GET /api/daily`` serves it: a JSON list, today
first, one object per day (``date``, ``days_ago``, ``yield_kwh``, ``max_pv_power_w``...),
always retained (it changes about once a day, so a subscriber must not wait for the next).

Home Assistant gets a sensor for each of yesterday's figures that the text stream lacks:
max/min battery voltage, max PV voltage, max battery current, minutes in bulk, absorption
and float. Yesterday, the last complete day, and not today: the history is read at connect
and at each day change (HSDS), so a "today" from it would be hours old. Yield and max PV
power of today and yesterday are already sensors from the state topic (H20-H23), live.
Each sensor carries the day it is for as its ``date`` attribute.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date
from typing import Any

from ...daily import DailyRecord
from ...reading import Reading
from .discovery import Entity, device_info, entity_config
from .topics import Topics

__all__ = ["DAILY_SENSORS", "History", "daily_configs", "daily_payload"]

#: a device's history as the hub tells it: the days (today first) and the date of day 0
History = tuple[tuple[DailyRecord, ...], date]

_VOLTS = Entity("sensor", "voltage", "measurement", "V")
_AMPS = Entity("sensor", "current", "measurement", "A")
_MINUTES = Entity("sensor", "duration", "measurement", "min")
#: (key of a day object, HA name, entity): the sensors for the last complete day
DAILY_SENSORS: tuple[tuple[str, str, Entity], ...] = (
    ("battery_voltage_max", "Max battery voltage yesterday", _VOLTS),
    ("battery_voltage_min", "Min battery voltage yesterday", _VOLTS),
    ("max_pv_voltage", "Max PV voltage yesterday", _VOLTS),
    ("battery_current_max", "Max battery current yesterday", _AMPS),
    ("time_bulk_min", "Bulk time yesterday", _MINUTES),
    ("time_absorption_min", "Absorption time yesterday", _MINUTES),
    ("time_float_min", "Float time yesterday", _MINUTES),
)

_YESTERDAY = 1  # index in the list: days are read from today back with none missing


def daily_payload(days: Sequence[DailyRecord], today: date) -> str:
    """The retained JSON list of the daily topic (the objects ``GET /api/daily`` serves)."""
    return json.dumps([day.as_json(today) for day in days], separators=(",", ":"))


def daily_configs(topics: Topics, reading: Reading) -> dict[str, dict[str, Any]]:
    """Discovery topic → config of the history sensors of ``reading``'s device."""
    device = device_info(topics, reading)
    has_day = f"value_json | length > {_YESTERDAY}"
    out: dict[str, dict[str, Any]] = {}
    for key, name, entity in DAILY_SENSORS:
        topic, config = entity_config(
            topics,
            device,
            entity,
            key=f"yesterday_{key}",
            name=name,
            state_topic=topics.daily,
            # an absent day or value renders None: HA shows "unknown"
            value_template=f"{{{{ value_json[{_YESTERDAY}].{key} if {has_day} else None }}}}",
        )
        config["json_attributes_topic"] = topics.daily
        config["json_attributes_template"] = (
            f"{{{{ {{'date': value_json[{_YESTERDAY}].date}} | tojson if {has_day} else '{{}}' }}}}"
        )
        out[topic] = config
    return out
