"""``POST /api/devices/<device>/<name>``: a write through the write policy (issue 15).

The API is read-only unless ``[http] token`` (or ``VEDIRECT_HTTP__TOKEN``) is set. Then a
request carrying ``Authorization: Bearer <token>`` may write a register the device's
``writable`` list allows; the body is the value in its display unit, as JSON
(``{"value": 12.5}``, ``{"value": "off"}``) or as plain text (``12.5``, ``off``).

- 401 without the header or with another token (compared in constant time; the answer says
  nothing about the token), 403 while writes are disabled or for a name the device does not
  allow, 404 for an unknown device, 400 for a bad value (or one the device refuses), 429 with
  ``Retry-After`` while the register's rate limit holds (the API waits at most
  :data:`HTTP_WAIT` s for the slot), 503 while the device is not connected or not identified,
  504 when it does not answer, 502 when the read-back differs;
- 200 with the value the device read back: ``{"device", "name", "value", "shown", "unit",
  "unchanged"}``.

``GET /api/controls`` (same token) lists each device's controls with their limits and state,
for the live page, which shows them only after the person typed the token (kept in the page's
memory, never stored); without credentials it says only ``{"writes": true|false}``, and
while that is false the page stays read-only.

No cookies and no form posts: nothing a browser sends on its own authorises a write, so there
is no CSRF surface. The token never reaches a log line (only who asked: ``http <address>``),
``/metrics`` (``vedirect_writes_total{device,result}`` counts outcomes) or an answer.
"""

from __future__ import annotations

import hmac
import json
import math
from collections.abc import Iterable

from aiohttp import web
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from ..control import Controller, Refusal, Refused
from .common import checked_query, json_response
from .state import WEB

__all__ = ["CONTROL", "HTTP_WAIT", "WriteCollector", "handle_controls", "handle_write"]

CONTROL = web.AppKey("control", Controller)
HTTP_WAIT = 5.0  # s an HTTP write waits for its register's rate-limit slot before a 429

_STATUS = {
    Refusal.UNKNOWN_DEVICE: 404,
    Refusal.DISABLED: 403,
    Refusal.NOT_ALLOWED: 403,
    Refusal.BAD_VALUE: 400,
    Refusal.DEVICE_REJECTED: 400,
    Refusal.RATE_LIMITED: 429,
    Refusal.SUPERSEDED: 409,
    Refusal.NOT_READY: 503,
    Refusal.NOT_CONNECTED: 503,
    Refusal.NO_HEX: 503,
    Refusal.NO_ANSWER: 504,
    Refusal.NOT_CONFIRMED: 502,
}


def _error(status: int, message: str, reason: str, **headers: str) -> web.Response:
    response = json_response({"error": message, "reason": reason}, status)
    response.headers.update(headers)
    return response


def _authorised(header: str, token: str) -> bool:
    scheme, _, given = header.partition(" ")
    # compare_digest on bytes: constant time whatever the header holds
    match = hmac.compare_digest(given.strip().encode(), token.encode())
    return scheme.lower() == "bearer" and match


async def _value(request: web.Request) -> str | float | bool | None:
    """The value in the body (JSON {"value": ...} or plain text); None if there is none."""
    text = (await request.text()).strip()
    if request.content_type == "application/json":
        try:
            data = json.loads(text)
        except ValueError:
            return None
        value = data.get("value") if isinstance(data, dict) else None
        return value if isinstance(value, str | bool | int | float) else None
    return text or None


def _guard(request: web.Request) -> tuple[Controller | None, web.Response | None]:
    """The write policy if writes are on and the request carries the token, else the answer."""
    token = request.app[WEB].config.http.token
    control = request.app.get(CONTROL)
    if not token or control is None:
        refused = _error(403, "the API is read-only: set [http] token to allow writes", "read_only")
        return None, refused
    if not _authorised(request.headers.get("Authorization", ""), token):
        return None, _error(
            401, "a valid 'Authorization: Bearer <token>' header is required", "unauthorized",
            **{"WWW-Authenticate": 'Bearer realm="vedirect"'},
        )  # fmt: skip
    return control, None


async def handle_controls(request: web.Request) -> web.Response:
    """``GET /api/controls``: without credentials only ``{"writes": bool}`` (may the page offer
    controls at all); with the token, each device's controls and their state."""
    checked_query(request, ())
    if "Authorization" not in request.headers:
        control = request.app.get(CONTROL)
        enabled = bool(request.app[WEB].config.http.token) and bool(control and control.enabled)
        return json_response({"writes": enabled})
    control, refused = _guard(request)
    if control is None:
        assert refused is not None
        return refused
    devices = {name: dc.describe() for name, dc in control.devices.items() if dc.allowed}
    return json_response({"devices": devices})


async def handle_write(request: web.Request) -> web.Response:
    checked_query(request, ())
    control, refused = _guard(request)
    if control is None:
        assert refused is not None
        return refused
    value = await _value(request)
    if value is None:
        return _error(400, 'expected a value: {"value": ...} or the value as text', "bad_value")
    device, name = request.match_info["device"], request.match_info["name"]
    result = await control.write(device, name, value, f"http {request.remote}", wait=HTTP_WAIT)
    if isinstance(result, Refused):
        headers = {}
        if result.retry_after is not None:
            headers["Retry-After"] = str(max(1, math.ceil(result.retry_after)))
        return _error(_STATUS[result.reason], result.message, str(result.reason), **headers)
    return json_response(
        {
            "device": result.device,
            "name": result.name,
            "value": result.value,
            "shown": result.shown,
            "unit": result.unit,
            "unchanged": result.unchanged,
        }
    )


class WriteCollector(Collector):
    """``vedirect_writes_total{device,result}``: every write asked for, by outcome."""

    def __init__(self, control: Controller) -> None:
        self._control = control

    def collect(self) -> Iterable[Metric]:
        family = CounterMetricFamily(
            "vedirect_writes",
            "Writes asked for (HTTP, MQTT), by device and outcome",
            labels=("device", "result"),
        )
        for (device, outcome), count in sorted(self._control.counts.items()):
            family.add_metric((device, outcome), count)
        yield family
