"""The VE.Direct text field catalogue: label -> name, unit, scale, kind, enum tables, PIDs.

Pure code, no I/O. Everything here follows the reference's protocol notes (sections 4, 5
and 8); where sources disagree, the resolution is written next to the table.

Decoding rules (every one pinned by ``tests/test_fields.py``):

- Numbers are scaled to the catalogue unit: mV -> V, mA -> A, mAh -> Ah, per-mille -> %,
  0.01 kWh -> kWh, 0.01 V / 0.1 A (inverter, DC-DC) -> V / A. Unscaled numbers stay ``int``;
  scaled ones are ``float`` computed by exact division (``12345 / 1000 == 12.345``).
- ``---`` (not synchronised, sensor missing) is :data:`UNAVAILABLE`, never 0.
- ``TTG -1`` is ``float("inf")`` (battery not discharging).
- ``ON``/``OFF`` are ``True``/``False``, in any case (``LOAD On`` is true).
- Enums (CS, ERR, MPPT, MODE, MON) decode to their name; unknown codes to ``"unknown (n)"``.
- Bitmasks (AR, WARN decimal; OR ``0x%08X``) decode to a tuple of reasons, lowest bit first;
  undefined bits to ``"bit n"``; 0 to ``()``.
- PID decodes to its normalised form ``"0xA053"`` (the product name is in the reading);
  FW/FWE to ``"3.08"`` style, with ``-rc-C`` / ``-beta-01`` suffixes for pre-releases.
- Text (SER#, BMV, HC#, unknown labels) is ASCII; other bytes (NUL, 0x80-0xFF, control
  characters) become ``\\xNN`` escapes, so a value is always a printable ``str``.
- A value that does not parse as its kind (``V +12450``, a number with a 0xA5 in it, an
  enum code ``x``) is :data:`UNAVAILABLE`, never text: a field keeps one type and unit in every
  output (a string under the unit V would be wrong in the CSV, the metrics and HA alike).
  :func:`try_decode` returns ``None`` for it so the assembler can count it (``undecodable``);
  the wire text stays in the reading's ``raw``. Text fields and unknown labels are text.
  Nothing here raises on device input.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

__all__ = [
    "AR_BITS",
    "CATALOGUE",
    "CS",
    "ERR",
    "LOAD_OUTPUT_CONTROL",
    "MODE",
    "MON",
    "MPPT",
    "OR_BITS",
    "PRODUCTS",
    "UNAVAILABLE",
    "Field",
    "Kind",
    "Value",
    "decode_value",
    "encode_value",
    "format_firmware",
    "lookup",
    "parse_pid",
    "product_family",
    "product_name",
    "text_of",
    "try_decode",
    "unit_of",
]


class _Unavailable:
    """The device sent ``---`` (e.g. SOC/CE of an unsynchronised BMV): no value, never 0."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "UNAVAILABLE"

    def __bool__(self) -> bool:
        return False

    def __reduce__(self) -> str:
        return "UNAVAILABLE"  # pickles/copies as the singleton


UNAVAILABLE = _Unavailable()

# A decoded value: a number in the catalogue unit, an ON/OFF bool, an enum name, a tuple of
# bitmask reasons, free text, or UNAVAILABLE. float("inf") is TTG's "infinite" (-1 on the wire).
Value = float | int | bool | str | tuple[str, ...] | _Unavailable


class Kind(enum.StrEnum):
    """How a field's value is written on the wire and decoded."""

    NUMBER = "number"  # signed decimal integer, times ``scale``
    ON_OFF = "on_off"  # ON / OFF -> bool
    ENUM = "enum"  # decimal code -> name from ``table``
    BITMASK = "bitmask"  # decimal sum of bits -> tuple of names from ``table``
    HEX_BITMASK = "hex_bitmask"  # "0x%08X" sum of bits -> tuple of names from ``table``
    PID = "pid"  # "0x" hex product id -> "0xA053"
    FIRMWARE = "firmware"  # FW (16 bit, "0308", "C208") -> "3.08", "2.08-rc-C"
    FIRMWARE_EXT = "firmware_ext"  # FWE (24 bit, "316FF", "020801") -> "3.16", "2.08-beta-01"
    TEXT = "text"  # ASCII text, kept as is (escaped)


@dataclass(frozen=True, slots=True)
class Field:
    """One text label of the protocol.

    ``name`` is snake_case and safe in MQTT topics, CSV headers and metric names. ``unit``
    is the unit of the decoded value ("" for none). ``scale`` converts the wire integer to
    ``unit``. ``table`` maps codes (enums) or bit numbers (bitmasks) to names.
    """

    label: str
    name: str
    unit: str
    scale: float
    kind: Kind
    description: str
    table: Mapping[int, str] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def divisor(self) -> int:
        """The wire integer is divided by this (1 for unscaled fields)."""
        return 1 if self.scale >= 1 else round(1 / self.scale)


def _table(items: dict[int, str]) -> Mapping[int, str]:
    return MappingProxyType(items)


# -- enumerations (protocol.md section 5) -------------------------------------------------

# CS: union of every source (section 8: "use the union").
CS = _table(
    {
        0: "off",
        1: "low power",
        2: "fault",
        3: "bulk",
        4: "absorption",
        5: "float",
        6: "storage",
        7: "equalize (manual)",
        8: "passthru",
        9: "inverting",
        10: "assisting",
        11: "power supply",
        244: "sustain",
        245: "starting up",
        246: "repeated absorption",
        247: "auto equalize / recondition",
        248: "battery safe",
        252: "external control",
        255: "not available",
    }
)

