"""One device's MQTT connection: connect and reconnect with backoff, its Last Will, its
availability, and publishing its state and discovery in the right order."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from typing import TYPE_CHECKING

import aiomqtt
from aiomqtt.exceptions import MqttConnectError

from ...backoff import Backoff
from ...errors import DeliveryError, PermanentDeliveryError, TransientDeliveryError
from ...reading import Reading
from ..delivery import Delivery
from .control import Commands, control_configs
from .daily import History, daily_configs, daily_payload
from .discovery import discovery_configs
from .topics import OFFLINE, ONLINE, Topics, domoticz_messages, field_text, state_payload

if TYPE_CHECKING:
    from .output import MqttOutput

__all__ = ["GOODBYE_TIMEOUT", "Link", "delivery_error"]

_LOGGER = logging.getLogger(__name__)

#: grace for the last "offline" at shutdown
GOODBYE_TIMEOUT = 1.0


_LOGIN_REFUSED = (4, 5, 134, 135)  # MQTT 3.1.1 / 5: bad user name or password, not authorized


def delivery_error(exc: aiomqtt.MqttError, where: str, *, connected: bool) -> DeliveryError:
    """What an aiomqtt error means, by its type (and the exception it replaced), never by its
    text: a refused login is permanent, anything else transient. Never holds the password."""
    text = str(exc) or type(exc).__name__
    if isinstance(exc, MqttConnectError):  # a CONNACK with an error code
        code = getattr(exc.rc, "value", exc.rc)
        if code in _LOGIN_REFUSED:
            return PermanentDeliveryError(
                f"broker {where} refused the login ({exc}); check [mqtt] username and "
                "VEDIRECT_MQTT__PASSWORD"
            )
        return TransientDeliveryError(f"broker {where} refused the connection ({exc})")
    if connected or isinstance(exc, aiomqtt.MqttCodeError):
        return TransientDeliveryError(f"broker {where} dropped the connection ({text})")
    if isinstance(exc.__context__, TimeoutError):
        return TransientDeliveryError(f"broker {where} did not answer in time ({text})")
    return TransientDeliveryError(f"broker {where} unreachable: {text}")


class Link:
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
        self.published_daily: History | None = None  # the history last published on this connection
        self.daily_discovered = False
        self._listener: asyncio.Task[None] | None = None
        control = output.control
        self.commands = (
            Commands(control, device, self.topics, output.state.count)
            if control is not None
            else None
        )

    def offer(self, reading: Reading) -> None:
        self.pending = reading
        self.wake.set()

    # -- connection loop --

    async def run(self) -> None:
        """Connect, publish, and after any failure reconnect with the shared delivery's backoff
        (one WARNING per failure episode, one INFO when it ends)."""
        cfg = self.output.config
        backoff = Backoff(cfg.reconnect_initial, cfg.reconnect_max)
        delivery = Delivery("mqtt", self.output.state, backoff, logger=_LOGGER)
        where = f"{cfg.host}:{cfg.port}"
        while True:
            delay = cfg.reconnect_initial
            try:
                async with self.output.client_for(self) as client:
                    self.connected = True
                    if not delivery.failing:
                        _LOGGER.info("mqtt %s: connected to %s", self.device, where)
                    delivery.succeeded(report=False)  # the first publish reports success
                    await self._session(client)
            except aiomqtt.MqttError as exc:
                error = delivery_error(exc, where, connected=self.connected)
                self.connected = False
                self.published_availability = None
                delay = delivery.failed(
                    type(error)(f"{self.device}: {error.reason}"),
                    health=self.output.failure_health(self.device),
                )
                self.output.state_changed.set()
            finally:
                self.connected = False
            await asyncio.sleep(delay)

    async def _session(self, client: aiomqtt.Client) -> None:
        cfg = self.output.config
        self.discovered = frozenset()
        self.fresh = False
        self.published_daily = None  # a restarted broker may have lost the retained history
        self.daily_discovered = False
        if cfg.discovery:
            await client.subscribe(self.topics.ha_status, qos=1)
        if self.commands is not None:
            await self.commands.subscribe(client)
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
                if self.commands is not None and self.commands.handle(message):
                    continue
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
            wait: float | None = None  # woken by a reading, a reader change or HA's birth
            if reading is not None:
                due = self.last_state_publish + cfg.state_interval - time.monotonic()
                if due <= 0 or (reader_up and not self.fresh):  # the first one: at once
                    self.pending = None
                    await self._publish_reading(client, reading)
                    self.fresh = True
                else:
                    wait = due
            # after the state, never before: "online" vouches for what is retained
            await self._publish_availability(client, reader_up and self.fresh)
            if self.rediscover and cfg.discovery:
                self.rediscover = False
                self.discovered = frozenset()
                latest = self.output.latest(self.device)
                if latest is not None:
                    await self._publish_discovery(client, latest)
            await self._publish_daily(client)
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
                    field_text(name, value),
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
        if self.commands is not None:
            configs |= control_configs(self.topics, self.commands.controls())
        history = self.output.daily(self.device)
        if history is not None and history[0]:  # sensors only for a device with history
            configs |= daily_configs(self.topics, reading)
            self.daily_discovered = True
        for topic, config in configs.items():
            await self._send(client, topic, json.dumps(config), qos=1, retain=True)
        self.discovered = frozenset(reading.values)
        self.identity = (reading.product, reading.serial, reading.firmware)
        self.output.state.count("discovery_messages", len(configs))

    async def _publish_daily(self, client: aiomqtt.Client) -> None:
        """The device's history, retained, whenever it was read anew (and on each connection);
        its HA sensors first, once the device has history."""
        history = self.output.daily(self.device)
        if history is None or history == self.published_daily:
            return
        cfg = self.output.config
        if cfg.discovery and history[0] and not self.daily_discovered:
            latest = self.output.latest(self.device)  # the device block needs its identity
            if latest is not None:
                await self._publish_discovery(client, latest)
        payload = daily_payload(*history)
        await self._send(client, self.topics.daily, payload, qos=cfg.qos, retain=True)
        self.published_daily = history
        self.output.state.count("daily_messages")
