"""The delivery scaffold every output shares: schedule, retry, failure episodes, state.

An output converts what its library raises into the typed errors of
:mod:`vedirect_async.errors` at its own boundary (an HTTP 401 -> :class:`PermanentDeliveryError`,
a refused connection -> :class:`TransientDeliveryError`, ``ENOSPC`` -> transient, ``EACCES`` ->
permanent) and hands them to a :class:`Delivery`; nothing here ever looks at message text.

API (all of it is synchronous bookkeeping except :meth:`Schedule.wait` and
:meth:`Delivery.attempt`; times are monotonic seconds, by default the running loop's clock):

``Schedule(interval, *, first=1)``
    Absolute ticks ``origin + k * interval`` (``k`` from ``first``), so a slow round never
    shifts the following ones (no drift). :meth:`Schedule.start` sets the origin,
    :attr:`Schedule.due` is the next tick, :meth:`Schedule.done` records the tick just handled
    and skips (and counts in :attr:`Schedule.skipped`) every tick that passed meanwhile: missed
    ticks are never caught up in a burst. :meth:`Schedule.wait` sleeps until :attr:`due`.

``Delivery(name, state, backoff, logger=...)``
    One failure episode at a time, the retry timer and the :class:`OutputState` reports:

    - :meth:`Delivery.failed` (a :class:`DeliveryError`): counts the failure in the state and
      reports it: ``failed``, or ``degraded`` when the output says so (``health=DEGRADED``:
      nothing lost yet) - but a :class:`PermanentDeliveryError` (a person has to act: 401,
      EACCES) is always ``failed``, so ``/health`` shows it at once. Logs the first failure of
      an episode at WARNING (a *different* reason within one episode at WARNING too), every
      repeat at DEBUG, and schedules the retry with the one jittered
      :class:`~vedirect_async.backoff.Backoff` (permanent errors too: a person's fix is picked
      up within the backoff's cap, without a restart). Returns the delay.
    - :meth:`Delivery.succeeded`: ends an episode with one INFO line giving its length
      (failed attempts and seconds, plus an optional ``detail``), resets the backoff, and
      reports ``ok`` to the state (``report=False``: the output reports itself, e.g. when
      other targets of it still fail).
    - :attr:`Delivery.retry_at` / :meth:`Delivery.due`: when the next attempt is allowed
      (``None`` / always while no episode is open).
    - :meth:`Delivery.attempt` (an awaitable factory): runs it unless a retry is not due yet;
      a :class:`DeliveryError` it raises goes to :meth:`failed`, a normal return to
      :meth:`succeeded`; returns ``(True, result)`` or ``(False, None)``.

The output keeps everything specific (what a round is, what is counted besides failures,
what degraded means for it) and calls these at its decision points.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from ..backoff import Backoff
from ..errors import DeliveryError, PermanentDeliveryError
from ..state import OutputHealth, OutputState

__all__ = ["Delivery", "Schedule", "loop_clock"]

_LOGGER = logging.getLogger(__name__)
_T = TypeVar("_T")

Clock = Callable[[], float]


def loop_clock() -> float:
    """The running event loop's clock (``time.monotonic`` outside a loop)."""
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:
        return time.monotonic()


class Schedule:
    """Drift-free ticks ``origin + k * interval``; ticks that passed unhandled are skipped."""

    def __init__(self, interval: float, *, first: int = 1, clock: Clock = loop_clock) -> None:
        if not interval > 0 or math.isinf(interval):
            raise ValueError(f"interval must be a positive finite number, not {interval!r}")
        self.interval = interval
        self.first = first
        self.clock = clock
        self.origin = 0.0
        self.tick = first  # number of the next tick
        self.ticks = 0  # ticks handled
        self.skipped = 0  # ticks that passed while a round was still running

    def start(self, now: float | None = None) -> None:
        """Set the origin (default: now); the first tick is ``origin + first * interval``."""
        self.origin = self.clock() if now is None else now
        self.tick = self.first

    @property
    def due(self) -> float:
        """When the next tick is due."""
        return self.origin + self.tick * self.interval

    def done(self, now: float | None = None) -> int:
        """The due tick was handled (finishing at ``now``): move to the first tick after
        ``now`` and return how many ticks were skipped on the way (also added to ``skipped``)."""
        now = self.clock() if now is None else now
        following = math.floor((now - self.origin) / self.interval) + 1
        skipped = max(0, following - self.tick - 1)
        self.tick = max(self.tick + 1, following)
        self.ticks += 1
        self.skipped += skipped
        return skipped

    async def wait(self) -> None:
        """Sleep until the next tick is due (at once if it already is)."""
        delay = self.due - self.clock()
        if delay > 0:
            await asyncio.sleep(delay)


