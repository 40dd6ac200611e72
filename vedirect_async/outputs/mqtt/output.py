"""The MQTT output: one connection per device, told of readings and of reader-state changes
by the hub (nothing polled)."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import time
from collections.abc import Callable, Sequence

import aiomqtt

from ...config import Config, DomoticzDevice
from ...control import Controller
from ...hub import DeviceChanges, Hub, OutputHealth, OutputState, ReaderState, Subscription
from ...reading import Reading
from ..base import Output
from .config import MqttConfig
from .daily import History
from .link import Link
from .topics import OFFLINE, safe_topic_level

__all__ = ["MqttOutput", "mqtt_output"]

_LOGGER = logging.getLogger(__name__)


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
        self.control: Controller | None = None  # writes (set by the service; issue 15)
        self._links: dict[str, Link] = {}
        #: each device's reader state as the hub last told it (READING = up)
        self._reader_up: dict[str, bool] = {}
        #: each device's daily history and its day 0 as the hub last told them
        self._daily: dict[str, History] = {}
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
        """The reader's view (told by the hub): online while the reader delivers readings.

        A device the hub has no reader state for (readings from elsewhere) is trusted.
        """
        return self._reader_up.get(device, True)

    def daily(self, device: str) -> History | None:
        """The device's history (today first) and its today; None until it has been read."""
        return self._daily.get(device)

    def client_for(self, link: Link) -> aiomqtt.Client:
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

    def failure_health(self, device: str) -> OutputHealth:
        """Degraded while another device's connection works, failed when none does."""
        others = (link.connected for name, link in self._links.items() if name != device)
        return OutputHealth.DEGRADED if any(others) else OutputHealth.FAILED

    # -- the task --

    async def run(self, readings: Subscription, state: OutputState) -> None:
        """Readings and reader-state changes are pushed by the hub; each wakes its device's
        connection (nothing here polls)."""
        self.state = state
        self._links = {}  # a restart by the supervisor starts fresh connections
        if not self._client_stem:
            self._client_stem = f"vedirect-{safe_topic_level(socket.gethostname())}"
        changes = self._hub.device_changes(self.name) if self._hub is not None else None
        # a confirmed write: the state with the read-back at once, not at the next reading
        unlisten = self.control.listen(self._written) if self.control is not None else None
        try:
            async with asyncio.TaskGroup() as group:
                spawn: Callable[[str], Link] = lambda device: self._spawn(group, device)  # noqa: E731
                for device in self.device_names:
                    spawn(device)
                if changes is not None:
                    group.create_task(self._follow(changes, spawn), name="mqtt-device-changes")
                while True:
                    await readings.wait()
                    for device, reading in readings.drain_latest().items():
                        link = self._links.get(device) or spawn(device)
                        link.offer(reading)
        finally:
            if unlisten is not None:
                unlisten()
            if changes is not None:
                changes.close()

    def _written(self, device: str, *_: object) -> None:
        link = self._links.get(device)
        reading = self.control.reading(device) if self.control is not None else None
        if link is not None and reading is not None:
            link.offer(reading)

    async def _follow(self, changes: DeviceChanges, spawn: Callable[[str], Link]) -> None:
        """Keep each device's reader state and history as the hub tells them; wake its
        connection."""
        async for change in changes:
            self._reader_up[change.device] = change.state is ReaderState.READING
            if change.daily_date is not None:
                self._daily[change.device] = (change.daily, change.daily_date)
            link = self._links.get(change.device) or spawn(change.device)
            link.wake.set()

    def _spawn(self, group: asyncio.TaskGroup, device: str) -> Link:
        link = self._links[device] = Link(self, device)
        group.create_task(link.run(), name=f"mqtt-{device}")
        return link


def mqtt_output(config: Config) -> MqttOutput | None:
    """The registry factory: None when ``[mqtt] enabled = false``."""
    section = config.section("mqtt", MqttConfig)
    if not section.enabled:
        return None
    # domoticz_in publishes the [[domoticz.devices]] rows: read from that section as data
    # (its dataclass belongs to the Domoticz output, which this one does not import)
    rows = getattr(config.sections.get("domoticz"), "devices", ())
    return MqttOutput(
        section,
        domoticz_devices=[row for row in rows if isinstance(row, DomoticzDevice)],
        device_names=[d.name for d in config.device],
    )
