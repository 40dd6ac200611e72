"""Writes over MQTT (issue 15): a command published -> the confirmed state on the state topic.

A real mosquitto on a free 127.0.0.1 port; the simulated SmartSolar MPPT in its own process
(``simulate mppt --pty``, real speed: a text block per second, HEX answered over the pty); the
service's parts in this process: the device session on the pty, the write policy
(:class:`~vedirect_async.control.Controller`) and the MQTT output with its command topics. An
aiomqtt client publishes each command and timestamps the first state message that carries the
value the device read back.

Commands alternate between the MPPT's device mode (``off``/``on``, a switch) and its battery
maximum current (a number), each register written at most once a second: the bench lifts the
60 s NVM limit of the charge current to that second (``--nvm-interval``), as nothing stores
anything here. After a confirmed write the MQTT output publishes the device's latest reading
with the read-back at once (it does not wait for the next text block, 0-1 s away at real speed),
so the figure is the command's way through the broker, the write itself (Get, Set echo, Get
read-back over the pty; also printed alone) and the state's way back.

Usage: python bench/control.py [--commands 30] [--nvm-interval 1]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
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
from vedirect_async.control import Controller
from vedirect_async.hub import Hub
from vedirect_async.outputs.mqtt import MqttOutput
from vedirect_async.outputs.mqtt.config import MqttConfig
from vedirect_async.session import DeviceSession

ROOT = Path(__file__).resolve().parent.parent
STATE = "vedirect/mppt/state"


@contextlib.asynccontextmanager
async def simulated_mppt() -> AsyncIterator[str]:
    """``simulate mppt --pty`` at real speed in its own process; yields the pty path."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "vedirect_async", "simulate", "mppt", "--pty",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        yield (await asyncio.wait_for(proc.stdout.readline(), 10)).decode().strip()
    finally:
        proc.terminate()
        await proc.wait()


async def bench(broker: Mosquitto, commands: int, nvm_interval: float) -> None:
    async with simulated_mppt() as path:
        hub = Hub()
        writable = ["device_mode", "battery_max_current"]
        config = DeviceConfig(name="mppt", port=path, registers=[], writable=writable)
        session = DeviceSession(config, hub, WatchdogConfig())
        control = Controller([session], [config], interval=1.0, nvm_interval=nvm_interval)
        mqtt = MqttConfig(enabled=True, host=broker.host, port=broker.port, client_id="bench")
        output = MqttOutput(mqtt, device_names=["mppt"])
        output.control = control
        sub = hub.subscribe("bench")
        tasks = [asyncio.create_task(session.run())]
        async with asyncio.timeout(15):
            while session.poller.polls < 1:
                await sub.get()
        tasks.append(asyncio.create_task(output.run(output.subscribe(hub), hub.output("mqtt"))))
        latencies: list[float] = []
        writes: list[float] = []  # command -> write confirmed by the read-back (in the policy)
        confirmed: list[float] = []
        control.listen(lambda *_: confirmed.append(time.perf_counter()))
        try:
            async with aiomqtt.Client(broker.host, broker.port) as client:
                await client.subscribe(STATE, qos=1)
                messages = aiomqtt_messages(client)
                await anext(messages)  # the first state: the output is up
                for n in range(commands):
                    if n % 2 == 0:
                        name, payload = "device_mode", ("off", "on")[n // 2 % 2]
                        want: object = "off" if payload == "off" else "charger"
                    else:
                        name, value = "battery_max_current", 5.0 + n % 10
                        payload, want = f"{value:g}", value
                    # each register at most once a second; a random phase against the blocks
                    await asyncio.sleep(1.05 + random.random())
                    sent = time.perf_counter()
                    await client.publish(f"vedirect/mppt/set/{name}", payload, qos=1)
                    async with asyncio.timeout(10):
                        while json.loads(await anext(messages)).get(name) != want:
                            pass
                    latencies.append(time.perf_counter() - sent)
                    writes.append(confirmed[-1] - sent)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    lat, own = sorted(latencies), sorted(writes)

    def p(values: list[float], q: float) -> float:
        return values[min(len(values) - 1, int(q * len(values)))] * 1000

    print(
        f"{len(lat)} commands over MQTT to the simulated MPPT at real speed: command -> "
        f"confirmed state p50 {p(lat, 0.50):.0f} ms, p99 {p(lat, 0.99):.0f} ms, max "
        f"{lat[-1] * 1000:.0f} ms (mean {statistics.mean(lat) * 1000:.0f} ms); of which the "
        f"write (Get, Set, Get read-back) p50 {p(own, 0.5):.0f} ms, p99 {p(own, 0.99):.0f} ms; "
        f"writes {dict(control.counts)}"
    )


async def aiomqtt_messages(client: aiomqtt.Client) -> AsyncIterator[bytes]:
    async for message in client.messages:
        payload = message.payload
        yield payload if isinstance(payload, bytes) else str(payload).encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=30)
    parser.add_argument("--nvm-interval", type=float, default=1.0)
    args = parser.parse_args()
    print(f"python {platform.python_version()} on {platform.machine()}, {platform.node()}")
    with tempfile.TemporaryDirectory() as folder:
        broker = Mosquitto(Path(folder) / "broker").start()
        try:
            asyncio.run(bench(broker, args.commands, args.nvm_interval))
        finally:
            broker.stop()


if __name__ == "__main__":
    main()
