"""Process faults: SIGTERM at random moments, SIGKILL and restart, on the real service process.

SIGTERM may come at any moment, from the first milliseconds of start-up (imports) to the middle
of a CSV write: the process must exit 0 within 2 s, leave only whole CSV lines and say
``offline`` on MQTT. SIGKILL cannot be handled: the broker then publishes the Last Will
(``offline``), and a restart must append to the same CSV file under its one header.
"""

from __future__ import annotations

import asyncio
import random
import signal
import sys
from functools import partial
from pathlib import Path

import pytest

from tests.faults.conftest import Feeder, MqttRecorder, ServiceProcess, Setup, wait_until
from tests.pty_device import PtyDevice
from vedirect_async.simulator import SimulatedDevice

pytestmark = pytest.mark.faults

HEADER = "Time,V,I,CE,SOC"


def whole_lines(path: Path) -> list[str]:
    """The CSV's lines; fails on a partial last line or a line with the wrong column count."""
    if not path.exists():
        return []
    text = path.read_text()
    assert not text or text.endswith("\n"), f"partial last line: {text[-80:]!r}"
    lines = text.splitlines()
    assert all(line.count(",") == HEADER.count(",") for line in lines), lines
    return lines


def has_rows(path: Path, count: int) -> bool:
    return len(whole_lines(path)) >= count


async def test_sigterm_at_random_moments_exits_0_within_2s_with_whole_lines(
    tmp_path: Path, mqtt: MqttRecorder, services: list[ServiceProcess]
) -> None:
    """SIGTERM at 8 seeded moments (0-0.7 s after the entry point started, i.e. during the
    imports and start-up, or while readings flow and rows are written) and once during the
    imports: exit status 0 within 2 s, whole CSV lines, one header, MQTT ``offline``."""
    rng = random.Random(20261125)
    moments = [(rng.choice(("starting", "running")), rng.uniform(0.0, 0.7)) for _ in range(8)]
    moments.append(("imports", 0.0))  # at once: the service is still importing its modules
    results: list[str] = []

    async def one(i: int, phase: str, delay: float) -> None:
        folder = tmp_path / f"p{i}"
        folder.mkdir()
        dev = PtyDevice(folder / "usb-VictronEnergy-port0")
        dev.plug()
        csv_path = folder / "data.csv"
        setup = Setup(folder, str(dev.link), csv_path=csv_path, mqtt_port=mqtt.broker.port)
        setup.client_id = f"term{i}"
        setup.extra["mqtt"] = {"prefix": f"p{i}"}
        service = ServiceProcess(setup)
        services.append(service)
        feeder = Feeder(dev, SimulatedDevice("bmv712", seed=i).next_second)
        feeder.start()
        try:
            await service.start(wait=phase == "running")
            if phase != "running":  # from the entry point on (interpreter start-up excluded)
                await wait_until(
                    lambda: service.catches(signal.SIGTERM), 10.0, "entry point", poll=0.005
                )
            else:
                await wait_until(lambda: len(whole_lines(csv_path)) >= 3, 10.0, "rows")
            await asyncio.sleep(delay)  # the random moment itself
            code, took = await service.signal(signal.SIGTERM)
        finally:
            await feeder.stop()
            dev.close()
        assert code == 0, f"{phase} +{delay:.2f} s: exit {code}\n{service.stderr()}"
        assert took <= 2.0, f"{phase} +{delay:.2f} s: took {took:.2f} s"
        if phase == "imports":
            assert "configuration from" not in service.stderr(), "stopped only after start-up"
        lines = whole_lines(csv_path)
        assert lines.count(HEADER) == (1 if lines else 0)
        assert "Traceback" not in service.stderr(), service.stderr()
        topic = f"p{i}/bmv/availability"
        if phase == "running":
            await wait_until(
                lambda: [m.payload for m in mqtt.topic(topic)][-1:] == [b"offline"],
                2.0,
                f"{topic} offline",
            )
        results.append(f"{phase} +{delay:.2f} s: exit 0 in {took:.2f} s, {len(lines)} lines")

    await asyncio.gather(*(one(i, phase, delay) for i, (phase, delay) in enumerate(moments)))
    sys.stderr.write("SIGTERM: " + "; ".join(sorted(results)) + "\n")


async def test_sigkill_then_restart_appends_under_one_header_and_mqtt_sees_the_will(
    tmp_path: Path, device: PtyDevice, mqtt: MqttRecorder, services: list[ServiceProcess]
) -> None:
    """SIGKILL at seeded moments, twice: subscribers get the Last Will ``offline`` at once,
    and each restart appends to the same CSV (one header, whole lines, earlier rows kept)
    and says ``online`` again."""
    rng = random.Random(7)
    csv_path = tmp_path / "data.csv"
    setup = Setup(tmp_path, str(device.link), csv_path=csv_path, mqtt_port=mqtt.broker.port)
    feeder = Feeder(device, SimulatedDevice("bmv712", seed=5).next_second)
    feeder.start()
    topic = "vedirect/bmv/availability"

    def availability() -> list[bytes]:
        return [m.payload for m in mqtt.topic(topic)]

    kept: list[str] = []
    for round_ in range(3):
        service = ServiceProcess(setup, name=f"run{round_}")
        services.append(service)
        await service.start()
        wanted = len(whole_lines(csv_path)) + 5
        await wait_until(partial(has_rows, csv_path, wanted), 10.0, "new rows")
        await wait_until(lambda: availability()[-1:] == [b"online"], 5.0, "online")
        lines = whole_lines(csv_path)
        assert lines[: len(kept)] == kept, "a restart rewrote earlier rows"
        assert lines.count(HEADER) == 1
        assert lines[0] == HEADER
        kept = lines
        if round_ == 2:
            break
        await asyncio.sleep(rng.uniform(0.0, 0.5))  # the random moment itself
        code, _ = await service.signal(signal.SIGKILL)
        assert code == -signal.SIGKILL
        offline = await wait_until(
            lambda: availability()[-1:] == [b"offline"], 3.0, "the Last Will on " + topic
        )
        sys.stderr.write(f"SIGKILL {round_}: Last Will seen after {offline:.2f} s\n")
    await feeder.stop()
    code, _ = await service.signal(signal.SIGTERM)
    assert code == 0
    assert whole_lines(csv_path).count(HEADER) == 1
