"""The device end of a pseudo-terminal, behaving like a serial line."""

from __future__ import annotations

import collections
import contextlib
import fcntl
import os
import sys
import termios
import time
from collections.abc import Callable


class PtyLine:
    """The device end of a pseudo-terminal, behaving like a serial line nobody may be reading.

    Writes never block. A real USB serial port holds about two seconds of unread data (the
    kernel's 4 KB line buffer at 19200 baud) and loses the rest; whoever opens the port next
    gets fresh data. A pty would instead keep ~22 kB (over a minute of BMV output) for the next
    opener, who would then take stale values for current ones. So before each write, if the
    slave side holds bytes older than ``keep`` seconds (more unread bytes than were written in
    that time), they are discarded. ``clock`` is injectable for tests.
    """

    __slots__ = ("_clock", "_keep", "_recent", "_recent_bytes", "discarded", "master", "slave")

    def __init__(
        self,
        master: int,
        slave: int,
        *,
        keep: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.master = master
        self.slave = slave
        self._keep = keep
        self._clock = clock
        self._recent: collections.deque[tuple[float, int]] = collections.deque()
        self._recent_bytes = 0
        self.discarded = 0  # stale bytes thrown away (nobody was reading)

    def pending(self) -> int:
        """Bytes written that the slave side has not read yet (as far as the kernel shows)."""
        raw = fcntl.ioctl(self.slave, termios.FIONREAD, b"\0\0\0\0")
        return int.from_bytes(raw, sys.byteorder, signed=True)

    def write(self, chunk: bytes) -> None:
        """Write ``chunk``, discarding stale unread data first; never blocks."""
        now = self._clock()
        recent = self._recent
        while recent and recent[0][0] < now - self._keep:
            self._recent_bytes -= recent.popleft()[1]
        pending = self.pending()
        if pending > self._recent_bytes:
            self._discard(pending)
        try:
            written = os.write(self.master, chunk)
        except BlockingIOError:
            written = 0
        if written < len(chunk):  # full even so (a burst at high speed): drop and retry once
            self._discard(self.pending())
            with contextlib.suppress(BlockingIOError):
                written += os.write(self.master, chunk[written:])
        if recent and now - recent[-1][0] < 0.1:  # one entry per 0.1 s, even at full speed
            recent[-1] = (recent[-1][0], recent[-1][1] + written)
        else:
            recent.append((now, written))
        self._recent_bytes += written

    def _discard(self, count: int) -> None:
        termios.tcflush(self.slave, termios.TCIFLUSH)
        self.discarded += count
