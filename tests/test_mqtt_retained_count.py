"""A retained command the MQTT output ignores (issue 15) is counted where an operator sees it:
the output's events, on /metrics as vedirect_output_events_total{counter=...}."""

from __future__ import annotations

from .mosquitto import Mosquitto
from .test_mqtt import broker, running, subscriber
from .test_mqtt_control import STATE, mppt, publish

__all__ = ["broker"]  # the fixture, used by name


async def test_retained_command_is_counted(broker: Mosquitto) -> None:
    await publish(broker, "vedirect/mppt/set/device_mode", "off", retain=True)
    async with (
        mppt(broker) as rig,
        subscriber(broker, STATE) as sub,
        running(rig.output, rig.hub),
    ):
        await sub.wait_for(lambda m: m.topic == STATE)
        start = len(sub.messages)
        await publish(broker, "vedirect/mppt/set/battery_max_current", "9.5")  # after the retained
        await sub.wait_for(
            lambda m: m.topic == STATE and m.json().get("battery_max_current") == 9.5, start=start
        )
        assert rig.output.state.counters.get("retained_commands_ignored") == 1
