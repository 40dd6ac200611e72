"""CSV output: byte-exact rows, one header, whole lines through cancellation, full disk,
permission denied, a removed directory, rotation, and the real service stopped by SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import importlib
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType

import pytest

from vedirect_async.config import Config, ConfigError, CsvConfig, load_config
from vedirect_async.csv_columns import device_path, format_value, parse_columns
from vedirect_async.hub import Hub, OutputHealth, OutputState, Subscription
from vedirect_async.outputs import REGISTRY
from vedirect_async.outputs.csv_log import CsvOutput, csv_output, next_tick
from vedirect_async.parser import Parser, TextBlock
from vedirect_async.reading import UNAVAILABLE, Assembler, Reading, Value

ROOT = Path(__file__).resolve().parent.parent
HEADER = "Time,Volts,Amps,AHr,SOC\n"
BASE = datetime(2020, 4, 2, 12, 0, 0, tzinfo=UTC)


# -- helpers ----------------------------------------------------------------------------------


def bmv(k: int, *, device: str = "bmv", soc: Value = 83.9, at: datetime | None = None) -> Reading:
    """A BMV-like reading k seconds after BASE (values in catalogue units, like the assembler)."""
    values: dict[str, Value] = {
        "voltage": 12.065 + k * 0.001,
        "current": -7.625,
        "consumed_ah": -65.473,
        "soc": soc,
    }
    when = at if at is not None else BASE + timedelta(seconds=k)
    return Reading(device, when, float(k), MappingProxyType(values))


def bmv_row(k: int, soc: str = "83.9", at: datetime | None = None) -> str:
    when = at if at is not None else BASE + timedelta(seconds=k)
    volts = Decimal(12065 + k).scaleb(-3)
    return f"{when.strftime('%Y-%m-%dT%H:%M:%SZ')},{volts},-7.625,-65.473,{soc}\n"


def config(path: Path, **changes: object) -> CsvConfig:
    base: dict[str, object] = {"path": str(path), "interval": 0.0, "time_format": "utc"}
    base.update(changes)
    return CsvConfig(**base)  # type: ignore[arg-type]


@dataclass
class Running:
    output: CsvOutput
    hub: Hub
    sub: Subscription
    state: OutputState
    task: asyncio.Task[None]


@contextlib.asynccontextmanager
async def running(
    cfg: CsvConfig, devices: Sequence[str] = ("bmv",), **kwargs: float
) -> AsyncIterator[Running]:
    """The output running on its own hub subscription; cancelled (and awaited) on exit."""
    output = CsvOutput(cfg, devices, **kwargs)
    hub = Hub()
    sub = output.subscribe(hub)
    state = hub.output("csv")
    task = asyncio.create_task(output.run(sub, state))
    try:
        yield Running(output, hub, sub, state, task)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await output.aclose()


def health_of(state: OutputState) -> OutputHealth:
    return state.health  # a call: mypy does not carry an earlier narrowing over


def names_in(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def text_of(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def assert_valid_csv(text: str, columns: int = 5) -> list[str]:
    """Every line complete and with the header's column count; returns the lines."""
    assert text.endswith("\n"), "last line incomplete"
    lines = text.splitlines()
    assert lines[0].count(",") == columns - 1
    assert lines.count(lines[0]) == 1, "header written twice"
    for line in lines:
        assert line.count(",") == columns - 1, f"broken line {line!r}"
    return lines


# -- formatting and configuration -------------------------------------------------------------


def test_values_are_written_at_the_device_resolution() -> None:
    """Scaled numbers keep the field's decimals; UNAVAILABLE and absent are empty; text is
    quoted only when needed."""
    assert format_value(12.065000000000001, 3) == "12.065"
    assert format_value(12.0, 3) == "12.000"
    assert format_value(-0.0, 3) == "0.000"
    assert format_value(839 * 0.1, 1) == "83.9"
    assert format_value(-92, 0) == "-92"
    assert format_value(UNAVAILABLE, 3) == ""
    assert format_value(None, 0) == ""
    assert format_value(True, 0) == "ON"
    assert format_value(float("inf"), 0) == "inf"
    assert format_value(("low voltage", "high voltage"), 0) == "low voltage|high voltage"
    assert format_value('a,"b"', 0) == '"a,""b"""'
    assert format_value("two\r\nlines", 0) == "two  lines"


