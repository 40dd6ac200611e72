"""Domoticz output against the fake Domoticz: schedule, coalescing, failures, legacy mode, setup."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import shutil
import ssl
import subprocess
import time
import tomllib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.fake_domoticz import FakeDomoticz, Fault, LuaCall
from vedirect_async.config import ConfigError, DomoticzDevice
from vedirect_async.decoder import Decoder
from vedirect_async.fields import lookup
from vedirect_async.hub import Hub, OutputHealth, OutputState
from vedirect_async.outputs.domoticz import (
    DomoticzConfig,
    DomoticzOutput,
    cli_domoticz,
    format_value,
    legacy_json,
)
from vedirect_async.parser import Parser, TextBlock
from vedirect_async.reading import UNAVAILABLE, Reading, Value
from vedirect_async.settings import load_config

V = DomoticzDevice(idx=1, field="V", kind="voltage")


def _reading(
    device: str = "bmv", raw: tuple[tuple[str, str], ...] = (), **values: Value
) -> Reading:
    return Reading(device, datetime.now(UTC), time.monotonic(), values=values, raw=raw)


def _output(fake: FakeDomoticz, *rows: DomoticzDevice, **kw: Any) -> DomoticzOutput:
    settings: dict[str, Any] = {
        "enabled": True,
        "url": fake.url,
        "interval": 0.05,
        "timeout": 1.0,
        "probe": False,
        "backoff_max": 0.2,
        "devices": list(rows or (V,)),
    }
    settings.update(kw)
    return DomoticzOutput(DomoticzConfig(**settings), ["bmv"])


@contextlib.asynccontextmanager
async def _running(output: DomoticzOutput, hub: Hub) -> AsyncIterator[OutputState]:
    readings = output.subscribe(hub)
    state = hub.output(output.name)
    task = asyncio.create_task(output.run(readings, state))
    try:
        yield state
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await output.aclose()


async def _until(predicate: Callable[[], bool], within: float = 5.0) -> None:
    """Wait (bounded) for a state change made by another task."""
    async with asyncio.timeout(within):
        while not predicate():  # noqa: ASYNC110 - OutputState has no event to wait on
            await asyncio.sleep(0.005)


# -- formatting ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "value", "field", "power", "expected"),
    [
        ("voltage", 12.645, "voltage", None, (0, "12.645")),
        ("voltage", -0.0001, "voltage", None, (0, "0.000")),
        ("current", -3.21, "current", None, (0, "-3.210")),
        ("percentage", 87.46, "soc", None, (0, "87.5")),
        ("custom", -12.345, "consumed_ah", None, (0, "-12.345")),
        ("custom", float("inf"), "time_to_go", None, (0, "99999.000")),  # the sentinel
        ("kwh", 123.45, "history_discharged_energy", -40.5, (0, "-40.5;123450")),
        ("kwh", 1.0, "history_charged_energy", None, (0, "0.0;1000")),
        ("usage", 250, "panel_power", None, (0, "250.0")),
        ("temperature", 21.3, "temperature", None, (0, "21.30")),
        ("text", "Bulk charge ok+", "charger_state", None, (0, "Bulk charge ok+")),
        ("text", True, "relay", None, (0, "ON")),
        ("alert", True, "alarm", None, (4, "Alarm")),
        ("alert", (), "alarm_reason", None, (1, "No alarm")),
        ("alert", ("low voltage", "low soc"), "alarm_reason", None, (4, "low voltage, low soc")),
        ("voltage", UNAVAILABLE, "voltage", None, None),
        ("percentage", "abc", "soc", None, None),
    ],
)
def test_format_value(
    kind: str, value: Value, field: str, power: Value | None, expected: tuple[int, str] | None
) -> None:
    """Each kind gets Domoticz's svalue/nvalue form with '.' decimals; unpostable → None."""
    assert format_value(kind, value, field, power) == expected


def test_alert_of_an_enum_uses_code_zero_as_quiet() -> None:
    """An enum alert (charger ERR) is green for its code-0 name and red otherwise."""
    error = lookup("ERR")
    assert error is not None
    quiet = error.table[0]
    assert format_value("alert", quiet, "error") == (1, quiet)
    assert format_value("alert", error.table[2], "error") == (4, error.table[2])


