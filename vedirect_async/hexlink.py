"""The asynchronous HEX command path of one port: one command in flight, timeouts, retries.

:class:`HexLink` sits between whoever has a question for the device (the register poller,
the ``hex`` CLI) and the port: :meth:`HexLink.command` writes the request, waits for the
record that answers it (matched by :mod:`vedirect_async.commands`), resends on a timeout or on
the device's error frame (``:4AAAAFD``) up to ``retries`` times, and returns a typed
:data:`~vedirect_async.commands.Result` (a :class:`~vedirect_async.commands.NoAnswer` when the
device stayed silent). An ``asyncio.Lock`` keeps one command in flight per port, so an answer is
never given to the wrong question.

The reader calls :meth:`HexLink.on_record` for every verified HEX record, synchronously in
``data_received``: it settles the command in flight or returns an asynchronous ``:A`` value,
counts everything else, and never raises or blocks, so text blocks keep flowing while a command
waits (the answers arrive interleaved with them).

A device that never answers (old firmware without HEX, a cable with only the TX line wired)
is detected after ``mute_after`` consecutive unanswered sends: :attr:`HexLink.mute` turns true,
one line is logged, and the poller sends nothing more to it; its text readings go on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from .commands import (
    DeviceError,
    HexStats,
    NoAnswer,
    Rejected,
    Request,
    Result,
    Value,
    async_value,
)
from .parser import HexRecord

__all__ = ["HexLink", "HexStats"]

_LOGGER = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 1.0  # s for one answer (a device answers within ~50 ms; a busy line slower)
DEFAULT_RETRIES = 2  # resends after the first try (go-victron tries up to 8 times)
DEFAULT_MUTE_AFTER = 3  # consecutive unanswered sends: the device does not speak HEX


class HexLink:
    """Commands to one device over ``write`` (the open port), answers through ``on_record``."""

    def __init__(
        self,
        name: str,
        write: Callable[[bytes], None],
        *,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        mute_after: int = DEFAULT_MUTE_AFTER,
    ) -> None:
        self.name = name
        self.stats = HexStats()
        self.mute = False  # the device never answered: send nothing more
        self.answered = False  # the device has answered at least once (it speaks HEX)
        self.last_sent: float | None = None  # monotonic time of the last frame written
        self.timeout = timeout  # s for one answer
        self.retries = retries  # resends after the first try
        self.mute_after = mute_after  # consecutive unanswered sends that mute the link
        self._write = write
        self._unanswered = 0  # consecutive sends without an answer
        self._lock = asyncio.Lock()
        self._request: Request | None = None
        self._echo: bytes = b""
        self._answer: asyncio.Future[Result] | None = None

    @property
    def busy(self) -> bool:
        """A command is in flight."""
        return self._request is not None

    async def command(
        self, request: Request, *, wait: float | None = None, retries: int | None = None
    ) -> Result:
        """Send ``request`` and wait (``wait`` s, default the link's timeout) for its answer;
        resend on silence or an error frame, ``retries`` times at most.

        Raises :class:`~vedirect_async.errors.PortClosedError` (from ``write``) when the port
        is closed; every answer of the device, and its silence, is a typed result. A muted
        link sends nothing and returns ``NoAnswer(0)``.
        """
        wait = self.timeout if wait is None else wait
        tries = 1 + (self.retries if retries is None else retries)
        async with self._lock:
            self.stats.commands += 1
            if self.mute:
                return NoAnswer(0)  # the device does not answer: nothing is sent
            loop = asyncio.get_running_loop()
            self._request = request
            self._echo = request.frame[1:-1]
            result: Result = NoAnswer(tries)
            try:
                for attempt in range(tries):
                    if attempt:
                        self.stats.retries += 1
                    answer: asyncio.Future[Result] = loop.create_future()
                    self._answer = answer
                    self._write(request.frame)
                    self.stats.sent += 1
                    self.last_sent = time.monotonic()
                    try:
                        async with asyncio.timeout(wait):
                            result = await answer
                    except TimeoutError:
                        self.stats.timeouts += 1
                        if self._silence():
                            return NoAnswer(attempt + 1)
                        continue
                    if not isinstance(result, DeviceError):
                        return result
                if isinstance(result, NoAnswer):
                    self.stats.no_answer += 1
                return result
            finally:
                self._request = None
                self._answer = None

    def on_record(self, record: HexRecord) -> Value | Rejected | None:
        """A verified HEX record from the device: settle the command in flight, or return an
        asynchronous ``:A`` value (None for anything else). Never raises."""
        request = self._request
        if request is not None:
            result = request.match(record)
            if result is not None:
                self._settle(result)
                return None
            if record.digits == self._echo:
                self.stats.echoes += 1
                return None
        value = async_value(record)
        if isinstance(value, Value | Rejected):
            self.stats.async_values += 1
            return value
        self.stats.unmatched += 1
        return None

    def _settle(self, result: Result) -> None:
        answer = self._answer
        if answer is None or answer.done():
            self.stats.unmatched += 1  # a second answer to the same send (a late duplicate)
            return
        self.stats.answers += 1
        if isinstance(result, Rejected):
            self.stats.rejected += 1
        elif isinstance(result, DeviceError):
            self.stats.error_frames += 1
        self._unanswered = 0
        self.answered = True
        answer.set_result(result)

    def stop(self, why: str) -> None:
        """Send nothing more to this device (``why`` is logged once): e.g. its text stream
        pauses after every HEX command (older firmware), which polling must not cause."""
        if not self.mute:
            self.mute = self.stats.stopped = True
            _LOGGER.info("%s: %s; sending it no more HEX, text readings go on", self.name, why)

    def _silence(self) -> bool:
        """One more send without an answer; the ``mute_after``-th in a row mutes the link.
        Returns whether the link is muted."""
        self._unanswered += 1
        if self.mute or self.answered or self._unanswered < self.mute_after:
            return self.mute
        self.mute = self.stats.stopped = True
        _LOGGER.info(
            "%s: the device answered none of %d HEX commands (firmware without HEX, or only "
            "the TX line wired?); sending it no more, text readings go on",
            self.name,
            self._unanswered,
        )
        return True
