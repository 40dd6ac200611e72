"""The service as a whole: supervision, consumer isolation, shutdown, the real process."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from asyncio.subprocess import PIPE
from pathlib import Path
from typing import ClassVar

import pytest

from vedirect_async.backoff import Backoff
from vedirect_async.config import (
    Config,
    CsvConfig,
    DeviceConfig,
    HttpConfig,
    LoggingConfig,
    WatchdogConfig,
)
from vedirect_async.decoder import Decoder
from vedirect_async.hub import OutputHealth, OutputState, ReaderState, Subscription
from vedirect_async.outputs.base import Output
from vedirect_async.parser import encode_block
from vedirect_async.reading import Reading
from vedirect_async.service import ReadingLog, Service, Supervisor, summarize

from .pty_device import PtyDevice, bmv_block

ROOT = Path(__file__).resolve().parent.parent


class Counting(Output):
    """Takes every reading as fast as it comes."""

    name: ClassVar[str] = "count"
    queue_size: ClassVar[int] = 100_000

    def __init__(self, target: int) -> None:
        self.got = 0
        self.target = target
        self.reached = asyncio.Event()
        self.subscription: Subscription | None = None

    def subscribe(self, hub: object) -> Subscription:
        self.subscription = super().subscribe(hub)  # type: ignore[arg-type]
        return self.subscription

    async def run(self, readings: Subscription, state: OutputState) -> None:
        async for _ in readings:
            self.got += 1
            state.ok()
            if self.got >= self.target:
                self.reached.set()


class Boom(Output):
    """Raises on every reading it gets."""

    name: ClassVar[str] = "boom"

    async def run(self, readings: Subscription, state: OutputState) -> None:
        await readings.get()
        raise RuntimeError("boom")


class Stuck(Output):
    """Never reads again: blocked forever (think: a hung network call without a timeout)."""

    name: ClassVar[str] = "stuck"
    queue_size: ClassVar[int] = 8

    def __init__(self) -> None:
        self.flushed = False
        self.closed = False

    async def run(self, readings: Subscription, state: OutputState) -> None:
        try:
            await asyncio.Event().wait()
        finally:
            self.flushed = True  # cancellation reaches it at shutdown, so it can flush

    async def aclose(self) -> None:
        self.closed = True


def pty_config(link: Path) -> Config:
    fast = WatchdogConfig(
        silence_timeout=5, invalid_timeout=5, backoff_initial=0.01, backoff_max=0.05
    )
    return Config(
        device=[DeviceConfig(name="bmv", port=str(link))],
        watchdog=fast,
        http=HttpConfig(enabled=False),
        sections={"csv": CsvConfig(enabled=False)},
    )


async def streaming_service(
    device: PtyDevice, outputs: list[Output]
) -> tuple[Service, asyncio.Event, asyncio.Task[None]]:
    """A running service on the pty, with the device streaming fast; outputs[0] counts."""
    service = Service(pty_config(device.link), outputs=outputs)
    stop = asyncio.Event()
    task = asyncio.get_running_loop().create_task(service.run(stop))
    reader = service.readers[0]
    while reader.opened_at is None:
        await asyncio.wait_for(reader.changed(), 5)
    device.stream(bmv_block, interval=0.002)
    counting = outputs[0]
    assert isinstance(counting, Counting)
    await asyncio.wait_for(counting.reached.wait(), 10)
    return service, stop, task


async def test_failing_and_blocked_consumers_do_not_slow_the_reader_or_others(
    device: PtyDevice, caplog: pytest.LogCaptureFixture
) -> None:
    """One output raising and one blocked forever: the reader and the others keep full rate."""
    counting, boom, stuck = Counting(target=300), Boom(), Stuck()
    service, stop, task = await streaming_service(device, [counting, boom, stuck])
    device.stop()
    started = time.monotonic()
    stop.set()
    await asyncio.wait_for(task, 2)
    assert time.monotonic() - started < 1.5

    hub = service.hub
    published = hub.published
    assert published >= 300
    assert hub.device("bmv").readings == published
    # The counting consumer got every reading: nothing dropped, nothing held up.
    assert counting.subscription is not None
    assert counting.subscription.dropped == 0
    assert counting.got + len(counting.subscription) == published
    # Shutdown cancelled the blocked one (so it could flush), closed it, unsubscribed all.
    assert not hub.subscriptions
    assert stuck.flushed
    assert stuck.closed
    # The raising one was restarted with backoff, its traceback logged once.
    boom_state = hub.output("boom")
    assert boom_state.restarts >= 2
    assert boom_state.health is OutputHealth.FAILED
    assert boom_state.reason == "RuntimeError: boom"
    tracebacks = [r for r in caplog.records if r.exc_info and "output boom" in r.getMessage()]
    assert len(tracebacks) == 1
    assert service.supervisors["output count"].restarts == 0
    assert service.supervisors["reader bmv"].restarts == 0


async def test_blocked_consumer_drops_oldest_and_counts(device: PtyDevice) -> None:
    """A consumer that never reads keeps the newest queue_size readings; the rest are counted."""
    counting, stuck = Counting(target=100), Stuck()
    service, stop, task = await streaming_service(device, [counting, stuck])
    stuck_sub = next(s for s in service.hub.subscriptions if s.name == "stuck")
    published = service.hub.published
    assert len(stuck_sub) == 8
    assert stuck_sub.dropped == published - 8
    newest = service.hub.latest["bmv"]
    assert stuck_sub.drain_latest()["bmv"] is newest
    stop.set()
    await asyncio.wait_for(task, 2)


async def test_two_devices_are_read_independently(tmp_path: Path) -> None:
    """Two [[device]] tables: each has its own reader; unplugging one leaves the other reading."""
    first, second = PtyDevice(tmp_path / "ttyA"), PtyDevice(tmp_path / "ttyB")
    first.plug()
    second.plug()
    base = pty_config(first.link)
    config = Config(
        device=[
            DeviceConfig(name="bmv", port=str(first.link)),
            DeviceConfig(name="mppt", port=str(second.link)),
        ],
        watchdog=base.watchdog,
        http=base.http,
        sections=base.sections,
    )
    counting = Counting(target=1_000_000)
    service = Service(config, outputs=[counting])
    stop = asyncio.Event()
    task = asyncio.get_running_loop().create_task(service.run(stop))
    try:
        for reader in service.readers:
            while reader.opened_at is None:
                await asyncio.wait_for(reader.changed(), 5)
        first.stream(bmv_block)
        second.stream(bmv_block)
        sub = service.hub.subscribe("test")
        seen: set[str] = set()
        async with asyncio.timeout(5):
            while seen != {"bmv", "mppt"}:
                seen.add((await sub.get()).device)
        first.close()  # the BMV's cable is pulled
        bmv = service.hub.device("bmv")
        while bmv.state is ReaderState.READING:
            await asyncio.wait_for(service.readers[0].changed(), 5)
        before = service.hub.device("mppt").readings
        async with asyncio.timeout(5):
            while service.hub.device("mppt").readings < before + 20:
                assert (await sub.get()).device == "mppt"
        assert bmv.state is ReaderState.RECONNECTING
        assert service.hub.device("mppt").state is ReaderState.READING
    finally:
        stop.set()
        await asyncio.wait_for(task, 2)
        first.close()
        second.close()


async def test_supervisor_logs_a_traceback_once_per_kind_of_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Repeats of the same failure are one line, a new kind gets its traceback, then restart."""
    failures = [ValueError("bad"), ValueError("bad"), ValueError("bad"), KeyError("other")]
    reasons: list[str] = []
    done = asyncio.Event()

    async def target() -> None:
        if not failures:
            done.set()
            await asyncio.Event().wait()
        raise failures.pop(0)

    sup = Supervisor("output x", target, on_failure=reasons.append, backoff=Backoff(0.001, 0.002))
    task = asyncio.get_running_loop().create_task(sup.run())
    await asyncio.wait_for(done.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert reasons == ["ValueError: bad"] * 3 + ["KeyError: 'other'"]
    assert sup.restarts == 4
    with_traceback = [r.getMessage() for r in caplog.records if r.exc_info]
    assert len(with_traceback) == 2
    assert with_traceback[0].startswith("output x failed (ValueError: bad); restarting in")
    assert with_traceback[1].startswith("output x failed (KeyError: 'other')")


async def test_supervisor_does_not_restart_a_target_that_swallowed_its_cancellation() -> None:
    """A part that catches CancelledError and returns is stopped, not restarted (shutdown)."""
    started = asyncio.Event()
    reasons: list[str] = []

    async def swallowing() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            return  # the bug being contained: cancellation lost

    sup = Supervisor("output y", swallowing, on_failure=reasons.append, backoff=Backoff(1, 1))
    task = asyncio.get_running_loop().create_task(sup.run())
    await asyncio.wait_for(started.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 1)
    assert reasons == []
    assert sup.restarts == 0


def test_summarize_shows_the_main_values_with_units() -> None:
    """The demo's INFO line: voltage, current, power, SOC with units, device first."""
    decoder = Decoder("bmv")
    readings = []
    for n in range(3):
        data = encode_block(
            [
                (b"PID", b"0xA389"),
                (b"V", b"12840"),
                (b"I", b"-3200"),
                (b"P", b"-41"),
                (b"SOC", b"873"),
            ]
        )
        readings += [e for e in decoder.feed(data, float(n)) if isinstance(e, Reading)]
    assert summarize(readings[0]) == "bmv: 12.84 V, -3.2 A, -41 W, SOC 87.3 %"


def test_reading_log_is_added_only_without_user_facing_outputs(tmp_path: Path) -> None:
    """With only CSV/HTTP the service logs readings at INFO; MQTT/Domoticz users get none."""
    plain = Service(Config(sections={"csv": CsvConfig(path=str(tmp_path / "x.csv"))}))
    assert any(isinstance(o, ReadingLog) for o in plain.outputs)
    busy = Service(Config(), outputs=[Counting(1)])
    assert not any(isinstance(o, ReadingLog) for o in busy.outputs)
    off = Service(Config(logging=LoggingConfig(readings_interval=0)), outputs=[])
    assert off.outputs == []


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pid1_prefix() -> list[str]:
    """A command prefix that runs the service as PID 1 of a new PID namespace, or skips."""
    unshare = shutil.which("unshare")
    prefix = [unshare or "unshare", "--pid", "--fork", "--mount-proc"]
    if unshare is None or subprocess.run([*prefix, "true"], check=False).returncode != 0:
        pytest.skip("unshare --pid not available here (needs util-linux and root)")
    return prefix


def namespace_init(unshare_pid: int) -> int:
    """The host PID of unshare's child, checked to be PID 1 in its own namespace."""
    children = Path(f"/proc/{unshare_pid}/task/{unshare_pid}/children").read_text().split()
    child = int(children[0])
    status = Path(f"/proc/{child}/status").read_text()
    nspid = next(line for line in status.splitlines() if line.startswith("NSpid:"))
    assert nspid.split()[-1] == "1"
    return child


async def run_and_signal(
    command: list[str],
    cwd: Path,
    ready: str,
    signum: signal.Signals,
    *,
    as_pid1: bool = False,
    within: float = 2.0,
    repeat: int = 1,
) -> tuple[int, float, str]:
    """Start ``command``; once stderr shows ``ready``, send ``signum`` (to the namespace's
    PID 1 if ``as_pid1``); return the exit code, seconds from signal to exit, and stderr."""
    proc = await asyncio.create_subprocess_exec(
        *command, cwd=cwd, env={**os.environ, "PYTHONPATH": str(ROOT)}, stderr=PIPE
    )
    assert proc.stderr is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(15):
            while not any(ready in line for line in lines):
                line = (await proc.stderr.readline()).decode()
                assert line, "".join(lines)
                lines.append(line)
        started = time.monotonic()
        target = namespace_init(proc.pid) if as_pid1 else proc.pid
        os.kill(target, signum)
        for _ in range(repeat - 1):  # again once it is handled, as `timeout` does (process, group)
            while "received" not in lines[-1]:
                lines.append((await asyncio.wait_for(proc.stderr.readline(), within)).decode())
            os.kill(target, signum)
        lines.append((await asyncio.wait_for(proc.stderr.read(), within)).decode())
        code = await asyncio.wait_for(proc.wait(), within)
        return code, time.monotonic() - started, "".join(lines)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


@pytest.mark.parametrize(
    ("signum", "as_pid1", "repeat"),
    [
        (signal.SIGTERM, False, 1),
        (signal.SIGINT, False, 1),
        (signal.SIGTERM, True, 1),
        (signal.SIGTERM, False, 2),
    ],
    ids=["SIGTERM", "SIGINT", "SIGTERM-as-PID-1", "SIGTERM-twice"],
)
async def test_process_on_simulator_exits_0_within_2s_on_signal(
    tmp_path: Path, signum: signal.Signals, as_pid1: bool, repeat: int
) -> None:
    """`python -m vedirect_async` on the simulator (also as PID 1): a signal stops it cleanly,
    exit 0, within 2 s, the CSV ending with a whole line."""
    prefix = pid1_prefix() if as_pid1 else []
    csv = tmp_path / "data.csv"
    (tmp_path / "config.toml").write_text(
        f'[csv]\npath = "{csv}"\ninterval = 0\n\n[http]\nport = {free_port()}\n', encoding="utf-8"
    )
    code, elapsed, output = await run_and_signal(
        [*prefix, sys.executable, "-m", "vedirect_async"],
        tmp_path,
        "service: bmv: ",
        signum,
        as_pid1=as_pid1,
        repeat=repeat,
    )
    assert code == 0, output
    assert elapsed < 2.0
    assert f"{signum.name} received" in output
    assert "Traceback" not in output
    text = csv.read_text(encoding="utf-8")
    assert text.startswith("Time,Volts,Amps,AHr,SOC\n")
    assert text.endswith("\n")  # no half line


DEAF_OUTPUT = """
import asyncio, sys
from vedirect_async import cli
from vedirect_async.errors import SubscriptionClosed
from dataclasses import dataclass
from vedirect_async.outputs import REGISTRY
from vedirect_async.outputs.base import Output, OutputSpec

@dataclass(frozen=True)
class DeafConfig:
    pass

class Deaf(Output):
    name = "deaf"

    async def run(self, readings, state):
        while True:
            try:
                await readings.get()
            except (asyncio.CancelledError, SubscriptionClosed):
                await asyncio.sleep(0.01)  # ignores every cancellation: a bug

registry = {**REGISTRY, "deaf": OutputSpec("deaf", DeafConfig, lambda config: Deaf())}
sys.exit(cli.main(["run"], registry=registry))
"""


async def test_shutdown_is_forced_when_a_part_ignores_cancellation(tmp_path: Path) -> None:
    """A part that never stops cannot hold the process: exit 1 shortly before 2 s, said so."""
    (tmp_path / "config.toml").write_text(
        "[csv]\nenabled = false\n\n[http]\nenabled = false\n", encoding="utf-8"
    )
    code, elapsed, output = await run_and_signal(
        [sys.executable, "-c", DEAF_OUTPUT],
        tmp_path,
        "reading the built-in simulator",
        signal.SIGTERM,
        within=3,
    )
    assert code == 1
    assert 1.8 <= elapsed < 2.5
    assert "outputs still stopping after 1.0 s: output-deaf" in output
    assert output.endswith("vedirect-async: shutdown did not finish in time; exiting\n")
