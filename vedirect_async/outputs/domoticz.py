"""Domoticz output: the newest values, on a fixed schedule, one request at a time.

Decisions (the README's "Domoticz" part says the same for users):

- **Modes.** ``udevice`` (default): each ``[[domoticz.devices]]`` row maps one reading field
  of one device to a Domoticz idx and a kind; each becomes
  ``json.htm?type=command&param=udevice&idx=N&nvalue=..&svalue=..``, answered per idx.
  ``udevices`` (legacy): per device, the old script's request
  ``json.htm?type=command&param=udevices&script=<script>&data=<json>`` where ``<json>`` is the
  device's raw label/value pairs exactly as the old script built them (a JSON object of strings
  in wire order, ``Checksum`` left out, no spaces), so an existing ``ap_bmv.lua`` keeps working.
- **Schedule.** Ticks at ``start + k * interval`` on the monotonic clock; a tick missed because
  a request was slow is skipped (counted as ``ticks_skipped``), never caught up. The
  subscription keeps only the newest reading per device, so what is posted is always the
  newest value and lag cannot grow. A device's first reading, and a change of its alarm, relay,
  charger state, error or off reason (``post_on_change``), are posted at once (at most once a
  second). Unchanged values are not re-posted until ``heartbeat`` seconds passed (Domoticz
  marks a sensor timed out after an hour without update; re-posting also re-runs its scripts).
- **Transport.** One aiohttp session made in :meth:`run`, one request at a time, a total timeout
  per request, no connection reuse (Domoticz closes after each reply without saying so; a pooled
  dead socket would fail the next post). A dropped connection is retried once (``udevice`` is
  idempotent); any other failure ends the round and the output waits 1, 2, 4 ... up to
  ``backoff_max`` seconds, then posts the *current* values once: no backlog, no burst.
- **Failures** are classified (refused, timeout, dropped/empty reply, TLS, 401, 403, 404, other
  HTTP status, non-JSON, ``"status":"ERR"`` for an idx or for the Lua script), logged once per
  cause (again at most hourly while it lasts, and once on recovery) and shown as the output's
  health reason. A rejected post (``ERR``/403 for an idx, ``ERR`` for the Lua script) is a
  failed delivery, counted; the other idx are still posted; a round in which Domoticz accepted
  nothing makes the output failed, a partly rejected one degraded (``fail_when_rejected``).
  The password is never logged: it is sent as a Basic-auth header, never in the URL.
- **Formatting** is ours, never the locale's: ``.`` decimals, voltage and current with 3
  decimals, percentage 1, custom 3, temperature 2, power 1; kWh devices get ``W;Wh``. Every
  value is percent-encoded (``+`` as ``%2B``: Domoticz turns a raw ``+`` into a space).
  An infinite value (TTG while not discharging) is ``infinite_value`` on a numeric device and
  ``infinite`` on a text one, never left to read "0 min" (empty) and never warned about.
  An unavailable value (``---``) or a field the device does not send is not posted, and
  neither is a device's last reading once it is older than ``max(2 * interval, 60 s)``: a
  silent device must not look alive in Domoticz (the old script's "stuck values").
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import ssl
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote

import aiohttp
from yarl import URL

from .. import __version__
from ..config import (
    Config,
    ConfigError,
    DomoticzConfig,
    DomoticzDevice,
    load_config,
)
from ..errors import SubscriptionClosed
from ..fields import lookup, unit_of
from ..hub import OutputState, Subscription
from ..present import domoticz_value as format_value
from ..reading import UNAVAILABLE, Reading, Value
from .base import Output

__all__ = [
    "DomoticzOutput",
    "cli_domoticz",
    "domoticz_output",
    "format_value",
    "legacy_json",
]

_LOGGER = logging.getLogger(__name__)

_USER_AGENT = f"vedirect-async/{__version__}"
_BACKOFF_FIRST = 1.0  # first retry delay (or the interval, if shorter), then doubled
_LOG_REPEAT = 3600.0  # a lasting problem is logged again at most this often
_STALE_MIN = 60.0  # a device's last reading older than max(2 x interval, this) is not posted
_CHANGE_GAP = 1.0  # at most one change-triggered post per this many seconds
_MAX_BODY = 64 * 1024  # a Domoticz answer is tiny; more is not Domoticz
#: catalogue fields whose change is posted at once (post_on_change)
_TRIGGERS = ("alarm", "relay", "alarm_reason", "charger_state", "error", "off_reason", "load")
#: kind -> (Type, SubType) Domoticz reports for the matching device ("" = any subtype)
_TYPES: Mapping[str, tuple[str, str]] = {
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


def _basic_auth(username: str, password: str) -> dict[str, str]:
    """The pre-emptive Basic-auth header (Domoticz never sends WWW-Authenticate); {} for none.

    aiohttp's own encoder (its ``BasicAuth`` class is deprecated since 3.14); UTF-8, as
    Domoticz compares the decoded bytes.
    """
    if not username:
        return {}
    return {"Authorization": aiohttp.encode_basic_auth(username, password, encoding="utf-8")}


def _enc(text: str, safe: str = ";") -> str:
    return quote(text, safe=safe)


def auth_hint(username: str, *, https: bool) -> str:
    """What a 401 from Domoticz means, for the log, /health and ``domoticz setup``.

    Domoticz's 401 never says why, so every cause that fits the request is listed.
    """
    if not username:
        return (
            "401 Unauthorized: no username configured and this host is not in Domoticz's "
            "Trusted Networks (Setup > Settings > Security); add it there, or set "
            "username/password"
        )
    if https:
        return f"401 Unauthorized: Domoticz rejected user {username!r}: wrong user or password"
    return (
        f"401 Unauthorized for user {username!r}, one of: (1) wrong user or password; "
        "(2) Domoticz 2023.1+ refuses Basic auth over plain HTTP unless 'Allow Basic-Auth "
        "authentication over plain HTTP' is ticked (Setup > Settings > Security), and checks "
        "credentials even from a Trusted Network: tick it, use https://, or remove "
        "username/password and rely on Trusted Networks"
    )


# -- outcomes -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Post:
    """One request of a round."""

    key: str  # what it updates ("idx 12", "udevices bmv"), for change tracking
    query: str  # encoded, after "json.htm?"
    payload: str  # the value part, for "unchanged" detection
    idx: int | None
    what: str  # for messages: "bmv.V → idx 12"


@dataclass(frozen=True, slots=True)
class _Problem:
    """A failed request: ``cause`` is the log/health key, ``local`` = only this idx/script."""

    cause: str
    message: str
    local: bool = False
    retryable: bool = False  # a dropped connection: one immediate retry


@dataclass(slots=True)
class _Mapping:
    """A resolved ``[[domoticz.devices]]`` row."""

    idx: int
    device: str
    kind: str
    label: str  # as configured, for messages
    key: str  # key in Reading.values
    power_key: str


@dataclass(slots=True)
class _Sent:
    payload: str
    at: float


@dataclass(slots=True)
class _Episode:
    """The current global problem, for one log line per cause."""

    cause: str = ""
    since: float = 0.0
    logged_at: float = 0.0
    failures: int = 0


def _value_key(name: str) -> str:
    found = lookup(name)
    return found.name if found is not None else name


def _mask_url(url: URL) -> str:
    return str(url.with_user(None).with_password(None).with_query(None))


class DomoticzOutput(Output):
    """Posts the newest readings to Domoticz on a fixed schedule (see the module docstring)."""

    name: ClassVar[str] = "domoticz"
    latest_only: ClassVar[bool] = True

    def __init__(self, config: DomoticzConfig, devices: Sequence[str]) -> None:
        self.config = config
        base = URL(config.url)
        if base.scheme not in ("http", "https") or not base.host:
            raise ConfigError(f"domoticz.url = {_mask_url(base)!r}: expected http(s)://host:port")
        self._username = config.username or (base.user or "")
        if ":" in self._username:
            raise ConfigError("domoticz.username: a ':' cannot be sent in Basic auth")
        self._url_password = base.password or ""
        base = base.with_user(None).with_password(None).with_query(None).with_fragment(None)
        path = base.path.rstrip("/")
        self._endpoint = str(
            base.with_path(path if path.endswith("/json.htm") else path + "/json.htm")
        )
        self.shown_url = _mask_url(base)
        self._https = base.scheme == "https"
        self._devices = list(devices)
        self._mappings = self._resolve(config.devices, self._devices)
        self._latest: dict[str, Reading] = {}
        self._signatures: dict[str, tuple[Value | None, ...]] = {}
        self._sent: dict[str, _Sent] = {}
        self._idx_problems: dict[str, str] = {}
        self._episode = _Episode()
        self._warned: set[str] = set()
        self._stale: set[str] = set()
        # never re-post a reading this old: a silent device must not look alive in Domoticz
        self._stale_after = max(2 * config.interval, _STALE_MIN)
        self._session: aiohttp.ClientSession | None = None
        self.ticks = 0
        self.ticks_skipped = 0
        self.rounds = 0

    @staticmethod
    def _resolve(rows: Sequence[DomoticzDevice], devices: Sequence[str]) -> list[_Mapping]:
        out: list[_Mapping] = []
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
                raise ConfigError(
                    f"{where}.device = {device!r}: expected one of {', '.join(devices)}"
                )
            if not row.field:
                raise ConfigError(f"{where}.field is empty: expected a field name or label")
            if row.idx < 1:
                raise ConfigError(f"{where}.idx = {row.idx}: expected the Domoticz idx (>= 1)")
            out.append(
                _Mapping(
                    row.idx,
                    device,
                    row.kind,
                    row.field,
                    _value_key(row.field),
                    _value_key(row.power_field) if row.power_field else "",
                )
            )
        return out

    # -- building requests ----------------------------------------------------------------------

    def _posts(self, device: str) -> list[_Post]:
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
            query = f"type=command&param=udevices&script={_enc(self.config.script)}"
            if len(self._devices) > 1:
                query += f"&device={_enc(device)}"
            query += f"&data={_enc(data, safe='')}"
            return [
                _Post(f"udevices {device}", query, data, None, f"{device} → {self.config.script}")
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
            formatted = format_value(m.kind, value, m.key, power, self.config.infinite_value)
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
            query = f"type=command&param=udevice&idx={m.idx}&nvalue={nvalue}&svalue={_enc(svalue)}"
            posts.append(_Post(f"idx {m.idx}", query, f"{nvalue}|{svalue}", m.idx, what))
        return posts

    def _warn_once(self, key: str, message: str, *args: object) -> None:
        if key not in self._warned:
            self._warned.add(key)
            _LOGGER.warning(message, *args)

    # -- one request ----------------------------------------------------------------------------

    def _auth_hint(self) -> str:
        return auth_hint(self._username, https=self._https)

    async def _request(self, session: aiohttp.ClientSession, query: str) -> tuple[int, bytes]:
        url = URL(f"{self._endpoint}?{query}", encoded=True)
        async with session.get(url, allow_redirects=False) as response:
            body = bytearray()
            while len(body) <= _MAX_BODY and (chunk := await response.content.read(8192)):
                body += chunk
            return response.status, bytes(body)

    def _judge(self, post: _Post, status: int, body: bytes) -> _Problem | None:
        if status == 401:
            return _Problem("http401", self._auth_hint())
        if status == 403:
            if body.lstrip().startswith(b"{"):  # from the handler: this idx or this user
                return _Problem(
                    f"http403 {post.key}",
                    f"403 Forbidden for {post.what}: user {self._username or '(trusted)'} may not "
                    "update it (a Viewer user, or the device is not shared with the user)",
                    local=True,
                )
            return _Problem("http403", "403 Forbidden from Domoticz (IP banned or blocked?)")
        if status == 404:
            return _Problem(
                "http404",
                f"404 Not Found at {self._endpoint}: not Domoticz's JSON API at this URL "
                "(wrong port, or a reverse-proxy path missing from url?); Domoticz 2025.1 also "
                "answers 404 to the old type=devices style API, which this service never uses",
            )
        if status != 200:
            return _Problem(f"http{status}", f"HTTP {status} from Domoticz")
        try:
            answer = json.loads(body)
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            return _Problem(
                "nonjson",
                f"the answer is not Domoticz JSON ({body[:40]!r}): another web server or a proxy "
                f"page at {self.shown_url}?",
            )
        result = answer.get("status")
        if result == "OK":
            return None
        if result == "ERR" and post.idx is not None:
            return _Problem(
                f"err {post.key}",
                f"Domoticz answered ERR for {post.what}: no device with idx {post.idx} "
                "(deleted, or the idx in [[domoticz.devices]] is wrong)",
                local=True,
            )
        if result == "ERR":
            return _Problem(
                f"err {post.key}",
                f"Domoticz answered ERR to udevices for {post.what}: the Lua parser "
                f"scripts/lua_parsers/{self.config.script} is missing or has a syntax error",
                local=True,
            )
        return _Problem(
            "status",
            f"Domoticz answered status {result!r} (an old Domoticz without this command?)",
        )

    async def _send(self, session: aiohttp.ClientSession, post: _Post) -> _Problem | None:
        """One request, plus one retry after a dropped connection."""
        problem: _Problem | None = None
        for _attempt in range(2):
            problem = await self._attempt(session, post)
            if problem is None or not problem.retryable:
                return problem
        return problem

    async def _attempt(self, session: aiohttp.ClientSession, post: _Post) -> _Problem | None:
        where = self.shown_url
        try:
            status, body = await self._request(session, post.query)
        except TimeoutError:
            return _Problem(
                "timeout",
                f"no answer from {where} within {self.config.timeout:g} s (Domoticz busy, e.g. "
                "its hourly backup, or hung)",
            )
        except aiohttp.ClientConnectorCertificateError as exc:
            return _Problem(
                "tls",
                f"TLS certificate of {where} not trusted ({exc.certificate_error}); for a "
                "self-signed certificate set ca_file (or verify_tls = false)",
            )
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, ConnectionRefusedError):
                return _Problem("refused", f"connection refused by {where} (Domoticz not running?)")
            return _Problem("connect", f"cannot connect to {where}: {exc.os_error}")
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError) as exc:
            return _Problem(
                "dropped",
                f"{where} closed the connection without a reply ({type(exc).__name__}; "
                "Domoticz restarting or crashed?)",
                retryable=True,
            )
        except aiohttp.ClientOSError as exc:
            return _Problem("dropped", f"connection to {where} lost: {exc}", retryable=True)
        except aiohttp.ClientError as exc:
            return _Problem("client", f"request to {where} failed: {type(exc).__name__}")
        return self._judge(post, status, body)

    # -- a round ----------------------------------------------------------------------------------

    async def _round(
        self, session: aiohttp.ClientSession, devices: Iterable[str], state: OutputState
    ) -> bool:
        """Post the given devices' current values; False if Domoticz failed as a whole."""
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
                problem = await self._send(session, post)
                if problem is None:
                    posted += 1
                    state.count("posts")
                    self._sent[post.key] = _Sent(post.payload, loop.time())
                    if self._idx_problems.pop(post.key, None) is not None:
                        _LOGGER.info("domoticz: %s accepted again", post.what)
                    continue
                state.count("errors")
                if problem.local:
                    if post.key not in self._idx_problems:
                        _LOGGER.warning("domoticz: %s", problem.message)
                    self._idx_problems[post.key] = problem.message
                    rejected.append(problem.message)
                    continue
                self._failed(problem, state, loop.time())
                return False
        self._succeeded(state, posted, rejected, loop.time())
        return True

    def _failed(self, problem: _Problem, state: OutputState, now: float) -> None:
        episode = self._episode
        episode.failures += 1
        if episode.cause != problem.cause or now - episode.logged_at >= _LOG_REPEAT:
            if not episode.cause:
                episode.since = now
            episode.cause = problem.cause
            episode.logged_at = now
            _LOGGER.warning("domoticz: %s; retrying with backoff", problem.message)
        state.failed(problem.message)

    def _succeeded(
        self, state: OutputState, posted: int, rejected: Sequence[str], now: float
    ) -> None:
        """Domoticz answered the whole round: report what it accepted and what it rejected.

        A rejected post is a failed delivery (counted in ``failures``). Whether it makes the
        output *failed* (and so /health 503 by default) is ``fail_when_rejected``: ``all`` (a
        round in which Domoticz accepted nothing that was due: nothing reaches Domoticz),
        ``any``, or ``never`` (degraded only).
        """
        episode = self._episode
        if episode.cause:
            _LOGGER.info(
                "domoticz: %s answers again after %d failed attempts in %.0f s; "
                "posted the current values",
                self.shown_url,
                episode.failures,
                now - episode.since,
            )
            self._episode = _Episode()
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
        return tuple(reading.values.get(name) for name in _TRIGGERS)

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

    # -- startup probe ----------------------------------------------------------------------------

    async def _probe(self, session: aiohttp.ClientSession) -> None:
        """Log Domoticz's version and warn about idx that do not exist (never fails)."""
        try:
            status, body = await self._request(session, "type=command&param=getversion")
            answer = json.loads(body) if status == 200 else {}
            if not isinstance(answer, dict) or answer.get("status") != "OK":
                return
            version = answer.get("version")
            if version is None:
                _LOGGER.info(
                    "domoticz: %s answers, but not to us as a known user (see the 401 hints)",
                    self.shown_url,
                )
                return
            _LOGGER.info("domoticz: %s is Domoticz %s", self.shown_url, version)
            status, body = await self._request(session, "type=command&param=getauth")
            auth = json.loads(body) if status == 200 else {}
            if isinstance(auth, dict) and auth.get("rights") == 0:
                _LOGGER.warning(
                    "domoticz: user %r is a Viewer in Domoticz: every update will be refused "
                    "(403); give the user 'User' rights",
                    auth.get("user"),
                )
            if self.config.mode != "udevice":
                return
            for m in self._mappings:
                status, body = await self._request(
                    session, f"type=command&param=getdevices&rid={m.idx}"
                )
                answer = json.loads(body) if status == 200 else {}
                if isinstance(answer, dict) and answer.get("status") == "OK":
                    self._check_device(m, answer.get("result"))
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            _LOGGER.debug("domoticz: start-up probe failed: %r", exc)

    @staticmethod
    def _check_device(m: _Mapping, result: object) -> None:
        """Warn when a configured idx does not exist or is not the kind of device configured."""
        if not isinstance(result, list) or not result or not isinstance(result[0], dict):
            _LOGGER.warning(
                "domoticz: idx %d (%s.%s) does not exist in Domoticz", m.idx, m.device, m.label
            )
            return
        kind = (result[0].get("Type"), result[0].get("SubType"))
        expected = _TYPES[m.kind]
        if kind[0] != expected[0] or (expected[1] and kind[1] != expected[1]):
            _LOGGER.warning(
                "domoticz: idx %d (%s.%s) is a %s/%s device, but kind = %r expects %s/%s",
                m.idx,
                m.device,
                m.label,
                kind[0],
                kind[1],
                m.kind,
                expected[0],
                expected[1] or "*",
            )

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
            headers={"User-Agent": _USER_AGENT, **_basic_auth(self._username, password)},
        ) as session:
            if self.config.probe:
                await self._probe(session)
            with contextlib.suppress(SubscriptionClosed):  # the subscription was closed
                await self._loop(session, readings, state)

    async def _loop(
        self, session: aiohttp.ClientSession, readings: Subscription, state: OutputState
    ) -> None:
        loop = asyncio.get_running_loop()
        interval = max(self.config.interval, 0.001)
        start = loop.time()
        tick = 0  # number of the next tick
        retry_at: float | None = None  # set while backing off
        first_backoff = min(_BACKOFF_FIRST, interval)
        backoff = first_backoff
        change_ok_at = start
        while True:
            due = retry_at if retry_at is not None else start + tick * interval
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
            now = loop.time()
            scheduled = now >= due
            if scheduled:
                devices = list(self._latest)
            else:
                devices = self._urgent()
                state.count("change_posts")
            ok = await self._round(session, devices, state)
            now = loop.time()
            change_ok_at = now + min(_CHANGE_GAP, interval)
            if not ok:
                retry_at = now + backoff
                backoff = min(backoff * 2, self.config.backoff_max)
                continue
            retry_at = None
            backoff = first_backoff
            if scheduled:
                self.ticks += 1
                following = math.floor((now - start) / interval) + 1
                skipped = following - tick - 1
                if skipped > 0:
                    self.ticks_skipped += skipped
                    state.count("ticks_skipped", skipped)
                tick = max(tick + 1, following)


