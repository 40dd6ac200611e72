"""The service's exceptions: one small hierarchy, so callers branch on types, not on text.

Everything the service raises on purpose derives from :class:`VedirectError`. Each layer adds
its own branch here (not in its module), so a lower layer never has to import a higher one to
catch what it raises, and a message is never parsed to learn what went wrong.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DeliveryError",
    "DeviceError",
    "HexError",
    "PermanentDeliveryError",
    "PortClosedError",
    "SubscriptionClosed",
    "TransientDeliveryError",
    "VedirectError",
]


class VedirectError(Exception):
    """Base of every error the service raises on purpose."""


class ConfigError(VedirectError):
    """A configuration problem, as one line: file, line, key, bad value, expectation."""


class SubscriptionClosed(VedirectError):  # noqa: N818 - the name the issue and callers use
    """The hub subscription was closed while a consumer waited on it (shutdown)."""


class DeliveryError(VedirectError):
    """An output could not deliver; ``reason`` is the one-line cause shown on /health."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TransientDeliveryError(DeliveryError):
    """Worth retrying with backoff: a timeout, a refused connection, a 5xx, a full disk."""


class PermanentDeliveryError(DeliveryError):
    """Retrying the same thing will not help until a person acts (401/403, wrong idx, EACCES)."""


class DeviceError(VedirectError):
    """A device session could not do what was asked of it (the port, a HEX command)."""


class HexError(VedirectError, ValueError):
    """A HEX record, payload or register value that does not follow the protocol (protocol core)."""


class PortClosedError(DeviceError):
    """No port is open to write to (not connected yet, reconnecting, or a read-only stream)."""
