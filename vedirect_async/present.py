"""One presentation of decoded values for every output: what a value *means*, once.

Pure code (protocol core): :func:`present` turns a field name and its decoded value into a
:class:`Presented` that the web API, MQTT, Domoticz and ``decode`` all read, so a value means
the same everywhere. Each output only picks the form its consumer needs. The CSV log
(``csv_columns``) writes its numbers with :func:`fixed` and keeps its own documented cells for
the rest (``inf``, reasons joined with ``|``), which its header and readers rely on.

The rules (pinned by ``tests/test_present.py``):

- **State.** Every value is in one :class:`State`: ``value``; ``unavailable`` (the device sent
  ``---``, or a float that is not a number); ``infinite`` / ``-infinite`` (TTG ``-1``: the
  battery is not discharging). Only a ``value`` has a number or an item list.
- **Shape** comes from the value itself (a number, an ON/OFF boolean, an enum name, bitmask
  reasons, text), so a value of an unexpected type never breaks an output; an unavailable
  value takes its field's shape.
- **Numbers** keep their catalogue unit (:attr:`Presented.unit`) and are written at the device's
  resolution (:attr:`Presented.decimals`: V and A with 3 decimals, SOC with 1, kWh with 2,
  unscaled numbers with 0), ``.`` as the decimal point, never ``-0.000``.
- **Booleans** are ``ON`` / ``OFF`` as text, ``true`` / ``false`` in JSON, 1 / 0 as a number.
- **Enums** are their name; a code missing from the table stays visible as ``unknown (99)``
  (:attr:`Presented.known` is false, :attr:`Presented.unknown_code` is 99): no device value is
  hidden.
- **Bitmasks** are their reasons, lowest bit first (a JSON list); as text joined with ``, ``,
  and ``none`` when no bit is set.
- **Text** is the text (already printable: the decoder escapes other bytes).
- **JSON** (:attr:`Presented.json`): ``null`` when unavailable, ``"infinite"`` /
  ``"-infinite"``, a list for a bitmask, else the value.
- **Text** (:attr:`Presented.text`): ``""`` when unavailable, ``infinite`` / ``-infinite``,
  else as above.

Outputs that must send something else for a special state say so themselves and read
:attr:`Presented.state` (Domoticz posts a numeric sentinel for ``infinite`` because it reads
numbers with C ``atof``; the CSV log writes ``inf`` so a spreadsheet reads a number).
:func:`domoticz_value` is Domoticz's form (``nvalue``, ``svalue``), shared by the Domoticz
HTTP output and the MQTT output's ``domoticz/in`` messages.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from .fields import UNAVAILABLE, Field, Kind, Value, lookup

__all__ = [
    "INFINITE_VALUE",
    "JsonValue",
    "Presented",
    "Shape",
    "State",
    "domoticz_value",
    "fixed",
    "json_form",
    "present",
]

JsonValue = str | int | float | bool | list[str] | None


class State(enum.StrEnum):
    """Whether a value is there, and if not, why."""

    VALUE = "value"
    UNAVAILABLE = "unavailable"  # "---" (not synchronised, no sensor) or NaN: never 0
    INFINITE = "infinite"  # TTG -1: the battery is not discharging
    MINUS_INFINITE = "-infinite"


class Shape(enum.StrEnum):
    """What kind of value it is."""

    NUMBER = "number"
    BOOLEAN = "boolean"
    ENUM = "enum"
    BITMASK = "bitmask"
    TEXT = "text"


_SHAPE_OF_KIND = {
    Kind.NUMBER: Shape.NUMBER,
    Kind.ON_OFF: Shape.BOOLEAN,
    Kind.ENUM: Shape.ENUM,
    Kind.BITMASK: Shape.BITMASK,
    Kind.HEX_BITMASK: Shape.BITMASK,
}
_UNKNOWN_CODE = re.compile(r"unknown \((-?[0-9]+)\)")
_NO_REASON = "none"
_SEPARATOR = ", "


def _decimals(found: Field | None) -> int:
    """Decimals at the device's resolution: 3 for mV -> V, 1 for per-mille -> %, 0 unscaled."""
    if found is None or found.scale >= 1:
        return 0
    return len(str(found.divisor)) - 1


