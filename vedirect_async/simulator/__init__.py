"""Simulated VE.Direct devices and capture replay: realistic byte streams without hardware.

Three layers, each usable alone:

- :class:`SimulatedDevice` is pure (no I/O, no clock): ``next_second()`` returns the bytes a
  device sends in one second. ``"bmv712"`` (BMV-712 Smart: main block, then H block),
  ``"smartshunt"`` (SmartShunt 500A: the same without Relay and MON) and ``"mppt"``
  (SmartSolar MPPT 100/20: one block) each watch their own simulated 12 V installation: a
  200 Ah lead battery, 300 Wp of panels behind a 20 A charger, household loads (standby, a
  cycling fridge, evening lights, now and then a big inverter load) and a battery protect that
  sheds the loads at 10 % SOC. Over a simulated day the
  battery discharges at night and charges by day through bulk, absorption and float; the
  battery monitor integrates the current into consumed Ah, derives SOC from it and a capacity,
  synchronises to 100 % when charged, and grows its history counters. The simulated clock
  starts at :data:`DEFAULT_START` (or ``start``) and is independent of the wall clock, so a
  seed gives identical bytes on every run. :meth:`SimulatedDevice.from_capture` replays a
  recorded stream instead, one device update per second.
- :func:`open_stream` paces a device in real time (divided by ``speed``) on the event loop:
  an async iterator of chunks, one per simulated second, scheduled on absolute deadlines.
- :func:`cli_simulate` is ``python -m vedirect_async simulate``: the stream on a real
  pseudo-terminal (``--pty``, the service reads it like a serial port) or on stdout.

Options shared by all layers: ``hex_records`` interleaves asynchronous HEX records
(``:A…``, as SmartSolar and BMV firmware send them) between blocks, glued after a checksum
byte, or inside a block the way older firmware interrupts text; they never change the text
stream. ``corrupt`` replaces that fraction of all bytes with other random bytes. Corruption is
always *detectable*: if the random bytes put into one block happen to leave its 8-bit sum
intact (about 1 damaged block in 256 on a real line), the last one is drawn again, so a test
can require that no damaged block is ever accepted. (One way remains, rare and harmless: when
damage hits a block's leading CR LF, the parser starts at the block's next record, and if the
skipped first record's bytes happen to sum to 0 mod 256 the clean rest verifies.) Model, HEX
and corruption draw from separate seeded generators: the same seed gives the same text blocks
with or without them.

Generated devices also answer HEX commands (``SimulatedDevice.receive``; the stream's
``write``; ``simulate --pty`` reads them from the pty) and, once a host has spoken HEX, send
``:A`` records every second; ``answers=False`` is an old firmware that never answers and
``answer_delay`` a slow one. A ``name`` gives a device a stable identity: a serial number
derived from the name and history counters that follow the wall clock (issue 13).

Modules: :mod:`.plant` (the installation), :mod:`.render` (blocks and HEX records),
:mod:`.hexdevice` (registers, HEX answers, async records), :mod:`.identity` (serial and
counters of a named device), :mod:`.device` (:class:`SimulatedDevice`), :mod:`.replay`
(captures), :mod:`.stream` (pacing, :class:`SimulatorStream`), :mod:`.pty` (:class:`PtyLine`),
:mod:`.command` (the ``simulate`` command).
"""

from __future__ import annotations

from .command import cli_simulate
from .device import KINDS, SimulatedDevice
from .plant import CAPACITY_AH, DEFAULT_START
from .pty import PtyLine
from .render import async_record
from .replay import split_capture
from .stream import SimulatorStream, open_stream

__all__ = [
    "CAPACITY_AH",
    "DEFAULT_START",
    "KINDS",
    "PtyLine",
    "SimulatedDevice",
    "SimulatorStream",
    "async_record",
    "cli_simulate",
    "open_stream",
    "split_capture",
]
