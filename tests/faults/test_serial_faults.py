"""Serial-side faults against the real service process: nothing corrupt reaches an output.

One service process reads a real pty; the test writes a seeded simulator stream into it and,
one after the other, unplugs and replugs it, goes silent, sends garbage, a stream with 5 %
corrupted bytes, an endless line, an endless HEX record, NUL and non-UTF-8 bytes, and finally
replaces the BMV by an MPPT. After each fault the readings must be back at every output
within the watchdog's bound, and at the end every value any output received (CSV rows, MQTT
state messages, Domoticz requests, /api/readings samples) must belong to a reading that the
clean stream decodes to.
"""

from __future__ import annotations

import asyncio
import random
import sys
from functools import partial
from pathlib import Path

import pytest

from tests.fake_domoticz import FakeDomoticz
from tests.faults.conftest import (
    RESUME_BOUND,
    SILENCE,
    Feeder,
    MqttRecorder,
    ServiceProcess,
    Setup,
    Valid,
    api_observation,
    csv_observations,
    domoticz_observations,
    state_observation,
    wait_until,
)
from tests.pty_device import PtyDevice
from vedirect_async.parser import encode_block
from vedirect_async.simulator import SimulatedDevice

pytestmark = pytest.mark.faults

STATE = "vedirect/bmv/state"
CORRUPT = 0.05


class Stream:
    """The bytes the 'device' sends each tick, by mode; clean seconds feed :class:`Valid`."""

    def __init__(self, valid: Valid, seed: int) -> None:
        self.valid = valid
        self.mode = "clean"
        self.kind = "bmv712"
        self.rng = random.Random(seed)
        # same seed: the damaged twin sends the clean twin's blocks with CORRUPT of the bytes hit
        self.twins = {
            kind: (
                SimulatedDevice(kind, seed=seed),
                SimulatedDevice(kind, seed=seed, corrupt=CORRUPT),
            )
            for kind in ("bmv712", "mppt")
        }

    def _second(self) -> tuple[bytes, bytes]:
        clean_dev, damaged_dev = self.twins[self.kind]
        clean = clean_dev.next_second()
        self.valid.add_stream(self.kind, clean)
        return clean, damaged_dev.next_second()

    def __call__(self) -> bytes:
        mode = self.mode
        if mode == "silent":
            return b""
        if mode == "garbage":
            return self.rng.randbytes(600)
        if mode == "endless_line":
            return bytes(self.rng.choice(b"ABCDEFGH0123456789\t ") for _ in range(600))
        if mode == "endless_hex":
            return b"".join(self.rng.choice((b"0", b"7", b"A", b"F")) for _ in range(600))
        clean, damaged = self._second()
        if mode == "corrupt":
            return damaged
        if mode == "nul":
            out = bytearray(clean)
            for pos in range(self.rng.randrange(8), len(out), 40):
                out[pos] = self.rng.choice((0x00, 0xA5, 0xFF, 0xC3))
            return bytes(out) + b"\x00" * 16 + b"\xa5\xff\xfe"
        return clean