# -- posting ------------------------------------------------------------------------------------


async def test_posts_each_mapping_with_encoding() -> None:
    """Every mapped field reaches its idx; '+' and spaces survive Domoticz's URL decoding."""
    rows = (
        V,
        DomoticzDevice(idx=2, field="current", kind="current"),
        DomoticzDevice(idx=3, field="SOC", kind="percentage"),
        DomoticzDevice(idx=4, field="H17", kind="kwh", power_field="P"),
        DomoticzDevice(idx=5, field="note", kind="text"),
        DomoticzDevice(idx=6, field="Alarm", kind="alert"),
    )
    async with FakeDomoticz() as fake:
        for idx, sub in enumerate(("Voltage", "Current", "Percentage", "kWh", "Text", "Alert"), 1):
            fake.add_device(idx, f"d{idx}", subtype=sub)
        hub = Hub()
        output = _output(fake, *rows, interval=10.0)
        async with _running(output, hub) as state:
            hub.publish(
                _reading(
                    voltage=12.645,
                    current=-3.21,
                    soc=87.5,
                    history_discharged_energy=12.34,
                    power=-40,
                    note="Bulk+float = ok & more",
                    alarm=False,
                )
            )
            await fake.wait_for(lambda: len(fake.updates) == 6)
            await _until(lambda: state.successes == 1)
        assert {u.idx: (u.nvalue, u.svalue) for u in fake.updates} == {
            1: (0, "12.645"),
            2: (0, "-3.210"),
            3: (0, "87.5"),
            4: (0, "-40.0;12340"),
            5: (0, "Bulk+float = ok & more"),
            6: (1, "No alarm"),
        }
        text = next(r for r in fake.requests() if r.params["idx"] == "5")
        assert "%2B" in text.query
        assert "+" not in text.query
        assert state.health is OutputHealth.OK
        assert fake.max_concurrency == 1


async def test_drift_no_lag_growth_with_slow_server() -> None:
    """Slow on every other request: ticks are skipped, never accumulated, and lag stays bounded."""
    interval = 0.05
    async with FakeDomoticz() as fake:
        fake.add_device(1, "V")
        fake.delay = lambda n: 0.08 if n % 2 == 0 else 0.0  # slower than the interval
        hub = Hub()
        published: list[tuple[float, int]] = []
        output = _output(fake, interval=interval)

        async def publisher() -> None:
            for n in range(1, 100_000):
                published.append((time.monotonic(), n))
                hub.publish(_reading(voltage=n / 1000))
                await asyncio.sleep(0.01)

        async with _running(output, hub):
            feeder = asyncio.create_task(publisher())
            began = time.monotonic()
            await fake.wait_requests(30, within=10)
            elapsed = time.monotonic() - began
            feeder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await feeder
        sent_at = {n: t for t, n in published}
        lags = [u.at - sent_at[round(float(u.svalue) * 1000)] for u in fake.updates]
        # every post carries a value at most one interval + one slow reply old, start to end
        assert max(lags) < interval + 0.08 + 0.1
        half = len(lags) // 2
        assert max(lags[half:]) < max(lags[:half]) + 0.05  # no growth
        assert output.ticks_skipped > 0
        # no catch-up burst: never more rounds than ticks that fit in the time
        assert output.rounds <= elapsed / interval + 2
        assert fake.max_concurrency == 1


