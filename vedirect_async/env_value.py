"""How an environment variable's text becomes a configuration value, in one place.

Shared by the configuration loader and the light health probe (which must not import the
loader), so ``VEDIRECT_HTTP__PORT`` means the same to both. Standard library only.
"""

from __future__ import annotations

__all__ = ["env_value"]


def env_value(text: str) -> object:
    """A variable's text read as a TOML value (``12``, ``true``, ``["a"]``), else as a string.

    ``"8081\\nx = 1"`` is one value followed by more TOML, not a value: it stays the text it is.
    """
    import tomllib  # noqa: PLC0415 - the probe imports this module without needing TOML

    try:
        document = tomllib.loads(f"v = {text}")
    except (tomllib.TOMLDecodeError, RecursionError):
        return text
    return document["v"] if len(document) == 1 else text
