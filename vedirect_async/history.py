"""In-memory history for the live page: a bounded ring of sampled numeric values per device.

One point per device every ``interval`` seconds (the CSV interval by default), at most
``capacity`` points per device (24 h by default), each point holding every numeric field of
the reading. Storage is a fixed block of ``array('d')`` columns per device (NaN = no value), so
memory is bounded by ``capacity * fields`` eight-byte floats, whatever the devices send.

:func:`read_csv_tail` backfills the ring from the CSV log at start-up (the only I/O here; the
web server runs it in a thread).
"""

from __future__ import annotations

import csv
import io
import logging
import math
from array import array
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from .reading import Reading

__all__ = ["MAX_FIELDS", "CsvBackfill", "History", "Point", "numeric_values", "read_csv_tail"]

_LOGGER = logging.getLogger(__name__)

MAX_FIELDS = 32  # columns kept per device; further fields are ignored (bounds memory)
_NAN = math.nan
_CSV_LINE_GUESS = 160  # bytes per CSV row, to size the tail read; generous for 5-10 columns
_CSV_MAX_BYTES = 32 * 1024 * 1024  # never read more than this from the end of the file

Point = tuple[float, dict[str, float]]  # (epoch seconds, field -> value)


def numeric_values(values: Mapping[str, object]) -> dict[str, float]:
    """The finite numeric values of a reading (bools, text, UNAVAILABLE and inf left out)."""
    out: dict[str, float] = {}
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        number = float(value)
        if math.isfinite(number):
            out[name] = number
    return out


class _Ring:
    """Fixed-capacity columns; ``head`` is the next slot written."""

    __slots__ = ("capacity", "columns", "count", "head", "times")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.times = array("d", bytes(8 * capacity))
        self.columns: dict[str, array[float]] = {}
        self.head = 0
        self.count = 0

    def append(self, t: float, values: Mapping[str, float]) -> None:
        i = self.head
        self.times[i] = t
        for name, column in self.columns.items():
            column[i] = values.get(name, _NAN)
        for name, value in values.items():
            if name not in self.columns and len(self.columns) < MAX_FIELDS:
                column = array("d", [_NAN]) * self.capacity
                column[i] = value
                self.columns[name] = column
        self.head = (i + 1) % self.capacity
        self.count = min(self.count + 1, self.capacity)

    def slots(self) -> Iterator[int]:
        """Slot indices from the oldest point to the newest."""
        start = (self.head - self.count) % self.capacity
        for k in range(self.count):
            yield (start + k) % self.capacity

    @property
    def last_time(self) -> float | None:
        if not self.count:
            return None
        return self.times[(self.head - 1) % self.capacity]


@dataclass(frozen=True, slots=True)
class HistorySlice:
    """A query result: times (epoch seconds) and one value list per field (None = no value)."""

    times: list[float]
    values: dict[str, list[float | None]]


class History:
    """Sampled numeric values per device, bounded by ``capacity`` points each."""

    def __init__(
        self,
        capacity: int,
        interval: float,
        max_devices: int = 32,
        keep: Callable[[str], bool] = lambda _name: True,
    ) -> None:
        self.capacity = max(0, capacity)
        self.interval = interval
        self.max_devices = max_devices
        self.keep = keep  # which fields are worth a column (e.g. not slow history counters)
        self._rings: dict[str, _Ring] = {}

    def _ring(self, device: str) -> _Ring | None:
        ring = self._rings.get(device)
        if ring is None and self.capacity and len(self._rings) < self.max_devices:
            ring = self._rings[device] = _Ring(self.capacity)
        return ring

    def add(self, reading: Reading) -> bool:
        """Sample ``reading`` if ``interval`` has passed since the device's last point."""
        return self.add_point(reading.device, reading.time.timestamp(), reading.values)

    def add_point(self, device: str, t: float, values: Mapping[str, object]) -> bool:
        """Append one point unless it is closer than ``interval`` after the last one."""
        ring = self._ring(device)
        if ring is None:
            return False
        last = ring.last_time
        # a wall clock stepped backwards (NTP) must not freeze the history: only skip points
        # that are newer than the last one by less than the interval
        if last is not None and 0 <= t - last < self.interval:
            return False
        numbers = {k: v for k, v in numeric_values(values).items() if self.keep(k)}
        if not numbers:
            return False
        ring.append(t, numbers)
        return True

    @property
    def devices(self) -> list[str]:
        return list(self._rings)

    def __len__(self) -> int:
        return sum(ring.count for ring in self._rings.values())

    def fields(self, device: str) -> list[str]:
        ring = self._rings.get(device)
        return list(ring.columns) if ring else []

    def points(self, device: str) -> int:
        ring = self._rings.get(device)
        return ring.count if ring else 0

    def query(
        self, device: str, fields: Sequence[str], since: float, max_points: int
    ) -> HistorySlice:
        """Points at or after ``since``, thinned evenly to at most ``max_points`` (newest kept)."""
        ring = self._rings.get(device)
        if ring is None or max_points < 1:
            return HistorySlice([], {name: [] for name in fields})
        slots = [i for i in ring.slots() if ring.times[i] >= since]
        if len(slots) > max_points:
            stride = math.ceil(len(slots) / max_points)
            # count back from the newest so the latest point is always included
            slots = slots[::-1][::stride][::-1]
        times = [ring.times[i] for i in slots]
        values: dict[str, list[float | None]] = {}
        for name in fields:
            column = ring.columns.get(name)
            if column is None:
                values[name] = [None] * len(slots)
            else:
                values[name] = [None if math.isnan(v) else v for v in (column[i] for i in slots)]
        return HistorySlice(times, values)


