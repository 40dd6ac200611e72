"""MQTT output on loopback: latency from a block's last byte to a subscriber, and top rate.

A real mosquitto is started on a free 127.0.0.1 port. Several simulated devices (BMV-712,
MPPT, SmartShunt, ...) are fed through the reader's real hot path (``DeviceSession._feed``:
parser → assembler → hub), the MQTT output publishes, and an aiomqtt subscriber in the same
process timestamps each state message. Everything shares one event loop and the 2 cores with
mosquitto, so the figures include all of it.

For each ``--rate`` (updates per second per device; a real device sends 1), every device sends
one update every ``1/rate`` s for ``--seconds``. Printed: how many updates reached the
subscriber as their own state message (the output keeps only the newest reading per device
while a publish is in flight, so below 100 % the rest were coalesced, never queued), the
delivered message rate, and the time from feeding the chunk that ends an update to the
subscriber receiving that reading's state message, p50/p99/max; and how late the feeding
ran behind its schedule (the reader side never waits on the output).

Usage: python bench/mqtt.py [--devices 4] [--rate 1 20 100 250] [--seconds 5] [--qos 1]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiomqtt

from tests.mosquitto import Mosquitto
from vedirect_async.config import DeviceConfig, WatchdogConfig
from vedirect_async.hub import Hub, ReaderState
from vedirect_async.outputs.mqtt import MqttOutput, state_payload
from vedirect_async.outputs.mqtt.config import MqttConfig
from vedirect_async.reading import Reading
from vedirect_async.session import DeviceSession
from vedirect_async.simulator import SimulatedDevice

KINDS = ("bmv712", "mppt", "smartshunt")
PREGENERATED = 3000  # seconds per device, replayed in a loop (times are taken anew)


def _key(reading: Reading) -> tuple[str, str]:
    return reading.device, str(state_payload(reading)["time"])


class Bench:
    def __init__(self, broker: Mosquitto, devices: int, qos: int) -> None:
        self.hub = Hub()
        self.names = [f"dev{i}" for i in range(devices)]
        self.readers = [
            DeviceSession(DeviceConfig(name=name, port="bench"), self.hub, WatchdogConfig())
            for name in self.names
        ]
        for reader in self.readers:
            reader.state.state = ReaderState.READING
        # generated up front: the simulator's own cost is not the service's
        self.chunks = [
            list(SimulatedDevice(KINDS[i % len(KINDS)], seed=i).iter_seconds(PREGENERATED))
            for i in range(devices)
        ]
        self.fed = [0] * devices
        config = MqttConfig(
            enabled=True, host=broker.host, port=broker.port, client_id="bench", qos=qos
        )
        self.output = MqttOutput(config, device_names=self.names)
        self.broker = broker
        self.fed_at: dict[tuple[str, str], float] = {}
        self.latencies: list[float] = []
        self.received = 0
        self._feeding = 0.0
        self.hub.add_listener(self._on_reading)

    def _on_reading(self, reading: Reading) -> None:
        self.fed_at[_key(reading)] = self._feeding

    def feed(self, index: int) -> None:
        """One simulated second of device ``index``, timestamped at its last byte."""
        chunk = self.chunks[index][self.fed[index] % PREGENERATED]
        self.fed[index] += 1
        self._feeding = time.perf_counter()
        self.readers[index]._feed(chunk)  # the hot path data_received runs

    async def subscriber(self, ready: asyncio.Event) -> None:
        async with aiomqtt.Client(self.broker.host, self.broker.port) as client:
            await client.subscribe("vedirect/+/state", qos=1)
            ready.set()
            async for message in client.messages:
                now = time.perf_counter()
                payload = message.payload
                assert isinstance(payload, bytes)
                data = json.loads(payload)
                sent = self.fed_at.pop((data["device"], data["time"]), None)
                self.received += 1
                if sent is not None:
                    self.latencies.append(now - sent)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        ready = asyncio.Event()
        sub = asyncio.create_task(self.subscriber(ready))
        await asyncio.wait_for(ready.wait(), 10)
        subscription = self.output.subscribe(self.hub)
        out = asyncio.create_task(self.output.run(subscription, self.hub.output("mqtt")))
        try:
            yield
        finally:
            for task in (out, sub):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                    await task


async def latency(broker: Mosquitto, devices: int, rate: float, seconds: float, qos: int) -> None:
    bench = Bench(broker, devices, qos)
    async with bench.running():
        for index in range(devices):  # first reading of each: HA discovery is sent (not timed)
            bench.feed(index)
        await asyncio.sleep(1.0)
        bench.latencies.clear()
        period = 1.0 / rate
        loop = asyncio.get_running_loop()
        start = loop.time()
        ticks = max(1, int(seconds * rate))
        lag = 0.0
        for tick in range(ticks):
            # devices spread evenly across the period, like independent serial ports
            for index in range(devices):
                due = start + (tick + index / devices) * period
                await asyncio.sleep(max(0.0, due - loop.time()))
                lag = max(lag, loop.time() - due)
                bench.feed(index)
        await asyncio.sleep(0.5)  # let the last messages arrive
    lat = sorted(bench.latencies)
    updates = ticks * devices

    def p(q: float) -> float:
        return lat[min(len(lat) - 1, int(q * len(lat)))] * 1000

    print(
        f"{devices} devices x {rate:g} updates/s, qos {qos}: {len(lat)} of {updates} updates "
        f"delivered as their own message ({len(lat) / updates * 100:.1f} %, "
        f"{len(lat) / (ticks / rate):,.0f} messages/s); latency p50 {p(0.50):.2f} ms, "
        f"p99 {p(0.99):.2f} ms, max {lat[-1] * 1000:.2f} ms (mean "
        f"{statistics.mean(lat) * 1000:.2f} ms); feeding worst lag {lag * 1000:.1f} ms; "
        f"output {bench.hub.outputs['mqtt'].health}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=4)
    parser.add_argument(
        "--rate",
        type=float,
        nargs="+",
        default=[1.0, 20.0, 100.0, 250.0],
        help="updates/s per device",
    )
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--qos", type=int, default=1, choices=(0, 1, 2))
    args = parser.parse_args()
    print(f"python {platform.python_version()} on {platform.machine()}, {platform.node()}")
    with tempfile.TemporaryDirectory() as folder:
        broker = Mosquitto(Path(folder) / "broker").start()
        try:
            for rate in args.rate:
                asyncio.run(latency(broker, args.devices, rate, args.seconds, args.qos))
        finally:
            broker.stop()


if __name__ == "__main__":
    main()
