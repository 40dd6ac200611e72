"""Harness of the fault-injection suite: the real service process and what its outputs received.

- :class:`ServiceProcess` runs ``python -m vedirect_async run --config FILE`` with stderr in a
  file, and talks to its HTTP port.
- :class:`Feeder` writes a device stream into a real pty (:class:`tests.pty_device.PtyDevice`)
  at a controlled pace (one simulated second per tick, faster than real time).
- :class:`Valid` holds every reading the *clean* stream decodes to; an output value is correct
  only if it belongs to one of them (a subset of one reading's values).
- :class:`MqttRecorder` is a real aiomqtt subscriber that reconnects by itself.
- :func:`wait_until` polls an external condition in a bounded loop (the service is another
  process: there is no event to await).
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import aiomqtt
import pytest
from yarl import URL

from tests.fake_domoticz import FakeDomoticz
from tests.mosquitto import Mosquitto, free_port
from tests.pty_device import PtyDevice
from vedirect_async.decoder import Decoder
from vedirect_async.reading import Reading, json_value
from vedirect_async.service import to_toml

ROOT = Path(__file__).resolve().parents[2]

# The service's watchdog and reopen timing in every case (seconds).
SILENCE = 0.5
INVALID = 1.0
BACKOFF_MAX = 0.2
# Readings must be back this soon after a fault ends: the watchdog's longest timeout, the
# reopen backoff, and one second for the reopen itself and the outputs to see it.
RESUME_BOUND = INVALID + BACKOFF_MAX + 1.0
TICK = 0.05  # one simulated second of device output per TICK of wall time (20x real time)

# Domoticz idx -> (kind, field) of the fake installation every case uses.
DOMOTICZ_DEVICES: Mapping[int, tuple[str, str]] = {
    1: ("voltage", "V"),
    2: ("current", "I"),
    3: ("percentage", "SOC"),
    4: ("custom", "CE"),
}
DOMOTICZ_FIELDS: Mapping[int, str] = {1: "voltage", 2: "current", 3: "soc", 4: "consumed_ah"}
_FAKE_TYPES = {
    "voltage": ("General", "Voltage"),
    "current": ("General", "Current"),
    "percentage": ("General", "Percentage"),
    "custom": ("General", "Custom Sensor"),
}
# CSV header -> catalogue name (the columns every case configures).
CSV_COLUMNS: Mapping[str, str] = {
    "V": "voltage",
    "I": "current",
    "CE": "consumed_ah",
    "SOC": "soc",
    "P": "power",
    "PPV": "panel_power",
    "H17": "history_discharged_energy",
}
_ENVELOPE = frozenset({"time", "device", "product", "units"})


async def wait_until(
    predicate: Callable[[], bool | Awaitable[bool]],
    within: float,
    what: str,
    *,
    poll: float = 0.02,
) -> float:
    """Poll ``predicate`` until it holds; return the seconds it took, or fail naming ``what``."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while True:
        result = predicate()
        if not isinstance(result, bool):
            result = await result
        if result:
            return loop.time() - start
        if loop.time() - start > within:
            raise AssertionError(f"not within {within:.1f} s: {what}")
        await asyncio.sleep(poll)  # another process: nothing to await but time


# -- values ---------------------------------------------------------------------------------------