def domoticz_output(config: Config) -> DomoticzOutput | None:
    """The registry factory: the Domoticz output, or None when ``[domoticz] enabled = false``."""
    if not config.domoticz.enabled:
        return None
    return DomoticzOutput(config.domoticz, [device.name for device in config.device])


# -- `python -m vedirect_async domoticz setup` ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Kind:
    """How to create a Domoticz device of one of our kinds (domoticz.md section 1.6)."""

    devicetype: int
    subtype: int


_CREATE: Mapping[str, _Kind] = {
    "voltage": _Kind(243, 8),
    "current": _Kind(243, 23),
    "percentage": _Kind(243, 6),
    "custom": _Kind(243, 31),
    "kwh": _Kind(243, 29),
    "text": _Kind(243, 19),
    "alert": _Kind(243, 22),
    "usage": _Kind(248, 1),
    "temperature": _Kind(80, 5),
}


@dataclass(frozen=True, slots=True)
class _SetupField:
    label: str  # VE.Direct label, used as `field` in the printed config
    kind: str
    name: str  # Domoticz device name (the device name is put in front)
    power: str = ""


_BATTERY = (
    _SetupField("V", "voltage", "battery voltage"),
    _SetupField("I", "current", "battery current"),
    _SetupField("P", "usage", "battery power"),
    _SetupField("SOC", "percentage", "state of charge"),
    _SetupField("CE", "custom", "consumed Ah"),
    _SetupField("TTG", "custom", "time to go"),
    _SetupField("H17", "kwh", "discharged energy"),
    _SetupField("H18", "kwh", "charged energy"),
    _SetupField("AR", "alert", "alarm"),
)
SETUP_FIELDS: Mapping[str, tuple[_SetupField, ...]] = {
    "bmv": _BATTERY,
    "smartshunt": _BATTERY,
    "mppt": (
        _SetupField("V", "voltage", "battery voltage"),
        _SetupField("I", "current", "battery current"),
        _SetupField("VPV", "voltage", "panel voltage"),
        _SetupField("PPV", "usage", "panel power"),
        _SetupField("H19", "kwh", "yield total", power="PPV"),
        _SetupField("H20", "custom", "yield today"),
        _SetupField("CS", "text", "charger state"),
        _SetupField("ERR", "alert", "charger error"),
    ),
}