def test_columns_accept_labels_names_devices_and_reject_typos() -> None:
    """Columns name catalogue fields by label or name, optionally per device; a typo is a
    ConfigError naming the entry."""
    columns = parse_columns(
        ["Time", "Volts=V", "soc", "mppt:PV=PPV", "Who=device"], ["bmv", "mppt"]
    )
    assert [(c.header, c.source, c.device, c.decimals) for c in columns] == [
        ("Time", "time", None, 0),
        ("Volts", "voltage", None, 3),
        ("soc", "soc", None, 1),
        ("PV", "panel_power", "mppt", 0),
        ("Who", "device", None, 0),
    ]
    with pytest.raises(ConfigError, match=r"csv.columns\[0\] = 'Vlots=Vx'.*unknown field"):
        parse_columns(["Vlots=Vx"], ["bmv"])
    with pytest.raises(ConfigError, match="device"):
        parse_columns(["nosuch:V"], ["bmv"])


def test_bad_column_is_a_config_error_with_its_line(tmp_path: Path) -> None:
    """A typo in csv.columns fails config loading (so check-config), naming file and line."""
    cfg = tmp_path / "config.toml"
    cfg.write_text('[csv]\ninterval = 0\ncolumns = ["Time", "Volts=Vx"]\n')
    with pytest.raises(ConfigError, match=r"config.toml:3: csv.columns\[1\] = 'Volts=Vx'"):
        load_config(cfg, environ={})
    with pytest.raises(ConfigError, match="not used twice"):
        parse_columns(["Time", "Time=V"], ["bmv"])


async def test_fsync_rows(tmp_path: Path) -> None:
    """fsync = true still writes exactly one complete line per row."""
    path = tmp_path / "vedirect_data.csv"
    async with running(config(path, fsync=True)) as run:
        for k in range(3):
            run.hub.publish(bmv(k))
        await asyncio.wait_for(run.output.wait_written(3), 5)
    assert path.read_text() == HEADER + "".join(bmv_row(k) for k in range(3))


def test_factory_registered_and_none_when_disabled() -> None:
    """The registry builds the CSV output from [csv] and returns None when it is disabled."""
    assert REGISTRY["csv"] is csv_output
    assert isinstance(csv_output(Config()), CsvOutput)
    assert csv_output(Config(csv=CsvConfig(enabled=False))) is None


def test_one_file_per_device() -> None:
    """One device writes the configured path; several get {device} or a _<device> suffix."""
    assert device_path("data.csv", "bmv", ["bmv"]) == Path("data.csv")
    assert device_path("data.csv", "mppt", ["bmv", "mppt"]) == Path("data_mppt.csv")
    assert device_path("/x/{device}/log.csv", "bmv", ["bmv"]) == Path("/x/bmv/log.csv")


def test_next_tick_is_absolute_and_skips_missed_ticks() -> None:
    """Ticks stay on start + k * interval; a late wake-up skips to the next future tick."""
    assert next_tick(100.0, 30.0, 100.0) == 130.0
    assert next_tick(100.0, 30.0, 131.0) == 160.0
    assert next_tick(100.0, 30.0, 250.5) == 280.0  # ticks 160..250 missed, not caught up


# -- the replayed capture, byte for byte ------------------------------------------------------