def normalize(value: object) -> object:
    """One comparable form for a value from JSON, CSV text or a Reading."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        return round(float(value), 6)
    if isinstance(value, list | tuple):
        return tuple(normalize(v) for v in value)
    if isinstance(value, str):
        try:
            return round(float(value), 6)
        except ValueError:
            return value
    return value


class Valid:
    """Every reading a clean stream decodes to, as ``{name: normalized value}``."""

    def __init__(self) -> None:
        self.readings: list[dict[str, object]] = []
        self._by_voltage: dict[object, list[dict[str, object]]] = {}
        self._decoders: dict[str, Decoder] = {}

    def add_stream(self, key: str, data: bytes) -> int:
        """Decode clean bytes of stream ``key`` (continuing that stream); return readings."""
        decoder = self._decoders.get(key) or self._decoders.setdefault(key, Decoder(key))
        count = 0
        for reading in decoder.feed(data, time.monotonic(), datetime.now(UTC)):
            if isinstance(reading, Reading):
                self.add({k: json_value(v) for k, v in reading.values.items()})
                count += 1
        return count

    def add(self, values: Mapping[str, object]) -> None:
        norm = {k: normalize(v) for k, v in values.items()}
        self.readings.append(norm)
        self._by_voltage.setdefault(norm.get("voltage"), []).append(norm)

    def matches(self, observed: Mapping[str, object]) -> bool:
        """``observed`` (None = empty cell, skipped) is a subset of one valid reading."""
        wanted = {k: normalize(v) for k, v in observed.items() if v is not None and v != ""}
        pool = self._by_voltage.get(wanted["voltage"], []) if "voltage" in wanted else None
        for reading in self.readings if pool is None else pool:
            if all(k in reading and reading[k] == v for k, v in wanted.items()):
                return True
        return False

    def bad(self, observations: list[dict[str, object]]) -> list[dict[str, object]]:
        return [o for o in observations if not self.matches(o)]


def csv_observations(path: Path) -> tuple[list[str], list[dict[str, object]]]:
    """(header, rows as {name: cell}) of a CSV file; every line must be whole."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    assert not text or text.endswith("\n"), f"{path} ends with a partial line"
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        return [], []
    header, body = rows[0], rows[1:]
    out: list[dict[str, object]] = []
    for row in body:
        assert len(row) == len(header), f"row {row} does not fit header {header}"
        out.append({CSV_COLUMNS[h]: c for h, c in zip(header, row, strict=True) if h != "Time"})
    return header, out


def state_observation(payload: bytes) -> dict[str, object]:
    """The values of an MQTT state message."""
    data = json.loads(payload)
    return {k: v for k, v in data.items() if k not in _ENVELOPE}


def domoticz_observations(fake: FakeDomoticz) -> list[dict[str, object]]:
    """One ``{field: value}`` per udevice request Domoticz accepted or refused."""
    out: list[dict[str, object]] = []
    for request in fake.requests("udevice"):
        idx = int(request.params.get("idx", "0"))
        out.append({DOMOTICZ_FIELDS[idx]: request.params.get("svalue", "")})
    return out


def api_observation(body: Mapping[str, Any], device: str) -> dict[str, object] | None:
    """The values of one device in an /api/readings body."""
    data = body.get("devices", {}).get(device)
    if data is None:
        return None
    return {name: entry["value"] for name, entry in data["values"].items()}


# -- configuration --------------------------------------------------------------------------------


@dataclass
class Setup:
    """What one service process is pointed at; :meth:`toml` renders its config file."""

    folder: Path
    port: str
    http_port: int = field(default_factory=free_port)
    csv_path: Path | None = None
    csv_columns: list[str] = field(default_factory=lambda: ["Time", "V", "I", "CE", "SOC"])
    domoticz_url: str | None = None
    mqtt_port: int | None = None
    client_id: str = "faults"
    extra: dict[str, dict[str, object]] = field(default_factory=dict)
    more_devices: dict[str, str] = field(default_factory=dict)  # name -> port, after "bmv"

    def toml(self) -> str:
        sections: dict[str, dict[str, object]] = {
            "logging": {"level": "INFO", "readings_interval": 0},
            "watchdog": {
                "silence_timeout": SILENCE,
                "invalid_timeout": INVALID,
                "backoff_initial": 0.05,
                "backoff_max": BACKOFF_MAX,
            },
            "http": {"host": "127.0.0.1", "port": self.http_port, "history_interval": 1},
            "csv": {"enabled": False},
        }
        if self.csv_path is not None:
            sections["csv"] = {
                "enabled": True,
                "path": str(self.csv_path),
                "interval": 0,
                "columns": [c if c == "Time" or "=" in c else f"{c}={c}" for c in self.csv_columns],
                "timeout": 1,
            }
        if self.domoticz_url is not None:
            sections["domoticz"] = {
                "enabled": True,
                "url": self.domoticz_url,
                "interval": 0.2,
                "timeout": 0.5,
                "heartbeat": 0,
                "backoff_max": 0.3,
            }
        if self.mqtt_port is not None:
            sections["mqtt"] = {
                "enabled": True,
                "port": self.mqtt_port,
                "client_id": self.client_id,
                "discovery": False,
                "keepalive": 5,
                "timeout": 1,
                "reconnect_initial": 0.05,
                "reconnect_max": 0.3,
            }
        for name, values in self.extra.items():
            sections.setdefault(name, {}).update(values)
        if self.domoticz_url is not None:
            sections["domoticz"]["devices"] = [
                {"idx": idx, "kind": kind, "field": label}
                for idx, (kind, label) in DOMOTICZ_DEVICES.items()
            ]
        devices = [{"name": "bmv", "port": self.port}]
        devices += [{"name": name, "port": port} for name, port in self.more_devices.items()]
        return to_toml({"device": devices, **sections})


