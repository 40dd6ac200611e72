"""A stable identity for a named simulated device (issue 13): the same device on every start.

A real device keeps its serial number and its history counters across power cycles; a
simulator that drew both at random on each start looked like a new device every time (Home
Assistant's registry filled up; its Energy statistics saw +140 kWh in one hour). With a
device name:

- the serial number is derived from the name (same name -> same serial, every start);
- the history counters (MPPT yield total H19 and day number HSDS, battery monitor H4-H6,
  H10, H17, H18, ...) start from a *nominal* value that is a function of the wall-clock time
  since :data:`EPOCH`: a per-device base (from the name) plus a rate per day a little above
  what the simulated installation really produces. No state file is needed.
- While it runs, a counter grows with the simulated flows but never beyond its nominal value
  at the current wall-clock time (:meth:`Nominal.cap`). So every value ever reported at time
  *t* is at most nominal(*t*), and a later start begins at nominal(later) >= everything
  reported before: counters never go back, whatever happened in the last run.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime

from .plant import Plant

__all__ = ["EPOCH", "Nominal", "serial_for"]

EPOCH = datetime(2024, 1, 1, tzinfo=UTC)  # the simulated devices were "installed" then
_DAY_S = 86_400.0
_SERIAL_CHARS = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZ"

# Counter, rate per day. The simulated 300 Wp / 200 Ah installation makes about 1.1-1.5 kWh,
# draws about 65 Ah and charges 0.7-1.0 kWh a day, syncs about once and cycles every 3 days;
# the rates are about 1.5 times that, so the cap seldom holds a counter back.
_RATES = {
    "yield_total": 2000.0,  # Wh
    "drawn": -100.0,  # Ah (negative: drawn from the battery)
    "e_discharged": 1200.0,  # Wh
    "e_charged": 1400.0,  # Wh
    "cycles": 0.5,
    "syncs": 1.5,
}


def serial_for(name: str, kind: str) -> str:
    """A Victron-style serial (``HQ`` year week, 5 characters) derived from the name."""
    rng = random.Random(f"vedirect-sim/serial/{kind}/{name}")
    suffix = "".join(rng.choice(_SERIAL_CHARS) for _ in range(5))
    return f"HQ{rng.randint(20, 24)}{rng.randint(10, 52)}{suffix}"


@dataclass(frozen=True, slots=True)
class Nominal:
    """The nominal history of one named device: base values at :data:`EPOCH` plus rates."""

    base: dict[str, float]
    hsds_base: int
    average_depth: float  # Ah, the battery monitor's average discharge (H3)

    @classmethod
    def of(cls, name: str, kind: str) -> Nominal:
        """The nominal history of the device called ``name`` (always the same)."""
        rng = random.Random(f"vedirect-sim/history/{kind}/{name}")
        base = {
            "yield_total": rng.uniform(50_000.0, 400_000.0),
            "drawn": -rng.uniform(2_000.0, 8_000.0),
            "cycles": float(rng.randint(20, 120)),
            "syncs": float(rng.randint(40, 160)),
        }
        base["e_discharged"] = -base["drawn"] * 12.4
        base["e_charged"] = base["e_discharged"] * rng.uniform(1.08, 1.15)
        return cls(base, rng.randint(0, 364), rng.uniform(30.0, 55.0))

    def at(self, wall: datetime) -> dict[str, float]:
        """Every counter's nominal value at wall-clock time ``wall``."""
        days = max(0.0, (wall - EPOCH).total_seconds() / _DAY_S)
        return {key: self.base[key] + rate * days for key, rate in _RATES.items()}

    def start(self, plant: Plant, wall: datetime) -> None:
        """Set the plant's history counters to their nominal values at ``wall``."""
        values = self.at(wall)
        plant.yield_total = values["yield_total"]
        plant.drawn = values["drawn"]
        plant.e_discharged = values["e_discharged"]
        plant.e_charged = values["e_charged"]
        plant.cycles = int(values["cycles"])
        plant.syncs = max(plant.cycles, int(values["syncs"]))
        plant.depth_count = plant.syncs
        plant.depth_sum = -self.average_depth * plant.syncs
        days = int(max(0.0, (wall - EPOCH).total_seconds()) // _DAY_S)
        plant.hsds = (self.hsds_base + days) % 365

    def cap(self, plant: Plant, wall: datetime) -> None:
        """Hold back any counter that got ahead of its nominal value at ``wall``."""
        values = self.at(wall)
        plant.yield_total = min(plant.yield_total, values["yield_total"])
        plant.drawn = max(plant.drawn, values["drawn"])
        plant.e_discharged = min(plant.e_discharged, values["e_discharged"])
        plant.e_charged = min(plant.e_charged, values["e_charged"])
        plant.cycles = min(plant.cycles, int(values["cycles"]))
        plant.syncs = min(plant.syncs, int(values["syncs"]))