def expected_from_capture(data: bytes) -> str:
    """The expected file from the raw bytes: one row per update (a PID block and the block
    after it), V/I/CE in milli-units and SOC in per mille, shifted by decimal places."""
    blocks = re.findall(rb"\r\n[A-Za-z].*?\r\nChecksum\t.", data, re.DOTALL)
    rows = [HEADER]
    updates = [i for i, block in enumerate(blocks[:-1]) if b"\r\nPID\t" in block]
    for k, i in enumerate(updates):
        fields = dict(re.findall(rb"\r\n([A-Za-z0-9#]+)\t([^\r\n]*)", blocks[i]))

        def scaled(label: bytes, places: int, fields: dict[bytes, bytes] = fields) -> str:
            raw = fields.get(label)
            return "" if raw in (None, b"---") else str(Decimal(int(raw)).scaleb(-places))

        when = (BASE + timedelta(seconds=k)).strftime("%Y-%m-%dT%H:%M:%SZ")
        cells = [when, scaled(b"V", 3), scaled(b"I", 3), scaled(b"CE", 3), scaled(b"SOC", 1)]
        rows.append(",".join(cells) + "\n")
    return "".join(rows)


def readings_from_capture(data: bytes) -> list[Reading]:
    """Parser + Assembler over the capture; update k is stamped BASE + k seconds."""
    parser, assembler = Parser(), Assembler("bmv")
    readings: list[Reading] = []
    pid_blocks = 0
    for event in parser.feed(data):
        if not isinstance(event, TextBlock):
            continue
        if any(label == b"PID" for label, _ in event.fields):
            pid_blocks += 1
        k = pid_blocks - 1
        reading = assembler.feed(event, BASE + timedelta(seconds=k), float(k))
        if reading is not None:
            readings.append(reading)
    return readings


async def test_replayed_capture_is_byte_exact(tmp_path: Path, captures_dir: Path) -> None:
    """The BMV-702 capture replayed through parser, assembler, hub and the output (interval 0)
    gives exactly the file built from the raw bytes by hand."""
    data = (captures_dir / "karioja-vedirect__bvm702.dump").read_bytes()
    readings = readings_from_capture(data)
    expected = expected_from_capture(data)
    assert len(readings) == expected.count("\n") - 1 == 453
    path = tmp_path / "vedirect_data.csv"
    async with running(config(path, queue_size=1024)) as run:
        for reading in readings:
            run.hub.publish(reading)
        await asyncio.wait_for(run.output.wait_written(len(readings)), 20)
        assert run.state.health is OutputHealth.OK
        assert run.state.counters["rows"] == 453
    assert path.read_bytes() == expected.encode()


async def test_local_time_has_its_utc_offset(tmp_path: Path) -> None:
    """time_format = local writes the reading's local time with its offset (the default)."""
    path = tmp_path / "local.csv"
    async with running(config(path, time_format="local")) as run:
        run.hub.publish(bmv(0))
        await asyncio.wait_for(run.output.wait_written(1), 5)
    local = BASE.astimezone().isoformat(timespec="seconds")
    assert path.read_text().splitlines()[1].startswith(local + ",12.065,")


async def test_several_devices_one_file_each_with_own_columns(tmp_path: Path) -> None:
    """Two devices: one file each ({device} in path), a device-prefixed column only in its own
    file, an absent field an empty cell."""
    path = tmp_path / "{device}.csv"
    columns = ["Time", "Volts=V", "bmv:SOC", "mppt:PV=PPV"]
    mppt = Reading("mppt", BASE, 0.0, MappingProxyType({"voltage": 13.2, "panel_power": 120}))
    async with running(config(path, columns=columns), ("bmv", "mppt")) as run:
        run.hub.publish(bmv(0))
        run.hub.publish(mppt)
        await asyncio.wait_for(run.output.wait_written(2), 5)
    assert (tmp_path / "bmv.csv").read_text() == (
        "Time,Volts,SOC\n2020-04-02T12:00:00Z,12.065,83.9\n"
    )
    assert (tmp_path / "mppt.csv").read_text() == "Time,Volts,PV\n2020-04-02T12:00:00Z,13.200,120\n"


# -- header, restart, repair ------------------------------------------------------------------


