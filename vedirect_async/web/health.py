"""``GET /health`` (200 or 503, for Docker and monitors) and ``GET /api/health`` (the same
body, always 200, for the page)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..hub import ReaderState
from .common import checked_query, iso_time, json_response
from .state import WEB, WebState

__all__ = ["handle_api_health", "handle_health", "health"]


def health(state: WebState) -> tuple[bool, dict[str, Any]]:
    now = state.clock()
    problems: list[str] = []
    devices: dict[str, Any] = {}
    for name in state.device_names():
        dev = state.hub.devices.get(name)
        last = state.last_reading(name)
        age = None if last is None else max(0.0, now - last)
        if age is None:
            # no start-up grace here: a service that has read nothing is not healthy yet
            # (Docker's start period covers start-up; the probe stays truthful)
            fresh = False
            waiting = max(0.0, now - state.started)
            problems.append(f"{name}: no valid reading yet ({waiting:.0f} s since start)")
        else:
            fresh = age <= state.max_age
            if not fresh:
                problems.append(f"{name}: last valid reading {age:.0f} s ago")
        devices[name] = {
            "fresh": fresh,
            "last_reading_age": None if age is None else round(age, 3),
            "reader_state": str(dev.state) if dev else str(ReaderState.STARTING),
            "reason": state.scrub(dev.reason) if dev else "",
            "restarts": dev.restarts if dev else 0,
            "readings": dev.readings if dev else 0,
            "stuck": dev.stuck if dev else False,
        }
    outputs: dict[str, Any] = {}
    for name, out in state.hub.outputs.items():
        if out.health in state.bad_output_states:
            problems.append(
                f"output {name}: {out.health}" + (f" ({out.reason})" if out.reason else "")
            )
        outputs[name] = {
            "health": str(out.health),
            "reason": state.scrub(out.reason),
            "last_success": iso_time(out.last_success),
            "successes": out.successes,
            "failures": out.failures,
        }
    ok = not problems
    body = {
        "status": "ok" if ok else "unhealthy",
        "problems": [state.scrub(p) for p in problems],
        "max_age": state.max_age,
        "devices": devices,
        "outputs": outputs,
        "time": iso_time(state.wall()),
    }
    return ok, body


async def handle_health(request: web.Request) -> web.Response:
    checked_query(request, ())
    ok, body = health(request.app[WEB])
    return json_response(body, 200 if ok else 503)


async def handle_api_health(request: web.Request) -> web.Response:
    """The /health body with status 200 either way (the page polls it: no console noise)."""
    checked_query(request, ())
    _ok, body = health(request.app[WEB])
    return json_response(body)
