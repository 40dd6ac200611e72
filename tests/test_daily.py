"""Device history over HEX: MPPT day and total records as the service shows them, BMV history."""

from __future__ import annotations

from datetime import date

import pytest

from tests.parser_vectors import T9, T9_HEX
from vedirect_async import fields
from vedirect_async.daily import (
    BMV_HISTORY_REGISTERS,
    DAYS,
    TOTAL,
    BmvHistory,
    HistoryDay,
    HistoryTotal,
    daily_record,
    days_ago,
    error_names,
    history_register,
)
from vedirect_async.errors import HexError
from vedirect_async.hexframe import RegisterMessage
from vedirect_async.parser import Parser, TextBlock
from vedirect_async.registers import REGISTERS, decode_value, encode_value

# The history total of the SmartSolar 1.39 capture (karioja dump), as in test_hexframe.
TOTAL_WIRE = b":A4F1000010000000000000000000000000001000D0500F904FFFFFFFFFFFFFFFFFFFFFFFFFFE8\n"


def test_t9_day_record_matches_its_text_block() -> None:
    """T9's async day 0 gives the same max power and day number as the text block after it."""
    message = RegisterMessage.parse(T9_HEX)
    record = daily_record(message.register, message.value)
    text = {
        k.decode(): v.decode()
        for e in Parser().feed(T9)
        if isinstance(e, TextBlock)
        for k, v in e.fields
    }
    assert record.days_ago == 0
    assert record.max_pv_power_w == int(text["H21"]) == 11
    assert record.day_sequence == int(text["HSDS"]) == 274
    assert (record.battery_voltage_min, record.battery_voltage_max) == (12.22, 12.61)
    assert record.max_pv_voltage == 35.28
    assert record.battery_current_max == 0.9
    assert (record.time_bulk_min, record.time_absorption_min, record.time_float_min) == (194, 0, 0)
    assert record.yield_kwh == 0
    assert record.errors == ()
    assert record.calendar_day(date(2026, 12, 6)) == date(2026, 12, 6)


def test_as_json_has_a_date_per_day() -> None:
    """as_json: ISO date from days_ago and today; error names as a list; None stays null."""
    day = HistoryDay(1, 2.5, None, 14.4, 12.1, 0, (2, 17, 0, 0), 60, 120, 300, 250, 12.5, 40.12, 9)
    record = daily_record(history_register(3), day.encode())
    data = record.as_json(date(2026, 3, 2))
    assert data["date"] == "2026-02-27"
    assert data["days_ago"] == 3
    assert data["yield_kwh"] == 2.5
    assert data["consumed_kwh"] is None
    assert data["max_pv_power_w"] == 250
    assert data["errors"] == [fields.ERR[2], fields.ERR[17]]
    assert "date" not in record.as_json()


def test_every_history_register_is_a_day() -> None:
    """0x1050 is today and 0x106E thirty days ago; other registers are not days."""
    assert DAYS == 31
    assert [days_ago(history_register(n)) for n in range(DAYS)] == list(range(DAYS))
    assert history_register(0) == 0x1050
    assert history_register(30) == 0x106E
    assert days_ago(TOTAL) is None
    assert days_ago(0x106F) is None
    with pytest.raises(ValueError, match="days 0"):
        history_register(31)
    with pytest.raises(HexError):
        daily_record(TOTAL, bytes(34))
    with pytest.raises(HexError):
        daily_record(0x1050, bytes(10))


def test_every_day_register_decodes_through_the_table() -> None:
    """Each of the 31 registers decodes to a HistoryDay that daily_record accepts."""
    day = HistoryDay(1, 0.42, 0.0, 14.2, 12.3, 0, (0, 0, 0, 0), 5, 6, 7, 80, 4.5, 38.0, 12)
    for n in range(DAYS):
        register = history_register(n)
        decoded = decode_value(register, encode_value(register, day)).value
        assert decoded == day
        assert isinstance(decoded, HistoryDay)
        assert daily_record(register, decoded).days_ago == n


def test_total_record_of_the_capture() -> None:
    """The captured total (a 100/20 with no panels: its text says VPV 10 mV, V 12.72-12.82 V)."""
    message = RegisterMessage.parse(TOTAL_WIRE)
    assert message.register == TOTAL
    total = decode_value(TOTAL, message.value).value
    assert isinstance(total, HistoryTotal)
    assert total.version == 1
    assert total.user_yield_kwh == total.system_yield_kwh == 0
    assert total.panel_voltage_max == 0.01  # VPV 10 mV all along the capture
    assert total.battery_voltage_max == 12.93
    assert total.days_available == 0
    assert total.encode() == message.value


def test_error_names() -> None:
    """Error codes read as ERR names; 0 (no error) is left out; unknown codes keep the code."""
    assert error_names((0, 0, 0, 0)) == ()
    assert error_names((2, 0, 0, 0)) == (fields.ERR[2],)
    assert error_names((250, 0, 0, 0)) == ("unknown (250)",)


def test_bmv_history_from_registers_and_from_text() -> None:
    """The 18 history registers fill BmvHistory in the units of the text H fields."""
    assert list(BMV_HISTORY_REGISTERS) == list(range(0x0300, 0x0312))
    for register, name in BMV_HISTORY_REGISTERS.items():
        assert REGISTERS[register].name == name
    raw = {0x0300: -1234, 0x0303: 57, 0x0306: 1133, 0x0311: 4321}
    values = {
        REGISTERS[r].name: decode_value(r, v.to_bytes(4, "little", signed=True)).value
        for r, v in raw.items()
    }
    history = BmvHistory.from_values(values)
    assert history.deepest_discharge_ah == -123.4
    assert history.charge_cycles == 57
    assert history.min_voltage == 11.33
    assert history.charged_energy_kwh == 43.21
    assert history.last_discharge_ah is None
    text = {
        "history_deepest_discharge": fields.decode_value("H1", b"-123400"),
        "history_min_voltage": fields.decode_value("H7", b"11330"),
        "history_charge_cycles": fields.decode_value("H4", b"57"),
        "history_charged_energy": fields.decode_value("H18", b"4321"),
    }
    assert BmvHistory.from_values(text) == history
    assert BmvHistory.from_values({"history_min_voltage": fields.UNAVAILABLE}) == BmvHistory()
