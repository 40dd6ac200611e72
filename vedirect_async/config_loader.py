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
import difflib
import math
import os
import re
import reprlib
import stat
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from .env_value import env_value
from .errors import ConfigError

__all__ = [
    "ENV_PREFIX",
    "SECRET_KEYS",
    "Loader",
    "apply_env",
    "looks_secret",
    "masked",
    "read_document",
    "shown_value",
]

ENV_PREFIX = "VEDIRECT_"
SECRET_KEYS = frozenset({"password", "token", "password_file"})
MAX_DOCUMENT = 1 << 20  # bytes: config.toml is ~10 kB; anything this big is a mistake
SHOWN_CHARS = 60  # a value echoed in a message is cut to this many characters
MAX_FLOAT = 1e15  # larger is never a duration or a count (and overflows time arithmetic)


# -- building dataclasses ---------------------------------------------------------------------


class Loader:
    """Builds dataclasses from TOML tables, reporting problems with file, line and key.

    ``origins`` maps a key set from the environment (``device[0].port``) to its variable, so a
    bad value there is blamed on the variable, not on the file.
    """

    def __init__(self, path: str, text: str, origins: Mapping[str, str] | None = None) -> None:
        self.path = path
        self.lines = text.splitlines()
        self.origins = dict(origins or {})

    def fail(self, key: str, value: object, expected: str) -> typing.NoReturn:
        shown, name = shown_value(key, value), printable(key)
        variable = self._variable_of(key)
        if variable is not None:
            where = f"environment: {printable(variable)}"
            raise ConfigError(f"{where}: {name} = {shown}: expected {expected}")
        line = self._line_of(key)
        where = printable(f"{self.path}:{line}" if line else self.path, 300)
        raise ConfigError(f"{where}: {name} = {shown}: expected {expected}")

    def _variable_of(self, key: str) -> str | None:
        """The environment variable that set ``key`` or the value ``key`` lies in."""
        for set_key, variable in self.origins.items():
            if key == set_key or key.startswith((set_key + ".", set_key + "[")):
                return variable
        return None

    def _line_of(self, key: str) -> int | None:
        """Best-effort line number of ``key`` (dotted path, ``device[1].name``) in the file."""
        parts = key.split(".")
        leaf = re.sub(r"\[\d+\]$", "", parts[-1])
        # For a key inside the N-th [[table]], count that table's headers to find its block.
        wanted: list[tuple[str, int]] = []
        for part in parts[:-1]:
            match = re.fullmatch(r"(.+?)(?:\[(\d{1,9})\])?", part)
            if match is None:
                return None  # an empty or odd quoted key: no line, the message still names it
            wanted.append((match.group(1), int(match.group(2) or 0)))
        section = ".".join(name for name, _ in wanted)
        index = wanted[-1][1] if wanted else 0
        # an unknown [table] or [[table]] is found by its header (issue 13)
        table = f"{section}.{leaf}" if section else leaf
        seen = 0 if not section else -1  # top-level keys come before any header
        current = ""
        for number, raw in enumerate(self.lines, 1):
            text = raw.strip()
            header = re.match(r"^\[\[?\s*([A-Za-z0-9_.\-]+)\s*\]\]?", text)
            if header:
                current = header.group(1)
                if current == section:
                    seen += 1
                if current == table or current.startswith(table + "."):
                    return number
                continue
            if (
                current == section
                and seen == index
                and re.match(rf"^{re.escape(leaf)}\s*[=.]", text)
            ):
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
                tables = dataclasses.is_dataclass(item)
                self.fail(key, value, f"[[{key}]] tables" if tables else "a list")
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
            if not math.isfinite(value) or abs(value) > MAX_FLOAT:  # nan/inf: never a setting
                self.fail(key, value, "a finite number" + _bounds(meta))
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


# -- showing values in messages -----------------------------------------------------------------