# -- the service process --------------------------------------------------------------------------


class ServiceProcess:
    """``python -m vedirect_async run`` on a config file; stderr kept in ``stderr_path``."""

    def __init__(self, setup: Setup, name: str = "service") -> None:
        self.setup = setup
        self.config = setup.folder / f"{name}.toml"
        self.stderr_path = setup.folder / f"{name}.stderr"
        self.proc: asyncio.subprocess.Process | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.setup.http_port}"

    async def start(self, *, wait: bool = True) -> ServiceProcess:
        self.config.write_text(self.setup.toml())
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        for key in [k for k in env if k.startswith("VEDIRECT_")]:
            del env[key]  # the environment overrides config keys
        with self.stderr_path.open("ab") as err:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "vedirect_async",
                "run",
                "--config",
                str(self.config),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                cwd=self.setup.folder,
                env=env,
            )
        if wait:
            await wait_until(self._answers, 15.0, f"{self.base} answering\n{self.stderr()}")
        return self

    async def _answers(self) -> bool:
        assert self.proc is not None
        if self.proc.returncode is not None:
            raise AssertionError(f"service exited {self.proc.returncode}:\n{self.stderr()}")
        try:
            await self.get("/health")
        except aiohttp.ClientError:
            return False
        return True

    def catches(self, signum: int) -> bool:
        """The process has a handler for ``signum`` (from /proc: its entry point is running)."""
        assert self.proc is not None
        try:
            status = Path(f"/proc/{self.proc.pid}/status").read_text()
        except OSError:
            return False
        for line in status.splitlines():
            if line.startswith("SigCgt:"):
                return bool(int(line.split()[1], 16) >> (signum - 1) & 1)
        return False

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    def stderr(self) -> str:
        if not self.stderr_path.exists():
            return ""
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    async def get(self, path: str, method: str = "GET") -> tuple[int, Any]:
        """``method`` ``path`` (sent as given): (status, parsed JSON or text)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3))
        url = URL(self.base + path, encoded=True)
        async with self._session.request(method, url) as response:
            text = await response.text()
            try:
                return response.status, json.loads(text)
            except ValueError:
                return response.status, text

    async def health(self) -> dict[str, Any]:
        _, body = await self.get("/api/health")
        assert isinstance(body, dict)
        return body

    async def signal(self, signum: int, within: float = 5.0) -> tuple[int, float]:
        """Send ``signum``; return (exit code, seconds it took to exit)."""
        assert self.proc is not None
        start = time.monotonic()
        self.proc.send_signal(signum)
        code = await asyncio.wait_for(self.proc.wait(), within)
        return code, time.monotonic() - start

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


@pytest.fixture
async def services() -> AsyncIterator[list[ServiceProcess]]:
    """Service processes a test started; killed (if still running) at its end."""
    started: list[ServiceProcess] = []
    yield started
    for service in started:
        await service.close()


# -- the device side ------------------------------------------------------------------------------


class Feeder:
    """Writes ``source()`` into the pty every TICK seconds, from a task, until stopped."""

    def __init__(self, device: PtyDevice, source: Callable[[], bytes]) -> None:
        self.device = device
        self.source = source
        self.ticks = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        async def run() -> None:
            while True:
                self.device.write(self.source())
                self.ticks += 1
                await asyncio.sleep(TICK)  # pacing the device, not waiting for a result

        self._task = asyncio.get_running_loop().create_task(run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


# -- outputs' far ends ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    at: float
    topic: str
    payload: bytes
    retain: bool


class MqttRecorder:
    """Subscribes to ``#`` and records every message; reconnects while the broker is away."""

    def __init__(self, broker: Mosquitto) -> None:
        self.broker = broker
        self.messages: list[Message] = []
        self.connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> MqttRecorder:
        self._task = asyncio.get_running_loop().create_task(self._run())
        await asyncio.wait_for(self.connected.wait(), 5)
        return self

    async def _run(self) -> None:
        while True:
            try:
                async with aiomqtt.Client(
                    self.broker.host, self.broker.port, identifier="faults-recorder", timeout=2
                ) as client:
                    await client.subscribe("#", qos=1)
                    self.connected.set()
                    async for m in client.messages:
                        payload = m.payload if isinstance(m.payload, bytes) else b""
                        self.messages.append(
                            Message(time.monotonic(), str(m.topic), payload, m.retain)
                        )
            except aiomqtt.MqttError:
                self.connected.clear()
                await asyncio.sleep(0.05)  # the broker is away: try again shortly

    def topic(self, topic: str, since: float = 0.0) -> list[Message]:
        return [m for m in self.messages if m.topic == topic and m.at >= since]

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """A real mosquitto on a free port."""
    server = Mosquitto(tmp_path / "broker").start()
    yield server
    server.stop()


