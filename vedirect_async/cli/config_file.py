"""Which configuration file a command reads: decided here, and only here.

Every sub-command that reads a configuration gets the path this returns; nothing below the
command line guesses a file of its own. (``os.path``, not ``pathlib``: the health probe
imports this and must stay light.)
"""

from __future__ import annotations

import os

__all__ = ["DEFAULT_CONFIG", "config_file"]

DEFAULT_CONFIG = "config.toml"


def config_file(explicit: str | None) -> str | None:
    """The file given, else ./config.toml if it exists, else None (defaults + environment)."""
    if explicit:
        return explicit
    return DEFAULT_CONFIG if os.path.isfile(DEFAULT_CONFIG) else None
