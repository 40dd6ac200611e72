"""Adding an output is one module plus one registry line (issue 12): a small output defined in
this test - its section, its validation, its factory and a CLI subcommand - registered next
to the shipped ones, configured from a config.toml (and the environment), validated with a
file:line error, run by the real service on real readings and reported in /health."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import aiohttp
import pytest

from tests.webfeed import free_port
from vedirect_async import cli
from vedirect_async.config import Config, ConfigError, Fail, doc
from vedirect_async.errors import SubscriptionClosed
from vedirect_async.hub import OutputState, Subscription
from vedirect_async.outputs import REGISTRY, OutputCommand, OutputSpec, build_outputs
from vedirect_async.outputs.base import Output
from vedirect_async.service import Service
from vedirect_async.settings import load_config

# -- the output, all of it ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProbeConfig:
    """``[probe]``: counts readings of one device."""

    enabled: bool = field(default=False, metadata=doc("count readings"))
    device: str = field(default="bmv", metadata=doc("which [[device]] to count"))
    label: str = field(default="probe", metadata=doc("shown in its subcommand's answer"))
    every: int = field(default=1, metadata=doc("count every N-th reading", min=1, max=100))


def validate_probe(section: ProbeConfig, config: Config, fail: Fail) -> None:
    names = [device.name for device in config.device]
    if section.device not in names:
        fail("device", section.device, f"a [[device]] name ({', '.join(names)})")


class ProbeOutput(Output):
    name: ClassVar[str] = "probe"

    def __init__(self, config: ProbeConfig) -> None:
        self.config = config
        self.seen = 0
        self.progress = asyncio.Event()

    async def run(self, readings: Subscription, state: OutputState) -> None:
        with contextlib.suppress(SubscriptionClosed):
            while True:
                reading = await readings.get()
                if reading.device != self.config.device:
                    continue
                self.seen += 1
                if self.seen % self.config.every == 0:
                    state.count("counted")
                    state.ok()
                self.progress.set()


def probe_output(config: Config) -> ProbeOutput | None:
    section = config.section("probe", ProbeConfig)
    return ProbeOutput(section) if section.enabled else None


def _probe_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--shout", action="store_true", help="upper case")


def _probe_command(args: argparse.Namespace, load: Callable[[], Config]) -> int:
    section = load().section("probe", ProbeConfig)
    text = f"{section.label} counts {section.device}"
    print(text.upper() if args.shout else text)
    return 0


PROBE = OutputSpec(
    "probe",
    ProbeConfig,
    probe_output,
    validate_probe,
    (OutputCommand("probe", "what the probe output counts", _probe_arguments, _probe_command),),
)
REGISTRY_WITH_PROBE: Mapping[str, OutputSpec] = {**REGISTRY, PROBE.name: PROBE}  # one line

# -- the tests ------------------------------------------------------------------------------------

DEVICE = '[[device]]\nname = "bmv"\nport = "simulator:bmv712"\n\n[csv]\nenabled = false\n\n'


def _config_file(tmp_path: Path, probe: str, http: str = "[http]\nenabled = false\n") -> Path:
    path = tmp_path / "config.toml"
    path.write_text(DEVICE + http + "\n[probe]\n" + probe, encoding="utf-8")
    return path


def test_the_registered_section_is_configured_from_the_file_and_the_environment(
    tmp_path: Path,
) -> None:
    path = _config_file(tmp_path, 'enabled = true\nlabel = "door"\nevery = 2\n')
    config = load_config(path, {"VEDIRECT_PROBE__EVERY": "3"}, registry=REGISTRY_WITH_PROBE)
    assert config.section("probe", ProbeConfig) == ProbeConfig(True, "bmv", "door", 3)
    outputs = build_outputs(config, REGISTRY_WITH_PROBE)
    assert [o.name for o in outputs] == ["probe"]  # csv disabled, domoticz/mqtt off


def test_without_its_registry_line_the_section_is_an_unknown_key_with_its_line(
    tmp_path: Path,
) -> None:
    path = _config_file(tmp_path, "enabled = true\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, {})
    assert str(info.value).startswith(f"{path}:11: probe = ")  # the [probe] header
    assert "expected no such key" in str(info.value)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('enabled = true\ndevice = "nosuch"\n', "probe.device = 'nosuch': expected a [[device]]"),
        ("every = 0\n", "probe.every = 0: expected an integer from 1 to 100"),
        ("colour = 1\n", "probe.colour = 1: expected no such key (known keys here: device, "),
    ],
)
def test_its_own_validation_and_bounds_give_one_line_with_file_and_line(
    tmp_path: Path, body: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _config_file(tmp_path, body)
    line = 11 + body.count("\n")  # [probe] is line 11; its last line holds the bad key
    with pytest.raises(ConfigError) as info:
        load_config(path, {}, registry=REGISTRY_WITH_PROBE)
    assert str(info.value).startswith(f"{path}:{line}: {message}")
    assert cli.main(["check-config", str(path)], registry=REGISTRY_WITH_PROBE) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"{path}:{line}: {message}" in err


def test_check_config_shows_its_section_and_its_subcommand_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _config_file(tmp_path, 'label = "door"\n')
    assert cli.main(["check-config", str(path)], registry=REGISTRY_WITH_PROBE) == 0
    shown = capsys.readouterr().out
    assert '[probe]\nenabled = false\ndevice = "bmv"\nlabel = "door"\nevery = 1\n' in shown
    assert cli.main(["-c", str(path), "probe", "--shout"], registry=REGISTRY_WITH_PROBE) == 0
    assert capsys.readouterr().out == "DOOR COUNTS BMV\n"
    with pytest.raises(SystemExit):
        cli.main(["--help"], registry=REGISTRY_WITH_PROBE)
    assert "what the probe output counts" in capsys.readouterr().out


@contextlib.asynccontextmanager
async def _running(service: Service) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.get_running_loop().create_task(service.run(stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


async def test_it_runs_on_real_readings_and_shows_in_health(tmp_path: Path) -> None:
    port = free_port()
    http = f'[http]\nhost = "127.0.0.1"\nport = {port}\n'
    config = load_config(
        _config_file(tmp_path, "enabled = true\n", http), {}, registry=REGISTRY_WITH_PROBE
    )
    service = Service(config, registry=REGISTRY_WITH_PROBE)
    probe = next(o for o in service.outputs if isinstance(o, ProbeOutput))
    async with _running(service), aiohttp.ClientSession() as session:
        while probe.seen < 2:  # the simulator's readings, through the reader and the hub
            probe.progress.clear()
            await asyncio.wait_for(probe.progress.wait(), 10)
        assert service.web is not None
        await asyncio.wait_for(service.web.serving.wait(), 10)
        async with session.get(f"http://127.0.0.1:{port}/health") as response:
            body: dict[str, Any] = await response.json()
    state = body["outputs"]["probe"]
    assert state["health"] == "ok"
    assert state["successes"] >= 2
    assert not [p for p in body["problems"] if "probe" in p]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[domoticz]\n\n[[domoticz.devices]]\nidx = 5\nfield = "V"\ndevice = "nosuch"\n',
            ":13: domoticz.devices[0].device = 'nosuch': expected one of the [[device]] names",
        ),
        ('[domoticz]\nusername = "a:b"\n', ":9: domoticz.username = 'a:b': expected a name"),
        ('[domoticz]\nurl = "ftp://x"\n', ":9: domoticz.url = 'ftp://x': expected http(s)"),
        ('[mqtt]\nprefix = "a/+"\n', ":9: mqtt.prefix = 'a/+': expected a topic prefix"),
    ],
)
def test_shipped_outputs_own_checks_keep_file_and_line(
    tmp_path: Path, text: str, message: str
) -> None:
    """Checks that lived in the outputs' constructors (and lost the line) are their specs'."""
    path = tmp_path / "config.toml"
    path.write_text(DEVICE + text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path, {})
    assert str(info.value).startswith(f"{path}{message}")
