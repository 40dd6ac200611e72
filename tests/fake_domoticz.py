"""A fake Domoticz 2025.1 JSON API for the tests: a real aiohttp server on 127.0.0.1.

Written from ``../shared/reference/domoticz.md`` (section 3.1) and checked against the raw
transcripts of a real Domoticz 2025.1 (``tests/test_fake_domoticz.py``). What it reproduces,
because our client must cope with it:

- only ``/json.htm``; ``type`` other than ``command`` is a 404 (2025.1 removed the old RTypes);
- the query parsed the Domoticz way: split on ``&`` then ``=`` (a raw ``=`` inside a value drops
  the parameter), ``+`` becomes a space, then the *value only* is percent-decoded; POSTed form
  bodies count as parameters;
- the exact bodies: jsoncpp "styled" JSON (tabs, sorted keys, ``" : "``),
  ``{"status" : "ERR"}`` with HTTP 200 for a bad idx, ``"ERROR"`` for an unknown param, tiny
  HTML pages for 401/403/404/500;
- authentication as in 2023.1+: trusted network, Basic auth refused over plain HTTP unless
  allowed, credentials from a trusted client still checked, 401 without ``WWW-Authenticate`` but
  with the ``DMZSID=none`` cookie, Viewer users get 403 on updates;
- connection handling: the socket is closed after each response (without a ``Connection``
  header) unless the request said ``Connection: Keep-Alive``; one request served at a time;
- fault injection: slow, hang, close without a reply, refused (stopped) then back, HTTP 500,
  non-JSON 200, 403 from the auth layer, ERR for chosen idx values.

Everything received is recorded with its arrival time for assertions, and the maximum number
of requests in flight at once is tracked (Domoticz serves one at a time; our client must never
have more than one outstanding).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import enum
import json
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import unquote_to_bytes

from aiohttp import web

__all__ = [
    "DEVICE_TYPES",
    "FakeDevice",
    "FakeDomoticz",
    "Fault",
    "LuaCall",
    "Received",
    "Update",
    "parse_query",
    "styled_json",
]

VERSION = "2025.1 (build 16785)"

# (devicetype, devicesubtype) -> (Type, SubType) as Domoticz names them in getdevices
DEVICE_TYPES: Mapping[tuple[int, int], tuple[str, str]] = {
    (243, 8): ("General", "Voltage"),
    (243, 23): ("General", "Current"),
    (243, 6): ("General", "Percentage"),
    (243, 31): ("General", "Custom Sensor"),
    (243, 29): ("General", "kWh"),
    (243, 19): ("General", "Text"),
    (243, 22): ("General", "Alert"),
    (248, 1): ("Usage", "Electric"),
    (80, 5): ("Temp", "LaCrosse TX3"),
}
# createvirtualsensor's sensortype -> (devicetype, devicesubtype)
_SENSORTYPES: Mapping[int, tuple[int, int]] = {
    4: (243, 8),
    19: (243, 23),
    2: (243, 6),
    1004: (243, 31),
    18: (243, 29),
    80: (80, 5),
    5: (243, 19),
    7: (243, 22),
    248: (248, 1),
}
_PLACEHOLDER: Mapping[str, str] = {"Text": "Hello World", "Alert": "No Alert!", "kWh": "0;0.0"}

_WHITELISTED = frozenset({"getversion", "getauth"})


class Fault(enum.Enum):
    """What the server does instead of answering normally."""

    HANG = "hang"  # never answer (until stopped)
    CLOSE = "close"  # accept, read the request, close without a reply ("Empty reply")
    HTTP500 = "http500"  # the HTML 500 page
    NON_JSON = "non_json"  # 200 with an HTML body (a proxy's page, say)
    FORBIDDEN = "forbidden"  # 403 from the auth layer (HTML)


@dataclass(slots=True)
class FakeDevice:
    """One device row: what getdevices shows and udevice updates."""

    idx: int
    name: str
    type: str = "General"
    subtype: str = "Voltage"
    hardware_id: int = 2
    hardware_name: str = "BMV"
    nvalue: int = 0
    svalue: str = ""
    sensor_unit: str = ""
    last_update: float = field(default_factory=time.time)
    #: users allowed to update it; None = everybody with User rights
    users: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class Received:
    """One request as the server saw it (``at``/``done``: time.monotonic())."""

    at: float
    done: float
    method: str
    path: str
    query: str  # raw query string, as sent
    params: Mapping[str, str]  # decoded the Domoticz way (query + form body)
    body: bytes
    headers: Mapping[str, str]
    user: str | None  # authenticated user, None when not authenticated
    status: int  # 0 when no reply was sent
    reply: bytes

    @property
    def command(self) -> str:
        return self.params.get("param", "")


@dataclass(frozen=True, slots=True)
class Update:
    """One accepted udevice (values stored as received, as Domoticz does)."""

    at: float
    idx: int
    nvalue: int
    svalue: str
    user: str


@dataclass(frozen=True, slots=True)
class LuaCall:
    """What a Lua parser (``udevices``) gets: the URI parameters and the request body."""

    at: float
    script: str
    uri: Mapping[str, str]
    content: str


LuaParser = Callable[["FakeDomoticz", LuaCall], None]


# -- wire formats ------------------------------------------------------------------------------


def parse_query(raw: str) -> dict[str, str]:
    """Domoticz's parameter parsing: split on ``&`` and ``=``, ``+`` → space, decode values."""
    params: dict[str, str] = {}
    for part in raw.split("&"):
        pieces = part.split("=")
        if len(pieces) != 2:  # a raw "=" in the value drops the parameter, as in Domoticz
            continue
        key, value = pieces
        params[key] = unquote_to_bytes(value.replace("+", " ")).decode("utf-8", "replace")
    return params


