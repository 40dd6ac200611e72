"""``Reading``: one complete, checksum-verified update of one device, decoded.

The block assembler (which merges the blocks of one update, e.g. a BMV's main block and its
H block) lives here too; it is pure code (no I/O).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType

__all__ = ["UNAVAILABLE", "Reading", "Value"]


class _Unavailable:
    """The device sent ``---`` (e.g. SOC/CE of an unsynchronised BMV): no value, never 0."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "UNAVAILABLE"

    def __bool__(self) -> bool:
        return False


UNAVAILABLE = _Unavailable()

# A decoded value: a number in the catalogue unit, an ON/OFF bool, an enum name, a list of
# bitmask reasons, free text, or UNAVAILABLE. float("inf") is TTG's "infinite" (-1 on the wire).
Value = float | int | bool | str | tuple[str, ...] | _Unavailable


def _frozen(mapping: Mapping[str, Value] | None = None) -> Mapping[str, Value]:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True, slots=True)
class Reading:
    """One update of one device.

    - ``values``: catalogue field name → decoded value (units: :func:`fields.unit_of`).
      Unknown labels are kept as text under their label.
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
