"""vedirect_async: read Victron VE.Direct devices and hand every reading to Domoticz, CSV,
MQTT and an HTTP endpoint, without falling behind, crashing or getting stuck."""

from __future__ import annotations

__all__ = ["__version__"]


def __getattr__(name: str) -> str:
    """``__version__``, looked up on first use: importlib.metadata takes ~30 ms to import,
    which every ``python -m vedirect_async health`` (Docker's probe) would otherwise pay."""
    if name != "__version__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

    try:
        found = version("vedirect-async")
    except PackageNotFoundError:  # running from a source tree without installing
        found = "0.0.0+src"
    globals()["__version__"] = found
    return found