def _styled(value: Any, indent: str) -> str:
    inner = indent + "\t"
    if isinstance(value, dict):
        if not value:
            return "{}"
        members = [
            f"{inner}{json.dumps(key)} : {_member(value[key], inner)}" for key in sorted(value)
        ]
        return "{\n" + ",\n".join(members) + "\n" + indent + "}"
    if isinstance(value, list):
        if not value:
            return "[]"
        items = [inner + _styled(item, inner) for item in value]
        return "[\n" + ",\n".join(items) + "\n" + indent + "]"
    return json.dumps(value, ensure_ascii=False)


def _member(value: Any, indent: str) -> str:
    # jsoncpp as Domoticz uses it puts a non-empty array/object on the line after its key
    if isinstance(value, list | dict) and value:
        return "\n" + indent + _styled(value, indent)
    return _styled(value, indent)


def styled_json(value: Mapping[str, Any]) -> bytes:
    """jsoncpp's StyledWriter output as Domoticz sends it (tabs, sorted keys, final newline)."""
    return (_styled(dict(value), "") + "\n").encode("utf-8")


def _html(status: int, title: str) -> bytes:
    return (
        f"<html><head><title>{title}</title></head><body><h1>{status} {title}</h1></body></html>"
    ).encode()


_JSON_HEADERS = (
    ("Cache-Control", "no-cache"),
    ("Pragma", "no-cache"),
    ("Access-Control-Allow-Origin", "*"),
    ("Content-Type", "application/json;charset=UTF-8"),
)
_DMZSID_NONE = "DMZSID=none; HttpOnly; SameSite=strict; Expires=Thu, 01 Jan 1970 00:00:00 GMT"


def _json_response(payload: Mapping[str, Any], status: int = 200) -> web.Response:
    body = styled_json(payload)
    response = web.Response(status=status, body=body)
    response.headers["Content-Length"] = str(len(body))
    for name, value in _JSON_HEADERS:
        response.headers[name] = value
    return response