async def test_outage_then_recovery_posts_newest_once(caplog: pytest.LogCaptureFixture) -> None:
    """Domoticz down for many intervals: one log line, FIFO unharmed, newest value first."""
    caplog.set_level(logging.INFO, "vedirect_async.outputs.domoticz")
    async with FakeDomoticz() as fake:
        fake.add_device(1, "V")
        hub = Hub()
        csv_like = hub.subscribe("csv-like", maxsize=100_000)
        counter = 0

        def publish() -> None:
            nonlocal counter
            counter += 1
            hub.publish(_reading(voltage=counter / 1000))

        output = _output(fake)
        async with _running(output, hub) as state:
            publish()
            await fake.wait_requests(1)
            await fake.stop()
            down_at = time.monotonic()
            while time.monotonic() - down_at < 0.6:  # 12 intervals without Domoticz
                publish()
                await asyncio.sleep(0.005)
            assert state.health is OutputHealth.FAILED
            assert "connection refused" in state.reason
            last_before = counter
            before = len(fake.requests())
            await fake.start()
            await fake.wait_requests(before + 1)
            first = fake.requests()[before]
            assert round(float(first.params["svalue"]) * 1000) == last_before
            await _until(lambda: state.health is OutputHealth.OK)
            for _ in range(5):  # keep going a few intervals after the recovery
                publish()
                await asyncio.sleep(0.02)
            after = fake.requests()[before:]
            span = after[-1].at - first.at
            assert len(after) <= span / 0.05 + 2  # no burst of queued posts after recovery
        warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
        refused = [r for r in warnings if "connection refused" in r.getMessage()]
        assert len(refused) == 1  # one line per failure episode (the shared Delivery)
        assert any("recovered after" in r.getMessage() for r in caplog.records)
        assert fake.max_concurrency == 1
        assert len(csv_like) == counter  # the FIFO consumer kept every reading
        assert csv_like.dropped == 0


async def test_change_is_posted_at_once_and_unchanged_is_not_reposted() -> None:
    """Alarm change → at once, the changed idx only; unchanged values wait for the heartbeat."""
    rows = (V, DomoticzDevice(idx=2, field="alarm", kind="alert"))
    async with FakeDomoticz() as fake:
        fake.add_device(1, "V")
        fake.add_device(2, "Alarm", subtype="Alert")
        hub = Hub()
        output = _output(fake, *rows, interval=30.0)
        async with _running(output, hub):
            hub.publish(_reading(voltage=12.5, alarm=False))
            await fake.wait_for(lambda: len(fake.updates) == 2)  # first reading: at once
            hub.publish(_reading(voltage=12.5, alarm=True))
            await fake.wait_for(lambda: len(fake.updates) == 3, within=3)  # long before 30 s
        assert (fake.updates[-1].idx, fake.updates[-1].nvalue) == (2, 4)


async def test_stale_reading_is_not_reposted(caplog: pytest.LogCaptureFixture) -> None:
    """A device silent for longer than max(2 x interval, 60 s) is not posted: no fake liveness."""
    caplog.set_level(logging.INFO, "vedirect_async.outputs.domoticz")
    async with FakeDomoticz() as fake:
        fake.add_device(1, "V")
        hub = Hub()
        async with _running(_output(fake, heartbeat=0.0), hub):
            old = Reading("bmv", datetime.now(UTC), time.monotonic() - 120, values={"voltage": 1})
            hub.publish(old)
            await _until(lambda: "no new reading for" in caplog.text)
            hub.publish(_reading(voltage=12.0))
            await fake.wait_for(lambda: len(fake.updates) == 1)
        assert fake.updates[0].svalue == "12.000"
        assert "readings again" in caplog.text


# -- failure classes ----------------------------------------------------------------------------

FailureSetup = Callable[[FakeDomoticz], None]


def _no_trust(fake: FakeDomoticz) -> None:
    fake.trusted = False