class Delivery:
    """Retry timer, failure-episode logging and state reporting of one output (or one of its
    targets: a CSV file, an MQTT connection). See the module docstring."""

    def __init__(
        self,
        name: str,
        state: OutputState,
        backoff: Backoff,
        *,
        logger: logging.Logger = _LOGGER,
        clock: Clock = loop_clock,
    ) -> None:
        self.name = name
        self.state = state
        self.backoff = backoff
        self.logger = logger
        self.clock = clock
        self.reason = ""  # the current episode's latest reason; "" = no episode open
        self.since = 0.0  # when the open episode began
        self.failures = 0  # failed attempts in the open episode
        self.episodes = 0  # episodes so far (open one included)
        self.retry_at: float | None = None  # next attempt allowed at; None = any time

    @property
    def failing(self) -> bool:
        """True while a failure episode is open."""
        return bool(self.reason)

    def due(self, now: float | None = None) -> bool:
        """May an attempt be made now (no retry pending, or its time has come)?"""
        if self.retry_at is None:
            return True
        return (self.clock() if now is None else now) >= self.retry_at

    def failed(
        self,
        error: DeliveryError,
        *,
        health: OutputHealth = OutputHealth.FAILED,
        now: float | None = None,
    ) -> float:
        """Record a failed attempt; returns the delay before the next one."""
        now = self.clock() if now is None else now
        delay = self.backoff.next()
        self.retry_at = now + delay
        if not self.reason:
            self.since = now
            self.failures = 0
            self.episodes += 1
            self.logger.warning("%s: %s; retrying in %.1f s", self.name, error.reason, delay)
        elif error.reason != self.reason:
            self.logger.warning("%s: now %s; still retrying", self.name, error.reason)
        else:
            self.logger.debug("%s: still failing: %s", self.name, error.reason)
        self.failures += 1
        self.reason = error.reason
        if health is OutputHealth.DEGRADED and not isinstance(error, PermanentDeliveryError):
            self.state.degraded(error.reason)
            self.state.failures += 1
        else:
            self.state.failed(error.reason)
        return delay

    def succeeded(self, *, now: float | None = None, report: bool = True, detail: str = "") -> None:
        """Record a successful attempt: close an open episode (INFO with its length and
        ``detail``, e.g. what was lost meanwhile), reset the backoff, report ``ok`` (unless
        ``report`` is False: the output reports its state itself)."""
        now = self.clock() if now is None else now
        if self.reason:
            self.logger.info(
                "%s: recovered after %d failed attempt%s in %.1f s (last: %s)%s",
                self.name,
                self.failures,
                "" if self.failures == 1 else "s",
                now - self.since,
                self.reason,
                f"; {detail}" if detail else "",
            )
        self.reason = ""
        self.failures = 0
        self.retry_at = None
        self.backoff.reset()
        if report:
            self.state.ok()

    async def attempt(
        self, operation: Callable[[], Awaitable[_T]], *, now: float | None = None
    ) -> tuple[bool, _T | None]:
        """Run ``operation()`` if due: ``(True, result)``, or ``(False, None)`` when not due
        or when it raised a :class:`DeliveryError` (recorded by :meth:`failed`)."""
        if not self.due(now):
            return False, None
        try:
            result = await operation()
        except DeliveryError as error:
            self.failed(error)
            return False, None
        self.succeeded()
        return True, result
