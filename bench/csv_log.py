"""CPU cost of one device-day of CSV logging, at ``interval = 0`` and at ``interval = 30``.

86,400 BMV-712-like readings (one per second of a simulated day, all of a BMV's 26 fields, the
voltage, current, consumed Ah and SOC changing every second) go through the real output
(``CsvOutput``) into a real file in a temporary directory, with the shipped defaults
otherwise (the old script's five columns, local time, no fsync):

- ``interval = 0``: published into a hub (FIFO subscription, as in the service) and written by
  the output's own ``run`` loop, one row per reading.
- ``interval = 30``: simulated time: the readings are published into a coalescing
  subscription and every 30th simulated second the output writes what its tick would write
  (``drain_latest`` then ``write``), so no real 24 h are needed; 2,880 rows.

CPU = process time (event loop and the file worker threads together); also wall time, bytes
and rows written. Building the readings is not counted.

Usage: python bench/csv_log.py [--seconds 86400]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import platform
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vedirect_async.config import CsvConfig
from vedirect_async.hub import Hub
from vedirect_async.outputs.csv_log import CsvOutput
from vedirect_async.reading import Reading, Value

START = datetime(2026, 6, 21, 0, 0, 0, tzinfo=UTC)
CHUNK = 512  # readings published before waiting for the output to catch up


def readings(seconds: int) -> Iterator[Reading]:
    """A BMV-712-like day: every field of the main and history blocks."""
    for k in range(seconds):
        values: dict[str, Value] = {
            "product_id": "0xA381",
            "voltage": round(12.6 + 0.4 * ((k % 3600) / 3600), 3),
            "aux_voltage": 12.71,
            "current": round(-3.2 + (k % 97) * 0.011, 3),
            "power": -40 + k % 7,
            "consumed_ah": round(-10.0 - k * 0.0001, 3),
            "soc": round(95.0 - (k % 500) * 0.01, 1),
            "time_to_go": 2400,
            "alarm": False,
            "relay": False,
            "alarm_reason": (),
            "model": "712 Smart",
            "firmware": "4.08",
            "monitor_mode": "battery monitor",
        }
        for h in range(1, 19):
            values[f"history_{h}"] = 1000 + h
        yield Reading("bmv", START + timedelta(seconds=k), float(k), MappingProxyType(values))


async def interval_zero(path: Path, seconds: int) -> tuple[float, float, int]:
    output = CsvOutput(CsvConfig(path=str(path), interval=0), ["bmv"])
    hub = Hub()
    sub = output.subscribe(hub)
    state = hub.output("csv")
    batches = list(readings(seconds))
    cpu, wall = time.process_time(), time.perf_counter()
    task = asyncio.create_task(output.run(sub, state))
    for start in range(0, len(batches), CHUNK):
        for reading in batches[start : start + CHUNK]:
            hub.publish(reading)
        await output.wait_written(min(start + CHUNK, len(batches)))
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await output.aclose()
    assert state.health == "ok", state.reason
    return time.process_time() - cpu, time.perf_counter() - wall, output.rows_written


async def interval_thirty(path: Path, seconds: int) -> tuple[float, float, int]:
    output = CsvOutput(CsvConfig(path=str(path), interval=30), ["bmv"])
    hub = Hub()
    sub = output.subscribe(hub)
    state = hub.output("csv")
    batches = list(readings(seconds))
    cpu, wall = time.process_time(), time.perf_counter()
    for k, reading in enumerate(batches):
        hub.publish(reading)
        if k % 30 == 29:  # a tick of the schedule, in simulated time
            for latest in sub.drain_latest().values():
                await output.write(latest, state)
    await output.aclose()
    assert state.health == "ok", state.reason
    return time.process_time() - cpu, time.perf_counter() - wall, output.rows_written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=int, default=86_400, help="simulated seconds")
    args = parser.parse_args()
    print(f"# {platform.node()} {platform.machine()} Python {platform.python_version()}")
    print(f"# {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {args.seconds} readings (1 per second)")
    for name, run in (("interval 0", interval_zero), ("interval 30", interval_thirty)):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "vedirect_data.csv"
            cpu, wall, rows = asyncio.run(run(path, args.seconds))
            size = path.stat().st_size
        per_row = cpu / rows * 1e6 if rows else 0.0
        print(
            f"{name:12} rows {rows:6d}  bytes {size:8d}  CPU {cpu:6.2f} s  wall {wall:6.2f} s"
            f"  ({per_row:.0f} us CPU per row)"
        )


if __name__ == "__main__":
    main()
