"""``hex set`` with ``--config`` (issue 15): the service's allowlist and checks, over a pty."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.hex_peer import HexPeer
from tests.pty_device import PtyDevice
from vedirect_async.cli import build_parser
from vedirect_async.cli.hex import run_hex

REGISTERS = {
    0xEDF0: b"\x96\x00",  # battery maximum current 15.0 A
    0xEDF7: b"\xa0\x05",  # absorption 14.40 V
    0x0200: b"\x01",  # device mode: on
    0x010B: b"SmartSolar MPPT 100|20\x00",
}


@pytest.fixture
async def peer(device: PtyDevice) -> AsyncIterator[HexPeer]:
    peer = HexPeer(device, REGISTERS)  # an MPPT (product id 0xA053)
    peer.start()
    yield peer
    peer.stop()


def _config(tmp_path: Path, port: str) -> str:
    path = tmp_path / "config.toml"
    path.write_text(
        f'[[device]]\nname = "solar"\nport = "{port}"\n'
        'writable = ["battery_max_current", "device_mode"]\n'
    )
    return str(path)


async def hex_set(config: str, port: str, *argv: str) -> tuple[int, str]:
    out = io.StringIO()
    words = ["--config", config, "hex", "set", port, *argv, "--timeout", "0.2"]
    return await run_hex(build_parser().parse_args(words), out), out.getvalue()


async def test_set_within_the_allowlist_and_limits(
    device: PtyDevice, peer: HexPeer, tmp_path: Path
) -> None:
    config = _config(tmp_path, str(device.link))
    code, text = await hex_set(config, str(device.link), "battery_max_current", "12.5")
    assert code == 0, text
    assert peer.registers[0xEDF0] == (125).to_bytes(2, "little")
    code, text = await hex_set(config, str(device.link), "device_mode", "off")
    assert code == 0, text
    assert peer.registers[0x0200] == b"\x04"  # an MPPT's off


async def test_set_refused_as_the_service_would(
    device: PtyDevice, peer: HexPeer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path, str(device.link))
    code, _ = await hex_set(config, str(device.link), "absorption_voltage", "14.2")
    assert code == 2
    assert "not in the writable list of device 'solar'" in capsys.readouterr().err
    assert peer.received == []  # refused before the port was opened
    code, _ = await hex_set(config, str(device.link), "battery_max_current", "25")
    assert code == 2
    assert "out of range 0..20" in capsys.readouterr().err  # the 100|20's rating
    code, _ = await hex_set(config, str(device.link), "device_mode", "eco")
    assert code == 2
    assert peer.commands(b":8") == []  # no Set ever sent
    other = _config(tmp_path, "/dev/ttyUSB9")
    code, _ = await hex_set(other, str(device.link), "battery_max_current", "10")
    assert code == 2
    assert "is not the port of a [[device]]" in capsys.readouterr().err
    assert peer.registers[0xEDF0] == b"\x96\x00"
