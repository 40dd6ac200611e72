"""``config.toml`` → typed, validated configuration.

Every section is a frozen dataclass below; a field's default is the documented default and its
``metadata["doc"]`` the one-line description. Validation is driven by the type hints and by
optional ``metadata`` bounds (``min``, ``max``, ``choices``), so adding a key is one line.

Unknown keys, wrong types and out-of-range values raise :class:`ConfigError` with one line that
names the file, the line when it can be found, the key, the bad value and what was expected.
The generic machinery (conversion, bounds, environment overrides, masking) is
:mod:`vedirect_async.config_loader`; this module says what the sections are.

Environment variables override any key: ``VEDIRECT_<SECTION>__<KEY>`` (e.g.
``VEDIRECT_DOMOTICZ__PASSWORD``), and ``VEDIRECT_DEVICE__<N>__<KEY>`` for the N-th ``[[device]]``
(0-based). Values from the environment are parsed as TOML values when they parse, otherwise
taken as strings.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from .commands import register_problem
from .config_loader import ENV_PREFIX, SECRET_KEYS, Loader, apply_env, masked, read_document
from .csv_columns import ColumnError, parse_columns
from .errors import ConfigError

__all__ = [
    "ENV_PREFIX",
    "SECRET_KEYS",
    "Config",
    "ConfigError",
    "CsvConfig",
    "DeviceConfig",
    "DomoticzConfig",
    "DomoticzDevice",
    "HttpConfig",
    "LoggingConfig",
    "MqttConfig",
    "WatchdogConfig",
    "load_config",
    "masked",
]


def _doc(text: str, **bounds: Any) -> dict[str, Any]:
    return {"doc": text, **bounds}


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = field(
        default="INFO", metadata=_doc("log level (the old script's debug_level)")
    )
    file: str = field(default="", metadata=_doc("log file, rotated; empty = stderr only"))
    max_bytes: int = field(
        default=1_000_000, metadata=_doc("rotate the log file at this size", min=10_000)
    )
    backup_count: int = field(default=3, metadata=_doc("rotated log files kept", min=0, max=100))
    readings_interval: float = field(
        default=10.0,
        metadata=_doc(
            "seconds between INFO lines with each device's newest values, logged only when "
            "no MQTT or Domoticz output is enabled; 0 = never",
            min=0.0,
        ),
    )


@dataclass(frozen=True, slots=True)
class DeviceConfig:
    name: str = field(default="bmv", metadata=_doc("device name for logs, topics, CSV, metrics"))
    port: str = field(
        default="simulator:bmv712",
        metadata=_doc(
            "serial device path (/dev/serial/by-id/... recommended) or a built-in simulator: "
            "simulator:bmv712, simulator:mppt, simulator:smartshunt"
        ),
    )
    baudrate: int = field(default=19200, metadata=_doc("VE.Direct is 19200 8N1", min=300))
    registers: list[str] = field(
        default_factory=lambda: ["defaults"],
        metadata=_doc(
            'HEX registers read into the readings: ids ("0xEDDB") or names from '
            'docs/protocol.md; "defaults" = the product family\'s defaults; [] = none'
        ),
    )
    register_interval: float = field(
        default=30.0,
        metadata=_doc("seconds between HEX register reads; 0 = only at connect", min=0.0),
    )


@dataclass(frozen=True, slots=True)
class WatchdogConfig:
    silence_timeout: float = field(
        default=10.0, metadata=_doc("no bytes for this long: restart the reader", min=0.05)
    )
    invalid_timeout: float = field(
        default=30.0,
        metadata=_doc("bytes but no valid reading for this long: restart the reader", min=0.05),
    )
    stuck_timeout: float = field(
        default=0.0,
        metadata=_doc(
            "identical readings for this long are counted and logged (never restarted); 0 = off",
            min=0.0,
        ),
    )
    backoff_initial: float = field(
        default=1.0, metadata=_doc("first reopen delay after a failure", min=0.01)
    )
    backoff_max: float = field(default=30.0, metadata=_doc("reopen delay cap", min=0.01))


@dataclass(frozen=True, slots=True)
class CsvConfig:
    enabled: bool = field(default=True, metadata=_doc("write the CSV log"))
    path: str = field(default="vedirect_data.csv", metadata=_doc("CSV file (old script's name)"))
    interval: float = field(
        default=30.0, metadata=_doc("seconds between rows; 0 = every reading", min=0.0)
    )
    columns: list[str] = field(
        default_factory=lambda: ["Time", "Volts=V", "Amps=I", "AHr=CE", "SOC=SOC"],
        metadata=_doc(
            "columns: [device:]Header=field or [device:]field; field = catalogue name or "
            "VE.Direct label, or the pseudo-fields time and device"
        ),
    )
    time_format: Literal["local", "utc"] = field(
        default="local", metadata=_doc("Time column: ISO 8601 local time with offset, or UTC")
    )
    fsync: bool = field(default=False, metadata=_doc("fsync after each row (wears SD cards)"))
    rotate: Literal["none", "daily", "size"] = field(
        default="none", metadata=_doc("start a new file each day or at max_bytes")
    )
    max_bytes: int = field(
        default=10_000_000, metadata=_doc("rotate = size: file size limit", min=1_000)
    )
    retention: int = field(
        default=30, metadata=_doc("rotated files kept per device; 0 = keep all", min=0)
    )
    queue_size: int = field(
        default=1024, metadata=_doc("rows held while the disk fails, and readings queued", min=1)
    )
    timeout: float = field(
        default=10.0, metadata=_doc("a file operation taking longer fails (dead disk)", min=0.1)
    )


@dataclass(frozen=True, slots=True)
class HttpConfig:
    enabled: bool = field(default=True, metadata=_doc("serve /health, /metrics, /api, the page"))
    host: str = field(default="127.0.0.1", metadata=_doc("listen address (0.0.0.0 in Docker)"))
    port: int = field(default=8080, metadata=_doc("listen port", min=1, max=65535))
    health_max_age: float = field(
        default=0.0,
        metadata=_doc(
            "/health fails when a device has no valid reading for this long; "
            "0 = the watchdog's silence_timeout",
            min=0.0,
        ),
    )
    unhealthy_output_states: list[str] = field(
        default_factory=lambda: ["failed"],
        metadata=_doc("output states that make /health fail", choices=("ok", "degraded", "failed")),
    )
    history_hours: float = field(
        default=24.0,
        metadata=_doc("hours of history kept in memory for the page's charts", min=0.0, max=744),
    )
    history_interval: float = field(
        default=0.0,
        metadata=_doc(
            "seconds between history points; 0 = the CSV interval (30 when that is 0)", min=0.0
        ),
    )
    max_stream_clients: int = field(
        default=8, metadata=_doc("concurrent /api/stream clients (live page)", min=1, max=100)
    )


@dataclass(frozen=True, slots=True)
class DomoticzDevice:
    """One Domoticz virtual device fed from one reading field."""

    idx: int = field(default=0, metadata=_doc("Domoticz device idx", min=1))
    device: str = field(default="", metadata=_doc("device name; empty = the only device"))
    kind: str = field(
        default="custom",
        metadata=_doc(
            "voltage, current, percentage, custom, kwh, text, alert, usage, temperature",
            choices=(
                "voltage",
                "current",
                "percentage",
                "custom",
                "kwh",
                "text",
                "alert",
                "usage",
                "temperature",
            ),
        ),
    )
    power_field: str = field(
        default="",
        metadata=_doc("kind = kwh: field giving the power (W) sent with the energy; empty = 0"),
    )
    # last: the attribute name shadows dataclasses.field inside this class body
    field: str = dataclasses.field(
        default="", metadata=_doc("catalogue field name or VE.Direct label")
    )


@dataclass(frozen=True, slots=True)
class DomoticzConfig:
    enabled: bool = field(default=False, metadata=_doc("post readings to Domoticz"))
    url: str = field(default="http://127.0.0.1:8080", metadata=_doc("base URL of Domoticz"))
    interval: float = field(default=30.0, metadata=_doc("seconds between posts", min=0.1))
    mode: Literal["udevice", "udevices"] = field(
        default="udevice", metadata=_doc("udevice (per-idx) or udevices (legacy Lua parser)")
    )
    script: str = field(default="ap_bmv.lua", metadata=_doc("Lua parser name for mode = udevices"))
    timeout: float = field(default=5.0, metadata=_doc("per-request timeout", min=0.1))
    username: str = field(default="", metadata=_doc("basic-auth user; empty = no auth"))
    password: str = field(default="", metadata=_doc("basic-auth password (prefer the env var)"))
    password_file: str = field(
        default="", metadata=_doc("file holding the basic-auth password (first line)")
    )
    verify_tls: bool = field(
        default=True, metadata=_doc("https: verify the server certificate (keep it on)")
    )
    ca_file: str = field(
        default="", metadata=_doc("https: extra CA / self-signed certificate (PEM) to trust")
    )
    heartbeat: float = field(
        default=300.0,
        metadata=_doc(
            "re-post unchanged values this often; 0 = post every value each interval", min=0.0
        ),
    )
    post_on_change: bool = field(
        default=True,
        metadata=_doc("post at once when alarm, relay, charger state or error changes"),
    )
    backoff_max: float = field(
        default=60.0, metadata=_doc("longest wait between retries while Domoticz fails", min=0.1)
    )
    probe: bool = field(
        default=True, metadata=_doc("at start, ask Domoticz its version and check each idx")
    )
    fail_when_rejected: Literal["all", "any", "never"] = field(
        default="all",
        metadata=_doc(
            "when rejected posts (ERR or 403 for an idx, udevices ERR) make the output failed: "
            "all = a round in which Domoticz accepted none, any = any rejected post, "
            "never = rejections only degrade it"
        ),
    )
    infinite_value: float = field(
        default=99999.0,
        metadata=_doc(
            "number posted to a numeric device for an infinite value (time to go while the "
            "battery is not discharging); text and alert devices get 'infinite'"
        ),
    )
    devices: list[DomoticzDevice] = field(
        default_factory=list, metadata=_doc("[[domoticz.devices]] idx mapping")
    )


@dataclass(frozen=True, slots=True)
class MqttConfig:
    enabled: bool = field(default=False, metadata=_doc("publish readings to an MQTT broker"))
    host: str = field(default="127.0.0.1", metadata=_doc("broker host"))
    port: int = field(default=1883, metadata=_doc("broker port", min=1, max=65535))
    prefix: str = field(default="vedirect", metadata=_doc("topic prefix"))
    username: str = field(default="", metadata=_doc("broker user; empty = anonymous"))
    password: str = field(default="", metadata=_doc("broker password (prefer the env var)"))
    client_id: str = field(
        default="",
        metadata=_doc("client id stem; empty = vedirect-<hostname>; '-<device>' is appended"),
    )
    qos: int = field(default=1, metadata=_doc("QoS of state/availability messages", min=0, max=2))
    retain: bool = field(default=True, metadata=_doc("retain state messages"))
    state_interval: float = field(
        default=0.0, metadata=_doc("seconds between state messages; 0 = every reading", min=0.0)
    )
    per_field_topics: bool = field(
        default=False, metadata=_doc("also publish <prefix>/<device>/<field> plain values")
    )
    discovery: bool = field(default=True, metadata=_doc("publish Home Assistant discovery"))
    discovery_prefix: str = field(
        default="homeassistant", metadata=_doc("Home Assistant discovery prefix")
    )
    domoticz_in: str = field(
        default="",
        metadata=_doc("Domoticz MQTT input topic (e.g. domoticz/in) fed from [[domoticz.devices]]"),
    )
    keepalive: int = field(default=30, metadata=_doc("MQTT keepalive", min=5, max=3600))
    timeout: float = field(default=10.0, metadata=_doc("connect/publish timeout", min=0.1))
    reconnect_initial: float = field(default=1.0, metadata=_doc("first reconnect delay", min=0.01))
    reconnect_max: float = field(
        default=15.0, metadata=_doc("reconnect delay cap (back within 15 s of a broker)", min=0.01)
    )
    tls: bool = field(default=False, metadata=_doc("connect with TLS (usually port 8883)"))
    ca_file: str = field(default="", metadata=_doc("CA bundle for TLS; empty = system CAs"))


@dataclass(frozen=True, slots=True)
class Config:
    """The whole configuration; ``source`` is the file it came from (for messages)."""

    logging: LoggingConfig = field(default_factory=LoggingConfig)
    device: list[DeviceConfig] = field(default_factory=lambda: [DeviceConfig()])
    watchdog: WatchdogConfig = field(default_factory=WatchdogConfig)
    csv: CsvConfig = field(default_factory=CsvConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    domoticz: DomoticzConfig = field(default_factory=DomoticzConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    source: str = field(default="<defaults>", metadata=_doc("", internal=True))


# -- loading -----------------------------------------------------------------------------


def load_config(path: str | Path | None, environ: Mapping[str, str] | None = None) -> Config:
    """Read, overlay the environment and validate. ``None`` = defaults plus environment."""
    env = os.environ if environ is None else environ
    shown, text, data = read_document(path)
    origins = apply_env(data, env, Config)
    loader = Loader(shown, text, origins)
    config: Config = loader.build(Config, data, "")
    _cross_check(config, loader)
    return dataclasses.replace(config, source=shown)


# a URL with a scheme and an authority, no spaces or control characters (urlsplit would pass)
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s/?#]+[^\s]*")


def _cross_check(config: Config, loader: Loader) -> None:
    """Rules that span keys."""
    names: set[str] = set()
    if not config.device:
        loader.fail("device", [], "at least one [[device]] table")
    for i, dev in enumerate(config.device):
        if not re.fullmatch(r"[A-Za-z0-9_\-]{1,64}", dev.name):
            loader.fail(
                f"device[{i}].name",
                dev.name,
                "1-64 letters, digits, '_' or '-' (it is used in topics and file names)",
            )
        if dev.name in names:
            loader.fail(f"device[{i}].name", dev.name, "a name not used by another [[device]]")
        names.add(dev.name)
        for j, spec in enumerate(dev.registers):
            if spec != "defaults" and (problem := register_problem(spec)):
                loader.fail(f"device[{i}].registers[{j}]", spec, problem)
        if not dev.port:
            loader.fail(
                f"device[{i}].port",
                dev.port,
                "a serial device path or simulator:bmv712|mppt|smartshunt",
            )
    for key in ("prefix", "discovery_prefix"):  # MQTT topics: wildcards would subscribe, not name
        topic = getattr(config.mqtt, key)
        if not re.fullmatch(r"[^/+#\s]+(/[^/+#\s]+)*", topic):
            loader.fail(f"mqtt.{key}", topic, "a topic prefix without +, #, spaces or empty levels")
    url = urlsplit(config.domoticz.url) if _URL.fullmatch(config.domoticz.url) else None
    if url is None or url.scheme.lower() not in ("http", "https") or not url.hostname:
        loader.fail(
            "domoticz.url", config.domoticz.url, "http(s)://host:port (port, /path optional)"
        )
    if config.watchdog.backoff_max < config.watchdog.backoff_initial:
        loader.fail(
            "watchdog.backoff_max",
            config.watchdog.backoff_max,
            f"a number >= watchdog.backoff_initial ({config.watchdog.backoff_initial})",
        )
    # csv.columns name catalogue fields: checked here so check-config reports them with the line
    try:
        parse_columns(config.csv.columns, [dev.name for dev in config.device])
    except ColumnError as exc:
        loader.fail(f"csv.columns[{exc.index}]", exc.spec, exc.expected)
