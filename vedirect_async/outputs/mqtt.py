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
  published while the device's reader is not delivering (the watchdog's view) and at shutdown.
  ``online`` follows a fresh state, never precedes it: after a (re)start or reconnection, and
  after the reader was down, the current state is published first, so what is retained is live.
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

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import re
import socket
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiomqtt
from aiomqtt.exceptions import MqttConnectError

from .. import __version__, fields
from ..backoff import Backoff
from ..config import Config, DomoticzDevice, MqttConfig
from ..hub import Hub, OutputState, ReaderState, Subscription
from ..present import domoticz_value, present
from ..reading import Reading, Value
from .base import Output

__all__ = [
    "UNKNOWN_OPTION",
    "MqttOutput",
    "discovery_configs",
    "domoticz_messages",
    "entity_for",
    "entity_name",
    "mqtt_output",
    "safe_topic_level",
    "state_payload",
]

_LOGGER = logging.getLogger(__name__)

ONLINE = "online"
OFFLINE = "offline"
#: how often each connection looks at its reader's state when no reading arrives
AVAILABILITY_POLL = 0.25
#: the same connection error is logged again at WARNING at most this often
ERROR_LOG_INTERVAL = 300.0
#: grace for the last "offline" at shutdown
GOODBYE_TIMEOUT = 1.0

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
# Domoticz's auto-discovery silently ignores object ids like these (domoticz.md section 2.2)
_DOMOTICZ_IGNORED = (("_alarm", "_alm"), ("_sensitivity", "_sens"), ("_calibration", "_cal"))


def safe_topic_level(text: str) -> str:
    """``text`` as one MQTT topic level / HA object id: only ``[A-Za-z0-9_-]``, never empty.

    ``SER#``, ``+``, ``/`` and anything else outside the set become ``_``.
    """
    return _UNSAFE.sub("_", text).strip("_") or "_"


def _domoticz_safe(object_id: str) -> str:
    """An object id Domoticz's auto-discovery does not skip (no ``_alarm``, ``_min``...)."""
    for bad, good in _DOMOTICZ_IGNORED:
        object_id = object_id.replace(bad, good)
    if object_id.startswith(("min_", "max_")):
        object_id = object_id[:3] + "imum" + object_id[3:]
    if object_id.endswith(("_min", "_max")):
        object_id += "imum"
    return object_id


# -- payloads (pure) ------------------------------------------------------------------------

_META = ("time", "device", "product", "units")


def _text_value(name: str, value: Value) -> str:
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


