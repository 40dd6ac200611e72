"""Broadcast hub: readings fan out to subscribers, each with its own bounded queue.

- **Readings.** The device session calls :meth:`Hub.publish`, which never awaits and never
  blocks: a subscriber whose queue is full loses its *oldest* reading (counted), never the
  newest. A "latest only" subscription keeps at most one reading per device (coalescing),
  for rate-limited outputs. :attr:`Hub.latest` holds each device's newest reading.
- **State, read-only.** :attr:`Hub.devices` and :attr:`Hub.outputs` are read-only views of
  the :class:`~vedirect_async.state.DeviceState` / :class:`~vedirect_async.state.OutputState`
  records (for ``/health``, ``/metrics``, the watchdog). Each record has one writer: its
  device session, or its output. :meth:`Hub.device` / :meth:`Hub.output` hand the record to
  that owner (created on first use).
- **Change notifications.** Whoever needs to act on a device's reader state (MQTT
  availability, for one) subscribes with :meth:`Hub.device_changes` instead of polling: it
  receives a :class:`~vedirect_async.state.DeviceChange` whenever a device's reader state,
  reason or stuck flag changes, or its daily history is read (the session calls
  :meth:`Hub.device_changed`). The queue keeps the newest change per device, so a slow
  consumer sees the current state, never an unbounded backlog. A new subscription starts
  with the current state of every device.
- **Ending.** ``close()`` ends a subscription: a consumer waiting in ``get``/``wait`` gets
  :class:`~vedirect_async.errors.SubscriptionClosed`; ``async for`` simply ends.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from types import MappingProxyType
from typing import Generic, TypeVar

from .errors import SubscriptionClosed
from .logsetup import RateLimitedLogger
from .reading import Reading
from .state import (
    DeviceChange,
    DeviceState,
    DeviceView,
    OutputHealth,
    OutputState,
    ReaderState,
)

__all__ = [
    "DeviceChanges",
    "DeviceState",  # re-exported from state (older import path)
    "DeviceView",  # re-exported from state
    "Hub",
    "OutputHealth",  # re-exported from state
    "OutputState",  # re-exported from state
    "ReaderState",  # re-exported from state
    "Subscription",
]

_LOGGER = logging.getLogger(__name__)

_T = TypeVar("_T")


class _Mailbox(Generic[_T]):
    """What every subscription shares: waiting for items, closing, async iteration."""

    def __init__(self, name: str, on_close: Callable[[_Mailbox[_T]], None]) -> None:
        self.name = name
        self.dropped = 0  # items lost because the queue was full (or superseded)
        self.delivered = 0
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False
        self._on_close = on_close

    def __len__(self) -> int:
        raise NotImplementedError

    def get_nowait(self) -> _T | None:
        """The next item, or None if nothing is queued."""
        raise NotImplementedError

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self) -> _T:
        """Wait for the next item. Raises SubscriptionClosed once closed and empty."""
        while (item := self.get_nowait()) is None:
            await self.wait()
        return item

    async def wait(self) -> None:
        """Wait until at least one item is queued; SubscriptionClosed if closed meanwhile."""
        while not len(self):
            if self._closed:
                raise SubscriptionClosed(f"subscription {self.name!r} closed")
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    def __aiter__(self) -> AsyncIterator[_T]:
        return self

    async def __anext__(self) -> _T:
        try:
            return await self.get()
        except SubscriptionClosed:
            raise StopAsyncIteration from None

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Unsubscribe; a waiting consumer gets SubscriptionClosed (``async for`` ends)."""
        if self._closed:
            return
        self._closed = True
        self._on_close(self)
        self._wake()


class Subscription(_Mailbox[Reading]):
    """One subscriber's bounded queue of readings; async-iterate it to receive them."""

    def __init__(
        self,
        name: str,
        maxsize: int,
        latest_only: bool,
        on_close: Callable[[_Mailbox[Reading]], None],
    ) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be >= 1")
        super().__init__(name, on_close)
        self.maxsize = maxsize
        self.latest_only = latest_only
        self._queue: collections.deque[Reading] = collections.deque()
        self._latest: dict[str, Reading] = {}

    def __len__(self) -> int:
        return len(self._latest) if self.latest_only else len(self._queue)

    def _put(self, reading: Reading) -> None:
        if self._closed:
            return
        if self.latest_only:
            if reading.device in self._latest:
                self.dropped += 1
                del self._latest[reading.device]  # re-insert: keep arrival order
            self._latest[reading.device] = reading
        else:
            if len(self._queue) >= self.maxsize:
                self._queue.popleft()
                self.dropped += 1
            self._queue.append(reading)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def get_nowait(self) -> Reading | None:
        """The next reading, or None if nothing is queued."""
        if self.latest_only:
            if not self._latest:
                return None
            device = next(iter(self._latest))
            reading = self._latest.pop(device)
        else:
            if not self._queue:
                return None
            reading = self._queue.popleft()
        self.delivered += 1
        return reading

    def drain_latest(self) -> dict[str, Reading]:
        """Take everything queued, newest per device (for outputs that post on a schedule)."""
        out: dict[str, Reading] = {}
        while (reading := self.get_nowait()) is not None:
            out[reading.device] = reading
        return out


