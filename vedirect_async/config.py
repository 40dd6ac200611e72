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
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NoReturn, Protocol, TypeVar

from .commands import register_problem
from .config_loader import ENV_PREFIX, SECRET_KEYS, Loader, apply_env, read_document
from .config_loader import masked as masked_tables
from .csv_columns import CsvConfig
from .errors import ConfigError
from .writable import writable_problem

__all__ = [
    "ENV_PREFIX",
    "SECRET_KEYS",
    "Config",
    "ConfigError",
    "CsvConfig",
    "DeviceConfig",
    "DomoticzDevice",
    "Fail",
    "HttpConfig",
    "LoggingConfig",
    "Section",
    "WatchdogConfig",
    "doc",
    "load_config",
    "masked",
    "schema",
]


def doc(text: str, **bounds: Any) -> dict[str, Any]:
    """A field's ``metadata``: its one-line description and optional bounds (min, max,
    choices), for sections anywhere (outputs declare theirs with it too)."""
    return {"doc": text, **bounds}


_doc = doc


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
    writable: list[str] = field(
        default_factory=list,
        metadata=_doc(
            "registers that may be written (docs/control.md): ids or names; [] = none (default)"
        ),
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
    token: str = field(
        default="",
        metadata=_doc(
            "bearer token that allows POST /api/devices/<device>/<name> writes (prefer the env "
            "var VEDIRECT_HTTP__TOKEN; docs/control.md); empty = the API is read-only"
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


Fail = Callable[[str, object, str], NoReturn]
"""``fail(key, value, expected)``: raise the one-line :class:`ConfigError` for ``key`` (a key of
the section being checked, e.g. ``"prefix"`` or ``"devices[2].idx"``), with file and line."""


class Section(Protocol):
    """A configuration section that is not part of the core (an output's ``[csv]``, ``[mqtt]``):
    its table name, its dataclass (field defaults, ``metadata`` docs and bounds drive the
    loader, as for the core sections) and its own cross-key validation. The caller hands the
    sections to :func:`load_config` (``settings.load_config`` hands every registered output's),
    so this module never imports an output."""

    @property
    def name(self) -> str: ...

    @property
    def kind(self) -> type[Any]: ...

    @property
    def validate(self) -> Callable[[Any, Config, Fail], None] | None: ...


_S = TypeVar("_S")


@dataclass(frozen=True, slots=True)
class Config:
    """The whole configuration; ``source`` is the file it came from (for messages).

    The core sections are fields; each registered section (an output's) is in ``sections``
    under its table name: read it with :meth:`section`. ``csv`` is a shortcut for the CSV
    section, which the web page's history backfill reads too.
    """

    logging: LoggingConfig = field(default_factory=LoggingConfig)
    device: list[DeviceConfig] = field(default_factory=lambda: [DeviceConfig()])
    watchdog: WatchdogConfig = field(default_factory=WatchdogConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    sections: Mapping[str, Any] = field(default_factory=dict, metadata=_doc("", internal=True))
    source: str = field(default="<defaults>", metadata=_doc("", internal=True))

    def section(self, name: str, kind: type[_S]) -> _S:
        """The ``[name]`` section; its defaults when it was not loaded (not registered)."""
        found = self.sections.get(name)
        if found is None:
            return kind()
        if not isinstance(found, kind):
            raise TypeError(f"[{name}] is a {type(found).__name__}, not a {kind.__name__}")
        return found

    @property
    def csv(self) -> CsvConfig:
        return self.section("csv", CsvConfig)

    def with_section(self, name: str, value: object) -> Config:
        """A copy with the ``[name]`` section replaced (tests, tools)."""
        return dataclasses.replace(self, sections={**self.sections, name: value})


# -- loading -----------------------------------------------------------------------------


def load_config(
    path: str | Path | None,
    environ: Mapping[str, str] | None = None,
    *,
    sections: Sequence[Section] = (),
) -> Config:
    """Read, overlay the environment and validate. ``None`` = defaults plus environment.

    ``sections`` are the tables besides the core ones (the outputs'); any other table is an
    unknown key (with its line). Each section is built by the same loader, so its errors,
    environment overrides (``VEDIRECT_<SECTION>__<KEY>``) and masking work as for the core.
    """
    env = os.environ if environ is None else environ
    shown, text, data = read_document(path)
    root = schema(sections)
    origins = apply_env(data, env, root)
    loader = Loader(shown, text, origins)
    built = loader.build(root, data, "")
    core = {f.name: getattr(built, f.name) for f in _core_fields()}
    tables = {s.name: getattr(built, s.name) for s in sections}
    config = Config(**core, sections=tables, source=shown)
    _cross_check(config, loader)
    for spec in sections:
        if spec.validate is not None:
            spec.validate(tables[spec.name], config, _section_fail(loader, spec.name))
    return config


def _core_fields() -> list[dataclasses.Field[Any]]:
    return [f for f in dataclasses.fields(Config) if not f.metadata.get("internal")]


def schema(sections: Sequence[Section]) -> type[Any]:
    """The root table's dataclass: the core sections plus the given ones (what the loader,
    environment overrides and key listings walk)."""
    hints = typing.get_type_hints(Config)
    spec: list[tuple[str, Any, Any]] = [
        (f.name, hints[f.name], field(default_factory=_factory_of(f), metadata=f.metadata))
        for f in _core_fields()
    ]
    taken = {name for name, _, _ in spec}
    for section in sections:
        if section.name in taken or not dataclasses.is_dataclass(section.kind):
            raise TypeError(f"section {section.name!r}: a new name and a dataclass expected")
        taken.add(section.name)
        spec.append((section.name, section.kind, field(default_factory=section.kind)))
    return dataclasses.make_dataclass("Settings", spec, frozen=True)


def _factory_of(f: dataclasses.Field[Any]) -> Callable[[], Any]:
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory
    default = f.default
    return lambda: default


def _section_fail(loader: Loader, name: str) -> Fail:
    def fail(key: str, value: object, expected: str) -> NoReturn:
        loader.fail(f"{name}.{key}", value, expected)

    return fail


def masked(config: object) -> dict[str, Any]:
    """The configuration as plain data, secrets ``***``; each section as its own table."""
    data = masked_tables(config)
    if isinstance(config, Config):
        data.pop("sections", None)
        source = data.pop("source", None)
        for name, section in config.sections.items():
            data[name] = masked_tables(section)
        data["source"] = source
    return data


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
        if 0 < dev.register_interval < 1:
            loader.fail(
                f"device[{i}].register_interval",
                dev.register_interval,
                "0 (only at connect) or a number >= 1",
            )
        for j, spec in enumerate(dev.writable):
            if problem := writable_problem(spec):
                loader.fail(f"device[{i}].writable[{j}]", spec, problem)
        if not dev.port:
            loader.fail(
                f"device[{i}].port",
                dev.port,
                "a serial device path or simulator:bmv712|mppt|smartshunt",
            )
    if config.watchdog.backoff_max < config.watchdog.backoff_initial:
        loader.fail(
            "watchdog.backoff_max",
            config.watchdog.backoff_max,
            f"a number >= watchdog.backoff_initial ({config.watchdog.backoff_initial})",
        )
