"""Soak: the real service process, 4 simulated devices on real ptys, every output on, sped up.

The service runs as a subprocess (``python -m vedirect_async --config <tmp>``) reading four
pseudo-terminals (two BMV-712, a SmartShunt, an MPPT; ``--devices`` takes the first N of
those). This process replays ``SimulatedDevice.next_second()`` into them at ``--speed`` times
the real rate, on an absolute schedule (``PtyLine``: bytes the service does not read within
2 s are dropped and counted, as a real serial port would). Outputs, all on:

- CSV into a temporary directory, one file per device;
- Domoticz against ``tests/fake_domoticz.py`` (in this process), 3 idx per device;
- MQTT against a real mosquitto on a free 127.0.0.1 port (skipped, with a note, when
  mosquitto is not installed), state on every reading, discovery on;
- HTTP on a free port (scraped for ``/metrics`` at every sample).

Every interval that is simulated time in production is divided by the speed (CSV and
Domoticz every 30 s, Domoticz heartbeat 300 s, history 24 h at 30 s points), so the service
does per simulated day the work it does per real day. Domoticz's ``interval`` cannot go under
0.1 s (its config minimum): above 300x it posts less often per simulated day than in
production. Fixed wall-clock costs (watchdog ticks, MQTT keepalives) are under-counted by
the speed-up.

Sampled every ``--sample`` s: the service's RSS (VmRSS), open fds (/proc/PID/fd), threads,
asyncio tasks (the ``vedirect_async_tasks`` gauge of /metrics) and CPU time (utime + stime).
Checked: RSS growth after warm-up (the first simulated day, while the 24 h history fills;
the first half for runs of a day or less), fds and tasks constant, no corrupt value (every
CSV cell, every MQTT state value and every Domoticz svalue exists among the values this
process decoded from what it generated), the Domoticz lag (time from writing the bytes of
the newest second carrying a posted value to the post's arrival) within one interval, and
whether the service kept up (its reading count against the generated one, bytes dropped).

CPU per device-day = service CPU seconds / simulated device-days; one core = 86,400 / that;
Raspberry Pi 3: the same, with the CPU cost multiplied by ``--pi-ratio`` (default 10; see
docs/figures.md for why), an estimate, not a measurement.

The defaults (a simulated day at 200x) take about 7 minutes. The issue's week at 100x is
``--days 7 --speed 100`` (1 h 41 min). At 400x on the shared 2-core machine the service fell
behind (bytes dropped); at 200x and below it kept up.

Usage: python bench/soak.py [--days 1] [--speed 200] [--devices 4] [--sample 10] [--no-mqtt]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import csv
import json
import os
import platform
import re
import shutil
import signal
import sys
import tempfile
import time
import tty
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import aiomqtt

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fake_domoticz import FakeDomoticz  # noqa: E402
from tests.mosquitto import MOSQUITTO, Mosquitto, free_port  # noqa: E402
from vedirect_async.decoder import Decoder  # noqa: E402
from vedirect_async.fields import lookup  # noqa: E402
from vedirect_async.reading import Reading, Value, json_value  # noqa: E402
from vedirect_async.simulator import PtyLine, SimulatedDevice  # noqa: E402

DAY = 86_400
TARGET_GROWTH_MB = 1.0
TICK = 0.01  # wall seconds between writes into the ptys
DOMOTICZ_MIN_INTERVAL = 0.1  # [domoticz] interval's config minimum
LAG_WINDOW = 5.0  # wall seconds of generated values kept per Domoticz idx for the lag search
_CLK_TCK = os.sysconf("SC_CLK_TCK")

# (device name, simulator kind, Domoticz idx fields as (field label, kind, type, subtype))
_VOLT = ("V", "voltage", "General", "Voltage")
_AMPS = ("I", "current", "General", "Current")
_SOC = ("SOC", "percentage", "General", "Percentage")
_PV = ("PPV", "usage", "Usage", "Electric")
DEVICES: tuple[tuple[str, str, tuple[tuple[str, str, str, str], ...]], ...] = (
    ("bmv", "bmv712", (_VOLT, _AMPS, _SOC)),
    ("mppt", "mppt", (_VOLT, _AMPS, _PV)),
    ("shunt", "smartshunt", (_VOLT, _AMPS, _SOC)),
    ("bmv2", "bmv712", (_VOLT, _AMPS, _SOC)),
)
CSV_COLUMNS = ("Time", "Volts=V", "Amps=I", "AHr=CE", "SOC=SOC")


def value_key(value: Value | Any) -> str:
    """A value as its JSON text, so decoded values and MQTT's JSON compare exactly."""
    return json.dumps(json_value(value) if not isinstance(value, list) else value)