@pytest.mark.parametrize(
    ("setup", "extra", "message", "health"),
    [
        (lambda f: setattr(f, "fault", Fault.HANG), {"timeout": 0.2}, "no answer", "failed"),
        (
            lambda f: setattr(f, "fault", Fault.CLOSE),
            {},
            "closed the connection without a reply",
            "failed",
        ),
        (_no_trust, {}, "Trusted Networks", "failed"),
        (
            _no_trust,
            {"username": "admin", "password": "domoticz"},
            "Allow Basic-Auth authentication over plain HTTP",
            "failed",
        ),
        (lambda f: setattr(f, "fault", Fault.FORBIDDEN), {}, "403 Forbidden", "failed"),
        # the only idx rejected: nothing reaches Domoticz, which is a failure (issue 13)
        (lambda f: f.err_idx.add(1), {}, "ERR for bmv.V → idx 1", "failed"),
        (lambda f: None, {"url_suffix": "/old"}, "404 Not Found", "failed"),
        (lambda f: setattr(f, "fault", Fault.NON_JSON), {}, "not Domoticz JSON", "failed"),
        (lambda f: setattr(f, "fault", Fault.HTTP500), {}, "HTTP 500", "failed"),
    ],
    ids=["timeout", "empty-reply", "401", "401-plain", "403", "err-idx", "404", "non-json", "500"],
)
async def test_failure_class_logged_once_with_reason(
    caplog: pytest.LogCaptureFixture,
    setup: FailureSetup,
    extra: dict[str, Any],
    message: str,
    health: str,
) -> None:
    """Each failure class gives its own log line once (not per retry) and a health reason."""
    caplog.set_level(logging.INFO, "vedirect_async.outputs.domoticz")
    async with FakeDomoticz() as fake:
        fake.add_device(1, "V")
        setup(fake)
        settings = dict(extra)
        suffix = settings.pop("url_suffix", "")
        hub = Hub()
        output = _output(fake, **settings, url=fake.url + suffix, heartbeat=0.0)
        async with _running(output, hub) as state:
            for n in range(3):
                hub.publish(_reading(voltage=12 + n))
                await fake.wait_requests(n + 2, command="", within=5)
            await _until(lambda: message in state.reason)
            if fake.fault is Fault.HANG:
                await fake.stop()
        assert message in state.reason
        assert state.health.value == health
        lines = [r for r in caplog.records if message in r.getMessage()]
        assert len(lines) == 1, [r.getMessage() for r in caplog.records]
        assert fake.max_concurrency == 1


async def test_refused_is_a_failure_not_a_crash(caplog: pytest.LogCaptureFixture) -> None:
    """Nothing listening: logged once as refused, retried with backoff, the task keeps running."""
    fake = FakeDomoticz()
    await fake.start()
    await fake.stop()
    hub = Hub()
    output = _output(fake)
    async with _running(output, hub) as state:
        hub.publish(_reading(voltage=12.0))
        await _until(lambda: state.failures >= 3)
        assert "connection refused" in state.reason
    assert sum("connection refused" in r.getMessage() for r in caplog.records) == 1


async def test_dropped_connection_is_retried_once() -> None:
    """A connection closed without reply is retried at once; the retry delivers the value."""
    async with FakeDomoticz() as fake:
        fake.add_device(1, "V")
        fake.fail_next(Fault.CLOSE)
        hub = Hub()
        async with _running(_output(fake, interval=10.0), hub) as state:
            hub.publish(_reading(voltage=12.3))
            await fake.wait_for(lambda: len(fake.updates) == 1)
            await _until(lambda: state.successes == 1)
        assert [r.status for r in fake.requests()] == [0, 200]
        assert state.health is OutputHealth.OK


async def test_password_from_file_never_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """password_file is used for Basic auth; a rejected password never shows in logs or reason."""
    secret = tmp_path / "pw"
    secret.write_text("s3cret-pw\n")
    caplog.set_level(logging.DEBUG)
    async with FakeDomoticz(
        trusted=False, allow_plain_basic=True, users={"admin": ("s3cret-pw", 2)}
    ) as fake:
        fake.add_device(1, "V")
        hub = Hub()
        output = _output(fake, username="admin", password_file=str(secret), interval=10.0)
        async with _running(output, hub):
            hub.publish(_reading(voltage=12.0))
            await fake.wait_for(lambda: len(fake.updates) == 1)
        assert fake.updates[0].user == "admin"
        fake.users["admin"] = ("changed", 2)
        hub = Hub()
        output = _output(fake, username="admin", password="s3cret-pw", interval=10.0)
        async with _running(output, hub) as state:
            hub.publish(_reading(voltage=12.1))
            await _until(lambda: state.health is OutputHealth.FAILED)
        assert "401" in state.reason
    assert "s3cret" not in caplog.text
    assert "s3cret" not in state.reason


