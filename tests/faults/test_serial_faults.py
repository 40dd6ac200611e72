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
import time
from functools import partial
from pathlib import Path

import pytest

from tests.fake_domoticz import FakeDomoticz, Received
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
AVAILABILITY = "vedirect/bmv/availability"
CORRUPT = 0.05


class Stream:
    """The bytes the 'device' sends each tick, by mode; clean seconds feed :class:`Valid`."""

    def __init__(self, valid: Valid, seed: int) -> None:
        self.valid = valid
        self.mode = "clean"
        self.kind = "bmv712"
        self.rng = random.Random(seed)
        # same seed, same text blocks: the damaged variant has CORRUPT of its bytes hit, the
        # HEX variant interleaves async HEX records (anywhere, also inside blocks)
        self.variants = {
            kind: {
                "clean": SimulatedDevice(kind, seed=seed),
                "corrupt": SimulatedDevice(kind, seed=seed, corrupt=CORRUPT),
                "hex": SimulatedDevice(kind, seed=seed, hex_records=True),
            }
            for kind in ("bmv712", "mppt")
        }

    def _second(self) -> dict[str, bytes]:
        """The next second of every variant (kept in step); the clean one feeds Valid."""
        second = {name: dev.next_second() for name, dev in self.variants[self.kind].items()}
        self.valid.add_stream(self.kind, second["clean"])
        return second

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
        second = self._second()
        if mode in ("corrupt", "hex"):
            return second[mode]
        if mode == "nul":
            out = bytearray(second["clean"])
            for pos in range(self.rng.randrange(8), len(out), 40):
                out[pos] = self.rng.choice((0x00, 0xA5, 0xFF, 0xC3))
            return bytes(out) + b"\x00" * 16 + b"\xa5\xff\xfe"
        return second["clean"]


async def test_serial_faults_never_reach_an_output_and_readings_resume(
    tmp_path: Path,
    device: PtyDevice,
    domoticz: FakeDomoticz,
    mqtt: MqttRecorder,
    services: list[ServiceProcess],
) -> None:
    """Silence, HEX records interleaved, garbage, 5 % corruption, endless line/HEX, NUL and
    non-UTF-8 bytes, unplug/replug x6 and a BMV replaced by an MPPT: every output value is a
    clean reading's, a silent device's old values are never re-published, and readings are back
    at CSV, MQTT, Domoticz and /api/readings within the watchdog bound after each fault."""
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

    def posts_before(moment: float) -> list[Received]:
        return [r for r in domoticz.requests("udevice") if r.at < moment]

    async def not_reading() -> bool:
        health = await service.health()
        return bool(health["devices"]["bmv"]["reader_state"] != "reading")

    async def fault(mode: str, hold: float) -> None:
        stream.mode = mode
        await asyncio.sleep(hold)  # the fault lasts this long (it is the injected condition)
        stream.mode = "clean"
        resumed[mode] = await flowing(mode, RESUME_BOUND)

    await flowing("start", 10.0)

    # Silence: once the watchdog has acted, CSV and MQTT publish nothing (field-problems D:
    # "publishing stale data"), MQTT says offline and /health shows the device not fresh.
    stream.mode = "silent"
    offline0 = [m.payload for m in mqtt.topic(AVAILABILITY)].count(b"offline")
    await asyncio.sleep(SILENCE + 0.2)  # the device has been silent past the watchdog's limit
    quiet_from = time.monotonic()
    rows0, states0 = rows(), len(mqtt.topic(STATE))
    health = await service.health()
    assert health["devices"]["bmv"]["fresh"] is False, health
    await asyncio.sleep(0.6)  # a stretch of silence in which nothing may be published
    assert rows() == rows0, "CSV rows written for a silent device"
    assert len(mqtt.topic(STATE)) == states0, "MQTT states published for a silent device"
    # Domoticz with heartbeat = 0 re-posts the last values each interval until they are older
    # than max(2 x interval, 60 s) (its documented rule): only ever the last reading's values.
    last = {r.params["idx"]: r.params["svalue"] for r in posts_before(quiet_from)}
    stale = [r for r in domoticz.requests("udevice") if r.at >= quiet_from]
    assert all(r.params["svalue"] == last[r.params["idx"]] for r in stale), stale
    assert [m.payload for m in mqtt.topic(AVAILABILITY)].count(b"offline") > offline0
    stream.mode = "clean"
    resumed["silent"] = await flowing("silent", RESUME_BOUND)

    # Async HEX records between and inside blocks are not a fault: nothing may stop.
    stream.mode = "hex"
    rows0, ticks0 = rows(), feeder.ticks
    await asyncio.sleep(1.0)  # one second of HEX-interleaved stream
    hex_rows, hex_seconds = rows() - rows0, feeder.ticks - ticks0
    assert hex_rows >= 0.8 * hex_seconds - 2, f"{hex_rows} rows for {hex_seconds} seconds"
    stream.mode = "clean"
    await fault("garbage", 1.2)
    await fault("corrupt", 1.2)
    await fault("endless_line", 1.2)
    await fault("endless_hex", 1.2)
    await fault("nul", 0.6)

    replugs = 6
    worst_replug = 0.0
    for _ in range(replugs):
        device.unplug()
        await wait_until(not_reading, 2.0, "/api/health showing the unplugged reader")
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
        + f"; HEX: {hex_rows} rows in {hex_seconds} s"
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
    target = 40
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