async def test_restart_appends_under_one_header(tmp_path: Path) -> None:
    """A second run appends to the file it finds, with no second header."""
    path = tmp_path / "vedirect_data.csv"
    for start in (0, 3):
        async with running(config(path)) as run:
            for k in range(start, start + 3):
                run.hub.publish(bmv(k))
            await asyncio.wait_for(run.output.wait_written(3), 5)
    assert path.read_text() == HEADER + "".join(bmv_row(k) for k in range(6))


async def test_changed_columns_start_a_new_file(tmp_path: Path) -> None:
    """A file with another header is renamed aside (dated like a rotated file), never mixed."""
    path = tmp_path / "vedirect_data.csv"
    path.write_text("Time,Volts\n2020-04-01T00:00:00Z,12.000\n")
    os.utime(path, (BASE.timestamp() - 86400, BASE.timestamp() - 86400))
    async with running(config(path)) as run:
        run.hub.publish(bmv(0))
        await asyncio.wait_for(run.output.wait_written(1), 5)
    assert path.read_text() == HEADER + bmv_row(0)
    aside = tmp_path / "vedirect_data.2020-04-01.csv"
    assert aside.read_text() == "Time,Volts\n2020-04-01T00:00:00Z,12.000\n"


async def test_partial_last_line_is_cut_off_on_open(tmp_path: Path) -> None:
    """A half line left by a power cut is removed before the next row is appended."""
    path = tmp_path / "vedirect_data.csv"
    path.write_text(HEADER + bmv_row(0) + "2020-04-02T12:00:01Z,12.0")
    async with running(config(path)) as run:
        run.hub.publish(bmv(2))
        await asyncio.wait_for(run.output.wait_written(1), 5)
    assert path.read_text() == HEADER + bmv_row(0) + bmv_row(2)


async def test_cancellation_mid_run_leaves_only_complete_lines(tmp_path: Path) -> None:
    """Cancelled while rows are being written, the output flushes its queue and never leaves
    a half line."""
    path = tmp_path / "vedirect_data.csv"
    async with running(config(path)) as run:
        for k in range(300):
            run.hub.publish(bmv(k))
        await asyncio.wait_for(run.output.wait_written(20), 5)
        run.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await run.task
        assert run.task.cancelled()
        written = run.output.rows_written
    lines = assert_valid_csv(path.read_text())
    assert len(lines) - 1 == written >= 20
    assert lines[1:] == [bmv_row(k).rstrip("\n") for k in range(written)]


async def test_interval_writes_the_newest_reading_once_per_tick(tmp_path: Path) -> None:
    """interval > 0: one row per tick with the newest reading; no new reading, no row."""
    path = tmp_path / "vedirect_data.csv"
    async with running(config(path, interval=0.05)) as run:
        run.hub.publish(bmv(0))
        run.hub.publish(bmv(1))
        await asyncio.wait_for(run.output.wait_written(1), 5)
        idle = run.sub.delivered
        # not waiting for something: asserting that several ticks with nothing new add nothing
        await asyncio.sleep(0.15)
        assert run.output.rows_written == 1
        assert run.sub.delivered == idle
        run.hub.publish(bmv(2))
        await asyncio.wait_for(run.output.wait_written(2), 5)
    assert path.read_text() == HEADER + bmv_row(1) + bmv_row(2)


# -- failures -----------------------------------------------------------------------------------


async def test_directory_removed_then_back(tmp_path: Path) -> None:
    """A removed directory: degraded with the reason, not recreated, rows kept and written
    once it is back; the file is valid CSV throughout."""
    directory = tmp_path / "usb"
    directory.mkdir()
    path = directory / "vedirect_data.csv"
    async with running(config(path), retry_initial=0.01, retry_max=0.01) as run:
        run.hub.publish(bmv(0))
        await asyncio.wait_for(run.output.wait_written(1), 5)
        shutil.rmtree(directory)
        run.hub.publish(bmv(1))
        await asyncio.wait_for(
            run.output.wait_progress(lambda: run.state.health is OutputHealth.DEGRADED), 5
        )
        assert "is missing" in run.state.reason
        assert run.state.counters["missing_directory"] >= 1
        assert not directory.exists()
        directory.mkdir()
        run.hub.publish(bmv(2))
        await asyncio.wait_for(run.output.wait_written(3), 5)
        assert run.state.health is OutputHealth.OK
    assert path.read_text() == HEADER + bmv_row(1) + bmv_row(2)