def _setup_kind(port: str, given: str | None) -> str:
    if given:
        return given
    for kind in SETUP_FIELDS:
        if port.startswith("simulator:") and kind in port:
            return kind
    return "bmv"


def _create_query(hardware: str, device: str, item: _SetupField) -> str:
    kind = _CREATE[item.kind]
    query = (
        f"type=command&param=createdevice&idx={hardware}"
        f"&sensorname={_enc(_device_name(device, item), safe='')}"
        f"&devicetype={kind.devicetype}&devicesubtype={kind.subtype}"
    )
    if item.kind == "custom":  # Domoticz refuses a Custom sensor without its axis label
        query += f"&sensoroptions=1;{_enc(unit_of(item.label) or '-', safe='')}"
    return query


def _toml_string(text: str) -> str:
    return json.dumps(text)  # a JSON string is a valid TOML basic string


def _setup_config(url: str, device: str, created: Sequence[tuple[int, _SetupField]]) -> str:
    lines = [
        f"# [domoticz] for device {device!r}, made by `python -m vedirect_async domoticz setup`",
        "[domoticz]",
        "enabled = true",
        f"url = {_toml_string(url)}",
        'mode = "udevice"',
    ]
    for idx, item in created:
        lines += [
            "",
            "[[domoticz.devices]]",
            f"idx = {idx}",
            f"device = {_toml_string(device)}",
            f"field = {_toml_string(item.label)}",
            f"kind = {_toml_string(item.kind)}",
        ]
        if item.power:
            lines.append(f"power_field = {_toml_string(item.power)}")
    return "\n".join(lines) + "\n"


