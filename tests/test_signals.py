"""Signals and shutdown of the real process (issue 16.3 and 16.8).

`python -m vedirect_async` runs on the built-in simulator; the tests wait on its stderr lines
(or, with a stderr nobody reads, on its HTTP port) and send real signals. SIGHUP stops it as
SIGTERM does; SIGUSR1/SIGUSR2 are logged and ignored; repeated and early signals exit 0; and a
stderr that is never read cannot hold the exit past the hard deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
import sys
import time
from asyncio.subprocess import PIPE
from pathlib import Path

import pytest

from .test_service import free_port

ROOT = Path(__file__).resolve().parent.parent
READY = "service: bmv: "  # the first reading logged
F_SETPIPE_SZ = 1031  # fcntl.F_SETPIPE_SZ (Linux), named in fcntl only from Python 3.10 on Linux


def write_config(tmp_path: Path, **extra: str) -> int:
    port = free_port()
    text = (
        f'[csv]\npath = "{tmp_path / "data.csv"}"\ninterval = 0\n\n'
        f"[http]\nport = {port}\n\n[logging]\nreadings_interval = 0.2\n"
    )
    text += "".join(f"{key} = {value}\n" for key, value in extra.items())
    (tmp_path / "config.toml").write_text(text, encoding="utf-8")
    return port


class Running:
    """The service process with its stderr read line by line."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []

    async def wait_for(self, text: str, within: float = 15.0, *, new: bool = False) -> None:
        """Read stderr until a line holds ``text`` (``new``: a line not read yet)."""
        assert self.proc.stderr is not None
        start = len(self.lines) if new else 0
        async with asyncio.timeout(within):
            while not any(text in line for line in self.lines[start:]):
                line = (await self.proc.stderr.readline()).decode()
                assert line, f"exited before {text!r}: " + "".join(self.lines)
                self.lines.append(line)

    async def finish(self, within: float = 3.0) -> tuple[int, str]:
        assert self.proc.stderr is not None
        rest = await asyncio.wait_for(self.proc.stderr.read(), within)
        self.lines.append(rest.decode())
        code = await asyncio.wait_for(self.proc.wait(), within)
        return code, "".join(self.lines)

    def signal(self, signum: int) -> None:
        os.kill(self.proc.pid, signum)


