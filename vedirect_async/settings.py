"""The configuration with every registered output's section: :mod:`vedirect_async.config`
knows only the core sections, so the layer that knows the outputs hands their
:class:`~vedirect_async.outputs.base.OutputSpec`\\ s to its loader. Tools and tests that load a
``config.toml`` with ``[csv]``, ``[domoticz]`` or ``[mqtt]`` tables use :func:`load_config`
from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import config as _config
from .config import Config, ConfigError, masked
from .outputs import REGISTRY, OutputSpec

__all__ = ["REGISTRY", "Config", "ConfigError", "load_config", "masked", "schema"]


def load_config(
    path: str | Path | None,
    environ: Mapping[str, str] | None = None,
    *,
    registry: Mapping[str, OutputSpec] = REGISTRY,
) -> Config:
    """:func:`vedirect_async.config.load_config` with the sections of ``registry``."""
    return _config.load_config(path, environ, sections=list(registry.values()))


def schema(registry: Mapping[str, OutputSpec] = REGISTRY) -> type[Any]:
    """The root table's dataclass with the sections of ``registry`` (every key there is)."""
    return _config.schema(list(registry.values()))