def fixed(number: float, decimals: int) -> str:
    """``number`` with ``decimals`` digits after a ``.`` (never the locale's), no ``-0.000``."""
    text = f"{number:.{decimals}f}"
    if text.startswith("-") and not text.strip("-0."):
        return text[1:]
    return text


@dataclass(frozen=True, slots=True)
class Presented:
    """One value as every output shows it (see the module docstring)."""

    name: str  # catalogue field name (or the label of an unknown field)
    value: Value  # the decoded value, untouched
    state: State
    shape: Shape
    unit: str  # the catalogue unit, "" for none
    decimals: int  # the device's resolution for numbers

    @property
    def available(self) -> bool:
        return self.state is State.VALUE

    @property
    def number(self) -> int | float | None:
        """The value as a finite number (a boolean is 1 or 0); None for anything else."""
        if self.state is not State.VALUE:
            return None
        value = self.value
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, int | float):
            return value
        return None

    @property
    def items(self) -> tuple[str, ...]:
        """A bitmask's reasons, lowest bit first; () for anything else."""
        return self.value if isinstance(self.value, tuple) else ()

    @property
    def known(self) -> bool:
        """False for an enum code missing from the catalogue's table (``unknown (99)``)."""
        return not (self.shape is Shape.ENUM and self.unknown_code is not None)

    @property
    def unknown_code(self) -> int | None:
        """The wire code of an enum value missing from the tables, else None."""
        if self.shape is not Shape.ENUM or not isinstance(self.value, str):
            return None
        match = _UNKNOWN_CODE.fullmatch(self.value)
        return int(match[1]) if match is not None else None

    @property
    def json(self) -> JsonValue:
        """A JSON scalar: null, "infinite", a list for a bitmask, else the value."""
        return _json(self.value, self.state)

    @property
    def text(self) -> str:
        """Plain text: "" when unavailable, "infinite", ON/OFF, numbers at the resolution."""
        state = self.state
        if state is State.UNAVAILABLE:
            return ""
        if state is not State.VALUE:
            return state.value
        value = self.value
        if isinstance(value, bool):
            return "ON" if value else "OFF"
        if isinstance(value, int):
            return str(value) if self.decimals == 0 else fixed(value, self.decimals)
        if isinstance(value, float):
            return fixed(value, self.decimals) if self.decimals else _shortest(value)
        if isinstance(value, tuple):
            return _SEPARATOR.join(value) if value else _NO_REASON
        return str(value)

    def fixed(self, decimals: int | None = None) -> str | None:
        """A finite number at ``decimals`` (default: the device's resolution); else None."""
        number = self.number
        if number is None:
            return None
        return fixed(number, self.decimals if decimals is None else decimals)

    def with_unit(self) -> str:
        """``text`` followed by the unit when there is a number (``12.800 V``, ``infinite``)."""
        if self.state is State.VALUE and self.unit and self.shape is Shape.NUMBER:
            return f"{self.text} {self.unit}"
        return self.text


def _shortest(number: float) -> str:
    """An unscaled float (not from the wire) as short as it reads back: 5.0 -> "5"."""
    text = repr(number)
    return text[:-2] if text.endswith(".0") else text


def _state(value: Value) -> State:
    if value is UNAVAILABLE:
        return State.UNAVAILABLE
    if isinstance(value, float) and not math.isfinite(value):
        if math.isnan(value):
            return State.UNAVAILABLE
        return State.INFINITE if value > 0 else State.MINUS_INFINITE
    return State.VALUE


def _shape(value: Value, found: Field | None) -> Shape:
    if isinstance(value, bool):
        return Shape.BOOLEAN
    if isinstance(value, int | float):
        return Shape.NUMBER
    if isinstance(value, tuple):
        return Shape.BITMASK
    kind_shape = _SHAPE_OF_KIND.get(found.kind) if found is not None else None
    if isinstance(value, str):
        return Shape.ENUM if kind_shape is Shape.ENUM else Shape.TEXT
    return kind_shape or Shape.TEXT  # UNAVAILABLE: its field's shape


