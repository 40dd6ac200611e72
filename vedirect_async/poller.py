"""What a device session asks its device over HEX: identity at connect, then registers.

:class:`RegisterPoller` runs for one connection of one device (the session starts it when a
writable port opens and cancels it when the port closes):

1. **Identity**: ping (the firmware version; a device that never answers is detected here by
   :class:`~vedirect_async.hexlink.HexLink` and left alone), product id, application version,
   serial number (0x010A) and model name (0x010B). Kept in :attr:`identity` across connections,
   so a device whose text stream lacks PID, SER# or FW still shows its name.
2. **Registers**: each configured register every ``interval`` seconds (0 = only at connect).
   A register the device refuses (flags != 0) is logged once and asked no more.
3. **History** (MPPTs): the total record 0x104F and the day records 0x1050-0x106E (today
   and up to 30 days before, as many as the device has), at connect and again after each day
   change (the text field ``HSDS``, ``day_sequence``, changes); handed to ``on_history``.
4. **Keep-alive**: a ping when nothing was sent for :data:`KEEPALIVE` seconds, so devices that
   drop out of HEX mode keep sending their asynchronous ``:A`` values.

Values (polled or asynchronous, whichever arrived last wins) live in :attr:`values` under
their catalogue name, bounded to :data:`MAX_VALUES` names; :meth:`merge` adds them and the
identity to each text reading before the session publishes it, so they reach every output.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Mapping
from datetime import date

from .commands import (
    Identity,
    NoAnswer,
    ProductId,
    Rejected,
    Request,
    Result,
    Value,
    Version,
    register_label,
)
from .daily import DAYS, FIRST_DAY, TOTAL, DailyRecord, HistoryDay, HistoryTotal, daily_record
from .errors import PortClosedError
from .fields import Value as FieldValue
from .fields import product_family, product_name
from .hexlink import HexLink
from .reading import Reading
from .registers import REGISTERS, RegisterValue, catalogue_value

__all__ = [
    "DEFAULT_REGISTERS",
    "KEEPALIVE",
    "MAX_VALUES",
    "RegisterPoller",
    "default_registers",
    "value_name",
]

_LOGGER = logging.getLogger(__name__)

KEEPALIVE = 60.0  # s without a command before a keep-alive ping (krahabb: 1 min)
MAX_VALUES = 64  # register values kept per device (async records of any register included)
NO_IDENTITY = Identity()  # nothing told over HEX yet (compared by identity on the hot path)

# Registers read by default, per product family (config: registers = ["defaults", ...]); the
# text stream already carries everything else these devices measure.
DEFAULT_REGISTERS: Mapping[str, tuple[int, ...]] = {
    "mppt": (0xEDDB,),  # charger internal temperature
    # the history counters of low/high auxiliary voltage alarms: the only ones of 0x0300-0x0311
    # whose text twins (H13, H14) no BMV or SmartShunt text block carries (protocol.md §2)
    "bmv": (0x030C, 0x030D),
}


def default_registers(pid: int | None) -> tuple[int, ...]:
    """The registers read by default for a product (none for an unknown one)."""
    return DEFAULT_REGISTERS.get(product_family(pid), ()) if pid is not None else ()


def value_name(register: int) -> str:
    """The name a register's value has in readings: its catalogue name (``charger_temperature``;
    ``panel_voltage``, as the text field of the same quantity); ``register_0x1234`` for an id not
    in the register table."""
    reg = REGISTERS.get(register)
    return reg.name if reg is not None else f"register_0x{register:04x}"


def _field_value(value: RegisterValue) -> FieldValue | None:
    """A register value as a reading holds it (enum names, reasons, on/off, UNAVAILABLE for
    the device's n/a); None for records (history days), which are no reading value."""
    reg = REGISTERS.get(value.register)
    raw = value.value
    if reg is None:
        return raw if isinstance(raw, str) else None
    if raw is not None and not isinstance(raw, int | float | str):
        return None
    return catalogue_value(reg, raw)


class RegisterPoller:
    """Identity and register values of one device, read through its :class:`HexLink`."""

    def __init__(
        self,
        name: str,
        link: HexLink,
        registers: tuple[int, ...],
        interval: float,
        *,
        defaults: bool = True,
        on_history: Callable[[tuple[DailyRecord, ...], date], None] | None = None,
        on_identity: Callable[[Identity], None] | None = None,
    ) -> None:
        """``defaults``: also the product family's default registers (once the PID is known)."""
        self.name = name
        self.link = link
        self.identity = NO_IDENTITY
        self.values: dict[str, tuple[FieldValue, float]] = {}  # name -> (value, monotonic)
        self.polls = 0  # complete rounds over the registers
        self.dropped = 0  # values not kept (over MAX_VALUES)
        self.ignored = 0  # :A values of registers not polled
        self._configured = registers
        self._defaults = defaults
        self._interval = interval
        self._refused: set[int] = set()
        self._last_sent = 0.0
        self._text_pid: int | None = None
        self._on_history = on_history
        self._on_identity = on_identity
        self.keepalive = KEEPALIVE  # s without a command before a keep-alive ping
        self._history_due = True  # read at connect, and again after a day change
        self._wake = asyncio.Event()  # set when there is work before the next poll
        self._day_sequence: int | None = None
        self.history_total: HistoryTotal | None = None

    # -- values in, readings out ---------------------------------------------------------------

    def on_async(self, value: RegisterValue) -> None:
        """An asynchronous ``:A`` value: it updates a register this device polls (the newest
        value wins); other registers are counted only (a device sends many, and a value
        nobody asked for must not appear in the outputs of a device it may not belong to)."""
        if value.register in self.registers():
            self.store(value)
        else:
            self.ignored += 1

    def reset(self) -> None:
        """A new connection (perhaps another device on the port): forget values and identity."""
        self.values.clear()
        self.identity = NO_IDENTITY
        self._text_pid = None
        self._refused.clear()
        self._history_due = True

    def store(self, value: RegisterValue, mono: float | None = None) -> None:
        """Keep a register value (a poll answer or an ``:A`` record); the newest wins."""
        shown = _field_value(value)
        if shown is None:
            return
        name = value_name(value.register)
        if name not in self.values and len(self.values) >= MAX_VALUES:
            self.dropped += 1
            return
        self.values[name] = (shown, time.monotonic() if mono is None else mono)

    def merge(self, reading: Reading) -> Reading:
        """``reading`` with the register values and the HEX identity added where it lacks them."""
        if reading.pid is not None:
            self._text_pid = reading.pid
        sequence = reading.values.get("day_sequence")
        if isinstance(sequence, int) and not isinstance(sequence, bool):
            if self._day_sequence is not None and sequence != self._day_sequence:
                self._history_due = True  # a new day: yesterday's record is complete now
                self._wake.set()
            self._day_sequence = sequence
        ident = self.identity
        if ident is NO_IDENTITY and not self.values:
            return reading  # the hot path of a device that speaks no HEX: nothing to add
        if self._interval > 0:  # a value not refreshed for 3 polls is stale: drop it
            oldest = reading.monotonic - 3 * self._interval - self.link.timeout
            for name in [n for n, (_, at) in self.values.items() if at < oldest]:
                del self.values[name]
        values = dict(reading.values)
        for name, (value, _) in self.values.items():
            values.setdefault(name, value)  # a text field of the same name stays
        pid = reading.pid if reading.pid is not None else ident.pid
        product = reading.product
        if product is None:
            product = ident.model or (product_name(pid) if pid is not None else None)
        return dataclasses.replace(
            reading,
            values=values,
            pid=pid,
            product=product,
            serial=reading.serial or ident.serial,
            firmware=reading.firmware or ident.firmware,
        )

    # -- the conversation ----------------------------------------------------------------------

    async def run(self) -> None:
        """Identity, then the registers every ``interval`` s, until cancelled or the port
        closes; returns at once (and stays quiet) for a device that does not answer HEX."""
        try:
            await self._identify()
            await self._poll()
            while not self.link.mute:
                if self._history_due:
                    await self._read_history()
                if self._interval > 0:
                    await self._wait(self._interval)
                    await self._poll()
                else:
                    await self._wait(self.keepalive)
        except PortClosedError:
            return
        except Exception:  # a bug here must not end the connection; the readings go on
            _LOGGER.exception("%s: HEX polling failed; no more HEX on this connection", self.name)

    async def _ask(self, request: Request) -> Result:
        self._last_sent = time.monotonic()
        return await self.link.command(request)

    async def _identify(self) -> None:
        ident = self.identity
        firmware = ident.firmware
        result = await self._ask(Request.ping())
        if isinstance(result, NoAnswer) or self.link.mute:
            return
        if isinstance(result, Version):
            firmware = result.version
        pid = ident.pid
        result = await self._ask(Request.product_id())
        if isinstance(result, ProductId):
            pid = result.pid
        result = await self._ask(Request.app_version())
        if isinstance(result, Version):
            firmware = result.version
        serial, model = ident.serial, ident.model
        for register in (0x010A, 0x010B):
            result = await self._ask(Request.get(register))
            if isinstance(result, Value) and isinstance(result.value.value, str):
                text = result.value.value.strip() or None
                if register == 0x010A:
                    serial = text
                else:
                    model = text
        self.identity = Identity(pid, firmware, serial, model)
        if self._on_identity is not None:
            self._on_identity(self.identity)
        _LOGGER.info(
            "%s: HEX identity: %s, firmware %s, serial %s",
            self.name,
            model or (product_name(pid) if pid is not None else "unknown product"),
            firmware or "?",
            serial or "?",
        )

    def registers(self) -> tuple[int, ...]:
        """The registers polled: configured, or the family defaults; refused ones left out."""
        chosen = self._configured
        if self._defaults:
            pid = self.identity.pid if self.identity.pid is not None else self._text_pid
            chosen = tuple(dict.fromkeys(default_registers(pid) + chosen))
        return tuple(r for r in chosen if r not in self._refused)

    async def _poll(self) -> None:
        for register in self.registers():
            result = await self._ask(Request.get(register))
            if self.link.mute:
                return
            if isinstance(result, Value):
                self.store(result.value)
            elif isinstance(result, Rejected):
                self._refused.add(register)
                _LOGGER.info(
                    "%s: the device refused %s (%s); not asking again",
                    self.name,
                    register_label(register),
                    result.reason,
                )
        self.polls += 1

    async def _read_history(self) -> None:
        """The MPPT history: total, then day 0 (today) back while the device has days."""
        self._history_due = False
        pid = self.identity.pid if self.identity.pid is not None else self._text_pid
        if self._on_history is None or pid is None or product_family(pid) != "mppt":
            return
        result = await self._ask(Request.get(TOTAL))
        total = result.value.value if isinstance(result, Value) else None
        self.history_total = total if isinstance(total, HistoryTotal) else None
        days: list[DailyRecord] = []
        for n in range(DAYS):
            result = await self._ask(Request.get(FIRST_DAY + n))
            day = result.value.value if isinstance(result, Value) else None
            if not isinstance(day, HistoryDay):
                break  # flags != 0: the device has no such day yet (or it did not answer)
            days.append(daily_record(FIRST_DAY + n, day))
        self._on_history(tuple(days), date.today())
        _LOGGER.info("%s: read %d history days", self.name, len(days))

    async def _wait(self, duration: float) -> None:
        """Sleep ``duration`` s; ping to keep HEX alive when nothing else went out for long.
        A day change cuts the sleep short (the history is read at once)."""
        until = time.monotonic() + duration
        while (left := until - time.monotonic()) > 0 and not self.link.mute:
            if self._history_due:
                await self._read_history()
                continue
            keepalive = self._last_sent + self.keepalive - time.monotonic()
            if keepalive <= 0:
                await self._ask(Request.ping())
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(left, keepalive)):
                    await self._wake.wait()