@contextlib.asynccontextmanager
async def service(tmp_path: Path, *args: str, stderr: int = PIPE):  # type: ignore[no-untyped-def]
    """The service in ``tmp_path`` (its config.toml); ``args`` go to the interpreter."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *args,
        "-m",
        "vedirect_async",
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stderr=stderr,
    )
    try:
        yield Running(proc)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def assert_clean_stop(code: int, output: str, tmp_path: Path) -> None:
    assert code == 0, output
    assert "stopped: " in output, output
    assert "Traceback" not in output, output
    assert (tmp_path / "data.csv").read_text(encoding="utf-8").endswith("\n")


async def test_sighup_stops_cleanly(tmp_path: Path) -> None:
    """SIGHUP (terminal or session gone) killed the service without a clean stop."""
    write_config(tmp_path)
    async with service(tmp_path) as running:
        await running.wait_for(READY)
        running.signal(signal.SIGHUP)
        code, output = await running.finish()
    assert_clean_stop(code, output, tmp_path)
    assert "SIGHUP received" in output


async def test_sigusr1_and_sigusr2_are_logged_and_ignored(tmp_path: Path) -> None:
    """SIGUSR1/SIGUSR2 killed the service; now each is one log line and it keeps running."""
    write_config(tmp_path)
    async with service(tmp_path) as running:
        await running.wait_for(READY)
        for signum in (signal.SIGUSR1, signal.SIGUSR2, signal.SIGUSR1):
            running.signal(signum)
            await running.wait_for(f"{signal.Signals(signum).name} received; ignored")
        await running.wait_for(READY, new=True)  # still reading after them
        running.signal(signal.SIGTERM)
        code, output = await running.finish()
    assert_clean_stop(code, output, tmp_path)
    assert output.count("received; ignored") == 3


@pytest.mark.parametrize("gap", [0.01, 0.03, 0.06, "stopped"])
async def test_a_second_sigterm_during_shutdown_exits_0(tmp_path: Path, gap: float | str) -> None:
    """A second SIGTERM 10-60 ms after the first (or once the service said it stopped)
    landed after the handlers were removed and killed the process: exit 143."""
    write_config(tmp_path)
    async with service(tmp_path) as running:
        await running.wait_for(READY)
        running.signal(signal.SIGTERM)
        if gap == "stopped":
            await running.wait_for("stopped: ")
        else:
            assert isinstance(gap, float)
            await asyncio.sleep(gap)  # the gap between the two signals is what is tested
        with contextlib.suppress(ProcessLookupError):
            running.signal(signal.SIGTERM)
        code, output = await running.finish()
    assert code == 0, output
    assert "Traceback" not in output, output


@pytest.mark.parametrize("delay", [0.0, 0.005, 0.02, 0.05, 0.1, 0.2])
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1], ids=str)
async def test_a_signal_while_starting(
    tmp_path: Path, delay: float, signum: signal.Signals
) -> None:
    """A signal as soon as the entry point runs (and at later moments of the start-up) exits
    0, or for SIGUSR1 is ignored: the handlers are installed by __main__'s first statements.

    `-X importtime` shows when the interpreter imports argparse, the first thing after the
    handlers; before, handlers came only after the whole CLI was imported and parsed (exit 143
    for a signal 0.05 s after the launch)."""
    write_config(tmp_path)
    async with service(tmp_path, "-X", "importtime") as running:
        await running.wait_for(" argparse\n")
        await asyncio.sleep(delay)  # the moment of the signal is what is tested
        running.signal(signum)
        if signum == signal.SIGUSR1:
            await running.wait_for(READY)
            running.signal(signal.SIGTERM)
        code, output = await running.finish()
    assert code == 0, output[-2000:]
    assert "Traceback" not in output, output[-2000:]


def stalled_pipe() -> tuple[int, int]:
    """A pipe (read end, write end) already full, whose reader never reads."""
    read_end, write_end = os.pipe()
    with contextlib.suppress(OSError):
        fcntl.fcntl(write_end, F_SETPIPE_SZ, 4096)
    os.set_blocking(write_end, False)
    with contextlib.suppress(BlockingIOError):
        while True:
            os.write(write_end, b"x" * 4096)
    os.set_blocking(write_end, True)  # the service gets a blocking stderr, as a real one is
    return read_end, write_end


async def wait_until_listening(port: int) -> None:
    async with asyncio.timeout(15):
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.02)  # poll: the service says nothing (stderr is stalled)
                continue
            writer.close()
            return


async def test_a_stalled_stderr_cannot_hold_the_exit(tmp_path: Path) -> None:
    """stderr is a full pipe nobody reads: SIGTERM still ends the process before the hard
    deadline (1.9 s). Before, the logging shutdown blocked in write(2) for ever."""
    port = write_config(tmp_path, level='"DEBUG"')
    read_end, write_end = stalled_pipe()
    try:
        async with service(tmp_path, stderr=write_end) as running:
            await wait_until_listening(port)
            csv = tmp_path / "data.csv"
            async with asyncio.timeout(10):
                while not csv.exists() or csv.read_text().count("\n") < 3:  # noqa: ASYNC110
                    await asyncio.sleep(0.05)  # poll: readings flow although nothing is logged
            started = time.monotonic()
            running.signal(signal.SIGTERM)
            code = await asyncio.wait_for(running.proc.wait(), 5)
            elapsed = time.monotonic() - started
    finally:
        os.close(read_end)
        os.close(write_end)
    assert code == 0
    assert elapsed < 2.0
    assert csv.read_text(encoding="utf-8").endswith("\n")
