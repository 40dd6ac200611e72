"""Simulated VE.Direct devices and capture replay: realistic byte streams without hardware.

Three layers, each usable alone:

- :class:`SimulatedDevice` is pure (no I/O, no clock): ``next_second()`` returns the bytes a
  device sends in one second. ``"bmv712"`` (BMV-712 Smart: main block, then H block),
  ``"smartshunt"`` (SmartShunt 500A: the same without Relay and MON) and ``"mppt"``
  (SmartSolar MPPT 100/20: one block) each watch their own simulated 12 V installation: a
  200 Ah lead battery, 300 Wp of panels behind a 20 A charger, household loads (standby, a
  cycling fridge, evening lights, now and then a big inverter load) and a battery protect that
  sheds the loads at 10 % SOC. Over a simulated day the
  battery discharges at night and charges by day through bulk, absorption and float; the
  battery monitor integrates the current into consumed Ah, derives SOC from it and a capacity,
  synchronises to 100 % when charged, and grows its history counters. The simulated clock
  starts at :data:`DEFAULT_START` (or ``start``) and is independent of the wall clock, so a
  seed gives identical bytes on every run. :meth:`SimulatedDevice.from_capture` replays a
  recorded stream instead, one device update per second.
- :func:`open_stream` paces a device in real time (divided by ``speed``) on the event loop:
  an async iterator of chunks, one per simulated second, scheduled on absolute deadlines.
- :func:`cli_simulate` is ``python -m vedirect_async simulate``: the stream on a real
  pseudo-terminal (``--pty``, the service reads it like a serial port) or on stdout.

Options shared by all layers: ``hex_records`` interleaves asynchronous HEX records
(``:A…``, as SmartSolar and BMV firmware send them) between blocks, glued after a checksum
byte, or inside a block the way older firmware interrupts text; they never change the text
stream. ``corrupt`` replaces that fraction of all bytes with other random bytes. Corruption is
always *detectable*: if the random bytes put into one block happen to leave its 8-bit sum
intact (about 1 damaged block in 256 on a real line), the last one is drawn again, so a test
can require that no damaged block is ever accepted. (One way remains, rare and harmless: when
damage hits a block's leading CR LF, the parser starts at the block's next record, and if the
skipped first record's bytes happen to sum to 0 mod 256 the clean rest verifies.) Model, HEX
and corruption draw from separate seeded generators: the same seed gives the same text blocks
with or without them.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import fcntl
import math
import os
import random
import re
import signal
import sys
import termios
import time
import tty
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from .hexframe import Command, RegisterMessage
from .hexframe import encode_value as encode_register
from .parser import checksum_byte, encode_block

__all__ = [
    "CAPACITY_AH",
    "DEFAULT_START",
    "KINDS",
    "PtyLine",
    "SimulatedDevice",
    "async_record",
    "cli_simulate",
    "open_stream",
    "split_capture",
]

KINDS = ("bmv712", "mppt", "smartshunt")
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
_DISCHARGE_FLOOR = 50.0  # % TTG counts down to
_SHED_SOC = 10.0  # % where a battery protect disconnects the loads
_RESTORE_SOC = 20.0

# charger states (CS) and tracker modes (MPPT)
_CS_OFF, _CS_BULK, _CS_ABSORPTION, _CS_FLOAT = 0, 3, 4, 5


@dataclass(slots=True)
class _Plant:
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
    cs: int = _CS_BULK
    tracker: int = 2
    i_charge: float = 0.0
    vpv: float = 0.0
    ppv: float = 0.0
    absorption_s: int = 0
    dark_s: int = 0
    load_out: float = 0.0  # MPPT load output current
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
    def create(cls, rng: random.Random, start: datetime, *, aux_unused: bool) -> _Plant:
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
        hour = day_second / 3600.0
        plant.yield_today = max(0.0, hour - 7.0) * rng.uniform(60.0, 90.0)
        plant.pmax_today = min(280.0, plant.yield_today / 2.0)
        plant.hsds = rng.randint(0, 364)
        if _sun(hour) > 0.0:
            plant.cs = _CS_BULK
        else:  # starting at night: the next sunrise begins a new solar day
            plant.cs = _CS_OFF
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
            target = 13.4 if self.cs in (_CS_ABSORPTION, _CS_FLOAT) else 12.7
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
            return
        lights = 3.0 if 18.0 <= hour < 23.5 else 2.0 if 6.5 <= hour < 8.0 else 0.0
        self.load_out = 0.35 if hour >= 20.0 or hour < 6.0 else 0.0  # garden lights
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
        if pv_avail < 3.0:
            if self.cs != _CS_OFF:
                self.cs = _CS_OFF
            self.dark_s += 1
            self.i_charge = 0.0
            self.tracker = 0
            return
        if self.cs == _CS_OFF:
            if self.dark_s > 2 * 3600:
                self._new_day()
            self.cs = _CS_BULK
            self.absorption_s = 0
        self.dark_s = 0
        i_max = min(_CHARGER_MAX_A, pv_avail * _CHARGER_EFF / max(self.v, 10.0))
        soc = self.soc
        if self.cs == _CS_BULK:
            self.i_charge = i_max
            self.tracker = 1 if i_max >= _CHARGER_MAX_A else 2
            return
        if self.cs == _CS_ABSORPTION:
            accept = CAPACITY_AH * 0.1 * min(1.0, max(0.0, (100.0 - soc) / 12.0) ** 0.6)
            self.absorption_s += 1
            tail = self.i_batt < 0.02 * CAPACITY_AH and self.absorption_s > 1800
            if self.absorption_s >= _ABSORPTION_MAX_S or tail:
                self.cs = _CS_FLOAT
        else:
            accept = CAPACITY_AH * 0.1 * min(1.0, max(0.0005, (100.0 - soc) / 25.0))
            if self.v < 12.8:  # a big load pulled the battery down: charge it again
                self.cs = _CS_BULK
        need = self.load + accept
        self.i_charge = min(i_max, need)
        self.tracker = 1 if i_max > need else 2

    def _new_day(self) -> None:
        self.hsds = (self.hsds + 1) % 365
        self.yield_yesterday, self.yield_today = self.yield_today, 0.0
        self.pmax_yesterday, self.pmax_today = self.pmax_today, 0.0

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
        if self.cs == _CS_ABSORPTION:
            target = min(target, _V_ABSORPTION) if self.i_charge < self.load else _V_ABSORPTION
        elif self.cs == _CS_FLOAT:
            target = min(target, _V_FLOAT) if self.i_charge < self.load else _V_FLOAT
        self.v += (target - self.v) * _FILTER + (rng.random() - 0.5) * (0.002 * _SQRT12)
        if self.cs == _CS_BULK and self.v >= _V_ABSORPTION:
            self.v = _V_ABSORPTION
            self.cs = _CS_ABSORPTION
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

    def _monitor(self) -> None:
        """What the battery monitor tracks: synchronisation, alarms, history."""
        i, v, soc = self.i_batt, self.v, self.soc
        self.since_full += 1
        # A BMV synchronises on "charged voltage" and "tail current"; requiring the charger
        # to have reached absorption too keeps a weak morning charge from passing for full.
        charged = self.cs in (_CS_ABSORPTION, _CS_FLOAT)
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


_SECOND = timedelta(seconds=1)
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


# -- rendering: what each device sends --------------------------------------------------


class _Template:
    """A block layout laid out once by the protocol core's ``encode_block``.

    Per second only the ``%``-placeholders are filled in and the checksum byte recomputed,
    which makes a device-day about three times faster to generate than calling
    ``encode_block`` on fresh (label, value) pairs every second (same bytes; a test pins it).
    """

    __slots__ = ("_body",)

    def __init__(self, fields: list[tuple[bytes, bytes]]) -> None:
        self._body = encode_block(fields)[:-1]  # without its checksum byte

    def render(self, values: tuple[object, ...]) -> bytes:
        body = self._body % values
        return body + _BYTE[checksum_byte(body)]


_BYTE = tuple(bytes((i,)) for i in range(256))
_ON_OFF = (b"OFF", b"ON")


def _bmv_templates(smartshunt: bool) -> tuple[_Template, _Template]:
    """Main block and H block of a BMV-712 Smart (FW 4.08) or a SmartShunt 500A (FW 4.05)."""
    main = [
        (b"PID", b"0xA389" if smartshunt else b"0xA381"),
        (b"V", b"%d"),
        (b"VS", b"%d"),
        (b"I", b"%d"),
        (b"P", b"%d"),
        (b"CE", b"%d"),
        (b"SOC", b"%d"),
        (b"TTG", b"%d"),
        (b"Alarm", b"%s"),
        (b"Relay", b"%s"),
        (b"AR", b"%d"),
        (b"BMV", b"SmartShunt 500A/50mV" if smartshunt else b"712 Smart"),
        (b"FW", b"0405" if smartshunt else b"0408"),
        (b"MON", b"0"),
    ]
    if smartshunt:  # no relay; no MON at FW 4.05
        main = [field for field in main if field[0] not in (b"Relay", b"MON")]
    history = [(b"H%d" % n, b"%d") for n in (*range(1, 13), 15, 16, 17, 18)]
    return _Template(main), _Template(history)


def _bmv_blocks(plant: _Plant, main: _Template, history: _Template, relay: bool) -> list[bytes]:
    """One update of a BMV or SmartShunt: the main block, then the H block."""
    i_ma = round(plant.i_batt * 1000.0)
    soc = plant.soc
    if i_ma < 0:
        remaining = max(0.0, (soc - _DISCHARGE_FLOOR) / 100.0 * CAPACITY_AH)
        ttg = min(14_400, round(remaining / (-i_ma / 1000.0) * 60.0))
    else:
        ttg = -1  # not discharging: infinite
    ar = (1 if plant.alarm_low_v else 0) | (4 if plant.alarm_low_soc else 0)
    values: tuple[object, ...] = (
        round(plant.v * 1000.0),
        round(plant.vs * 1000.0),
        i_ma,
        round(plant.v * plant.i_batt),
        round(plant.ce * 1000.0),
        round(soc * 10.0),
        ttg,
        _ON_OFF[ar != 0],
    )
    values += (_ON_OFF[plant.alarm_low_soc], ar) if relay else (ar,)
    average = plant.depth_sum / plant.depth_count if plant.depth_count else 0.0
    h_values = (
        round(plant.deepest * 1000.0),  # H1..H3 mAh
        round(plant.last_depth * 1000.0),
        round(average * 1000.0),
        plant.cycles,
        plant.full_discharges,
        round(plant.drawn * 1000.0),  # H6 mAh
        round(plant.v_min * 1000.0),  # H7, H8 mV
        round(plant.v_max * 1000.0),
        plant.since_full,  # H9 s
        plant.syncs,
        plant.low_v_alarms,
        plant.high_v_alarms,
        round(plant.vs_min * 1000.0),  # H15, H16 mV
        round(plant.vs_max * 1000.0),
        int(plant.e_discharged // 10.0),  # H17, H18 0.01 kWh
        int(plant.e_charged // 10.0),
    )
    return [main.render(values), history.render(h_values)]


def _mppt_template(serial: bytes) -> _Template:
    """The single block of a SmartSolar MPPT 100/20 (FW 1.59)."""
    return _Template(
        [
            (b"PID", b"0xA05F"),
            (b"FW", b"159"),
            (b"SER#", serial),
            (b"V", b"%d"),
            (b"I", b"%d"),
            (b"VPV", b"%d"),
            (b"PPV", b"%d"),
            (b"CS", b"%d"),
            (b"MPPT", b"%d"),
            (b"OR", b"%s"),
            (b"ERR", b"0"),
            (b"LOAD", b"ON"),
            (b"IL", b"%d"),
            (b"H19", b"%d"),
            (b"H20", b"%d"),
            (b"H21", b"%d"),
            (b"H22", b"%d"),
            (b"H23", b"%d"),
            (b"HSDS", b"%d"),
        ]
    )


def _mppt_blocks(plant: _Plant, block: _Template) -> list[bytes]:
    """One update of the MPPT."""
    values = (
        round(plant.v * 1000.0),
        round(plant.i_charge * 1000.0),
        round(plant.vpv * 1000.0),
        round(plant.ppv),
        plant.cs,
        plant.tracker,
        b"0x00000001" if plant.cs == _CS_OFF else b"0x00000000",  # off: no input power
        round(plant.load_out * 1000.0),
        int(plant.yield_total // 10.0),  # H19, H20 0.01 kWh
        int(plant.yield_today // 10.0),
        round(plant.pmax_today),
        int(plant.yield_yesterday // 10.0),
        round(plant.pmax_yesterday),
        plant.hsds,
    )
    return [block.render(values)]


# -- asynchronous HEX records --------------------------------------------------------------


def async_record(register: int, value: float) -> bytes:
    """An asynchronous HEX record (``:A…\n``) carrying ``value``, in the register's unit.

    Scaling and layout come from :mod:`vedirect_async.hexframe`'s register table, so the
    record is exactly what a device would send (and what the HEX decoder reads back).
    """
    raw = encode_register(register, value)
    return RegisterMessage(Command.ASYNC, register, value=raw).encode()


def _bmv_registers(plant: _Plant) -> list[tuple[int, float]]:
    return [
        (0xED8D, plant.v),  # main voltage
        (0xED8F, plant.i_batt),  # current
        (0x0FFF, plant.soc),  # state of charge
        (0xEEFF, plant.ce),  # consumed Ah
    ]


def _mppt_registers(plant: _Plant) -> list[tuple[int, float]]:
    return [
        (0xEDBB, plant.vpv),  # panel voltage
        (0xEDBC, plant.ppv),  # panel power
        (0x0201, plant.cs),  # device state
        (0xEDD5, plant.v),  # charger voltage
        (0xEDD7, plant.i_charge),  # charger current
    ]


# -- the device -----------------------------------------------------------------------------

_HEX_RECORD_RE = re.compile(rb":([0-9A-F]{3,})\n")
_HEX_BYTES = frozenset(b"0123456789ABCDEF:\n")


def _rng(seed: int | None, stream: str) -> random.Random:
    """An independent generator per concern, so enabling one option never shifts another."""
    return random.Random() if seed is None else random.Random(f"{seed}/{stream}")


class SimulatedDevice:
    """A VE.Direct device as a pure byte source: ``next_second()`` is one second of output.

    ``kind`` is one of :data:`KINDS`. No I/O and no clock: the simulated time starts at
    ``start`` (default :data:`DEFAULT_START`) and advances one second per call, so a device-day
    can be generated as fast as the CPU allows. Use :meth:`from_capture` to replay a recording.
    """

    __slots__ = (
        "_blocks",
        "_corrupt",
        "_corrupt_rng",
        "_gap",
        "_hex_rng",
        "_plant",
        "_registers",
        "_replay",
        "_seconds",
        "kind",
    )

    def __init__(
        self,
        kind: str,
        *,
        seed: int | None = None,
        start: datetime | None = None,
        hex_records: bool = False,
        corrupt: float = 0.0,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(
                f"unknown simulated device {kind!r}: expected one of {', '.join(KINDS)} "
                "(use SimulatedDevice.from_capture to replay a capture file)"
            )
        _check_corrupt(corrupt)
        self.kind = kind
        self._seconds = 0
        self._replay: list[list[bytes]] = []
        model_rng = _rng(seed, "model")
        self._plant: _Plant | None = _Plant.create(
            model_rng, start or DEFAULT_START, aux_unused=kind == "smartshunt"
        )
        if kind == "mppt":
            suffix = "".join(
                model_rng.choice("0123456789ABCDEFGHJKLMNPQRSTUVWXYZ") for _ in range(5)
            )
            serial = f"HQ2{model_rng.randint(0, 4)}{model_rng.randint(10, 52)}{suffix}".encode()
            block = _mppt_template(serial)
            self._blocks: Callable[[_Plant], list[bytes]] = lambda p: _mppt_blocks(p, block)
            self._registers: Callable[[_Plant], list[tuple[int, float]]] | None = _mppt_registers
        else:
            relay = kind == "bmv712"
            main, history = _bmv_templates(smartshunt=not relay)
            self._blocks = lambda p: _bmv_blocks(p, main, history, relay)
            self._registers = _bmv_registers
        if not hex_records:
            self._registers = None
        self._hex_rng = _rng(seed, "hex")
        self._corrupt = corrupt
        self._corrupt_rng = _rng(seed, "corrupt")
        self._gap = self._next_gap()

    @classmethod
    def from_capture(
        cls, data: bytes, *, seed: int | None = None, corrupt: float = 0.0, name: str = "capture"
    ) -> SimulatedDevice:
        """Replay recorded bytes, one device update per second, looping at the end.

        ``data`` is split on block boundaries (:func:`split_capture`); the seconds joined
        give ``data`` back byte for byte. ``corrupt`` works as for generated streams.
        """
        _check_corrupt(corrupt)
        seconds = _split_updates(data)
        if not seconds:
            raise ValueError(f"{name}: no VE.Direct text block found (nothing to replay)")
        self = cls.__new__(cls)
        self.kind = name
        self._seconds = 0
        self._replay = seconds
        self._plant = None
        self._blocks = lambda _p: []
        self._registers = None
        self._hex_rng = _rng(seed, "hex")
        self._corrupt = corrupt
        self._corrupt_rng = _rng(seed, "corrupt")
        self._gap = self._next_gap()
        return self

    @property
    def time(self) -> datetime:
        """Simulated time of the last second returned (start time before the first)."""
        if self._plant is None:
            return DEFAULT_START + self._seconds * _SECOND
        return self._plant.time

    @property
    def seconds(self) -> int:
        """How many seconds have been generated."""
        return self._seconds

    def next_second(self) -> bytes:
        """The bytes the device sends during the next second."""
        self._seconds += 1
        if self._replay:
            units = self._replay[(self._seconds - 1) % len(self._replay)]
            if not self._corrupt:
                return b"".join(units)
            return b"".join(self._damage(unit, hex_record=False) for unit in units)
        plant = self._plant
        assert plant is not None
        plant.step()
        blocks = self._blocks(plant)
        if self._registers is None and not self._corrupt:
            return b"".join(blocks)
        records = self._pick_records(plant) if self._registers is not None else []
        if self._corrupt:
            blocks = [self._damage(block, hex_record=False) for block in blocks]
            records = [self._damage(record, hex_record=True) for record in records]
        return self._interleave(blocks, records)

    def iter_seconds(self, count: int) -> Iterator[bytes]:
        """The next ``count`` seconds, one ``bytes`` each."""
        for _ in range(count):
            yield self.next_second()

    # -- HEX interleaving ----------------------------------------------------------------

    def _pick_records(self, plant: _Plant) -> list[bytes]:
        assert self._registers is not None
        rng = self._hex_rng
        if rng.random() >= 0.5:
            return []
        registers = self._registers(plant)
        return [async_record(*item) for item in rng.sample(registers, rng.randint(1, 3))]

    def _interleave(self, blocks: list[bytes], records: list[bytes]) -> bytes:
        """Put each HEX record before, between or after blocks, or inside one.

        Inside a block a record may go anywhere except between ``Checksum\\t`` and the
        checksum byte (protocol.md section 3.1). The text bytes stay in order.
        """
        rng = self._hex_rng
        # (block index, offset in block) -> records inserted there; offset len = after it
        slots: dict[tuple[int, int], list[bytes]] = {}
        for record in records:
            index = rng.randrange(len(blocks))
            size = len(blocks[index])
            # inside the block (never just before its checksum byte) in a quarter of cases,
            # else just before the block or glued after its checksum byte
            inside = rng.random() < 0.25
            offset = rng.randrange(1, size - 1) if inside else rng.choice((0, size))
            slots.setdefault((index, offset), []).append(record)
        out: list[bytes] = []
        for index, block in enumerate(blocks):
            cuts = sorted(offset for i, offset in slots if i == index)
            pos = 0
            for offset in cuts:
                out.append(block[pos:offset])
                out.extend(slots[(index, offset)])
                pos = offset
            out.append(block[pos:])
        return b"".join(out)

    # -- corruption ------------------------------------------------------------------------

    def _next_gap(self) -> int:
        """Clean bytes before the next corrupted one (geometric, mean 1/corrupt - 1)."""
        p = self._corrupt
        if p <= 0.0:
            return 1 << 62
        if p >= 1.0:
            return 0
        u = 1.0 - self._corrupt_rng.random()  # (0, 1]
        return int(math.log(u) / math.log1p(-p))

    def _damage(self, unit: bytes, *, hex_record: bool) -> bytes:
        """Replace the bytes of ``unit`` that the running gap lands on; keep damage detectable."""
        n = len(unit)
        pos = self._gap
        if pos >= n:
            self._gap = pos - n
            return unit
        rng = self._corrupt_rng
        out = bytearray(unit)
        last = pos
        while pos < n:
            out[pos] ^= rng.randrange(1, 256)
            last = pos
            pos += 1 + self._next_gap()
        self._gap = pos - n
        if hex_record:
            if _HEX_RECORD_RE.fullmatch(out) and _hex_sum_ok(bytes(out)):
                choices = [b for b in range(256) if b not in _HEX_BYTES and b != unit[last]]
                out[last] = rng.choice(choices)
        elif sum(out) & 0xFF == 0:
            out[last] = rng.choice([b for b in range(256) if b not in (out[last], unit[last])])
        return bytes(out)


def _hex_sum_ok(record: bytes) -> bool:
    digits = record[1:-1]
    return len(digits) % 2 == 1 and sum(bytes.fromhex("0" + digits.decode())) & 0xFF == 0x55


def _check_corrupt(corrupt: float) -> None:
    if not 0.0 <= corrupt <= 1.0:
        raise ValueError(f"corrupt must be a fraction of bytes between 0 and 1, not {corrupt!r}")


# -- capture replay ---------------------------------------------------------------------------

_BLOCK_END = b"\r\nChecksum\t"


def _split_updates(data: bytes) -> list[list[bytes]]:
    """Split a capture into updates (seconds), each a list of pieces ending at a block end.

    A piece runs from the end of the previous block through the next checksum byte, so it
    carries whatever preceded the block (HEX records, noise). A piece whose block has a
    ``PID`` record starts a new update; the pieces after it (an H block, a split MPPT's second
    block) join it. Bytes after the last block end join the last update.
    """
    pieces: list[bytes] = []
    pos = 0
    while True:
        k = data.find(_BLOCK_END, pos)
        if k < 0 or k + len(_BLOCK_END) >= len(data):
            break
        end = k + len(_BLOCK_END) + 1
        pieces.append(data[pos:end])
        pos = end
    if not pieces:
        return []
    updates: list[list[bytes]] = []
    for piece in pieces:
        if not updates or b"\r\nPID\t" in piece:
            updates.append([piece])
        else:
            updates[-1].append(piece)
    if pos < len(data):  # a trailing partial block
        updates[-1][-1] += data[pos:]
    return updates


def split_capture(data: bytes) -> list[bytes]:
    """A capture split into one ``bytes`` per device update; joined they are ``data`` again."""
    return [b"".join(update) for update in _split_updates(data)]


# -- paced async stream ---------------------------------------------------------------------


def _check_speed(speed: float) -> None:
    if not speed > 0.0:  # also rejects NaN
        raise ValueError(f"speed must be > 0 (1 = real time, inf = no pacing), not {speed!r}")


def open_stream(
    kind: str,
    *,
    speed: float = 1.0,
    seed: int | None = None,
    hex_records: bool = False,
    corrupt: float = 0.0,
) -> AsyncIterator[bytes]:
    """Chunks of a simulated device's stream, one per simulated second, paced on the loop.

    ``kind`` is ``"bmv712"``, ``"mppt"``, ``"smartshunt"`` or the path of a capture file to
    replay (looping). Chunk *n* is delivered at loop time start + n / ``speed`` (absolute
    deadlines: no drift however long it runs; a consumer that fell behind gets the missed
    chunks back to back, as from a serial buffer). Raises ValueError at once for an unknown
    kind or a bad option; the iterator runs until the consumer stops iterating.
    """
    _check_speed(speed)
    _check_corrupt(corrupt)
    if kind in KINDS:
        device = SimulatedDevice(kind, seed=seed, hex_records=hex_records, corrupt=corrupt)
        return _paced(device.next_second, speed)
    path = Path(kind)
    if not path.is_file():
        raise ValueError(
            f"unknown simulator kind {kind!r}: expected one of {', '.join(KINDS)} "
            "or the path of a capture file"
        )
    if hex_records:
        raise ValueError(f"{kind}: HEX records can only be added to generated streams")
    return _replay(path, speed, seed, corrupt)


async def _replay(
    path: Path, speed: float, seed: int | None, corrupt: float
) -> AsyncIterator[bytes]:
    data = await asyncio.to_thread(path.read_bytes)
    device = SimulatedDevice.from_capture(data, seed=seed, corrupt=corrupt, name=str(path))
    async for chunk in _paced(device.next_second, speed):
        yield chunk


async def _paced(next_chunk: Callable[[], bytes], speed: float) -> AsyncIterator[bytes]:
    loop = asyncio.get_running_loop()
    start = loop.time()
    n = 0
    while True:
        delay = start + n / speed - loop.time()
        # Always yield to the loop, even when behind schedule, so a fast stream never
        # starves other tasks.
        await asyncio.sleep(max(0.0, delay))
        yield next_chunk()
        n += 1


# -- command line ---------------------------------------------------------------------------


def cli_simulate(args: argparse.Namespace) -> int:
    """``simulate``: write a simulated stream into a new pty (``--pty``) or to stdout."""
    try:
        stream = open_stream(
            args.kind,
            speed=args.speed,
            seed=args.seed,
            hex_records=args.hex,
            corrupt=args.corrupt,
        )
    except ValueError as exc:
        sys.stderr.write(f"simulate: {exc}\n")
        return 2
    if args.duration is not None and not args.duration > 0:
        sys.stderr.write(f"simulate: --duration must be > 0 seconds, not {args.duration!r}\n")
        return 2
    if args.pty:
        return _simulate_pty(stream, args)
    return asyncio.run(_pump(stream, _stdout_sink(), args.duration, args.speed))


def _stdout_sink() -> Callable[[bytes], bool]:
    out = sys.stdout.buffer

    def write(chunk: bytes) -> bool:
        try:
            out.write(chunk)
            out.flush()
        except BrokenPipeError:
            # The reader went away (e.g. `| head`): stop quietly; point stdout at /dev/null
            # so the interpreter's final flush does not complain either.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, out.fileno())
            os.close(devnull)
            return False
        return True

    return write


def _simulate_pty(stream: AsyncIterator[bytes], args: argparse.Namespace) -> int:
    master, slave = os.openpty()
    link = Path(args.link) if args.link else None
    path = os.ttyname(slave)
    linked = False
    try:
        tty.setraw(slave)  # no echo, no CR/LF translation, no line buffering
        os.set_blocking(master, False)

        def announce() -> int | None:
            # Runs once SIGTERM/SIGINT are handled, so whoever reads the path may signal us
            # at once and still get a clean exit (and the link removed).
            nonlocal linked
            if link is not None:
                try:
                    _make_link(link, path)
                except OSError as exc:
                    sys.stderr.write(f"simulate: cannot create link {link}: {exc}\n")
                    return 2
                linked = True
            sys.stdout.write(path + "\n")
            sys.stdout.flush()
            return None

        line = PtyLine(master, slave)

        def write(chunk: bytes) -> bool:
            line.write(chunk)
            return True

        return asyncio.run(_pump(stream, write, args.duration, args.speed, announce))
    finally:
        if link is not None and linked:
            with contextlib.suppress(OSError):
                if link.is_symlink() and os.readlink(link) == path:
                    link.unlink()
        os.close(master)
        os.close(slave)


def _make_link(link: Path, target: str) -> None:
    """Point the symlink ``link`` at ``target``, atomically; never replace a regular file."""
    if link.exists() and not link.is_symlink():
        raise FileExistsError(f"{link} exists and is not a symlink")
    tmp = link.with_name(f".{link.name}.{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    tmp.symlink_to(target)
    tmp.replace(link)


class PtyLine:
    """The device end of a pseudo-terminal, behaving like a serial line nobody may be reading.

    Writes never block. A real USB serial port holds about two seconds of unread data (the
    kernel's 4 KB line buffer at 19200 baud) and loses the rest; whoever opens the port next
    gets fresh data. A pty would instead keep ~22 kB (over a minute of BMV output) for the next
    opener, who would then take stale values for current ones. So before each write, if the
    slave side holds bytes older than ``keep`` seconds (more unread bytes than were written in
    that time), they are discarded. ``clock`` is injectable for tests.
    """

    __slots__ = ("_clock", "_keep", "_recent", "_recent_bytes", "discarded", "master", "slave")

    def __init__(
        self,
        master: int,
        slave: int,
        *,
        keep: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.master = master
        self.slave = slave
        self._keep = keep
        self._clock = clock
        self._recent: collections.deque[tuple[float, int]] = collections.deque()
        self._recent_bytes = 0
        self.discarded = 0  # stale bytes thrown away (nobody was reading)

    def pending(self) -> int:
        """Bytes written that the slave side has not read yet (as far as the kernel shows)."""
        raw = fcntl.ioctl(self.slave, termios.FIONREAD, b"\0\0\0\0")
        return int.from_bytes(raw, sys.byteorder, signed=True)

    def write(self, chunk: bytes) -> None:
        """Write ``chunk``, discarding stale unread data first; never blocks."""
        now = self._clock()
        recent = self._recent
        while recent and recent[0][0] < now - self._keep:
            self._recent_bytes -= recent.popleft()[1]
        pending = self.pending()
        if pending > self._recent_bytes:
            self._discard(pending)
        try:
            written = os.write(self.master, chunk)
        except BlockingIOError:
            written = 0
        if written < len(chunk):  # full even so (a burst at high speed): drop and retry once
            self._discard(self.pending())
            with contextlib.suppress(BlockingIOError):
                written += os.write(self.master, chunk[written:])
        if recent and now - recent[-1][0] < 0.1:  # one entry per 0.1 s, even at full speed
            recent[-1] = (recent[-1][0], recent[-1][1] + written)
        else:
            recent.append((now, written))
        self._recent_bytes += written

    def _discard(self, count: int) -> None:
        termios.tcflush(self.slave, termios.TCIFLUSH)
        self.discarded += count


async def _pump(
    stream: AsyncIterator[bytes],
    sink: Callable[[bytes], bool],
    duration: float | None,
    speed: float,
    announce: Callable[[], int | None] | None = None,
) -> int:
    """Feed ``stream`` to ``sink`` until SIGTERM/SIGINT, ``duration`` or the sink gives up.

    ``announce`` runs once the signals are handled; an exit code from it ends the run.
    """
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    if announce is not None and (code := announce()) is not None:
        return code
    limit = None if duration is None else math.ceil(duration)
    end = None if duration is None else loop.time() + duration / speed

    async def run() -> None:
        count = 0
        async for chunk in stream:
            if not sink(chunk):
                return
            count += 1
            if limit is not None and count >= limit:
                break
        if end is not None:  # let the last second run its course before closing
            await asyncio.sleep(max(0.0, end - loop.time()))

    task = asyncio.create_task(run())
    stopper = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for pending in (task, stopper):
            pending.cancel()
        await asyncio.gather(task, stopper, return_exceptions=True)
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()
    if task.done() and not task.cancelled() and (exc := task.exception()) is not None:
        raise exc
    return 0
