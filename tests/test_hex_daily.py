"""MPPT daily history over HEX (issue 14 step 6): read at connect and after a day change,
kept on the device state, served at ``GET /api/daily?device=NAME``."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from tests.hex_peer import HexPeer
from tests.pty_device import PtyDevice, wait_until
from tests.webfeed import make_config
from vedirect_async.config import DeviceConfig, WatchdogConfig
from vedirect_async.daily import HistoryDay, HistoryTotal
from vedirect_async.hub import Hub
from vedirect_async.parser import encode_block
from vedirect_async.session import DeviceSession
from vedirect_async.web import make_app


def day(n: int) -> HistoryDay:
    return HistoryDay(
        0, 1.25 + n, None, 14.4, 12.1, 0, (0, 0, 0, 0), 120, 60, 300, 250 + n, 10.5, 48.2, 300 - n
    )


def mppt_block(hsds: int):  # type: ignore[no-untyped-def]
    def make(n: int) -> bytes:
        return encode_block([(b"V", b"%d" % (13000 + n % 100)), (b"HSDS", b"%d" % hsds)])

    return make


async def test_history_read_at_connect_and_after_a_day_change(
    device: PtyDevice, running: list[asyncio.Task[None]]
) -> None:
    total = HistoryTotal(0, 0, (0, 0, 0, 0), 1234.5, 1234.5, 98.7, 14.8, 3)
    registers = {0x104F: total.encode(), **{0x1050 + n: day(n).encode() for n in range(3)}}
    peer = HexPeer(device, registers)  # an MPPT (PID 0xA053) with three days of history
    peer.start()
    try:
        hub = Hub()
        sub = hub.subscribe("test")
        session = DeviceSession(
            DeviceConfig(name="mppt", port=str(device.link), registers=[]), hub, WatchdogConfig()
        )
        running.append(asyncio.get_running_loop().create_task(session.run()))
        await wait_until(lambda: session.opened_at is not None, session.changed)
        device.stream(mppt_block(300))
        await wait_until(lambda: len(session.state.daily) == 3, sub.get)
        first = session.state.daily[0]
        assert first.days_ago == 0
        assert first.yield_kwh == 1.25
        assert first.max_pv_power_w == 250
        assert session.poller.history_total == total
        # The day 3 Get was refused (unknown id): the device has no more days, none was asked.
        assert len(peer.commands(b":7")) == 1 + 4 + 2  # serial/model, total, days 0-3
        asked = len(peer.commands(b":74F10"))
        assert asked == 1
        device.stream(mppt_block(301))  # a new day: HSDS moves on
        await wait_until(lambda: len(peer.commands(b":74F10")) == 2, peer.changed)
    finally:
        peer.stop()


async def test_api_daily_serves_the_history_of_a_simulated_mppt(tmp_path: Path) -> None:
    hub = Hub()
    session = DeviceSession(
        DeviceConfig(name="solar", port="simulator:mppt"), hub, WatchdogConfig()
    )
    task = asyncio.get_running_loop().create_task(session.run())
    try:
        deadline = time.monotonic() + 20
        sub = hub.subscribe("test")
        while not session.state.daily:  # ~33 Gets answered by the simulator at connect
            assert time.monotonic() < deadline
            await asyncio.wait_for(sub.get(), 5)  # readings: one a second
        app = make_app(make_config(tmp_path), hub)
        async with TestClient(TestServer(app)) as client:
            days = await (await client.get("/api/daily?device=solar")).json()
            assert (await client.get("/api/daily?device=bmv")).status == 200
            assert await (await client.get("/api/daily?device=bmv")).json() == []
            bad = await client.get("/api/daily?device=nope")
            assert bad.status == 400
            assert "unknown device" in (await bad.json())["error"]
            assert (await client.get("/api/daily")).status == 400
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert 1 <= len(days) <= 31
    today = days[0]
    assert today["days_ago"] == 0
    assert len(today["date"]) == 10
    for key in ("yield_kwh", "max_pv_power_w", "max_pv_voltage", "battery_voltage_min"):
        assert key in today
    assert isinstance(today["errors"], list)


pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
