"""The one presentation layer: every field kind and every special value, and that the web
API, MQTT, ``decode`` and Domoticz show a value the same way (issue 12)."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from types import MappingProxyType

import pytest

from vedirect_async.fields import CATALOGUE, UNAVAILABLE, Kind, Value, decode_value
from vedirect_async.outputs.mqtt import state_payload
from vedirect_async.present import Presented, Shape, State, fixed, present
from vedirect_async.present import domoticz_value as format_value
from vedirect_async.reading import Reading, json_value
from vedirect_async.web import reading_json


def test_number_keeps_unit_and_device_resolution() -> None:
    """A number carries its catalogue unit and is written at the device's resolution."""
    volts = present("voltage", 12.8)
    assert (volts.state, volts.shape, volts.unit, volts.decimals) == (
        State.VALUE,
        Shape.NUMBER,
        "V",
        3,
    )
    assert volts.text == "12.800"
    assert volts.json == 12.8
    assert volts.number == 12.8
    assert volts.with_unit() == "12.800 V"
    assert present("soc", 83.9).text == "83.9"
    assert present("history_charged_energy", 85.27).text == "85.27"
    assert present("power", -92).text == "-92"
    assert present("P", -92).name == "power"  # a label works as well as a name
    assert present("time_to_go", 435).with_unit() == "435 min"


def test_number_never_shows_minus_zero() -> None:
    assert present("current", -0.0001).text == "0.000"
    assert fixed(-0.0004, 3) == "0.000"
    assert fixed(-0.0006, 3) == "-0.001"
    assert present("current", -3.21).fixed(1) == "-3.2"


@pytest.mark.parametrize("field", ["soc", "voltage", "error", "alarm_reason", "relay"])
def test_unavailable_is_no_value_never_zero(field: str) -> None:
    """``---`` is null in JSON, empty as text, no number, and keeps its field's shape."""
    shown = present(field, UNAVAILABLE)
    assert shown.state is State.UNAVAILABLE
    assert not shown.available
    assert shown.json is None
    assert shown.text == ""
    assert shown.number is None
    assert shown.fixed() is None
    assert shown.items == ()
    expected = {"soc": Shape.NUMBER, "voltage": Shape.NUMBER, "error": Shape.ENUM}
    expected |= {"alarm_reason": Shape.BITMASK, "relay": Shape.BOOLEAN}
    assert shown.shape is expected[field]


def test_nan_is_unavailable() -> None:
    assert present("voltage", math.nan).state is State.UNAVAILABLE
    assert present("voltage", math.nan).json is None


def test_infinite_time_to_go() -> None:
    """TTG -1 (not discharging): "infinite" in JSON and text, never a number, never 0."""
    shown = present("time_to_go", decode_value("TTG", b"-1"))
    assert shown.state is State.INFINITE
    assert shown.json == "infinite"
    assert shown.text == "infinite"
    assert shown.with_unit() == "infinite"
    assert shown.number is None
    assert shown.fixed() is None
    assert present("time_to_go", -math.inf).json == "-infinite"
    assert present("time_to_go", -math.inf).state is State.MINUS_INFINITE


def test_booleans() -> None:
    on, off = present("relay", True), present("load", decode_value("LOAD", b"Off"))
    assert (on.shape, on.text, on.json, on.number) == (Shape.BOOLEAN, "ON", True, 1)
    assert (off.text, off.json, off.number) == ("OFF", False, 0)
    assert on.with_unit() == "ON"


def test_enum_known_and_unknown_code_stays_visible() -> None:
    """A code missing from the tables is shown with its code, never hidden or replaced."""
    bulk = present("charger_state", decode_value("CS", b"3"))
    assert (bulk.shape, bulk.text, bulk.json, bulk.known) == (Shape.ENUM, "bulk", "bulk", True)
    assert bulk.unknown_code is None
    assert bulk.number is None
    odd = present("error", decode_value("ERR", b"99"))
    assert odd.shape is Shape.ENUM
    assert odd.text == odd.json == "unknown (99)"
    assert not odd.known
    assert odd.unknown_code == 99


def test_bitmask_reasons() -> None:
    reasons = present("alarm_reason", decode_value("AR", b"5"))
    assert reasons.shape is Shape.BITMASK
    assert reasons.items == ("low voltage", "low SOC")
    assert reasons.json == ["low voltage", "low SOC"]
    assert reasons.text == "low voltage, low SOC"
    quiet = present("alarm_reason", decode_value("AR", b"0"))
    assert (quiet.items, quiet.json, quiet.text) == ((), [], "none")
    undefined = present("off_reason", decode_value("OR", b"0x80000000"))
    assert undefined.items == ("bit 31",)


