"""The write policy (issue 15) over a real pty: allowlist, checks, confirmation, rate limit.

A :class:`~tests.hex_peer.HexPeer` plays the device (an MPPT 100|20 that answers its identity)
while text blocks stream; :class:`Device` adds what a real device does with a Set: its own
range check (flag 0x04), or silence. The last test runs ``simulate --pty``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable

import pytest

from tests.hex_peer import HexPeer
from tests.pty_device import PtyDevice, wait_until
from tests.sim_pty import simulated_pty
from vedirect_async.config import DeviceConfig, WatchdogConfig
from vedirect_async.control import Controller, Refusal, Refused, Written
from vedirect_async.hexframe import Command, Flags, RegisterMessage
from vedirect_async.hub import Hub
from vedirect_async.parser import encode_block
from vedirect_async.session import DeviceSession
from vedirect_async.writable import control_for, rated_current

FAST = WatchdogConfig(silence_timeout=5, invalid_timeout=5, backoff_initial=0.02, backoff_max=0.1)
REGISTERS = {
    0xEDF0: b"\x96\x00",  # battery maximum current 15.0 A
    0xEDF7: b"\xa0\x05",  # absorption 14.40 V
    0x0200: b"\x01",  # device mode: on
    0xEDAB: b"\x04",  # load output: on
    0x010A: b"HQ1840MAEI4\x00",
    0x010B: b"SmartSolar MPPT 100|20\x00",
}
WRITABLE = ["battery_max_current", "0x0200", "load_output_control"]


class Device(HexPeer):
    """A HexPeer that checks Sets as a 100/20 would (at most 20 A), or ignores them."""

    ignore_sets = False
    silent_sets = False  # apply a Set but lose its echo (a line glitch)

    def answer(self, line: bytes) -> bytes | None:
        if line.startswith(b":8"):
            if self.ignore_sets:
                return None
            if self.silent_sets:
                super().answer(line)
                return None
            request = RegisterMessage.parse(line.rstrip(b"\r\n"))
            if request.register == 0xEDF0 and int.from_bytes(request.value, "little") > 200:
                return RegisterMessage(Command.SET, 0xEDF0, Flags.PARAMETER_ERROR).encode()
        return super().answer(line)


def block(n: int) -> bytes:
    return encode_block([(b"PID", b"0xA053"), (b"V", b"%d" % (12000 + n % 100)), (b"CS", b"3")])


Make = Callable[..., "asyncio.Future[tuple[Controller, Device, DeviceSession]]"]


@pytest.fixture
async def rig(
    device: PtyDevice, running: list[asyncio.Task[None]]
) -> AsyncIterator[Callable[..., object]]:
    peers: list[Device] = []

    async def make(
        writable: list[str] = WRITABLE,
        interval: float = 0.05,
        nvm_interval: float = 0.3,
        model: bytes = b"SmartSolar MPPT 100|20\x00",
    ) -> tuple[Controller, Device, DeviceSession]:
        peer = Device(device, {**REGISTERS, 0x010B: model})
        peer.start()
        peers.append(peer)
        config = DeviceConfig(name="mppt", port=str(device.link), registers=[], writable=writable)
        session = DeviceSession(config, Hub(), FAST)
        session.link.timeout = 0.2
        running.append(asyncio.get_running_loop().create_task(session.run()))
        await wait_until(lambda: session.opened_at is not None, session.changed)
        device.stream(block)
        sub = session.hub.subscribe("test")
        async with asyncio.timeout(5):  # identity read, and the writable registers polled once
            while session.poller.polls < 1:
                await sub.get()
        control = Controller([session], [config], interval=interval, nvm_interval=nvm_interval)
        return control, peer, session

    yield make
    for peer in peers:
        peer.stop()


async def test_write_is_checked_sent_confirmed_logged_and_counted(
    rig: Callable[..., object], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="vedirect_async.control")
    control, peer, session = await rig(nvm_interval=0)  # type: ignore[misc]
    sent = len(peer.received)
    result = await control.write("mppt", "battery_max_current", "12.5", "test")
    assert result == Written("mppt", "battery_max_current", 12.5, "12.5", "A")
    assert peer.registers[0xEDF0] == (125).to_bytes(2, "little")
    # a Get first (unchanged values are not written), the Set, then the read-back
    assert [c[:2] for c in peer.received[sent:]] == [b":7", b":8", b":7"]
    assert session.poller.values["battery_max_current"][0] == 12.5
    assert control.counts[("mppt", "confirmed")] == 1
    (line,) = [
        r.getMessage() for r in caplog.records if "write battery_max_current" in r.getMessage()
    ]
    assert "asked by test" in line
    assert "confirmed" in line
    # the same value again: read, found equal, not written (no NVM cycle spent)
    sent = len(peer.received)
    again = await control.write("mppt", "0xEDF0", 12.5, "test")
    assert isinstance(again, Written)
    assert again.unchanged
    assert [c[:2] for c in peer.received[sent:]] == [b":7"]
    # switch and select: device mode off on an MPPT is 4; load output control by name
    mode = await control.write("mppt", "device_mode", "OFF", "test")
    assert isinstance(mode, Written)
    assert mode.shown == "off"
    assert peer.registers[0x0200] == b"\x04"
    load = await control.write("mppt", "load_output_control", "auto", "test")
    assert isinstance(load, Written)
    assert load.shown == "auto"
    assert peer.registers[0xEDAB] == b"\x01"


async def test_device_rejecting_a_set(rig: Callable[..., object]) -> None:
    """Within our range but over this device's: it answers flags 0x04; nothing is confirmed."""
    control, peer, _ = await rig(model=b"BlueSolar MPPT\x00")  # type: ignore[misc]
    result = await control.write("mppt", "battery_max_current", 25, "test")
    assert isinstance(result, Refused)
    assert result.reason is Refusal.DEVICE_REJECTED
    assert "parameter error" in result.message
    assert peer.registers[0xEDF0] == b"\x96\x00"
    assert control.counts[("mppt", "device_rejected")] == 1