# ERR: the VD3.33 set, then Victron's charger_error.h names (section 8), then "unknown (n)".
# 118/119 follow VELIB (OpenDTU has 118 wrong).
ERR = _table(
    {
        0: "no error",
        1: "battery temperature too high",
        2: "battery voltage too high",
        3: "battery temperature sensor miswired (+)",
        4: "battery temperature sensor miswired (-)",
        5: "battery temperature sensor connection lost",
        6: "voltage sense miswired (+)",
        7: "voltage sense miswired (-)",
        8: "voltage sense connection lost",
        9: "voltage wire losses too high",
        10: "battery voltage too low",
        11: "battery ripple too high",
        12: "low state of charge",
        13: "mid-point issue",
        14: "battery temperature too low",
        17: "charger temperature too high",
        18: "charger over current",
        19: "charger current reversed",
        20: "bulk time limit exceeded",
        21: "current sensor issue",
        22: "charger temperature sensor miswired",
        23: "charger temperature sensor connection lost",
        24: "internal fan missing",
        25: "internal fan over current",
        26: "terminals overheated",
        27: "charger short circuit",
        28: "converter issue",
        29: "over-charge protection",
        31: "input voltage out of range",
        32: "input voltage too low",
        33: "input voltage too high",
        34: "input current too high",
        35: "input over power",
        36: "input polarity",
        37: "input voltage absent",
        38: "input shutdown (excessive battery voltage)",
        39: "input shutdown (current flow during off mode)",
        40: "internal failure (PV short protection)",
        41: "inverter shutdown (PV isolation)",
        42: "inverter shutdown (ground current)",
        43: "inverter shutdown (L-PE voltage)",
        50: "inverter overload",
        51: "inverter temperature too high",
        52: "inverter peak current",
        53: "inverter DC level",
        54: "inverter AC level",
        55: "inverter DC fail",
        56: "inverter AC fail",
        57: "AC voltage on output",
        58: "bridge fault",
        59: "ACIN1 relay test fault",
        60: "ACIN2 relay test fault",
        65: "lost communication with one of the devices",
        66: "synchronised charging device configuration issue",
        67: "BMS connection lost",
        68: "network misconfigured",
        # 69-71, 80-87, 202: Victron's current MPPT error-code list (also krahabb's table);
        # the 2022 VELIB copy still had them free (protocol.md section 5).
        69: "network misconfigured",
        70: "network misconfigured",
        71: "network misconfigured",
        80: "PV input shutdown",
        81: "PV input shutdown",
        82: "PV input shutdown",
        83: "PV input shutdown",
        84: "PV input shutdown",
        85: "PV input shutdown",
        86: "PV input shutdown",
        87: "PV input shutdown",
        113: "non-volatile storage write failure",
        114: "CPU temperature too high",
        115: "communication lost",
        116: "factory calibration data lost",
        117: "invalid or incompatible firmware",
        118: "incompatible hardware",
        119: "user settings invalid",
        120: "reference voltage failure",
        121: "tester fail",
        122: "history data invalid",
        200: "internal DC voltage error",
        201: "internal DC voltage error",
        202: "PV residual current sensor self-test failure",
        203: "internal supply voltage error",
        205: "internal supply voltage error",
        212: "internal supply voltage error",
        215: "internal supply voltage error",
        255: "unknown",
    }
)

# AR and WARN share these bits (number -> reason).
AR_BITS = _table(
    {
        0: "low voltage",
        1: "high voltage",
        2: "low SOC",
        3: "low starter voltage",
        4: "high starter voltage",
        5: "low temperature",
        6: "high temperature",
        7: "mid voltage",
        8: "overload",
        9: "DC ripple",
        10: "low AC out voltage",
        11: "high AC out voltage",
        12: "short circuit",
        13: "BMS lockout",
        14: "BMS cable failure",
    }
)

OR_BITS = _table(
    {
        0: "no input power",
        1: "switched off (power switch)",
        2: "switched off (device mode register)",
        3: "remote input",
        4: "protection active",
        5: "PAYGo",
        6: "BMS",
        7: "engine shutdown detection",
        8: "analysing input voltage",
        9: "low battery temperature",
        10: "no PV power",
        11: "low battery",
        12: "low mains",
        13: "parallel: no CAN sync",
        14: "parallel: not enough inverters",
        15: "active alarm prevents start",
    }
)

MPPT = _table({0: "off", 1: "voltage or current limited", 2: "MPP tracker active"})

# MODE: union (section 8).
MODE = _table(
    {0: "off", 1: "charger", 2: "inverter", 3: "on", 4: "off", 5: "eco", 253: "hibernate"}
)

MON = _table(
    {
        -9: "solar charger",
        -8: "wind turbine",
        -7: "shaft generator",
        -6: "alternator",
        -5: "fuel cell",
        -4: "water generator",
        -3: "DC/DC charger",
        -2: "AC charger",
        -1: "generic source",
        0: "battery monitor",
        1: "generic load",
        2: "electric drive",
        3: "fridge",
        4: "water pump",
        5: "bilge pump",
        6: "DC system",
        7: "inverter",
        8: "water heater",
    }
)

