"""What every handler shares: checked query strings, JSON answers, and readings as JSON."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from ..present import State, json_form
from ..reading import Reading

__all__ = ["bad_request", "checked_query", "iso_time", "json_response", "reading_json"]

MAX_QUERY_STRING = 1024  # bytes; every valid query here is far shorter
_VALUE = State.VALUE  # an enum member read from its class costs ~100 ns (per value here)


def iso_time(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def reading_json(
    reading: Reading, meta: Callable[[str], tuple[str, str]], scrub: Callable[[str], str]
) -> dict[str, Any]:
    """A reading as JSON-ready data: identity, time, and each value with its label and unit.

    A value that is not there has ``"value": null`` and ``"special"``: ``"unavailable"``,
    ``"infinite"`` or ``"-infinite"``. Per value per request, so :func:`json_form` (the JSON
    form and state of :func:`present`, without the rest).
    """
    values: dict[str, dict[str, object]] = {}
    for name, value in reading.values.items():
        label, unit = meta(name)
        shown, state = json_form(value)
        if state is _VALUE:
            if isinstance(shown, str):
                shown = scrub(shown)
            values[name] = {"value": shown, "unit": unit, "label": label}
        else:
            values[name] = {"value": None, "unit": unit, "label": label, "special": state.value}
    return {
        "device": reading.device,
        "time": reading.time.isoformat(timespec="seconds"),
        "timestamp": reading.time.timestamp(),
        "pid": f"0x{reading.pid:04X}" if reading.pid is not None else None,
        "product": reading.product,
        "serial": reading.serial,
        "firmware": reading.firmware,
        "values": values,
    }


def bad_request(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=json.dumps({"error": message}), content_type="application/json")


def checked_query(request: web.Request, allowed: Iterable[str]) -> Mapping[str, str]:
    """The query parameters, checked: short, known names, each at most once."""
    if len(request.query_string) > MAX_QUERY_STRING:
        raise bad_request(f"query string longer than {MAX_QUERY_STRING} bytes")
    allowed = set(allowed)
    for key in request.query:
        if key not in allowed:
            expected = ", ".join(sorted(allowed)) or "none"
            raise bad_request(f"unknown query parameter {key!r} (expected: {expected})")
        if len(request.query.getall(key)) > 1:
            raise bad_request(f"query parameter {key!r} given more than once")
    return request.query


def json_response(data: object, status: int = 200) -> web.Response:
    return web.Response(
        text=json.dumps(data, separators=(",", ":"), allow_nan=False),
        status=status,
        content_type="application/json",
        headers={"Cache-Control": "no-store"},
    )
