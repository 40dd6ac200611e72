"""How fast the pure simulator generates a device-day (no I/O, no pacing).

For each kind, and for the BMV-712 with HEX records and with 1 % corruption, generates
86,400 simulated seconds with ``SimulatedDevice.next_second()`` and prints wall and CPU time,
microseconds per simulated second and MB produced.

Usage: python bench/simulator.py [--seconds N]
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vedirect_async.simulator import SimulatedDevice

CASES: tuple[tuple[str, str, bool, float], ...] = (
    ("bmv712", "bmv712", False, 0.0),
    ("smartshunt", "smartshunt", False, 0.0),
    ("mppt", "mppt", False, 0.0),
    ("bmv712 --hex", "bmv712", True, 0.0),
    ("bmv712 --corrupt 0.01", "bmv712", False, 0.01),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=86_400, help="simulated seconds")
    args = parser.parse_args()
    seconds: int = args.seconds
    print(f"python {platform.python_version()} on {platform.machine()}, {platform.node()}")
    print(f"{'case':<24}{'wall s':>8}{'cpu s':>8}{'us/s':>8}{'MB':>8}")
    for label, kind, hex_records, corrupt in CASES:
        device = SimulatedDevice(kind, seed=1, hex_records=hex_records, corrupt=corrupt)
        next_second = device.next_second
        wall0, cpu0 = time.perf_counter(), time.process_time()
        size = 0
        for _ in range(seconds):
            size += len(next_second())
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        print(f"{label:<24}{wall:>8.2f}{cpu:>8.2f}{wall / seconds * 1e6:>8.1f}{size / 1e6:>8.1f}")


if __name__ == "__main__":
    main()