# -- products (protocol.md section 5, with the section 8 resolutions) ----------------------
# 0xA06D/0xA078: rev3 (VD3.33); 0xA2F9: go-victron's name; 0xA074: 75/10 (not "70/10");
# 0xA117: keeps "rev2"; 0xA3F0: both names (VD3.33 and the Orion XS capture disagree).
PRODUCTS: Mapping[int, str] = MappingProxyType(
    {
        0x0203: "BMV-700",
        0x0204: "BMV-702",
        0x0205: "BMV-700H",
        0x0300: "BlueSolar MPPT 70/15",
        0xA040: "BlueSolar MPPT 75/50",
        0xA041: "BlueSolar MPPT 150/35",
        0xA042: "BlueSolar MPPT 75/15",
        0xA043: "BlueSolar MPPT 100/15",
        0xA044: "BlueSolar MPPT 100/30",
        0xA045: "BlueSolar MPPT 100/50",
        0xA046: "BlueSolar MPPT 150/70",
        0xA047: "BlueSolar MPPT 150/100",
        0xA048: "BlueSolar MPPT 75/50 rev2",
        0xA049: "BlueSolar MPPT 100/50 rev2",
        0xA04A: "BlueSolar MPPT 100/30 rev2",
        0xA04B: "BlueSolar MPPT 150/35 rev2",
        0xA04C: "BlueSolar MPPT 75/10",
        0xA04D: "BlueSolar MPPT 150/45",
        0xA04E: "BlueSolar MPPT 150/60",
        0xA04F: "BlueSolar MPPT 150/85",
        0xA050: "SmartSolar MPPT 250/100",
        0xA051: "SmartSolar MPPT 150/100",
        0xA052: "SmartSolar MPPT 150/85",
        0xA053: "SmartSolar MPPT 75/15",
        0xA054: "SmartSolar MPPT 75/10",
        0xA055: "SmartSolar MPPT 100/15",
        0xA056: "SmartSolar MPPT 100/30",
        0xA057: "SmartSolar MPPT 100/50",
        0xA058: "SmartSolar MPPT 150/35",
        0xA059: "SmartSolar MPPT 150/100 rev2",
        0xA05A: "SmartSolar MPPT 150/85 rev2",
        0xA05B: "SmartSolar MPPT 250/70",
        0xA05C: "SmartSolar MPPT 250/85",
        0xA05D: "SmartSolar MPPT 250/60",
        0xA05E: "SmartSolar MPPT 250/45",
        0xA05F: "SmartSolar MPPT 100/20",
        0xA060: "SmartSolar MPPT 100/20 48V",
        0xA061: "SmartSolar MPPT 150/45",
        0xA062: "SmartSolar MPPT 150/60",
        0xA063: "SmartSolar MPPT 150/70",
        0xA064: "SmartSolar MPPT 250/85 rev2",
        0xA065: "SmartSolar MPPT 250/100 rev2",
        0xA066: "BlueSolar MPPT 100/20",
        0xA067: "BlueSolar MPPT 100/20 48V",
        0xA068: "SmartSolar MPPT 250/60 rev2",
        0xA069: "SmartSolar MPPT 250/70 rev2",
        0xA06A: "SmartSolar MPPT 150/45 rev2",
        0xA06B: "SmartSolar MPPT 150/60 rev2",
        0xA06C: "SmartSolar MPPT 150/70 rev2",
        0xA06D: "SmartSolar MPPT 150/85 rev3",
        0xA06E: "SmartSolar MPPT 150/100 rev3",
        0xA06F: "BlueSolar MPPT 150/45 rev2",
        0xA070: "BlueSolar MPPT 150/60 rev2",
        0xA071: "BlueSolar MPPT 150/70 rev2",
        0xA072: "BlueSolar MPPT 150/45 rev3",
        0xA073: "SmartSolar MPPT 150/45 rev3",
        0xA074: "SmartSolar MPPT 75/10 rev2",
        0xA075: "SmartSolar MPPT 75/15 rev2",
        0xA076: "BlueSolar MPPT 100/30 rev3",
        0xA077: "BlueSolar MPPT 100/50 rev3",
        0xA078: "BlueSolar MPPT 150/35 rev3",
        0xA079: "BlueSolar MPPT 75/10 rev2",
        0xA07A: "BlueSolar MPPT 75/15 rev2",
        0xA07B: "BlueSolar MPPT 100/15 rev2",
        0xA07C: "BlueSolar MPPT 75/10 rev3",
        0xA07D: "BlueSolar MPPT 75/15 rev3",
        0xA07E: "SmartSolar MPPT 100/30 12V",
        0xA07F: "All-In-1 SmartSolar MPPT 75/15 12V",
        0xA102: "SmartSolar MPPT VE.Can 150/70",
        0xA103: "SmartSolar MPPT VE.Can 150/45",
        0xA104: "SmartSolar MPPT VE.Can 150/60",
        0xA105: "SmartSolar MPPT VE.Can 150/85",
        0xA106: "SmartSolar MPPT VE.Can 150/100",
        0xA107: "SmartSolar MPPT VE.Can 250/45",
        0xA108: "SmartSolar MPPT VE.Can 250/60",
        0xA109: "SmartSolar MPPT VE.Can 250/70",
        0xA10A: "SmartSolar MPPT VE.Can 250/85",
        0xA10B: "SmartSolar MPPT VE.Can 250/100",
        0xA10C: "SmartSolar MPPT VE.Can 150/70 rev2",
        0xA10D: "SmartSolar MPPT VE.Can 150/85 rev2",
        0xA10E: "SmartSolar MPPT VE.Can 150/100 rev2",
        0xA10F: "BlueSolar MPPT VE.Can 150/100",
        0xA110: "SmartSolar MPPT RS 450/100",
        0xA111: "SmartSolar MPPT RS 450/200",
        0xA112: "BlueSolar MPPT VE.Can 250/70",
        0xA113: "BlueSolar MPPT VE.Can 250/100",
        0xA114: "SmartSolar MPPT VE.Can 250/70 rev2",
        0xA115: "SmartSolar MPPT VE.Can 250/100 rev2",
        0xA116: "SmartSolar MPPT VE.Can 250/85 rev2",
        0xA117: "BlueSolar MPPT VE.Can 150/100 rev2",
        0xA201: "Phoenix Inverter 12V 250VA 230V",
        0xA202: "Phoenix Inverter 24V 250VA 230V",
        0xA204: "Phoenix Inverter 48V 250VA 230V",
        0xA211: "Phoenix Inverter 12V 375VA 230V",
        0xA212: "Phoenix Inverter 24V 375VA 230V",
        0xA214: "Phoenix Inverter 48V 375VA 230V",
        0xA221: "Phoenix Inverter 12V 500VA 230V",
        0xA222: "Phoenix Inverter 24V 500VA 230V",
        0xA224: "Phoenix Inverter 48V 500VA 230V",
        0xA231: "Phoenix Inverter 12V 250VA 230V",
        0xA232: "Phoenix Inverter 24V 250VA 230V",
        0xA234: "Phoenix Inverter 48V 250VA 230V",
        0xA239: "Phoenix Inverter 12V 250VA 120V",
        0xA23A: "Phoenix Inverter 24V 250VA 120V",
        0xA23C: "Phoenix Inverter 48V 250VA 120V",
        0xA241: "Phoenix Inverter 12V 375VA 230V",
        0xA242: "Phoenix Inverter 24V 375VA 230V",
        0xA244: "Phoenix Inverter 48V 375VA 230V",
        0xA249: "Phoenix Inverter 12V 375VA 120V",
        0xA24A: "Phoenix Inverter 24V 375VA 120V",
        0xA24C: "Phoenix Inverter 48V 375VA 120V",
        0xA251: "Phoenix Inverter 12V 500VA 230V",
        0xA252: "Phoenix Inverter 24V 500VA 230V",
        0xA254: "Phoenix Inverter 48V 500VA 230V",
        0xA259: "Phoenix Inverter 12V 500VA 120V",
        0xA25A: "Phoenix Inverter 24V 500VA 120V",
        0xA25C: "Phoenix Inverter 48V 500VA 120V",
        0xA261: "Phoenix Inverter 12V 800VA 230V",
        0xA262: "Phoenix Inverter 24V 800VA 230V",
        0xA264: "Phoenix Inverter 48V 800VA 230V",
        0xA269: "Phoenix Inverter 12V 800VA 120V",
        0xA26A: "Phoenix Inverter 24V 800VA 120V",
        0xA26C: "Phoenix Inverter 48V 800VA 120V",
        0xA271: "Phoenix Inverter 12V 1200VA 230V",
        0xA272: "Phoenix Inverter 24V 1200VA 230V",
        0xA274: "Phoenix Inverter 48V 1200VA 230V",
        0xA279: "Phoenix Inverter 12V 1200VA 120V",
        0xA27A: "Phoenix Inverter 24V 1200VA 120V",
        0xA27C: "Phoenix Inverter 48V 1200VA 120V",
        0xA281: "Phoenix Inverter 12V 1600VA 230V",
        0xA282: "Phoenix Inverter 24V 1600VA 230V",
        0xA284: "Phoenix Inverter 48V 1600VA 230V",
        0xA291: "Phoenix Inverter 12V 2000VA 230V",
        0xA292: "Phoenix Inverter 24V 2000VA 230V",
        0xA294: "Phoenix Inverter 48V 2000VA 230V",
        0xA2A1: "Phoenix Inverter 12V 3000VA 230V",
        0xA2A2: "Phoenix Inverter 24V 3000VA 230V",
        0xA2A4: "Phoenix Inverter 48V 3000VA 230V",
        0xA2B1: "Phoenix Inverter Smart 12V 5000VA 230Vac 64k",
        0xA2B2: "Phoenix Inverter Smart 24V 5000VA 230Vac 64k",
        0xA2B4: "Phoenix Inverter Smart 48V 5000VA 230Vac 64k",
        0xA2E1: "Phoenix Inverter 12V 800VA 230Vac 64k HS",
        0xA2E2: "Phoenix Inverter 24V 800VA 230Vac 64k HS",
        0xA2E4: "Phoenix Inverter 48V 800VA 230Vac 64k HS",
        0xA2E9: "Phoenix Inverter 12V 800VA 120Vac 64k HS",
        0xA2EA: "Phoenix Inverter 24V 800VA 120Vac 64k HS",
        0xA2EC: "Phoenix Inverter 48V 800VA 120Vac 64k HS",
        0xA2F1: "Phoenix Inverter 12V 1200VA 230Vac 64k HS",
        0xA2F2: "Phoenix Inverter 24V 1200VA 230Vac 64k HS",
        0xA2F4: "Phoenix Inverter 48V 1200VA 230Vac 64k HS",
        0xA2F9: "Phoenix Inverter 12V 1200VA 120Vac 64k HS",
        0xA2FA: "Phoenix Inverter 24V 1200VA 120Vac 64k HS",
        0xA2FC: "Phoenix Inverter 48V 1200VA 120Vac 64k HS",
        0xA30A: "Blue Smart IP65 Charger 12/25",
        0xA332: "Blue Smart IP22 Charger 24/8",
        0xA334: "Blue Smart IP22 Charger 24/12",
        0xA336: "Blue Smart IP22 Charger 24/16",
        0xA340: "Phoenix Smart IP43 Charger 12/50 (1+1)",
        0xA341: "Phoenix Smart IP43 Charger 12/50 (3)",
        0xA342: "Phoenix Smart IP43 Charger 24/25 (1+1)",
        0xA343: "Phoenix Smart IP43 Charger 24/25 (3)",
        0xA344: "Phoenix Smart IP43 Charger 12/30 (1+1)",
        0xA345: "Phoenix Smart IP43 Charger 12/30 (3)",
        0xA346: "Phoenix Smart IP43 Charger 24/16 (1+1)",
        0xA347: "Phoenix Smart IP43 Charger 24/16 (3)",
        0xA381: "BMV-712 Smart",
        0xA382: "BMV-710H Smart",
        0xA383: "BMV-712 Smart rev2",
        0xA389: "SmartShunt 500A/50mV",
        0xA38A: "SmartShunt 1000A/50mV",
        0xA38B: "SmartShunt 2000A/50mV",
        0xA3F0: "Smart BuckBoost 12V/12V-50A / Orion XS 12V/12V-50A",
        0xA3F1: "Orion XS 1400",
        0xA442: "Multi RS Solar 48V 6000VA 230V",
        0xC038: "SmartShunt 300A/50mV",  # issue 13: seen in the field, missing from VD3.33
    }
)

