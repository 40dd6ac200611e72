"""CSV output: byte-exact rows, one header, whole lines through cancellation, full disk,
permission denied, a read-only filesystem, a removed directory, rotation, and the real service
(stopped by SIGTERM; with a full disk; with a CSV directory it cannot write: /health 503)."""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import importlib
import json
import os
import re
import resource
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from vedirect_async.config import Config, ConfigError, CsvConfig
from vedirect_async.csv_columns import device_path, format_value, parse_columns
from vedirect_async.decoder import Decoder
from vedirect_async.hub import Hub, OutputHealth, OutputState, Subscription
from vedirect_async.outputs import REGISTRY
from vedirect_async.outputs.csv_log import CsvOutput, csv_output
from vedirect_async.outputs.delivery import Schedule
from vedirect_async.reading import UNAVAILABLE, Reading, Value
from vedirect_async.settings import load_config

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
    assert REGISTRY["csv"].factory is csv_output
    assert REGISTRY["csv"].kind is CsvConfig
    assert isinstance(csv_output(Config()), CsvOutput)
    assert csv_output(Config(sections={"csv": CsvConfig(enabled=False)})) is None


def test_one_file_per_device() -> None:
    """One device writes the configured path; several get {device} or a _<device> suffix."""
    assert device_path("data.csv", "bmv", ["bmv"]) == Path("data.csv")
    assert device_path("data.csv", "mppt", ["bmv", "mppt"]) == Path("data_mppt.csv")
    assert device_path("/x/{device}/log.csv", "bmv", ["bmv"]) == Path("/x/bmv/log.csv")


def test_next_tick_is_absolute_and_skips_missed_ticks() -> None:
    """Ticks stay on start + k * interval; a late wake-up skips to the next future tick.
    (next_tick became the shared delivery Schedule: the same three cases through it.)"""
    schedule = Schedule(30.0, clock=lambda: 100.0)
    schedule.start(100.0)
    assert schedule.due == 130.0
    schedule.done(131.0)
    assert schedule.due == 160.0
    schedule.done(250.5)
    assert schedule.due == 280.0  # ticks 160..250 missed, not caught up


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
    """The decoder over the capture; update k (from its k-th PID block) is stamped BASE + k s."""
    decoder = Decoder("bmv")
    readings: list[Reading] = []
    for k, part in enumerate(data.split(b"\r\nPID\t"), -1):  # each update ends in its part
        chunk = part if k < 0 else b"\r\nPID\t" + part
        events = decoder.feed(chunk, float(k), BASE + timedelta(seconds=k))
        readings += [e for e in events if isinstance(e, Reading)]
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
        elif scenario == "read_only":  # in the test's own mount namespace: remount read-write
            remount = await asyncio.create_subprocess_exec(
                "mount", "-o", "remount,bind,rw", str(path.parent)
            )
            assert await asyncio.wait_for(remount.wait(), 10) == 0
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
    counters = _counters(report)
    assert counters["disk_full"] >= 1
    assert counters["rows"] == 6
    assert report["other_received"] == 6
    assert path.read_text() == HEADER + "".join(bmv_row(k) for k in range(6))


def test_permission_denied_fails_then_recovers(tmp_path: Path) -> None:
    """A directory the service may not write: *failed* at once with the reason (issue 13: it
    cannot write at all, so /health must say so), no crash, and the rows written once
    permission is back (as root, DAC override is dropped with setpriv)."""
    directory = tmp_path / "ro"
    directory.mkdir()
    directory.chmod(0o500)
    path = directory / "vedirect_data.csv"
    report = _run_child("permission", path, _unprivileged_prefix())
    assert report["health"] == "failed"
    assert "not writable" in str(report["reason"])
    counters = _counters(report)
    assert counters["permission_denied"] >= 1
    assert report["alive"] is True
    assert report["during"] == ""
    assert report["after"] == "ok"
    assert path.read_text() == HEADER + "".join(bmv_row(k) for k in range(6))


