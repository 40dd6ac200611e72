"""Run ``python -m vedirect_async`` from this source tree to its end (for exit-code tests)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_entry_point(
    *args: str, environ: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The finished process (stdout, stderr as text); 30 s at most, so a hang fails."""
    return subprocess.run(
        [sys.executable, "-m", "vedirect_async", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={**(os.environ if environ is None else environ), "PYTHONPATH": str(ROOT)},
    )