# Family of a product id, for ids missing from PRODUCTS (tables go stale: new models keep
# appearing). (first, last, family, display name)
_FAMILIES: tuple[tuple[int, int, str, str], ...] = (
    (0x0203, 0x0205, "bmv", "BMV"),
    (0xA381, 0xA38F, "bmv", "BMV / SmartShunt"),
    (0xC038, 0xC038, "bmv", "SmartShunt"),
    (0x0300, 0x0300, "mppt", "MPPT"),
    (0xA040, 0xA07F, "mppt", "MPPT"),
    (0xA100, 0xA1FF, "mppt", "MPPT"),
    (0xA200, 0xA2FF, "inverter", "Phoenix inverter"),
    (0xA300, 0xA34F, "charger", "charger"),
    (0xA3F0, 0xA3FF, "dcdc", "DC-DC converter"),
    (0xA440, 0xA44F, "multi", "Multi RS"),
)


def product_family(pid: int) -> str:
    """``bmv``, ``mppt``, ``inverter``, ``charger``, ``dcdc``, ``multi`` or ``unknown``."""
    for first, last, family, _ in _FAMILIES:
        if first <= pid <= last:
            return family
    return "unknown"


def product_name(pid: int) -> str:
    """The product name; for an unknown id its family, e.g. ``"unknown MPPT (0xA0FF)"``."""
    name = PRODUCTS.get(pid)
    if name is not None:
        return name
    for first, last, _, display in _FAMILIES:
        if first <= pid <= last:
            return f"unknown {display} (0x{pid:04X})"
    return f"unknown product (0x{pid:04X})"