# -- CSV backfill -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CsvBackfill:
    """What :func:`read_csv_tail` found: points per device, and rows it could not use."""

    points: dict[str, list[Point]]
    skipped: int
    columns: dict[str, str]  # CSV column -> field name


def _parse_time(text: str) -> float:
    """Epoch seconds from an epoch number or an ISO 8601 time (naive = local time)."""
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    return datetime.fromisoformat(text).timestamp()


def _tail_lines(path: Path, max_rows: int) -> tuple[str, list[str]]:
    """The header line and up to the last ``max_rows`` complete data lines of ``path``."""
    want = min(_CSV_MAX_BYTES, max(64 * 1024, max_rows * _CSV_LINE_GUESS))
    with path.open("rb") as f:
        header = f.readline(4096).decode("utf-8", "replace")
        body_start = f.tell()
        size = f.seek(0, io.SEEK_END)
        start = max(body_start, size - want)
        f.seek(start)
        data = f.read(size - start)
    lines = data.decode("utf-8", "replace").splitlines()
    if start > body_start and lines:
        lines = lines[1:]  # the read started mid-line
    return header, lines[-max_rows:] if max_rows else []


def read_csv_tail(
    path: Path,
    max_rows: int,
    default_device: str,
    column_field: Callable[[str], str | None],
) -> CsvBackfill:
    """Read the newest ``max_rows`` rows of a CSV log (blocking; run it in a thread).

    ``column_field`` maps each header to a field name, to the pseudo-fields ``"time"`` and
    ``"device"``, or to None (ignored). A time column is required; without a device column
    every row belongs to ``default_device``. Rows whose time does not parse are counted and
    skipped; cells that are not finite numbers (empty, ``ON``, ``inf``) are left out.
    """
    header_line, lines = _tail_lines(path, max_rows)
    header = [name.strip() for name in next(csv.reader([header_line]), [])]
    time_col: int | None = None
    device_col: int | None = None
    mapped: dict[int, str] = {}
    for i, name in enumerate(header):
        field = column_field(name)
        if field == "time":
            time_col = i
        elif field == "device":
            device_col = i
        elif field is not None:
            mapped[i] = field
    if time_col is None:
        raise ValueError(f"{path}: no time column in the header {header!r}")
    points: dict[str, list[Point]] = {}
    skipped = 0
    for row in csv.reader(lines):
        try:
            t = _parse_time(row[time_col])
            device = row[device_col].strip() if device_col is not None else default_device
        except (ValueError, IndexError):
            skipped += 1
            continue
        values: dict[str, float] = {}
        for i, field in mapped.items():
            try:
                number = float(row[i])
            except (ValueError, IndexError):
                continue
            if math.isfinite(number):
                values[field] = number
        if values and device:
            points.setdefault(device, []).append((t, values))
    columns = {header[i]: field for i, field in mapped.items()}
    return CsvBackfill(points, skipped, columns)
