"""Output-side faults against the real service process: the others keep their full rate.

One service process reads a pty fed with one-block updates whose every value says which update
it is (``V = 10 V + n mV``), so any output's value tells exactly which reading it carries. Each
fault runs alone, then three at once: Domoticz refused, slow, hanging, answering 401, ERR, 500,
an empty reply or non-JSON; the broker down and back; the CSV file system full, the file
deleted, the directory read-only. During each fault the unaffected
outputs must keep their rate (CSV and MQTT: a row / state message per reading; Domoticz: a post
per interval; /api/readings: fresh), ``/health`` must name the failing output, and after the
fault the failed output must carry a reading newer than the recovery moment.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.fake_domoticz import FakeDomoticz, Fault
from tests.faults.conftest import (
    Feeder,
    MqttRecorder,
    ServiceProcess,
    Setup,
    fill,
    mount_read_only_over,
    unmount_top,
    wait_until,
)
from tests.mosquitto import Mosquitto
from tests.pty_device import PtyDevice
from vedirect_async.parser import encode_block

pytestmark = pytest.mark.faults

STATE = "vedirect/bmv/state"
HOLD = 1.2  # seconds each fault lasts
RECOVERY = 4.0  # seconds a recovered output may take to carry a new reading
LAG = 3.0  # seconds an unaffected output may trail the feeder (a loaded machine); a fault that
# held it up would stall it for the fault's whole duration, or 0.4 s a reading when slow
DOMOTICZ_INTERVAL = 0.2
ALL = ("csv", "mqtt", "domoticz", "http")


# A long serial number, written five times per CSV row: rows of ~350 bytes fill a 4 KiB page
# in about 12 rows, so a full tmpfs refuses the CSV's next row within a second.
SERIAL = b"HQ" + b"0123456789" * 6
PADDING = [f"S{i}=SER#" for i in range(5)]


class Numbered:
    """One-block updates numbered n = 0, 1, 2 ...: V = 10 V + n mV, CE = -n mAh."""

    def __init__(self) -> None:
        self.n = -1

    def __call__(self) -> bytes:
        self.n += 1
        n = self.n
        return encode_block(
            [
                (b"PID", b"0xA389"),
                (b"V", b"%d" % (10000 + n)),
                (b"I", b"-1500"),
                (b"CE", b"-%d" % n),
                (b"SOC", b"%d" % (500 + n % 500)),
                (b"SER#", SERIAL),
            ]
        )


def number(volts: object) -> int:
    """The update number a voltage value carries."""
    return round(float(str(volts)) * 1000) - 10000


@dataclass
class Outputs:
    """What each output received, as update numbers (and when, for MQTT and Domoticz)."""

    csv_path: Path
    mqtt: MqttRecorder
    domoticz: FakeDomoticz
    api: list[tuple[float, int, float]] = field(default_factory=list)  # (at, n, age)

    def csv(self) -> list[int]:
        if not self.csv_path.exists():
            return []
        lines = self.csv_path.read_text().splitlines()
        return [number(line.split(",")[1]) for line in lines if not line.startswith("Time")]

    def states(self, since: float = 0.0) -> list[int]:
        return [number(json.loads(m.payload)["voltage"]) for m in self.mqtt.topic(STATE, since)]

    def posts(self, since: float = 0.0) -> list[int]:
        """Update numbers Domoticz accepted for idx 1 (voltage) since ``since``."""
        return [
            number(r.params["svalue"])
            for r in self.domoticz.requests("udevice")
            if r.params.get("idx") == "1" and r.status == 200 and r.at >= since
            if b'"OK"' in r.reply
        ]

    def newest(self, name: str) -> int:
        """The highest update number ``name`` carries (-1 if none)."""
        if name == "csv":
            values = self.csv()
        elif name == "mqtt":
            values = self.states()
        elif name == "domoticz":
            values = self.posts()
        else:
            values = [n for _, n, _ in self.api]
        return max(values, default=-1)


async def test_each_output_fault_alone_and_all_at_once_leave_the_others_at_full_rate(
    tmp_path: Path,
    device: PtyDevice,
    domoticz: FakeDomoticz,
    broker: Mosquitto,
    mqtt: MqttRecorder,
    tmpfs: Path,
    services: list[ServiceProcess],
) -> None:
    """Domoticz refused/slow/hanging/401/ERR/500/empty reply/non-JSON, broker down, CSV disk
    full, file deleted and read-only, alone and together: the other outputs keep their rate,
    /health names the failing one, every output carries the newest reading after recovery, and
    the process never crashes."""
    csv_path = tmpfs / "out.csv"
    setup = Setup(
        tmp_path,
        str(device.link),
        csv_path=csv_path,
        csv_columns=["Time", "V", "I", "CE", "SOC", *PADDING],
        domoticz_url=domoticz.url,
    )
    setup.mqtt_port = broker.port
    setup.extra["domoticz"] = {"interval": DOMOTICZ_INTERVAL}
    service = ServiceProcess(setup)
    services.append(service)
    numbered = Numbered()
    feeder = Feeder(device, numbered)
    feeder.start()
    await service.start()
    out = Outputs(csv_path, mqtt, domoticz)
    await wait_until(
        lambda: min(out.newest(name) for name in ("csv", "mqtt", "domoticz")) >= 5,
        10.0,
        "every output carrying readings",
    )
    report: list[str] = []

    async def sample(duration: float, failing: tuple[str, ...]) -> set[str]:
        """For ``duration`` s sample /api/readings and /api/health; outputs seen unhealthy."""
        loop = asyncio.get_running_loop()
        end = loop.time() + duration
        unhealthy: set[str] = set()
        while loop.time() < end:
            status, body = await service.get("/api/readings")
            assert status == 200, body
            reading = body["devices"]["bmv"]
            out.api.append(
                (time.monotonic(), number(reading["values"]["voltage"]["value"]), reading["age"])
            )
            health = await service.health()
            for name, state in health["outputs"].items():
                if state["health"] != "ok":
                    unhealthy.add(name)
            await asyncio.sleep(0.1)  # sampling period of the observer
        return unhealthy

    async def case(
        label: str,
        failing: tuple[str, ...],
        inject: Callable[[], object],
        recover: Callable[[], object],
        *,
        reported: tuple[str, ...] | None = None,
    ) -> None:
        t0, n0 = time.monotonic(), numbered.n
        done = inject()
        if inspect.isawaitable(done):
            await done
        unhealthy = await sample(HOLD, failing)
        n1, t1 = numbered.n, time.monotonic()
        fed = n1 - n0
        kept: list[str] = []
        for name, carried, what in (("csv", out.csv, "rows"), ("mqtt", out.states, "states")):
            if name in failing:
                continue
            # The fault still holds: the readings fed during it must reach this output (the
            # service may lag the feeder by a second on a loaded machine), then count them.
            lag = await wait_until(
                lambda name=name: out.newest(name) >= n1,  # type: ignore[misc]
                LAG,
                f"{label}: {name} carrying reading #{n1} (fed during the fault) while it holds",
            )
            got = len([n for n in carried() if n0 < n <= n1])
            assert got >= 0.9 * fed, f"{label}: {name} {what}: {got} for {fed} readings"
            kept.append(f"{name} {got}/{fed} (+{lag:.2f} s)")
        if "domoticz" not in failing:
            got = len(out.posts(t0))
            due = (t1 - t0) / DOMOTICZ_INTERVAL
            assert got >= 0.6 * due, f"{label}: domoticz got {got} posts of ~{due:.0f}"
            kept.append(f"domoticz {got}/{due:.0f}")
        ages = [age for at, _, age in out.api if at >= t0]
        assert ages, f"{label}: /api/readings not sampled"
        assert max(ages) < 0.5, f"{label}: /api/readings ages {ages}"
        kept.append(f"/api/readings age <= {max(ages):.2f} s")
        missing = set(reported if reported is not None else failing) - unhealthy
        assert not missing, f"{label}: /health never reported {missing} (saw {unhealthy})"
        done = recover()
        if inspect.isawaitable(done):
            await done
        n_r = numbered.n
        took: dict[str, float] = {}
        recovered = time.monotonic()
        for name in ALL:
            if name == "http":
                await sample(0.1, ())
            await wait_until(
                lambda name=name: out.newest(name) > n_r,  # type: ignore[misc]
                RECOVERY,
                f"{label}: {name} carrying a reading newer than #{n_r} after recovery",
            )
            took[name] = time.monotonic() - recovered
        assert service.alive, service.stderr()
        slowest = max(took[n] for n in failing)
        report.append(f"{label}: kept {', '.join(kept)}; newest again after {slowest:.2f} s")

    def set_attr(name: str, value: object) -> Callable[[], None]:
        return lambda: setattr(domoticz, name, value)

    await case("domoticz refused", ("domoticz",), domoticz.stop, domoticz.start)
    await case(
        "domoticz slow",
        ("domoticz",),
        set_attr("delay", 0.4),
        set_attr("delay", 0.0),
        reported=(),
    )
    await case(
        "domoticz hanging", ("domoticz",), set_attr("fault", Fault.HANG), set_attr("fault", None)
    )
    await case("domoticz 401", ("domoticz",), set_attr("trusted", False), set_attr("trusted", True))
    await case(
        "domoticz ERR", ("domoticz",), set_attr("err_idx", {1, 2, 3, 4}), set_attr("err_idx", set())
    )
    for fault in (Fault.HTTP500, Fault.CLOSE, Fault.NON_JSON):
        await case(
            f"domoticz {fault.value}",
            ("domoticz",),
            set_attr("fault", fault),
            set_attr("fault", None),
        )
    await case("broker down", ("mqtt",), broker.stop, broker.start)
    filler: list[Path] = []
    await case(
        "csv disk full",
        ("csv",),
        lambda: filler.append(fill(tmpfs)),
        lambda: filler.pop().unlink(),
    )
    await case(
        "csv file deleted",
        ("csv",),
        csv_path.unlink,
        lambda: None,
        reported=(),  # not a failure: the file is made again, under a new header
    )
    await case(
        "csv read-only", ("csv",), lambda: mount_read_only_over(tmpfs), lambda: unmount_top(tmpfs)
    )

    def all_inject() -> None:
        domoticz.fault = Fault.HANG
        broker.stop()
        filler.append(fill(tmpfs))

    def all_recover() -> None:
        domoticz.fault = None
        broker.start()
        filler.pop().unlink()

    await case("all at once", ("csv", "mqtt", "domoticz"), all_inject, all_recover)
    await feeder.stop()

    text = csv_path.read_text()
    assert text.endswith("\n")
    assert text.count("Time,") == 1, "one header"
    stderr = service.stderr()
    assert "Traceback" not in stderr, stderr
    assert domoticz.max_concurrency == 1
    sys.stderr.write("\n".join(report) + "\n")
