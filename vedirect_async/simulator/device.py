"""SimulatedDevice: a VE.Direct device as a pure byte source (generated or replayed).

HEX interleaving and corruption live here too: both act on the bytes of one second.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

from ..fields import product_name
from .hexdevice import HexResponder, Identity, RegisterModel, async_burst, bmv_model, mppt_model
from .identity import Nominal, serial_for
from .plant import DEFAULT_START, SECOND, Plant
from .render import (
    async_record,
    bmv_blocks,
    bmv_registers,
    bmv_templates,
    mppt_blocks,
    mppt_registers,
    mppt_template,
)
from .replay import split_updates

KINDS = ("bmv712", "mppt", "smartshunt")
# product id and firmware of each kind (the text stream's PID and FW)
_PRODUCTS = {"bmv712": (0xA381, "4.08"), "smartshunt": (0xA389, "4.05"), "mppt": (0xA05F, "1.59")}

# -- the device -----------------------------------------------------------------------------

_HEX_RECORD_RE = re.compile(rb":([0-9A-F]{3,})\n")
_HEX_BYTES = frozenset(b"0123456789ABCDEF:\n")


def _rng(seed: int | None, stream: str) -> random.Random:
    """An independent generator per concern, so enabling one option never shifts another."""
    return random.Random() if seed is None else random.Random(f"{seed}/{stream}")


class SimulatedDevice:
    """A VE.Direct device as a pure byte source: ``next_second()`` is one second of output.

    ``kind`` is one of :data:`KINDS`. No I/O and no clock: the simulated time starts at
    ``start`` (default :data:`DEFAULT_START`) and advances one second per call, so a device-day
    can be generated as fast as the CPU allows. Use :meth:`from_capture` to replay a recording.

    :meth:`receive` answers HEX commands (``answers=False``: never, like old firmware).
    ``name`` gives the device a stable identity: its serial is derived from the name, and its
    history counters start at their nominal values for ``wall_start`` and never pass them for
    the wall-clock time ``wall_start + seconds / wall_speed`` (:mod:`.identity`).
    """

    __slots__ = (
        "_async_sent",
        "_blocks",
        "_corrupt",
        "_corrupt_rng",
        "_gap",
        "_hex_rng",
        "_nominal",
        "_plant",
        "_registers",
        "_replay",
        "_responder",
        "_seconds",
        "_wall_speed",
        "_wall_start",
        "identity",
        "kind",
        "model",
    )

    def __init__(
        self,
        kind: str,
        *,
        seed: int | None = None,
        start: datetime | None = None,
        hex_records: bool = False,
        corrupt: float = 0.0,
        name: str | None = None,
        wall_start: datetime | None = None,
        wall_speed: float = 1.0,
        answers: bool = True,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(
                f"unknown simulated device {kind!r}: expected one of {', '.join(KINDS)} "
                "(use SimulatedDevice.from_capture to replay a capture file)"
            )
        check_corrupt(corrupt)
        self.kind = kind
        self._seconds = 0
        self._replay: list[list[bytes]] = []
        model_rng = _rng(seed, "model")
        self._plant: Plant | None = Plant.create(
            model_rng, start or DEFAULT_START, aux_unused=kind == "smartshunt"
        )
        plant = self._plant
        if kind == "mppt" and name is None:  # drawn as before, so seeded streams stay the same
            suffix = "".join(
                model_rng.choice("0123456789ABCDEFGHJKLMNPQRSTUVWXYZ") for _ in range(5)
            )
            serial = f"HQ2{model_rng.randint(0, 4)}{model_rng.randint(10, 52)}{suffix}"
        else:
            serial = serial_for(name if name is not None else f"seed {seed}", kind)
        pid, firmware = _PRODUCTS[kind]
        self.identity = Identity(pid, firmware, serial, product_name(pid))
        # A named device continues its history from the wall clock (issue 13).
        self._nominal = None if name is None else Nominal.of(name, kind)
        self._wall_start = wall_start or (start or DEFAULT_START)
        self._wall_speed = wall_speed
        if self._nominal is not None:
            self._nominal.start(plant, self._wall_start)
        self.model: RegisterModel | None
        if kind == "mppt":
            block = mppt_template(serial.encode())
            self._blocks: Callable[[Plant], list[bytes]] = lambda p: mppt_blocks(p, block)
            self._registers: Callable[[Plant], list[tuple[int, float]]] | None = mppt_registers
            self.model = mppt_model(plant, self.identity, self._uptime)
        else:
            relay = kind == "bmv712"
            main, history = bmv_templates(smartshunt=not relay)
            self._blocks = lambda p: bmv_blocks(p, main, history, relay)
            self._registers = bmv_registers
            self.model = bmv_model(plant, self.identity, self._uptime, relay=relay)
        if not hex_records:
            self._registers = None
        self._responder = HexResponder(self.model) if answers else None
        self._async_sent: dict[int, bytes] = {}
        self._hex_rng = _rng(seed, "hex")
        self._corrupt = corrupt
        self._corrupt_rng = _rng(seed, "corrupt")
        self._gap = self._next_gap()

    @classmethod
    def from_capture(
        cls, data: bytes, *, seed: int | None = None, corrupt: float = 0.0, name: str = "capture"
    ) -> SimulatedDevice:
        """Replay recorded bytes, one device update per second, looping at the end.

        ``data`` is split on block boundaries (:func:`split_capture`); the seconds joined
        give ``data`` back byte for byte. ``corrupt`` works as for generated streams.
        """
        check_corrupt(corrupt)
        seconds = split_updates(data)
        if not seconds:
            raise ValueError(f"{name}: no VE.Direct text block found (nothing to replay)")
        self = cls.__new__(cls)
        self.kind = name
        self._seconds = 0
        self._replay = seconds
        self._plant = None
        self.identity = None  # type: ignore[assignment]
        self.model = None
        self._responder = None  # a recording cannot answer
        self._nominal = None
        self._async_sent = {}
        self._blocks = lambda _p: []
        self._registers = None
        self._hex_rng = _rng(seed, "hex")
        self._corrupt = corrupt
        self._corrupt_rng = _rng(seed, "corrupt")
        self._gap = self._next_gap()
        return self

    @property
    def time(self) -> datetime:
        """Simulated time of the last second returned (start time before the first)."""
        if self._plant is None:
            return DEFAULT_START + self._seconds * SECOND
        return self._plant.time

    @property
    def seconds(self) -> int:
        """How many seconds have been generated."""
        return self._seconds

    @property
    def wall_time(self) -> datetime:
        """The wall-clock time a named device's counters follow (start + seconds / speed)."""
        return self._wall_start + timedelta(seconds=self._seconds / self._wall_speed)

    @property
    def hex_mode(self) -> bool:
        """Whether a valid HEX command was received: the device then sends ``:A`` records."""
        return self._responder is not None and self._responder.active

    def _uptime(self) -> int:
        return self._seconds

    def receive(self, data: bytes) -> bytes:
        """Bytes a host wrote to the device -> the answer records, to be sent at once.

        Pure, like :meth:`next_second`: answers reflect the device at its current second. A
        device made with ``answers=False`` (old firmware) and a replayed capture never answer.
        """
        if self._responder is None:
            return b""
        return b"".join(self._responder.feed(data))

    def next_second(self) -> bytes:
        """The bytes the device sends during the next second."""
        self._seconds += 1
        if self._replay:
            units = self._replay[(self._seconds - 1) % len(self._replay)]
            if not self._corrupt:
                return b"".join(units)
            return b"".join(self._damage(unit, hex_record=False) for unit in units)
        plant = self._plant
        assert plant is not None
        plant.step()
        if self._nominal is not None:
            self._nominal.cap(plant, self.wall_time)
        blocks = self._blocks(plant)
        burst = b""
        if self.model is not None and self.hex_mode:  # glued after the last checksum byte
            burst = b"".join(async_burst(self.model, self._async_sent, self.kind))
        if self._registers is None and not self._corrupt:
            return b"".join(blocks) + burst
        records = self._pick_records(plant) if self._registers is not None else []
        if self._corrupt:
            blocks = [self._damage(block, hex_record=False) for block in blocks]
            records = [self._damage(record, hex_record=True) for record in records]
        return self._interleave(blocks, records) + burst

    def iter_seconds(self, count: int) -> Iterator[bytes]:
        """The next ``count`` seconds, one ``bytes`` each."""
        for _ in range(count):
            yield self.next_second()

    # -- HEX interleaving ----------------------------------------------------------------

    def _pick_records(self, plant: Plant) -> list[bytes]:
        assert self._registers is not None
        rng = self._hex_rng
        if rng.random() >= 0.5:
            return []
        registers = self._registers(plant)
        return [async_record(*item) for item in rng.sample(registers, rng.randint(1, 3))]

    def _interleave(self, blocks: list[bytes], records: list[bytes]) -> bytes:
        """Put each HEX record before, between or after blocks, or inside one.

        Inside a block a record may go anywhere except between ``Checksum\\t`` and the
        checksum byte (protocol.md section 3.1). The text bytes stay in order.
        """
        rng = self._hex_rng
        # (block index, offset in block) -> records inserted there; offset len = after it
        slots: dict[tuple[int, int], list[bytes]] = {}
        for record in records:
            index = rng.randrange(len(blocks))
            size = len(blocks[index])
            # inside the block (never just before its checksum byte) in a quarter of cases,
            # else just before the block or glued after its checksum byte
            inside = rng.random() < 0.25
            offset = rng.randrange(1, size - 1) if inside else rng.choice((0, size))
            slots.setdefault((index, offset), []).append(record)
        out: list[bytes] = []
        for index, block in enumerate(blocks):
            cuts = sorted(offset for i, offset in slots if i == index)
            pos = 0
            for offset in cuts:
                out.append(block[pos:offset])
                out.extend(slots[(index, offset)])
                pos = offset
            out.append(block[pos:])
        return b"".join(out)

    # -- corruption ------------------------------------------------------------------------

    def _next_gap(self) -> int:
        """Clean bytes before the next corrupted one (geometric, mean 1/corrupt - 1)."""
        p = self._corrupt
        if p <= 0.0:
            return 1 << 62
        if p >= 1.0:
            return 0
        u = 1.0 - self._corrupt_rng.random()  # (0, 1]
        return int(math.log(u) / math.log1p(-p))

    def _damage(self, unit: bytes, *, hex_record: bool) -> bytes:
        """Replace the bytes of ``unit`` that the running gap lands on; keep damage detectable."""
        n = len(unit)
        pos = self._gap
        if pos >= n:
            self._gap = pos - n
            return unit
        rng = self._corrupt_rng
        out = bytearray(unit)
        last = pos
        while pos < n:
            out[pos] ^= rng.randrange(1, 256)
            last = pos
            pos += 1 + self._next_gap()
        self._gap = pos - n
        if hex_record:
            if _HEX_RECORD_RE.fullmatch(out) and _hex_sum_ok(bytes(out)):
                choices = [b for b in range(256) if b not in _HEX_BYTES and b != unit[last]]
                out[last] = rng.choice(choices)
        elif sum(out) & 0xFF == 0:
            out[last] = rng.choice([b for b in range(256) if b not in (out[last], unit[last])])
        return bytes(out)


def _hex_sum_ok(record: bytes) -> bool:
    digits = record[1:-1]
    return len(digits) % 2 == 1 and sum(bytes.fromhex("0" + digits.decode())) & 0xFF == 0x55


def check_corrupt(corrupt: float) -> None:
    if not 0.0 <= corrupt <= 1.0:
        raise ValueError(f"corrupt must be a fraction of bytes between 0 and 1, not {corrupt!r}")
