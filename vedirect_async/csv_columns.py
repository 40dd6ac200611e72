"""CSV columns and rows, pure: what ``csv.columns`` means, which file each device writes, and
how a reading becomes one line.

Shared by the configuration check (``check-config`` reports a bad column with its line), the
CSV output and the web page's history backfill (which reads the files back), so none of them
imports another: this module sits in the protocol layer and imports only the field catalogue
and ``present`` (numbers are written by its ``fixed``, as every output writes them).

- **Columns**: ``[device:]Header=field`` or ``[device:]field``; ``field`` is a catalogue name,
  a VE.Direct label, or the pseudo-fields ``time`` and ``device``. A ``device:`` prefix puts
  the column only in that device's file. Each scaled number is written at the device's
  resolution (V with 3 decimals, SOC with 1...).
- **Files**: ``{device}`` in ``path`` names each device's file; without it a single device
  writes ``path`` itself and several devices write ``<stem>_<device><suffix>``.
- **Cells**: UNAVAILABLE (``---``) and absent fields are empty; ON/OFF as ``ON``/``OFF``;
  bitmask reasons joined with ``|``; TTG's infinity as ``inf``; text quoted when it holds a
  comma, a quote or edge spaces, and control characters replaced so one row is one line.
- **Section**: :class:`CsvConfig` is ``[csv]`` (the CSV output registers it).
- **Time**: the reading's own timestamp, ISO 8601 to the second, local with its UTC offset
  (unambiguous across DST) or UTC (``...Z``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from .errors import ConfigError
from .fields import lookup
from .present import fixed
from .reading import UNAVAILABLE, Reading, Value

__all__ = [
    "Column",
    "ColumnError",
    "CsvConfig",
    "Rows",
    "device_path",
    "format_time",
    "format_value",
    "parse_columns",
]

_PSEUDO = ("time", "device")


def _doc(text: str, **bounds: Any) -> dict[str, Any]:
    return {"doc": text, **bounds}  # the loader's field metadata (config.doc, one layer up)


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class Column:
    """One CSV column: its header, where the value comes from and how it is written."""

    header: str
    source: str  # "time", "device" or a catalogue field name (a key of Reading.values)
    device: str | None = None  # only in this device's file; None = every file
    decimals: int = 0  # for scaled numbers: digits after the point (the device resolution)


class ColumnError(ConfigError):
    """A bad ``csv.columns`` entry: which one and what was expected (config.py adds the line)."""

    def __init__(self, index: int, spec: object, expected: str) -> None:
        super().__init__(f"csv.columns[{index}] = {spec!r}: expected {expected}")
        self.index, self.spec, self.expected = index, spec, expected


def parse_columns(specs: Sequence[str], devices: Sequence[str]) -> tuple[Column, ...]:
    """``[device:]Header=field`` / ``[device:]field`` entries → columns; ColumnError if bad."""
    columns: list[Column] = []
    for i, spec in enumerate(specs):
        device: str | None = None
        text = spec.strip()
        head, sep, rest = text.partition(":")
        if sep and "=" not in head:
            device, text = head.strip(), rest.strip()
            if device not in devices:
                raise ColumnError(i, spec, f"a [[device]] name before ':' ({', '.join(devices)})")
        header, sep, source = text.partition("=")
        header, source = header.strip(), (source if sep else header).strip()
        if not header or not source or _CONTROL.search(header) or '"' in header:
            raise ColumnError(i, spec, "[device:]Header=field or [device:]field")
        if any(c.header == header and c.device in (None, device) for c in columns):
            raise ColumnError(i, spec, f"a header not used twice in one file ({header!r})")
        if source.lower() in _PSEUDO:
            columns.append(Column(header, source.lower(), device))
            continue
        found = lookup(source)
        if found is None:
            raise ColumnError(
                i,
                spec,
                "a catalogue field name such as 'voltage', a VE.Direct label such as 'V', or "
                f"time / device (unknown field {source!r})",
            )
        decimals = len(str(found.divisor)) - 1 if found.scale < 1 else 0
        columns.append(Column(header, found.name, device, decimals))
    if not columns:
        raise ColumnError(0, [], "at least one column")
    return tuple(columns)


def _cell(text: str) -> str:
    text = _CONTROL.sub(" ", text)  # one row is always one line
    if "," in text or '"' in text or text != text.strip():
        return '"' + text.replace('"', '""') + '"'
    return text


def format_value(value: Value | None, decimals: int) -> str:
    """One value as a CSV cell (see the module docstring)."""
    if value is None or value is UNAVAILABLE:
        return ""
    if isinstance(value, bool):
        return "ON" if value else "OFF"
    if isinstance(value, int):
        return f"{value:.{decimals}f}" if decimals else str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return fixed(value, decimals)  # present's rule: the device's resolution, never -0
    if isinstance(value, tuple):
        return _cell("|".join(value))
    return _cell(str(value))


def format_time(when: datetime, utc: bool) -> str:
    """ISO 8601 to the second: ``...Z`` in UTC, else local time with its offset."""
    if utc:
        return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return when.astimezone().isoformat(timespec="seconds")


def device_path(template: str, device: str, devices: Sequence[str]) -> Path:
    """The CSV file of ``device`` (see the module docstring)."""
    if "{device}" in template:
        return Path(template.replace("{device}", device))
    path = Path(template)
    if len(devices) > 1:
        return path.with_name(f"{path.stem}_{device}{path.suffix}")
    return path


class Rows:
    """Formats one device's header and rows (bytes, each a complete line)."""

    def __init__(self, columns: Sequence[Column], utc: bool) -> None:
        self.columns = tuple(columns)
        self.utc = utc
        self.header = (",".join(_cell(c.header) for c in self.columns) + "\n").encode()

    def row(self, reading: Reading) -> bytes:
        cells = []
        values = reading.values
        for column in self.columns:
            if column.source == "time":
                cells.append(format_time(reading.time, self.utc))
            elif column.source == "device":
                cells.append(_cell(reading.device))
            else:
                cells.append(format_value(values.get(column.source), column.decimals))
        return (",".join(cells) + "\n").encode()


@dataclass(frozen=True, slots=True)
class CsvConfig:
    """``[csv]``: the CSV output's section. It lives here, with the column rules, because the
    web page's history backfill reads the same files (and the web imports no output)."""

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
