"""The simulated installation: battery, panels, charger, loads and battery monitor (pure).

A 12 V installation advanced one second at a time: a 200 Ah lead battery, 300 Wp of panels
behind a 20 A charger, household loads (standby, a cycling fridge, evening lights, now and then
a big inverter load) and a battery protect that sheds the loads at 10 % SOC. Over a simulated
day the battery discharges at night and charges by day through bulk, absorption and float; the
battery monitor integrates the current into consumed Ah, derives SOC from it and a capacity,
synchronises to 100 % when charged, and grows its history counters. No I/O, no wall clock.
"""

from __future__ import annotations

import collections
import math
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

CAPACITY_AH = 200.0  # the simulated battery bank; SOC = (capacity + CE) / capacity
DEFAULT_START = datetime(2026, 6, 21, 10, 0, tzinfo=UTC)  # mid-morning: charging has begun

# -- the simulated installation ----------------------------------------------------------

_SUNRISE_H = 5.0  # solar time, hours
_SUNSET_H = 21.0
_PANEL_WP = 300.0
_PANEL_DERATE = 0.85  # heat, dirt, wiring
_PANEL_VOC = 45.0  # two 36-cell panels in series
_PANEL_VMP = 37.0
_CHARGER_MAX_A = 20.0
_CHARGER_EFF = 0.96
_V_ABSORPTION = 14.4
_V_FLOAT = 13.8
_ABSORPTION_MAX_S = 3 * 3600
_R_INTERNAL = 0.015  # ohm
_CEF = 0.95  # charge efficiency factor, as a BMV applies it to charge current
_SYNC_V = 13.2  # BMV "charged voltage"
_SYNC_TAIL = 0.04  # BMV "tail current", fraction of capacity
_SYNC_S = 180  # BMV "charged detection time"
_FILTER = 1.0 - math.exp(-1.0 / 20.0)  # battery voltage settles with a ~20 s time constant
_LOW_SOC_ALARM = 50.0  # %, clears at _LOW_SOC_CLEAR
_LOW_SOC_CLEAR = 60.0
_LOW_V_ALARM = 11.5  # V
DISCHARGE_FLOOR = 50.0  # % TTG counts down to
_SHED_SOC = 10.0  # % where a battery protect disconnects the loads
_RESTORE_SOC = 20.0

# charger states (CS) and tracker modes (MPPT)
CS_OFF, CS_BULK, CS_ABSORPTION, CS_FLOAT = 0, 3, 4, 5
# load output control (HEX 0xEDAB): off, auto (the garden lights at night), on
LOAD_OFF, LOAD_AUTO, LOAD_ON = 0, 1, 4


@dataclass(frozen=True, slots=True)
class PastDay:
    """One finished solar day of the MPPT's history (what HEX 0x1051... report)."""

    hsds: int
    yield_wh: float
    pmax: float
    v_min: float
    v_max: float
    i_max: float
    vpv_max: float
    bulk_s: int
    absorption_s: int
    float_s: int


