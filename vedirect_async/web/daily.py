"""``GET /api/daily?device=NAME``: an MPPT's daily history as the device keeps it (issue 14).

A JSON list, today first, one object per day: ``date``, ``yield_kwh``, ``max_pv_power_w``,
``max_pv_voltage``, ``battery_voltage_min``/``_max``, ``battery_current_max``,
``time_bulk_min``/``time_absorption_min``/``time_float_min``, ``consumed_kwh``, ``errors``
(names) and ``day_sequence``. The device session reads it over HEX at connect and after each
day change; a device without HEX history (not an MPPT, or one that does not answer) gives ``[]``.
"""

from __future__ import annotations

from aiohttp import web

from .common import bad_request, checked_query, json_response
from .state import WEB

__all__ = ["handle_daily"]


async def handle_daily(request: web.Request) -> web.Response:
    query = checked_query(request, ("device",))
    state = request.app[WEB]
    name = query.get("device")
    known = state.device_names()
    if name is None or name not in known:
        shown = "missing" if name is None else f"unknown device {name!r}"
        raise bad_request(f"device: {shown} (expected device=NAME, one of: {', '.join(known)})")
    device = state.hub.devices.get(name)
    if device is None:
        return json_response([])
    return json_response([day.as_json(device.daily_date) for day in device.daily])