def _html_response(status: int, title: str) -> web.Response:
    body = _html(status, title)
    response = web.Response(status=status, body=body)
    response.headers["Content-Length"] = str(len(body))
    response.headers["Content-Type"] = "text/html;charset=UTF-8"
    response.headers["Access-Control-Allow-Origin"] = "*"
    if status == 401:
        response.headers["Set-Cookie"] = _DMZSID_NONE
    return response


def _atof(text: str) -> float:
    """C atof: the longest numeric prefix, 0 when there is none."""
    best = 0.0
    for end in range(1, len(text) + 1):
        try:
            best = float(text[:end])
        except ValueError:
            continue
    return best


def _g(value: float) -> str:
    return f"{value:g}"


# -- the server ---------------------------------------------------------------------------------


class FakeDomoticz:
    """The fake server. ``async with FakeDomoticz() as fake: fake.url ...``."""

    def __init__(
        self,
        *,
        trusted: bool = True,
        allow_plain_basic: bool = False,
        https: bool = False,
        users: Mapping[str, tuple[str, int]] | None = None,
        scripts: Mapping[str, LuaParser | None] | None = None,
        legacy_rtypes: bool = False,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        #: the client's address is in "Trusted Networks"
        self.trusted = trusted
        #: "Allow Basic-Auth authentication over plain HTTP"
        self.allow_plain_basic = allow_plain_basic
        #: serve HTTPS with this context (Domoticz's port 443 with its server_cert.pem)
        self.ssl_context = ssl_context
        #: the listener is the HTTPS port: Basic auth is then always allowed
        self.https = https or ssl_context is not None
        #: user -> (password, rights: 0 viewer, 1 user, 2 admin)
        self.users: dict[str, tuple[str, int]] = dict(
            {"admin": ("domoticz", 2)} if users is None else users
        )
        #: Lua parsers present in scripts/lua_parsers (None = present, does nothing)
        self.scripts: dict[str, LuaParser | None] = dict(
            {"ap_bmv.lua": None} if scripts is None else scripts
        )
        #: serve the old type=devices style (2023.2 - 2024.7) instead of 404
        self.legacy_rtypes = legacy_rtypes
        self.devices: dict[int, FakeDevice] = {}
        self.hardware: dict[int, str] = {1: "Domoticz Internal"}
        #: hardware idx -> htype (15 = Dummy; 0 is the built-in one, never listed)
        self.hardware_types: dict[int, int] = {1: 0}

        # fault injection
        self.fault: Fault | None = None  # applies to every request
        self._one_shot: list[Fault] = []
        self.delay: float | Callable[[int], float] = 0.0  # seconds, or f(request number)
        self.err_idx: set[int] = set()  # udevice answers ERR for these

        # observation
        self.received: list[Received] = []
        self.updates: list[Update] = []
        self.lua_calls: list[LuaCall] = []
        self.in_flight = 0
        self.max_concurrency = 0
        self.connections = 0

        self.port = 0
        self._runner: web.AppRunner | None = None
        self._lock = asyncio.Lock()
        self._changed = asyncio.Condition()
        self._release = asyncio.Event()
        self._number = 0

    # -- lifecycle ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    async def start(self) -> None:
        """Listen on 127.0.0.1 (a random free port first, the same port after a stop)."""
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        app.on_response_prepare.append(self._strip_headers)
        self._release = asyncio.Event()
        # handler_cancellation: a request whose client gave up (timeout) stops counting as
        # in flight, so max_concurrency measures the client, not our own hung handlers
        runner = web.AppRunner(
            app,
            keepalive_timeout=20,
            access_log=None,
            handle_signals=False,
            handler_cancellation=True,
        )
        await runner.setup()
        site = web.TCPSite(
            runner, "127.0.0.1", self.port, reuse_address=True, ssl_context=self.ssl_context
        )
        await site.start()
        server = site._server
        assert isinstance(server, asyncio.base_events.Server)
        self.port = server.sockets[0].getsockname()[1]
        self._runner = runner

    async def stop(self) -> None:
        """Stop listening (connections are then refused); devices and records are kept."""
        self._release.set()  # let a hanging request go
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.shutdown()
            await runner.cleanup()

    async def __aenter__(self) -> FakeDomoticz:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- setup helpers --------------------------------------------------------------------------

    def add_device(
        self, idx: int, name: str, type_: str = "General", subtype: str = "Voltage", **kw: Any
    ) -> FakeDevice:
        """Create a device row directly (as if made in the UI)."""
        device = FakeDevice(idx, name, type_, subtype, **kw)
        self.devices[idx] = device
        return device

    def fail_next(self, fault: Fault, count: int = 1) -> None:
        """Apply ``fault`` to the next ``count`` requests only."""
        self._one_shot.extend([fault] * count)

    def update_device(self, idx: int, nvalue: int | str, svalue: str) -> bool:
        """What ``domoticz_updateDevice`` does for a Lua parser; False for an unknown idx."""
        device = self.devices.get(idx)
        if device is None:
            return False
        device.nvalue = int(nvalue) if str(nvalue).lstrip("-").isdigit() else 0
        device.svalue = svalue
        device.last_update = time.time()
        self.updates.append(Update(time.monotonic(), idx, device.nvalue, svalue, "lua"))
        return True

    # -- observation helpers --------------------------------------------------------------------

    def requests(self, command: str = "udevice") -> list[Received]:
        """Requests received with ``param=command`` ("" = all)."""
        return [r for r in self.received if not command or r.command == command]

    def duplicates(self, window: float) -> int:
        """Updates repeating the previous (idx, svalue) of that idx within ``window`` seconds."""
        last: dict[int, Update] = {}
        count = 0
        for update in self.updates:
            before = last.get(update.idx)
            if (
                before is not None
                and before.svalue == update.svalue
                and update.at - before.at <= window
            ):
                count += 1
            last[update.idx] = update
        return count

    async def wait_for(self, predicate: Callable[[], bool], within: float = 5.0) -> None:
        """Wait until ``predicate()`` holds (checked at each request), else TimeoutError."""
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(predicate)

    async def wait_requests(
        self, count: int, command: str = "udevice", within: float = 5.0
    ) -> None:
        """Wait until at least ``count`` requests with ``param=command`` were answered."""
        await self.wait_for(lambda: len(self.requests(command)) >= count, within)

    # -- request handling -----------------------------------------------------------------------

    async def _strip_headers(self, request: web.Request, response: web.StreamResponse) -> None:
        # Domoticz sends neither Date nor Server; aiohttp adds both before this hook runs.
        for name in ("Date", "Server"):
            response.headers.popall(name, None)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        at = time.monotonic()
        self._number += 1
        number = self._number
        self.in_flight += 1
        self.max_concurrency = max(self.max_concurrency, self.in_flight)
        async with self._changed:
            self._changed.notify_all()
        body = await request.read()
        params = parse_query(request.query_string)
        if request.content_type == "application/x-www-form-urlencoded" and body:
            params.update(parse_query(body.decode("utf-8", "replace")))
        user: str | None = None
        status = 0
        reply = b""
        try:
            async with self._lock:  # Domoticz's single web-server thread
                fault = self._one_shot.pop(0) if self._one_shot else self.fault
                delay = self.delay(number) if callable(self.delay) else self.delay
                if delay > 0:
                    await asyncio.sleep(delay)
                if fault is Fault.HANG:
                    await self._release.wait()  # set when stopping: drop the connection
                if fault in (Fault.HANG, Fault.CLOSE):
                    request.protocol.force_close()
                    raise asyncio.CancelledError
                user, response = self._dispatch(request, params, body, fault)
                status = response.status
                reply = response.body if isinstance(response.body, bytes) else b""
                keep_alive = request.headers.get("Connection", "").lower() == "keep-alive"
                if keep_alive:
                    response.headers["Connection"] = "Keep-Alive"
                    response.headers["Keep-Alive"] = "max=20, timeout=20"
                else:
                    request.protocol.close()  # close after the reply, no Connection header
                return response
        finally:
            self.in_flight -= 1
            self.received.append(
                Received(
                    at,
                    time.monotonic(),
                    request.method,
                    request.path,
                    request.query_string,
                    params,
                    body,
                    dict(request.headers),
                    user,
                    status,
                    reply,
                )
            )
            async with self._changed:
                self._changed.notify_all()

    def _authenticate(self, request: web.Request) -> str | None:
        """The user the request runs as, None when not authenticated."""
        header = request.headers.get("Authorization", "")
        if header:
            if not (self.https or self.allow_plain_basic) or not header.startswith("Basic "):
                return None
            try:
                name, _, password = base64.b64decode(header[6:]).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return None
            known = self.users.get(name)
            if known is None or known[0] != password:
                return None  # checked even from a trusted client (Domoticz PR #5625)
            return name
        if self.trusted:
            admins = [n for n, (_, rights) in self.users.items() if rights >= 2]
            return admins[0] if admins else None
        return None

    def _dispatch(
        self, request: web.Request, params: dict[str, str], body: bytes, fault: Fault | None
    ) -> tuple[str | None, web.Response]:
        if fault is Fault.HTTP500:
            return None, _html_response(500, "Internal Server Error")
        if fault is Fault.FORBIDDEN:
            return None, _html_response(403, "Forbidden")
        if request.path != "/json.htm":
            return None, _html_response(404, "Not Found")
        user = self._authenticate(request)
        command = params.get("param", "")
        if params.get("type") == "command" and command in _WHITELISTED:
            return user, self._whitelisted(command, user)
        if user is None:
            return None, _html_response(401, "Unauthorized")
        if fault is Fault.NON_JSON:
            return user, web.Response(
                body=b"<html><body>Bad gateway</body></html>", content_type="text/html"
            )
        if params.get("type") != "command":
            if self.legacy_rtypes and params.get("type") == "devices":
                return user, self._getdevices(params)
            return user, _html_response(404, "Not Found")
        rights = self.users.get(user, ("", 2))[1]
        handlers: dict[str, Callable[[], web.Response]] = {
            "udevice": lambda: self._udevice(params, user, rights),
            "udevices": lambda: self._udevices(params, body, rights),
            "getdevices": lambda: self._getdevices(params),
            "gethardware": lambda: self._gethardware(rights),
            "addhardware": lambda: self._addhardware(params, rights),
            "createdevice": lambda: self._createdevice(params, rights),
            "createvirtualsensor": lambda: self._createvirtualsensor(params, rights),
        }
        if not command:
            return user, _json_response({"status": "ERR"})
        handler = handlers.get(command)
        if handler is None:
            return user, _json_response({"status": "ERROR"})
        return user, handler()

    def _whitelisted(self, command: str, user: str | None) -> web.Response:
        if command == "getversion":
            payload: dict[str, Any] = {"status": "OK", "title": "GetVersion"}
            if user is not None:
                payload |= {
                    "HaveUpdate": False,
                    "UseUpdate": False,
                    "build_time": "2025-09-20 08:28:08",
                    "dzvents_version": "3.1.8",
                    "hash": "85308e91e",
                    "python_version": "None",
                    "version": VERSION,
                }
                if self.users.get(user, ("", 0))[1] >= 2:
                    payload |= {
                        "DomoticzUpdateURL": "https://www.domoticz.com/download.php?channel="
                        "stable&type=release&system=linux&machine=x86_64",
                        "Revision": 0,
                        "SystemName": "linux",
                    }
            return _json_response(payload)
        payload = {"status": "OK", "title": "GetAuth"}
        if user is not None:
            payload |= {"rights": self.users[user][1], "user": user, "version": VERSION}
        return _json_response(payload)

    def _udevice(self, params: dict[str, str], user: str, rights: int) -> web.Response:
        if rights < 1:
            return _json_response({"status": "ERR"}, status=403)
        text = params.get("idx", "")
        idx = int(text) if text.isdigit() else 0
        device = self.devices.get(idx)
        if device is not None and device.users is not None and user not in device.users:
            return _json_response({"status": "ERR"}, status=403)
        if (
            device is None
            or idx in self.err_idx
            or ("nvalue" not in params and "svalue" not in params)
        ):
            return _json_response({"status": "ERR"})
        nvalue = int(_atof(params.get("nvalue", "0")))
        svalue = params.get("svalue", "")
        device.nvalue, device.svalue, device.last_update = nvalue, svalue, time.time()
        self.updates.append(Update(time.monotonic(), idx, nvalue, svalue, user))
        return _json_response({"status": "OK", "title": "Update Device"})

    def _udevices(self, params: dict[str, str], body: bytes, rights: int) -> web.Response:
        if rights < 1:
            return _json_response({"status": "ERR"}, status=403)
        script = params.get("script", "")
        if script not in self.scripts:
            return _json_response({"status": "ERR"})
        call = LuaCall(time.monotonic(), script, dict(params), body.decode("utf-8", "replace"))
        self.lua_calls.append(call)
        parser = self.scripts[script]
        if parser is not None:
            with contextlib.suppress(Exception):  # a Lua runtime error still answers OK
                parser(self, call)
        return _json_response({"status": "OK", "title": "Update Device"})

    def _device_json(self, device: FakeDevice) -> dict[str, Any]:
        value = _atof(device.svalue)
        extra: dict[str, Any] = {}
        sub = device.subtype
        if sub == "Voltage":
            data = f"{_g(value)} V"
            extra["Voltage"] = value
        elif sub == "Current":
            data = f"{_g(value)} A"
            extra["Current"] = value
        elif sub == "Percentage":
            data = f"{_g(value)}%"
        elif sub == "Custom Sensor":
            data = f"{_g(value)} {device.sensor_unit}"
            extra["SensorUnit"] = device.sensor_unit
        elif sub == "kWh":
            power, _, energy = device.svalue.partition(";")
            data = f"{_atof(energy) / 1000:.3f} kWh"
            extra["Usage"] = f"{_g(_atof(power))} Watt"
            extra["CounterToday"] = "0 kWh"
        elif sub == "LaCrosse TX3":
            data = f"{_g(value)} C"
        elif sub == "Alert":
            data = device.svalue
            extra["Level"] = device.nvalue
        else:
            data = device.svalue
        stamp = datetime.fromtimestamp(device.last_update).strftime("%Y-%m-%d %H:%M:%S")
        return {
            "AddjMulti": 1.0,
            "AddjMulti2": 1.0,
            "AddjValue": 0.0,
            "AddjValue2": 0.0,
            "BatteryLevel": 255,
            "CustomImage": 0,
            "Data": data,
            "Description": "",
            "Favorite": 0,
            "HardwareDisabled": False,
            "HardwareID": device.hardware_id,
            "HardwareName": device.hardware_name,
            "HardwareType": "Dummy (Does nothing, use for virtual switches only)",
            "HardwareTypeVal": 15,
            "HaveTimeout": False,
            "ID": f"{0x00080000 + device.hardware_id * 0x1000 + device.idx:08X}",
            "LastUpdate": stamp,
            "Name": device.name,
            "Notifications": "false",
            "PlanID": "0",
            "PlanIDs": [0],
            "Protected": False,
            "ShowNotifications": True,
            "SignalLevel": "-",
            "SubType": sub,
            "Timers": "false",
            "Type": device.type,
            "TypeImg": "current",
            "Unit": 1,
            "Used": 1,
            "XOffset": "0",
            "YOffset": "0",
            "idx": str(device.idx),
            **extra,
        }

    def _getdevices(self, params: dict[str, str]) -> web.Response:
        payload: dict[str, Any] = {
            "ActTime": int(time.time()),
            "app_version": VERSION,
            "status": "OK",
            "title": "Devices",
        }
        rid = params.get("rid", "")
        if rid:
            device = self.devices.get(int(rid)) if rid.isdigit() else None
            if device is not None:
                payload["result"] = [self._device_json(device)]
        elif self.devices:
            payload["result"] = [self._device_json(d) for d in self.devices.values()]
        return _json_response(payload)

    def _gethardware(self, rights: int) -> web.Response:
        # Cmd_GetHardware: admin only; the built-in "Domoticz Internal" is never listed
        if rights < 2:
            return _json_response({"status": "ERR"}, status=403)
        payload: dict[str, Any] = {"status": "OK", "title": "Hardware"}
        rows = [
            {
                "Address": "",
                "DataTimeout": 0,
                "Enabled": "true",
                "Extra": "",
                "Mode1": 0,
                "Mode2": 0,
                "Mode3": 0,
                "Mode4": 0,
                "Mode5": 0,
                "Mode6": 0,
                "Name": name,
                "Password": "",
                "Port": 1,
                "SerialPort": "",
                "Type": self.hardware_types.get(idx, 15),
                "Username": "",
                "idx": str(idx),
            }
            for idx, name in sorted(self.hardware.items())
            if self.hardware_types.get(idx, 15) != 0
        ]
        if rows:
            payload["result"] = rows
        return _json_response(payload)

    def _addhardware(self, params: dict[str, str], rights: int) -> web.Response:
        if rights < 2:
            return _json_response({"status": "ERR"}, status=403)
        if params.get("htype") != "15" or not params.get("name"):
            return _json_response({"status": "ERR"})
        idx = max(self.hardware) + 1
        self.hardware[idx] = params["name"]
        self.hardware_types[idx] = 15
        return _json_response({"idx": str(idx), "status": "OK", "title": "AddHardware"})

    def _new_device(
        self, params: dict[str, str], kind: tuple[int, int], options: str, title: str
    ) -> web.Response:
        hardware = params.get("idx", "")
        name = params.get("sensorname", "")
        if not hardware.isdigit() or int(hardware) not in self.hardware or not name:
            return _json_response({"status": "ERR"})
        type_, subtype = DEVICE_TYPES[kind]
        unit = ""
        if subtype == "Custom Sensor":
            kind_and_label = options.split(";", 1)
            if len(kind_and_label) != 2:  # Custom needs sensoroptions=1;<axis label>
                return _json_response({"status": "ERR"})
            unit = kind_and_label[1]
        idx = max(self.devices, default=0) + 1
        self.devices[idx] = FakeDevice(
            idx,
            name,
            type_,
            subtype,
            hardware_id=int(hardware),
            hardware_name=self.hardware[int(hardware)],
            svalue=_PLACEHOLDER.get(subtype, "0"),
            sensor_unit=unit,
        )
        return _json_response({"idx": str(idx), "status": "OK", "title": title})

    def _createdevice(self, params: dict[str, str], rights: int) -> web.Response:
        if rights < 2:
            return _json_response({"status": "ERR"}, status=403)
        try:
            kind = (int(params.get("devicetype", "")), int(params.get("devicesubtype", "")))
        except ValueError:
            return _json_response({"status": "ERR"})
        if kind not in DEVICE_TYPES:
            return _json_response({"status": "ERR"})
        return self._new_device(params, kind, params.get("sensoroptions", ""), "CreateSensor")

    def _createvirtualsensor(self, params: dict[str, str], rights: int) -> web.Response:
        if rights < 2:
            return _json_response({"status": "ERR"}, status=403)
        text = params.get("sensortype", "")
        kind = _SENSORTYPES.get(int(text)) if text.isdigit() else None
        if kind is None:
            return _json_response({"status": "ERR"})
        options = params.get("sensoroptions", "1;" if kind == (243, 31) else "")
        return self._new_device(params, kind, options, "CreateVirtualSensor")
