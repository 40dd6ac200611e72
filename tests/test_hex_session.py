"""The HEX command path of a device session over a real pty (issue 14).

A :class:`~tests.hex_peer.HexPeer` plays the device's HEX side on the pty while the test
streams text blocks into it: answers arrive interleaved with (and inside) text blocks, and the
text readings must go on undisturbed whatever the device does with HEX.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest

from tests.hex_peer import HexPeer, Mode
from tests.pty_device import PtyDevice, bmv_block, wait_until
from vedirect_async.commands import (
    NoAnswer,
    ProductId,
    Rejected,
    Request,
    Value,
    Version,
)
from vedirect_async.config import DeviceConfig, WatchdogConfig
from vedirect_async.hexframe import Flags
from vedirect_async.hub import Hub, Subscription
from vedirect_async.parser import encode_block
from vedirect_async.poller import MAX_VALUES
from vedirect_async.reading import Reading
from vedirect_async.session import DeviceSession

FAST = WatchdogConfig(silence_timeout=5, invalid_timeout=5, backoff_initial=0.02, backoff_max=0.1)
MPPT_REGISTERS = {
    0xEDF0: b"\x96\x00",  # battery maximum current 15.0 A
    0xEDDB: b"\xc3\x0a",  # charger internal temperature 27.55 C
    0x010A: b"HQ1840MAEI4\x00",
    0x010B: b"SmartSolar MPPT 100|20\x00",
}


def mppt_block(n: int) -> bytes:
    """A text block without PID, SER# or FW (the second block of a newer MPPT)."""
    return encode_block([(b"V", b"%d" % (12000 + n % 1000)), (b"I", b"1500"), (b"CS", b"3")])


class Rig:
    """A session on a pty with a HEX peer; text blocks streamed by the test."""

    def __init__(self, device: PtyDevice, peer: HexPeer, session: DeviceSession) -> None:
        self.device = device
        self.peer = peer
        self.session = session
        self.sub: Subscription = session.hub.subscribe("test")

    async def reading(self) -> Reading:
        return await asyncio.wait_for(self.sub.get(), 5)

    async def readings_until(self, predicate: object, within: float = 5.0) -> Reading:
        """Readings until one makes ``predicate(reading)`` true (readings flow every 5 ms)."""
        assert callable(predicate)

        async def loop() -> Reading:
            while True:
                reading = await self.sub.get()
                if predicate(reading):
                    return reading

        return await asyncio.wait_for(loop(), within)


@pytest.fixture
async def rig_factory(
    device: PtyDevice, running: list[asyncio.Task[None]]
) -> AsyncIterator[object]:
    peers: list[HexPeer] = []

    async def make(
        mode: Mode = "answer",
        *,
        registers: list[str] | None = None,
        interval: float = 30.0,
        answer_within: float = 0.5,
        delay: float = 0.0,
        block: object = bmv_block,
        keepalive: float | None = None,
    ) -> Rig:
        peer = HexPeer(device, MPPT_REGISTERS, mode=mode, delay=delay)
        peer.start()
        peers.append(peer)
        config = DeviceConfig(
            name="mppt",
            port=str(device.link),
            registers=registers if registers is not None else [],
            register_interval=interval,
        )
        session = DeviceSession(config, Hub(), FAST)
        session.link.timeout = answer_within
        if keepalive is not None:
            session.poller.keepalive = keepalive
        rig = Rig(device, peer, session)
        running.append(asyncio.get_running_loop().create_task(session.run()))
        await wait_until(lambda: session.opened_at is not None, session.changed)
        if mode == "inside":
            assert callable(block)
            device.stream(lambda n: _split(block(n), peer.take()))
        else:
            device.stream(block)  # type: ignore[arg-type]
        return rig

    yield make
    for peer in peers:
        peer.stop()


def _split(block: bytes, inside: bytes) -> bytes:
    """``inside`` put in the middle of ``block`` (between two of its bytes)."""
    middle = len(block) // 2
    return block[:middle] + inside + block[middle:]


async def test_answering_device_get_set_and_text_goes_on(rig_factory: object) -> None:
    """Get and Set answered while text blocks keep arriving; the identity read at connect."""
    assert callable(rig_factory)
    rig: Rig = await rig_factory()
    session = rig.session
    await rig.reading()
    before = session.state.readings
    result = await session.command(Request.get(0xEDF0))
    assert isinstance(result, Value)
    assert result.value.value == 15.0
    result = await session.command(Request.set_scaled(0xEDF0, 10.0))
    assert isinstance(result, Value)
    assert result.value.value == 10.0
    assert rig.peer.registers[0xEDF0] == b"\x64\x00"
    assert await session.command(Request.ping()) == Version("1.16", 0x4116)
    assert await session.command(Request.product_id()) == ProductId(0xA053)
    await rig.reading()
    assert session.state.readings > before
    assert session.state.parser.checksum_errors == 0
    assert session.link.stats.timeouts == 0
    assert not session.link.mute


