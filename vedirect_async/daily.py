"""Device history over HEX: MPPT day records 0x1050-0x106E, the total 0x104F, BMV history.

- :class:`HistoryDay` / :class:`HistoryTotal` are the raw records (every field, round-trip).
- :class:`DailyRecord` is one day as the service shows it: which day (``days_ago`` from the
  register, a ``date`` once the caller says what today is), yield, max PV power and voltage,
  min/max battery voltage, minutes in bulk/absorption/float, the day's error names.
  :func:`daily_record` builds it from a register and its value; :func:`history_register` is the
  inverse (days ago -> register).
- :class:`BmvHistory` gathers a battery monitor's history registers 0x0300-0x0311 (the HEX
  twins of H1-H18) into one typed record.

Pure code, no I/O. Layouts are VELIB's (protocol.md section 3.6; pmarches' layout, which
leaves out the error bytes, is wrong: section 8). A field the device has no value for is
all-FF on the wire and ``None`` here. The record classes round-trip byte for byte
(``parse(raw).encode() == raw``), which the simulator relies on to serve history days.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import date, timedelta

from .errors import HexError
from .fields import ERR

__all__ = [
    "BMV_HISTORY_REGISTERS",
    "DAYS",
    "FIRST_DAY",
    "LAST_DAY",
    "TOTAL",
    "BmvHistory",
    "DailyRecord",
    "HistoryDay",
    "HistoryTotal",
    "daily_record",
    "days_ago",
    "error_names",
    "history_register",
]

TOTAL = 0x104F  # the history total record
FIRST_DAY = 0x1050  # today
LAST_DAY = 0x106E  # 30 days ago
DAYS = LAST_DAY - FIRST_DAY + 1  # 31 day records: today and the 30 before it

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
    """The MPPT history total (register 0x104F).

    ``tail`` keeps the bytes after the documented fields as they came: the notes call them
    0xFF padding, but a real SmartSolar 1.39 sends ``F9 04`` first (12.73 V: undocumented).
    """

    version: int
    error_database: int
    errors: tuple[int, int, int, int]
    user_yield_kwh: float | None
    system_yield_kwh: float | None
    panel_voltage_max: float | None
    battery_voltage_max: float | None
    days_available: int
    tail: bytes = b"\xff" * (34 - _TOTAL.size)

    @property
    def size(self) -> int:
        """Length of the value on the wire."""
        return _TOTAL.size + len(self.tail)

    @classmethod
    def parse(cls, value: bytes) -> HistoryTotal:
        """Decode the value of register 0x104F."""
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
            value[_TOTAL.size :],
        )

    def encode(self) -> bytes:
        """The register value (the fields, then ``tail``)."""
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
        return packed + self.tail


# -- days as the service shows them ------------------------------------------------------------


def days_ago(register: int) -> int | None:
    """0 for 0x1050 (today) ... 30 for 0x106E; None for any other register."""
    return register - FIRST_DAY if FIRST_DAY <= register <= LAST_DAY else None


def history_register(days: int) -> int:
    """The register of the day ``days`` ago (0 = today, at most 30)."""
    if not 0 <= days < DAYS:
        raise ValueError(f"history holds days 0 (today) to {DAYS - 1}, not {days}")
    return FIRST_DAY + days


def error_names(errors: tuple[int, ...]) -> tuple[str, ...]:
    """The day's error codes as charger error names (ERR table), code 0 (no error) left out."""
    return tuple(ERR.get(code, f"unknown ({code})") for code in errors if code)


