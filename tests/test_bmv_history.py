"""A battery monitor's history over HEX (issue 14): of the registers 0x0300-0x0311 (the twins
of the text fields H1-H18), those whose text field no BMV or SmartShunt block carries (H13, H14:
low/high auxiliary voltage alarms) are read by default, so every output has the whole history."""

from __future__ import annotations

import asyncio

import pytest

from vedirect_async import fields
from vedirect_async.config import DeviceConfig, WatchdogConfig
from vedirect_async.daily import BMV_HISTORY_REGISTERS, BmvHistory
from vedirect_async.hub import Hub
from vedirect_async.parser import Parser, TextBlock
from vedirect_async.poller import DEFAULT_REGISTERS
from vedirect_async.session import DeviceSession
from vedirect_async.simulator import SimulatedDevice

KINDS = ("bmv712", "smartshunt")
AUX_ALARMS = ("history_low_aux_voltage_alarms", "history_high_aux_voltage_alarms")


def text_labels(kind: str, seconds: int = 30) -> set[str]:
    """Every label a simulated device's text blocks carry (history blocks included)."""
    sim, parser = SimulatedDevice(kind, seed=3), Parser()
    labels: set[str] = set()
    for data in sim.iter_seconds(seconds):
        for event in parser.feed(data):
            if isinstance(event, TextBlock):
                labels.update(label.decode() for label, _ in event.fields)
    return labels


def test_defaults_are_the_history_registers_the_text_lacks() -> None:
    defaults = [BMV_HISTORY_REGISTERS[r] for r in DEFAULT_REGISTERS["bmv"]]
    assert defaults == list(AUX_ALARMS)
    twins = {name: fields.lookup(name) for name in BMV_HISTORY_REGISTERS.values()}
    for kind in KINDS:
        labels = text_labels(kind)
        carried = {name for name, field in twins.items() if field and field.label in labels}
        assert carried  # the rest of the history comes with the text (H1-H12, H15-H18)
        assert not carried & set(defaults), kind  # the defaults add only what it lacks


@pytest.mark.parametrize("kind", KINDS)
async def test_aux_alarm_counters_reach_the_readings(kind: str) -> None:
    hub = Hub()
    session = DeviceSession(
        DeviceConfig(name="bmv", port=f"simulator:{kind}"), hub, WatchdogConfig()
    )
    sub = hub.subscribe("test")
    task = asyncio.create_task(session.run())
    try:
        async with asyncio.timeout(10):  # polled once the product id is known
            reading = await sub.get()
            while not all(name in reading.values for name in AUX_ALARMS):
                reading = await sub.get()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    history = BmvHistory.from_values(reading.values)
    assert history.low_aux_voltage_alarms == 0
    assert history.high_aux_voltage_alarms == 0
    assert history.charge_cycles is not None  # with the text's own history fields
