"""What may be written to a device, and how a value given by a person becomes a register value.

Pure code, no I/O (the write policy that sends, confirms, logs and rate-limits is
:mod:`vedirect_async.control`). A :class:`Control` describes one writable register as an
entity a person (or Home Assistant) sees:

- ``switch``: two states, ``on``/``off`` (device mode of an MPPT or a charger: 1 on, 4 off, as
  protocol.md section 5 MODE says; the BMV's alarm buzzer: 1/0);
- ``select``: a few named codes (an inverter's device mode on/off/eco; an MPPT's load output
  control off/auto/on/...);
- ``number``: a value in the register's display unit with its minimum, maximum and step (the
  register's resolution): battery maximum current 0.1 A, absorption/float voltage 0.01 V.

Every limit comes from the register table (:mod:`vedirect_async.registers`) and, where the
device tells it, from the device itself: an MPPT's model name carries its rated charge
current ("SmartSolar MPPT 100|20": 20 A), which caps the battery maximum current.

:func:`control_for` builds the control for a register on a device family;
:meth:`Control.parse` turns the text or number a person sent into the raw value it would
write, or raises :class:`ValueError` with one line saying what was expected. Nothing outside
the table's range is ever encoded.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from .registers import Register, encode_value, lookup

__all__ = [
    "Control",
    "EntityKind",
    "control_for",
    "rated_current",
    "writable_problem",
]

EntityKind = Literal["switch", "select", "number"]

# Device mode (0x0200) per family, protocol.md section 5 MODE: the codes a write may use.
# MPPTs and chargers: 1 on, 4 off (go-victron's solarChargerDeviceMode); inverters: 2 on,
# 4 off, 5 eco. Families not listed (battery monitors, DC-DC, Multi RS) are not written.
_MODES: Mapping[str, Mapping[str, int]] = MappingProxyType(
    {
        "mppt": MappingProxyType({"on": 1, "off": 4}),
        "charger": MappingProxyType({"on": 1, "off": 4}),
        "inverter": MappingProxyType({"on": 2, "off": 4, "eco": 5}),
    }
)
_ON = frozenset({"on", "true", "1", "yes"})
_OFF = frozenset({"off", "false", "0", "no"})
# "SmartSolar MPPT 100|20", "BlueSolar MPPT 75/15", "SmartSolar MPPT VE.Can 150/70 rev2"
_RATED = re.compile(r"MPPT\b.*?\b\d{2,3}\s*[|/]\s*(\d{1,3})\b")


def rated_current(model: str | None) -> float | None:
    """An MPPT's rated charge current in A from its model name; None when it does not say."""
    if not model:
        return None
    found = _RATED.search(model)
    return float(found.group(1)) if found else None


