"""Posts per second the Domoticz output sustains against the fake Domoticz on loopback.

The real output (``DomoticzOutput``) runs with ``--idx`` mapped fields of one device, a tiny
interval (so rounds run back to back: the schedule is never the limit) and ``heartbeat = 0``
(every value posted every round), against ``tests/fake_domoticz.py`` on 127.0.0.1 - one request
at a time, a new TCP connection per request, as against a real Domoticz. A publisher feeds a
new reading every 10 ms. Stops by itself after ``--seconds``.

Both the output and the fake server run in this one process (one core), so the CPU figure is
the sum of both; a real Domoticz answers a udevice in about 1.5 ms (domoticz.md transcripts),
slower than the fake, so real rates are lower. At the default interval of 30 s the output
needs a handful of posts per minute: the point is the headroom.

Usage: python bench/domoticz.py [--seconds 3] [--idx 10]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import platform
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.fake_domoticz import FakeDomoticz
from vedirect_async.config import DomoticzDevice
from vedirect_async.hub import Hub
from vedirect_async.outputs.domoticz import DomoticzConfig, DomoticzOutput
from vedirect_async.reading import Reading

FIELDS = ("voltage", "current", "soc", "consumed_ah", "power", "time_to_go")


async def bench(seconds: float, idx_count: int) -> None:
    async with FakeDomoticz() as fake:
        rows = []
        for idx in range(1, idx_count + 1):
            fake.add_device(idx, f"d{idx}")
            rows.append(DomoticzDevice(idx=idx, field=FIELDS[idx % len(FIELDS)], kind="custom"))
        config = DomoticzConfig(
            enabled=True,
            url=fake.url,
            interval=0.001,
            heartbeat=0.0,
            probe=False,
            post_on_change=False,
            devices=rows,
        )
        output = DomoticzOutput(config, ["bmv"])
        hub = Hub()
        state = hub.output(output.name)
        task = asyncio.create_task(output.run(output.subscribe(hub), state))
        cpu0, wall0 = time.process_time(), time.monotonic()
        n = 0
        while time.monotonic() - wall0 < seconds:
            n += 1
            values = dict.fromkeys(FIELDS, 12.0 + n / 1000)
            hub.publish(Reading("bmv", datetime.now(UTC), time.monotonic(), values=values))
            await asyncio.sleep(0.01)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        wall, cpu = time.monotonic() - wall0, time.process_time() - cpu0
        served = [r.done - r.at for r in fake.requests()]
        served.sort()
        posts = len(fake.updates)
        print(
            f"domoticz output -> fake Domoticz on 127.0.0.1: {idx_count} idx, back-to-back "
            f"rounds, {wall:.1f} s ({platform.machine()}, Python {platform.python_version()})"
        )
        print(
            f"posts: {posts} ({posts / wall:.0f}/s), server-side time per request: median "
            f"{statistics.median(served) * 1000:.2f} ms, p99 "
            f"{served[int(len(served) * 0.99)] * 1000:.2f} ms; max concurrency "
            f"{fake.max_concurrency}; errors {state.counters.get('errors', 0)}"
        )
        print(
            f"process CPU {cpu:.2f} s = {cpu / max(posts, 1) * 1e6:.0f} us per post "
            "(output + fake server together)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--idx", type=int, default=10)
    args = parser.parse_args()
    asyncio.run(bench(min(args.seconds, 60.0), args.idx))


if __name__ == "__main__":
    main()
