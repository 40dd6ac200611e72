"""Outputs: one module (or small package) per destination, registered in :data:`REGISTRY`.

Adding an output = one new module with an :class:`~.base.Output` subclass and its
:class:`~.base.OutputSpec` (config section, validation, factory, subcommands), plus one line in
``REGISTRY``. The service builds the outputs and the CLI adds their subcommands from here, and
:mod:`vedirect_async.settings` hands their sections to the configuration loader; nothing else
has to change (docs/architecture.md, "How to add an output").
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from ..config import Config
from . import csv_log, domoticz, mqtt
from .base import Output, OutputCommand, OutputSpec

__all__ = ["REGISTRY", "Output", "OutputCommand", "OutputSpec", "build_outputs"]

# config section -> spec, one line per output; the order is the start order. Read-only: a test
# or a tool with another output passes its own registry (``{**REGISTRY, "x": spec}``) down.
REGISTRY: Mapping[str, OutputSpec] = MappingProxyType(
    {
        csv_log.SPEC.name: csv_log.SPEC,
        domoticz.SPEC.name: domoticz.SPEC,
        mqtt.SPEC.name: mqtt.SPEC,
    }
)


def build_outputs(config: Config, registry: Mapping[str, OutputSpec] = REGISTRY) -> list[Output]:
    """The enabled outputs of ``registry``, in its order."""
    outputs = []
    for spec in registry.values():
        output = spec.factory(config)
        if output is not None:
            outputs.append(output)
    return outputs