async def test_device_answering_nothing(rig: Callable[..., object]) -> None:
    control, peer, _ = await rig()  # type: ignore[misc]
    peer.ignore_sets = True
    result = await control.write("mppt", "battery_max_current", 10, "test")
    assert isinstance(result, Refused)
    assert result.reason is Refusal.NO_ANSWER
    assert len(peer.commands(b":8")) == 1  # a Set is never resent (each one is a write)
    assert control.counts[("mppt", "no_answer")] == 1


async def test_a_set_whose_echo_is_lost_is_confirmed_by_the_read_back(
    rig: Callable[..., object],
) -> None:
    """The device took the value but its echo never came: one Set only, and the read-back
    shows the value, so the write is confirmed (a resend would have written the NVM twice)."""
    control, peer, _ = await rig()  # type: ignore[misc]
    peer.silent_sets = True
    result = await control.write("mppt", "battery_max_current", 10, "test")
    assert isinstance(result, Written), result
    assert result.value == 10.0
    assert len(peer.commands(b":8")) == 1
    assert peer.registers[0xEDF0] == b"\x64\x00"


@pytest.mark.parametrize(
    ("name", "value", "why"),
    [
        ("battery_max_current", 25, "out of range 0..20"),  # the 100|20's own rating
        ("battery_max_current", 7000, "out of range"),
        ("battery_max_current", -1, "out of range"),
        ("battery_max_current", "12.55", "not a multiple of 0.1 A"),
        ("battery_max_current", "nan", "expected a number"),
        ("battery_max_current", "lots", "expected a number"),
        ("device_mode", "eco", "expected one of on, off"),  # eco is an inverter's mode
        ("load_output_control", "sometimes", "expected one of"),
    ],
)
async def test_value_out_of_range_is_never_sent(
    rig: Callable[..., object], name: str, value: object, why: str
) -> None:
    control, peer, _ = await rig()  # type: ignore[misc]
    sent = len(peer.commands(b":8"))
    result = await control.write("mppt", name, value, "test")
    assert isinstance(result, Refused)
    assert result.reason is Refusal.BAD_VALUE
    assert why in result.message
    assert len(peer.commands(b":8")) == sent


async def test_register_not_allowlisted_is_never_sent(rig: Callable[..., object]) -> None:
    control, peer, _ = await rig(writable=["battery_max_current"])  # type: ignore[misc]
    for name in ("absorption_voltage", "0xEDF7", "device_mode", "charger_temperature", "x" * 500):
        result = await control.write("mppt", name, "14.2", "test")
        assert isinstance(result, Refused)
        assert result.reason is Refusal.NOT_ALLOWED, result
    assert peer.commands(b":8") == []
    assert peer.registers[0xEDF7] == b"\xa0\x05"
    forged = await control.write("mppt", "x\nmppt: write device_mode = 'off'", 1, "test")
    assert isinstance(forged, Refused)
    assert "\n" not in forged.name
    assert "\n" not in forged.message
    result = await control.write("nobody", "battery_max_current", 1, "test")
    assert isinstance(result, Refused)
    assert result.reason is Refusal.UNKNOWN_DEVICE


