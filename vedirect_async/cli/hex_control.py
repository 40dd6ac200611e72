"""``hex set`` with ``--config``: the service's write checks for a person at a terminal.

Given a configuration, ``hex set PORT REGISTER VALUE`` writes only what the service itself
would (issue 15): the port must be a ``[[device]]`` of that file, the register must be in its
``writable`` list, and the value is checked exactly as for the HTTP API and MQTT
(:mod:`vedirect_async.writable`: on/off and option names, the register's step and range, the
device's own limits such as an MPPT's rated current), with the device's product and model
read over HEX first. Without ``--config`` the command checks only the register table's range.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..commands import Request
    from ..hexlink import HexLink

# ruff: noqa: PLC0415 - imported on use, as in cli.hex

__all__ = ["allowed", "checked_set"]


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


async def checked_set(link: HexLink, register: int, text: str) -> tuple[float, Request] | str:
    """The value and the Set request the checks allow on this device, or why not: its
    product and model are read first (device mode and limits depend on them)."""
    from ..commands import ProductId, Request, Value
    from ..fields import product_family, product_name
    from ..writable import control_for

    answer = await link.command(Request.product_id())
    if not isinstance(answer, ProductId):
        return "the device did not tell its product id; nothing sent"
    model = await link.command(Request.get(0x010B))
    name = model.value.value if isinstance(model, Value) else None
    family = product_family(answer.pid)
    try:
        control = control_for(register, family, name if isinstance(name, str) else None)
        value = control.parse(text)
        return value, Request.set(register, control.encode(value))
    except ValueError as exc:
        return f"{product_name(answer.pid)}: {exc}"


def _register(spec: str) -> int:
    from ..commands import parse_register

    return parse_register(spec)