@dataclass(frozen=True, slots=True)
class DailyRecord:
    """One day of an MPPT's history: what ``GET /api/daily`` and MQTT show per day.

    Units are in the names: kWh, W, V, minutes. ``None`` where the device has no value.
    """

    days_ago: int
    yield_kwh: float | None
    max_pv_power_w: int | None
    max_pv_voltage: float | None
    battery_voltage_min: float | None
    battery_voltage_max: float | None
    battery_current_max: float | None
    time_bulk_min: int | None
    time_absorption_min: int | None
    time_float_min: int | None
    consumed_kwh: float | None
    errors: tuple[str, ...]
    day_sequence: int | None

    def calendar_day(self, today: date) -> date:
        """The calendar day this record is for, given the device's today."""
        return today - timedelta(days=self.days_ago)

    def as_json(self, today: date | None = None) -> dict[str, object]:
        """A JSON-ready dict; ``date`` (ISO) is there when ``today`` is given."""
        out: dict[str, object] = (
            {} if today is None else {"date": self.calendar_day(today).isoformat()}
        )
        for item in fields(self):
            value = getattr(self, item.name)
            out[item.name] = list(value) if isinstance(value, tuple) else value
        return out


def daily_record(register: int, value: bytes | HistoryDay) -> DailyRecord:
    """The day record of history register ``register`` (0x1050-0x106E) holding ``value``."""
    days = days_ago(register)
    if days is None:
        raise HexError(f"register 0x{register:04X} is not a history day (0x1050-0x106E)")
    day = value if isinstance(value, HistoryDay) else HistoryDay.parse(value)
    return DailyRecord(
        days_ago=days,
        yield_kwh=day.yield_kwh,
        max_pv_power_w=day.max_power_w,
        max_pv_voltage=day.panel_voltage_max,
        battery_voltage_min=day.battery_voltage_min,
        battery_voltage_max=day.battery_voltage_max,
        battery_current_max=day.battery_current_max,
        time_bulk_min=day.time_bulk_min,
        time_absorption_min=day.time_absorption_min,
        time_float_min=day.time_float_min,
        consumed_kwh=day.consumed_kwh,
        errors=error_names(day.errors),
        day_sequence=day.day_sequence,
    )


# -- battery monitor history (registers 0x0300-0x0311, protocol.md section 3.5) ---------------

# register -> catalogue name (the names of the text fields H1-H18 with the same meaning)
BMV_HISTORY_REGISTERS: Mapping[int, str] = {
    0x0300: "history_deepest_discharge",
    0x0301: "history_last_discharge",
    0x0302: "history_average_discharge",
    0x0303: "history_charge_cycles",
    0x0304: "history_full_discharges",
    0x0305: "history_cumulative_ah",
    0x0306: "history_min_voltage",
    0x0307: "history_max_voltage",
    0x0308: "history_since_full_charge",
    0x0309: "history_auto_syncs",
    0x030A: "history_low_voltage_alarms",
    0x030B: "history_high_voltage_alarms",
    0x030C: "history_low_aux_voltage_alarms",
    0x030D: "history_high_aux_voltage_alarms",
    0x030E: "history_min_aux_voltage",
    0x030F: "history_max_aux_voltage",
    0x0310: "history_discharged_energy",
    0x0311: "history_charged_energy",
}


@dataclass(frozen=True, slots=True)
class BmvHistory:
    """A battery monitor's history (Ah, V, s, kWh, counts); None for what was not read."""

    deepest_discharge_ah: float | None = None
    last_discharge_ah: float | None = None
    average_discharge_ah: float | None = None
    charge_cycles: int | None = None
    full_discharges: int | None = None
    cumulative_ah: float | None = None
    min_voltage: float | None = None
    max_voltage: float | None = None
    since_full_charge_s: int | None = None
    auto_syncs: int | None = None
    low_voltage_alarms: int | None = None
    high_voltage_alarms: int | None = None
    low_aux_voltage_alarms: int | None = None
    high_aux_voltage_alarms: int | None = None
    min_aux_voltage: float | None = None
    max_aux_voltage: float | None = None
    discharged_energy_kwh: float | None = None
    charged_energy_kwh: float | None = None

    @classmethod
    def from_values(cls, values: Mapping[str, object]) -> BmvHistory:
        """Build from decoded values keyed by catalogue name (registers' or text H fields')."""
        found: dict[str, object] = {}
        for item, name in zip(fields(cls), BMV_HISTORY_REGISTERS.values(), strict=True):
            value = values.get(name)
            if isinstance(value, int | float) and not isinstance(value, bool):
                found[item.name] = value
        return cls(**found)  # type: ignore[arg-type]