def fixed(value: float, decimals: int) -> str:
    """``value`` with ``decimals`` decimals, no negative zero (how CSV/Domoticz write it)."""
    text = f"{value:.{decimals}f}"
    return text[1:] if text.startswith("-") and not text.strip("-0.") else text


def decimals_of(text: str) -> int:
    return len(text.partition(".")[2])


@dataclass
class Feed:
    """One simulated device: its pty, generator, and what it generated (decoded here)."""

    name: str
    kind: str
    idx_fields: tuple[tuple[str, str, str, str], ...]
    device: SimulatedDevice
    line: PtyLine
    master: int
    slave: int
    decoder: Decoder = field(init=False)
    readings: int = 0
    values: dict[str, set[str]] = field(default_factory=dict)  # field name -> value keys
    numbers: dict[str, set[float]] = field(default_factory=dict)  # field name -> numbers
    # (field name, decimals) -> those numbers formatted, built on first use and kept current
    formatted: dict[tuple[str, int], set[str]] = field(default_factory=dict)
    digits: dict[str, list[int]] = field(default_factory=dict)  # field name -> decimals used
    # Domoticz idx -> recent (wall time written, value) of its field
    recent: dict[int, collections.deque[tuple[float, float]]] = field(default_factory=dict)
    idx_name: dict[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.decoder = Decoder(self.name)

    @property
    def path(self) -> str:
        return os.ttyname(self.slave)

    def step(self, now: float, seconds: int) -> None:
        """Generate ``seconds`` seconds, write them at once, decode them for the checks."""
        chunks = [self.device.next_second() for _ in range(seconds)]
        self.line.write(b"".join(chunks))
        base = self.device.seconds - seconds
        for offset, chunk in enumerate(chunks):
            for reading in self.decoder.feed(chunk, float(base + offset)):
                if type(reading) is not Reading:
                    continue  # a HEX record or a rejected block: not what is checked here
                self.readings += 1
                for name, value in reading.values.items():
                    self.values.setdefault(name, set()).add(value_key(value))
                    if isinstance(value, int | float) and not isinstance(value, bool):
                        self._add_number(name, float(value))
                for idx, name in self.idx_name.items():
                    posted = reading.values.get(name)
                    if isinstance(posted, int | float) and not isinstance(posted, bool):
                        self.recent[idx].append((now, float(posted)))

    def trim(self, now: float) -> None:
        for recent in self.recent.values():
            while recent and recent[0][0] < now - LAG_WINDOW:
                recent.popleft()

    def _add_number(self, name: str, number: float) -> None:
        numbers = self.numbers.setdefault(name, set())
        if number in numbers:
            return
        numbers.add(number)
        for digits in self.digits.get(name, ()):
            self.formatted[name, digits].add(fixed(number, digits))

    def has_number(self, name: str, text: str) -> bool:
        """Whether ``text`` (a number as CSV/Domoticz formats it) was generated for ``name``."""
        digits = decimals_of(text)
        formatted = self.formatted.get((name, digits))
        if formatted is None:
            formatted = {fixed(number, digits) for number in self.numbers.get(name, ())}
            self.formatted[name, digits] = formatted
            self.digits.setdefault(name, []).append(digits)
        return text in formatted


@dataclass
class Sample:
    wall: float
    simulated: int  # simulated seconds fed per device
    rss_kb: int
    fds: int
    threads: int
    tasks: int | None
    cpu: float
    readings: int | None


@dataclass
class Checks:
    mqtt_messages: collections.Counter[str] = field(default_factory=collections.Counter)
    mqtt_bad: list[str] = field(default_factory=list)
    domoticz_bad: list[str] = field(default_factory=list)
    lags: list[float] = field(default_factory=list)
    lag_missing: int = 0
    csv_rows: int = 0
    csv_bad: list[str] = field(default_factory=list)


def proc_sample(pid: int) -> tuple[int, int, int, float]:
    """(VmRSS kB, open fds, threads, CPU seconds) of a process, from /proc."""
    rss = threads = 0
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return rss, fds, threads, cpu_seconds(pid)


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK  # utime, stime (fields 14, 15)


_METRIC = re.compile(r"^(vedirect_async_tasks|vedirect_readings(?:_total)?)(\{[^}]*\})? (\S+)$")


async def scrape(session: aiohttp.ClientSession, url: str) -> tuple[int | None, int | None]:
    """(asyncio tasks, readings of all devices) from the service's /metrics."""
    try:
        async with asyncio.timeout(5), session.get(url) as response:
            text = await response.text()
    except (aiohttp.ClientError, TimeoutError):
        return None, None
    tasks: int | None = None
    readings = 0
    for line in text.splitlines():
        match = _METRIC.match(line)
        if match is None:
            continue
        if match.group(1) == "vedirect_async_tasks":
            tasks = int(float(match.group(3)))
        else:
            readings += int(float(match.group(3)))
    return tasks, readings


def toml_str(value: str) -> str:
    return json.dumps(value)


def write_config(
    folder: Path,
    feeds: list[Feed],
    speed: float,
    http_port: int,
    domoticz_url: str,
    mqtt_port: int | None,
) -> tuple[Path, float]:
    """The service's config for this run; returns its path and the Domoticz interval used."""
    domoticz_interval = max(DOMOTICZ_MIN_INTERVAL, 30.0 / speed)
    lines = ["[logging]", 'level = "WARNING"', ""]
    for feed in feeds:
        lines += ["[[device]]", f"name = {toml_str(feed.name)}", f"port = {toml_str(feed.path)}"]
        lines.append("")
    columns = ", ".join(toml_str(c) for c in CSV_COLUMNS)
    lines += [
        "[csv]",
        "enabled = true",
        f"path = {toml_str(str(folder / 'csv' / '{device}.csv'))}",
        f"interval = {30.0 / speed!r}",
        f"columns = [{columns}]",
        'time_format = "utc"',
        "",
        "[http]",
        "enabled = true",
        f"port = {http_port}",
        f"history_hours = {24.0 / speed!r}",
        f"history_interval = {30.0 / speed!r}",
        "",
        "[domoticz]",
        "enabled = true",
        f"url = {toml_str(domoticz_url)}",
        f"interval = {domoticz_interval!r}",
        f"heartbeat = {300.0 / speed!r}",
        "",
    ]
    for feed in feeds:
        for idx, (label, kind, _type, _sub) in zip(feed.idx_name, feed.idx_fields, strict=True):
            lines += [
                "[[domoticz.devices]]",
                f"idx = {idx}",
                f"device = {toml_str(feed.name)}",
                f"field = {toml_str(label)}",
                f"kind = {toml_str(kind)}",
                "",
            ]
    if mqtt_port is not None:
        lines += [
            "[mqtt]",
            "enabled = true",
            f"port = {mqtt_port}",
            'prefix = "soak"',
            'client_id = "soak"',
            "",
        ]
    path = folder / "config.toml"
    path.write_text("\n".join(lines))
    return path, domoticz_interval


def make_feeds(count: int) -> list[Feed]:
    feeds: list[Feed] = []
    idx = 1
    for number, (name, kind, idx_fields) in enumerate(DEVICES[:count]):
        master, slave = os.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        device = SimulatedDevice(kind, seed=number + 1)
        feed = Feed(name, kind, idx_fields, device, PtyLine(master, slave), master, slave)
        for label, *_ in idx_fields:
            found = lookup(label)
            assert found is not None, label
            feed.idx_name[idx] = found.name
            feed.recent[idx] = collections.deque()
            idx += 1
        feeds.append(feed)
    return feeds


async def mqtt_watch(
    port: int, feeds: dict[str, Feed], checks: Checks, ready: asyncio.Event
) -> None:
    """Check every state message's values against what was generated for that device."""
    async with aiomqtt.Client("127.0.0.1", port, identifier="soak-watch") as client:
        await client.subscribe("soak/+/state", qos=0)
        ready.set()
        async for message in client.messages:
            state = json.loads(bytes(message.payload))
            device = str(state.get("device"))
            checks.mqtt_messages[device] += 1
            feed = feeds.get(device)
            if feed is None:
                checks.mqtt_bad.append(f"unknown device {device!r}")
                continue
            for name, value in state.items():
                if name in ("time", "device", "product", "units"):
                    continue
                if value_key(value) not in feed.values.get(name, ()):
                    checks.mqtt_bad.append(f"{device} {name}={value!r}")


def check_domoticz(fake: FakeDomoticz, start: int, feeds: list[Feed], checks: Checks) -> int:
    """Check the posts that arrived since ``start``: value generated, and how late."""
    by_idx = {idx: feed for feed in feeds for idx in feed.idx_name}
    updates = fake.updates
    for update in updates[start:]:
        feed = by_idx.get(update.idx)
        if feed is None:
            checks.domoticz_bad.append(f"idx {update.idx}: not configured")
            continue
        name = feed.idx_name[update.idx]
        text = update.svalue
        if not feed.has_number(name, text):
            checks.domoticz_bad.append(f"{feed.name} {name}={update.svalue!r}")
            continue
        # the newest second written before the post whose value formats as the posted one
        digits = decimals_of(text)
        for when, value in reversed(feed.recent[update.idx]):
            if when <= update.at and fixed(value, digits) == text:
                checks.lags.append(update.at - when)
                break
        else:
            checks.lag_missing += 1
    return len(updates)


def check_csv(folder: Path, feeds: list[Feed], checks: Checks) -> None:
    """Every cell of every CSV row must be a value generated for that device."""
    names: dict[str, str] = {}
    for spec in CSV_COLUMNS[1:]:
        header, _, label = spec.partition("=")
        found = lookup(label)
        assert found is not None, label
        names[header] = found.name
    for feed in feeds:
        path = folder / "csv" / f"{feed.name}.csv"
        if not path.exists():
            checks.csv_bad.append(f"{path.name}: missing")
            continue
        with path.open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                checks.csv_rows += 1
                for header, name in names.items():
                    cell = row.get(header)
                    if cell is None:
                        checks.csv_bad.append(f"{path.name}: short row {row}")
                    elif cell and not feed.has_number(name, cell):
                        checks.csv_bad.append(f"{path.name}: {header}={cell!r}")


async def wait_port(port: int, process: asyncio.subprocess.Process, within: float = 30.0) -> None:
    """Wait until the service's HTTP port accepts connections (or it died)."""
    async with asyncio.timeout(within):
        while True:
            check_alive(process)
            with contextlib.suppress(OSError):
                _reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                return
            await asyncio.sleep(0.1)


def check_alive(process: asyncio.subprocess.Process) -> None:
    if process.returncode is not None:
        raise RuntimeError(f"the service exited with {process.returncode}")


def mb(kb: float) -> float:
    return kb / 1000


async def soak(args: argparse.Namespace, folder: Path) -> int:
    speed: float = args.speed
    total = round(args.days * DAY)
    feeds = make_feeds(args.devices)
    by_name = {feed.name: feed for feed in feeds}
    checks = Checks()
    broker: Mosquitto | None = None
    if args.mqtt:
        broker = Mosquitto(folder / "mosquitto").start()
    else:
        print("note: MQTT output off (--no-mqtt, or no mosquitto: apt-get install mosquitto)")
    fake = FakeDomoticz()
    await fake.start()
    for feed in feeds:
        for idx, (label, _kind, type_, subtype) in zip(feed.idx_name, feed.idx_fields, strict=True):
            fake.add_device(idx, f"{feed.name} {label}", type_, subtype)
    http_port = free_port()
    config, domoticz_interval = write_config(
        folder, feeds, speed, http_port, fake.url, broker.port if broker else None
    )
    (folder / "csv").mkdir()
    log = (folder / "service.log").open("wb")
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "vedirect_async", "--config", str(config)),
        cwd=folder,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=log,
        stderr=asyncio.subprocess.STDOUT,
    )
    watcher: asyncio.Task[None] | None = None
    samples: list[Sample] = []
    exit_code: int | None = None
    try:
        await wait_port(http_port, process)
        if broker is not None:
            ready = asyncio.Event()
            watcher = asyncio.create_task(mqtt_watch(broker.port, by_name, checks, ready))
            async with asyncio.timeout(10):
                await ready.wait()
        metrics_url = f"http://127.0.0.1:{http_port}/metrics"
        async with aiohttp.ClientSession() as session:

            async def sample(done: int) -> None:
                rss, fds, threads, cpu = proc_sample(process.pid)
                tasks, readings = await scrape(session, metrics_url)
                samples.append(
                    Sample(time.monotonic(), done, rss, fds, threads, tasks, cpu, readings)
                )
                if args.verbose:
                    s = samples[-1]
                    print(
                        f"{s.simulated / 3600:8.1f} h  RSS {mb(s.rss_kb):6.1f} MB  fds {fds}  "
                        f"threads {threads}  tasks {tasks}  CPU {cpu:7.1f} s  readings {readings}"
                    )

            await sample(0)
            cpu_start, wall_start = cpu_seconds(process.pid), time.monotonic()
            loop = asyncio.get_running_loop()
            start = loop.time()
            done = 0
            next_sample = start + args.sample
            domoticz_seen = 0
            behind = 0.0
            while done < total:
                now = loop.time()
                due = min(total, int((now - start) * speed) + 1)
                behind = max(behind, (now - start) - done / speed)
                if due > done:
                    wall = time.monotonic()
                    for feed in feeds:
                        feed.step(wall, due - done)
                        feed.trim(wall)
                    done = due
                domoticz_seen = check_domoticz(fake, domoticz_seen, feeds, checks)
                check_alive(process)
                if now >= next_sample:
                    await sample(done)
                    next_sample += args.sample
                await asyncio.sleep(max(0.0, start + done / speed - loop.time(), TICK))
            fed_wall = time.monotonic() - wall_start
            # let the service finish what it was sent (a couple of its Domoticz rounds)
            await asyncio.sleep(max(1.0, 2 * domoticz_interval))
            check_domoticz(fake, domoticz_seen, feeds, checks)
            cpu_used = cpu_seconds(process.pid) - cpu_start
            await sample(done)
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(10):
            exit_code = await process.wait()
    except Exception:
        with contextlib.suppress(OSError):
            tail = (folder / "service.log").read_text(errors="replace").splitlines()[-20:]
            print("service log (tail):\n  " + "\n  ".join(tail))
        raise
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        log.close()
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await watcher
        await fake.stop()
        broker_cpu = cpu_seconds(broker.pid) if broker and broker.pid else None
        if broker is not None:
            broker.stop()
        for feed in feeds:
            os.close(feed.master)
            os.close(feed.slave)
    check_csv(folder, feeds, checks)
    report(args, feeds, samples, checks, total, fed_wall, cpu_used, domoticz_interval, broker_cpu)
    log_text = (folder / "service.log").read_text(errors="replace").splitlines()
    problems = [line for line in log_text if " ERROR " in line or "Traceback" in line]
    print(
        f"service exit code {exit_code}; log lines {len(log_text)}, ERROR/Traceback {len(problems)}"
    )
    for line in log_text[-5:] if problems else ():
        print(f"  log: {line}")
    return 0


