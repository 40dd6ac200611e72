"""``decode --hex``: HEX records in stream order among the readings, with decoded values."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.parser_vectors import T9, T9_HEX
from vedirect_async.cli import main
from vedirect_async.decode import hex_json
from vedirect_async.hexframe import Command, Flags, RegisterMessage
from vedirect_async.parser import HexRecord, Parser

SMARTSOLAR = "KinDR007-VictronMPPT-ESPHOME__fake-smartsolar-mppt-150-70-rev3.derived.bin"


def test_jsonl_shows_the_async_records_of_the_smartsolar(
    captures_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The 150/70 capture: 14 HEX records with names, values and units, around 2 readings."""
    assert main(["decode", "--hex", str(captures_dir / SMARTSOLAR), "--device", "roof"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    records = [line for line in lines if "hex" in line]
    readings = [line for line in lines if "values" in line]
    assert (len(records), len(readings)) == (14, 2)
    assert all(r["device"] == "roof" and r["command"] == "async" for r in records)
    assert records[0] == {
        "device": "roof",
        "hex": ":A2001002470030093",
        "command": "async",
        "register": "0x0120",
        "name": "uptime",
        "flags": 0,
        "value": 225316,
        "unit": "s",
    }
    by_name = {r["name"]: r for r in records[:6]}
    assert (by_name["panel_voltage"]["value"], by_name["panel_voltage"]["unit"]) == (103.81, "V")
    assert (by_name["charger_temperature"]["value"], by_name["charger_temperature"]["unit"]) == (
        27.51,
        "°C",
    )
    assert by_name["0xEDB4"]["value"] == "0DA10000"  # undocumented: raw bytes
    assert lines.index(records[0]) < lines.index(readings[0])  # stream order


def test_table_has_a_hex_line_per_record(
    captures_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``-f table --hex``: one ``HEX`` line per record; without --hex none."""
    assert main(["decode", "-f", "table", "--hex", str(captures_dir / SMARTSOLAR)]) == 0
    out = capsys.readouterr().out
    assert "HEX :ABBED008D28EE  async  0xEDBB panel_voltage  103.81 V\n" in out
    assert out.count("HEX :") == 14
    assert main(["decode", "-f", "table", str(captures_dir / SMARTSOLAR)]) == 0
    assert "HEX" not in capsys.readouterr().out


def test_history_day_and_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A history day shows as its fields; a reply with a flag shows the flag and no value."""
    unknown = RegisterMessage(Command.GET, 0xEDDB, Flags.UNKNOWN_ID).encode()
    path = tmp_path / "t9.bin"
    path.write_bytes(T9_HEX + T9 + unknown)
    assert main(["decode", "--hex", str(path)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    day, reading, flagged = lines
    assert day["name"] == "history_day_0"
    assert day["value"]["max_pv_power_w"] == 11
    assert day["value"]["day_sequence"] == reading["values"]["day_sequence"] == 274
    assert (flagged["command"], flagged["flags"], flagged["value"]) == ("get", 1, None)


def test_csv_with_hex_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """HEX records have no CSV row: one line, exit 2."""
    path = tmp_path / "x.bin"
    path.write_bytes(T9)
    assert main(["decode", "-f", "csv", "--hex", str(path)]) == 2
    assert "--hex" in capsys.readouterr().err


def test_hex_json_of_other_records() -> None:
    """Ping answers and error frames name their kind; a value of the wrong size its error."""
    records = Parser().feed(b":51641F9\n:4AAAAFD\n:78DED00E8EC\n")
    assert all(isinstance(r, HexRecord) for r in records)
    ping, error, short = (hex_json(r) for r in records if isinstance(r, HexRecord))
    assert ping == {"hex": ":51641F9", "command": "PingResponse"}
    assert error["command"] == "ErrorResponse"
    assert short["name"] == "voltage"
    assert "1 bytes" in str(short["error"])
