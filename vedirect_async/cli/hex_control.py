"""``hex set``: the service's write checks for a person at a terminal (issue 15).

Every ``hex set PORT REGISTER VALUE`` checks the value exactly as the HTTP API and MQTT do
(:mod:`vedirect_async.writable`: on/off and option names per device family, the register's
step and range, the device's own limits such as an MPPT's rated current), with the device's
product id and model read over HEX first (:func:`checked_set`); a value outside what this
device takes is never sent. Given a configuration (``--config``) it also writes only what the
service would (:func:`allowed`): the port must be a ``[[device]]`` of that file and the
register in its ``writable`` list. Without ``--config`` there is no allowlist: the person at
the terminal naming the register is it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..commands import Request
    from ..hexlink import HexLink

# ruff: noqa: PLC0415 - imported on use, as in cli.hex

__all__ = ["NotSent", "allowed", "checked_set", "prechecked"]


@dataclass(frozen=True, slots=True)
class NotSent:
    """Why a Set was not sent, and the command's exit code (2 a bad value for this device,
    1 the device did not say what it is)."""

    message: str
    code: int = 2


def allowed(config_path: str, port: str, register: int) -> str | None:
    """None when the configuration lets ``register`` of the device on ``port`` be written,
    else one line saying why not (checked before the port is opened)."""
    from ..commands import register_label
    from ..settings import ConfigError, load_config

    try:
        config = load_config(config_path)
    except ConfigError as exc:
        return str(exc)
    real = os.path.realpath(port)
    device = next(
        (d for d in config.device if d.port == port or os.path.realpath(d.port) == real), None
    )
    label = register_label(register)
    if device is None:
        return f"{port} is not the port of a [[device]] in {config.source}"
    if register not in {_register(spec) for spec in device.writable}:
        return f"{label} is not in the writable list of device {device.name!r} ({config.source})"
    return None


def prechecked(register: int, text: str) -> NotSent | None:
    """None, or why ``text`` cannot be written to ``register`` on any device (checked before
    the port is opened: not writable, not a number or option, outside the register table's
    range). Device mode's codes depend on the family: checked by :func:`checked_set` only."""
    from ..commands import register_label
    from ..registers import REGISTERS
    from ..writable import control_for

    reg = REGISTERS.get(register)
    if reg is None or not reg.writable:
        label = register_label(register)
        return NotSent(f"{label} is not writable (see the writable registers in docs/protocol.md)")
    if reg.id == 0x0200:
        return None
    try:
        control_for(register, "unknown").parse(text)
    except ValueError as exc:
        return NotSent(str(exc))
    return None


async def checked_set(link: HexLink, register: int, text: str) -> tuple[float, Request] | NotSent:
    """The value and the Set request the checks allow on this device, or why not: its
    product and model are read first (device mode and limits depend on them)."""
    from ..commands import ProductId, Request, Value
    from ..fields import product_family, product_name
    from ..writable import control_for

    answer = await link.command(Request.product_id())
    if not isinstance(answer, ProductId):
        return NotSent("the device did not tell its product id; nothing sent, not confirmed", 1)
    model = await link.command(Request.get(0x010B))
    name = model.value.value if isinstance(model, Value) else None
    family = product_family(answer.pid)
    try:
        control = control_for(register, family, name if isinstance(name, str) else None)
        value = control.parse(text)
        return value, Request.set(register, control.encode(value))
    except ValueError as exc:
        return NotSent(f"{product_name(answer.pid)}: {exc}")


def _register(spec: str) -> int:
    from ..commands import parse_register

    return parse_register(spec)
