"""vedirect_async: read Victron VE.Direct devices and hand every reading to Domoticz, CSV,
MQTT and an HTTP endpoint, without falling behind, crashing or getting stuck."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("vedirect-async")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0+src"

__all__ = ["__version__"]