class _SetupError(Exception):
    pass


def _setup_auth_hint(username: str, *, https: bool) -> str:
    if not username:
        return (
            "401 Unauthorized: give --username (an admin) and the password in the environment "
            "variable, or add this host to Domoticz's Trusted Networks (Setup > Settings > "
            "Security)"
        )
    return auth_hint(username, https=https)


@dataclass(slots=True)
class _SetupClient:
    """``domoticz setup``'s requests: one at a time, each answer checked."""

    session: aiohttp.ClientSession
    endpoint: str
    username: str
    https: bool

    async def call(self, query: str) -> dict[str, Any]:
        """One request; Domoticz's JSON answer (``status`` OK) or :class:`_SetupError`."""
        url = URL(f"{self.endpoint}?{query}", encoded=True)
        try:
            async with self.session.get(url, allow_redirects=False) as response:
                status, body = response.status, await response.read()
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise _SetupError(f"request failed: {exc.__class__.__name__}: {exc}") from None
        if status == 401:
            raise _SetupError(_setup_auth_hint(self.username, https=self.https))
        if status == 403:
            raise _SetupError("403 Forbidden: creating hardware and devices needs an admin user")
        try:
            answer = json.loads(body)
        except ValueError:
            answer = None
        if status != 200 or not isinstance(answer, dict) or answer.get("status") != "OK":
            raise _SetupError(f"Domoticz answered HTTP {status}: {body[:200]!r}")
        return answer

    async def create(self, query: str) -> int:
        """A creating request; the idx Domoticz returns."""
        answer = await self.call(query)
        try:
            return int(answer["idx"])
        except (KeyError, TypeError, ValueError):
            raise _SetupError(f"no idx in Domoticz's answer: {answer!r:.200}") from None

    async def rows(self, query: str) -> list[dict[str, Any]]:
        """The ``result`` list of a listing request (absent when empty)."""
        result = (await self.call(query)).get("result", [])
        if not isinstance(result, list):
            raise _SetupError(f"unexpected listing from Domoticz: {result!r:.200}")
        return [row for row in result if isinstance(row, dict)]