async def test_serial_faults_never_reach_an_output_and_readings_resume(
    tmp_path: Path,
    device: PtyDevice,
    domoticz: FakeDomoticz,
    mqtt: MqttRecorder,
    services: list[ServiceProcess],
) -> None:
    """Unplug/replug, silence, garbage, 5 % corruption, endless line/HEX, NUL and non-UTF-8
    bytes and a BMV replaced by an MPPT: every output value is a clean reading's, and readings
    are back at CSV, MQTT, Domoticz and /api/readings within the watchdog bound each time."""
    valid = Valid()
    stream = Stream(valid, seed=9)
    csv_path = tmp_path / "serial.csv"
    setup = Setup(
        tmp_path,
        str(device.link),
        csv_path=csv_path,
        csv_columns=["Time", "V", "I", "CE", "SOC", "PPV", "H17"],
        domoticz_url=domoticz.url,
        mqtt_port=mqtt.broker.port,
    )
    service = ServiceProcess(setup)
    services.append(service)
    feeder = Feeder(device, stream)
    feeder.start()
    await service.start()
    api_seen: list[dict[str, object]] = []
    resumed: dict[str, float] = {}

    def rows() -> int:
        return len(csv_observations(csv_path)[1])

    async def flowing(what: str, within: float) -> float:
        """Wait until every output got something new; return how long that took."""
        rows0, states0 = rows(), len(mqtt.topic(STATE))
        posts0 = len(domoticz.requests("udevice"))

        async def fresh_everywhere() -> bool:
            if rows() < rows0 + 2 or len(mqtt.topic(STATE)) < states0 + 2:
                return False
            if len(domoticz.requests("udevice")) < posts0 + 1:
                return False
            status, body = await service.get("/api/readings")
            assert status == 200
            seen = api_observation(body, "bmv")
            if seen is None or body["devices"]["bmv"]["age"] > 0.5:
                return False
            api_seen.append(seen)
            return True

        took = await wait_until(fresh_everywhere, within, f"readings back after {what}")
        assert service.alive, service.stderr()
        return took

    def logged_more(text: str, before: int) -> bool:
        return service.stderr().count(text) > before

    async def fault(mode: str, hold: float) -> None:
        stream.mode = mode
        await asyncio.sleep(hold)  # the fault lasts this long (it is the injected condition)
        stream.mode = "clean"
        resumed[mode] = await flowing(mode, RESUME_BOUND)

    await flowing("start", 10.0)
    await fault("silent", SILENCE + 0.3)
    await fault("garbage", 1.2)
    await fault("corrupt", 1.2)
    await fault("endless_line", 1.2)
    await fault("endless_hex", 1.2)
    await fault("nul", 0.6)

    replugs = 6
    worst_replug = 0.0
    for _ in range(replugs):
        lost = service.stderr().count(" lost: ")
        device.unplug()
        await wait_until(partial(logged_more, " lost: ", lost), 2.0, "the unplug noticed")
        device.plug()
        worst_replug = max(worst_replug, await flowing("replug", RESUME_BOUND))
    resumed[f"replug (worst of {replugs})"] = worst_replug

    stream.kind = "mppt"  # the BMV is replaced by an MPPT on the same port
    await wait_until(
        lambda: any(o.get("panel_power") for o in csv_observations(csv_path)[1]),
        RESUME_BOUND,
        "an MPPT row in the CSV",
    )
    resumed["device change"] = await flowing("device change", RESUME_BOUND)
    await feeder.stop()

    header, csv_seen = csv_observations(csv_path)
    assert header == ["Time", "V", "I", "CE", "SOC", "PPV", "H17"]
    mqtt_seen = [state_observation(m.payload) for m in mqtt.topic(STATE)]
    dz_seen = domoticz_observations(domoticz)
    for name, seen in (("csv", csv_seen), ("mqtt", mqtt_seen), ("domoticz", dz_seen)):
        assert len(seen) > 20, f"{name}: only {len(seen)} values\n{service.stderr()}"
        bad = valid.bad(seen)
        assert not bad, f"{name}: {len(bad)} of {len(seen)} values no clean reading has: {bad[:3]}"
    assert not valid.bad(api_seen), api_seen
    assert any(o.get("product_id") == "0xA05F" for o in mqtt_seen), "MPPT never published"
    assert service.alive, service.stderr()
    assert "Traceback" not in service.stderr()
    sys.stderr.write(
        "resume times: "
        + ", ".join(f"{k} {v:.2f} s" for k, v in resumed.items())
        + f"; {len(csv_seen)} rows, {len(mqtt_seen)} states, {len(dz_seen)} posts checked\n"
    )


def _split_update(n: int) -> tuple[bytes, bytes]:
    """A two-block update whose every value says ``n``: main block (PID, V) and H block."""
    main = encode_block(
        [(b"PID", b"0xA389"), (b"V", b"%d" % (10000 + n)), (b"I", b"-1000"), (b"SOC", b"900")]
    )
    history = encode_block([(b"H1", b"-%d" % n), (b"H17", b"%d" % n), (b"H18", b"%d" % n)])
    return main, history


def _damaged(block: bytes) -> bytes:
    """The block with one value byte changed: its checksum no longer verifies."""
    return block[:8] + bytes([block[8] ^ 0x01]) + block[9:]


async def test_a_lost_block_between_two_halves_never_merges_two_updates(
    tmp_path: Path, device: PtyDevice, services: list[ServiceProcess]
) -> None:
    """An update whose H block is lost, followed by one whose main block is lost, never
    yields a row with the first update's V and the second one's H values (field-problems C)."""
    csv_path = tmp_path / "split.csv"
    setup = Setup(tmp_path, str(device.link), csv_path=csv_path, csv_columns=["Time", "V", "H17"])
    service = ServiceProcess(setup)
    services.append(service)
    counter = iter(range(10**6))

    def source() -> bytes:
        n = next(counter)
        main, history = _split_update(n)
        if n % 10 == 5:
            history = _damaged(history)
        elif n % 10 == 6:
            main = _damaged(main)
        return main + history

    feeder = Feeder(device, source)
    feeder.start()
    await service.start()
    target = 60
    await wait_until(lambda: len(csv_observations(csv_path)[1]) >= target, 15.0, "rows")
    await feeder.stop()
    _, seen = csv_observations(csv_path)
    mixed = [
        row
        for row in seen
        if round(float(str(row["voltage"])) * 1000) - 10000
        != round(float(str(row["history_discharged_energy"])) * 100)
    ]
    assert not mixed, f"{len(mixed)} rows merge two updates: {mixed[:3]}"
    assert service.alive