async def test_a_failing_device_never_slows_or_leaks_into_another(
    tmp_path: Path, device: PtyDevice, mqtt: MqttRecorder, services: list[ServiceProcess]
) -> None:
    """While one device is unplugged, garbled and silent, a second device on its own pty keeps
    a CSV row and an MQTT state per reading, and no value of either device shows up in the
    other's CSV file or topic (field-problems F: several devices)."""
    other = PtyDevice(tmp_path / "usb-VictronEnergy_BV_VE_Direct_cable_OTHER-if00-port0")
    other.plug()
    valid = {"bmv": Valid(), "mppt": Valid()}
    bmv = Stream(valid["bmv"], seed=4)
    mppt = Stream(valid["mppt"], seed=5)
    mppt.kind = "mppt"
    setup = Setup(
        tmp_path,
        str(device.link),
        csv_path=tmp_path / "{device}.csv",
        csv_columns=["Time", "V", "I", "PPV", "SOC"],
        mqtt_port=mqtt.broker.port,
        more_devices={"mppt": str(other.link)},
    )
    service = ServiceProcess(setup)
    services.append(service)
    feeders = [Feeder(device, bmv), Feeder(other, mppt)]
    for feeder in feeders:
        feeder.start()
    try:
        await service.start()
        paths = {name: tmp_path / f"{name}.csv" for name in valid}

        def rows(name: str) -> int:
            return len(csv_observations(paths[name])[1])

        def more_rows(name: str, count: int) -> bool:
            return rows(name) >= count

        def states(name: str) -> int:
            return len(mqtt.topic(f"vedirect/{name}/state"))

        await wait_until(lambda: min(rows("bmv"), rows("mppt")) >= 3, 10.0, "both devices")
        kept: list[str] = []
        for label, hold in (("unplug", 1.0), ("garbage", 1.2), ("silent", 1.0)):
            rows0, states0, ticks0 = rows("mppt"), states("mppt"), feeders[1].ticks
            if label == "unplug":
                device.unplug()
            else:
                bmv.mode = label
            await asyncio.sleep(hold)  # the fault on the first device lasts this long
            fed = feeders[1].ticks - ticks0
            got_rows, got_states = rows("mppt") - rows0, states("mppt") - states0
            assert got_rows >= 0.9 * fed - 1, f"{label}: mppt rows {got_rows} for {fed}"
            assert got_states >= 0.9 * fed - 1, f"{label}: mppt states {got_states} for {fed}"
            kept.append(f"{label}: mppt {got_rows} rows, {got_states} states for {fed} s")
            if label == "unplug":
                device.plug()
            bmv.mode = "clean"
            await wait_until(partial(more_rows, "bmv", rows("bmv") + 2), RESUME_BOUND, "bmv back")
    finally:
        for feeder in feeders:
            await feeder.stop()
        other.close()
    for name, clean in valid.items():
        seen = csv_observations(paths[name])[1]
        seen += [state_observation(m.payload) for m in mqtt.topic(f"vedirect/{name}/state")]
        bad = clean.bad(seen)
        assert not bad, f"{name}: {len(bad)} values not from its own clean stream: {bad[:3]}"
    assert service.alive
    sys.stderr.write("isolation: " + "; ".join(kept) + "\n")
