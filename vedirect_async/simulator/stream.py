"""A simulated device paced in real time (divided by ``speed``) on the event loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path

from .device import KINDS, SimulatedDevice, check_corrupt

# -- paced async stream ---------------------------------------------------------------------


def _check_speed(speed: float) -> None:
    if not speed > 0.0:  # also rejects NaN
        raise ValueError(f"speed must be > 0 (1 = real time, inf = no pacing), not {speed!r}")


class SimulatorStream:
    """A simulated device on the event loop: its stream out, paced; HEX commands in, answered.

    Iterate it for the chunks (one per simulated second, with answers in between);
    :meth:`write` is the host writing to the device: the answers (see
    :meth:`SimulatedDevice.receive`) come out of the iterator ``answer_delay`` seconds later
    (0: at once; a slow device for tests). A device made with ``answers=False`` never answers.
    """

    def __init__(self, device: SimulatedDevice, speed: float, answer_delay: float = 0.0) -> None:
        self.device = device
        self._speed = speed
        self._delay = answer_delay
        self._answers: asyncio.Queue[bytes] = asyncio.Queue()
        self._chunks: AsyncGenerator[bytes, None] | None = None

    def write(self, data: bytes) -> None:
        """Bytes from the host; call from the event loop's thread."""
        answer = self.device.receive(data)
        if not answer:
            return
        if self._delay > 0:
            asyncio.get_running_loop().call_later(self._delay, self._answers.put_nowait, answer)
        else:
            self._answers.put_nowait(answer)

    def __aiter__(self) -> SimulatorStream:
        return self

    async def __anext__(self) -> bytes:
        if self._chunks is None:
            self._chunks = self._run()
        return await anext(self._chunks)

    async def aclose(self) -> None:
        """Stop the stream (as an async generator's ``aclose``)."""
        if self._chunks is not None:
            await self._chunks.aclose()

    async def _run(self) -> AsyncGenerator[bytes, None]:
        loop = asyncio.get_running_loop()
        start = loop.time()
        n = 0
        answers = self._answers
        while True:
            delay = start + n / self._speed - loop.time()
            if delay > 0:
                try:
                    async with asyncio.timeout(delay):
                        answer = await answers.get()
                except TimeoutError:
                    pass
                else:
                    yield answer
                    continue
            else:  # behind schedule: still let the loop run other tasks
                await asyncio.sleep(0)
            while not answers.empty():
                yield answers.get_nowait()
            yield self.device.next_second()
            n += 1


def open_stream(
    kind: str,
    *,
    speed: float = 1.0,
    seed: int | None = None,
    hex_records: bool = False,
    corrupt: float = 0.0,
    name: str | None = None,
    answers: bool = True,
    answer_delay: float = 0.0,
) -> AsyncIterator[bytes]:
    """Chunks of a simulated device's stream, one per simulated second, paced on the loop.

    ``kind`` is ``"bmv712"``, ``"mppt"``, ``"smartshunt"`` or the path of a capture file to
    replay (looping). Chunk *n* is delivered at loop time start + n / ``speed`` (absolute
    deadlines: no drift however long it runs; a consumer that fell behind gets the missed
    chunks back to back, as from a serial buffer). Raises ValueError at once for an unknown
    kind or a bad option; the iterator runs until the consumer stops iterating.

    A generated device comes back as a :class:`SimulatorStream`: its ``write`` takes HEX
    commands (``answers=False``: an old firmware that never answers; ``answer_delay``: a slow
    one). ``name`` gives it a stable identity: a serial number derived from the name and
    history counters that continue from the wall clock (issue 13).
    """
    _check_speed(speed)
    check_corrupt(corrupt)
    if not answer_delay >= 0:
        raise ValueError(f"answer delay must be >= 0 seconds, not {answer_delay!r}")
    if kind in KINDS:
        device = SimulatedDevice(
            kind,
            seed=seed,
            hex_records=hex_records,
            corrupt=corrupt,
            name=name,
            wall_start=datetime.now(UTC) if name is not None else None,
            wall_speed=speed if speed != float("inf") else 1.0,
            answers=answers,
        )
        return SimulatorStream(device, speed, answer_delay)
    path = Path(kind)
    if not path.is_file():
        raise ValueError(
            f"unknown simulator kind {kind!r}: expected one of {', '.join(KINDS)} "
            "or the path of a capture file"
        )
    if hex_records:
        raise ValueError(f"{kind}: HEX records can only be added to generated streams")
    return _replay(path, speed, seed, corrupt)


async def _replay(
    path: Path, speed: float, seed: int | None, corrupt: float
) -> AsyncIterator[bytes]:
    data = await asyncio.to_thread(path.read_bytes)
    device = SimulatedDevice.from_capture(data, seed=seed, corrupt=corrupt, name=str(path))
    async for chunk in _paced(device.next_second, speed):
        yield chunk


async def _paced(next_chunk: Callable[[], bytes], speed: float) -> AsyncIterator[bytes]:
    loop = asyncio.get_running_loop()
    start = loop.time()
    n = 0
    while True:
        delay = start + n / speed - loop.time()
        # Always yield to the loop, even when behind schedule, so a fast stream never
        # starves other tasks.
        await asyncio.sleep(max(0.0, delay))
        yield next_chunk()
        n += 1
