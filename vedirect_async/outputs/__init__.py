"""Outputs: one module per destination, registered in :data:`REGISTRY`.

Adding an output = one new module with an :class:`~.base.Output` subclass, plus one line in
``REGISTRY`` mapping the config section to a factory that returns the output, or None when
that output is disabled.
"""

from __future__ import annotations

from collections.abc import Callable

from ..config import Config
from .base import Output
from .csv_log import csv_output
from .domoticz import domoticz_output
from .mqtt import mqtt_output

__all__ = ["REGISTRY", "Output", "build_outputs"]

Factory = Callable[[Config], Output | None]

# config section name -> factory (the order is the start order).
REGISTRY: dict[str, Factory] = {
    "csv": csv_output,
    "domoticz": domoticz_output,
    "mqtt": mqtt_output,
}


def build_outputs(config: Config) -> list[Output]:
    """The enabled outputs, in registry order."""
    outputs = []
    for factory in REGISTRY.values():
        output = factory(config)
        if output is not None:
            outputs.append(output)
    return outputs
