"""The one small interface every output implements.

An output is built from the configuration (no I/O in its constructor), gets its own
subscription from the hub and runs until cancelled. It owns its retry policy and reports its
state through the :class:`~vedirect_async.hub.OutputState` it is given. The service supervises
it: if ``run`` raises, the exception is logged once with its traceback and ``run`` is called
again after a capped backoff, with the same subscription.
"""

from __future__ import annotations

import abc
from typing import ClassVar

from ..hub import Hub, OutputState, Subscription

__all__ = ["Output"]


class Output(abc.ABC):
    """Base class of outputs (Domoticz, CSV, MQTT, ...)."""

    #: unique short name, used in logs, /health and /metrics
    name: ClassVar[str]
    #: True: keep only the newest reading per device (rate-limited outputs).
    #: False: a bounded FIFO of every reading (log outputs); full = drop oldest, counted.
    latest_only: ClassVar[bool] = False
    #: queue bound for FIFO subscriptions
    queue_size: ClassVar[int] = 1024

    def subscribe(self, hub: Hub) -> Subscription:
        """The subscription this output reads from (called once by the service)."""
        return hub.subscribe(self.name, maxsize=self.queue_size, latest_only=self.latest_only)

    @abc.abstractmethod
    async def run(self, readings: Subscription, state: OutputState) -> None:
        """Consume readings until cancelled. Flush what must be flushed on cancellation."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook, default does nothing
        """Release resources at shutdown (after ``run`` was cancelled)."""
