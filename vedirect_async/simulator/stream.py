"""A simulated device paced in real time (divided by ``speed``) on the event loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from .device import KINDS, SimulatedDevice, check_corrupt

# -- paced async stream ---------------------------------------------------------------------


def _check_speed(speed: float) -> None:
    if not speed > 0.0:  # also rejects NaN
        raise ValueError(f"speed must be > 0 (1 = real time, inf = no pacing), not {speed!r}")


def open_stream(
    kind: str,
    *,
    speed: float = 1.0,
    seed: int | None = None,
    hex_records: bool = False,
    corrupt: float = 0.0,
) -> AsyncIterator[bytes]:
    """Chunks of a simulated device's stream, one per simulated second, paced on the loop.

    ``kind`` is ``"bmv712"``, ``"mppt"``, ``"smartshunt"`` or the path of a capture file to
    replay (looping). Chunk *n* is delivered at loop time start + n / ``speed`` (absolute
    deadlines: no drift however long it runs; a consumer that fell behind gets the missed
    chunks back to back, as from a serial buffer). Raises ValueError at once for an unknown
    kind or a bad option; the iterator runs until the consumer stops iterating.
    """
    _check_speed(speed)
    check_corrupt(corrupt)
    if kind in KINDS:
        device = SimulatedDevice(kind, seed=seed, hex_records=hex_records, corrupt=corrupt)
        return _paced(device.next_second, speed)
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
