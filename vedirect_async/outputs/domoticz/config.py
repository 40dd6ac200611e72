"""``[domoticz]``: the Domoticz output's config section and its own checks (registered by
its :data:`~vedirect_async.outputs.domoticz.SPEC`).

The ``[[domoticz.devices]]`` row type (:class:`~vedirect_async.config.DomoticzDevice`) stays
in :mod:`vedirect_async.config`: the MQTT output's ``domoticz_in`` reads the same rows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from ...config import Config, DomoticzDevice, Fail
from ...config import doc as _doc

__all__ = ["DomoticzConfig", "validate"]

# a URL with a scheme and an authority, no spaces or control characters (urlsplit would pass)
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s/?#]+[^\s]*")


@dataclass(frozen=True, slots=True)
class DomoticzConfig:
    enabled: bool = field(default=False, metadata=_doc("post readings to Domoticz"))
    url: str = field(default="http://127.0.0.1:8080", metadata=_doc("base URL of Domoticz"))
    interval: float = field(default=30.0, metadata=_doc("seconds between posts", min=0.1))
    mode: Literal["udevice", "udevices"] = field(
        default="udevice", metadata=_doc("udevice (per-idx) or udevices (legacy Lua parser)")
    )
    script: str = field(default="ap_bmv.lua", metadata=_doc("Lua parser name for mode = udevices"))
    timeout: float = field(default=5.0, metadata=_doc("per-request timeout", min=0.1))
    username: str = field(default="", metadata=_doc("basic-auth user; empty = no auth"))
    password: str = field(default="", metadata=_doc("basic-auth password (prefer the env var)"))
    password_file: str = field(
        default="", metadata=_doc("file holding the basic-auth password (first line)")
    )
    verify_tls: bool = field(
        default=True, metadata=_doc("https: verify the server certificate (keep it on)")
    )
    ca_file: str = field(
        default="", metadata=_doc("https: extra CA / self-signed certificate (PEM) to trust")
    )
    heartbeat: float = field(
        default=300.0,
        metadata=_doc(
            "re-post unchanged values this often; 0 = post every value each interval", min=0.0
        ),
    )
    post_on_change: bool = field(
        default=True,
        metadata=_doc("post at once when alarm, relay, charger state or error changes"),
    )
    backoff_max: float = field(
        default=60.0, metadata=_doc("longest wait between retries while Domoticz fails", min=0.1)
    )
    probe: bool = field(
        default=True, metadata=_doc("at start, ask Domoticz its version and check each idx")
    )
    fail_when_rejected: Literal["all", "any", "never"] = field(
        default="all",
        metadata=_doc(
            "when rejected posts (ERR or 403 for an idx, udevices ERR) make the output failed: "
            "all = a round in which Domoticz accepted none, any = any rejected post, "
            "never = rejections only degrade it"
        ),
    )
    infinite_value: float = field(
        default=99999.0,
        metadata=_doc(
            "number posted to a numeric device for an infinite value (time to go while the "
            "battery is not discharging); text and alert devices get 'infinite'"
        ),
    )
    devices: list[DomoticzDevice] = field(
        default_factory=list, metadata=_doc("[[domoticz.devices]] idx mapping")
    )


def validate(section: DomoticzConfig, config: Config, fail: Fail) -> None:
    """What the field bounds cannot say, checked at load time so each error keeps its file
    and line: ``url`` an http(s) URL with a host, a user name Basic auth can send, and each
    ``[[domoticz.devices]]`` row naming a ``[[device]]`` (or there is only one), a field and
    an idx. (The output's constructor keeps the same checks for code that builds it directly.)
    """
    url = urlsplit(section.url) if _URL.fullmatch(section.url) else None
    if url is None or url.scheme.lower() not in ("http", "https") or not url.hostname:
        fail("url", section.url, "http(s)://host:port (port, /path optional)")
    if ":" in section.username:
        fail("username", section.username, "a name without ':' (Basic auth cannot send one)")
    names = [device.name for device in config.device]
    for i, row in enumerate(section.devices):
        if (row.device or len(names) != 1) and row.device not in names:
            fail(f"devices[{i}].device", row.device, f"one of the [[device]] names: {names}")
        if not row.field:
            fail(f"devices[{i}].field", row.field, "a field name or VE.Direct label")
        if row.idx < 1:
            fail(f"devices[{i}].idx", row.idx, "the Domoticz idx (>= 1)")