async def test_probe_logs_version_and_missing_idx(caplog: pytest.LogCaptureFixture) -> None:
    """The start-up probe logs the version and warns about a missing idx or a wrong device type."""
    caplog.set_level(logging.INFO, "vedirect_async.outputs.domoticz")
    async with FakeDomoticz() as fake:
        fake.add_device(1, "Status", subtype="Text")
        hub = Hub()
        rows = (V, DomoticzDevice(idx=42, field="V", kind="voltage"))
        output = _output(fake, *rows, probe=True)
        async with _running(output, hub):
            await fake.wait_requests(2, command="getdevices")
            await _until(lambda: "does not exist" in caplog.text)
    assert "is Domoticz 2025.1 (build 16785)" in caplog.text
    assert "idx 1 (bmv.V) is a General/Text device, but kind = 'voltage'" in caplog.text


# -- legacy udevices ---------------------------------------------------------------------------


def _old_script_json(blocks: list[TextBlock]) -> str:
    """What the old vedirect.py sent: its dict of raw strings, json.dumps, spaces removed."""
    data: dict[str, str] = {}
    for block in blocks:
        for label, value in block.fields:
            if label != b"Checksum":
                data[label.decode()] = value.decode()
    return json.dumps(data, ensure_ascii=False).replace(" ", "")


async def test_legacy_udevices_sends_the_old_scripts_json(captures_dir: Path) -> None:
    """The Lua hook gets the same data= JSON the old script sent; ap_bmv.lua's mapping applies."""
    stream = (captures_dir / "karioja-vedirect__bvm702.dump").read_bytes()
    events = Decoder("bmv").feed(stream, time.monotonic())
    reading = [e for e in events if isinstance(e, Reading)][-1]
    blocks = [e for e in Parser().feed(stream) if isinstance(e, TextBlock)]  # the old script's
    calls: list[LuaCall] = []

    def ap_bmv(fake: FakeDomoticz, call: LuaCall) -> None:  # the old parser's table
        calls.append(call)
        data = json.loads(call.uri["data"])
        for key, idx, factor in (("V", 60, 0.001), ("I", 61, 0.001), ("SOC", 63, 0.1)):
            fake.update_device(idx, "", str(int(data[key]) * factor))

    async with FakeDomoticz(scripts={"ap_bmv.lua": ap_bmv}) as fake:
        for idx in (60, 61, 63):
            fake.add_device(idx, f"d{idx}")
        hub = Hub()
        output = _output(fake, mode="udevices", devices=[], interval=10.0)
        async with _running(output, hub):
            hub.publish(reading)
            await fake.wait_for(lambda: len(calls) == 1)
    raw = dict(reading.raw)
    assert calls[0].script == "ap_bmv.lua"
    assert calls[0].uri["data"] == legacy_json(reading)
    assert json.loads(calls[0].uri["data"]) == {k: v for k, v in raw.items() if k != "Checksum"}
    assert " " not in calls[0].uri["data"]
    # byte for byte what the old script built from one update (a main block + its H block)
    old = {_old_script_json(blocks[i : i + 2]) for i in range(len(blocks) - 1)}
    assert calls[0].uri["data"] in old
    assert fake.devices[60].svalue == str(int(raw["V"]) * 0.001)


async def test_legacy_missing_script_is_reported() -> None:
    """udevices ERR (no such Lua parser): nothing reaches Domoticz, failed, naming the script."""
    async with FakeDomoticz(scripts={}) as fake:
        hub = Hub()
        output = _output(fake, mode="udevices", devices=[], interval=10.0)
        async with _running(output, hub) as state:
            hub.publish(_reading(raw=(("V", "12800"), ("I", "-100"))))
            await fake.wait_requests(1, command="udevices")
            await _until(lambda: state.health is OutputHealth.FAILED)
        assert "lua_parsers/ap_bmv.lua" in state.reason


# -- configuration -------------------------------------------------------------------------------


def test_device_row_must_name_a_device_when_there_are_several() -> None:
    """An empty device in a row is only allowed with a single [[device]]."""
    config = DomoticzConfig(enabled=True, devices=[V])
    with pytest.raises(ConfigError, match="name one of a, b"):
        DomoticzOutput(config, ["a", "b"])
    with pytest.raises(ConfigError, match="expected one of a"):
        DomoticzOutput(
            DomoticzConfig(devices=[DomoticzDevice(idx=1, device="x", field="V")]), ["a"]
        )


