"""``python -m vedirect_async domoticz setup``: create (or find and reuse) a Dummy hardware
and the Domoticz devices for one VE.Direct device, and print the ``[domoticz]`` tables with
their idx. Idempotent: a second run reuses what the first made, found by name.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
from yarl import URL

from ...config import Config, ConfigError
from ...fields import unit_of
from .client import USER_AGENT, auth_hint, basic_auth
from .config import DomoticzConfig
from .mapping import TYPES, enc

__all__ = ["SETUP_FIELDS", "add_arguments", "cli_domoticz"]


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
        f"&sensorname={enc(_device_name(device, item), safe='')}"
        f"&devicetype={kind.devicetype}&devicesubtype={kind.subtype}"
    )
    if item.kind == "custom":  # Domoticz refuses a Custom sensor without its axis label
        query += f"&sensoroptions=1;{enc(unit_of(item.label) or '-', safe='')}"
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
    expected = TYPES[kind]
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
        connector=connector, timeout=timeout, headers={"User-Agent": USER_AGENT, **auth}
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
                f"&name={enc(hardware_name, safe='')}&enabled=true"
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


def cli_domoticz(args: Any, load: Callable[[], Config]) -> int:
    """``domoticz setup``: create Dummy hardware + devices, print the ``[domoticz]`` config.
    ``load()`` reads the configuration file the command line chose (every registered section)."""
    try:
        config = load()
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
    section = config.section("domoticz", DomoticzConfig)
    username = args.username or section.username or base.user or ""
    password = os.environ.get(args.password_env) or section.password or base.password or ""
    base = base.with_user(None).with_password(None).with_query(None)
    shown = str(base).rstrip("/")
    endpoint = shown + "/json.htm"
    if args.dry_run:
        sys.stdout.write("# dry run: nothing is sent; the requests would be, in order:\n")
        sys.stdout.write(
            f"GET {endpoint}?type=command&param=addhardware&htype=15&port=1"
            f"&name={enc(args.hardware_name, safe='')}&enabled=true\n"
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
                auth=basic_auth(username, password),
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


def add_arguments(domoticz: argparse.ArgumentParser) -> None:
    """``domoticz``'s actions and their arguments (the CLI makes the ``domoticz`` parser)."""
    dsub = domoticz.add_subparsers(dest="domoticz_command", metavar="ACTION", required=True)
    setup = dsub.add_parser("setup", help="create Dummy hardware and virtual devices")
    setup.add_argument("--url", required=True, help="Domoticz base URL")
    setup.add_argument("--device", default=None, help="which [[device]] (default: the first)")
    setup.add_argument(
        "--kind",
        default=None,
        help="device type for the field set (bmv, smartshunt, mppt); "
        "default from the device's simulator/port",
    )
    setup.add_argument("--username", default=None)
    setup.add_argument(
        "--password-env",
        default="VEDIRECT_DOMOTICZ__PASSWORD",
        help="environment variable holding the password",
    )
    setup.add_argument("--hardware-name", default="vedirect")
    setup.add_argument("--dry-run", action="store_true", help="print the requests, send none")
    setup.add_argument(
        "--force",
        action="store_true",
        help="create a new hardware and new devices even if ones of these names exist",
    )