async def test_writes_off_by_default(rig: Callable[..., object]) -> None:
    control, peer, _ = await rig(writable=[])  # type: ignore[misc]
    assert not control.enabled
    result = await control.write("mppt", "battery_max_current", 10, "test")
    assert isinstance(result, Refused)
    assert result.reason is Refusal.DISABLED
    assert peer.commands(b":8") == []


async def test_burst_last_wins_and_the_rate_limit_holds(rig: Callable[..., object]) -> None:
    """Ten writes of an NVM register at once: the first and the last are written, the eight
    between are superseded, and the two Sets are at least the NVM interval apart."""
    control, peer, _ = await rig(nvm_interval=0.4)  # type: ignore[misc]
    set_times: list[float] = []
    original = peer._command

    def timed(line: bytes) -> None:
        if line.startswith(b":8"):
            set_times.append(time.monotonic())
        original(line)

    peer._command = timed
    values = [5 + n for n in range(10)]
    results = await asyncio.gather(
        *(control.write("mppt", "battery_max_current", v, "test") for v in values)
    )
    written = [r for r in results if isinstance(r, Written)]
    assert [w.value for w in written] == [5, 14]
    assert all(isinstance(r, Refused) and r.reason is Refusal.SUPERSEDED for r in results[1:-1]), (
        results
    )
    assert len(set_times) == 2
    assert set_times[1] - set_times[0] >= 0.4
    assert peer.registers[0xEDF0] == (140).to_bytes(2, "little")
    # a caller that cannot wait (the HTTP API) is told when to retry
    limited = await control.write("mppt", "battery_max_current", 3, "test", wait=0.0)
    assert isinstance(limited, Refused)
    assert limited.reason is Refusal.RATE_LIMITED
    assert limited.retry_after is not None
    assert 0 < limited.retry_after <= 0.4
    # a register not kept in NVM has the short interval
    assert (await control.write("mppt", "device_mode", "off", "test", wait=0.0)).outcome == (
        "confirmed"
    )
    assert (await control.write("mppt", "device_mode", "on", "test", wait=0.2)).outcome == (
        "confirmed"
    )


def test_controls_per_family() -> None:
    assert control_for("device_mode", "mppt").kind == "switch"
    inverter = control_for("0x0200", "inverter")
    assert inverter.kind == "select"
    assert inverter.parse("eco") == 5
    with pytest.raises(ValueError, match="family 'bmv'"):
        control_for("device_mode", "bmv")
    number = control_for("0xEDF0", "mppt", "SmartSolar MPPT 150/35 rev2")
    assert (number.minimum, number.maximum, number.step, number.unit) == (0, 35, 0.1, "A")
    assert rated_current("SmartShunt 500A/50mV") is None
    assert control_for("absorption_voltage", "mppt").parse("14.45") == 14.45


async def test_simulated_mppt_obeys_writes(running: list[asyncio.Task[None]]) -> None:
    """End to end over ``simulate --pty``: the charge limit and device mode are written,
    read back, and the text stream shows the MPPT off."""
    async with simulated_pty("mppt", "--speed", "10") as path:
        config = DeviceConfig(
            name="mppt", port=path, registers=[], writable=["0xEDF0", "device_mode"]
        )
        hub = Hub()
        session = DeviceSession(config, hub, FAST)
        running.append(asyncio.get_running_loop().create_task(session.run()))
        sub = hub.subscribe("test")
        async with asyncio.timeout(10):
            while session.poller.polls < 1:
                await sub.get()
        control = Controller([session], [config])
        result = await control.write("mppt", "battery_max_current", 7.5, "test")
        assert result == Written("mppt", "battery_max_current", 7.5, "7.5", "A")
        result = await control.write("mppt", "battery_max_current", 35, "test")
        assert isinstance(result, Refused)
        assert "0..20" in result.message
        result = await control.write("mppt", "device_mode", "off", "test")
        assert isinstance(result, Written)
        assert result.shown == "off"
        async with asyncio.timeout(10):
            while (reading := await sub.get()).values.get("charger_state") != "off":
                pass
        assert reading.values["battery_max_current"] == 7.5