def _device_name(device: str, item: _SetupField) -> str:
    return f"{device} {item.name}"


async def _find_hardware(client: _SetupClient, name: str) -> int | None:
    """The idx of an existing Dummy hardware called ``name`` (the lowest if several)."""
    found = [
        int(row["idx"])
        for row in await client.rows("type=command&param=gethardware")
        if row.get("Name") == name
        and str(row.get("Type")) == "15"
        and str(row.get("idx")).isdigit()
    ]
    return min(found) if found else None


async def _existing_devices(client: _SetupClient, hardware: int) -> dict[str, dict[str, Any]]:
    """Devices on ``hardware`` by name (the lowest idx for a name given twice)."""
    out: dict[str, dict[str, Any]] = {}
    rows = await client.rows("type=command&param=getdevices&filter=all&used=all")
    for row in sorted(rows, key=lambda r: int(r["idx"]) if str(r.get("idx")).isdigit() else 0):
        if str(row.get("HardwareID")) == str(hardware) and str(row.get("idx")).isdigit():
            out.setdefault(str(row.get("Name")), row)
    return out


def _matches(row: Mapping[str, Any], kind: str) -> bool:
    expected = _TYPES[kind]
    return row.get("Type") == expected[0] and (not expected[1] or row.get("SubType") == expected[1])