async def test_answers_inside_text_blocks_are_matched_and_blocks_kept(rig_factory: object) -> None:
    """An answer in the middle of a text block: matched, and the block still verifies."""
    assert callable(rig_factory)
    rig: Rig = await rig_factory("inside")
    result = await rig.session.command(Request.get(0xEDDB))
    assert isinstance(result, Value)
    assert result.value.value == pytest.approx(27.55)
    await rig.reading()
    assert rig.session.state.parser.checksum_errors == 0


async def test_flags_are_typed_results_and_text_goes_on(rig_factory: object) -> None:
    assert callable(rig_factory)
    rig: Rig = await rig_factory()
    result = await rig.session.command(Request.get(0x1234))
    assert result == Rejected(0x1234, Flags.UNKNOWN_ID)
    result = await rig.session.command(Request.set(0xEDF0, b"\x01"))  # wrong length
    assert result == Rejected(0xEDF0, Flags.PARAMETER_ERROR)
    assert rig.session.link.stats.rejected == 2
    await rig.reading()


async def test_never_answering_device_is_left_alone(
    rig_factory: object, caplog: pytest.LogCaptureFixture
) -> None:
    """Old firmware: N unanswered pings, one log line, no more commands, text goes on."""
    caplog.set_level(logging.INFO, logger="vedirect_async")
    assert callable(rig_factory)
    rig: Rig = await rig_factory("mute", registers=["0xEDDB"], interval=0.05, answer_within=0.1)
    session = rig.session
    await rig.readings_until(lambda _: session.link.mute)
    sent = len(rig.peer.received)
    link_mute_after = session.link.mute_after
    # mute_after unanswered pings (one more per reconnect that cut a wait short, if any)
    assert link_mute_after <= sent <= link_mute_after + session.state.restarts, rig.peer.received
    assert all(c == b":154\n" for c in rig.peer.received)
    for _ in range(30):  # ~0.15 s of text at 5 ms a block: more than the poll interval
        await rig.reading()
    assert len(rig.peer.received) == sent
    lines = [r for r in caplog.records if "answered none" in r.getMessage()]
    assert len(lines) == 1
    assert session.state.hex.stopped  # visible on the device state
    assert session.state.hex.timeouts == sent
    assert session.state.parser.checksum_errors == 0


async def test_slow_device_is_answered_through_a_retry(rig_factory: object) -> None:
    """The answer to the first send arrives after the timeout, during the retry: matched."""
    assert callable(rig_factory)
    rig: Rig = await rig_factory("slow", delay=0.15, answer_within=0.1)
    result = await rig.session.command(Request.get(0xEDF0))
    assert isinstance(result, Value)
    assert result.value.value == 15.0
    stats = rig.session.link.stats
    assert stats.timeouts >= 1
    assert stats.retries >= 1
    assert not rig.session.link.mute


async def test_echoing_line_gives_no_answer_and_is_muted(rig_factory: object) -> None:
    """A line that echoes commands: the echo is never taken for an answer."""
    assert callable(rig_factory)
    rig: Rig = await rig_factory("echo", answer_within=0.1)
    session = rig.session
    await rig.readings_until(lambda _: session.link.mute)
    result = await session.command(Request.get(0xEDF0))
    assert isinstance(result, NoAnswer)
    assert session.link.stats.echoes >= 3
    assert session.link.stats.answers == 0
    await rig.reading()


async def test_polled_registers_and_identity_join_the_readings(rig_factory: object) -> None:
    """A text stream without PID/SER#/FW still shows the product; a register is a value."""
    assert callable(rig_factory)
    rig: Rig = await rig_factory(registers=["charger temperature"], block=mppt_block)
    reading = await rig.readings_until(lambda r: "charger_temperature" in r.values)
    assert reading.values["charger_temperature"] == pytest.approx(27.55)
    assert reading.values["voltage"] == pytest.approx(12.0, abs=1)  # text values untouched
    reading = await rig.readings_until(lambda r: r.serial is not None)
    assert reading.pid == 0xA053
    assert reading.product == "SmartSolar MPPT 100|20"
    assert reading.serial == "HQ1840MAEI4"
    assert reading.firmware == "1.16"
    identity = rig.session.state.identity  # kept on the device state too
    assert identity is not None
    assert identity.model == "SmartSolar MPPT 100|20"