def _json(value: Value, state: State) -> JsonValue:
    if state is State.UNAVAILABLE:
        return None
    if state is not State.VALUE:
        return state.value
    if isinstance(value, tuple):
        return list(value)
    return value  # type: ignore[return-value]  # str, int, float or bool here


def json_form(value: Value) -> tuple[JsonValue, State]:
    """``(present(name, value).json, present(name, value).state)`` for any ``name``, cheaply.

    Neither depends on the field, so a caller that needs only these (the web API, per value
    per request) skips the catalogue lookup and the :class:`Presented`.
    """
    if value is UNAVAILABLE:
        return None, _UNAVAILABLE
    if isinstance(value, tuple):
        return list(value), _VALUE
    if isinstance(value, float) and not math.isfinite(value):
        state = _state(value)
        return _json(value, state), state
    return value, _VALUE  # type: ignore[return-value]  # str, int, float or bool here


# an enum member read from its class costs ~100 ns on Python 3.11; json_form runs per value
_VALUE, _UNAVAILABLE = State.VALUE, State.UNAVAILABLE


def present(name: str, value: Value) -> Presented:
    """``value`` of the field ``name`` (catalogue name or VE.Direct label) as outputs show it."""
    found = lookup(name)
    return Presented(
        name=found.name if found is not None else name,
        value=value,
        state=_state(value),
        shape=_shape(value, found),
        unit=found.unit if found is not None else "",
        decimals=_decimals(found),
    )


# -- Domoticz's form (the HTTP output and MQTT's domoticz/in both post it) ----------------

#: what a numeric device gets for an infinite value (``[domoticz] infinite_value``' default)
INFINITE_VALUE = 99999.0
#: decimals of the svalue per device kind (Domoticz's own precision; custom: 3)
_DECIMALS: Mapping[str, int] = {
    "voltage": 3,
    "current": 3,
    "percentage": 1,
    "custom": 3,
    "temperature": 2,
    "usage": 1,
}


def _alert(shown: Presented) -> tuple[int, str]:
    """Alert level (1 green, 4 red) and text for an alarm-like value."""
    if shown.shape is Shape.BOOLEAN:
        return (4, "Alarm") if shown.value else (1, "No alarm")
    if shown.shape is Shape.BITMASK:
        return (4, shown.text) if shown.items else (1, "No alarm")
    if shown.number is not None:
        return (4 if shown.number else 1), shown.text
    found = lookup(shown.name)
    quiet = found.table.get(0) if found is not None else None  # e.g. ERR 0 "no error"
    return (1 if shown.value in (quiet, "", "OFF") else 4), shown.text


def domoticz_value(
    kind: str,
    value: Value,
    field_name: str = "",
    power: Value | None = None,
    infinite: float = INFINITE_VALUE,
) -> tuple[int, str] | None:
    """(nvalue, svalue) for a Domoticz device of ``kind``; None when it cannot be posted.

    ``value`` is in the catalogue unit (V, A, %, kWh ...). For ``kwh`` the svalue is
    ``POWER;ENERGY`` with the energy as a total in Wh and the power in W (``power``, 0 if None).
    An infinite value (TTG while the battery is not discharging) is ``infinite`` on a text or
    alert device and the sentinel ``infinite`` on a numeric one: Domoticz reads numbers with C
    ``atof``, so a text there would show as 0, which reads as "battery empty".
    """
    shown = present(field_name, value)
    if shown.state is State.UNAVAILABLE:
        return None
    if kind == "text":
        return 0, shown.text
    if kind == "alert":
        return _alert(shown)
    number = shown.number
    if shown.state is State.INFINITE and kind != "kwh":
        number = infinite
    if number is None:
        return None
    if kind == "kwh":
        unit = shown.unit if field_name else "kWh"
        wh = number * (1000.0 if unit == "kWh" else 1.0)
        watts = present("", power).number if power is not None else None
        return 0, f"{fixed(watts or 0.0, 1)};{fixed(wh, 0)}"
    return 0, fixed(number, _DECIMALS.get(kind, 3))
