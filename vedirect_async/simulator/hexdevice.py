"""What a simulated device answers over HEX, and the asynchronous records it sends (pure).

:class:`RegisterModel` is the device's side of the register table: Get reads the simulated
installation at the current second (the same numbers the text stream shows, at the register's
resolution), Set checks the value against the device's own limits and changes the plant (the
MPPT's load output, charge current limit, charge voltages and on/off mode change what it
reports from the next second on). :class:`HexResponder` turns the bytes a host writes into
the records a device answers (protocol.md section 3.3):

- ping -> ``:5`` + version; app version and product id -> ``:1`` "done";
- Get -> ``:7`` + id + flags + value, flag 0x01 (unknown id, no value) for a register the
  device does not have; Set -> ``:8`` echo with flags 0 (done), 0x01 (unknown id), 0x02
  (read-only register) or 0x04 (value out of range or of the wrong size);
- a record whose check byte or digits are wrong -> ``:4AAAAFD``; a reserved command nibble ->
  ``:3`` "unknown"; restart and enter-boot are not answered.

After the first valid command the device is "in HEX mode" and sends asynchronous ``:A``
records every second (:func:`async_burst`): an MPPT its uptime, charger temperature, panel
power and voltage, and its battery voltage, current and state when they change, as a
SmartSolar 150/70 does; a battery monitor voltage, current, power, SOC and consumed Ah when
they change.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from ..daily import FIRST_DAY, LAST_DAY, TOTAL, HistoryDay, HistoryTotal
from ..errors import HexError
from ..hexframe import (
    AppVersion,
    Command,
    Done,
    ErrorResponse,
    Flags,
    HexFrame,
    PingResponse,
    RegisterMessage,
    UnknownResponse,
)
from ..registers import decode_value, encode_value
from .plant import CAPACITY_AH, DISCHARGE_FLOOR, LOAD_AUTO, LOAD_OFF, LOAD_ON, PastDay, Plant

__all__ = [
    "HexResponder",
    "Identity",
    "RegisterModel",
    "Setting",
    "async_burst",
    "bmv_model",
    "history_day",
    "mppt_model",
]

_MAX_LINE = 256  # bytes of a host record without its '\n' before it is dropped as garbage


@dataclass(frozen=True, slots=True)
class Identity:
    """Who the simulated device says it is, over text and HEX alike."""

    product_id: int
    firmware: str  # "1.59": ping, app version and register 0x0102
    serial: str
    model: str

    @property
    def version(self) -> AppVersion:
        """The 16-bit version of ping answers (top bits 01: an application release)."""
        major, _, minor = self.firmware.partition(".")
        return AppVersion(0x4000 | int(major, 16) << 8 | int(minor, 16))


Getter = Callable[[], object]


@dataclass(frozen=True, slots=True)
class Setting:
    """A register a Set may change: the device's own limits, then what the Set does."""

    minimum: float
    maximum: float
    apply: Callable[[float], None]
    allowed: frozenset[int] | None = None  # only these codes (modes the simulator knows)

    def accepts(self, value: float) -> bool:
        """Whether this device takes ``value``."""
        if self.allowed is not None and value not in self.allowed:
            return False
        return self.minimum <= value <= self.maximum


class RegisterModel:
    """The registers one simulated device has: getters on the plant, settings with limits."""

    __slots__ = ("_getters", "_settings", "identity")

    def __init__(
        self, identity: Identity, getters: dict[int, Getter], settings: dict[int, Setting]
    ) -> None:
        self.identity = identity
        self._getters = getters
        self._settings = settings

    def __contains__(self, register: int) -> bool:
        return register in self._getters

    @property
    def registers(self) -> tuple[int, ...]:
        """Every register this device answers."""
        return tuple(self._getters)

    def get(self, register: int) -> bytes | None:
        """The register's value bytes now; None when the device has no such register."""
        getter = self._getters.get(register)
        if getter is None:
            return None
        return encode_value(register, getter())  # type: ignore[arg-type]

    def value(self, register: int) -> object:
        """The register's value now, decoded (for tests and async records)."""
        return self._getters[register]()

    def set(self, register: int, raw: bytes) -> Flags:
        """Apply a Set; the flags a real device would answer with."""
        if register not in self._getters:
            return Flags.UNKNOWN_ID
        setting = self._settings.get(register)
        if setting is None:
            return Flags.NOT_SUPPORTED
        try:
            value = decode_value(register, raw).value
        except HexError:
            return Flags.PARAMETER_ERROR
        if not isinstance(value, int | float) or not setting.accepts(value):
            return Flags.PARAMETER_ERROR
        setting.apply(value)
        return Flags.NONE


