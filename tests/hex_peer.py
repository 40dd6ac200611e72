"""The device side of HEX over a :class:`~tests.pty_device.PtyDevice`: reads the commands the
reader writes into the pty and answers them as a device would (or would not).

``HexPeer(device, registers)`` answers ping, app version, product id, Get and Set from a dict
of register -> raw value bytes; ``mode`` makes it a device that never answers (``"mute"``),
echoes every command back (``"echo"``), answers after ``delay`` seconds (``"slow"``), or
keeps its answers for the text stream to put in the middle of a block (``"inside"``).
Every command received is kept in :attr:`received` and announced through :meth:`changed`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable
from typing import Literal

from tests.pty_device import PtyDevice
from vedirect_async.hexframe import Command, Flags, HexFrame, RegisterMessage

__all__ = ["HexPeer"]

Mode = Literal["answer", "mute", "echo", "slow", "inside"]


class HexPeer:
    """Answers HEX commands arriving on ``device``'s pty."""

    def __init__(
        self,
        device: PtyDevice,
        registers: dict[int, bytes] | None = None,
        *,
        mode: Mode = "answer",
        delay: float = 0.0,
        pid: int = 0xA053,
        version: int = 0x4116,
    ) -> None:
        self.device = device
        self.registers = dict(registers or {})
        self.mode = mode
        self.delay = delay
        self.pid = pid
        self.version = version
        self.received: list[bytes] = []  # command records, ':' through '\n'
        self.pending: list[bytes] = []  # "inside" mode: answers for the stream to embed
        self.on_command: Callable[[bytes], None] | None = None  # called for every command
        self._buf = bytearray()
        self._changed = asyncio.Event()
        self._fd: int | None = None

    def start(self) -> None:
        assert self.device.master is not None
        self._fd = self.device.master
        asyncio.get_running_loop().add_reader(self._fd, self._readable)

    def stop(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(ValueError, OSError):
                asyncio.get_running_loop().remove_reader(self._fd)
            self._fd = None

    def changed(self) -> Awaitable[bool]:
        return self._changed.wait()

    def take(self) -> bytes:
        """The answers waiting to be put inside the next text block ("inside" mode)."""
        out = b"".join(self.pending)
        self.pending.clear()
        return out

    def commands(self, prefix: bytes) -> list[bytes]:
        return [c for c in self.received if c.startswith(prefix)]

    def _readable(self) -> None:
        assert self._fd is not None
        try:
            data = os.read(self._fd, 4096)
        except (BlockingIOError, OSError):
            return
        self._buf += data
        while (end := self._buf.find(b"\n")) >= 0:
            line = bytes(self._buf[: end + 1])
            del self._buf[: end + 1]
            start = line.find(b":")
            if start >= 0:
                self._command(line[start:])

    def _command(self, line: bytes) -> None:
        self.received.append(line)
        if self.on_command is not None:
            self.on_command(line)
        self._changed.set()
        self._changed = asyncio.Event()
        if self.mode == "mute":
            return
        if self.mode == "echo":
            self.device.write(line)
            return
        answer = self.answer(line)
        if answer is None:
            return
        if self.mode == "inside":
            self.pending.append(answer)
        elif self.mode == "slow":
            asyncio.get_running_loop().call_later(self.delay, self.device.write, answer)
        else:
            self.device.write(answer)

    def answer(self, line: bytes) -> bytes | None:
        """The device's answer to one command record."""
        try:
            frame = HexFrame.parse(line.rstrip(b"\r\n"))
        except ValueError:
            return b":4AAAAFD\n"
        if frame.command == Command.PING:
            return HexFrame(0x5, self.version.to_bytes(2, "little")).encode()
        if frame.command == Command.APP_VERSION:
            return HexFrame(0x1, self.version.to_bytes(2, "little")).encode()
        if frame.command == Command.PRODUCT_ID:
            return HexFrame(0x1, self.pid.to_bytes(2, "little")).encode()
        if frame.command in (Command.GET, Command.SET):
            request = RegisterMessage.parse(line.rstrip(b"\r\n"))
            command = Command(frame.command)
            known = self.registers.get(request.register)
            if known is None:
                return RegisterMessage(command, request.register, Flags.UNKNOWN_ID).encode()
            if command == Command.SET:
                if len(request.value) != len(known):
                    return RegisterMessage(
                        command, request.register, Flags.PARAMETER_ERROR
                    ).encode()
                self.registers[request.register] = request.value
                return request.encode()
            return RegisterMessage(command, request.register, Flags.NONE, known).encode()
        return HexFrame(0x3, bytes([frame.command, 0])).encode()
