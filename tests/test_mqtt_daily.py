"""The daily history on MQTT (issue 14): ``<prefix>/<device>/daily`` retained, republished
when the session reads it anew (told by the hub, never polled), and HA sensors for yesterday's
figures; against a real mosquitto and the built-in simulated MPPT, which answers HEX."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import replace
from datetime import date

from vedirect_async.config import DeviceConfig, WatchdogConfig
from vedirect_async.daily import DailyRecord
from vedirect_async.hub import DeviceState, Hub, OutputHealth
from vedirect_async.outputs.mqtt import MqttOutput, Topics
from vedirect_async.outputs.mqtt.daily import DAILY_SENSORS, daily_configs, daily_payload
from vedirect_async.session import DeviceSession

from .mosquitto import Mosquitto
from .test_mqtt import (
    broker,
    check_ha_sensor,
    mqtt_config,
    running,
    simulated_readings,
    subscriber,
    until,
)
from .test_mqtt_ha import render

__all__ = ["broker"]  # the fixture, used by name

DAILY = "vedirect/solar/daily"
TODAY = date(2026, 6, 21)


def record(days_ago: int, **changes: object) -> DailyRecord:
    day = DailyRecord(
        days_ago=days_ago,
        yield_kwh=1.5 + days_ago,
        max_pv_power_w=400 + days_ago,
        max_pv_voltage=98.25,
        battery_voltage_min=12.31,
        battery_voltage_max=14.42 - days_ago / 100,
        battery_current_max=21.5,
        time_bulk_min=120,
        time_absorption_min=60 + days_ago,
        time_float_min=300,
        consumed_kwh=None,
        errors=(),
        day_sequence=300 - days_ago,
    )
    return replace(day, **changes)  # type: ignore[arg-type]


# -- pure parts -----------------------------------------------------------------------------


def test_payload_is_what_api_daily_serves() -> None:
    days = (record(0), record(1, errors=("input voltage too high",)))
    data = json.loads(daily_payload(days, TODAY))
    assert data == [day.as_json(TODAY) for day in days]
    assert [d["date"] for d in data] == ["2026-06-21", "2026-06-20"]
    assert data[1]["errors"] == ["input voltage too high"]


def test_sensors_follow_ha_schema_and_show_yesterday() -> None:
    reading = simulated_readings("mppt", 1, device="solar")[0]
    topics = Topics("vedirect", "solar", "homeassistant")
    configs = daily_configs(topics, reading)
    assert len(configs) == len(DAILY_SENSORS)
    two_days = daily_payload((record(0), record(1)), TODAY)
    for topic, config in configs.items():
        check_ha_sensor(topic, config)
        assert config["state_topic"] == DAILY
        assert config["availability_topic"] == "vedirect/solar/availability"
        assert config["unique_id"].startswith("vedirect_solar_yesterday_")
        assert not config["unique_id"].endswith(("_min", "_max"))  # Domoticz skips those
        attributes = json.loads(render(config["json_attributes_template"], two_days))
        assert attributes == {"date": "2026-06-20"}
        # no yesterday yet (a device with one day of history), or nothing read: unknown
        for payload in (daily_payload((record(0),), TODAY), "[]"):
            assert render(config["value_template"], payload) == "None"
            assert json.loads(render(config["json_attributes_template"], payload)) == {}
    shown = {
        config["name"]: render(config["value_template"], two_days) for config in configs.values()
    }
    assert shown["Max battery voltage yesterday"] == "14.41"
    assert shown["Absorption time yesterday"] == "61"
    assert shown["Max PV voltage yesterday"] == "98.25"
    units = {c["name"]: c["unit_of_measurement"] for c in configs.values()}
    assert units["Float time yesterday"] == "min"
    # a value the device has not got renders unknown, never "null"
    missing = daily_payload((record(0), record(1, battery_current_max=None)), TODAY)
    current = next(c for c in configs.values() if c["name"] == "Max battery current yesterday")
    assert render(current["value_template"], missing) == "None"


# -- against a real broker ------------------------------------------------------------------


class _NoPollingHub(Hub):
    """A hub whose device table may not be read: an output that polls it fails."""

    @property
    def devices(self) -> Mapping[str, DeviceState]:
        raise AssertionError("the MQTT output polled hub.devices")


async def test_history_is_published_retained_and_again_when_read_anew(broker: Mosquitto) -> None:
    hub = _NoPollingHub()
    session = DeviceSession(
        DeviceConfig(name="solar", port="simulator:mppt"), hub, WatchdogConfig()
    )
    output = MqttOutput(mqtt_config(broker), device_names=["solar"])
    task = asyncio.create_task(session.run())
    try:
        async with (
            subscriber(broker, "vedirect/solar/#", "homeassistant/sensor/+/+/config") as sub,
            running(output, hub),
        ):
            # the session reads the history at connect (~33 Gets the simulator answers)
            message = await sub.wait_for(lambda m: m.topic == DAILY)
            days, today = session.state.daily, session.state.daily_date
            assert today is not None
            assert 2 <= len(days) <= 31
            assert message.json() == [day.as_json(today) for day in days]
            assert message.json()[0]["days_ago"] == 0
            # its HA sensors came before it, with the device's identity
            sensor = "homeassistant/sensor/vedirect_solar/yesterday_battery_voltage_maximum/config"
            index = sub.messages.index(message)
            config = next(m for m in sub.messages[:index] if m.topic == sensor).json()
            assert config["device"]["serial_number"]
            check_ha_sensor(sensor, config)
            shown = render(config["value_template"], message.payload.decode())
            assert float(shown) == days[1].battery_voltage_max
            # a day change: the session reads the history again and says so; published again
            mark = len(sub.messages)
            newer = (record(0), *(replace(d, days_ago=d.days_ago + 1) for d in days[:30]))
            session._history_read(newer, date.fromordinal(today.toordinal() + 1))
            again = await sub.wait_for(lambda m: m.topic == DAILY, start=mark)
            assert again.json()[0] == record(0).as_json(date.fromordinal(today.toordinal() + 1))
            assert again.json()[1]["yield_kwh"] == days[0].yield_kwh
            # once per reading of the history: reader-state changes do not republish it
            assert len(sub.on(DAILY)) == 2
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    # retained: a late subscriber gets the newest history at once
    async with subscriber(broker, DAILY) as late:
        seen = await late.wait_for(lambda m: m.topic == DAILY)
        assert seen.retain
        assert seen.json()[0]["day_sequence"] == 300


async def test_history_read_before_the_output_started_and_after_a_broker_restart(
    broker: Mosquitto,
) -> None:
    """The output learns the history already read from its first change notification, and
    publishes it again on a new connection (a restarted broker without persistence lost it)."""
    hub = _NoPollingHub()
    state = hub.device("solar", "/dev/null")
    state.daily, state.daily_date = (record(0), record(1)), TODAY  # read before MQTT started
    reading = simulated_readings("mppt", 1, device="solar")[0]
    hub.publish(reading)
    output = MqttOutput(mqtt_config(broker), device_names=["solar"])
    async with running(output, hub):
        async with subscriber(broker, DAILY) as sub:
            seen = await sub.wait_for(lambda m: m.topic == DAILY)
            assert seen.json() == json.loads(daily_payload(state.daily, TODAY))
        health = hub.output("mqtt")
        broker.stop()
        await until(output, lambda: health.health is not OutputHealth.OK)
        broker.start()
        await until(output, lambda: health.health is OutputHealth.OK)
        async with subscriber(broker, DAILY, "homeassistant/sensor/+/+/config") as sub:
            seen = await sub.wait_for(lambda m: m.topic == DAILY)  # live or retained
            assert seen.json()[1]["date"] == "2026-06-20"
            sensor = await sub.wait_for(lambda m: "/yesterday_" in m.topic)
            assert sensor.json()["state_topic"] == DAILY
        async with subscriber(broker, DAILY) as late:  # and the new broker retains it
            assert (await late.wait_for(lambda m: m.topic == DAILY)).retain