class DeviceChanges(_Mailbox[DeviceChange]):
    """Reader-state changes of every device, newest per device, in order of change."""

    def __init__(self, name: str, on_close: Callable[[_Mailbox[DeviceChange]], None]) -> None:
        super().__init__(name, on_close)
        self._latest: dict[str, DeviceChange] = {}

    def __len__(self) -> int:
        return len(self._latest)

    def _put(self, change: DeviceChange) -> None:
        if self._closed:
            return
        if self._latest.pop(change.device, None) is not None:
            self.dropped += 1  # superseded before it was taken
        self._latest[change.device] = change
        self._wake()

    def get_nowait(self) -> DeviceChange | None:
        if not self._latest:
            return None
        device = next(iter(self._latest))
        self.delivered += 1
        return self._latest.pop(device)


class Hub:
    """Fan-out of readings and device changes; read-only views of device and output state."""

    def __init__(self) -> None:
        self._subscribers: list[Subscription] = []
        self._change_subscribers: list[DeviceChanges] = []
        self.latest: dict[str, Reading] = {}
        self._devices: dict[str, DeviceState] = {}
        self._outputs: dict[str, OutputState] = {}
        # live read-only views, made once (every /health and /metrics request reads them)
        self._devices_view: Mapping[str, DeviceView] = MappingProxyType(self._devices)
        self._outputs_view: Mapping[str, OutputState] = MappingProxyType(self._outputs)
        self.published = 0
        self._listeners: list[Callable[[Reading], None]] = []
        self._limited = RateLimitedLogger(_LOGGER, interval=60.0)

    # -- readings ------------------------------------------------------------------------------

    def subscribe(
        self, name: str, *, maxsize: int = 256, latest_only: bool = False
    ) -> Subscription:
        """A new subscription; readings published from now on are queued for it."""
        sub = Subscription(name, maxsize, latest_only, self._unsubscribe)
        self._subscribers.append(sub)
        return sub

    def _unsubscribe(self, sub: _Mailbox[Reading]) -> None:
        if isinstance(sub, Subscription) and sub in self._subscribers:
            self._subscribers.remove(sub)

    @property
    def subscriptions(self) -> tuple[Subscription, ...]:
        return tuple(self._subscribers)

    def add_listener(self, callback: Callable[[Reading], None]) -> Callable[[], None]:
        """A synchronous callback run on every reading (must be quick); returns unsubscribe."""
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback) if callback in self._listeners else None

    def publish(self, reading: Reading) -> None:
        """Hand a reading to every subscriber. Never awaits; never raises."""
        self.published += 1
        self.latest[reading.device] = reading
        for sub in self._subscribers:
            sub._put(reading)
        for callback in self._listeners:
            try:
                callback(reading)
            except Exception:
                self._limited.log(
                    logging.ERROR,
                    repr(callback),
                    "hub: listener %r failed on a reading of %s",
                    callback,
                    reading.device,
                    exc_info=True,
                )

    # -- state records and change notifications -------------------------------------------------

    @property
    def devices(self) -> Mapping[str, DeviceView]:
        """Read-only view: device name -> its state (written by its session only; the
        :class:`DeviceView` type makes a write from anyone else a type error)."""
        return self._devices_view

    @property
    def outputs(self) -> Mapping[str, OutputState]:
        """Read-only view: output name -> its state (written by the output only)."""
        return self._outputs_view

    def device(self, name: str, port: str = "") -> DeviceState:
        """The state record of a device, for its session (created on first use)."""
        state = self._devices.get(name)
        if state is None:
            state = self._devices[name] = DeviceState(name, port)
        return state

    def output(self, name: str) -> OutputState:
        """The state record of an output, for the output (created on first use)."""
        state = self._outputs.get(name)
        if state is None:
            state = self._outputs[name] = OutputState(name)
        return state

    def device_changes(self, name: str) -> DeviceChanges:
        """Subscribe to reader-state changes; starts with every known device's current state."""
        sub = DeviceChanges(name, self._unsubscribe_changes)
        for state in self._devices.values():
            sub._put(state.snapshot())
        self._change_subscribers.append(sub)
        return sub

    def _unsubscribe_changes(self, sub: _Mailbox[DeviceChange]) -> None:
        if isinstance(sub, DeviceChanges) and sub in self._change_subscribers:
            self._change_subscribers.remove(sub)

    def device_changed(self, state: DeviceState) -> None:
        """Tell change subscribers about ``state``'s new reader state (its session calls this)."""
        if not self._change_subscribers:
            return
        change = state.snapshot()
        for sub in self._change_subscribers:
            sub._put(change)
