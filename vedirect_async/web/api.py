"""``GET /api/readings`` (the latest reading of each device) and ``GET /api/history`` (the
sampled history, thinned to a point cap)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from .. import fields
from .common import bad_request, checked_query, json_response, reading_json
from .state import WEB

__all__ = ["handle_history", "handle_readings"]

MAX_HISTORY_POINTS = 5000  # points per /api/history answer (max_points may ask for fewer)
DEFAULT_HISTORY_POINTS = 1500
MAX_HISTORY_VALUES = 100_000  # points x fields per answer


async def handle_readings(request: web.Request) -> web.Response:
    query = checked_query(request, ("device",))
    state = request.app[WEB]
    now = state.clock()
    wanted = query.get("device")
    if wanted is not None and wanted not in state.device_names():
        raise bad_request(f"unknown device {wanted!r} (known: {', '.join(state.device_names())})")
    devices: dict[str, Any] = {}
    for name, reading in list(state.hub.latest.items()):
        if wanted is not None and name != wanted:
            continue
        data = reading_json(reading, state.meta, state.scrub)
        data["age"] = round(max(0.0, now - reading.monotonic), 3)
        devices[name] = data
    return json_response({"devices": devices})


def _parse_since(text: str, now: float) -> float:
    """Epoch seconds, or negative seconds relative to now, or an ISO 8601 time."""
    try:
        number = float(text)
    except ValueError:
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise bad_request(
                f"since={text!r}: expected epoch seconds, -seconds (relative) or an ISO 8601 time"
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()
    if not math.isfinite(number):
        raise bad_request(f"since={text!r}: expected a finite number")
    return now + number if number < 0 else number


async def handle_history(request: web.Request) -> web.Response:
    query = checked_query(request, ("device", "field", "since", "max_points"))
    state = request.app[WEB]
    history = state.history
    known = list(dict.fromkeys([*state.device_names(), *history.devices]))
    device = query.get("device")
    if device is None:
        if len(known) != 1:
            raise bad_request(f"device is required (one of: {', '.join(known)})")
        device = known[0]
    elif device not in known:
        raise bad_request(f"unknown device {device!r} (known: {', '.join(known)})")
    available = history.fields(device)
    if "field" in query:
        wanted = [f.strip() for f in query["field"].split(",") if f.strip()]
        if not wanted:
            raise bad_request("field is empty (expected field names separated by commas)")
        if len(wanted) > 64:
            raise bad_request("at most 64 fields per request")
        for name in wanted:
            if not _field_known(name, available):
                raise bad_request(f"unknown field {name!r} for {device}")
    else:
        wanted = available
    since = _parse_since(query.get("since", "0"), state.wall())
    try:
        max_points = int(query.get("max_points", DEFAULT_HISTORY_POINTS))
    except ValueError:
        raise bad_request("max_points: expected an integer") from None
    if not 1 <= max_points <= MAX_HISTORY_POINTS:
        raise bad_request(f"max_points: expected 1 to {MAX_HISTORY_POINTS}")
    if wanted:
        max_points = max(1, min(max_points, MAX_HISTORY_VALUES // len(wanted)))
    result = history.query(device, wanted, since, max_points)
    return json_response(
        {
            "device": device,
            "interval": history.interval,
            "capacity": history.capacity,
            "since": since,
            "fields": {
                name: {"label": state.meta(name)[0], "unit": state.meta(name)[1]} for name in wanted
            },
            "t": result.times,
            "values": result.values,
        }
    )


def _field_known(name: str, available: list[str]) -> bool:
    """A field is acceptable if the history has it or the catalogue knows it."""
    return name in available or fields.lookup(name) is not None