def report(
    args: argparse.Namespace,
    feeds: list[Feed],
    samples: list[Sample],
    checks: Checks,
    total: int,
    fed_wall: float,
    cpu_used: float,
    domoticz_interval: float,
    broker_cpu: float | None,
) -> None:
    speed: float = args.speed
    devices = len(feeds)
    header = ("sim h", "RSS MB", "fds", "thr", "tasks", "CPU s", "readings")
    print("\n" + " ".join(f"{h:>{w}}" for h, w in zip(header, (7, 7, 4, 4, 5, 7, 9), strict=True)))
    for s in samples:
        print(
            f"{s.simulated / 3600:7.1f} {mb(s.rss_kb):7.1f} {s.fds:4} {s.threads:4} "
            f"{s.tasks if s.tasks is not None else '-':>5} {s.cpu:7.1f} "
            f"{s.readings if s.readings is not None else '-':>9}"
        )
    warm = DAY if total > DAY else total // 2
    after = [s for s in samples if s.simulated >= warm] or samples[-1:]
    growth = mb(after[-1].rss_kb - after[0].rss_kb)
    spread = mb(max(s.rss_kb for s in after) - min(s.rss_kb for s in after))
    fds = flat([s.fds for s in after])
    tasks = flat([s.tasks for s in after if s.tasks is not None])
    threads = flat([s.threads for s in after])
    generated = sum(feed.readings for feed in feeds)
    served = samples[-1].readings or 0
    dropped = sum(feed.line.discarded for feed in feeds)
    device_days = devices * total / DAY
    per_day = cpu_used / device_days
    lags = sorted(checks.lags)
    posts = len(checks.lags) + checks.lag_missing + len(checks.domoticz_bad)
    corrupt = len(checks.csv_bad) + len(checks.mqtt_bad) + len(checks.domoticz_bad)
    rows: list[tuple[str, str, str]] = [
        ("simulated", f"{total / DAY:g} days x {devices} devices at {speed:g}x", ""),
        ("wall time fed", f"{fed_wall:.0f} s (achieved {total / fed_wall:.0f}x)", ""),
        (
            "service kept up",
            f"{served:,} of {generated:,} readings; {dropped:,} bytes dropped",
            "yes" if served >= generated * 0.999 and not dropped else "NO",
        ),
        ("warm-up", f"first {warm / 3600:g} simulated h", ""),
        (
            "RSS after warm-up",
            f"{mb(after[0].rss_kb):.1f} -> {mb(after[-1].rss_kb):.1f} MB, "
            f"growth {growth:+.2f} MB, spread {spread:.2f} MB",
            "ok" if growth <= TARGET_GROWTH_MB else "OVER 1 MB",
        ),
        ("open fds after warm-up", fds[0], fds[1]),
        ("asyncio tasks after warm-up", tasks[0], tasks[1]),
        ("threads after warm-up", threads[0], threads[1]),
        (
            "corrupt values",
            f"{corrupt} (CSV rows {checks.csv_rows:,}, MQTT states "
            f"{sum(checks.mqtt_messages.values()):,}, Domoticz posts {posts:,})",
            "ok" if corrupt == 0 else "CORRUPT",
        ),
    ]
    sent = sum(checks.mqtt_messages.values())
    if sent:
        share = sent / max(generated, 1)
        rows.append(
            (
                "MQTT state messages",
                f"{sent:,} = {share:.0%} of readings (newest kept while a publish is in flight)",
                "" if share > 0.95 else "CPU below understated: at 1x every reading is sent",
            )
        )
    if lags:
        within = sum(lag <= domoticz_interval for lag in lags) / len(lags)
        p99 = lags[min(len(lags) - 1, int(len(lags) * 0.99))]
        rows.append(
            (
                "Domoticz lag (wall)",
                f"p50 {lags[len(lags) // 2] * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, max "
                f"{lags[-1] * 1000:.0f} ms; interval {domoticz_interval * 1000:.0f} ms; "
                f"{within:.1%} within it; {checks.lag_missing} older than {LAG_WINDOW:g} s",
                "ok" if lags[-1] <= domoticz_interval and not checks.lag_missing else "OVER",
            )
        )
    rows += [
        ("service CPU", f"{cpu_used:.1f} s for {device_days:g} device-days", ""),
        ("CPU per device-day", f"{per_day:.1f} s ({per_day / DAY * 100:.3f} % of a core)", ""),
        ("devices per core (here)", f"{DAY / per_day:,.0f}", ""),
        (
            f"Raspberry Pi 3 (est., {args.pi_ratio:g}x slower)",
            f"{per_day * args.pi_ratio:.0f} s per device-day, "
            f"{DAY / (per_day * args.pi_ratio):,.0f} devices per core",
            "estimate",
        ),
    ]
    if broker_cpu is not None:
        rows.append(("mosquitto CPU (not counted)", f"{broker_cpu:.1f} s", ""))
    print()
    for name, value, verdict in rows:
        print(f"{name:<36} {value}  {verdict}".rstrip())
    for label, bad in (
        ("CSV", checks.csv_bad),
        ("MQTT", checks.mqtt_bad),
        ("Domoticz", checks.domoticz_bad),
    ):
        for line in bad[:5]:
            print(f"  corrupt {label}: {line}")
    print(f"\npure-Python speed here: {pystone_like():.2f} M loop iterations/s (docs/figures.md)")


