"""Capped exponential backoff with jitter: the one retry schedule of the whole service.

Readers reopening a port, supervised tasks restarting, outputs retrying a server: all wait
with :class:`Backoff`, so they share one rule (doubling, capped, jittered, reset by success).
"""

from __future__ import annotations

import random

__all__ = ["Backoff"]


class Backoff:
    """Capped exponential backoff with jitter: about initial, 2x, 4x ... up to ``maximum``.

    Each delay is the exponential step scaled by a random factor in [0.8, 1.2] (so readers
    that failed together do not retry in lockstep), never above ``maximum``.
    """

    def __init__(self, initial: float, maximum: float, rng: random.Random | None = None) -> None:
        self.initial = initial
        self.maximum = maximum
        self.attempt = 0
        self._rng = rng or random.Random()

    def next(self) -> float:
        """The delay before the next attempt; each call doubles the base up to the cap."""
        base = min(self.maximum, self.initial * 2.0 ** min(self.attempt, 32))
        self.attempt += 1
        return min(self.maximum, base * self._rng.uniform(0.8, 1.2))

    def reset(self) -> None:
        """After a success: the next failure waits ``initial`` again."""
        self.attempt = 0
