"""``hex set`` without ``--config`` (issue 15): the device's own limits and value names, over
``simulate mppt --pty`` (a SmartSolar MPPT 100/20: 20 A rated)."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest

from tests.sim_pty import simulated_pty
from vedirect_async.cli import build_parser
from vedirect_async.cli.hex import run_hex


async def hex_cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    args = build_parser().parse_args(["hex", *argv, "--timeout", "0.5"])
    return await run_hex(args, out), out.getvalue()


async def test_value_beyond_the_rated_current_is_never_sent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    record = tmp_path / "sent"
    async with simulated_pty("mppt", "--speed", "10", "--record", str(record)) as port:
        code, _ = await hex_cli("set", port, "0xEDF0", "999")
        assert code == 2
        assert "out of range 0..20" in capsys.readouterr().err  # the 100/20's rating
        code, _ = await hex_cli("set", port, "battery_max_current", "20.5")
        assert code == 2
        assert "out of range 0..20" in capsys.readouterr().err
        assert b":8" not in record.read_bytes()  # the simulator saw no Set
        code, text = await hex_cli("set", port, "battery_max_current", "12.5")
        assert code == 0, text
        assert b":8" in record.read_bytes()
        assert await hex_cli("get", port, "0xEDF0") == (0, "0xEDF0 (battery_max_current): 12.5 A\n")


async def test_names_are_the_device_familys(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="vedirect_async")
    async with simulated_pty("mppt", "--speed", "10") as port:
        code, text = await hex_cli("set", port, "device_mode", "off")
        assert code == 0, text
        assert "confirmed by the echo and a read-back" in text
        assert await hex_cli("get", port, "device_mode") == (0, "0x0200 (device_mode): 4 (off)\n")
        code, text = await hex_cli("set", port, "device_mode", "on")
        assert code == 0, text
        assert await hex_cli("get", port, "0x0200") == (0, "0x0200 (device_mode): 1 (charger)\n")
        code, text = await hex_cli("set", port, "load_output_control", "on")
        assert code == 0, text
        assert "confirmed by the echo and a read-back" in text
        code, text = await hex_cli("get", port, "load_output_control")
        assert (code, text) == (0, "0xEDAB (load_output_control): 4 (on)\n")
        code, _ = await hex_cli("set", port, "device_mode", "eco")  # an inverter's, not an MPPT's
        assert code == 2
    assert any("asked by cli: confirmed" in r.getMessage() for r in caplog.records)


def test_help_says_who_the_allowlist_is(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["hex", "set", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "without it there is no allowlist" in text
    assert "rated current" in text