async def _setup(
    *,
    url: str,
    endpoint: str,
    auth: Mapping[str, str],
    username: str,
    hardware_name: str,
    device: str,
    fields: Sequence[_SetupField],
    force: bool = False,
) -> str:
    """Create (or, unless ``force``, find and reuse by name) the hardware and its devices."""
    timeout = aiohttp.ClientTimeout(total=10)
    connector = aiohttp.TCPConnector(force_close=True, limit=1)
    done: list[tuple[int, _SetupField]] = []
    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, headers={"User-Agent": _USER_AGENT, **auth}
    ) as session:
        client = _SetupClient(session, endpoint, username, endpoint.startswith("https:"))
        hardware = None if force else await _find_hardware(client, hardware_name)
        existing: dict[str, dict[str, Any]] = {}
        if hardware is not None:
            existing = await _existing_devices(client, hardware)
            sys.stdout.write(f"# reusing Dummy hardware {hardware_name!r}: idx {hardware}\n")
            wrong = [
                f"{name!r} (idx {row.get('idx')}) is {row.get('Type')}/{row.get('SubType')}, "
                f"expected {item.kind}"
                for item in fields
                if (row := existing.get(name := _device_name(device, item))) is not None
                and not _matches(row, item.kind)
            ]
            if wrong:
                raise _SetupError(
                    "existing devices of another type: "
                    + "; ".join(wrong)
                    + ". Rename or delete them in Domoticz, or give --force to create a new "
                    "hardware and new devices next to them"
                )
        else:
            query = (
                f"type=command&param=addhardware&htype=15&port=1"
                f"&name={_enc(hardware_name, safe='')}&enabled=true"
            )
            hardware = await client.create(query)
            sys.stdout.write(f"# created Dummy hardware {hardware_name!r}: idx {hardware}\n")
        for item in fields:
            row = existing.get(_device_name(device, item))
            if row is not None:
                idx = int(row["idx"])
                sys.stdout.write(f"# reusing {_device_name(device, item)!r}: idx {idx}\n")
                done.append((idx, item))
                continue
            try:
                idx = await client.create(_create_query(str(hardware), device, item))
            except _SetupError as exc:
                if done:  # say what exists already
                    sys.stdout.write(_setup_config(url, device, done))
                raise _SetupError(f"creating {item.label} ({item.kind}): {exc}") from None
            done.append((idx, item))
    return _setup_config(url, device, done)