def flat(values: list[int]) -> tuple[str, str]:
    """Range of a sampled count, and whether its baseline and peak stayed put.

    Requests in flight (a Domoticz post, the /metrics scrape itself) add a task and a socket
    for a moment, so single samples vary by a few; a leak shows as a rising baseline (minimum).
    """
    if not values:
        return "n/a", ""
    half = len(values) // 2
    first, last = values[: max(half, 1)], values[half:]
    steady = min(last) <= min(first)
    text = f"{min(values)}-{max(values)}" if min(values) != max(values) else str(values[0])
    return text, "ok (no upward trend)" if steady else "RISING"


def pystone_like(iterations: int = 2_000_000) -> float:
    """A pure-Python integer/attribute/call loop, best of 3: million iterations per second."""

    @dataclass
    class Rec:
        a: int = 0
        b: int = 0

    def step(rec: Rec, i: int) -> int:
        rec.a = (rec.a + i) & 0xFFFF
        rec.b ^= rec.a
        return rec.b

    best = float("inf")
    for _ in range(3):
        rec = Rec()
        begin = time.process_time()
        for i in range(iterations):
            step(rec, i)
        best = min(best, time.process_time() - begin)
    return iterations / best / 1e6


def _cpu_model() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as info:
        for line in info:
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    return platform.processor() or platform.machine()


def _iter_header() -> Iterator[str]:
    yield f"# {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs, {_cpu_model()}"
    yield f"# Python {platform.python_version()}, load average {os.getloadavg()[0]:.1f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=float, default=1.0, help="simulated days per device")
    parser.add_argument("--speed", type=float, default=200.0, help="times the real rate")
    parser.add_argument("--devices", type=int, default=4, choices=range(1, len(DEVICES) + 1))
    parser.add_argument("--sample", type=float, default=10.0, help="wall seconds between samples")
    parser.add_argument("--pi-ratio", type=float, default=10.0, help="Pi 3 core / this core")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--verbose", "-v", action="store_true", help="print samples as they come")
    parser.add_argument("--no-mqtt", action="store_true", help="MQTT output off")
    args = parser.parse_args()
    args.mqtt = os.path.exists(MOSQUITTO) and not args.no_mqtt
    for line in _iter_header():
        print(line)
    folder = Path(tempfile.mkdtemp(prefix="vedirect-soak-"))
    try:
        return asyncio.run(soak(args, folder))
    finally:
        if args.keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