@pytest.fixture
async def mqtt(broker: Mosquitto) -> AsyncIterator[MqttRecorder]:
    recorder = await MqttRecorder(broker).start()
    yield recorder
    await recorder.stop()


@pytest.fixture
async def domoticz() -> AsyncIterator[FakeDomoticz]:
    """The fake Domoticz with the idx devices of DOMOTICZ_DEVICES."""
    async with FakeDomoticz() as fake:
        for idx, (kind, label) in DOMOTICZ_DEVICES.items():
            type_, subtype = _FAKE_TYPES[kind]
            fake.add_device(idx, label, type_, subtype)
        yield fake


# -- file system faults ---------------------------------------------------------------------------


def _mount(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["mount", *args], capture_output=True, text=True, check=False, timeout=10)


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 512 KiB tmpfs mounted for the CSV files (root only; skipped otherwise)."""
    folder = tmp_path / "csvfs"
    folder.mkdir()
    done = _mount("-t", "tmpfs", "-o", "size=512k", "tmpfs", str(folder))
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs (needs root): {done.stderr.strip()}")
    yield folder
    for _ in range(3):  # a read-only mount may be stacked on top
        if not os.path.ismount(folder):
            break
        subprocess.run(["umount", "-l", str(folder)], check=False, timeout=10)


def fill(folder: Path) -> Path:
    """Fill the file system of ``folder`` to the last byte; return the filler file."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for size in (65536, 4096, 1):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * size)
    finally:
        os.close(fd)
    return filler


def mount_read_only_over(folder: Path) -> None:
    """Stack an empty read-only tmpfs over ``folder`` (its files vanish, nothing can be created)."""
    done = _mount("-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(folder))
    assert done.returncode == 0, done.stderr


def unmount_top(folder: Path) -> None:
    done = subprocess.run(
        ["umount", str(folder)], capture_output=True, text=True, check=False, timeout=10
    )
    assert done.returncode == 0, done.stderr
