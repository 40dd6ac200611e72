"""The Domoticz output: the newest values posted on a fixed schedule, one request at a time
(the package docstring says what it does and why)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import aiohttp
from yarl import URL

from ...backoff import Backoff
from ...config import Config, ConfigError
from ...errors import DeliveryError, SubscriptionClosed
from ...hub import OutputState, Subscription
from ...present import domoticz_value
from ...reading import UNAVAILABLE, Reading, Value
from ..base import Output
from ..delivery import Delivery, Schedule
from .client import USER_AGENT, Client, RejectedPostError, basic_auth, mask_url
from .config import DomoticzConfig
from .mapping import TRIGGERS, Post, enc, legacy_json, resolve

__all__ = ["DomoticzOutput", "domoticz_output"]

_LOGGER = logging.getLogger(__name__)

_BACKOFF_FIRST = 1.0  # first retry delay (or the interval, if shorter), then doubled
_STALE_MIN = 60.0  # a device's last reading older than max(2 x interval, this) is not posted
_CHANGE_GAP = 1.0  # at most one change-triggered post per this many seconds


@dataclass(slots=True)
class _Sent:
    payload: str
    at: float


class DomoticzOutput(Output):
    """Posts the newest readings to Domoticz on a fixed schedule (see the package docstring)."""

    name: ClassVar[str] = "domoticz"
    latest_only: ClassVar[bool] = True

    def __init__(self, config: DomoticzConfig, devices: Sequence[str]) -> None:
        self.config = config
        base = URL(config.url)
        if base.scheme not in ("http", "https") or not base.host:
            raise ConfigError(f"domoticz.url = {mask_url(base)!r}: expected http(s)://host:port")
        self._username = config.username or (base.user or "")
        if ":" in self._username:
            raise ConfigError("domoticz.username: a ':' cannot be sent in Basic auth")
        self._url_password = base.password or ""
        base = base.with_user(None).with_password(None).with_query(None).with_fragment(None)
        path = base.path.rstrip("/")
        self._endpoint = str(
            base.with_path(path if path.endswith("/json.htm") else path + "/json.htm")
        )
        self.shown_url = mask_url(base)
        self._https = base.scheme == "https"
        self._devices = list(devices)
        self._mappings = resolve(config.devices, self._devices)
        self._latest: dict[str, Reading] = {}
        self._signatures: dict[str, tuple[Value | None, ...]] = {}
        self._sent: dict[str, _Sent] = {}
        self._idx_problems: dict[str, str] = {}
        self._warned: set[str] = set()
        self._stale: set[str] = set()
        # never re-post a reading this old: a silent device must not look alive in Domoticz
        self._stale_after = max(2 * config.interval, _STALE_MIN)
        self.ticks = 0
        self.ticks_skipped = 0
        self.rounds = 0

    # -- building requests ------------------------------------------------------------------

    def _posts(self, device: str) -> list[Post]:
        reading = self._latest.get(device)
        if reading is None:
            return []
        age = time.monotonic() - reading.monotonic
        if age > self._stale_after:
            if device not in self._stale:
                self._stale.add(device)
                _LOGGER.warning(
                    "domoticz: %s: no new reading for %.0f s; its old values are not re-posted "
                    "(Domoticz will show the sensors as timed out)",
                    device,
                    age,
                )
            return []
        if device in self._stale:
            self._stale.discard(device)
            _LOGGER.info("domoticz: %s: readings again; posting", device)
        if self.config.mode == "udevices":
            data = legacy_json(reading)
            if data == "{}":
                return []
            query = f"type=command&param=udevices&script={enc(self.config.script)}"
            if len(self._devices) > 1:
                query += f"&device={enc(device)}"
            query += f"&data={enc(data, safe='')}"
            return [
                Post(f"udevices {device}", query, data, None, f"{device} → {self.config.script}")
            ]
        posts = []
        for m in self._mappings:
            if m.device != device:
                continue
            what = f"{device}.{m.label} → idx {m.idx}"
            value = reading.values.get(m.key)
            if value is None:
                self._warn_once(
                    f"missing {m.idx}",
                    "domoticz: %s: the device sends no field %r; idx %d is not updated",
                    what,
                    m.label,
                    m.idx,
                )
                continue
            power = reading.values.get(m.power_key) if m.power_key else None
            formatted = domoticz_value(m.kind, value, m.key, power, self.config.infinite_value)
            if formatted is None:
                if value is not UNAVAILABLE:
                    self._warn_once(
                        f"kind {m.idx}",
                        "domoticz: %s: value %r cannot be posted as kind %r",
                        what,
                        value,
                        m.kind,
                    )
                continue
            nvalue, svalue = formatted
            query = f"type=command&param=udevice&idx={m.idx}&nvalue={nvalue}&svalue={enc(svalue)}"
            posts.append(Post(f"idx {m.idx}", query, f"{nvalue}|{svalue}", m.idx, what))
        return posts

    def _warn_once(self, key: str, message: str, *args: object) -> None:
        if key not in self._warned:
            self._warned.add(key)
            _LOGGER.warning(message, *args)

    # -- a round ----------------------------------------------------------------------------------

    async def _round(self, client: Client, devices: Iterable[str], state: OutputState) -> None:
        """Post the given devices' current values; raises the :class:`DeliveryError` of a
        Domoticz that failed as a whole (a rejected post does not end the round)."""
        loop = asyncio.get_running_loop()
        self.rounds += 1
        posted = 0
        rejected: list[str] = []  # this round's rejected posts, their messages
        for device in devices:
            reading = self._latest.get(device)
            if reading is not None:
                self._signatures[device] = self._signature(reading)
            for post in self._posts(device):
                now = loop.time()
                sent = self._sent.get(post.key)
                heartbeat = self.config.heartbeat
                if (
                    heartbeat > 0
                    and sent is not None
                    and sent.payload == post.payload
                    and now - sent.at < heartbeat
                ):
                    state.count("unchanged_skipped")
                    continue
                try:
                    await client.send(post)
                except RejectedPostError as rejection:
                    state.count("errors")
                    if post.key not in self._idx_problems:
                        _LOGGER.warning("domoticz: %s", rejection.reason)
                    self._idx_problems[post.key] = rejection.reason
                    rejected.append(rejection.reason)
                    continue
                except DeliveryError:
                    state.count("errors")
                    raise
                posted += 1
                state.count("posts")
                self._sent[post.key] = _Sent(post.payload, loop.time())
                if self._idx_problems.pop(post.key, None) is not None:
                    _LOGGER.info("domoticz: %s accepted again", post.what)
        self._report(state, posted, rejected)

    def _report(self, state: OutputState, posted: int, rejected: Sequence[str]) -> None:
        """Domoticz answered the whole round: report what it accepted and what it rejected.

        A rejected post is a failed delivery (counted in ``failures``). Whether it makes the
        output *failed* (and so /health 503 by default) is ``fail_when_rejected``: ``all`` (a
        round in which Domoticz accepted nothing that was due: nothing reaches Domoticz),
        ``any``, or ``never`` (degraded only).
        """
        if posted:
            state.ok()  # counts the success and its time, even when degraded below
        if rejected:
            rule = self.config.fail_when_rejected
            reason = sorted(rejected)[0]
            more = f" (+{len(rejected) - 1} more)" if len(rejected) > 1 else ""
            if rule == "any" or (rule == "all" and not posted):
                prefix = "" if posted else "Domoticz accepted none of the posts: "
                state.failed(prefix + reason + more)
                state.failures += len(rejected) - 1  # failed() counted one
                return
            state.failures += len(rejected)
        if self._idx_problems:
            problems = sorted(self._idx_problems.values())
            more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
            state.degraded(problems[0] + more)

    @staticmethod
    def _signature(reading: Reading) -> tuple[Value | None, ...]:
        return tuple(reading.values.get(name) for name in TRIGGERS)

    def _urgent(self) -> list[str]:
        """Devices to post now: first reading, or a trigger field changed (post_on_change)."""
        out = []
        for device, reading in self._latest.items():
            before = self._signatures.get(device)
            if before is None or (
                self.config.post_on_change and before != self._signature(reading)
            ):
                out.append(device)
        return out

    # -- the loop ---------------------------------------------------------------------------------

    async def _password(self) -> str:
        if self.config.password_file:
            text = await asyncio.to_thread(
                Path(self.config.password_file).read_text, encoding="utf-8"
            )
            lines = text.splitlines()
            return lines[0].strip() if lines else ""
        return self.config.password or self._url_password

    async def _ssl(self) -> ssl.SSLContext | bool:
        if not self._https:
            return True
        if not self.config.verify_tls:
            return False
        context = await asyncio.to_thread(ssl.create_default_context)
        if self.config.ca_file:
            await asyncio.to_thread(context.load_verify_locations, self.config.ca_file)
        return context

    async def run(self, readings: Subscription, state: OutputState) -> None:
        """Post on the schedule until cancelled (see the module docstring)."""
        try:
            password = await self._password()
            ssl_setting = await self._ssl()
        except (OSError, ssl.SSLError) as exc:
            message = f"cannot read password_file/ca_file: {exc.__class__.__name__}"
            _LOGGER.error("domoticz: %s", message)  # noqa: TRY400 - no traceback needed
            state.failed(message)
            raise
        connector = aiohttp.TCPConnector(force_close=True, limit=1, ssl=ssl_setting)
        timeout = aiohttp.ClientTimeout(total=self.config.timeout)
        async with aiohttp.ClientSession(
            connector=connector,
            timeout=timeout,
            headers={"User-Agent": USER_AGENT, **basic_auth(self._username, password)},
        ) as session:
            client = Client(
                session,
                self._endpoint,
                self.shown_url,
                self._username,
                self._https,
                self.config.timeout,
                self.config.script,
            )
            if self.config.probe:
                await client.probe(self._mappings, each_idx=self.config.mode == "udevice")
            with contextlib.suppress(SubscriptionClosed):  # the subscription was closed
                await self._loop(client, readings, state)

    async def _loop(self, client: Client, readings: Subscription, state: OutputState) -> None:
        """Rounds on the drift-free schedule (the first at once), change posts in between; a
        Domoticz that fails as a whole is retried by the shared :class:`Delivery`."""
        loop = asyncio.get_running_loop()
        interval = max(self.config.interval, 0.001)
        schedule = Schedule(interval, first=0)
        schedule.start()
        backoff = Backoff(min(_BACKOFF_FIRST, interval), self.config.backoff_max)
        delivery = Delivery("domoticz", state, backoff, logger=_LOGGER)
        change_ok_at = schedule.origin
        while True:
            retry_at = delivery.retry_at
            due = retry_at if retry_at is not None else schedule.due
            wait = due - loop.time()
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        while True:  # woken by readings only to see urgent changes
                            await readings.wait()
                            self._latest.update(readings.drain_latest())
                            if retry_at is None and self._urgent():
                                await asyncio.sleep(max(0.0, change_ok_at - loop.time()))
                                break
            self._latest.update(readings.drain_latest())
            scheduled = loop.time() >= due
            if scheduled:
                devices = list(self._latest)
            else:
                devices = self._urgent()
                state.count("change_posts")
            try:
                await self._round(client, devices, state)
            except DeliveryError as error:
                delivery.failed(error)
                change_ok_at = loop.time() + min(_CHANGE_GAP, interval)
                continue
            delivery.succeeded(report=False)  # _round reported what Domoticz accepted
            change_ok_at = loop.time() + min(_CHANGE_GAP, interval)
            if scheduled:
                self.ticks += 1
                skipped = schedule.done()
                if skipped:
                    self.ticks_skipped += skipped
                    state.count("ticks_skipped", skipped)


def domoticz_output(config: Config) -> DomoticzOutput | None:
    """The registry factory: the Domoticz output, or None when ``[domoticz] enabled = false``."""
    section = config.section("domoticz", DomoticzConfig)
    if not section.enabled:
        return None
    return DomoticzOutput(section, [device.name for device in config.device])