async def test_file_deleted_is_recreated_with_header(tmp_path: Path) -> None:
    """A file deleted under the service is noticed and recreated with its header."""
    path = tmp_path / "vedirect_data.csv"
    async with running(config(path)) as run:
        run.hub.publish(bmv(0))
        await asyncio.wait_for(run.output.wait_written(1), 5)
        path.unlink()
        run.hub.publish(bmv(1))
        await asyncio.wait_for(run.output.wait_written(2), 5)
    assert path.read_text() == HEADER + bmv_row(1)


async def test_hung_file_operation_times_out_and_recovers(tmp_path: Path) -> None:
    """A file operation that hangs (open() of a FIFO nobody reads) fails after `timeout` as
    degraded with the reason; later rows fail fast instead of piling up threads; once the
    operation returns the output reopens and writes the waiting rows."""
    path = tmp_path / "vedirect_data.csv"
    os.mkfifo(path)
    reader: int | None = None
    try:
        async with running(config(path, timeout=0.2), retry_initial=0.01, retry_max=0.01) as run:

            def timeouts() -> int:
                return run.state.counters.get("timeouts", 0)

            run.hub.publish(bmv(0))
            await asyncio.wait_for(run.output.wait_progress(lambda: timeouts() >= 1), 5)
            assert run.state.health is OutputHealth.DEGRADED
            assert "took longer than 0.2 s" in run.state.reason
            run.hub.publish(bmv(1))
            await asyncio.wait_for(run.output.wait_progress(lambda: timeouts() >= 2), 5)
            assert "still hanging" in run.state.reason
            reader = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # the hung open() returns
            for k in range(2, 5):
                run.hub.publish(bmv(k))
            await asyncio.wait_for(run.output.wait_written(5), 5)
            assert health_of(run.state) is OutputHealth.OK
            data = os.read(reader, 65536).decode()
    finally:
        if reader is None:  # never leave a worker thread blocked in open()
            reader = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        os.close(reader)
    assert data == HEADER + "".join(bmv_row(k) for k in range(5))


def _child_main(argv: Sequence[str]) -> int:
    """Entry point of the fault-injection child processes (see the two tests below)."""
    scenario, path = argv
    faulthandler.dump_traceback_later(20, exit=True)  # a hang shows where, then ends the child
    report = asyncio.run(_child(scenario, Path(path)))
    sys.stdout.write(json.dumps(report) + "\n")
    return 0


async def _child(scenario: str, path: Path) -> dict[str, object]:
    cfg = config(path)
    report: dict[str, object] = {}
    async with running(cfg, retry_initial=0.01, retry_max=0.01) as run:
        other = run.hub.subscribe("other-output", maxsize=100)  # another output, still fed
        if scenario == "disk_full":
            row = len(bmv_row(0))
            limit = len(HEADER) + 3 * row + row // 2  # the 4th row fits only by half
            hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
        for k in range(5):
            run.hub.publish(bmv(k))
        # rows 3 and 4 fail (one attempt each: no retry delay here)
        await asyncio.wait_for(
            run.output.wait_progress(lambda: run.state.counters.get("write_errors", 0) >= 2), 5
        )
        report["health"] = str(run.state.health)
        report["reason"] = run.state.reason
        report["during"] = text_of(path)
        report["alive"] = not run.task.done()
        if scenario == "disk_full":
            resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))
        else:
            path.parent.chmod(0o700)
        run.hub.publish(bmv(5))
        await asyncio.wait_for(run.output.wait_written(6), 5)
        report["after"] = str(run.state.health)
        report["counters"] = dict(run.state.counters)
        report["other_received"] = len(other)
    return report


