"""HTTP endpoint under load while the pipeline runs: requests/s, and the reading rate meanwhile.

The service side runs in this process, as in production: the real ``WebServer`` on 127.0.0.1
and a simulated BMV-712 fed through the reader's hot path (``DeviceSession._feed``: parser ->
assembler -> hub) on an absolute schedule of ``--rate`` device-seconds per second (the real
device sends one; 20 makes any stall visible). The load comes from a separate process
(``--concurrency`` aiohttp clients in a loop) that stops by itself after ``--seconds``.

Phases: pipeline alone, then /health, /api/readings and /metrics under load. For each:
requests/s with p50/p99 latency, and the readings/s the pipeline achieved plus its worst lag
behind schedule (the reading rate must not drop under load).

Usage: python bench/web.py [--seconds 5] [--concurrency 8] [--rate 20]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import socket
import statistics
import sys
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vedirect_async.config import Config, DeviceConfig, HttpConfig, WatchdogConfig
from vedirect_async.hub import Hub
from vedirect_async.session import DeviceSession
from vedirect_async.simulator import SimulatedDevice
from vedirect_async.web import WebServer

MAX_REQUESTS = 2_000_000  # the load generator's hard stop, whatever the duration


# -- load generator (child process) ---------------------------------------------------------


async def load(url: str, seconds: float, concurrency: int) -> dict[str, object]:
    """GET ``url`` from ``concurrency`` workers until ``seconds`` have passed."""
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    timeout = aiohttp.ClientTimeout(total=5)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < deadline and len(latencies) < MAX_REQUESTS:
                started = time.perf_counter()
                try:
                    async with session.get(url) as resp:
                        await resp.read()
                        if resp.status != 200:
                            errors += 1
                except (aiohttp.ClientError, TimeoutError):
                    errors += 1
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "requests": len(latencies),
        "errors": errors,
        "seconds": elapsed,
        "p50_ms": 1000 * statistics.median(latencies) if latencies else 0.0,
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)] if latencies else 0.0,
    }


# -- service side (this process) -------------------------------------------------------------


class Pipeline:
    """A simulated device fed at ``rate`` device-seconds per wall second, schedule-locked."""

    def __init__(self, hub: Hub, rate: float) -> None:
        self.hub = hub
        self.rate = rate
        self.reader = DeviceSession(DeviceConfig(name="bmv", port="bench"), hub, WatchdogConfig())
        self.sim = SimulatedDevice("bmv712", seed=1)
        self.max_lag = 0.0

    async def run(self) -> None:
        start = time.monotonic()
        k = 0
        while True:
            k += 1
            due = start + k / self.rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            self.max_lag = max(self.max_lag, time.monotonic() - due)
            self.reader._feed(self.sim.next_second())

    def window(self) -> tuple[int, float, float]:
        """(readings so far, now, worst lag since the last call) and restart the lag maximum."""
        lag, self.max_lag = self.max_lag, 0.0
        return self.hub.published, time.monotonic(), lag


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def run_load(url: str, seconds: float, concurrency: int) -> dict[str, object]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--load",
        url,
        "--seconds",
        str(seconds),
        "--concurrency",
        str(concurrency),
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), seconds + 60)
    result: dict[str, object] = json.loads(out)
    return result


async def main(seconds: float, concurrency: int, rate: float) -> None:
    port = free_port()
    config = Config(http=HttpConfig(host="127.0.0.1", port=port))
    hub = Hub()
    pipeline = Pipeline(hub, rate)
    web = WebServer(config, hub)
    server = asyncio.create_task(web.run())
    feeder = asyncio.create_task(pipeline.run())
    base = f"http://127.0.0.1:{port}"
    try:
        await asyncio.wait_for(web.serving.wait(), 30)
        print(
            f"web bench: {platform.python_implementation()} {platform.python_version()}, "
            f"{os.cpu_count()} CPUs, {seconds:g} s per phase, {concurrency} concurrent clients "
            f"in a separate process, pipeline at {rate:g} readings/s"
        )
        before, t0, _ = pipeline.window()
        await asyncio.sleep(seconds)
        after, t1, idle_lag = pipeline.window()
        print(
            f"  pipeline alone:        {'':>24}  readings {(after - before) / (t1 - t0):6.2f}/s, "
            f"max lag {1000 * idle_lag:5.1f} ms"
        )
        for path in ("/health", "/api/readings", "/metrics"):
            before, t0, _ = pipeline.window()
            result = await run_load(base + path, seconds, concurrency)
            after, t1, lag = pipeline.window()
            rps = float(result["requests"]) / float(result["seconds"])  # type: ignore[arg-type]
            print(
                f"  {path:<14} {rps:7.0f} req/s (p50 {result['p50_ms']:.1f} ms, "
                f"p99 {result['p99_ms']:.1f} ms, errors {result['errors']})  "
                f"readings {(after - before) / (t1 - t0):6.2f}/s, "
                f"max lag {1000 * lag:5.1f} ms"
            )
    finally:
        for task in (feeder, server):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each phase")
    parser.add_argument("--concurrency", type=int, default=8, help="concurrent client requests")
    parser.add_argument("--rate", type=float, default=20.0, help="readings per second fed")
    parser.add_argument("--load", default=None, help=argparse.SUPPRESS)  # child process mode
    return parser.parse_args()


if __name__ == "__main__":
    args = parse_args()
    if args.load:
        print(json.dumps(asyncio.run(load(args.load, args.seconds, args.concurrency))))
    else:
        asyncio.run(main(args.seconds, args.concurrency, args.rate))