@dataclass(frozen=True, slots=True)
class Control:
    """One writable register of one device, as an entity (see the module docstring)."""

    register: Register
    kind: EntityKind
    options: Mapping[str, int] | None = None  # switch/select: label -> code
    minimum: float | None = None  # number: in the register's unit
    maximum: float | None = None

    @property
    def name(self) -> str:
        return self.register.name

    @property
    def unit(self) -> str:
        return self.register.unit

    @property
    def step(self) -> float:
        """A number's resolution (the register's scale): 0.1 A, 0.01 V, 1 Ah."""
        return self.register.scale

    def label(self, code: int) -> str | None:
        """The option a code shows as (``1`` -> ``"on"``); None for a code not offered."""
        for text, value in (self.options or {}).items():
            if value == code:
                return text
        return None

    def parse(self, given: str | float | bool) -> float:
        """The value to write (in the register's unit) for what a person sent.

        Switches take on/off (true/false, 1/0, yes/no, any case); selects an option's name or
        its code; numbers a finite number within [minimum, maximum] on the register's step.
        Raises ValueError with what was expected.
        """
        if self.kind == "number":
            return self._number(given)
        options = self.options or {}
        text = str(given).strip().lower() if not isinstance(given, bool) else str(given).lower()
        if self.kind == "switch" and "on" in options and "off" in options:
            if text in _ON:
                return options["on"]
            if text in _OFF:
                return options["off"]
        if text in options:
            return options[text]
        try:
            code = int(text, 0)
        except ValueError:
            code = None
        if code is not None and code in options.values():
            return code
        raise ValueError(f"{self.name}: expected one of {', '.join(options)}; got {given!r}")

    def _number(self, given: str | float | bool) -> float:
        expected = f"{self.name}: expected a number in {self.unit}; got {given!r}"
        try:
            value = math.nan if isinstance(given, bool) else float(given)
        except ValueError:
            raise ValueError(expected) from None
        if not math.isfinite(value):
            raise ValueError(expected)
        steps = value / self.step
        if abs(steps - round(steps)) > 1e-6:
            step = f"{self.step:g} {self.unit}".strip()
            raise ValueError(f"{self.name}: {value:g} is not a multiple of {step}")
        value = round(round(steps) * self.step, 6)
        low = -math.inf if self.minimum is None else self.minimum
        high = math.inf if self.maximum is None else self.maximum
        if not low <= value <= high:
            raise ValueError(
                f"{self.name}: {value:g} {self.unit} is out of range {low:g}..{high:g}".replace(
                    "  ", " "
                )
            )
        return value

    def encode(self, value: float) -> bytes:
        """The raw bytes of ``value`` (already parsed); ValueError if the register forbids it."""
        if not self.register.in_range(value):
            raise ValueError(f"{self.name}: {value:g} is outside the register's range")
        return encode_value(self.register.id, value)

    def shown(self, value: object) -> str | None:
        """A read-back value as the entity shows it ("on", "auto", "12.5"); None if unknown.

        ``value`` is a register's decoded number (codes for switches and selects).
        """
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        if self.kind == "number":
            return f"{value:g}"
        if self.register.id == 0x0200 and self.kind == "switch":
            return "off" if value in (0, 4) else "on"  # an MPPT may read 0 for off
        return self.label(int(value))

    def state(self, value: object) -> str | None:
        """A reading's value of this register (its catalogue form: MODE names, booleans,
        option labels, numbers) as the entity shows it; None when there is none."""
        if value is None or isinstance(value, tuple):
            return None
        if self.kind == "number":
            return f"{value:g}" if isinstance(value, int | float) else None
        if isinstance(value, bool):
            return "on" if value else "off"
        if self.register.id == 0x0200:  # device mode: the reading has MODE's names
            if value in ("off", "hibernate"):
                return "off"
            return "on" if self.kind == "switch" or value in ("charger", "inverter") else str(value)
        return str(value)


def control_for(key: str | int, family: str, model: str | None = None) -> Control:
    """The control of register ``key`` (id or catalogue name) on a device of ``family``.

    Raises ValueError with one line when the register cannot be written on this device.
    """
    reg = lookup(key, family if family != "unknown" else None)
    if reg is None or not reg.writable:
        raise ValueError(f"{key}: not a writable register")
    if reg.id == 0x0200:
        modes = _MODES.get(family)
        if modes is None:
            raise ValueError(f"{reg.name}: not writable on a device of family {family!r}")
        return Control(reg, "switch" if len(modes) == 2 else "select", modes)
    if reg.meaning == "on_off":
        return Control(reg, "switch", MappingProxyType({"on": 1, "off": 0}))
    if reg.meaning == "enum" and reg.table is not None:
        options = {text: code for code, text in reg.table.items()}
        return Control(reg, "select", MappingProxyType(options))
    high = reg.maximum
    if reg.id == 0xEDF0 and (rated := rated_current(model)) is not None:
        high = rated if high is None else min(high, rated)
    return Control(reg, "number", None, reg.minimum, high)


def writable_problem(spec: str) -> str | None:
    """None if ``spec`` names a writable register (for ``[[device]] writable``), else what was
    expected (one line, for the configuration error)."""
    reg = lookup(spec.strip())
    if reg is not None and reg.writable:
        return None
    return (
        "a writable register: device_mode (0x0200), battery_max_current (0xEDF0), "
        "absorption_voltage (0xEDF7), float_voltage (0xEDF6), load_output_control (0xEDAB), "
        "battery_capacity (0x1000), alarm_buzzer (0xEEFC), ac_out_voltage_setpoint (0x0230)"
    )
