"""``python -m vedirect_async hex ping|get|set PORT [REGISTER [VALUE]]``: ask a device by hand.

For a person at a terminal. It opens the port itself, exclusively (a port the service or
another program holds is refused with one line saying so: stop the service first), sends the
command through the same :class:`~vedirect_async.hexlink.HexLink` the service uses, prints the
decoded answer with its unit, and closes the port.

``set`` writes only registers marked writable in :mod:`vedirect_async.registers` and checks
the value as the service does (:mod:`.hex_control`): it reads the device's product id and model
first and applies :mod:`vedirect_async.writable`'s control of the register on that device
(on/off and option names, the step, the register's range and the device's own limits such as
an MPPT's rated current), so a value the device does not take is never sent. With
``--config`` only the registers that file's ``writable`` list allows; without, no allowlist
(the person naming the register is it). It takes the device's Set echo as the first
confirmation and a Get read-back as the second, and logs the change (one INFO line on
stderr). Exit codes: 0 answered (set: confirmed), 1 the device refused, did not answer or did
not confirm, 2 a bad register or value, or a port that cannot be opened.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:  # asyncio and the rest load when the command runs (the parser stays light)
    import asyncio

    from ..commands import Request, Result

# ruff: noqa: PLC0415 - the imports inside the functions are the point (see cli.commands)

__all__ = ["add_hex", "cli_hex", "run_hex"]

_LOGGER = logging.getLogger("vedirect_async.cli.hex")


_SET_HELP = (
    "Write one register. The device's product id and model are read first and the value is "
    "checked as the service checks it (on/off and option names for this device family, the "
    "register's step and range, the device's own limits such as an MPPT's rated current); a "
    "value the device does not take is never sent. With --config only the registers in that "
    "device's writable list; without it there is no allowlist: you, naming the register, are "
    "it. Confirmed by the Set echo and a Get read-back, logged."
)


def add_hex(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The ``hex`` sub-command and its actions."""
    hex_parser = sub.add_parser("hex", help="ask a device over HEX: ping, get or set a register")
    actions = hex_parser.add_subparsers(dest="hex_command", metavar="ACTION", required=True)
    for action, text in (
        ("ping", "ping the device: its firmware version"),
        ("get", "read a register (id like 0xEDDB, or its name)"),
        ("set", "write a writable register, checked for this device, confirmed by a read-back"),
    ):
        parser = actions.add_parser(
            action, help=text, description=_SET_HELP if action == "set" else text
        )
        parser.add_argument("port", help="serial port, e.g. /dev/serial/by-id/usb-VictronEnergy...")
        if action != "ping":
            parser.add_argument(
                "register", help="register id (0xEDF0) or name (battery_max_current)"
            )
        if action == "set":
            parser.add_argument(
                "value", help="new value: in the register's unit (10.5), or a name (on, off, auto)"
            )
        parser.add_argument("--baudrate", type=int, default=19200)
        parser.add_argument(
            "--timeout", type=float, default=1.0, help="seconds to wait for each answer"
        )
        parser.set_defaults(handler=cli_hex)


def cli_hex(args: argparse.Namespace) -> int:
    """The ``hex`` handler: runs :func:`run_hex` on its own event loop."""
    import asyncio

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        return asyncio.run(run_hex(args, sys.stdout))
    except KeyboardInterrupt:
        return 130


async def run_hex(args: argparse.Namespace, out: TextIO) -> int:
    """Open ``args.port``, run one action, print the answer to ``out``; the exit code."""
    # Imported here: building the parser must stay cheap (see cli.commands).
    from ..commands import Request, parse_register

    action: str = args.hex_command
    request = Request.ping()
    register: int | None = None
    if action != "ping":
        try:
            register = parse_register(args.register)
        except ValueError as exc:
            sys.stderr.write(f"error: register {args.register!r}: {exc}\n")
            return 2
        request = Request.get(register)
    if action == "set" and register is not None:
        from .hex_control import allowed, prechecked

        config = getattr(args, "config", None)  # issue 15: the service's allowlist
        if config and (refused := allowed(config, args.port, register)) is not None:
            sys.stderr.write(f"error: {refused}\n")
            return 2
        if (problem := prechecked(register, args.value)) is not None:
            sys.stderr.write(f"error: {problem.message}\n")
            return problem.code
    port = _Port(args.port, args.baudrate, args.timeout)
    opened = await port.open()
    if opened is not None:
        sys.stderr.write(f"error: {opened}\n")
        return 2
    try:
        if action == "set" and register is not None:
            from ..commands import register_label
            from .hex_control import checked_set

            checked = await checked_set(port.link, register, args.value)
            if not isinstance(checked, tuple):
                if checked.code == 1:  # what the device (did not) answer goes to out
                    out.write(f"set {register_label(register)}: {checked.message}\n")
                else:
                    sys.stderr.write(f"error: {checked.message}\n")
                return checked.code
            wanted, request = checked
            return await _set(port, request, register, wanted, out)
        return _show(await port.link.command(request), out)
    finally:
        await port.close()


