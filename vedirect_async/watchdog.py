"""Detects a device session that is silent, garbled or stuck, and asks it to restart.

What "stuck" means (design.md) and what happens:

- no bytes for ``silence_timeout`` (device silent, cable pulled without an error, USB wedge)
  → the reader closes the port and reopens it;
- bytes but no valid reading for ``invalid_timeout`` (wrong baud rate, garbage, a device stuck
  in HEX mode, the wrong device) → the same;
- the port vanished (``connection_lost``, missing ``/dev/serial/by-id`` link) → the reader
  session itself reopens with its backoff until it comes back;
- readings byte-identical for ``stuck_timeout`` (optional, 0 = off; a BMV at rest can
  legitimately repeat) → counted and logged once, never restarted.

:func:`check` is the pure decision; :class:`Watchdog` is one monitor task per session that
sleeps until the next deadline (no polling tick), so a healthy device costs one wake-up per
timeout period. The watchdog writes no state: it reads the session's
:class:`~vedirect_async.state.DeviceState` and acts through the session
(:meth:`~vedirect_async.session.DeviceSession.restart`,
:meth:`~vedirect_async.session.DeviceSession.report_stuck`), the state's only writer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .config import WatchdogConfig
from .state import DeviceState, ReaderState

if TYPE_CHECKING:
    from .session import DeviceSession

__all__ = ["Verdict", "Watchdog", "check"]


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the watchdog should do now, and when to look again."""

    restart: ReaderState | None  # SILENT or INVALID: restart the reader; None: leave it
    reason: str
    stuck: bool  # identical readings for stuck_timeout (never a restart)
    next_check: float  # monotonic time of the next deadline


def check(state: DeviceState, opened_at: float, now: float, config: WatchdogConfig) -> Verdict:
    """Judge an open reader: restart it, flag it stuck, or say when to check again."""
    bytes_since = max(state.last_byte or opened_at, opened_at)
    valid_since = max(state.last_reading or opened_at, opened_at)
    silence_due = bytes_since + config.silence_timeout
    invalid_due = valid_since + config.invalid_timeout
    if now >= silence_due:
        return Verdict(
            ReaderState.SILENT,
            f"no bytes for {now - bytes_since:.1f} s (silence_timeout {config.silence_timeout:g})",
            stuck=False,
            next_check=now,
        )
    if now >= invalid_due:
        stats = state.parser
        return Verdict(
            ReaderState.INVALID,
            f"bytes but no valid reading for {now - valid_since:.1f} s "
            f"(invalid_timeout {config.invalid_timeout:g}; {stats.checksum_errors} checksum "
            f"errors, {stats.bytes_discarded} bytes discarded, {stats.hex_ok} HEX records: "
            "wrong baud rate, wrong device, or a device stuck in HEX mode?)",
            stuck=False,
            next_check=now,
        )
    next_check = min(silence_due, invalid_due)
    stuck = False
    if config.stuck_timeout > 0:
        # Judged on the readings themselves: silence is the silence check's business.
        since = state.identical_since if state.identical_readings > 0 else None
        due = now + config.stuck_timeout  # a streak starting now is due then at the earliest
        if since is not None:
            stuck_at = since + config.stuck_timeout
            stuck = (state.last_reading or since) >= stuck_at
            if not stuck and stuck_at > now:
                due = stuck_at
        next_check = min(next_check, due)
    return Verdict(None, "", stuck=stuck, next_check=next_check)


class Watchdog:
    """Monitors one :class:`~vedirect_async.session.DeviceSession`; run as a task."""

    def __init__(
        self,
        config: WatchdogConfig,
        session: DeviceSession,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.session = session
        self._clock = clock

    async def run(self) -> None:
        """Check at each deadline until cancelled."""
        session = self.session
        state = session.state  # read only
        while True:
            opened_at = session.opened_at
            if opened_at is None:
                await session.changed()  # closed: nothing to watch until it reopens
                continue
            now = self._clock()
            verdict = check(state, opened_at, now, self.config)
            if verdict.restart is not None:
                session.restart(verdict.reason, verdict.restart)
                await session.changed()  # the connection closes; look again once it reopens
                continue
            session.report_stuck(verdict.stuck)
            # Wake at the next deadline, or earlier if the session reopens (new opened_at).
            delay = max(0.0, verdict.next_check - now) + 0.001
            changed = asyncio.ensure_future(session.changed())
            try:
                await asyncio.wait((changed,), timeout=delay)
            finally:
                changed.cancel()