def _run_child(scenario: str, path: Path, prefix: Sequence[str] = ()) -> dict[str, object]:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    code = "import sys; from tests.test_csv_log import _child_main as m; sys.exit(m(sys.argv[1:]))"
    proc = subprocess.run(
        [*prefix, sys.executable, "-c", code, scenario, str(path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    report: dict[str, object] = json.loads(proc.stdout.splitlines()[-1])
    return report


def test_full_disk_degrades_keeps_lines_whole_and_recovers(tmp_path: Path) -> None:
    """A file-size limit (RLIMIT_FSIZE, SIGXFSZ ignored) hit in the middle of a row: the half
    row is cut off, the output stays alive and degraded with "disk full", other subscribers
    keep getting readings, and the queued rows are written once there is room."""
    path = tmp_path / "vedirect_data.csv"
    report = _run_child("disk_full", path)
    assert report["health"] == "degraded"
    assert "disk full" in str(report["reason"])
    assert report["alive"] is True
    assert report["during"] == HEADER + "".join(bmv_row(k) for k in range(3))
    assert report["after"] == "ok"
    counters = report["counters"]
    assert isinstance(counters, dict)
    assert counters["disk_full"] >= 1
    assert counters["rows"] == 6
    assert report["other_received"] == 6
    assert path.read_text() == HEADER + "".join(bmv_row(k) for k in range(6))


def test_permission_denied_degrades_then_recovers(tmp_path: Path) -> None:
    """A directory the service may not write: degraded with the reason, no crash, and the
    rows written once permission is back (as root, DAC override is dropped with setpriv)."""
    directory = tmp_path / "ro"
    directory.mkdir()
    directory.chmod(0o500)
    prefix: list[str] = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root and setpriv (util-linux) is missing to drop DAC override")
        prefix = [setpriv, "--bounding-set=-dac_override,-dac_read_search"]
    path = directory / "vedirect_data.csv"
    report = _run_child("permission", path, prefix)
    assert report["health"] == "degraded"
    assert "not writable" in str(report["reason"])
    assert report["alive"] is True
    assert report["during"] == ""
    assert report["after"] == "ok"
    assert path.read_text() == HEADER + "".join(bmv_row(k) for k in range(6))


# -- rotation ---------------------------------------------------------------------------------


async def test_rotation_by_size_keeps_retention(tmp_path: Path) -> None:
    """rotate = size: files never exceed max_bytes, old ones are renamed (dated, numbered) and
    only `retention` are kept; every file has its header."""
    path = tmp_path / "vedirect_data.csv"
    row = len(bmv_row(0))
    cfg = config(path, rotate="size", max_bytes=len(HEADER) + 2 * row, retention=2)
    async with running(cfg) as run:
        for k in range(9):
            run.hub.publish(bmv(k))
        await asyncio.wait_for(run.output.wait_written(9), 5)
        assert run.state.counters["rotations"] == 4
    names = names_in(tmp_path)
    assert names == [
        "vedirect_data.2020-04-02.2.csv",
        "vedirect_data.2020-04-02.3.csv",
        "vedirect_data.csv",
    ]
    assert path.read_text() == HEADER + bmv_row(8)
    assert (tmp_path / "vedirect_data.2020-04-02.3.csv").read_text() == (
        HEADER + bmv_row(6) + bmv_row(7)
    )


async def test_rotation_by_day_keeps_retention(tmp_path: Path) -> None:
    """rotate = daily: the first row of a new day starts a new file; the old one is named
    after its day; retention removes the oldest; a restart on a later day rotates too."""
    path = tmp_path / "vedirect_data.csv"
    cfg = config(path, rotate="daily", retention=2)
    days = [BASE + timedelta(days=d, hours=h) for d in range(4) for h in (0, 1)]
    async with running(cfg) as run:
        for k, when in enumerate(days):
            run.hub.publish(bmv(k, at=when))
        await asyncio.wait_for(run.output.wait_written(len(days)), 5)
    names = names_in(tmp_path)
    assert names == [
        "vedirect_data.2020-04-03.csv",
        "vedirect_data.2020-04-04.csv",
        "vedirect_data.csv",
    ]
    assert path.read_text() == HEADER + bmv_row(6, at=days[6]) + bmv_row(7, at=days[7])
    # restart on the next day: the file (last written "today" by mtime) rotates before use
    os.utime(path, (days[7].timestamp(), days[7].timestamp()))
    later = BASE + timedelta(days=4)
    async with running(cfg) as run:
        run.hub.publish(bmv(8, at=later))
        await asyncio.wait_for(run.output.wait_written(1), 5)
    assert (tmp_path / "vedirect_data.2020-04-05.csv").read_text().count("\n") == 3
    assert not (tmp_path / "vedirect_data.2020-04-03.csv").exists()
    assert path.read_text() == HEADER + bmv_row(8, at=later)


# -- the real service ---------------------------------------------------------------------------


def _service_ready() -> bool:
    try:
        service = importlib.import_module("vedirect_async.service")
    except ImportError:
        return False
    return hasattr(service, "cli_run")


@pytest.mark.skipif(not _service_ready(), reason="vedirect_async.service has no cli_run yet")
def test_service_sigterm_leaves_complete_lines(tmp_path: Path) -> None:
    """The real service on the BMV-712 simulator, CSV at interval 0, SIGTERM mid-run: exit 0
    and every line of the CSV complete."""
    csv = tmp_path / "vedirect_data.csv"
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        '[[device]]\nname = "bmv"\nport = "simulator:bmv712"\n\n'
        f'[csv]\npath = "{csv}"\ninterval = 0\n\n[http]\nenabled = false\n'
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "vedirect_async", "--config", str(cfg)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while (not csv.exists() or csv.read_text().count("\n") < 3) and proc.poll() is None:
            assert time.monotonic() < deadline, "no CSV rows from the service"
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err.decode(errors="replace")
    lines = assert_valid_csv(csv.read_text())
    assert lines[0] == HEADER.rstrip("\n")
    assert len(lines) >= 3


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _limit_file_size(limit: int) -> Callable[[], None]:
    def apply() -> None:  # in the child before exec: SIG_IGN survives exec, so does the limit
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


@pytest.mark.skipif(not _service_ready(), reason="vedirect_async.service has no cli_run yet")
def test_service_with_a_full_disk_stays_up_and_reports_it(tmp_path: Path) -> None:
    """The real service with a file-size limit hit mid-row: it keeps running and answering
    HTTP, /api/health shows the CSV output degraded with "disk full", SIGTERM still exits 0,
    and the CSV is valid (whole lines, header's column count)."""
    csv = tmp_path / "vedirect_data.csv"
    cfg = tmp_path / "config.toml"
    port = _free_port()
    cfg.write_text(
        '[[device]]\nname = "bmv"\nport = "simulator:bmv712"\n\n'
        f'[csv]\npath = "{csv}"\ninterval = 0\n\n[http]\nport = {port}\n'
    )
    limit = 200  # the header and about three rows
    proc = subprocess.Popen(
        [sys.executable, "-m", "vedirect_async", "--config", str(cfg)],
        cwd=ROOT,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=_limit_file_size(limit),  # noqa: PLW1509 - no threads in this test process
    )
    try:
        deadline = time.monotonic() + 25
        csv_state: dict[str, object] = {}
        while csv_state.get("health") != "degraded":
            assert proc.poll() is None, "the service died"
            assert time.monotonic() < deadline, f"CSV output never degraded: {csv_state}"
            time.sleep(0.1)
            with contextlib.suppress(OSError):
                url = f"http://127.0.0.1:{port}/api/health"
                with urllib.request.urlopen(url, timeout=2) as response:
                    csv_state = json.load(response)["outputs"].get("csv", {})
        assert "disk full" in str(csv_state["reason"])
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err.decode(errors="replace")
    text = csv.read_text()
    assert len(text) <= limit
    lines = assert_valid_csv(text)
    assert lines[0] == HEADER.rstrip("\n")
    assert len(lines) >= 2