# An unknown key whose name contains one of these, or is a near miss of a secret key, may hold
# a secret (a misspelt ``pasword``): its value is never shown.
_SECRET_HINTS = ("pass", "secret", "token", "key", "pwd", "auth", "cred", "private")
_URL_PASSWORD = re.compile(r"(?i)(\b[a-z][a-z0-9+.\-]*://[^/@\s:]*:)[^@/\s]*@")
_SHORT = reprlib.Repr()
_SHORT.maxlevel = 2
_SHORT.maxstring = SHOWN_CHARS
_SHORT.maxother = SHOWN_CHARS
_SHORT.maxlong = 24
_SHORT.maxlist = _SHORT.maxdict = _SHORT.maxtuple = _SHORT.maxset = 4


def printable(text: str, limit: int = 80) -> str:
    """``text`` for a one-line message: control and other unprintable characters escaped,
    cut to ``limit`` characters (a key or a variable name may be anything)."""
    out = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text[: limit + 1])
    return out if len(out) <= limit else out[: limit - 3] + "..."


def looks_secret(name: str) -> bool:
    """True when a key named ``name`` is, or may be meant as, a secret."""
    lowered = name.lower()
    return (
        lowered in SECRET_KEYS
        or any(hint in lowered for hint in _SECRET_HINTS)
        or bool(difflib.get_close_matches(lowered, SECRET_KEYS, n=1, cutoff=0.75))
    )


def _redacted(value: object, depth: int = 0) -> object:
    """``value`` with secret-looking entries of its tables and passwords in URLs hidden."""
    if depth > _SHORT.maxlevel:
        return "..."
    if isinstance(value, str):
        return _URL_PASSWORD.sub(r"\1***@", value)
    if isinstance(value, Mapping):
        return {
            str(k): "***" if looks_secret(str(k)) else _redacted(v, depth + 1)
            for k, v in list(value.items())[: _SHORT.maxdict + 1]
        }
    if isinstance(value, list):
        return [_redacted(v, depth + 1) for v in value[: _SHORT.maxlist + 1]]
    return value


def shown_value(key: str, value: object) -> str:
    """``value`` of ``key`` as a message shows it: secrets masked, at most ~60 characters."""
    leaf = re.sub(r"\[\d+\]$", "", key.rsplit(".", 1)[-1])
    if looks_secret(leaf):
        return "***"
    text = printable(_SHORT.repr(_redacted(value)), 4 * SHOWN_CHARS)
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 3] + "..."


# -- the environment --------------------------------------------------------------------------


def _env_index(shown: str, part: str, key: str, size: int) -> int:
    """The list index ``part`` of variable ``name``: 0 .. ``size`` (the next new entry)."""
    if not (part.isascii() and part.isdigit()) or len(part) > 6 or int(part) > size:
        raise ConfigError(
            f"environment: {shown}: {key} index {printable(part, 12)!r}: expected 0 to {size} "
            f"(the {size} table(s) of the file, or the next one)"
        )
    return int(part)


def _env_order(item: tuple[str, str]) -> list[tuple[int, str]]:
    """Sort key: numeric parts as numbers, so DEVICE__2 comes before DEVICE__10."""
    parts = item[0].split("__")
    return [(len(p), p) if p.isascii() and p.isdigit() else (0, p) for p in parts]


def _fields(cls: type[Any]) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {
        f.name: hints[f.name] for f in dataclasses.fields(cls) if not f.metadata.get("internal")
    }


def _table_item(hint: Any) -> Any:
    """The dataclass of a ``list[SomeTable]`` hint (an array of tables), else None."""
    if typing.get_origin(hint) is list:
        (item,) = typing.get_args(hint)
        if dataclasses.is_dataclass(item):
            return item
    return None


