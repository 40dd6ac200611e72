"""One simulated BMV-712 day through the reader's real hot path: parser → assembler → hub.

86,400 seconds of a simulated BMV-712 (two blocks per second, 86,400 updates) are generated
first (not timed). Then they are fed, in-process, through ``DeviceSession._feed`` - the exact
code ``data_received`` runs - into the hub, with a null consumer draining its subscription on
the event loop. Two chunkings: one chunk per second (as the simulator delivers) and 64-byte
chunks (about what a USB serial adapter hands over per read). Prints wall and CPU time, and
the CPU time of the parser alone and of parser + assembler, to show where the time goes.

Usage: python bench/pipeline.py [--seconds N]
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vedirect_async.config import DeviceConfig, WatchdogConfig
from vedirect_async.decoder import Decoder
from vedirect_async.hub import Hub
from vedirect_async.parser import Parser
from vedirect_async.session import DeviceSession
from vedirect_async.simulator import SimulatedDevice

TARGET_SECONDS = 5.0


def device_day(seconds: int) -> list[bytes]:
    """The bytes of ``seconds`` simulated seconds of a BMV-712, one item per second."""
    device = SimulatedDevice("bmv712", seed=1)
    return list(device.iter_seconds(seconds))


def rechunk(seconds: list[bytes], size: int) -> list[bytes]:
    data = b"".join(seconds)
    return [data[i : i + size] for i in range(0, len(data), size)]


async def run(chunks: list[bytes], per_yield: int) -> tuple[float, float, int, int]:
    """Feed ``chunks``; yield to the loop every ``per_yield`` chunks so the consumer drains."""
    hub = Hub()
    reader = DeviceSession(DeviceConfig(name="bmv", port="bench"), hub, WatchdogConfig())
    subscription = hub.subscribe("null", maxsize=4096)
    consumed = 0

    async def null_consumer() -> None:
        nonlocal consumed
        async for _ in subscription:
            consumed += 1

    consumer = asyncio.get_running_loop().create_task(null_consumer())
    feed = reader._feed  # the hot path data_received calls, measured alone
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for i, chunk in enumerate(chunks):
        feed(chunk)
        if i % per_yield == 0:
            await asyncio.sleep(0)
    subscription.close()
    await consumer
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    assert subscription.dropped == 0, subscription.dropped
    return wall, cpu, hub.published, consumed


def stages(seconds: list[bytes]) -> tuple[float, float]:
    """CPU seconds of the parser alone, and of the decoder , same bytes."""
    parser = Parser()
    cpu0 = time.process_time()
    events = [event for chunk in seconds for event in parser.feed(chunk)]
    parse = time.process_time() - cpu0
    decoder = Decoder("bmv")
    wall = datetime.now(UTC)
    cpu0 = time.process_time()
    for i, chunk in enumerate(seconds):
        decoder.feed(chunk, float(i), wall)
    assemble = time.process_time() - cpu0
    assert len(events) >= len(seconds)
    return parse, assemble


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=86_400, help="simulated seconds")
    args = parser.parse_args()
    t0 = time.perf_counter()
    seconds = device_day(args.seconds)
    total = sum(map(len, seconds))
    print(
        f"generated {args.seconds} s of BMV-712 output ({total / 1e6:.1f} MB) "
        f"in {time.perf_counter() - t0:.1f} s (not timed below)"
    )
    print(f"python {platform.python_version()} on {platform.machine()}, {platform.node()}")
    parse, assemble = stages(seconds)
    print(f"stages (CPU): parser {parse:.2f} s; parser + assembler {assemble:.2f} s")
    for label, chunks, per_yield in (
        ("1 chunk per second", seconds, 1),
        ("64-byte chunks", rechunk(seconds, 64), 16),
    ):
        wall, cpu, published, consumed = asyncio.run(run(chunks, per_yield))
        verdict = "ok" if wall <= TARGET_SECONDS else "OVER TARGET"
        print(
            f"{label:>20}: {len(chunks):>9,} chunks -> {published:,} readings "
            f"({consumed:,} consumed): wall {wall:.2f} s, CPU {cpu:.2f} s "
            f"[target <= {TARGET_SECONDS:g} s: {verdict}]; "
            f"{cpu / args.seconds * 100:.4f} % of one core in real time"
        )


if __name__ == "__main__":
    main()
