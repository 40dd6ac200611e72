"""The hub: bounded per-subscriber queues, drop-oldest, coalescing, isolation of consumers."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import pytest

from vedirect_async.errors import SubscriptionClosed
from vedirect_async.hub import Hub
from vedirect_async.reading import Reading
from vedirect_async.state import DeviceChange, DeviceState, OutputState, ReaderState


def reading(device: str, n: int) -> Reading:
    return Reading(device=device, time=datetime.now(UTC), monotonic=float(n), values={"n": n})


def test_full_queue_drops_the_oldest_and_counts() -> None:
    """A FIFO subscriber that falls behind keeps the newest maxsize readings, counts the rest."""
    hub = Hub()
    sub = hub.subscribe("csv", maxsize=3)
    for n in range(10):
        hub.publish(reading("bmv", n))
    assert sub.dropped == 7
    assert len(sub) == 3
    got = [sub.get_nowait() for _ in range(3)]
    assert [r.values["n"] for r in got if r is not None] == [7, 8, 9]
    assert sub.get_nowait() is None
    assert sub.delivered == 3


def test_latest_only_keeps_the_newest_per_device_in_arrival_order() -> None:
    """Coalescing: one reading per device, the newest, superseded ones counted."""
    hub = Hub()
    sub = hub.subscribe("domoticz", latest_only=True)
    hub.publish(reading("bmv", 1))
    hub.publish(reading("mppt", 2))
    hub.publish(reading("bmv", 3))
    assert len(sub) == 2
    assert sub.dropped == 1
    first, second = sub.get_nowait(), sub.get_nowait()
    assert first is not None
    assert second is not None
    assert (first.device, first.values["n"]) == ("mppt", 2)
    assert (second.device, second.values["n"]) == ("bmv", 3)
    hub.publish(reading("bmv", 4))
    hub.publish(reading("bmv", 5))
    assert {d: r.values["n"] for d, r in sub.drain_latest().items()} == {"bmv": 5}


async def test_waiting_consumer_wakes_on_publish_and_ends_on_close() -> None:
    """get() waits for the next reading; close() ends an async-for loop cleanly."""
    hub = Hub()
    sub = hub.subscribe("x")
    received: list[int] = []

    async def consume() -> None:
        async for r in sub:
            received.append(int(r.monotonic))

    task = asyncio.get_running_loop().create_task(consume())
    await asyncio.sleep(0)  # let it start waiting: the point is publishing to a waiter
    hub.publish(reading("bmv", 1))
    hub.publish(reading("bmv", 2))
    sub.close()
    await asyncio.wait_for(task, 1)
    assert received == [1, 2]
    assert hub.subscriptions == ()
    hub.publish(reading("bmv", 3))  # closed: nothing queued, nothing raised
    assert len(sub) == 0


async def test_raising_and_blocked_consumers_do_not_slow_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A producer at full rate: a blocked consumer and a raising listener cost the rest nothing."""
    hub = Hub()
    fast = hub.subscribe("fast", maxsize=10_000)
    blocked = hub.subscribe("blocked", maxsize=16)
    calls = 0

    def raising_listener(r: Reading) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("listener bug")

    hub.add_listener(raising_listener)
    got = 0

    async def consume() -> None:
        nonlocal got
        async for _ in fast:
            got += 1

    consumer = asyncio.get_running_loop().create_task(consume())
    total = 5_000
    for n in range(total):
        hub.publish(reading("bmv", n))  # never awaits: the producer is not held up by anyone
        if n % 100 == 0:
            await asyncio.sleep(0)  # a real reader yields between chunks; so does this one
    fast.close()
    await asyncio.wait_for(consumer, 5)
    assert got == total
    assert fast.dropped == 0
    assert blocked.dropped == total - 16
    assert len(blocked) == 16
    assert calls == total
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1  # rate-limited: one traceback, not 5,000
    assert errors[0].exc_info is not None


def test_state_records_are_created_once_and_shared() -> None:
    """device() and output() return the same record for the same name (for /health)."""
    hub = Hub()
    assert hub.device("bmv", "/dev/ttyUSB0") is hub.device("bmv")
    state = hub.output("csv")
    state.degraded("disk slow")
    state.count("rows", 3)
    assert hub.output("csv").reason == "disk slow"
    assert hub.output("csv").counters == {"rows": 3}
    state.ok()
    assert state.reason == ""
    assert state.successes == 1


async def test_get_on_a_closed_subscription_raises_subscription_closed() -> None:
    """Outside ``async for``, a closed subscription raises SubscriptionClosed (a typed error),
    never StopAsyncIteration from a plain coroutine."""
    hub = Hub()
    sub = hub.subscribe("x")
    waiter = asyncio.get_running_loop().create_task(sub.get())
    await asyncio.sleep(0)  # let it wait
    sub.close()
    with pytest.raises(SubscriptionClosed):
        await asyncio.wait_for(waiter, 1)
    with pytest.raises(SubscriptionClosed):
        await sub.wait()
    assert sub.closed


def test_state_views_are_read_only() -> None:
    """hub.devices / hub.outputs are views: nobody but the owner replaces a record."""
    hub = Hub()
    hub.device("bmv")
    hub.output("csv")
    assert list(hub.devices) == ["bmv"]
    assert list(hub.outputs) == ["csv"]
    with pytest.raises(TypeError):
        hub.devices["x"] = DeviceState("x", "")  # type: ignore[index]
    with pytest.raises(TypeError):
        hub.outputs["x"] = OutputState("x")  # type: ignore[index]


def _a_write_through_the_view_is_a_type_error(hub: Hub) -> None:
    """Never called: ``mypy --strict`` (part of ``make test``, with warn_unused_ignores) checks
    that a device's state reached through the hub is read-only, so only its session writes it
    (the session holds the :class:`DeviceState` itself). Without the read-only
    :class:`~vedirect_async.state.DeviceView` these ignores would be unused: a mypy error."""
    view = hub.devices["bmv"]
    view.state = ReaderState.READING  # type: ignore[misc]
    view.restarts += 1  # type: ignore[misc]


async def test_device_changes_start_with_the_current_state_and_keep_the_newest() -> None:
    """A change subscriber is told of every device's state at once and of each later change;
    a slow one sees the newest state per device (bounded), in order of change."""
    hub = Hub()
    bmv = hub.device("bmv", "/dev/ttyUSB0")
    changes = hub.device_changes("mqtt")
    first = await asyncio.wait_for(changes.get(), 1)
    assert first == DeviceChange("bmv", ReaderState.STARTING, "")
    mppt = hub.device("mppt")
    for state, reason in ((ReaderState.READING, ""), (ReaderState.SILENT, "no bytes")):
        mppt.state, mppt.reason = state, reason
        hub.device_changed(mppt)
    bmv.state = ReaderState.READING
    hub.device_changed(bmv)
    assert len(changes) == 2
    assert changes.dropped == 1  # mppt's READING was superseded before it was taken
    got = [await changes.get(), await changes.get()]
    assert got == [
        DeviceChange("mppt", ReaderState.SILENT, "no bytes"),
        DeviceChange("bmv", ReaderState.READING, ""),
    ]
    changes.close()
    hub.device_changed(bmv)  # closed: nothing queued, nothing raised
    assert changes.get_nowait() is None
    assert [c async for c in changes] == []