# -- domoticz setup ------------------------------------------------------------------------------


def _setup(args: argparse.Namespace) -> int:
    """``domoticz setup`` as the CLI runs it: the file in ``args.config``, every section."""
    return cli_domoticz(args, lambda: load_config(args.config))


def _args(tmp_path: Path, url: str, **kw: Any) -> argparse.Namespace:
    config = tmp_path / "c.toml"
    config.write_text('[[device]]\nname = "bmv"\nport = "simulator:bmv712"\n')
    values: dict[str, Any] = {
        "config": str(config),
        "device": None,
        "kind": None,
        "url": url,
        "username": None,
        "password_env": "VEDIRECT_TEST_NO_SUCH_VARIABLE",
        "hardware_name": "vedirect",
        "dry_run": False,
        "force": False,
    }
    values.update(kw)
    return argparse.Namespace(**values)


async def test_setup_creates_devices_and_prints_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """setup makes a Dummy hardware and one device per field and prints a loadable config."""
    async with FakeDomoticz() as fake:
        code = await asyncio.to_thread(_setup, _args(tmp_path, fake.url))
    out = capsys.readouterr().out
    assert code == 0
    assert fake.hardware[2] == "vedirect"
    printed = tomllib.loads(out)["domoticz"]
    rows = printed["devices"]
    assert {row["field"] for row in rows} >= {"V", "I", "SOC", "CE"}
    for row in rows:
        device = fake.devices[row["idx"]]
        assert device.hardware_id == 2
    soc = next(r for r in rows if r["field"] == "SOC")
    assert fake.devices[soc["idx"]].subtype == "Percentage"
    consumed = next(r for r in rows if r["field"] == "CE")
    assert fake.devices[consumed["idx"]].sensor_unit == "Ah"
    config_file = tmp_path / "full.toml"
    config_file.write_text(out + '\n[[device]]\nname = "bmv"\nport = "simulator:bmv712"\n')
    loaded = load_config(config_file, environ={})
    section = loaded.section("domoticz", DomoticzConfig)
    assert [d.idx for d in section.devices] == [r["idx"] for r in rows]
    DomoticzOutput(section, ["bmv"])  # the printed rows resolve


async def test_setup_dry_run_sends_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--dry-run prints the requests and sends none."""
    async with FakeDomoticz() as fake:
        code = await asyncio.to_thread(_setup, _args(tmp_path, fake.url, dry_run=True))
        assert fake.received == []
    out = capsys.readouterr().out
    assert code == 0
    assert "param=addhardware&htype=15" in out
    assert out.count("param=createdevice") == 9
    assert "sensoroptions=1;Ah" in out


async def test_setup_needs_admin(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A non-admin user gets a clear error and exit code 1."""
    users = {"admin": ("a", 2), "bob": ("b", 1)}
    async with FakeDomoticz(trusted=False, allow_plain_basic=True, users=users) as fake:
        args = _args(tmp_path, fake.url.replace("http://", "http://bob:b@"))
        code = await asyncio.to_thread(_setup, args)
    assert code == 1
    assert "needs an admin" in capsys.readouterr().err


# -- the shipped Lua parser (contrib/domoticz) ------------------------------------------------

LUA = shutil.which("lua5.4") or shutil.which("lua5.3") or shutil.which("lua")
PARSER = Path(__file__).resolve().parent.parent / "contrib" / "domoticz" / "vedirect_bmv.lua"
# Stand-ins for the two functions Domoticz gives a Lua parser (flat JSON objects only).
HARNESS = """
function domoticz_applyJsonPath(json, path)
  local key = string.sub(path, 2)
  local quoted = string.match(json, '"' .. key .. '":"([^"]*)"')
  return quoted or string.match(json, '"' .. key .. '":([^,}]*)')
end
function domoticz_updateDevice(idx, nvalue, svalue)
  print(idx .. "|" .. nvalue .. "|" .. svalue)
end
uri = { data = arg[1], script = "vedirect_bmv.lua" }
request = { content = "" }
dofile(arg[2])
"""


