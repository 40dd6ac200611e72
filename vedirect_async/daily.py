"""MPPT daily history over HEX: the day records 0x1050-0x106E and the total record 0x104F.

Pure code, no I/O. Layouts are VELIB's (protocol.md section 3.6; pmarches' layout, which
leaves out the error bytes, is wrong: section 8). A field the device has no value for is
all-FF on the wire and ``None`` here. The record classes round-trip byte for byte
(``parse(raw).encode() == raw``), which the simulator relies on to serve history days.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .errors import HexError

__all__ = ["HistoryDay", "HistoryTotal"]

# -- MPPT history records (VELIB layout, protocol.md section 3.6) ---------------------------

# Day record, 34 bytes: version un8; yield, consumed un32 (0.01 kWh); battery V max, min un16
# (0.01 V); error database un8; errors 0-3 4 x un8; time in bulk, absorption, float un16 (min);
# max power un32 (W); battery current max un16 (0.1 A); panel Voc max un16 (0.01 V); day
# sequence number un16. All-FF means not available.
_DAY = struct.Struct("<BIIHHB4sHHHIHHH")
# Total record: version un8; error database un8; errors 4 x un8; user yield, system yield un32
# (0.01 kWh); panel Voc max, battery V max un16 (0.01 V); number of available days un8; then
# padding 0xFF.
_TOTAL = struct.Struct("<BB4sIIHHB")


def _na(raw: int, size: int, divisor: int = 1) -> int | float | None:
    """None for an all-FF field, else the raw value divided by its decimal scale."""
    if raw == (1 << (8 * size)) - 1:
        return None
    return raw if divisor == 1 else raw / divisor


def _raw(value: float | None, size: int, divisor: int = 1) -> int:
    """Inverse of :func:`_na`."""
    return (1 << (8 * size)) - 1 if value is None else round(value * divisor)


@dataclass(frozen=True, slots=True)
class HistoryDay:
    """One MPPT history day (registers 0x1050 + n), values in kWh, V, A, W and minutes."""

    version: int
    yield_kwh: float | None
    consumed_kwh: float | None
    battery_voltage_max: float | None
    battery_voltage_min: float | None
    error_database: int
    errors: tuple[int, int, int, int]
    time_bulk_min: int | None
    time_absorption_min: int | None
    time_float_min: int | None
    max_power_w: int | None
    battery_current_max: float | None
    panel_voltage_max: float | None
    day_sequence: int | None

    @classmethod
    def parse(cls, value: bytes) -> HistoryDay:
        """Decode the 34-byte value of a history-day register."""
        if len(value) < _DAY.size:
            raise HexError(f"history day: {len(value)} bytes, expected {_DAY.size}")
        (ver, yld, cons, vmax, vmin, edb, errs, tb, ta, tf, pmax, imax, voc, seq) = (
            _DAY.unpack_from(value)
        )
        return cls(
            ver,
            _na(yld, 4, 100),
            _na(cons, 4, 100),
            _na(vmax, 2, 100),
            _na(vmin, 2, 100),
            edb,
            (errs[0], errs[1], errs[2], errs[3]),
            _int_na(tb, 2),
            _int_na(ta, 2),
            _int_na(tf, 2),
            _int_na(pmax, 4),
            _na(imax, 2, 10),
            _na(voc, 2, 100),
            _int_na(seq, 2),
        )

    def encode(self) -> bytes:
        """The 34-byte register value."""
        return _DAY.pack(
            self.version,
            _raw(self.yield_kwh, 4, 100),
            _raw(self.consumed_kwh, 4, 100),
            _raw(self.battery_voltage_max, 2, 100),
            _raw(self.battery_voltage_min, 2, 100),
            self.error_database,
            bytes(self.errors),
            _raw(self.time_bulk_min, 2),
            _raw(self.time_absorption_min, 2),
            _raw(self.time_float_min, 2),
            _raw(self.max_power_w, 4),
            _raw(self.battery_current_max, 2, 10),
            _raw(self.panel_voltage_max, 2, 100),
            _raw(self.day_sequence, 2),
        )


def _int_na(raw: int, size: int) -> int | None:
    return None if raw == (1 << (8 * size)) - 1 else raw


@dataclass(frozen=True, slots=True)
class HistoryTotal:
    """The MPPT history total (register 0x104F)."""

    version: int
    error_database: int
    errors: tuple[int, int, int, int]
    user_yield_kwh: float | None
    system_yield_kwh: float | None
    panel_voltage_max: float | None
    battery_voltage_max: float | None
    days_available: int
    size: int = _TOTAL.size  # length of the value on the wire (padded with 0xFF)

    @classmethod
    def parse(cls, value: bytes) -> HistoryTotal:
        """Decode the value of register 0x104F (padding after the fields is ignored)."""
        if len(value) < _TOTAL.size:
            raise HexError(f"history total: {len(value)} bytes, expected {_TOTAL.size}+")
        ver, edb, errs, user, system, voc, vmax, days = _TOTAL.unpack_from(value)
        return cls(
            ver,
            edb,
            (errs[0], errs[1], errs[2], errs[3]),
            _na(user, 4, 100),
            _na(system, 4, 100),
            _na(voc, 2, 100),
            _na(vmax, 2, 100),
            days,
            len(value),
        )

    def encode(self) -> bytes:
        """The register value, padded with 0xFF to ``size`` bytes."""
        packed = _TOTAL.pack(
            self.version,
            self.error_database,
            bytes(self.errors),
            _raw(self.user_yield_kwh, 4, 100),
            _raw(self.system_yield_kwh, 4, 100),
            _raw(self.panel_voltage_max, 2, 100),
            _raw(self.battery_voltage_max, 2, 100),
            self.days_available,
        )
        return packed + b"\xff" * (self.size - len(packed))
