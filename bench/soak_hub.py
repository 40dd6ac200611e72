"""Soak: 1,000,000 readings through the hub with three consumers, one of them slow.

Consumers: a fast FIFO (like MQTT), a latest-only coalescing one that wakes every 10 ms (like
Domoticz), and a slow FIFO that sleeps 1 ms per reading (like a CSV on a dying SD card), which
must lose its oldest readings, counted, while nothing grows. Prints peak RSS, RSS growth after
warm-up, the number of tasks and the queue lengths at checkpoints.

Usage: python bench/soak_hub.py [--readings N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import resource
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vedirect_async.hub import Hub, Subscription
from vedirect_async.reading import Reading

TARGET_GROWTH_MB = 1.0
_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_mb() -> float:
    """Current resident set size (Linux /proc)."""
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * _PAGE / 1e6


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6  # KiB on Linux


async def fast(sub: Subscription) -> None:
    async for _ in sub:
        pass


async def coalescing(sub: Subscription) -> None:
    while True:
        await sub.wait()
        sub.drain_latest()
        await asyncio.sleep(0.01)


async def slow(sub: Subscription) -> None:
    async for _ in sub:
        await asyncio.sleep(0.001)


async def soak(total: int) -> None:
    hub = Hub()
    subs = {
        "fast": hub.subscribe("fast", maxsize=1024),
        "coalescing": hub.subscribe("coalescing", latest_only=True),
        "slow": hub.subscribe("slow", maxsize=256),
    }
    loop = asyncio.get_running_loop()
    tasks = [
        loop.create_task(fast(subs["fast"])),
        loop.create_task(coalescing(subs["coalescing"])),
        loop.create_task(slow(subs["slow"])),
    ]
    start_wall = time.perf_counter()
    base_rss = warm_rss = rss_mb()
    checkpoints = {total // 10, total // 4, total // 2, 3 * total // 4, total}
    devices = ("bmv", "mppt", "shunt")
    print(f"{'readings':>10} {'RSS MB':>8} {'tasks':>5} {'queues (fast/coal/slow)':>24}")
    for n in range(1, total + 1):
        values = {"voltage": 12.0 + (n % 1000) / 1000, "current": -3.2, "soc": 87.3}
        hub.publish(
            Reading(
                device=devices[n % 3], time=datetime.now(UTC), monotonic=float(n), values=values
            )
        )
        if n % 64 == 0:
            await asyncio.sleep(0)  # a reader yields between serial chunks
        if n in checkpoints:
            if n == total // 10:
                warm_rss = rss_mb()
            queues = "/".join(str(len(s)) for s in subs.values())
            print(f"{n:>10,} {rss_mb():>8.2f} {len(asyncio.all_tasks()):>5} {queues:>24}")
    wall = time.perf_counter() - start_wall
    growth = rss_mb() - warm_rss
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    verdict = "ok" if growth <= TARGET_GROWTH_MB else "OVER TARGET"
    print(
        f"{total:,} readings in {wall:.1f} s ({total / wall:,.0f}/s); RSS at start "
        f"{base_rss:.1f} MB, peak {peak_rss_mb():.1f} MB, growth after warm-up {growth:+.2f} MB "
        f"[target <= {TARGET_GROWTH_MB:g} MB: {verdict}]"
    )
    print(
        "dropped: "
        + ", ".join(f"{name} {sub.dropped:,} of {total:,}" for name, sub in subs.items())
        + f"; delivered to slow: {subs['slow'].delivered:,}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, default=1_000_000)
    args = parser.parse_args()
    print(f"python {platform.python_version()} on {platform.machine()}, {platform.node()}")
    asyncio.run(soak(args.readings))


if __name__ == "__main__":
    main()