def parse_pid(raw: bytes | str) -> int | None:
    """``b"0xA053"`` / ``b"0x203"`` (any case, any zero padding) -> int; None if malformed."""
    text = raw if isinstance(raw, str) else raw.decode("ascii", "replace")
    if len(text) < 3 or text[:2] not in ("0x", "0X") or not _HEX_DIGITS.fullmatch(text[2:]):
        return None
    return int(text[2:], 16)


# -- the catalogue (protocol.md section 4) -------------------------------------------------

_N = Kind.NUMBER
_MV, _MA, _MAH, _PERMILLE, _CKWH = 0.001, 0.001, 0.001, 0.1, 0.01

_FIELDS: tuple[Field, ...] = (
    Field("PID", "product_id", "", 1, Kind.PID, "product id"),
    Field("FW", "firmware", "", 1, Kind.FIRMWARE, "firmware version (16 bit)"),
    Field("FWE", "firmware", "", 1, Kind.FIRMWARE_EXT, "firmware version (24 bit)"),
    Field("SER#", "serial_number", "", 1, Kind.TEXT, "serial number"),
    Field("BMV", "model", "", 1, Kind.TEXT, "model description (deprecated)"),
    Field("V", "voltage", "V", _MV, _N, "main (battery) voltage"),
    Field("V2", "voltage_2", "V", _MV, _N, "channel 2 (battery) voltage"),
    Field("V3", "voltage_3", "V", _MV, _N, "channel 3 (battery) voltage"),
    Field("VS", "aux_voltage", "V", _MV, _N, "auxiliary (starter) voltage"),
    Field("VM", "mid_voltage", "V", _MV, _N, "mid-point voltage of the battery bank"),
    Field("DM", "mid_deviation", "%", _PERMILLE, _N, "mid-point deviation"),
    Field("VPV", "panel_voltage", "V", _MV, _N, "panel voltage"),
    Field("PPV", "panel_power", "W", 1, _N, "panel power"),
    Field("I", "current", "A", _MA, _N, "main (battery) current"),
    Field("I2", "current_2", "A", _MA, _N, "channel 2 battery current"),
    Field("I3", "current_3", "A", _MA, _N, "channel 3 battery current"),
    Field("IL", "load_current", "A", _MA, _N, "load output current"),
    Field("LOAD", "load", "", 1, Kind.ON_OFF, "load output on"),
    Field("T", "temperature", "°C", 1, _N, "battery temperature"),
    Field("P", "power", "W", 1, _N, "instantaneous power"),
    Field("CE", "consumed_ah", "Ah", _MAH, _N, "consumed amp-hours"),
    Field("SOC", "soc", "%", _PERMILLE, _N, "state of charge"),
    Field("TTG", "time_to_go", "min", 1, _N, "time to go (infinite when not discharging)"),
    Field("Alarm", "alarm", "", 1, Kind.ON_OFF, "alarm condition active"),
    Field("Relay", "relay", "", 1, Kind.ON_OFF, "relay on"),
    Field("AR", "alarm_reason", "", 1, Kind.BITMASK, "alarm reasons", AR_BITS),
    Field("WARN", "warning_reason", "", 1, Kind.BITMASK, "warning reasons", AR_BITS),
    Field("OR", "off_reason", "", 1, Kind.HEX_BITMASK, "off reasons", OR_BITS),
    Field("H1", "history_deepest_discharge", "Ah", _MAH, _N, "depth of the deepest discharge"),
    Field("H2", "history_last_discharge", "Ah", _MAH, _N, "depth of the last discharge"),
    Field("H3", "history_average_discharge", "Ah", _MAH, _N, "depth of the average discharge"),
    Field("H4", "history_charge_cycles", "", 1, _N, "number of charge cycles"),
    Field("H5", "history_full_discharges", "", 1, _N, "number of full discharges"),
    Field("H6", "history_cumulative_ah", "Ah", _MAH, _N, "cumulative amp-hours drawn"),
    Field("H7", "history_min_voltage", "V", _MV, _N, "minimum main voltage"),
    Field("H8", "history_max_voltage", "V", _MV, _N, "maximum main voltage"),
    Field("H9", "history_since_full_charge", "s", 1, _N, "time since the last full charge"),
    Field("H10", "history_auto_syncs", "", 1, _N, "number of automatic synchronisations"),
    Field("H11", "history_low_voltage_alarms", "", 1, _N, "low main-voltage alarms"),
    Field("H12", "history_high_voltage_alarms", "", 1, _N, "high main-voltage alarms"),
    Field("H13", "history_low_aux_voltage_alarms", "", 1, _N, "low aux-voltage alarms"),
    Field("H14", "history_high_aux_voltage_alarms", "", 1, _N, "high aux-voltage alarms"),
    Field("H15", "history_min_aux_voltage", "V", _MV, _N, "minimum aux voltage"),
    Field("H16", "history_max_aux_voltage", "V", _MV, _N, "maximum aux voltage"),
    Field("H17", "history_discharged_energy", "kWh", _CKWH, _N, "discharged (produced) energy"),
    Field("H18", "history_charged_energy", "kWh", _CKWH, _N, "charged (consumed) energy"),
    Field("H19", "yield_total", "kWh", _CKWH, _N, "yield total (user resettable)"),
    Field("H20", "yield_today", "kWh", _CKWH, _N, "yield today"),
    Field("H21", "max_power_today", "W", 1, _N, "maximum power today"),
    Field("H22", "yield_yesterday", "kWh", _CKWH, _N, "yield yesterday"),
    Field("H23", "max_power_yesterday", "W", 1, _N, "maximum power yesterday"),
    Field("ERR", "error", "", 1, Kind.ENUM, "charger error", ERR),
    Field("CS", "charger_state", "", 1, Kind.ENUM, "state of operation", CS),
    Field("MPPT", "tracker_mode", "", 1, Kind.ENUM, "tracker operation mode", MPPT),
    Field("MODE", "device_mode", "", 1, Kind.ENUM, "device mode", MODE),
    Field("MON", "monitor_mode", "", 1, Kind.ENUM, "DC monitor mode", MON),
    Field("HSDS", "day_sequence", "", 1, _N, "history day sequence number (0-364)"),
    Field("AC_OUT_V", "ac_out_voltage", "V", 0.01, _N, "AC output voltage"),
    Field("AC_OUT_I", "ac_out_current", "A", 0.1, _N, "AC output current"),
    Field("AC_OUT_S", "ac_out_apparent_power", "VA", 1, _N, "AC output apparent power"),
    Field("DC_IN_V", "dc_in_voltage", "V", 0.01, _N, "DC input voltage"),
    Field("DC_IN_I", "dc_in_current", "A", 0.1, _N, "DC input current"),
    Field("DC_IN_P", "dc_in_power", "W", 1, _N, "DC input power"),
    Field("HC#", "hc", "", 1, Kind.TEXT, "undocumented (Blue Smart chargers); opaque text"),
)

