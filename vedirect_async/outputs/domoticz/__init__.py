"""Domoticz output: the newest values, on a fixed schedule, one request at a time.

Decisions (the README's "Domoticz" part says the same for users):

- **Modes.** ``udevice`` (default): each ``[[domoticz.devices]]`` row maps one reading field
  of one device to a Domoticz idx and a kind; each becomes
  ``json.htm?type=command&param=udevice&idx=N&nvalue=..&svalue=..``, answered per idx.
  ``udevices`` (legacy): per device, the old script's request
  ``json.htm?type=command&param=udevices&script=<script>&data=<json>`` where ``<json>`` is the
  device's raw label/value pairs exactly as the old script built them (a JSON object of strings
  in wire order, ``Checksum`` left out, no spaces), so an existing ``ap_bmv.lua`` keeps working.
- **Schedule.** Ticks at ``start + k * interval`` on the monotonic clock; a tick missed because
  a request was slow is skipped (counted as ``ticks_skipped``), never caught up. The
  subscription keeps only the newest reading per device, so what is posted is always the
  newest value and lag cannot grow. A device's first reading, and a change of its alarm, relay,
  charger state, error or off reason (``post_on_change``), are posted at once (at most once a
  second). Unchanged values are not re-posted until ``heartbeat`` seconds passed (Domoticz
  marks a sensor timed out after an hour without update; re-posting also re-runs its scripts).
- **Transport.** One aiohttp session made in :meth:`run`, one request at a time, a total timeout
  per request, no connection reuse (Domoticz closes after each reply without saying so; a pooled
  dead socket would fail the next post). A dropped connection is retried once (``udevice`` is
  idempotent); any other failure ends the round and the shared
  :class:`~vedirect_async.outputs.delivery.Delivery` waits (1, 2, 4 ... up to ``backoff_max``
  seconds, jittered, for a transient failure; ``backoff_max`` for a permanent one), then the
  output posts the *current* values once: no backlog, no burst.
- **Failures** are typed where they happen (``client``: refused, timeout, dropped/empty reply,
  HTTP 5xx are transient; TLS, 401, 403, 404, other HTTP status, non-JSON are permanent;
  ``"status":"ERR"`` for an idx or for the Lua script is a :class:`RejectedPostError`), logged
  once per failure episode by the delivery scaffold and shown as the output's health reason.
  A rejected post (``ERR``/403 for an idx, ``ERR`` for the Lua script) is a failed delivery,
  counted; the other idx are still posted; a round in which Domoticz accepted nothing makes
  the output failed, a partly rejected one degraded (``fail_when_rejected``).
  The password is never logged: it is sent as a Basic-auth header, never in the URL.
- **Formatting** is ours, never the locale's: ``.`` decimals, voltage and current with 3
  decimals, percentage 1, custom 3, temperature 2, power 1; kWh devices get ``W;Wh``. Every
  value is percent-encoded (``+`` as ``%2B``: Domoticz turns a raw ``+`` into a space).
  An infinite value (TTG while not discharging) is ``infinite_value`` on a numeric device and
  ``infinite`` on a text one, never left to read "0 min" (empty) and never warned about.
  An unavailable value (``---``) or a field the device does not send is not posted, and
  neither is a device's last reading once it is older than ``max(2 * interval, 60 s)``: a
  silent device must not look alive in Domoticz (the old script's "stuck values").
"""

from ...present import domoticz_value as format_value
from ..base import OutputCommand, OutputSpec
from .client import RejectedPostError, auth_hint
from .config import DomoticzConfig, validate
from .mapping import legacy_json
from .output import DomoticzOutput, domoticz_output
from .setup import add_arguments, cli_domoticz

__all__ = [
    "SPEC",
    "DomoticzConfig",
    "DomoticzOutput",
    "RejectedPostError",
    "auth_hint",
    "cli_domoticz",
    "domoticz_output",
    "format_value",
    "legacy_json",
]

SETUP = OutputCommand("domoticz", "Domoticz helpers", add_arguments, cli_domoticz)
SPEC = OutputSpec("domoticz", DomoticzConfig, domoticz_output, validate, (SETUP,))
