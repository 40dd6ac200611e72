"""CPU of HEX register polling per device-day, polling every 30 s against polling off.

A simulated SmartSolar MPPT runs in its own process on a pseudo-terminal (``simulate mppt
--pty``, sped up so a few seconds hold many readings); its text stream and its HEX answers cost
this process nothing. This process runs one real :class:`DeviceSession` on the pty in
alternating phases of the same run (off, on, off, on ...):

- **off**: ``registers = []``, ``register_interval = 0`` (identity at connect only);
- **on**: ``registers = ["defaults"]`` (charger temperature) polled back to back, every
  ``--poll-every`` seconds of wall time, many more polls than a real 30 s interval makes.

Each phase's process CPU time (``time.process_time``) and counts of readings and polls give
the CPU per reading (off) and the extra CPU per poll (on); a device-day is then 86,400 readings
(an MPPT's one update a second) and 2,880 polls (one every 30 s), and the figure printed is the
polling share of the reader's CPU per device-day.

Usage: python bench/hex_polling.py [--phase 6] [--rounds 2] [--speed 20] [--poll-every 0.05]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vedirect_async.config import DeviceConfig, WatchdogConfig
from vedirect_async.hub import Hub
from vedirect_async.session import DeviceSession

ROOT = str(Path(__file__).resolve().parent.parent)
DAY = 86_400
POLL_INTERVAL = 30.0  # the default register_interval


async def phase(
    link: Path, polling: bool, seconds: float, poll_every: float
) -> tuple[float, int, int]:
    """One session on the pty for ``seconds``: (CPU s, readings, polls)."""
    config = DeviceConfig(
        name="mppt",
        port=str(link),
        registers=["defaults"] if polling else [],
        register_interval=poll_every if polling else 0,
    )
    hub = Hub()
    session = DeviceSession(config, hub, WatchdogConfig())
    sub = hub.subscribe("bench")

    settled = asyncio.Event()

    async def drain() -> None:
        while True:
            await sub.get()
            if session.state.readings >= 3 and session.poller.identity.pid is not None:
                settled.set()

    loop = asyncio.get_running_loop()
    reader = loop.create_task(session.run())
    consumer = loop.create_task(drain())
    await settled.wait()  # the port is open and the identity read
    cpu0, readings0, polls0 = time.process_time(), session.state.readings, session.poller.polls
    await asyncio.sleep(seconds)  # the measured stretch of the phase
    cpu = time.process_time() - cpu0
    readings = session.state.readings - readings0
    polls = session.poller.polls - polls0
    for task in (reader, consumer):
        task.cancel()
    await asyncio.gather(reader, consumer, return_exceptions=True)
    return cpu, readings, polls


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        link = Path(tmp) / "mppt"
        simulator = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "vedirect_async", "simulate", "mppt", "--pty"),
            *("--link", str(link), "--speed", str(args.speed), "--seed", "1"),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            env={**os.environ, "PYTHONPATH": ROOT},
        )
        try:
            assert simulator.stdout is not None
            await simulator.stdout.readline()  # the pty's path: it is ready
            totals = {False: [0.0, 0, 0], True: [0.0, 0, 0]}
            for _ in range(args.rounds):
                for polling in (False, True):
                    cpu, readings, polls = await phase(link, polling, args.phase, args.poll_every)
                    total = totals[polling]
                    total[0] += cpu
                    total[1] += readings
                    total[2] += polls
                    print(
                        f"  {'on ' if polling else 'off'}: {cpu:.3f} s CPU, {readings} readings, "
                        f"{polls} polls",
                        flush=True,
                    )
        finally:
            simulator.terminate()
            await simulator.wait()
    off_cpu, off_readings, _ = totals[False]
    on_cpu, on_readings, on_polls = totals[True]
    per_reading = off_cpu / off_readings
    per_poll = max(0.0, on_cpu - on_readings * per_reading) / max(on_polls, 1)
    day_text = DAY * per_reading
    day_polls = DAY / POLL_INTERVAL * per_poll
    print(f"python {platform.python_version()} on {platform.machine()}")
    print(f"CPU per reading (polling off): {per_reading * 1e6:.0f} us")
    print(f"CPU per poll (one register, answer matched): {per_poll * 1e6:.0f} us")
    print(
        f"CPU per device-day: polling off {day_text:.2f} s, polling every 30 s "
        f"{day_text + day_polls:.2f} s (+{100 * day_polls / day_text:.2f} %)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phase", type=float, default=6.0, help="seconds measured per phase")
    parser.add_argument("--rounds", type=int, default=2, help="off/on pairs")
    parser.add_argument("--speed", type=float, default=20.0, help="simulator time factor")
    parser.add_argument("--poll-every", type=float, default=0.05, help="s between polls (on)")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
