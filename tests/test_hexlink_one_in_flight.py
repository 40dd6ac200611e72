"""HexLink (issue 14): one command in flight per port - a second question waits until the
first is answered, so an answer is never given to the wrong question; the error frame is resent."""

from __future__ import annotations

import asyncio

from vedirect_async.commands import DeviceError, Request, Value
from vedirect_async.hexframe import Command, Flags, RegisterMessage
from vedirect_async.hexlink import HexLink
from vedirect_async.parser import HexRecord


def _answer(register: int, value: bytes) -> HexRecord:
    """The device's Get answer as the reader hands it over (digits between ':' and newline)."""
    return HexRecord(RegisterMessage(Command.GET, register, Flags.NONE, value).encode()[1:-1])


async def test_second_command_waits_for_the_first_answer() -> None:
    sent: list[bytes] = []
    written = asyncio.Event()

    def write(frame: bytes) -> None:
        sent.append(frame)
        written.set()

    link = HexLink("dev", write, timeout=5)
    first = asyncio.create_task(link.command(Request.get(0xEDF0)))
    second = asyncio.create_task(link.command(Request.get(0xEDDB)))
    await asyncio.wait_for(written.wait(), 5)
    for _ in range(20):  # let the second task run as far as it can
        await asyncio.sleep(0)
    assert sent == [Request.get(0xEDF0).frame]  # the second is not on the wire yet
    assert link.busy
    written.clear()
    link.on_record(_answer(0xEDF0, b"\x64\x00"))  # Get 0xEDF0 answered: 10.0 A
    answer = await asyncio.wait_for(first, 5)
    assert isinstance(answer, Value)
    assert answer.value.value == 10.0
    await asyncio.wait_for(written.wait(), 5)
    assert sent[1:] == [Request.get(0xEDDB).frame]
    link.on_record(_answer(0xEDDB, b"\xbf\x0a"))  # 27.51 degC (the capture's async, as a Get)
    temperature = await asyncio.wait_for(second, 5)
    assert isinstance(temperature, Value)
    assert temperature.value.value == 27.51


async def test_error_frame_is_resent_then_a_typed_result() -> None:
    """The device's ':4AAAAFD' (it could not read the command) makes the link resend; an error
    frame every time is a DeviceError result, never an exception."""
    sent: list[bytes] = []
    written = asyncio.Event()

    def write(frame: bytes) -> None:
        sent.append(frame)
        written.set()

    error = HexRecord(b"4AAAAFD")
    link = HexLink("dev", write, timeout=5, retries=2)
    task = asyncio.create_task(link.command(Request.get(0xEDF0)))
    await asyncio.wait_for(written.wait(), 5)
    written.clear()
    link.on_record(error)
    await asyncio.wait_for(written.wait(), 5)  # resent at once, no timeout waited
    assert sent == [Request.get(0xEDF0).frame] * 2
    link.on_record(_answer(0xEDF0, b"\x64\x00"))
    answer = await asyncio.wait_for(task, 5)
    assert isinstance(answer, Value)
    assert link.stats.retries == 1

    task = asyncio.create_task(link.command(Request.get(0xEDF0)))
    for _ in range(3):
        written.clear()
        await asyncio.wait_for(written.wait(), 5)
        link.on_record(error)
    assert await asyncio.wait_for(task, 5) == DeviceError()
    assert len(sent) == 5
