"""The shared delivery scaffold (outputs/delivery.py): schedule, retry, episodes, state."""

from __future__ import annotations

import asyncio
import logging
import random

import pytest

from vedirect_async.backoff import Backoff
from vedirect_async.errors import PermanentDeliveryError, TransientDeliveryError
from vedirect_async.outputs.delivery import Delivery, Schedule
from vedirect_async.state import OutputHealth, OutputState


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


# -- schedule -----------------------------------------------------------------------------------


def test_schedule_ticks_are_absolute_so_slow_rounds_do_not_drift() -> None:
    clock = Clock()
    schedule = Schedule(10.0, clock=clock)
    schedule.start()
    assert schedule.due == 110.0
    dues = []
    for _ in range(5):
        clock.now = schedule.due + 3.7  # every round ends 3.7 s after its tick
        assert schedule.done() == 0
        dues.append(schedule.due)
    assert dues == [120.0, 130.0, 140.0, 150.0, 160.0]
    assert schedule.ticks == 5
    assert schedule.skipped == 0


def test_schedule_skips_and_counts_ticks_missed_by_a_long_round() -> None:
    clock = Clock()
    schedule = Schedule(10.0, first=0, clock=clock)
    schedule.start()
    assert schedule.due == 100.0  # first=0: a tick at start
    clock.now = 135.0  # the round of tick 0 took 35 s: ticks 1, 2, 3 passed
    assert schedule.done() == 3
    assert schedule.due == 140.0  # never caught up in a burst
    clock.now = 140.0
    assert schedule.done() == 0
    assert schedule.due == 150.0
    assert schedule.skipped == 3
    assert schedule.ticks == 2


def test_schedule_done_early_still_moves_one_tick() -> None:
    clock = Clock()
    schedule = Schedule(5.0, clock=clock)
    schedule.start()
    clock.now = 101.0  # handled before it was due (e.g. woken early): next tick, not the same
    schedule.done()
    assert schedule.due == 110.0


@pytest.mark.parametrize("interval", [0.0, -1.0, float("nan"), float("inf")])
def test_schedule_rejects_a_useless_interval(interval: float) -> None:
    with pytest.raises(ValueError, match="interval"):
        Schedule(interval)


async def test_schedule_wait_sleeps_until_the_tick_on_the_loop_clock() -> None:
    loop = asyncio.get_running_loop()
    schedule = Schedule(0.05)
    schedule.start()
    await schedule.wait()
    assert loop.time() >= schedule.due
    schedule.done()
    before = schedule.due
    await schedule.wait()
    assert loop.time() >= before


# -- delivery -------------------------------------------------------------------------------------


def _retry_at(delivery: Delivery) -> float | None:
    return delivery.retry_at  # read through a call: mypy keeps no narrowing across it


def _delivery(clock: Clock, state: OutputState) -> Delivery:
    backoff = Backoff(1.0, 30.0, rng=random.Random(1))
    return Delivery("test", state, backoff, logger=logging.getLogger("test.delivery"), clock=clock)


def test_an_episode_logs_once_at_warning_then_debug_then_info_with_its_length(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="test.delivery")
    clock, state = Clock(), OutputState("test")
    delivery = _delivery(clock, state)
    for _ in range(4):
        delivery.failed(TransientDeliveryError("connection refused"))
        clock.now += 2.5
    delivery.succeeded()
    levels = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert [level for level, _ in levels] == [logging.WARNING] + [logging.DEBUG] * 3 + [
        logging.INFO
    ]
    assert "connection refused" in levels[0][1]
    assert "recovered after 4 failed attempts in 10.0 s" in levels[-1][1]
    assert state.health is OutputHealth.OK
    assert state.failures == 4
    assert state.successes == 1
    assert delivery.episodes == 1
    assert not delivery.failing


def test_a_new_reason_within_an_episode_is_a_warning_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="test.delivery")
    clock, state = Clock(), OutputState("test")
    delivery = _delivery(clock, state)
    delivery.failed(TransientDeliveryError("timeout"))
    delivery.failed(PermanentDeliveryError("401 unauthorized"))
    assert [r.levelno for r in caplog.records] == [logging.WARNING, logging.WARNING]
    assert state.reason == "401 unauthorized"
    assert state.health is OutputHealth.FAILED


def test_retry_uses_the_one_jittered_backoff() -> None:
    clock, state = Clock(), OutputState("test")
    delivery = _delivery(clock, state)
    delays = [delivery.failed(TransientDeliveryError("x")) for _ in range(7)]
    assert delays[0] == pytest.approx(1.0, rel=0.21)
    assert delays[1] == pytest.approx(2.0, rel=0.21)
    assert max(delays) <= 30.0
    assert delays[-1] >= 24.0
    assert len(set(delays)) == len(delays)  # jittered
    assert delivery.retry_at == clock.now + delays[-1]
    assert not delivery.due()
    clock.now = delivery.retry_at
    assert delivery.due()
    delivery.succeeded()
    assert _retry_at(delivery) is None
    assert delivery.backoff.attempt == 0
    assert delivery.failed(PermanentDeliveryError("EACCES")) == pytest.approx(1.0, rel=0.21)


def test_degraded_failures_are_counted_but_not_failed() -> None:
    clock, state = Clock(), OutputState("test")
    delivery = _delivery(clock, state)
    delivery.failed(TransientDeliveryError("disk full"), health=OutputHealth.DEGRADED)
    assert state.health is OutputHealth.DEGRADED
    assert state.failures == 1
    assert state.reason == "disk full"


def test_a_permanent_error_is_failed_even_when_the_output_would_only_degrade() -> None:
    clock, state = Clock(), OutputState("test")
    delivery = _delivery(clock, state)
    delivery.failed(PermanentDeliveryError("EACCES"), health=OutputHealth.DEGRADED)
    assert state.health is OutputHealth.FAILED
    assert state.failures == 1


async def test_attempt_classifies_by_type_and_respects_the_retry_time() -> None:
    clock, state = Clock(), OutputState("test")
    delivery = _delivery(clock, state)
    calls = 0

    async def broken() -> int:
        nonlocal calls
        calls += 1
        raise TransientDeliveryError("refused")

    async def works() -> int:
        nonlocal calls
        calls += 1
        return 7

    assert await delivery.attempt(broken) == (False, None)
    assert await delivery.attempt(works) == (False, None)  # not due yet: not even called
    assert calls == 1
    assert delivery.retry_at is not None
    clock.now = delivery.retry_at
    assert await delivery.attempt(works) == (True, 7)
    assert calls == 2
    assert state.health is OutputHealth.OK

    async def bug() -> int:
        raise KeyError("a bug is not a delivery failure")

    with pytest.raises(KeyError):  # only typed delivery errors are handled; a bug propagates
        await delivery.attempt(bug)