def _show(result: Result, out: TextIO) -> int:
    from ..commands import ProductId, Value, Version, describe

    out.write(describe(result) + "\n")
    return 0 if isinstance(result, Value | Version | ProductId) else 1


async def _set(port: _Port, request: Request, register: int, wanted: float, out: TextIO) -> int:
    from ..commands import Request, Value, describe, register_label

    label = register_label(register)
    echo = await port.link.command(request, retries=0)  # a Set is never sent twice blindly
    if not isinstance(echo, Value):
        out.write(f"set {describe(echo)}; not confirmed\n")
        return 1
    back = await port.link.command(Request.get(register))
    if not isinstance(back, Value) or back.value.value != echo.value.value:
        shown = describe(back) if not isinstance(back, Value) else f"read back {back.value.value}"
        out.write(f"set {label}: echoed, but the read-back differs ({shown})\n")
        _LOGGER.warning("hex set %s to %g on %s: read-back differs", label, wanted, port.name)
        return 1
    out.write(f"set {describe(back)} (confirmed by the echo and a read-back)\n")
    if _in_nvm(register):
        out.write("note: stored in the device's flash; do not write it from a script loop\n")
    _LOGGER.info("hex set %s to %g on %s asked by cli: confirmed", label, wanted, port.name)
    return 0


class _Port:
    """The port, opened exclusively, with a Decoder separating HEX from text and a HexLink."""

    def __init__(self, name: str, baudrate: int, timeout: float) -> None:
        from ..decoder import Decoder
        from ..hexlink import HexLink

        self.name = name
        self._baudrate = baudrate
        self._decoder = Decoder("hex")
        self._transport: asyncio.Transport | None = None
        self._closed: asyncio.Future[None] | None = None
        self.link = HexLink(name, self._write, timeout=timeout, mute_after=1 << 30)

    def _write(self, data: bytes) -> None:
        from ..errors import PortClosedError

        if self._transport is None or self._transport.is_closing():
            raise PortClosedError(f"{self.name} is closed")
        self._transport.write(data)

    def _feed(self, data: bytes) -> None:
        import time

        from ..parser import HexRecord

        for event in self._decoder.feed(data, time.monotonic()):
            if type(event) is HexRecord:
                self.link.on_record(event)

    async def open(self) -> str | None:
        """Open the port exclusively; None, or one line saying why it could not be opened."""
        import asyncio

        import serial
        import serial_asyncio_fast

        from ..session import describe_open_error

        feed = self._feed
        closed = self._closed = asyncio.get_running_loop().create_future()

        class Protocol(asyncio.Protocol):
            def data_received(self, data: bytes) -> None:
                feed(data)

            def connection_lost(self, exc: Exception | None) -> None:
                if not closed.done():
                    closed.set_result(None)

        try:
            transport, _ = await serial_asyncio_fast.create_serial_connection(
                asyncio.get_running_loop(),
                Protocol,
                self.name,
                baudrate=self._baudrate,
                exclusive=True,
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            return describe_open_error(self.name, exc)
        self._transport = transport
        return None

    async def close(self) -> None:
        """Close the port and wait until it is (the exclusive lock goes with it)."""
        import asyncio

        if self._transport is not None:
            self._transport.close()
            self._transport = None
            if self._closed is not None:
                async with asyncio.timeout(2.0):
                    await self._closed


def _in_nvm(register: int) -> bool:
    from ..registers import REGISTERS

    reg = REGISTERS.get(register)
    return reg is not None and reg.nvm