class HexResponder:
    """The device end of HEX: host bytes in, answer records out (see the module docstring)."""

    __slots__ = ("_buffer", "active", "dropped", "model")

    def __init__(self, model: RegisterModel) -> None:
        self.model = model
        self._buffer = b""
        self.active = False  # a valid command was seen: the device sends async records
        self.dropped = 0  # bytes thrown away (garbage, over-long lines)

    @property
    def buffered(self) -> int:
        """Bytes of an unfinished host record held (at most 256)."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        """The records answering every complete host record in ``data`` (in order)."""
        buffer = self._buffer + data
        answers: list[bytes] = []
        while (end := buffer.find(b"\n")) >= 0:
            line, buffer = buffer[:end], buffer[end + 1 :]
            start = line.rfind(b":")
            self.dropped += len(line) - (len(line) - start if start >= 0 else 0)
            if start >= 0:
                answer = self._answer(line[start:])
                if answer is not None:
                    answers.append(answer)
        if len(buffer) > _MAX_LINE:
            self.dropped += len(buffer)
            buffer = b""
        self._buffer = buffer
        return answers

    def _answer(self, record: bytes) -> bytes | None:
        try:
            frame = HexFrame.parse(record)
        except HexError:
            return ErrorResponse().to_frame().encode()
        self.active = True
        command, payload = frame.command, frame.payload
        identity = self.model.identity
        if command == Command.PING:
            return PingResponse(identity.version).to_frame().encode()
        if command == Command.APP_VERSION:
            return Done(identity.version.raw.to_bytes(2, "little")).to_frame().encode()
        if command == Command.PRODUCT_ID:
            return Done(identity.product_id.to_bytes(2, "little")).to_frame().encode()
        if command in (Command.RESTART, Command.ENTER_BOOT):
            return None
        if command in (Command.GET, Command.SET) and len(payload) >= 3:
            register = int.from_bytes(payload[:2], "little")
            if command == Command.GET:
                value = self.model.get(register)
                flags = Flags.UNKNOWN_ID if value is None else Flags.NONE
                return RegisterMessage(Command.GET, register, flags, value or b"").encode()
            flags = self.model.set(register, payload[3:])
            return RegisterMessage(Command.SET, register, flags, payload[3:]).encode()
        if command in (Command.GET, Command.SET):
            return ErrorResponse().to_frame().encode()  # too short to name a register
        return UnknownResponse(bytes((command, 0))).to_frame().encode()


# -- the MPPT ---------------------------------------------------------------------------------

_MPPT_ASYNC_ALWAYS = (0x0120, 0xEDDB, 0xEDBC, 0xEDBB)
_MPPT_ASYNC_CHANGED = (0xEDD5, 0xEDD7, 0x0201, 0xEDA8)
_BMV_ASYNC_CHANGED = (0xED8D, 0xED8F, 0xED8E, 0x0FFF, 0xEEFF)
_LOAD_MODES = {LOAD_OFF, LOAD_AUTO, LOAD_ON}


def _kwh(wh: float) -> float:
    """Wh as the text H19/H20 fields count them: whole 0.01 kWh, truncated."""
    return int(wh // 10.0) / 100


def _set_mode(plant: Plant, value: float) -> None:
    plant.charger_on = value == 1  # MPPTs: 1 on, 0 or 4 off


def _set_load(plant: Plant, value: float) -> None:
    plant.load_control = int(value)


def _day_getter(plant: Plant, days_ago: int, key: str) -> Getter:
    return lambda: history_day(plant, days_ago, key)


def _identity_getters(identity: Identity, uptime: Callable[[], int]) -> dict[int, Getter]:
    """The registers every simulated device answers alike: product id, firmware, serial,
    model name and uptime."""
    return {
        0x0100: lambda: identity.product_id,
        0x0102: lambda: identity.firmware,
        0x010A: lambda: identity.serial,
        0x010B: lambda: identity.model,
        0x0120: uptime,
    }


def mppt_model(plant: Plant, identity: Identity, uptime: Callable[[], int]) -> RegisterModel:
    """The registers of the simulated SmartSolar MPPT 100/20."""
    p = plant
    getters: dict[int, Getter] = {
        **_identity_getters(identity, uptime),
        0x0200: lambda: 1 if p.charger_on else 4,
        0x0201: lambda: p.cs,
        0x0207: lambda: 4 if not p.charger_on else 1 if p.cs == 0 else 0,
        0xEDBB: lambda: round(p.vpv, 2),
        0xEDBC: lambda: round(p.ppv, 2),
        0xEDB3: lambda: p.tracker,
        0xEDD5: lambda: round(p.v, 2),
        0xEDD7: lambda: round(p.i_charge, 1),
        0xEDDA: lambda: 0,
        0xEDDB: lambda: round(24.0 + 0.45 * p.i_charge, 2),
        0xEDDC: lambda: _kwh(p.yield_total),
        0xEDDD: lambda: _kwh(p.yield_total),
        0xEDD3: lambda: _kwh(p.yield_today),
        0xEDD2: lambda: round(p.pmax_today),
        0xEDD1: lambda: _kwh(p.yield_yesterday),
        0xEDD0: lambda: round(p.pmax_yesterday),
        0xEDA8: lambda: int(p.load_on),
        0xEDAB: lambda: p.load_control,
        0xEDAD: lambda: round(p.load_out, 1),
        0xEDF0: lambda: round(p.charge_limit, 1),
        0xEDF7: lambda: round(p.v_absorption, 2),
        0xEDF6: lambda: round(p.v_float, 2),
        TOTAL: lambda: _history_total(p, identity.serial),
    }
    for n in range(LAST_DAY - FIRST_DAY + 1):
        getters[FIRST_DAY + n] = _day_getter(p, n, identity.serial)
    # a 100/20: at most 20 A; 12 V charge voltages; the modes the simulation implements
    settings = {
        0x0200: Setting(0, 4, lambda v: _set_mode(p, v), frozenset({0, 1, 4})),
        0xEDAB: Setting(0, 4, lambda v: _set_load(p, v), frozenset(_LOAD_MODES)),
        0xEDF0: Setting(0.0, 20.0, lambda v: setattr(p, "charge_limit", v)),
        0xEDF7: Setting(12.0, 16.0, lambda v: setattr(p, "v_absorption", v)),
        0xEDF6: Setting(12.0, 16.0, lambda v: setattr(p, "v_float", v)),
    }
    return RegisterModel(identity, getters, settings)


def history_day(plant: Plant, days_ago: int, key: str) -> HistoryDay:
    """History day ``days_ago`` (0 = today) of the simulated MPPT.

    Today is the plant's running day; the days the simulation lived through are what it
    recorded; older days are drawn from ``key`` and the day number, so they are the same on
    every start. The day before the start agrees with what the text fields H22/H23 said.
    """
    if days_ago == 0:
        day = PastDay(
            plant.hsds,
            plant.yield_today,
            plant.pmax_today,
            plant.day_v_min,
            plant.day_v_max,
            plant.day_i_max,
            plant.day_vpv_max,
            plant.day_bulk_s,
            plant.day_absorption_s,
            plant.day_float_s,
        )
    elif days_ago <= len(plant.past_days):
        day = plant.past_days[days_ago - 1]
    else:
        seq = (plant.hsds - days_ago) % 365
        rng = random.Random(f"{key}/day/{seq}")
        day = PastDay(
            seq,
            rng.uniform(400.0, 2000.0),
            rng.uniform(80.0, 280.0),
            rng.uniform(11.9, 12.5),
            rng.uniform(14.2, 14.45),
            rng.uniform(5.0, 20.0),
            rng.uniform(40.0, 45.0),
            rng.randint(7200, 21600),
            rng.randint(1800, 10800),
            rng.randint(3600, 25000),
        )
        if days_ago == len(plant.past_days) + 1:  # the day before the start: as H22/H23 said
            day = _with_yesterday(day, plant)
    return HistoryDay(
        version=0,
        yield_kwh=_kwh(day.yield_wh),
        consumed_kwh=0.0,
        battery_voltage_max=round(day.v_max, 2),
        battery_voltage_min=round(day.v_min, 2),
        error_database=0,
        errors=(0, 0, 0, 0),
        time_bulk_min=day.bulk_s // 60,
        time_absorption_min=day.absorption_s // 60,
        time_float_min=day.float_s // 60,
        max_power_w=round(day.pmax),
        battery_current_max=round(day.i_max, 1),
        panel_voltage_max=round(day.vpv_max, 2),
        day_sequence=day.hsds,
    )


def _with_yesterday(day: PastDay, plant: Plant) -> PastDay:
    yield_wh, pmax = plant.first_yesterday
    return PastDay(
        day.hsds,
        yield_wh,
        pmax,
        day.v_min,
        day.v_max,
        day.i_max,
        day.vpv_max,
        day.bulk_s,
        day.absorption_s,
        day.float_s,
    )


def _history_total(plant: Plant, key: str) -> HistoryTotal:
    days = [history_day(plant, n, key) for n in range(LAST_DAY - FIRST_DAY + 1)]
    return HistoryTotal(
        version=0,
        error_database=0,
        errors=(0, 0, 0, 0),
        user_yield_kwh=_kwh(plant.yield_total),
        system_yield_kwh=_kwh(plant.yield_total),
        panel_voltage_max=max(d.panel_voltage_max or 0.0 for d in days),
        battery_voltage_max=max(d.battery_voltage_max or 0.0 for d in days),
        days_available=len(days),
    )


# -- the battery monitors -----------------------------------------------------------------------


def bmv_model(
    plant: Plant, identity: Identity, uptime: Callable[[], int], *, relay: bool
) -> RegisterModel:
    """The registers of the simulated BMV-712 Smart (``relay``) or SmartShunt 500A."""
    p = plant
    stored = {"capacity": CAPACITY_AH, "buzzer": 1.0}

    def ttg() -> int | None:
        if p.i_batt >= 0:
            return None  # not discharging: "infinite", n/a over HEX
        remaining = max(0.0, (p.soc - DISCHARGE_FLOOR) / 100.0 * CAPACITY_AH)
        return min(14_400, round(remaining / -p.i_batt * 60.0))

    def average() -> float:
        return p.depth_sum / p.depth_count if p.depth_count else 0.0

    getters: dict[int, Getter] = {
        **_identity_getters(identity, uptime),
        0xED8D: lambda: round(p.v, 2),
        0xED7D: lambda: round(p.vs, 2),
        0xED8F: lambda: round(p.i_batt, 1),
        0xED8C: lambda: round(p.i_batt, 3),
        0xED8E: lambda: round(p.v * p.i_batt),
        0xEEFF: lambda: round(p.ce, 1),
        0x0FFF: lambda: round(p.soc, 2),
        0x0FFE: ttg,
        0x031E: lambda: (1 if p.alarm_low_v else 0) | (4 if p.alarm_low_soc else 0),
        0xEEB6: lambda: int(p.syncs > 0),
        0x0300: lambda: round(p.deepest, 1),
        0x0301: lambda: round(p.last_depth, 1),
        0x0302: lambda: round(average(), 1),
        0x0303: lambda: p.cycles,
        0x0304: lambda: p.full_discharges,
        0x0305: lambda: round(p.drawn, 1),
        0x0306: lambda: round(p.v_min, 2),
        0x0307: lambda: round(p.v_max, 2),
        0x0308: lambda: p.since_full,
        0x0309: lambda: p.syncs,
        0x030A: lambda: p.low_v_alarms,
        0x030B: lambda: p.high_v_alarms,
        0x030C: lambda: 0,
        0x030D: lambda: 0,
        0x030E: lambda: round(p.vs_min, 2),
        0x030F: lambda: round(p.vs_max, 2),
        0x0310: lambda: int(p.e_discharged // 10.0) / 100,
        0x0311: lambda: int(p.e_charged // 10.0) / 100,
        0x1000: lambda: round(stored["capacity"]),
        0xEEFC: lambda: round(stored["buzzer"]),
    }
    if relay:
        getters[0x034E] = lambda: int(p.alarm_low_soc)
        getters[0xEEB8] = lambda: 0  # monitor mode: battery monitor (MON 0 in text)
    writable = {
        # stored and read back; the simulated battery keeps its 200 Ah
        0x1000: Setting(20, 9999, lambda v: stored.__setitem__("capacity", v)),
        0xEEFC: Setting(0, 1, lambda v: stored.__setitem__("buzzer", v)),
    }
    return RegisterModel(identity, getters, writable)


def async_burst(model: RegisterModel, last: dict[int, bytes], kind: str) -> list[bytes]:
    """The ``:A`` records a device in HEX mode sends this second (``last``: values sent)."""
    always = _MPPT_ASYNC_ALWAYS if kind == "mppt" else ()
    changed = _MPPT_ASYNC_CHANGED if kind == "mppt" else _BMV_ASYNC_CHANGED
    records: list[bytes] = []
    for register in (*always, *changed):
        raw = model.get(register)
        if raw is None or (register in changed and last.get(register) == raw):
            continue
        last[register] = raw
        records.append(RegisterMessage(Command.ASYNC, register, Flags.NONE, raw).encode())
    return records
