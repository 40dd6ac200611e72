"""``simulate --pty`` as a test fixture: the simulator in a subprocess, its pty path yielded."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

__all__ = ["simulated_pty"]


@asynccontextmanager
async def simulated_pty(*args: str) -> AsyncIterator[str]:
    """Run ``python -m vedirect_async simulate ARGS --pty``; yield the pty's path."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "vedirect_async", "simulate", *args, "--pty",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), timeout=10)
        yield line.decode().strip()
    finally:
        if proc.returncode is None:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), timeout=5)