# Load output control (HEX 0xEDAB only; Victron's BlueSolar HEX document as implementers quote
# it: values 2, 3 and 5-7 not verified here).
LOAD_OUTPUT_CONTROL = _table(
    {
        0: "off",
        1: "auto",
        2: "alternative 1",
        3: "alternative 2",
        4: "on",
        5: "user 1",
        6: "user 2",
        7: "automatic energy selector",
    }
)

# Values that only HEX registers carry (vedirect_async.registers): no text label ever names
# them, so they are not in CATALOGUE, but their names resolve (lookup, unit_of), so every output
# knows their unit, resolution and states. The label is the register id. tests/test_registers.py
# keeps this list equal to the register table.
_HEX_ONLY: tuple[Field, ...] = (
    Field("0x0104", "group_id", "", 1, _N, "group id"),
    Field("0x010B", "model_name", "", 1, Kind.TEXT, "model name"),
    Field("0x0120", "uptime", "s", 1, _N, "time since the device started"),
    Field("0x0140", "capabilities", "", 1, _N, "capabilities bit field"),
    Field("0xED8C", "current_high_resolution", "A", _MA, _N, "battery current (1 mA)"),
    Field("0xEEB6", "synchronised", "", 1, Kind.ON_OFF, "synchronised (SOC valid)"),
    Field("0x1000", "battery_capacity", "Ah", 1, _N, "battery capacity"),
    Field("0xEEFC", "alarm_buzzer", "", 1, Kind.ON_OFF, "alarm buzzer on"),
    Field("0xEDBD", "panel_current", "A", 0.1, _N, "panel current"),
    Field("0xEDDB", "charger_temperature", "°C", 0.01, _N, "charger internal temperature"),
    Field("0xEDDD", "yield_system", "kWh", _CKWH, _N, "system yield (not resettable)"),
    Field(
        "0xEDAB",
        "load_output_control",
        "",
        1,
        Kind.ENUM,
        "load output control",
        LOAD_OUTPUT_CONTROL,
    ),
    Field("0xEDF0", "battery_max_current", "A", 0.1, _N, "maximum charge current"),
    Field("0xEDF7", "absorption_voltage", "V", 0.01, _N, "absorption voltage"),
    Field("0xEDF6", "float_voltage", "V", 0.01, _N, "float voltage"),
    Field("0x2027", "network_dc_input_power", "W", 0.01, _N, "network total DC input power"),
    Field("0x2030", "solar_activity", "", 1, Kind.ON_OFF, "solar activity"),
    Field("0x0230", "ac_out_voltage_setpoint", "V", 0.01, _N, "AC output voltage setpoint"),
)