def _unprivileged_prefix() -> list[str]:
    """As root, drop the capabilities that ignore file permissions (uid 10001 has none)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root and setpriv (util-linux) is missing to drop DAC override")
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search"]


def _counters(report: dict[str, object]) -> dict[str, int]:
    counters = report["counters"]
    assert isinstance(counters, dict)
    return counters


def _mount_namespace_prefix() -> list[str]:
    """A command prefix that runs the rest in a private mount namespace (a user namespace too
    when not root); skips the test when this machine allows neither."""
    unshare = shutil.which("unshare")
    if unshare is None or shutil.which("mount") is None:
        pytest.skip("unshare/mount (util-linux) missing: no read-only mount to test with")
    flags = ["-m"] if os.geteuid() == 0 else ["-r", "-m"]
    probe = [unshare, *flags, "--propagation", "private", "true"]
    if subprocess.run(probe, capture_output=True, timeout=10, check=False).returncode != 0:
        pytest.skip("this machine allows no private mount namespace (unshare -m failed)")
    return [unshare, *flags, "--propagation", "private"]


def test_read_only_filesystem_is_counted_as_read_only(tmp_path: Path) -> None:
    """Issue 16 item 10: EROFS is its own cause (``read_only``), not ``permission_denied``;
    failed at once like permission denied; rows written once the mount is read-write again.
    The directory is bind-mounted read-only in a private mount namespace of the child."""
    directory = tmp_path / "ro"
    directory.mkdir()
    script = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"'
    prefix = [*_mount_namespace_prefix(), "sh", "-c", script, str(directory)]
    path = directory / "vedirect_data.csv"
    report = _run_child("read_only", path, prefix)
    assert report["health"] == "failed"
    assert "read-only filesystem" in str(report["reason"])
    counters = _counters(report)
    assert counters["read_only"] >= 1
    assert "permission_denied" not in counters
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


def _service_config(tmp_path: Path, csv: Path, http: str) -> Path:
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        '[[device]]\nname = "bmv"\nport = "simulator:bmv712"\n\n'
        f'[csv]\npath = "{csv}"\ninterval = 0\n\n[http]\n{http}\n'
    )
    return cfg


@contextlib.contextmanager
def _service(
    cfg: Path, prefix: Sequence[str] = (), **popen: Any
) -> Iterator[subprocess.Popen[bytes]]:
    """The real service (``python -m vedirect_async``) on ``cfg``; killed if still running."""
    proc = subprocess.Popen(
        [*prefix, sys.executable, "-m", "vedirect_async", "--config", str(cfg)],
        cwd=ROOT,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        **popen,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _sigterm(proc: subprocess.Popen[bytes]) -> str:
    """SIGTERM; asserts exit 0 within 10 s; returns what the service wrote to stderr."""
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err.decode(errors="replace")
    return err.decode(errors="replace")


def _stderr_until(proc: subprocess.Popen[bytes], wanted: Sequence[str], within: float) -> str:
    """Read the service's stderr (waiting on the pipe, at most ``within`` s in all) until each
    of ``wanted`` has appeared in it; return what was read (whole lines)."""
    assert proc.stderr is not None
    fd, deadline, text = proc.stderr.fileno(), time.monotonic() + within, ""
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while not all(want in text for want in wanted) or not text.endswith("\n"):
            ready = selector.select(max(0.0, deadline - time.monotonic()))
            assert ready, f"not all of {wanted} within {within} s in: {text}"
            chunk = os.read(fd, 65536)  # unbuffered: what is not read here, communicate() gets
            assert chunk, f"the service died: {text}"
            text += chunk.decode(errors="replace")
    return text


def _health(port: int, path: str = "/api/health") -> tuple[int, dict[str, Any]]:
    url = f"http://127.0.0.1:{port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


@pytest.mark.skipif(not _service_ready(), reason="vedirect_async.service has no cli_run yet")
def test_service_sigterm_leaves_complete_lines(tmp_path: Path) -> None:
    """The real service on the BMV-712 simulator, CSV at interval 0, SIGTERM mid-run: exit 0
    and every line of the CSV complete."""
    csv = tmp_path / "vedirect_data.csv"
    with _service(_service_config(tmp_path, csv, "enabled = false")) as proc:
        deadline = time.monotonic() + 20
        while (not csv.exists() or csv.read_text().count("\n") < 3) and proc.poll() is None:
            assert time.monotonic() < deadline, "no CSV rows from the service"
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        _sigterm(proc)
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
    port = _free_port()
    cfg = _service_config(tmp_path, csv, f"port = {port}")
    limit = 200  # the header and about three rows
    # no threads in this test process, so preexec_fn is safe
    with _service(cfg, preexec_fn=_limit_file_size(limit)) as proc:
        # the failure is logged in the same step that sets the output's health
        _stderr_until(proc, ["http: serving on", "disk full"], within=25)
        csv_state = _health(port)[1]["outputs"]["csv"]
        assert csv_state["health"] == "degraded", csv_state
        assert "disk full" in str(csv_state["reason"])
        _sigterm(proc)
    text = csv.read_text()
    assert len(text) <= limit
    lines = assert_valid_csv(text)
    assert lines[0] == HEADER.rstrip("\n")
    assert len(lines) >= 2


@pytest.mark.skipif(not _service_ready(), reason="vedirect_async.service has no cli_run yet")
def test_unwritable_csv_directory_makes_health_503_with_one_clear_line(tmp_path: Path) -> None:
    """Issue 13: a CSV directory the service cannot write at all (uid 10001 on a root-owned
    bind mount) must not leave it healthy forever: /health answers 503 with one clear line
    naming the file and the cause, one WARNING is logged, readings keep flowing, and SIGTERM
    still exits 0."""
    data = tmp_path / "data"
    data.mkdir()
    data.chmod(0o555)  # root's fresh bind mount, as seen by the service's user
    csv = data / "vedirect_data.csv"
    port = _free_port()
    cfg = _service_config(tmp_path, csv, f"port = {port}")
    with _service(cfg, _unprivileged_prefix()) as proc:
        # the failure is logged in the same step that sets the output's health, so once both
        # lines are out, /health must already say so
        early = _stderr_until(proc, ["http: serving on", "not writable"], within=25)
        status, body = _health(port, "/health")
        assert status == 503, body
        csv_lines = [p for p in body["problems"] if "csv" in p]
        assert len(csv_lines) == 1, body["problems"]
        assert csv_lines[0].startswith("output csv: failed")
        assert f"{csv}: not writable" in csv_lines[0]
        assert body["outputs"]["csv"]["health"] == "failed"
        assert all(device["fresh"] for device in body["devices"].values())  # readings flow
        err = early + _sigterm(proc)
    warnings = [line for line in err.splitlines() if "not writable" in line]
    assert len(warnings) == 1, warnings  # the episode's first failure, once
    assert not csv.exists()
