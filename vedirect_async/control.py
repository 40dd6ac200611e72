"""Writes to devices, safely (issue 15): the one path every write takes, whoever asks.

Off by default. A device is written only when its ``[[device]] writable = [...]`` lists the
register (ids or catalogue names, checked at start-up); nothing outside that list is ever
sent, whatever the HTTP API, MQTT or the CLI ask. Every write:

1. is **checked before it is sent**: the device is known and allows the register; the value
   parses for the register (:mod:`vedirect_async.writable`: on/off, an option, or a number on
   the register's step within the register table's range and the device's own limits, e.g. an
   MPPT's rated current); the device's family is known (device mode means different codes on
   an MPPT and an inverter); the port is open and the device answers HEX;
2. is **rate-limited per register**: at most one write per :data:`WRITE_INTERVAL` s, and per
   :data:`NVM_WRITE_INTERVAL` s for registers the device keeps in non-volatile memory
   (0xEDF0, 0xEDF6, 0xEDF7: flash wears out after a limited number of erase cycles, so an
   automation that rewrites the charge current every second must not reach it). A burst is
   coalesced, **last wins**: a write that arrives while the register's slot is not free waits
   for it, and replaces (as :attr:`Refusal.SUPERSEDED`, at once) any write already waiting, so
   at most one write per register waits whatever the burst; a caller
   that cannot wait that long (``wait``, the HTTP API) is refused at once with the time to
   retry (:attr:`Refusal.RATE_LIMITED`). A value equal to what the device reads back already is
   not written at all (``unchanged``), so repeating a command costs no NVM cycle;
3. is **sent through the device session's HEX link** (one command in flight per port) and
   **confirmed**: the Set echo must carry the value with flags 0, then a Get read-back must
   return it. The read-back becomes the register's value in the readings at once;
4. is **logged at INFO** with who asked (``mqtt``, ``http 127.0.0.1``, ``cli``) and **counted**
   per device and outcome (:attr:`Controller.counts`, on ``/metrics``).

Results are typed (:class:`Written`, :class:`Refused` with a :class:`Refusal`), never
exceptions, so each front end answers in its own terms (HTTP status, MQTT log, CLI exit code).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .commands import NoAnswer, Rejected, Request, Value, parse_register
from .config import DeviceConfig
from .errors import PortClosedError
from .fields import product_family, product_name
from .logsetup import RateLimitedLogger
from .reading import Reading
from .registers import REGISTERS, Register, encode_value, lookup
from .session import DeviceSession
from .writable import Control, control_for

__all__ = [
    "NVM_WRITE_INTERVAL",
    "WRITE_INTERVAL",
    "Controller",
    "DeviceControl",
    "Refusal",
    "Refused",
    "WriteResult",
    "Written",
]

_LOGGER = logging.getLogger(__name__)

WRITE_INTERVAL = 1.0  # s between two writes of one register (a flapping automation)
NVM_WRITE_INTERVAL = 60.0  # s between two writes of one register kept in NVM (flash wear)


class Refusal(enum.StrEnum):
    """Why a write was not done (the value is the counter's and the API's name)."""

    UNKNOWN_DEVICE = "unknown_device"
    DISABLED = "disabled"  # the device has no writable registers
    NOT_ALLOWED = "not_allowed"  # the register is not in the device's writable list
    BAD_VALUE = "bad_value"  # does not parse, off the step, out of range
    NOT_READY = "not_ready"  # the device's family (product id) is not known yet
    NOT_CONNECTED = "not_connected"  # no writable port open
    NO_HEX = "no_hex"  # the device never answered HEX (muted link)
    RATE_LIMITED = "rate_limited"
    SUPERSEDED = "superseded"  # a newer write of the same register came in while waiting
    DEVICE_REJECTED = "device_rejected"  # flags != 0 (its own limits, not supported)
    NO_ANSWER = "no_answer"
    NOT_CONFIRMED = "not_confirmed"  # the echo or the read-back did not carry the value


@dataclass(frozen=True, slots=True)
class Written:
    """A confirmed write: the value the device read back (``shown`` as its entity shows it)."""

    device: str
    name: str
    value: float
    shown: str
    unit: str
    unchanged: bool = False  # the device already had the value: nothing was sent

    @property
    def outcome(self) -> str:
        return "unchanged" if self.unchanged else "confirmed"


@dataclass(frozen=True, slots=True)
class Refused:
    """A write not done, with one line for whoever asked."""

    device: str
    name: str
    reason: Refusal
    message: str
    retry_after: float | None = None  # RATE_LIMITED: seconds until the register is free

    @property
    def outcome(self) -> str:
        return str(self.reason)


WriteResult = Written | Refused
# (device, control, read-back code or number) after every confirmed write
Listener = Callable[[str, Control, float], None]


@dataclass(slots=True)
class _Slot:
    """One register's rate-limit slot: when it is free again, whose turn it is (the newest
    write), and an event that wakes the waiting write when either changes."""

    free_at: float = 0.0
    ticket: int = 0
    busy: bool = False  # a write of this register is on the wire
    changed: asyncio.Event | None = None

    def wake(self) -> None:
        if self.changed is not None:
            self.changed.set()
            self.changed = None

    async def wait(self, limit: float | None) -> None:
        """Until :meth:`wake` or ``limit`` s (None: no limit)."""
        if self.changed is None:
            self.changed = asyncio.Event()
        event = self.changed
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(limit):
                await event.wait()


class DeviceControl:
    """The writes of one device: its allowlist, its rate-limit slots, its session."""

    def __init__(
        self,
        session: DeviceSession,
        writable: Sequence[str],
        *,
        interval: float = WRITE_INTERVAL,
        nvm_interval: float = NVM_WRITE_INTERVAL,
    ) -> None:
        self.session = session
        self.name = session.name
        self.allowed: frozenset[int] = frozenset(parse_register(spec) for spec in writable)
        self.interval = interval
        self.nvm_interval = nvm_interval
        self._slots: dict[int, _Slot] = {}

    # -- what the device is -------------------------------------------------------------------

    def identity(self) -> tuple[str, str | None]:
        """The device's family and model as known now ("unknown", None before the first PID)."""
        ident = self.session.poller.identity
        latest = self.session.hub.latest.get(self.name)
        pid = ident.pid if ident.pid is not None else latest.pid if latest is not None else None
        if pid is None:
            return "unknown", ident.model
        model = ident.model or (latest.product if latest is not None else None)
        return product_family(pid), model or product_name(pid)

    def controls(self) -> list[Control]:
        """The allowed registers as entities for this device (empty until its family is known;
        a register the family cannot write, such as device mode on a battery monitor, left out)."""
        family, model = self.identity()
        if family == "unknown":
            return []
        found = []
        for register in sorted(self.allowed):
            try:
                found.append(control_for(register, family, model))
            except ValueError:
                continue
        return found

    def describe(self) -> list[dict[str, object]]:
        """The controls with their limits and current state (the page's controls)."""
        values = self.session.poller.values
        out: list[dict[str, object]] = []
        for control in self.controls():
            current = values.get(control.name)
            out.append(
                {
                    "name": control.name,
                    "kind": control.kind,
                    "unit": control.unit,
                    "min": control.minimum,
                    "max": control.maximum,
                    "step": control.step if control.kind == "number" else None,
                    "options": list(control.options or {}),
                    "value": control.state(current[0]) if current is not None else None,
                }
            )
        return out

    def register(self, name: str) -> Register | None:
        """The allowed register ``name`` (catalogue name or id) stands for, else None."""
        family, _ = self.identity()
        reg = lookup(name, None if family == "unknown" else family)
        if reg is None:
            for allowed in self.allowed:  # "voltage"-style names resolved among the allowed
                candidate = REGISTERS.get(allowed)
                if candidate is not None and candidate.name == name:
                    reg = candidate
        return reg if reg is not None and reg.id in self.allowed else None

    # -- the write ----------------------------------------------------------------------------

    async def write(self, name: str, given: str | float | bool, wait: float | None) -> WriteResult:
        """Check, rate-limit, send, confirm (see the module docstring); never raises."""
        if not self.allowed:
            return self._refuse(name, Refusal.DISABLED, "writes are not enabled for this device")
        reg = self.register(name)
        if reg is None:
            return self._refuse(name, Refusal.NOT_ALLOWED, f"{name!r} is not in writable")
        family, model = self.identity()
        if family == "unknown":
            return self._refuse(
                reg.name, Refusal.NOT_READY, "the device's product is not known yet"
            )
        try:
            control = control_for(reg.id, family, model)
            value = control.parse(given)
            raw = control.encode(value)
        except ValueError as exc:
            return self._refuse(reg.name, Refusal.BAD_VALUE, str(exc))
        slot = self._slots.setdefault(reg.id, _Slot())
        slot.ticket += 1
        mine = slot.ticket
        slot.wake()  # a write still waiting for this register is superseded now
        while slot.ticket == mine:
            if slot.busy:  # a write of this register is on the wire: wait for it
                await slot.wait(None)
                continue
            delay = slot.free_at - time.monotonic()
            if delay > 0:
                if wait is not None and delay > wait:
                    return self._refuse(
                        reg.name,
                        Refusal.RATE_LIMITED,
                        f"written less than {self._interval(reg):g} s ago; retry in {delay:.1f} s",
                        delay,
                    )
                wait = None  # waiting once is enough: the slot is ours when it frees
                await slot.wait(delay)
                continue
            slot.busy = True
            try:
                result = await self._send(control, value, raw)
                if isinstance(result, Written) and not result.unchanged:
                    slot.free_at = time.monotonic() + self._interval(reg)
            finally:
                slot.busy = False
                slot.wake()
            return result
        return self._refuse(reg.name, Refusal.SUPERSEDED, "a newer write replaced it")

    def _interval(self, reg: Register) -> float:
        return self.nvm_interval if reg.nvm else self.interval

    async def _send(self, control: Control, value: float, raw: bytes) -> WriteResult:
        reg = control.register
        if self.session.link.mute:
            return self._refuse(reg.name, Refusal.NO_HEX, "the device does not answer HEX")
        try:
            before = await self.session.command(Request.get(reg.id))
            if isinstance(before, Value) and _raw(before, reg) == raw:
                return self._written(control, before, unchanged=True)
            # A Set goes out once: resent after a lost echo it would write (and wear the
            # non-volatile memory of) the register again. Silence is settled by the read-back.
            echo = await self.session.command(Request.set(reg.id, raw), retries=0)
            if isinstance(echo, Rejected):
                return self._refuse(
                    reg.name, Refusal.DEVICE_REJECTED, f"the device refused it ({echo.reason})"
                )
            if not isinstance(echo, Value | NoAnswer) or (
                isinstance(echo, Value) and _raw(echo, reg) != raw
            ):
                return self._refuse(reg.name, Refusal.NOT_CONFIRMED, "the Set echo differs")
            after = await self.session.command(Request.get(reg.id))
        except PortClosedError:
            return self._refuse(reg.name, Refusal.NOT_CONNECTED, "the port is not open")
        if isinstance(after, NoAnswer):
            return self._refuse(reg.name, Refusal.NO_ANSWER, "no answer to the read-back")
        if isinstance(echo, NoAnswer) and not (
            isinstance(after, Value) and _raw(after, reg) == raw
        ):
            return self._refuse(reg.name, Refusal.NO_ANSWER, "the device did not answer the Set")
        if not isinstance(after, Value) or _raw(after, reg) != raw:
            return self._refuse(reg.name, Refusal.NOT_CONFIRMED, "the read-back differs")
        self.session.poller.store(after.value)
        return self._written(control, after)

    def _written(self, control: Control, answer: Value, *, unchanged: bool = False) -> Written:
        number = answer.value.value
        assert isinstance(number, int | float)
        shown = control.shown(number) or f"{number:g}"
        return Written(self.name, control.name, float(number), shown, control.unit, unchanged)

    def _refuse(
        self, name: str, reason: Refusal, message: str, retry_after: float | None = None
    ) -> Refused:
        return Refused(self.name, name, reason, f"{self.name}/{name}: {message}", retry_after)