def cli_domoticz(args: Any) -> int:
    """``domoticz setup``: create Dummy hardware + devices, print the ``[domoticz]`` config."""
    path = args.config  # the command line chose the file
    try:
        config = load_config(path)
    except ConfigError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    names = [d.name for d in config.device]
    name = args.device or names[0]
    if name not in names:
        sys.stderr.write(f"error: no [[device]] named {name!r} (have: {', '.join(names)})\n")
        return 2
    port = next(d.port for d in config.device if d.name == name)
    kind = _setup_kind(port, args.kind)
    fields = SETUP_FIELDS.get(kind)
    if fields is None:
        sys.stderr.write(f"error: --kind {kind!r}: expected one of {', '.join(SETUP_FIELDS)}\n")
        return 2
    base = URL(args.url)
    if base.scheme not in ("http", "https") or not base.host:
        sys.stderr.write(f"error: --url {args.url!r}: expected http(s)://host:port\n")
        return 2
    username = args.username or config.domoticz.username or base.user or ""
    password = os.environ.get(args.password_env) or config.domoticz.password or base.password or ""
    base = base.with_user(None).with_password(None).with_query(None)
    shown = str(base).rstrip("/")
    endpoint = shown + "/json.htm"
    if args.dry_run:
        sys.stdout.write("# dry run: nothing is sent; the requests would be, in order:\n")
        sys.stdout.write(
            f"GET {endpoint}?type=command&param=addhardware&htype=15&port=1"
            f"&name={_enc(args.hardware_name, safe='')}&enabled=true\n"
        )
        for item in fields:
            sys.stdout.write(f"GET {endpoint}?{_create_query('HWIDX', name, item)}\n")
        auth_note = f"as user {username!r}" if username else "without credentials"
        sys.stdout.write(
            f"# {auth_note}; HWIDX = the idx of the new hardware. A hardware and devices of "
            "these names that exist already are reused instead (unless --force). The "
            "[domoticz] tables with the idx values are printed after a real run.\n"
        )
        return 0
    try:
        text = asyncio.run(
            _setup(
                url=shown,
                endpoint=endpoint,
                auth=_basic_auth(username, password),
                username=username,
                force=bool(getattr(args, "force", False)),
                hardware_name=args.hardware_name,
                device=name,
                fields=fields,
            )
        )
    except _SetupError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    sys.stdout.write(text)
    return 0
