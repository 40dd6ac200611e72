"""``python -m vedirect_async simulate``: the stream on a new pty (``--pty``) or on stdout."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import signal
import sys
import tty
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from .pty import PtyLine
from .stream import open_stream


def cli_simulate(args: argparse.Namespace) -> int:
    """``simulate``: write a simulated stream into a new pty (``--pty``) or to stdout."""
    try:
        stream = open_stream(
            args.kind,
            speed=args.speed,
            seed=args.seed,
            hex_records=args.hex,
            corrupt=args.corrupt,
            name=getattr(args, "name", None),
            answers=not getattr(args, "no_hex_answers", False),
            answer_delay=getattr(args, "hex_delay", 0.0),
        )
    except ValueError as exc:
        sys.stderr.write(f"simulate: {exc}\n")
        return 2
    if args.duration is not None and not args.duration > 0:
        sys.stderr.write(f"simulate: --duration must be > 0 seconds, not {args.duration!r}\n")
        return 2
    if args.pty:
        return _simulate_pty(stream, args)
    return asyncio.run(_pump(stream, _stdout_sink(), args.duration, args.speed))


def _stdout_sink() -> Callable[[bytes], bool]:
    out = sys.stdout.buffer

    def write(chunk: bytes) -> bool:
        try:
            out.write(chunk)
            out.flush()
        except BrokenPipeError:
            # The reader went away (e.g. `| head`): stop quietly; point stdout at /dev/null
            # so the interpreter's final flush does not complain either.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, out.fileno())
            os.close(devnull)
            return False
        return True

    return write


def _simulate_pty(stream: AsyncIterator[bytes], args: argparse.Namespace) -> int:
    master, slave = os.openpty()
    link = Path(args.link) if args.link else None
    path = os.ttyname(slave)
    linked = False
    try:
        tty.setraw(slave)  # no echo, no CR/LF translation, no line buffering
        os.set_blocking(master, False)

        def announce() -> int | None:
            # Runs once SIGTERM/SIGINT are handled, so whoever reads the path may signal us
            # at once and still get a clean exit (and the link removed).
            nonlocal linked
            if link is not None:
                try:
                    _make_link(link, path)
                except OSError as exc:
                    sys.stderr.write(f"simulate: cannot create link {link}: {exc}\n")
                    return 2
                linked = True
            sys.stdout.write(path + "\n")
            sys.stdout.flush()
            return None

        line = PtyLine(master, slave)

        def write(chunk: bytes) -> bool:
            line.write(chunk)
            return True

        def listen() -> None:
            # What the host writes to the port arrives on the master side: HEX commands.
            receive = getattr(stream, "write", None)
            if receive is not None and getattr(args, "record", None):
                receive = _recording(Path(args.record), receive)
            if receive is not None:
                asyncio.get_running_loop().add_reader(master, _read_commands, master, receive)

        return asyncio.run(
            _pump(stream, write, args.duration, args.speed, announce=announce, listen=listen)
        )
    finally:
        if link is not None and linked:
            with contextlib.suppress(OSError):
                if link.is_symlink() and os.readlink(link) == path:
                    link.unlink()
        os.close(master)
        os.close(slave)


def _recording(path: Path, receive: Callable[[bytes], None]) -> Callable[[bytes], None]:
    """``receive``, appending every byte the host wrote to ``path`` first (``--record``: what
    a test checks was, or was not, sent to the device)."""

    def record(data: bytes) -> None:
        with path.open("ab") as file:
            file.write(data)
        receive(data)

    return record


def _read_commands(master: int, receive: Callable[[bytes], None]) -> None:
    try:
        data = os.read(master, 4096)
    except (BlockingIOError, InterruptedError):
        return
    except OSError:  # EIO: nobody has the port open
        return
    if data:
        receive(data)


def _make_link(link: Path, target: str) -> None:
    """Point the symlink ``link`` at ``target``, atomically; never replace a regular file."""
    if link.exists() and not link.is_symlink():
        raise FileExistsError(f"{link} exists and is not a symlink")
    tmp = link.with_name(f".{link.name}.{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    tmp.symlink_to(target)
    tmp.replace(link)


async def _pump(
    stream: AsyncIterator[bytes],
    sink: Callable[[bytes], bool],
    duration: float | None,
    speed: float,
    *,
    announce: Callable[[], int | None] | None = None,
    listen: Callable[[], None] | None = None,
) -> int:
    """Feed ``stream`` to ``sink`` until SIGTERM/SIGINT, ``duration`` or the sink gives up.

    ``announce`` runs once the signals are handled; an exit code from it ends the run.
    ``listen`` then starts reading what the host writes (the pty's HEX commands).
    """
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    if announce is not None and (code := announce()) is not None:
        return code
    if listen is not None:
        listen()
    limit = None if duration is None else math.ceil(duration)
    end = None if duration is None else loop.time() + duration / speed

    async def run() -> None:
        count = 0
        async for chunk in stream:
            if not sink(chunk):
                return
            count += 1
            if limit is not None and count >= limit:
                break
        if end is not None:  # let the last second run its course before closing
            await asyncio.sleep(max(0.0, end - loop.time()))

    task = asyncio.create_task(run())
    stopper = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for pending in (task, stopper):
            pending.cancel()
        await asyncio.gather(task, stopper, return_exceptions=True)
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()
    if task.done() and not task.cancelled() and (exc := task.exception()) is not None:
        raise exc
    return 0