CATALOGUE: Mapping[str, Field] = MappingProxyType({f.label: f for f in _FIELDS})
# Field.divisor of every catalogue scale, computed once (decoding is on the hot path).
_DIVISORS: Mapping[float, int] = MappingProxyType({f.scale: f.divisor for f in _FIELDS})
# By name; FW and FWE share "firmware" (a device sends one of them), FW is listed first.
_BY_NAME: Mapping[str, Field] = MappingProxyType(
    {f.name: f for f in (*_HEX_ONLY, *reversed(_FIELDS))}  # reversed: the first field wins
)


def lookup(name_or_label: str) -> Field | None:
    """The field for a catalogue name (``"soc"``) or a VE.Direct label (``"SOC"``, exact case)."""
    found = CATALOGUE.get(name_or_label)
    return found if found is not None else _BY_NAME.get(name_or_label)


def unit_of(name: str) -> str:
    """The unit of a decoded value by field name or label; "" for none or unknown fields."""
    found = lookup(name)
    return found.unit if found is not None else ""


# -- decoding ------------------------------------------------------------------------------

_HEX_DIGITS = re.compile(r"[0-9A-Fa-f]{1,8}")
_MAX_DIGITS = 12  # a number on the wire is -?[0-9]{1,12}
_FW = re.compile(rb"([A-Za-z]?)([0-9]{1,4})")
_FWE = re.compile(rb"([0-9]{1,4})([0-9A-Fa-f]{2})")
_VERSION = re.compile(r"([0-9]{1,2})\.([0-9]{2})(?:-(rc|beta)-([0-9A-Za-z]{1,2}))?")
_ESCAPE = re.compile(r"\\x([0-9a-f]{2})")
_NOT_AVAILABLE = b"---"
_INFINITE_LABEL = "TTG"


def text_of(raw: bytes) -> str:
    """``raw`` as printable text: ASCII kept, any other byte (NUL, CR, 0xA5...) as ``\\xNN``."""
    if raw.isascii():
        text = raw.decode("ascii")
        if text.isprintable():  # for ASCII: exactly 0x20-0x7E (cheaper than a regex)
            return text
    return "".join(chr(b) if 0x20 <= b < 0x7F else f"\\x{b:02x}" for b in raw)


def format_firmware(raw: bytes, *, extended: bool = False) -> str | None:
    """FW ``0308`` -> ``3.08``, ``C208`` -> ``2.08-rc-C``; FWE ``316FF`` -> ``3.16``,
    ``020801`` -> ``2.08-beta-01``. None if ``raw`` is not a version."""
    if extended:
        match = _FWE.fullmatch(raw)
        if match is None:
            return None
        number = int(match[1])
        build = match[2].decode("ascii").upper()
        suffix = "" if build == "FF" else f"-beta-{build}"
    else:
        match = _FW.fullmatch(raw)
        if match is None:
            return None
        number = int(match[2])
        suffix = f"-rc-{match[1].decode('ascii')}" if match[1] else ""
    return f"{number // 100}.{number % 100:02d}{suffix}"


def _reasons(mask: int, table: Mapping[int, str]) -> tuple[str, ...]:
    return tuple(
        table.get(bit, f"bit {bit}") for bit in range(mask.bit_length()) if mask >> bit & 1
    )


def _field_of(field_or_label: Field | str | bytes) -> Field | None:
    if isinstance(field_or_label, Field):
        return field_or_label
    if isinstance(field_or_label, bytes):
        field_or_label = field_or_label.decode("ascii", "replace")
    return lookup(field_or_label)


# Kind members as plain module constants: ``Kind.X`` is an enum class attribute lookup, ten
# times slower than a global, and try_decode runs for every new value on the hot path.
_TEXT_KIND, _NUMBER_KIND, _ON_OFF_KIND, _ENUM_KIND = Kind.TEXT, Kind.NUMBER, Kind.ON_OFF, Kind.ENUM
_BITMASK_KIND, _HEX_BITMASK_KIND, _PID_KIND = Kind.BITMASK, Kind.HEX_BITMASK, Kind.PID
_FIRMWARE_EXT_KIND = Kind.FIRMWARE_EXT


