"""``simulate --pty`` as a test fixture: the simulator in a subprocess, reached through a link.

The path yielded is a symlink in a private folder (``--link``), as a ``/dev/serial/by-id`` path
would be, not the ``/dev/pts/N`` itself: the simulator removes its link before it closes the
pty, so a reader still reconnecting after the simulator stopped finds no device. Given the
bare ``/dev/pts/N`` it would open whatever pty the kernel hands that number next (another
test's, or another run's on the same machine) and write its HEX commands into it.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

__all__ = ["simulated_pty"]


@asynccontextmanager
async def simulated_pty(*args: str) -> AsyncIterator[str]:
    """Run ``python -m vedirect_async simulate ARGS --pty --link L``; yield the link ``L``."""
    with tempfile.TemporaryDirectory(prefix="sim-pty-") as folder:
        link = os.path.join(folder, "ttyVE")
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "vedirect_async", "simulate", *args, "--pty", "--link", link,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
        try:
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), timeout=10)
            assert line.startswith(b"/dev/pts/"), line
            yield link
        finally:
            if proc.returncode is None:
                proc.terminate()
                await asyncio.wait_for(proc.wait(), timeout=5)
