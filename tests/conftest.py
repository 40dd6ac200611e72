"""Shared fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

# Fixtures of the pty-backed fake device (serial reader, watchdog and service tests).
pytest_plugins = ["tests.pty_device"]

ROOT = Path(__file__).resolve().parent.parent
CAPTURES = ROOT.parent / "shared" / "captures"


@pytest.fixture
def captures_dir() -> Path:
    """The real device captures in ../shared/captures (read in place, never copied)."""
    if not CAPTURES.is_dir():
        pytest.skip(f"real captures not available at {CAPTURES}")
    return CAPTURES
