"""``python -m vedirect_async hex ping|get|set``: a person asking a device over a real pty."""

from __future__ import annotations

import argparse
import asyncio
import io
import logging
from pathlib import Path

import pytest

from tests.hex_peer import HexPeer
from tests.pty_device import PtyDevice, wait_until
from vedirect_async.cli import build_parser, main
from vedirect_async.cli.hex import run_hex
from vedirect_async.config import DeviceConfig, WatchdogConfig
from vedirect_async.daily import HistoryDay
from vedirect_async.hub import Hub
from vedirect_async.session import DeviceSession

REGISTERS = {
    0xEDF0: b"\x96\x00",  # battery maximum current 15.0 A
    0xEDDB: b"\xc3\x0a",  # charger temperature 27.55 C
    0x0201: b"\x03",  # charger state: bulk
}


def args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["hex", *argv])


async def ask(device: PtyDevice, *argv: str, peer: HexPeer | None = None) -> tuple[int, str]:
    own = peer is None
    peer = peer or HexPeer(device, REGISTERS)
    if own:
        peer.start()
    out = io.StringIO()
    try:
        code = await run_hex(args(*argv[:1], str(device.link), *argv[1:], "--timeout", "0.2"), out)
    finally:
        if own:
            peer.stop()
    return code, out.getvalue()


async def test_get_prints_the_value_with_its_unit(device: PtyDevice) -> None:
    assert await ask(device, "get", "0xEDDB") == (0, "0xEDDB (charger_temperature): 27.55 °C\n")
    assert await ask(device, "get", "battery_max_current") == (
        0,
        "0xEDF0 (battery_max_current): 15.0 A\n",
    )
    history = {
        0x1050: HistoryDay(0, 0.23, None, 12.5, 12.4, 0, (0,) * 4, 1, 2, 3, 160, 1.5, 37.1, 99)
    }
    peer = HexPeer(device, {**REGISTERS, **{k: v.encode() for k, v in history.items()}})
    peer.start()
    try:
        code, text = await ask(device, "get", "history_day_0", peer=peer)
    finally:
        peer.stop()
    assert code == 0
    assert text.startswith("0x1050 (history_day_0): yield_kwh=0.23, battery_voltage_max=12.5,")
    assert "consumed_kwh" not in text  # not available
    code, text = await ask(device, "get", "0x1234")
    assert code == 1
    assert "refused by the device (unknown register)" in text


async def test_ping_prints_the_firmware(device: PtyDevice) -> None:
    assert await ask(device, "ping") == (0, "firmware 1.16\n")


async def test_set_is_range_checked_confirmed_and_logged(
    device: PtyDevice, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="vedirect_async")
    peer = HexPeer(device, REGISTERS)
    peer.start()
    try:
        code, text = await ask(device, "set", "0xEDF0", "10", peer=peer)
        assert code == 0, text
        confirmed = "(confirmed by the echo and a read-back)"
        first, note = text.splitlines()
        assert first == f"set 0xEDF0 (battery_max_current): 10.0 A {confirmed}"
        assert "flash" in note  # 0xEDF0 lives in non-volatile memory
        assert peer.registers[0xEDF0] == b"\x64\x00"
        # product id and model first (the device's limits, issue 15), the Set, the read-back
        assert [c[:2] for c in peer.received] == [b":4", b":7", b":8", b":7"]
        assert any("hex set 0xEDF0" in r.getMessage() for r in caplog.records)
        assert any("asked by cli" in r.getMessage() for r in caplog.records)  # who asked
        sent = len(peer.received)
        code, _ = await ask(device, "set", "0xEDF0", "99999", peer=peer)  # out of range
        assert code == 2
        code, _ = await ask(device, "set", "0xEDDB", "20", peer=peer)  # not writable
        assert code == 2
        code, _ = await ask(device, "set", "0xEDF0", "ten", peer=peer)
        assert code == 2
        assert len(peer.received) == sent  # none of these was sent
    finally:
        peer.stop()


async def test_set_on_an_echoing_line_is_not_confirmed(device: PtyDevice) -> None:
    """The echo of a Set looks like its answer; the Get read-back shows nothing answered."""
    peer = HexPeer(device, REGISTERS, mode="echo")
    peer.start()
    try:
        code, text = await ask(device, "set", "0xEDF0", "10", peer=peer)
    finally:
        peer.stop()
    assert code == 1
    assert "not confirmed" in text or "read-back differs" in text


async def test_silent_device_says_no_answer(device: PtyDevice) -> None:
    peer = HexPeer(device, REGISTERS, mode="mute")
    peer.start()
    try:
        assert await ask(device, "get", "0xEDDB", peer=peer) == (
            1,
            "no answer after 3 attempt(s)\n",
        )
    finally:
        peer.stop()


async def test_port_held_by_the_service_is_refused_politely(
    device: PtyDevice, running: list[asyncio.Task[None]], capsys: pytest.CaptureFixture[str]
) -> None:
    session = DeviceSession(
        DeviceConfig(name="mppt", port=str(device.link), registers=[]), Hub(), WatchdogConfig()
    )
    running.append(asyncio.get_running_loop().create_task(session.run()))
    await wait_until(lambda: session.opened_at is not None, session.changed)
    code, out = await ask(device, "get", "0xEDDB")
    assert code == 2
    assert out == ""
    assert "is busy" in capsys.readouterr().err


def test_bad_register_is_refused_before_opening(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["hex", "get", "/dev/does-not-exist", "no_such_register"]) == 2
    assert "unknown register" in capsys.readouterr().err
    assert main(["hex", "get", "/dev/does-not-exist", "0xEDDB"]) == 2
    assert "not found" in capsys.readouterr().err


def test_help_lists_the_actions(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        main(["hex", "--help"])
    text = capsys.readouterr().out
    assert all(action in text for action in ("ping", "get", "set"))
