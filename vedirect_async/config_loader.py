"""The generic machinery behind ``config.toml``: TOML tables -> typed, validated dataclasses.

:class:`Loader` builds any tree of frozen dataclasses from TOML tables, driven by the type hints
and by optional field ``metadata`` bounds (``min``, ``max``, ``choices``); a problem raises
:class:`ConfigError` with one line naming the file, the line when it can be found, the key, the
bad value (secrets masked) and what was expected. :func:`apply_env` overlays
``VEDIRECT_<SECTION>__<KEY>`` variables, :func:`read_document` reads and parses the file, and
:func:`masked` turns a configuration back into plain data with its secrets hidden.

What the sections are lives in :mod:`vedirect_async.config`; nothing here knows them.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from .errors import ConfigError

__all__ = [
    "ENV_PREFIX",
    "SECRET_KEYS",
    "Loader",
    "apply_env",
    "masked",
    "read_document",
]

ENV_PREFIX = "VEDIRECT_"
SECRET_KEYS = frozenset({"password", "token", "password_file"})


# -- loading --------------------------------------------------------------------------------


class Loader:
    """Builds dataclasses from TOML tables, reporting problems with file, line and key."""

    def __init__(self, path: str, text: str) -> None:
        self.path = path
        self.lines = text.splitlines()

    def fail(self, key: str, value: object, expected: str) -> typing.NoReturn:
        line = self._line_of(key)
        where = f"{self.path}:{line}" if line else self.path
        shown = "***" if key.rsplit(".", 1)[-1] in SECRET_KEYS else repr(value)
        raise ConfigError(f"{where}: {key} = {shown}: expected {expected}")

    def _line_of(self, key: str) -> int | None:
        """Best-effort line number of ``key`` (dotted path, ``device[1].name``) in the file."""
        parts = key.split(".")
        leaf = re.sub(r"\[\d+\]$", "", parts[-1])
        # For a key inside the N-th [[table]], count that table's headers to find its block.
        wanted: list[tuple[str, int]] = []
        for part in parts[:-1]:
            match = re.fullmatch(r"(.+?)(?:\[(\d+)\])?", part)
            assert match is not None
            wanted.append((match.group(1), int(match.group(2) or 0)))
        section = ".".join(name for name, _ in wanted)
        index = wanted[-1][1] if wanted else 0
        seen = -1
        current = ""
        for number, raw in enumerate(self.lines, 1):
            text = raw.strip()
            header = re.match(r"^\[\[?\s*([A-Za-z0-9_.\-]+)\s*\]\]?", text)
            if header:
                current = header.group(1)
                if current == section:
                    seen += 1
                continue
            if current == section and seen == index and re.match(rf"^{re.escape(leaf)}\s*=", text):
                return number
        return None

    def build(self, cls: type[Any], table: object, key: str) -> Any:
        if not isinstance(table, Mapping):
            self.fail(key, table, f"a table of {_section_doc(cls)}")
        hints = typing.get_type_hints(cls)
        known = {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}
        for name in table:
            if name not in known:
                choices = ", ".join(sorted(known))
                self.fail(
                    f"{key}.{name}" if key else name,
                    table[name],
                    f"no such key (known keys here: {choices})",
                )
        kwargs: dict[str, Any] = {}
        for name, f in known.items():
            if name in table:
                path = f"{key}.{name}" if key else name
                kwargs[name] = self.convert(hints[name], table[name], path, f.metadata)
        return cls(**kwargs)

    def convert(self, hint: Any, value: object, key: str, meta: Mapping[str, Any]) -> Any:
        origin = typing.get_origin(hint)
        if origin is Literal:
            allowed = typing.get_args(hint)
            if isinstance(value, str) and value.upper() in allowed and value not in allowed:
                value = value.upper()  # log levels are case-insensitive
            if value not in allowed:
                self.fail(key, value, "one of " + ", ".join(repr(a) for a in allowed))
            return value
        if origin is list:
            (item,) = typing.get_args(hint)
            if isinstance(value, Mapping) and dataclasses.is_dataclass(item):
                value = [value]  # a single [table] where [[table]] was meant
            if not isinstance(value, list):
                self.fail(key, value, "a list")
            return [self.convert(item, v, f"{key}[{i}]", meta) for i, v in enumerate(value)]
        if origin in (types.UnionType, typing.Union):
            raise TypeError(f"unsupported config type {hint}")
        if dataclasses.is_dataclass(hint):
            return self.build(hint, value, key)  # type: ignore[arg-type]
        if hint is bool:
            if not isinstance(value, bool):
                self.fail(key, value, "true or false")
            return value
        if hint is int:
            if isinstance(value, bool) or not isinstance(value, int):
                self.fail(key, value, "an integer" + _bounds(meta))
            self._check_bounds(key, value, meta, "an integer")
            return value
        if hint is float:
            if isinstance(value, bool) or not isinstance(value, int | float):
                self.fail(key, value, "a number" + _bounds(meta))
            self._check_bounds(key, value, meta, "a number")
            return float(value)
        if hint is str:
            if not isinstance(value, str):
                self.fail(key, value, "a string")
            choices = meta.get("choices")
            if choices and value not in choices:
                self.fail(key, value, "one of " + ", ".join(repr(c) for c in choices))
            return value
        raise TypeError(f"unsupported config type {hint}")

    def _check_bounds(self, key: str, value: float, meta: Mapping[str, Any], what: str) -> None:
        low, high = meta.get("min"), meta.get("max")
        if (low is not None and value < low) or (high is not None and value > high):
            self.fail(key, value, what + _bounds(meta))


def _bounds(meta: Mapping[str, Any]) -> str:
    low, high = meta.get("min"), meta.get("max")
    if low is not None and high is not None:
        return f" from {low} to {high}"
    if low is not None:
        return f" >= {low}"
    if high is not None:
        return f" <= {high}"
    return ""


def _section_doc(cls: type[Any]) -> str:
    return ", ".join(f.name for f in dataclasses.fields(cls) if not f.metadata.get("internal"))


def _env_value(text: str) -> object:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_env(data: dict[str, Any], environ: Mapping[str, str]) -> None:
    """Overlay VEDIRECT_SECTION__KEY (and VEDIRECT_DEVICE__N__KEY) variables onto ``data``."""
    for name, text in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        parts = [p.lower() for p in name[len(ENV_PREFIX) :].split("__")]
        node: Any = data
        for i, part in enumerate(parts[:-1]):
            if isinstance(node, list):
                if not part.isdigit():
                    raise ConfigError(
                        f"environment: {name}: expected a list index after "
                        f"{'__'.join(parts[:i]).upper()}"
                    )
                index = int(part)
                while len(node) <= index:
                    node.append({})
                node = node[index]
            else:
                default: Any = [] if part in ("device", "devices") else {}
                node = node.setdefault(part, default)
                if part == "device" and isinstance(node, list) and not node and parts[i + 1 :]:
                    node.append({})
        if isinstance(node, list):
            raise ConfigError(f"environment: {name}: expected a list index before the key")
        node[parts[-1]] = _env_value(text)


def read_document(path: str | Path | None) -> tuple[str, str, dict[str, Any]]:
    """``(shown name, text, parsed table)`` of the file; ``None`` = an empty document."""
    if path is None:
        return "<defaults>", "", {}
    shown = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{shown}: file not found (expected a TOML configuration file; "
            "copy config.toml from the project)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{shown}: cannot read: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{shown}: not valid TOML: {exc}") from None
    return shown, text, data


def masked(config: object) -> dict[str, Any]:
    """A configuration dataclass as plain data, with every secret replaced by ``***``."""

    def walk(obj: Any) -> Any:
        if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            out: dict[str, Any] = {}
            for f in dataclasses.fields(obj):
                value = getattr(obj, f.name)
                if f.name in SECRET_KEYS and value:
                    out[f.name] = "***"
                else:
                    out[f.name] = walk(value)
            return out
        if isinstance(obj, list):
            return [walk(v) for v in obj]
        return obj

    result: dict[str, Any] = walk(config)
    return result