def _is_int(raw: bytes) -> bool:
    """``raw`` is ``-?[0-9]{1,12}`` without a regex (``bytes.isdigit`` is ASCII-only; ``int()``
    alone would also take ``+1``, `` 1`` and ``1_0``)."""
    if raw[:1] == b"-":
        raw = raw[1:]
    return raw.isdigit() and len(raw) <= _MAX_DIGITS


def try_decode(field: Field, raw: bytes) -> Value | None:
    """``raw`` decoded as ``field``; None when it does not parse as the field's kind."""
    kind = field.kind
    if kind is _TEXT_KIND:
        return text_of(raw)
    if raw == _NOT_AVAILABLE:
        return UNAVAILABLE
    if kind is _NUMBER_KIND:  # the common case, kept cheap: no regex, no property
        if not _is_int(raw):
            return None
        number = int(raw)
        if number == -1 and field.label == _INFINITE_LABEL:
            return math.inf
        divisor = _DIVISORS.get(field.scale) or field.divisor
        return number if divisor == 1 else number / divisor
    if kind is _ON_OFF_KIND:
        if raw == b"ON" or raw == b"OFF":  # noqa: PLR1714 - two bytes compares beat a set here
            return raw == b"ON"
        word = raw.upper()
        return True if word == b"ON" else False if word == b"OFF" else None
    if kind is _ENUM_KIND:
        if not _is_int(raw):
            return None
        code = int(raw)
        return field.table.get(code, f"unknown ({code})")
    if kind is _BITMASK_KIND:
        if raw[:1] == b"-" or not _is_int(raw):
            return None
        return _reasons(int(raw), field.table)
    if kind is _HEX_BITMASK_KIND or kind is _PID_KIND:
        hex_number = parse_pid(raw)
        if hex_number is None:
            return None
        if kind is _PID_KIND:
            return f"0x{hex_number:04X}"
        return _reasons(hex_number, field.table)
    return format_firmware(raw, extended=kind is _FIRMWARE_EXT_KIND)


def decode_value(field_or_label: Field | str | bytes, raw: bytes) -> Value:
    """Decode one wire value; never raises. Unknown labels -> text; a value that does not
    parse as its field's kind -> UNAVAILABLE (see the module docstring)."""
    found = _field_of(field_or_label)
    if found is None:
        return text_of(raw)
    value = try_decode(found, raw)
    return UNAVAILABLE if value is None else value


# -- encoding (the simulator's and the round-trip tests' side) -----------------------------


def _code_of(table: Mapping[int, str], value: Value) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        for code, name in table.items():
            if name == value:
                return code
        match = re.fullmatch(r"(?:unknown \(|bit )(-?[0-9]+)\)?", value)
        if match is not None:
            return int(match[1])
    raise ValueError(f"not a known name: {value!r}")


def _mask_of(table: Mapping[int, str], value: Value) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, tuple):
        return sum(1 << _code_of(table, reason) for reason in set(value))
    raise ValueError(f"not a bitmask: {value!r}")


def encode_value(field: Field | str, value: Value) -> bytes:
    """The wire bytes for ``value`` (the inverse of :func:`decode_value`).

    Raises ``ValueError`` for a value the field cannot carry (this is for our own
    simulator and tests, not for device input).
    """
    found = _field_of(field)
    if found is None:
        raise ValueError(f"unknown field: {field!r}")
    kind = found.kind
    if value is UNAVAILABLE and kind is not Kind.TEXT:
        return _NOT_AVAILABLE
    if kind is Kind.TEXT:
        if not isinstance(value, str):
            raise ValueError(f"{found.label} needs text, got {value!r}")
        out = _ESCAPE.sub(lambda m: chr(int(m[1], 16)), value).encode("latin-1")
    elif kind is Kind.NUMBER:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{found.label} needs a number, got {value!r}")
        if math.isinf(value) and value > 0 and found.label == _INFINITE_LABEL:
            return b"-1"
        out = str(round(value * found.divisor)).encode("ascii")
    elif kind is Kind.ON_OFF:
        out = b"ON" if value else b"OFF"
    elif kind is Kind.ENUM:
        out = str(_code_of(found.table, value)).encode("ascii")
    elif kind is Kind.BITMASK:
        out = str(_mask_of(found.table, value)).encode("ascii")
    elif kind is Kind.HEX_BITMASK:
        out = b"0x%08X" % _mask_of(found.table, value)
    elif kind is Kind.PID:
        pid = parse_pid(str(value)) if isinstance(value, str) else None
        if isinstance(value, int) and not isinstance(value, bool):
            pid = value
        if pid is None:
            raise ValueError(f"not a product id: {value!r}")
        out = b"0x%04X" % pid
    else:
        match = _VERSION.fullmatch(str(value))
        if match is None:
            raise ValueError(f"not a firmware version: {value!r}")
        number = int(match[1]) * 100 + int(match[2])
        if kind is Kind.FIRMWARE:
            prefix = match[4] if match[3] == "rc" else ""
            out = f"{prefix}{number:03d}".encode("ascii")
        else:
            build = match[4] if match[3] == "beta" else "FF"
            out = f"{number:03d}{build}".encode("ascii")
    if any(b in out for b in b"\r\n\t"):
        raise ValueError(f"{found.label}: CR, LF and TAB cannot be sent in a value")
    return out
