"""``Reading``: one complete, checksum-verified update of one device, decoded; and the
:class:`Assembler` that builds readings from text blocks. Pure code (no I/O).

How blocks become readings (the update rule)
--------------------------------------------
A device sends one *update* per second as one or more checksummed text blocks: a BMV or
SmartShunt sends its main block (with ``PID``) then an H block (history, no ``PID``); a
SmartSolar 150/70 rev3 sends a ``PID`` block then an ``ERR`` block; most MPPTs, chargers
and inverters send a single block. The assembler merges the blocks of one update and emits
the reading **on the last block of the update**, never later:

1. A block containing ``PID`` starts an update. Blocks without ``PID`` join the update in
   progress; one that arrives with no update in progress (a capture starting mid-update, or
   the update's ``PID`` block was lost to corruption) is dropped and counted (``orphans``).
2. How many blocks an update has is learned from the device's own stream: the number of
   blocks between two ``PID`` blocks, once two updates in a row agree. Once learned, the
   update is emitted on its n-th block.
3. Before it is learned (the first updates after start, or after the ``PID`` changed), the
   product family decides (for a product id missing from the tables, the labels of the
   update's first block tell it: ``CE``/``SOC``/``TTG``/``H1``.. mean a battery monitor,
   ``VPV``/``PPV``/``HSDS`` an MPPT): a BMV/SmartShunt update is complete with its H block
   (``H1``..), an MPPT update with the block carrying ``HSDS``, anything else with its ``PID``
   block (or after as many blocks as the one update observed so far had). So even the first
   update is emitted on its last block. (A device whose split the family rule misjudges loses
   or splits at most its first two updates, then follows the learned count.)
4. An update that lost a block (checksum error) is never emitted: it is dropped when the
   parser reports the loss (:meth:`Assembler.feed_event` / :meth:`Assembler.block_lost`), or
   at the latest when the next ``PID`` block arrives with fewer blocks than learned, and
   counted (``incomplete``). A corrupt block's fields never reach a reading; the intact half of a
   damaged update is not emitted alone either, so every reading is a whole update.
5. A half older than ``stale_after`` seconds is not merged with a newer block (counted in
   ``stale_dropped``).
6. If the observed count differs from the learned one three updates in a row (new firmware,
   changed aux input), the new count is learned. A new ``PID`` (another device plugged into
   the port) drops the update in progress and relearns from scratch.
7. A device that never sends ``PID`` (old BMV-60x) is detected after three orphan blocks in
   a row with no ``PID`` seen: from then on each block is a reading on its own.

Merging keeps every field of every block in wire order (``raw``), decodes each with the
catalogue (``values``, keyed by field name; a label sent twice keeps the later value), and
takes the identity (PID, product name, serial number, firmware) from the update, carried
over from the previous update of the same device for any part the update does not carry.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from types import MappingProxyType
from typing import cast

from .fields import (
    CATALOGUE,
    UNAVAILABLE,
    Field,
    Value,
    parse_pid,
    product_family,
    product_name,
    text_of,
    try_decode,
    unit_of,
)
from .parser import ErrorEvent, ErrorKind, Event, TextBlock
from .present import present

__all__ = ["UNAVAILABLE", "Assembler", "AssemblerStats", "Reading", "Value", "json_value"]


def _frozen(mapping: Mapping[str, Value] | None = None) -> Mapping[str, Value]:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True, slots=True)
class Reading:
    """One update of one device.

    - ``values``: catalogue field name → decoded value (units: :func:`fields.unit_of`).
      Unknown labels are kept as text under their label; a known field whose value does not
      parse is UNAVAILABLE (never text under the field's unit), its wire text kept in ``raw``.
    - ``raw``: (label, value) as the device sent them, decoded as ASCII with backslash escapes
      for other bytes, in wire order across the merged blocks.
    """

    device: str
    time: datetime  # wall clock, UTC
    monotonic: float  # time.monotonic() when the update completed
    values: Mapping[str, Value] = field(default_factory=_frozen)
    raw: tuple[tuple[str, str], ...] = ()
    pid: int | None = None
    product: str | None = None
    serial: str | None = None
    firmware: str | None = None

    def as_json(self) -> dict[str, object]:
        """A JSON-ready view (used by ``decode``; any output may reuse it).

        ``values`` hold JSON scalars: UNAVAILABLE -> ``null`` and its name listed under
        ``"unavailable"``; TTG's infinity -> ``"infinite"``; bitmask reasons -> a list.
        ``units`` gives the unit of every value that has one. ``raw`` maps each label to its
        value as sent (a label sent twice in one update keeps the later value there; the
        ``Reading.raw`` pairs keep both).
        """
        values = {name: json_value(value) for name, value in self.values.items()}
        units = {name: unit for name in self.values if (unit := unit_of(name))}
        return {
            "device": self.device,
            "time": self.time.isoformat(),
            "pid": None if self.pid is None else f"0x{self.pid:04X}",
            "product": self.product,
            "serial": self.serial,
            "firmware": self.firmware,
            "values": values,
            "units": units,
            "unavailable": [name for name, v in self.values.items() if v is UNAVAILABLE],
            "raw": dict(self.raw),
        }


# Reading's slot setters: _new_reading fills a Reading through them, which costs about half
# of the frozen dataclass __init__ (one object.__setattr__ call per field).
_Setter = Callable[[Reading, object], None]
_READING_FIELDS = (
    "device", "time", "monotonic", "values", "raw", "pid", "product", "serial", "firmware"
)  # fmt: skip
if tuple(f.name for f in fields(Reading)) != _READING_FIELDS:
    raise RuntimeError("Reading's fields changed: update _new_reading")  # fails every test
(
    _SET_DEVICE, _SET_TIME, _SET_MONO, _SET_VALUES, _SET_RAW,
    _SET_PID, _SET_PRODUCT, _SET_SERIAL, _SET_FIRMWARE,
) = (cast(_Setter, getattr(Reading, name).__set__) for name in _READING_FIELDS)  # fmt: skip


def _new_reading(
    *,
    device: str,
    time: datetime,
    monotonic: float,
    values: Mapping[str, Value],
    raw: tuple[tuple[str, str], ...],
    pid: int | None,
    product: str | None,
    serial: str | None,
    firmware: str | None,
) -> Reading:
    """``Reading(device=..., ...)``, built faster (the assembler's hot path)."""
    reading: Reading = object.__new__(Reading)
    _SET_DEVICE(reading, device)
    _SET_TIME(reading, time)
    _SET_MONO(reading, monotonic)
    _SET_VALUES(reading, values)
    _SET_RAW(reading, raw)
    _SET_PID(reading, pid)
    _SET_PRODUCT(reading, product)
    _SET_SERIAL(reading, serial)
    _SET_FIRMWARE(reading, firmware)
    return reading


def json_value(value: Value) -> str | int | float | bool | list[str] | None:
    """One decoded value as JSON: UNAVAILABLE -> None, infinity -> "infinite", tuple -> list
    (:attr:`present.Presented.json`, the one presentation every output shares)."""
    return present("", value).json


@dataclass(slots=True)
class AssemblerStats:
    """Counters, readable at any time; they only grow."""

    blocks: int = 0  # text blocks fed
    readings: int = 0  # readings emitted
    unknown_labels: int = 0  # fields whose label is not in the catalogue (kept as text)
    undecodable: int = 0  # known fields whose value did not parse (made UNAVAILABLE)
    incomplete: int = 0  # updates dropped because one of their blocks was lost
    orphans: int = 0  # blocks without PID that arrived with no update in progress
    stale_dropped: int = 0  # blocks of an update older than stale_after, not merged
    relearned: int = 0  # times the blocks-per-update count was (re)learned

    def as_dict(self) -> dict[str, int]:
        """The counters by name (for metrics and the decode summary)."""
        return {name: getattr(self, name) for name in self.__slots__}


_PID_RECORD = b"\r\nPID\t"
_HSDS = b"HSDS"
_SER = b"SER#"
_FW = b"FW"
_FWE = b"FWE"
_TEXT_LOSSES = frozenset({ErrorKind.CHECKSUM, ErrorKind.OVERSIZE, ErrorKind.MALFORMED})
_MISMATCHES_TO_RELEARN = 3
_ORPHANS_FOR_NO_PID_MODE = 3


def _is_history_label(label: bytes) -> bool:
    return label[:1] == b"H" and label[1:].isdigit()


# Labels only a battery monitor (BMV, SmartShunt) sends in its main block, and labels only a
# solar charger sends: they tell the family of a product id missing from the tables.
_MONITOR_LABELS = frozenset({b"CE", b"SOC", b"TTG", b"AR", b"Alarm", b"BMV", b"MON", b"DM"})
_MONITOR_HISTORY = frozenset(b"H%d" % n for n in range(1, 19))  # H1-H18
_MPPT_LABELS = frozenset({b"VPV", b"PPV", b"HSDS", b"MPPT"})


def _family_from_labels(first: TextBlock) -> str:
    """The family of an unknown product id, judged from the first block of its update: a
    battery monitor (its H1.. history follows in a second block), an MPPT, or unknown."""
    labels = {label for label, _ in first.fields}
    if labels & _MONITOR_LABELS or labels & _MONITOR_HISTORY:
        return "bmv"
    if labels & _MPPT_LABELS:
        return "mppt"
    return "unknown"


class Assembler:
    """Merges the text blocks of one device into readings (see the module docstring)."""

    __slots__ = (
        "_cache",
        "_candidate",
        "_expected",
        "_firmware",
        "_learned",
        "_mismatch",
        "_no_pid_mode",
        "_orphans_in_row",
        "_pending",
        "_pending_mono",
        "_pid",
        "_serial",
        "_since_pid",
        "device",
        "stale_after",
        "stats",
        "unknown_label_names",
    )

    def __init__(self, device: str, *, stale_after: float = 3.0) -> None:
        self.device = device
        self.stale_after = stale_after
        self.stats = AssemblerStats()
        # Up to 32 distinct unknown labels seen (for logs and /health), in order of arrival.
        self.unknown_label_names: list[str] = []
        self._pending: list[TextBlock] = []
        self._cache = _RecordCache()
        self._pending_mono = 0.0
        self._expected = 0  # learned blocks per update (valid when _learned)
        self._learned = False
        self._candidate = 0  # last observed count while not learned (0 = none yet)
        self._since_pid = 0  # blocks since the last PID block, including it; 0 = none yet
        self._mismatch = (0, 0)  # (observed count, times in a row) differing from _expected
        self._pid: int | None = None
        self._serial: str | None = None
        self._firmware: str | None = None
        self._no_pid_mode = False
        self._orphans_in_row = 0

    # -- counters, as attributes for convenience -------------------------------------------

    @property
    def readings(self) -> int:
        return self.stats.readings

    @property
    def unknown_labels(self) -> int:
        return self.stats.unknown_labels

    @property
    def undecodable(self) -> int:
        return self.stats.undecodable

    @property
    def stale_dropped(self) -> int:
        return self.stats.stale_dropped

    @property
    def blocks_per_update(self) -> int | None:
        """The learned number of blocks per update (None until learned)."""
        return self._expected if self._learned else None

    # -- input -----------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget the update in progress (e.g. the port was reopened); keep what was learned."""
        self._drop_pending()
        self._since_pid = 0

    def block_lost(self) -> None:
        """A text block was lost (the parser reported a checksum, oversize or malformed block).

        The update in progress can no longer be whole: it is dropped now, and blocks without
        ``PID`` that follow are orphans until the next ``PID`` block. Without this call two
        losses in a row (H block of one update, main block of the next) would let a main
        block merge with the next update's H block.
        """
        self._drop_pending()
        self._since_pid = 0  # this update's size was not observed

    def feed_event(self, event: Event, wall: datetime, mono: float) -> Reading | None:
        """Feed any parser event: text blocks are assembled, lost blocks noted, HEX records
        left to the device session (answers to its commands; ``:A`` values of the registers it
        polls join its readings there, see :mod:`vedirect_async.poller`)."""
        if isinstance(event, TextBlock):
            return self.feed(event, wall, mono)
        if isinstance(event, ErrorEvent) and event.kind in _TEXT_LOSSES:
            self.block_lost()
        return None

    def flush(self, wall: datetime, mono: float) -> Reading | None:
        """End of input: emit the update in progress if it may be complete, else drop it.

        Only an update whose size is not learned yet can be emitted here (a capture holding a
        single update); a learned-size update still waiting for a block is incomplete.
        """
        if not self._pending:
            return None
        if self._learned and len(self._pending) < self._expected:
            self._drop_pending()
            return None
        return self._emit(wall, mono)

    def feed(self, block: TextBlock, wall: datetime, mono: float) -> Reading | None:
        """Add one verified block; return the reading it completes, if any."""
        stats = self.stats
        stats.blocks += 1
        if self._pending and mono - self._pending_mono > self.stale_after:
            stats.stale_dropped += len(self._pending)
            self._pending.clear()
            self._since_pid = 0  # the gap says nothing about the update size
        pid = self._pid_of(block.raw)
        if pid is None:
            return self._feed_continuation(block, wall, mono)
        self._orphans_in_row = 0
        self._no_pid_mode = False
        if pid != self._pid:
            if self._pid is not None:
                self._drop_pending()
                self._learned = False
                self._candidate = 0
                self._since_pid = 0
                self._serial = self._firmware = None
            self._pid = pid
        if self._since_pid:
            self._observe(self._since_pid)
        older: Reading | None = None
        if self._pending:
            if self._complete(self._pending):
                older = self._emit(wall, mono)
            else:
                self._drop_pending()
        self._pending = [block]
        self._pending_mono = mono
        self._since_pid = 1
        if self._complete(self._pending):
            if older is not None:
                # Learning just showed both the previous update and this block are complete
                # (a split the family rule misjudged): the newer one wins, once.
                stats.incomplete += 1
                stats.readings -= 1
            return self._emit(wall, mono)
        return older

    def _pid_of(self, raw: bytes) -> int | None:
        """The block's product id; None if it has no PID (or a PID that is not ``0x`` hex)."""
        start = raw.find(_PID_RECORD)  # one C-level search instead of a loop over the fields
        if start < 0:
            return None
        start += 2  # the record itself, without the CR LF before it
        record = raw[start : raw.find(b"\r\n", start)]  # the Checksum record follows
        entry = self._cache[record]  # decoded once, parsed once
        return cast("int | None", entry[3])  # a PID record's extra: the id, None if malformed

    def _feed_continuation(self, block: TextBlock, wall: datetime, mono: float) -> Reading | None:
        if self._since_pid:
            self._since_pid += 1
        if self._no_pid_mode:
            self._pending = [block]
            return self._emit(wall, mono)
        if not self._pending:
            self.stats.orphans += 1
            self._orphans_in_row += 1
            if self._pid is None and self._orphans_in_row >= _ORPHANS_FOR_NO_PID_MODE:
                self._no_pid_mode = True
                self._pending = [block]
                return self._emit(wall, mono)
            return None
        self._pending.append(block)
        if self._complete(self._pending):
            return self._emit(wall, mono)
        return None

    # -- the update rule -------------------------------------------------------------------

    def _observe(self, count: int) -> None:
        """Learn from an update that ``count`` blocks separated two PID blocks."""
        if not self._learned:
            # Two updates in a row must agree: a block lost in the very first update (or a
            # PID block lost, gluing two updates) must not teach a wrong count.
            if count == self._candidate:
                self._expected, self._learned = count, True
                self.stats.relearned += 1
                self._mismatch = (0, 0)
            self._candidate = count
        elif count == self._expected:
            self._mismatch = (0, 0)
        else:
            seen, times = self._mismatch
            times = times + 1 if seen == count else 1
            self._mismatch = (count, times)
            if times >= _MISMATCHES_TO_RELEARN:
                self._expected = count
                self.stats.relearned += 1
                self._mismatch = (0, 0)

    def _complete(self, blocks: list[TextBlock]) -> bool:
        if self._learned:
            return len(blocks) >= self._expected
        family = product_family(self._pid) if self._pid is not None else "unknown"
        if family == "unknown":
            family = _family_from_labels(blocks[0])
        if family == "bmv":
            return any(_is_history_label(label) for b in blocks for label, _ in b.fields)
        if family == "mppt":
            return any(label == _HSDS for b in blocks for label, _ in b.fields)
        return len(blocks) >= (self._candidate or 1)

    def _drop_pending(self) -> None:
        if self._pending:
            self.stats.incomplete += 1
            self._pending.clear()

    # -- decoding --------------------------------------------------------------------------

    def _emit(self, wall: datetime, mono: float) -> Reading:
        blocks, self._pending = self._pending, []
        reading = self._decode(blocks, wall, mono)
        self.stats.readings += 1
        return reading

    def _decode(self, blocks: list[TextBlock], wall: datetime, mono: float) -> Reading:
        # The hot path: one C-level pass per step over the update's records. Each record
        # ("V\t12800", straight from the verified block) is looked up whole in the cache, so
        # a repeated record costs one dict lookup (a new one is decoded by the cache itself);
        # values and raw are then built from the cached pairs without a Python-level loop.
        # Only the few records that set identity or count a bad field (``_Entry.outcome``
        # != 0) are looked at one by one.
        decoded = self._cache.__getitem__
        entries: list[_Entry] = []
        for block in blocks:
            entries += map(decoded, _records(block.raw))
        pid: int | None = None
        for _, (label, text), outcome, extra in filter(_OUTCOME, entries):
            if outcome == _PID_FIELD:
                pid = cast(int, extra)  # parsed when cached
            elif outcome == _SERIAL_FIELD:
                self._serial = text
            elif outcome == _FIRMWARE_FIELD:
                self._firmware = cast(str, extra)  # already formatted like "3.08"
            else:
                self._count_bad(label, outcome)
        if pid is None:
            pid = self._pid
        return _new_reading(
            device=self.device,
            time=wall,
            monotonic=mono,
            values=MappingProxyType(dict(map(_KEY_VALUE, entries))),
            raw=tuple(map(_LABEL_TEXT, entries)),
            pid=pid,
            product=product_name(pid) if pid is not None else None,
            serial=self._serial,
            firmware=self._firmware,
        )

    def _count_bad(self, label: str, outcome: int) -> None:
        if outcome == _UNKNOWN_LABEL:
            self.stats.unknown_labels += 1
            names = self.unknown_label_names
            if len(names) < _MAX_UNKNOWN_NAMES and label not in names:
                names.append(label)
        else:
            self.stats.undecodable += 1


# What decoding one wire pair found (0 = a plain, decoded field: the hot path tests only that).
_PLAIN, _PID_FIELD, _SERIAL_FIELD, _FIRMWARE_FIELD, _UNKNOWN_LABEL, _UNDECODABLE = range(6)
_IDENTITY = {
    "PID": _PID_FIELD,
    "SER#": _SERIAL_FIELD,
    "FW": _FIRMWARE_FIELD,
    "FWE": _FIRMWARE_FIELD,
}
# One decoded wire record: ((values key, value), (label, raw text), outcome, extra), where
# extra is the product id (int) of a PID record and the formatted version of FW/FWE.
_Entry = tuple[tuple[str, Value], tuple[str, str], int, object]
_KEY_VALUE = operator.itemgetter(0)
_LABEL_TEXT = operator.itemgetter(1)
_OUTCOME = operator.itemgetter(2)
# Decoded records are cached per assembler (_RecordCache): most values repeat from one update
# to the next (identity, history, ON/OFF, slow counters), which makes decoding several times
# faster.
_CACHE_SIZE = 2048
_MAX_UNKNOWN_NAMES = 32
_CHECKSUM_RECORD = 12  # b"\r\nChecksum\t" and the checksum byte end every verified block


class _RecordCache(dict[bytes, _Entry]):
    """Wire record -> its decoded entry; ``cache[record]`` decodes and stores a new record.

    Bounded: simply cleared when full, so its memory stays small (~0.5 MB).
    """

    __slots__ = ()

    def __missing__(self, record: bytes) -> _Entry:
        if len(self) >= _CACHE_SIZE:
            self.clear()
        label, _, value = record.partition(b"\t")  # the parser checked: one TAB per record
        entry = self[record] = _decode_pair(label, value)
        return entry


def _records(raw: bytes) -> list[bytes]:
    """A verified block's records (``b"V\\t12800"``) in wire order, Checksum excluded."""
    if len(raw) <= _CHECKSUM_RECORD:
        return []
    return raw[2:-_CHECKSUM_RECORD].split(b"\r\n")


def _decode_pair(label_b: bytes, value_b: bytes) -> _Entry:
    text = text_of(value_b)
    known = _KNOWN_LABELS.get(label_b)
    if known is None:
        label = label_b.decode("ascii")  # the parser admits only [A-Za-z0-9_#] labels
        return (label, text), (label, text), _UNKNOWN_LABEL, None
    label, found, outcome = known
    value = try_decode(found, value_b)
    if value is None:  # never text under a number's unit: unavailable, counted, raw kept
        return (found.name, UNAVAILABLE), (label, text), _UNDECODABLE, None
    extra: object = None
    if outcome == _PID_FIELD:
        extra = parse_pid(value_b)  # None only for "---" (UNAVAILABLE)
    elif outcome == _FIRMWARE_FIELD:
        extra = str(value)
    return (found.name, value), (label, text), outcome, extra


# The catalogue by wire label, with what a decoded field of that label sets (computed once).
_KNOWN_LABELS: Mapping[bytes, tuple[str, Field, int]] = MappingProxyType(
    {
        label.encode("ascii"): (label, found, _IDENTITY.get(label, _PLAIN))
        for label, found in CATALOGUE.items()
    }
)