def apply_env(
    data: dict[str, Any], environ: Mapping[str, str], schema: type[Any]
) -> dict[str, str]:
    """Overlay ``VEDIRECT_SECTION__KEY`` (and ``VEDIRECT_DEVICE__N__KEY``) onto ``data``.

    The variable's name is checked against ``schema`` (the root dataclass): an unknown key, a
    key below a plain value, or an index past the tables the file has (plus one new) is a
    :class:`ConfigError` naming the variable. Where the file holds the wrong kind of value at a
    table's place (``device = "bmv"``) the variable is left out: the file's error is reported.
    Returns which key each variable set, for :class:`Loader` to blame bad values on.
    """
    origins: dict[str, str] = {}
    entries = [
        (name, text)
        for name, text in environ.items()
        if name.startswith(ENV_PREFIX) and "__" in name[len(ENV_PREFIX) :]
    ]
    for name, text in sorted(entries, key=_env_order):
        parts = [p.lower() for p in name[len(ENV_PREFIX) :].split("__")]
        shown = printable(name)
        node: Any = data
        cls: type[Any] = schema
        key = ""
        i = 0
        while True:
            part = parts[i]
            known = _fields(cls)
            path = f"{key}.{part}" if key else part
            if part not in known:
                raise ConfigError(
                    f"environment: {shown}: no such key {printable(path)!r} "
                    f"(known keys here: {', '.join(sorted(known))})"
                )
            hint, last = known[part], i == len(parts) - 1
            item = _table_item(hint)
            if dataclasses.is_dataclass(hint) or item is not None:
                if last:
                    form = "__<KEY>" if item is None else "__<N>__<KEY>"
                    raise ConfigError(
                        f"environment: {shown}: {path} is a table: expected "
                        f"{shown}{form}=value, one variable per key"
                    )
            elif not last:
                raise ConfigError(
                    f"environment: {shown}: {path} is a value, not a table: expected "
                    f"{ENV_PREFIX}{'__'.join(parts[: i + 1]).upper()}=value"
                )
            else:
                node[part] = env_value(text)
                origins[path] = name
                break
            child = node.setdefault(part, {} if item is None else [])
            if item is None:
                if not isinstance(child, dict):
                    break  # the file's [table] is not a table: Loader says so
                node, cls, key, i = child, hint, path, i + 1
                continue
            if isinstance(child, dict):
                child = node[part] = [child]  # one [table] where [[table]] was meant
            if not isinstance(child, list):
                break  # the file's [[table]] is not an array of tables: Loader says so
            index = _env_index(shown, parts[i + 1], path, len(child))
            if index == len(child):
                child.append({})
            if not isinstance(child[index], dict):
                break
            if i + 2 >= len(parts):
                raise ConfigError(f"environment: {shown}: expected a key after the index")
            node, cls, key, i = child[index], item, f"{path}[{index}]", i + 2
    return origins


# -- the file ----------------------------------------------------------------------------------


def read_document(path: str | Path | None) -> tuple[str, str, dict[str, Any]]:
    """``(shown name, text, parsed table)`` of the file; ``None`` = an empty document.

    Only a regular file of at most :data:`MAX_DOCUMENT` bytes is read: a FIFO, a device or a
    directory is refused at once (opened without blocking), a huge file without reading it.
    """
    if path is None:
        return "<defaults>", "", {}
    shown = printable(str(path), 300)
    try:
        # O_NONBLOCK: opening a FIFO with no writer must not hang before fstat refuses it
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise ConfigError(
            f"{shown}: file not found (expected a TOML configuration file; "
            "copy config.toml from the project)"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{shown}: cannot read: {exc.strerror or exc}") from None
    try:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            kind = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
            raise ConfigError(f"{shown}: {kind} (expected a TOML configuration file)")
        if info.st_size > MAX_DOCUMENT:
            raise ConfigError(
                f"{shown}: {info.st_size} bytes: expected a configuration file of at most "
                f"{MAX_DOCUMENT} bytes"
            )
        with open(descriptor, "rb", closefd=False) as f:
            raw = f.read(MAX_DOCUMENT + 1)
    except OSError as exc:
        raise ConfigError(f"{shown}: cannot read: {exc.strerror or exc}") from None
    finally:
        os.close(descriptor)
    if len(raw) > MAX_DOCUMENT:  # it grew while being read
        raise ConfigError(f"{shown}: expected a configuration file of at most {MAX_DOCUMENT} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{shown}: cannot read: not UTF-8 text (byte {exc.start})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{shown}: not valid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{shown}: not valid TOML: arrays or tables nested too deeply") from None
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