async def test_family_defaults_read_the_mppt_temperature(rig_factory: object) -> None:
    assert callable(rig_factory)
    rig: Rig = await rig_factory(registers=["defaults"], block=mppt_block)
    reading = await rig.readings_until(lambda r: "charger_temperature" in r.values)
    assert reading.values["charger_temperature"] == pytest.approx(27.55)
    assert rig.peer.commands(b":7DBED")  # asked because 0xA053 is an MPPT


async def test_async_records_update_polled_values_newest_wins(rig_factory: object) -> None:
    """An :A record of a polled register updates its value; one of another register does not
    join the readings (counted only)."""
    assert callable(rig_factory)
    rig: Rig = await rig_factory(registers=["0xEDDB"], interval=0)
    await rig.readings_until(lambda r: r.values.get("charger_temperature") == 27.55)
    rig.device.write(b":ABBED008D28EE\n")  # :A panel voltage 103.81 V (not polled)
    rig.device.write(b":ADBED00C40AB5\n")  # :A charger temperature 27.56 C
    reading = await rig.readings_until(lambda r: r.values.get("charger_temperature") == 27.56)
    assert "panel_voltage" not in reading.values
    assert rig.session.poller.ignored == 1


async def test_flood_of_async_records_and_garbage_stays_bounded(rig_factory: object) -> None:
    """Thousands of :A records of distinct (polled) registers and garbage after ':': bounded
    values, counted garbage, readings on."""
    from vedirect_async.hexframe import Command, RegisterMessage  # noqa: PLC0415

    assert callable(rig_factory)
    polled = [f"0x{0x4000 + n:04X}" for n in range(100)]
    rig: Rig = await rig_factory("mute", registers=polled)  # a silent peer refuses none
    flood = b"".join(
        RegisterMessage(Command.ASYNC, 0x4000 + n, Flags.NONE, b"\x01\x00").encode()
        for n in range(2000)
    )
    garbage = b":XYZ\n:" + b"7" * 500 + b"\n"
    for start in range(0, len(flood), 2048):
        rig.device.write(flood[start : start + 2048] + garbage)
        await rig.reading()
    session = rig.session
    await rig.readings_until(lambda _: session.poller.dropped > 0)
    assert len(session.poller.values) == MAX_VALUES
    assert session.link.stats.async_values >= MAX_VALUES
    assert session.state.parser.hex_bad > 0
    await rig.reading()


async def test_keepalive_pings_when_nothing_else_is_sent(rig_factory: object) -> None:
    """register_interval = 0: after the connect reads, only keep-alive pings go out."""
    assert callable(rig_factory)
    rig: Rig = await rig_factory(registers=["0xEDDB"], interval=0, keepalive=0.1)
    await rig.readings_until(lambda _: len(rig.peer.commands(b":154")) >= 3)
    assert len(rig.peer.commands(b":7DBED")) == 1  # the register, read once at connect


async def test_device_whose_text_pauses_after_hex_is_left_alone(
    rig_factory: object, caplog: pytest.LogCaptureFixture
) -> None:
    """Older firmware stops its text for seconds after a HEX command: twice, and HEX stops."""
    caplog.set_level(logging.INFO, logger="vedirect_async")
    assert callable(rig_factory)
    rig: Rig = await rig_factory(registers=["0xEDDB"], interval=0.05)
    session = rig.session
    session.text_pause = 0.2
    loop = asyncio.get_running_loop()
    pauses: list[float] = []  # when each pause began
    paused = False

    def resume() -> None:
        nonlocal paused
        paused = False
        rig.device.stream(bmv_block)

    def pause(_line: bytes) -> None:  # the device's text stops for 0.3 s after a command
        nonlocal paused
        if not paused and len(pauses) < 4:
            paused = True
            pauses.append(loop.time())
            rig.device.stop()
            loop.call_later(0.3, resume)

    rig.peer.on_command = pause
    await rig.readings_until(lambda _: session.link.mute)
    assert any("text stream paused" in r.getMessage() for r in caplog.records)
    sent = len(rig.peer.received)
    for _ in range(30):
        await rig.reading()
    assert len(rig.peer.received) == sent


async def test_a_poller_bug_is_logged_and_contained(caplog: pytest.LogCaptureFixture) -> None:
    """An unexpected error in the HEX path ends polling for the connection, logged, no raise."""
    from vedirect_async.hexlink import HexLink  # noqa: PLC0415
    from vedirect_async.poller import RegisterPoller  # noqa: PLC0415

    def broken(_data: bytes) -> None:
        raise RuntimeError("a bug")

    poller = RegisterPoller("dev", HexLink("dev", broken), (0xEDDB,), 30)
    await asyncio.wait_for(poller.run(), 5)
    assert any("HEX polling failed" in r.getMessage() for r in caplog.records)