def _run_lua(fake: FakeDomoticz, call: LuaCall) -> None:
    """Plays Domoticz: runs the shipped parser on the request and applies its updates."""
    assert LUA is not None
    done = subprocess.run(
        [LUA, "-", call.uri["data"], str(PARSER)],
        input=HARNESS,
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    )
    for line in done.stdout.splitlines():
        idx, nvalue, svalue = line.split("|")
        fake.update_device(int(idx), nvalue, svalue)


@pytest.mark.skipif(LUA is None, reason="no Lua interpreter (apt-get install lua5.4)")
async def test_shipped_lua_parser_updates_devices() -> None:
    """Legacy mode end to end: our data= JSON through contrib's Lua parser into the devices."""
    raw = (("PID", "0x203"), ("V", "12650"), ("I", "-1230"), ("SOC", "---"), ("H18", "8527"))
    async with FakeDomoticz(scripts={"vedirect_bmv.lua": _run_lua}) as fake:
        for idx in range(60, 67):
            fake.add_device(idx, f"d{idx}")
        hub = Hub()
        output = _output(
            fake, mode="udevices", script="vedirect_bmv.lua", devices=[], interval=10.0
        )
        async with _running(output, hub):
            hub.publish(_reading(raw=raw))
            await fake.wait_for(lambda: len(fake.updates) == 3)
    assert {u.idx: u.svalue for u in fake.updates} == {60: "12.650", 61: "-1.230", 64: "85.27"}


@pytest.mark.skipif(LUA is None, reason="no Lua interpreter (apt-get install lua5.4)")
async def test_lua_parser_mistakes_are_silent(caplog: pytest.LogCaptureFixture) -> None:
    """What docs/domoticz.md says a real Domoticz 2025.1 does: an idx in the parser that does
    not exist, or a label the data does not carry (a typo), still gets ``OK``; nothing is
    logged and the output cannot tell (only Domoticz's "Last Seen" shows it)."""
    caplog.set_level(logging.INFO, "vedirect_async")
    raw = (("PID", "0x203"), ("V", "12650"), ("I", "-1230"))  # no H18: like a label typo
    async with FakeDomoticz(scripts={"vedirect_bmv.lua": _run_lua}) as fake:
        fake.add_device(60, "V")  # idx 61 (I) is missing: a wrong idx in DEVICES
        hub = Hub()
        output = _output(
            fake, mode="udevices", script="vedirect_bmv.lua", devices=[], interval=10.0
        )
        async with _running(output, hub) as state:
            hub.publish(_reading(raw=raw))
            await fake.wait_for(lambda: len(fake.lua_calls) == 1)
            await _until(lambda: state.successes >= 1)
        assert state.health is OutputHealth.OK
    assert {u.idx: u.svalue for u in fake.updates} == {60: "12.650"}
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


# -- https --------------------------------------------------------------------------------------


@pytest.fixture
def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (like Domoticz's server_cert.pem), via openssl."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return cert, key


async def test_https_verifies_the_certificate_by_default(
    self_signed: tuple[Path, Path],
) -> None:
    """A self-signed certificate is refused by default, accepted with ca_file; Basic auth works."""
    cert, key = self_signed
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    async with FakeDomoticz(trusted=False, ssl_context=context) as fake:
        fake.add_device(1, "V")
        assert fake.url.startswith("https://")
        hub = Hub()
        output = _output(fake, username="admin", password="domoticz", interval=10.0)
        async with _running(output, hub) as state:
            hub.publish(_reading(voltage=12.0))
            await _until(lambda: state.health is OutputHealth.FAILED)
        assert "TLS certificate" in state.reason
        assert "ca_file" in state.reason
        assert fake.updates == []
        hub = Hub()
        output = _output(
            fake, username="admin", password="domoticz", interval=10.0, ca_file=str(cert)
        )
        async with _running(output, hub) as state:
            hub.publish(_reading(voltage=12.5))
            await fake.wait_for(lambda: len(fake.updates) == 1)
        assert (fake.updates[0].user, fake.updates[0].svalue) == ("admin", "12.500")