def discovery_configs(topics: Topics, reading: Reading) -> dict[str, dict[str, Any]]:
    """Discovery topic → config for every field of ``reading`` that makes an HA entity."""
    node = topics.node_id
    device_info: dict[str, Any] = {
        "identifiers": [node],
        # the configured name only: HA prefixes every entity name with it
        "name": reading.device,
        "manufacturer": "Victron Energy",
        "model": reading.product or (f"PID 0x{reading.pid:04X}" if reading.pid else "VE.Direct"),
    }
    if reading.pid is not None:
        device_info["model_id"] = f"0x{reading.pid:04X}"
    if reading.serial:
        device_info["serial_number"] = reading.serial
    if reading.firmware:
        device_info["sw_version"] = reading.firmware
    out: dict[str, dict[str, Any]] = {}
    for name in reading.values:
        entity = entity_for(name)
        if entity is None:
            continue
        field = fields.lookup(name)
        assert field is not None  # entity_for returned an entity
        object_id = _domoticz_safe(safe_topic_level(name))
        entity_id = _domoticz_safe(f"{node}_{object_id}")
        config: dict[str, Any] = {
            "name": entity_name(name),
            "unique_id": entity_id,
            # the entity id <component>.<prefix>_<device>_<field> on every HA version: HA
            # before 2025.10 reads only object_id (and drops default_entity_id as an unknown
            # key); 2025.10+ reads default_entity_id, object_id is deprecated there (2026.4)
            "object_id": entity_id,
            "default_entity_id": f"{entity.component}.{entity_id}",
            "state_topic": topics.state,
            "value_template": _value_template(name, entity),
            "availability_topic": topics.availability,
            "payload_available": ONLINE,
            "payload_not_available": OFFLINE,
            "device": device_info,
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
        if entity.options:
            config["options"] = list(entity.options)
            config["json_attributes_topic"] = topics.state
            config["json_attributes_template"] = _attributes_template(name)
        topic = f"{topics.discovery_prefix}/{entity.component}/{node}/{object_id}/config"
        out[topic] = config
    return out


# -- Domoticz over MQTT ---------------------------------------------------------------------


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


# -- the output -----------------------------------------------------------------------------


def _describe(exc: BaseException, where: str) -> str:
    """One line for a connection problem; never contains the password."""
    if isinstance(exc, MqttConnectError):  # a CONNACK with an error code
        code = getattr(exc.rc, "value", exc.rc)
        if code in (4, 5, 134, 135):  # MQTT 3.1.1 / 5 "bad user name or password", "not authorized"
            return (
                f"broker {where} refused the login ({exc}); check [mqtt] username and "
                "VEDIRECT_MQTT__PASSWORD"
            )
        return f"broker {where} refused the connection ({exc})"
    text = str(exc) or type(exc).__name__
    if isinstance(exc, aiomqtt.MqttCodeError) or "disconnected" in text.lower():
        return f"broker {where} dropped the connection ({text})"
    if "timed out" in text.lower():
        return f"broker {where} did not answer in time ({text})"
    return f"broker {where} unreachable: {text}"


class _Link:
    """One device's connection: its LWT, its availability, its state and discovery."""

    def __init__(self, output: MqttOutput, device: str) -> None:
        self.output = output
        self.device = device
        cfg = output.config
        self.topics = Topics(cfg.prefix, device, cfg.discovery_prefix)
        self.pending: Reading | None = None
        self.wake = asyncio.Event()
        self.connected = False
        self.published_availability: str | None = None
        #: a state was published on this connection since the reader was last seen down:
        #: only then is "online" true (else HA would show the old retained state as live)
        self.fresh = False
        self.discovered: frozenset[str] = frozenset()
        self.identity: tuple[str | None, ...] = ()
        self.rediscover = False
        self.last_state_publish = -math.inf
        self.failures = 0
        self._last_error = ""
        self._last_error_logged = -math.inf
        self._listener: asyncio.Task[None] | None = None

    def offer(self, reading: Reading) -> None:
        self.pending = reading
        self.wake.set()

    # -- connection loop --

    async def run(self) -> None:
        cfg = self.output.config
        backoff = Backoff(cfg.reconnect_initial, cfg.reconnect_max)
        where = f"{cfg.host}:{cfg.port}"
        while True:
            try:
                async with self.output.client_for(self) as client:
                    self.connected = True
                    if self.failures:
                        _LOGGER.info(
                            "mqtt %s: connected to %s again after %d failed attempts",
                            self.device,
                            where,
                            self.failures,
                        )
                    else:
                        _LOGGER.info("mqtt %s: connected to %s", self.device, where)
                    self.failures = 0
                    backoff.reset()
                    await self._session(client)
            except aiomqtt.MqttError as exc:
                self._failed(_describe(exc, where))
            finally:
                self.connected = False
            await asyncio.sleep(backoff.next())

    def _failed(self, reason: str) -> None:
        self.failures += 1
        self.published_availability = None
        now = time.monotonic()
        if reason != self._last_error or now - self._last_error_logged >= ERROR_LOG_INTERVAL:
            _LOGGER.warning("mqtt %s: %s (retrying with backoff)", self.device, reason)
            self._last_error, self._last_error_logged = reason, now
        else:
            _LOGGER.debug("mqtt %s: %s", self.device, reason)
        self.output.report_failure(self.device, reason)

    async def _session(self, client: aiomqtt.Client) -> None:
        cfg = self.output.config
        self.discovered = frozenset()
        self.fresh = False
        if cfg.discovery:
            await client.subscribe(self.topics.ha_status, qos=1)
        if self.pending is None:  # broker restarted: its retained state may be gone
            self.pending = self.output.latest(self.device)
        self.last_state_publish = -math.inf
        listener = asyncio.create_task(self._listen(client), name=f"mqtt-listen-{self.device}")
        self._listener = listener
        try:
            await self._publish_loop(client, listener)
        except asyncio.CancelledError:
            await self._goodbye(client)
            raise
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await listener

    async def _goodbye(self, client: aiomqtt.Client) -> None:
        """At shutdown: the LWT is not sent on a clean disconnect, so say offline ourselves."""
        with contextlib.suppress(aiomqtt.MqttError, asyncio.CancelledError, TimeoutError):
            await client.publish(
                self.topics.availability,
                OFFLINE,
                qos=self.output.config.qos,
                retain=True,
                timeout=GOODBYE_TIMEOUT,
            )

    async def _send(
        self, client: aiomqtt.Client, topic: str, payload: str, *, qos: int, retain: bool = False
    ) -> None:
        """Publish; fail at once if the connection drops, and never lose a cancellation.

        aiomqtt does not fail a QoS 1/2 publish whose connection died: it would wait for the
        whole ``timeout``. So the publish races the listener, which ends on disconnection.
        On Python 3.11 ``asyncio.wait_for`` (inside aiomqtt) can swallow a cancellation that
        arrives together with the PUBACK; it is re-raised here so shutdown is never ignored.
        """
        listener = self._listener
        if qos == 0 or listener is None:
            await client.publish(topic, payload, qos=qos, retain=retain)
        else:
            publish = asyncio.ensure_future(client.publish(topic, payload, qos=qos, retain=retain))
            try:
                await asyncio.wait((publish, listener), return_when=asyncio.FIRST_COMPLETED)
            finally:
                if not publish.done():
                    publish.cancel()
            if publish.cancelled() or not publish.done():
                raise aiomqtt.MqttError("Disconnected while publishing")
            publish.result()
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise asyncio.CancelledError

    async def _listen(self, client: aiomqtt.Client) -> None:
        """Watch for HA's birth message; ends (raising MqttError) when the connection drops."""
        try:
            async for message in client.messages:
                if message.topic.matches(self.topics.ha_status) and message.payload == b"online":
                    self.rediscover = True
                    self.wake.set()
        finally:
            self.wake.set()  # let the publisher notice a dead connection at once

    async def _publish_loop(self, client: aiomqtt.Client, listener: asyncio.Task[None]) -> None:
        cfg = self.output.config
        while True:
            self.wake.clear()
            reader_up = self.output.reader_up(self.device)
            if not reader_up:
                self.fresh = False
            reading = self.pending
            wait = AVAILABILITY_POLL
            if reading is not None:
                due = self.last_state_publish + cfg.state_interval - time.monotonic()
                if due <= 0 or (reader_up and not self.fresh):  # the first one: at once
                    self.pending = None
                    await self._publish_reading(client, reading)
                    self.fresh = True
                else:
                    wait = min(wait, due)
            # after the state, never before: "online" vouches for what is retained
            await self._publish_availability(client, reader_up and self.fresh)
            if self.rediscover and cfg.discovery:
                self.rediscover = False
                self.discovered = frozenset()
                latest = self.output.latest(self.device)
                if latest is not None:
                    await self._publish_discovery(client, latest)
            if listener.done():  # the connection dropped (or the listener failed)
                listener.result()
                raise aiomqtt.MqttError("Disconnected")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self.wake.wait()

    async def _publish_availability(self, client: aiomqtt.Client, up: bool) -> None:
        wanted = ONLINE if up else OFFLINE
        if wanted != self.published_availability:
            await self._send(
                client, self.topics.availability, wanted, qos=self.output.config.qos, retain=True
            )
            self.published_availability = wanted
            _LOGGER.info("mqtt %s: availability %s", self.device, wanted)

    async def _publish_reading(self, client: aiomqtt.Client, reading: Reading) -> None:
        cfg = self.output.config
        identity = (reading.product, reading.serial, reading.firmware)
        if cfg.discovery and (
            identity != self.identity or not self.discovered.issuperset(reading.values)
        ):
            await self._publish_discovery(client, reading)
        payload = json.dumps(state_payload(reading), separators=(",", ":"), allow_nan=False)
        await self._send(client, self.topics.state, payload, qos=cfg.qos, retain=cfg.retain)
        if cfg.per_field_topics:
            for name, value in reading.values.items():
                await self._send(
                    client,
                    self.topics.field(name),
                    _text_value(name, value),
                    qos=cfg.qos,
                    retain=cfg.retain,
                )
        if cfg.domoticz_in:
            for message in domoticz_messages(
                self.output.domoticz_devices, reading, self.output.single_device
            ):
                # never retained: Domoticz would replay it at every restart
                await self._send(client, cfg.domoticz_in, json.dumps(message), qos=cfg.qos)
        self.last_state_publish = time.monotonic()
        self.output.report_success()

    async def _publish_discovery(self, client: aiomqtt.Client, reading: Reading) -> None:
        configs = discovery_configs(self.topics, reading)
        for topic, config in configs.items():
            await self._send(client, topic, json.dumps(config), qos=1, retain=True)
        self.discovered = frozenset(reading.values)
        self.identity = (reading.product, reading.serial, reading.firmware)
        self.output.state.count("discovery_messages", len(configs))


class MqttOutput(Output):
    """Publishes readings to an MQTT broker; one connection per device."""

    name = "mqtt"
    latest_only = True

    def __init__(
        self,
        config: MqttConfig,
        domoticz_devices: Sequence[DomoticzDevice] = (),
        device_names: Sequence[str] = (),
    ) -> None:
        self.config = config
        self.domoticz_devices = tuple(domoticz_devices)
        self.device_names = tuple(device_names)
        self.single_device = len(self.device_names) <= 1
        self.state = OutputState(self.name)
        self._hub: Hub | None = None
        self._links: dict[str, _Link] = {}
        self._client_stem = config.client_id
        #: set whenever the output's health is updated (lets callers wait instead of polling)
        self.state_changed = asyncio.Event()

    def subscribe(self, hub: Hub) -> Subscription:
        self._hub = hub
        return super().subscribe(hub)

    # -- what links ask of the output --

    def latest(self, device: str) -> Reading | None:
        return None if self._hub is None else self._hub.latest.get(device)

    def reader_up(self, device: str) -> bool:
        """The watchdog's view: online while the reader delivers readings."""
        if self._hub is None or device not in self._hub.devices:
            return True  # no reader state (readings come from elsewhere): trust the readings
        return self._hub.devices[device].state is ReaderState.READING

    def client_for(self, link: _Link) -> aiomqtt.Client:
        cfg = self.config
        tls_context = None
        if cfg.tls:
            tls_context = ssl.create_default_context(cafile=cfg.ca_file or None)
        return aiomqtt.Client(
            cfg.host,
            cfg.port,
            username=cfg.username or None,
            password=cfg.password or None,
            identifier=f"{self._client_stem}-{safe_topic_level(link.device)}",
            will=aiomqtt.Will(link.topics.availability, OFFLINE, qos=cfg.qos, retain=True),
            keepalive=cfg.keepalive,
            timeout=cfg.timeout,
            tls_context=tls_context,
            logger=logging.getLogger(f"{__name__}.client"),
        )

    def report_success(self) -> None:
        down = [name for name, link in self._links.items() if not link.connected]
        if down:
            self.state.degraded(f"not connected: {', '.join(sorted(down))}")
            self.state.successes += 1
            self.state.last_success = time.time()
        else:
            self.state.ok()
        self.state.count("messages")
        self.state_changed.set()

    def report_failure(self, device: str, reason: str) -> None:
        """Degraded while another device's connection works, failed when none does."""
        if any(link.connected for name, link in self._links.items() if name != device):
            self.state.degraded(f"{device}: {reason}")
        else:
            self.state.failed(f"{device}: {reason}")
        self.state_changed.set()

    # -- the task --

    async def run(self, readings: Subscription, state: OutputState) -> None:
        self.state = state
        self._links = {}  # a restart by the supervisor starts fresh connections
        if not self._client_stem:
            self._client_stem = f"vedirect-{safe_topic_level(socket.gethostname())}"
        async with asyncio.TaskGroup() as group:
            spawn: Callable[[str], _Link] = lambda device: self._spawn(group, device)  # noqa: E731
            for device in self.device_names:
                spawn(device)
            while True:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(AVAILABILITY_POLL * 4):
                        await readings.wait()
                for device, reading in readings.drain_latest().items():
                    link = self._links.get(device) or spawn(device)
                    link.offer(reading)
                if self._hub is not None:
                    for device in self._hub.devices:
                        if device not in self._links:
                            spawn(device)

    def _spawn(self, group: asyncio.TaskGroup, device: str) -> _Link:
        link = self._links[device] = _Link(self, device)
        group.create_task(link.run(), name=f"mqtt-{device}")
        return link


def mqtt_output(config: Config) -> MqttOutput | None:
    """The registry factory: None when ``[mqtt] enabled = false``."""
    if not config.mqtt.enabled:
        return None
    return MqttOutput(
        config.mqtt,
        domoticz_devices=config.domoticz.devices,
        device_names=[d.name for d in config.device],
    )
