"""Shared fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CAPTURES = ROOT.parent / "shared" / "captures"


@pytest.fixture
def captures_dir() -> Path:
    """The real device captures in ../shared/captures (read in place, never copied)."""
    if not CAPTURES.is_dir():
        pytest.skip(f"real captures not available at {CAPTURES}")
    return CAPTURES
