"""MQTT output: state JSON, availability with LWT, Home Assistant discovery, Domoticz MQTT.

Topics (``<prefix>`` from ``[mqtt] prefix``, ``<device>`` the ``[[device]] name``, made safe):

- ``<prefix>/<device>/state`` — one JSON object per reading (or per ``state_interval``): every
  decoded value under its catalogue name, plus ``time`` (UTC ISO 8601), ``device``,
  ``product`` and ``units`` (name → unit). ``---`` is ``null``; TTG "infinite" is the
  string ``"infinite"``; bitmask reasons are lists. Retained when ``retain`` is on.
- ``<prefix>/<device>/<field>`` — the same values as plain text (``per_field_topics``).
- ``<prefix>/<device>/availability`` — ``online`` / ``offline``, retained. Each device has
  its own MQTT connection whose Last Will is ``offline`` on this topic, so a killed service
  or a lost network turns every device ``offline`` at every subscriber; ``offline`` is also
  published while the device's reader is not delivering (the hub tells the output of each
  reader-state change; nothing is polled) and at shutdown.
  ``online`` follows a fresh state, never precedes it: after a (re)start or reconnection, and
  after the reader was down, the current state is published first, so what is retained is live.
- ``<prefix>/<device>/daily`` — an MPPT's daily history (the JSON list ``GET /api/daily``
  serves, today first), always retained, published each time the session reads it (at
  connect and after a day change: the hub tells the output), with HA sensors for yesterday's
  figures the text stream lacks (:mod:`.daily`).
- ``<discovery_prefix>/sensor|binary_sensor/<prefix>_<device>/<object>/config`` — Home
  Assistant discovery (also read by Domoticz's "MQTT Auto Discovery" hardware), retained,
  sent again whenever ``<discovery_prefix>/status`` says ``online``. Enum entities list an
  ``unknown code`` option that any code missing from the tables maps to, with the decoded
  value (``unknown (99)``) as the ``received`` attribute: HA drops states outside the options.
- ``domoticz_in`` (e.g. ``domoticz/in``) — ``{"idx", "nvalue", "svalue"}`` for each
  ``[[domoticz.devices]]`` mapping, for Domoticz's "MQTT Client Gateway".

While the broker is away nothing piles up: the output keeps only the newest reading per
device and publishes it (the current state) as soon as the connection is back.
"""

from ..base import OutputSpec
from .config import MqttConfig, validate
from .discovery import UNKNOWN_OPTION, discovery_configs, entity_for, entity_name
from .output import MqttOutput, mqtt_output
from .topics import Topics, domoticz_messages, safe_topic_level, state_payload

__all__ = [
    "SPEC",
    "UNKNOWN_OPTION",
    "MqttConfig",
    "MqttOutput",
    "Topics",
    "discovery_configs",
    "domoticz_messages",
    "entity_for",
    "entity_name",
    "mqtt_output",
    "safe_topic_level",
    "state_payload",
]

SPEC = OutputSpec("mqtt", MqttConfig, mqtt_output, validate)