@dataclass(slots=True)
class Plant:
    """One simulated installation, advanced one second at a time."""

    rng: random.Random
    start: datetime
    day_second: int  # seconds since midnight (UTC, taken as solar time)
    # battery
    ce: float  # consumed Ah (<= 0), as the battery monitor counts it
    v: float  # battery voltage
    elapsed: int = 0  # seconds simulated since start
    i_batt: float = 0.0  # battery current, + = charging
    vs: float = 12.7  # starter battery (BMV aux input)
    # weather and loads
    clouds: float = 0.9
    clouds_target: float = 0.9
    load: float = 1.0
    fridge_on: bool = False
    fridge_left: int = 600
    burst_a: float = 0.0
    burst_left: int = 0
    shed: bool = False  # loads disconnected by the battery protect
    # charger
    cs: int = CS_BULK
    tracker: int = 2
    i_charge: float = 0.0
    vpv: float = 0.0
    ppv: float = 0.0
    absorption_s: int = 0
    dark_s: int = 0
    load_out: float = 0.0  # MPPT load output current
    load_on: bool = True  # MPPT load output switched on
    # MPPT settings a HEX Set changes (0x0200, 0xEDF0, 0xEDF7, 0xEDF6, 0xEDAB)
    charger_on: bool = True
    charge_limit: float = _CHARGER_MAX_A
    v_absorption: float = _V_ABSORPTION
    v_float: float = _V_FLOAT
    load_control: int = LOAD_AUTO
    # MPPT history of the current day (HEX 0x1050) and of the days before (0x1051...)
    day_v_min: float = 15.0
    day_v_max: float = 0.0
    day_i_max: float = 0.0
    day_vpv_max: float = 0.0
    day_bulk_s: int = 0
    day_absorption_s: int = 0
    day_float_s: int = 0
    first_yesterday: tuple[float, float] = (0.0, 0.0)  # yield Wh, max W before the start
    past_days: collections.deque[PastDay] = field(
        default_factory=lambda: collections.deque(maxlen=30)
    )
    # MPPT history (Wh) and day sequence
    yield_total: float = 0.0
    yield_today: float = 0.0
    yield_yesterday: float = 0.0
    pmax_today: float = 0.0
    pmax_yesterday: float = 0.0
    hsds: int = 0
    # battery monitor state and history (H1..H18)
    sync_s: int = 0
    at_full: bool = False
    alarm_low_soc: bool = False
    alarm_low_v: bool = False
    deepest: float = 0.0  # Ah
    last_depth: float = 0.0
    depth_sum: float = 0.0
    depth_count: int = 0
    cycles: int = 0
    cycle_armed: bool = False
    full_discharges: int = 0
    drawn: float = 0.0  # cumulative Ah drawn (<= 0)
    v_min: float = 15.0
    v_max: float = 0.0
    since_full: int = 0
    syncs: int = 0
    low_v_alarms: int = 0
    high_v_alarms: int = 0
    vs_min: float = 15.0
    vs_max: float = 0.0
    e_discharged: float = 0.0  # Wh
    e_charged: float = 0.0

    @classmethod
    def create(cls, rng: random.Random, start: datetime, *, aux_unused: bool) -> Plant:
        """A plausible installation with some history behind it (all drawn from ``rng``)."""
        soc = rng.uniform(60.0, 75.0)
        ce = (soc / 100.0 - 1.0) * CAPACITY_AH
        midnight = start.replace(hour=0, minute=0, second=0, microsecond=0)
        day_second = int((start - midnight).total_seconds())
        plant = cls(rng=rng, start=start, day_second=day_second, ce=ce, v=_ocv(soc))
        plant.vs = rng.uniform(-0.025, -0.005) if aux_unused else rng.uniform(12.55, 12.75)
        plant.clouds_target = rng.uniform(0.55, 1.0)
        plant.clouds = plant.clouds_target
        plant.cycles = rng.randint(20, 200)
        plant.syncs = plant.cycles + rng.randint(0, 40)
        plant.deepest = -rng.uniform(100.0, 150.0)
        plant.depth_count = plant.syncs
        plant.depth_sum = -rng.uniform(30.0, 55.0) * plant.depth_count
        plant.last_depth = ce
        plant.full_discharges = rng.randint(0, 2)
        plant.drawn = -rng.uniform(60.0, 90.0) * plant.syncs
        plant.e_discharged = -plant.drawn * 12.4
        plant.e_charged = plant.e_discharged * rng.uniform(1.08, 1.15)
        plant.v_min = rng.uniform(11.2, 11.7)
        plant.v_max = rng.uniform(14.6, 15.0)
        plant.since_full = rng.randint(20, 30) * 3600
        plant.low_v_alarms = rng.randint(0, 3)
        if aux_unused:
            plant.vs_min, plant.vs_max = plant.vs - 0.01, 0.0
        else:
            plant.vs_min, plant.vs_max = rng.uniform(11.9, 12.3), rng.uniform(13.8, 14.2)
        plant.yield_total = rng.uniform(50_000.0, 900_000.0)
        plant.yield_yesterday = rng.uniform(800.0, 1500.0)
        plant.pmax_yesterday = rng.uniform(200.0, 290.0)
        plant.first_yesterday = (plant.yield_yesterday, plant.pmax_yesterday)
        hour = day_second / 3600.0
        plant.yield_today = max(0.0, hour - 7.0) * rng.uniform(60.0, 90.0)
        plant.pmax_today = min(280.0, plant.yield_today / 2.0)
        plant.hsds = rng.randint(0, 364)
        plant.day_v_min = plant.day_v_max = plant.v
        if _sun(hour) > 0.0:
            plant.cs = CS_BULK
        else:  # starting at night: the next sunrise begins a new solar day
            plant.cs = CS_OFF
            plant.dark_s = 3 * 3600
        return plant

    @property
    def time(self) -> datetime:
        """The simulated time."""
        return self.start + timedelta(seconds=self.elapsed)

    @property
    def soc(self) -> float:
        """State of charge, %, from consumed Ah and the capacity."""
        return 100.0 * (CAPACITY_AH + self.ce) / CAPACITY_AH

    def step(self) -> None:
        """Advance the installation by one second."""
        self.elapsed += 1
        self.day_second = (self.day_second + 1) % 86_400
        rng = self.rng
        hour = self.day_second / 3600.0
        self._weather(hour)
        self._loads(hour)
        sun = _sun(hour)
        pv_avail = _PANEL_WP * _PANEL_DERATE * sun * sun * self.clouds
        self._charger(pv_avail)
        self._battery()
        self._panel(pv_avail, sun)
        self._monitor()
        # starter battery: rests near 12.7 V, follows the main bank while it is charged
        if self.vs > 5.0:
            target = 13.4 if self.cs in (CS_ABSORPTION, CS_FLOAT) else 12.7
            self.vs += (target - self.vs) * 0.002 + (rng.random() - 0.5) * (0.001 * _SQRT12)
        else:
            self.vs = min(0.0, max(-0.03, self.vs + (rng.random() - 0.5) * (0.0005 * _SQRT12)))
        self.vs_min = min(self.vs_min, self.vs)
        self.vs_max = max(self.vs_max, self.vs)

    def _weather(self, hour: float) -> None:
        rng = self.rng
        if self.day_second == 0:
            self.clouds_target = rng.uniform(0.35, 1.0)  # today's weather
        drift = (self.clouds_target - self.clouds) * 0.002
        self.clouds += drift + (rng.random() - 0.5) * (0.012 * _SQRT12)
        self.clouds = min(1.0, max(0.15, self.clouds))

    def _loads(self, hour: float) -> None:
        rng = self.rng
        self.fridge_left -= 1
        if self.fridge_left <= 0:
            self.fridge_on = not self.fridge_on
            self.fridge_left = rng.randint(600, 900) if self.fridge_on else rng.randint(1200, 2000)
        if self.burst_left > 0:
            self.burst_left -= 1
        elif 7.0 <= hour < 22.0 and rng.random() < 1.0 / 7200:
            self.burst_a = rng.uniform(25.0, 60.0)  # microwave, kettle, power tool
            self.burst_left = rng.randint(60, 300)
        # A battery protect cuts the loads at 10 % SOC and restores them at 20 %.
        if self.soc < _SHED_SOC:
            self.shed = True
        elif self.shed and self.soc > _RESTORE_SOC:
            self.shed = False
        if self.shed:
            self.load = self.load_out = 0.0
            self.load_on = False
            return
        lights = 3.0 if 18.0 <= hour < 23.5 else 2.0 if 6.5 <= hour < 8.0 else 0.0
        control = self.load_control
        # garden lights on the MPPT's load output: at night in auto, always when on
        self.load_on = control == LOAD_ON or (control != LOAD_OFF and (hour >= 20.0 or hour < 6.0))
        self.load_out = 0.35 if self.load_on else 0.0
        self.load = (
            1.2
            + (rng.random() - 0.5) * (0.05 * _SQRT12)
            + (4.5 if self.fridge_on else 0.0)
            + lights
            + self.load_out
            + (self.burst_a if self.burst_left > 0 else 0.0)
        )

    def _charger(self, pv_avail: float) -> None:
        """Charger state machine: off at night, then bulk, absorption, float."""
        if pv_avail < 3.0 or not self.charger_on:
            if self.cs != CS_OFF:
                self.cs = CS_OFF
            self.dark_s += 1
            self.i_charge = 0.0
            self.tracker = 0
            return
        if self.cs == CS_OFF:
            if self.dark_s > 2 * 3600:
                self._new_day()
            self.cs = CS_BULK
            self.absorption_s = 0
        self.dark_s = 0
        i_max = min(self.charge_limit, pv_avail * _CHARGER_EFF / max(self.v, 10.0))
        soc = self.soc
        if self.cs == CS_BULK:
            self.i_charge = i_max
            self.tracker = 1 if i_max >= self.charge_limit else 2
            self.day_bulk_s += 1
            return
        if self.cs == CS_ABSORPTION:
            accept = CAPACITY_AH * 0.1 * min(1.0, max(0.0, (100.0 - soc) / 12.0) ** 0.6)
            self.absorption_s += 1
            tail = self.i_batt < 0.02 * CAPACITY_AH and self.absorption_s > 1800
            if self.absorption_s >= _ABSORPTION_MAX_S or tail:
                self.cs = CS_FLOAT
            self.day_absorption_s += 1
        else:
            self.day_float_s += 1
            accept = CAPACITY_AH * 0.1 * min(1.0, max(0.0005, (100.0 - soc) / 25.0))
            if self.v < 12.8:  # a big load pulled the battery down: charge it again
                self.cs = CS_BULK
        need = self.load + accept
        self.i_charge = min(i_max, need)
        self.tracker = 1 if i_max > need else 2

    def _new_day(self) -> None:
        self.past_days.appendleft(
            PastDay(
                self.hsds,
                self.yield_today,
                self.pmax_today,
                self.day_v_min,
                self.day_v_max,
                self.day_i_max,
                self.day_vpv_max,
                self.day_bulk_s,
                self.day_absorption_s,
                self.day_float_s,
            )
        )
        self.hsds = (self.hsds + 1) % 365
        self.yield_yesterday, self.yield_today = self.yield_today, 0.0
        self.pmax_yesterday, self.pmax_today = self.pmax_today, 0.0
        self.day_v_min, self.day_v_max, self.day_i_max, self.day_vpv_max = self.v, self.v, 0.0, 0.0
        self.day_bulk_s = self.day_absorption_s = self.day_float_s = 0

    def _battery(self) -> None:
        """Current into the battery, consumed Ah, and the terminal voltage."""
        rng = self.rng
        i = self.i_charge - self.load
        self.i_batt = i
        self.ce = min(0.0, self.ce + (i * _CEF if i > 0.0 else i) / 3600.0)
        soc = self.soc
        target = _ocv(soc) + i * _R_INTERNAL
        if i > 0.0:  # charge over-potential rises steeply towards full
            target += 1.6 * math.exp((soc - 88.0) / 4.0) * min(1.0, i / 20.0) ** 0.5
        if self.cs == CS_ABSORPTION:
            v_abs = self.v_absorption
            target = min(target, v_abs) if self.i_charge < self.load else v_abs
        elif self.cs == CS_FLOAT:
            target = min(target, self.v_float) if self.i_charge < self.load else self.v_float
        self.v += (target - self.v) * _FILTER + (rng.random() - 0.5) * (0.002 * _SQRT12)
        if self.cs == CS_BULK and self.v >= self.v_absorption:
            self.v = self.v_absorption
            self.cs = CS_ABSORPTION
            self.absorption_s = 0

    def _panel(self, pv_avail: float, sun: float) -> None:
        rng = self.rng
        out_w = self.i_charge * self.v
        self.ppv = out_w / _CHARGER_EFF if out_w > 0.0 else 0.0
        if sun <= 0.0:
            self.vpv = rng.uniform(0.0, 0.05)
        else:
            voc = _PANEL_VOC * (0.8 + 0.2 * min(1.0, sun * 5.0))
            vmp = _PANEL_VMP * (0.92 + 0.08 * min(1.0, sun * 3.0))
            used = self.ppv / pv_avail if pv_avail > 0.0 else 0.0
            noise = (rng.random() - 0.5) * (0.05 * _SQRT12)
            self.vpv = vmp + (voc - vmp) * (1.0 - min(1.0, used)) + noise
        self.yield_total += out_w / 3600.0
        self.yield_today += out_w / 3600.0
        self.pmax_today = max(self.pmax_today, self.ppv)
        self.day_vpv_max = max(self.day_vpv_max, self.vpv)
        self.day_i_max = max(self.day_i_max, self.i_charge)
        v = self.v
        if v < self.day_v_min:
            self.day_v_min = v
        elif v > self.day_v_max:
            self.day_v_max = v

    def _monitor(self) -> None:
        """What the battery monitor tracks: synchronisation, alarms, history."""
        i, v, soc = self.i_batt, self.v, self.soc
        self.since_full += 1
        # A BMV synchronises on "charged voltage" and "tail current"; requiring the charger
        # to have reached absorption too keeps a weak morning charge from passing for full.
        charged = self.cs in (CS_ABSORPTION, CS_FLOAT)
        if charged and v >= _SYNC_V and i <= _SYNC_TAIL * CAPACITY_AH:
            self.sync_s += 1
        else:
            self.sync_s = 0
        if self.sync_s >= _SYNC_S and not self.at_full:
            self.at_full = True
            self.ce = 0.0
            self.syncs += 1
            self.since_full = 0
            self.depth_sum += self.last_depth
            self.depth_count += 1
            self.last_depth = 0.0
        elif self.at_full and soc < 99.0:
            self.at_full = False
        if self.at_full:
            self.since_full = 0
        self.deepest = min(self.deepest, self.ce)
        self.last_depth = min(self.last_depth, self.ce)
        if soc < 65.0:
            self.cycle_armed = True
        elif soc > 90.0 and self.cycle_armed:
            self.cycle_armed = False
            self.cycles += 1
        if soc <= 0.0:
            self.full_discharges += 1
        if i < 0.0:
            self.drawn += i / 3600.0
            self.e_discharged -= v * i / 3600.0
        else:
            self.e_charged += v * i / 3600.0
        self.v_min = min(self.v_min, v)
        self.v_max = max(self.v_max, v)
        if soc < _LOW_SOC_ALARM:
            self.alarm_low_soc = True
        elif soc > _LOW_SOC_CLEAR:
            self.alarm_low_soc = False
        low_v = v < _LOW_V_ALARM
        if low_v and not self.alarm_low_v:
            self.low_v_alarms += 1
        self.alarm_low_v = low_v


SECOND = timedelta(seconds=1)
# Noise is uniform (random() is ~10x cheaper than gauss()); width sigma * sqrt(12) gives it
# the standard deviation sigma.
_SQRT12 = math.sqrt(12.0)


def _sun(hour: float) -> float:
    """Relative irradiance, 0 at night, 1 at solar noon on a clear day."""
    if hour <= _SUNRISE_H or hour >= _SUNSET_H:
        return 0.0
    return math.sin(math.pi * (hour - _SUNRISE_H) / (_SUNSET_H - _SUNRISE_H))


def _ocv(soc: float) -> float:
    """Resting voltage of a 12 V lead battery at ``soc`` %."""
    return 11.9 + 0.009 * soc