def _raw(answer: Value, reg: Register) -> bytes | None:
    """The raw bytes of an answer's value, re-encoded (None when it is not a number)."""
    number = answer.value.value
    if not isinstance(number, int | float):
        return None
    return encode_value(reg.id, number)


class Controller:
    """Every device's writes, for the HTTP API, MQTT and the CLI (built by the service)."""

    def __init__(
        self,
        sessions: Sequence[DeviceSession],
        devices: Sequence[DeviceConfig],
        *,
        interval: float = WRITE_INTERVAL,
        nvm_interval: float = NVM_WRITE_INTERVAL,
    ) -> None:
        writable = {d.name: d.writable for d in devices}
        self.devices: dict[str, DeviceControl] = {
            s.name: DeviceControl(
                s, writable.get(s.name, ()), interval=interval, nvm_interval=nvm_interval
            )
            for s in sessions
        }
        self.counts: Counter[tuple[str, str]] = Counter()  # (device, outcome) -> writes
        self._listeners: list[Listener] = []
        self._limited = RateLimitedLogger(_LOGGER, interval=60.0)

    @property
    def enabled(self) -> bool:
        """Whether any device may be written at all."""
        return any(d.allowed for d in self.devices.values())

    def reading(self, device: str) -> Reading | None:
        """``device``'s latest reading with its register values as they are now (a write's
        read-back included), for an output that shows a confirmed write at once."""
        control = self.devices.get(device)
        if control is None:
            return None
        latest = control.session.hub.latest.get(device)
        if latest is None:
            return None
        now = control.session.poller.values
        values = dict(latest.values)
        for name in (c.name for c in control.controls() if c.name in now):
            values[name] = now[name][0]
        return dataclasses.replace(latest, values=values)

    def listen(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` after every confirmed write; returns the function that stops it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    async def write(
        self, device: str, name: str, value: str | float | bool, who: str, wait: float | None = None
    ) -> WriteResult:
        """Write ``value`` (display unit) to ``device``'s register ``name`` for ``who``.

        ``wait``: the longest this caller waits for the register's rate-limit slot (None: as
        long as it takes). Never raises; the result says what happened.
        """
        name = name[:64]  # from a topic or a URL: bounded and printable before a log line sees it
        if not name.isprintable():
            name = repr(name)[1:-1][:64]
        control = self.devices.get(device)
        if control is None:
            result: WriteResult = Refused(
                device, name, Refusal.UNKNOWN_DEVICE, f"unknown device {device!r}"
            )
        else:
            result = await control.write(name, value, wait)
        self.counts[(result.device if control else "", result.outcome)] += 1
        self._log(result, value, who)
        if isinstance(result, Written) and control is not None:
            for register in (r for r in control.controls() if r.name == result.name):
                for listener in list(self._listeners):
                    listener(result.device, register, result.value)
        return result

    def _log(self, result: WriteResult, value: object, who: str) -> None:
        shown = repr(value)[:40]
        if isinstance(result, Written):
            unit = f" {result.unit}" if result.unit else ""
            _LOGGER.info(
                "%s: write %s = %s asked by %s: %s (read back %s%s)",
                result.device,
                result.name,
                shown,
                who,
                result.outcome,
                result.shown,
                unit,
            )
            return
        self._limited.log(
            logging.INFO,
            f"{result.device}:{result.reason}:{who.split(maxsplit=1)[0]}",
            "write %s = %s asked by %s refused: %s",
            result.name[:40],
            shown,
            who,
            result.message,
        )
