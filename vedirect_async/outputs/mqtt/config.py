"""``[mqtt]``: the MQTT output's config section and its own checks (registered by its
:data:`~vedirect_async.outputs.mqtt.SPEC`)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ...config import Config, Fail
from ...config import doc as _doc

__all__ = ["MqttConfig", "validate"]

_TOPIC_PREFIX = re.compile(r"[^/+#\s]+(/[^/+#\s]+)*")


@dataclass(frozen=True, slots=True)
class MqttConfig:
    enabled: bool = field(default=False, metadata=_doc("publish readings to an MQTT broker"))
    host: str = field(default="127.0.0.1", metadata=_doc("broker host"))
    port: int = field(default=1883, metadata=_doc("broker port", min=1, max=65535))
    prefix: str = field(default="vedirect", metadata=_doc("topic prefix"))
    username: str = field(default="", metadata=_doc("broker user; empty = anonymous"))
    password: str = field(default="", metadata=_doc("broker password (prefer the env var)"))
    client_id: str = field(
        default="",
        metadata=_doc("client id stem; empty = vedirect-<hostname>; '-<device>' is appended"),
    )
    qos: int = field(default=1, metadata=_doc("QoS of state/availability messages", min=0, max=2))
    retain: bool = field(default=True, metadata=_doc("retain state messages"))
    state_interval: float = field(
        default=0.0, metadata=_doc("seconds between state messages; 0 = every reading", min=0.0)
    )
    per_field_topics: bool = field(
        default=False, metadata=_doc("also publish <prefix>/<device>/<field> plain values")
    )
    discovery: bool = field(default=True, metadata=_doc("publish Home Assistant discovery"))
    discovery_prefix: str = field(
        default="homeassistant", metadata=_doc("Home Assistant discovery prefix")
    )
    domoticz_in: str = field(
        default="",
        metadata=_doc("Domoticz MQTT input topic (e.g. domoticz/in) fed from [[domoticz.devices]]"),
    )
    keepalive: int = field(default=30, metadata=_doc("MQTT keepalive", min=5, max=3600))
    timeout: float = field(default=10.0, metadata=_doc("connect/publish timeout", min=0.1))
    reconnect_initial: float = field(default=1.0, metadata=_doc("first reconnect delay", min=0.01))
    reconnect_max: float = field(
        default=15.0, metadata=_doc("reconnect delay cap (back within 15 s of a broker)", min=0.01)
    )
    tls: bool = field(default=False, metadata=_doc("connect with TLS (usually port 8883)"))
    ca_file: str = field(default="", metadata=_doc("CA bundle for TLS; empty = system CAs"))


def validate(section: MqttConfig, config: Config, fail: Fail) -> None:
    """Topic prefixes must name topics: a wildcard would subscribe, not name."""
    for key in ("prefix", "discovery_prefix"):
        topic = getattr(section, key)
        if not _TOPIC_PREFIX.fullmatch(topic):
            fail(key, topic, "a topic prefix without +, #, spaces or empty levels")