def test_text_and_unknown_labels() -> None:
    serial = present("serial_number", decode_value("SER#", b"HQ1234\xa5"))
    assert (serial.shape, serial.text, serial.json, serial.unit) == (
        Shape.TEXT,
        "HQ1234\\xa5",
        "HQ1234\\xa5",
        "",
    )
    unknown = present("XYZ", "abc")
    assert (unknown.name, unknown.shape, unknown.text) == ("XYZ", Shape.TEXT, "abc")
    assert unknown.unit == ""
    assert present("firmware", decode_value("FW", b"0308")).text == "3.08"
    assert present("product_id", decode_value("PID", b"0xA053")).text == "0xA053"


def test_a_value_of_an_unexpected_type_does_not_break() -> None:
    """Shape follows the value: text where a number was expected stays text, not a number."""
    odd = present("soc", "abc")
    assert (odd.shape, odd.number, odd.text) == (Shape.TEXT, None, "abc")
    assert present("", 5.0).text == "5"  # a float not from the catalogue: shortest form
    assert present("", 0.1).text == "0.1"


@pytest.mark.parametrize("label", sorted(CATALOGUE))
def test_every_catalogue_field_presents_its_special_values(label: str) -> None:
    """Every field: UNAVAILABLE and a decoded wire value give consistent forms."""
    found = CATALOGUE[label]
    assert present(label, UNAVAILABLE).json is None
    sample = {
        Kind.NUMBER: b"1234",
        Kind.ON_OFF: b"ON",
        Kind.ENUM: b"0",
        Kind.BITMASK: b"3",
        Kind.HEX_BITMASK: b"0x00000003",
        Kind.PID: b"0xA053",
        Kind.FIRMWARE: b"0308",
        Kind.FIRMWARE_EXT: b"0308FF",
        Kind.TEXT: b"abc",
    }[found.kind]
    shown = present(found.name, decode_value(found, sample))
    assert shown.state is State.VALUE
    assert shown.unit == found.unit
    assert json.loads(json.dumps(shown.json, allow_nan=False)) == shown.json
    assert shown.text  # never empty for a value
    if found.kind is Kind.NUMBER:
        assert shown.number is not None
        assert float(shown.text) == pytest.approx(shown.number)


def _reading(values: dict[str, Value]) -> Reading:
    return Reading(
        device="bmv",
        time=datetime(2026, 12, 6, tzinfo=UTC),
        monotonic=0.0,
        values=MappingProxyType(values),
        pid=0xA381,
        product="BMV-712 Smart",
    )


SPECIALS: dict[str, Value] = {
    "soc": UNAVAILABLE,
    "time_to_go": math.inf,
    "alarm_reason": ("low voltage",),
    "error": "unknown (99)",
    "relay": False,
    "voltage": 12.8,
}


def test_the_outputs_agree() -> None:
    """MQTT's state JSON, decode's JSON and the web API all carry the same JSON value; the
    web API marks the special states instead of carrying them as values."""
    reading = _reading(SPECIALS)
    mqtt = state_payload(reading)
    decoded = reading.as_json()["values"]
    web = reading_json(reading, lambda name: (name, present(name, UNAVAILABLE).unit), str)
    for name, value in SPECIALS.items():
        shown: Presented = present(name, value)
        assert mqtt[name] == shown.json == json_value(value)
        assert decoded[name] == shown.json  # type: ignore[index]
        entry = web["values"][name]
        assert entry["unit"] == shown.unit
        if shown.available:
            assert entry["value"] == shown.json
            assert "special" not in entry
        else:
            assert entry["value"] is None
            assert entry["special"] == shown.state.value


def test_domoticz_is_expressed_through_present() -> None:
    """Domoticz's text device shows present's text; a numeric one gets the documented
    sentinel for infinite (C atof would read a text as 0, "battery empty")."""
    for name, value in SPECIALS.items():
        shown = present(name, value)
        pair = format_value("text", value, name)
        if shown.state is State.UNAVAILABLE:
            assert pair is None
        else:
            assert pair == (0, shown.text)
    assert format_value("custom", math.inf, "time_to_go", infinite=14400) == (0, "14400.000")
    assert format_value("custom", "abc", "soc") is None
