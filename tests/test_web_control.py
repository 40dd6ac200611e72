"""``POST /api/devices/<device>/<name>`` (issue 15) with a real aiohttp client against the real
server on 127.0.0.1, writing to the built-in simulated MPPT (which answers HEX like a real one).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from tests.webfeed import free_port
from vedirect_async import cli
from vedirect_async.control import Controller
from vedirect_async.hub import Hub
from vedirect_async.service import Service
from vedirect_async.session import DeviceSession
from vedirect_async.settings import Config, load_config
from vedirect_async.web import WebServer

TOKEN = "s3cret-t0ken-for-writes"


@dataclass
class Api:
    port: int
    control: Controller
    session: DeviceSession

    async def post(
        self, path: str, body: object, token: str | None = TOKEN, **headers: str
    ) -> tuple[int, dict[str, object], dict[str, str]]:
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        kwargs: dict[str, object] = {"json": body} if not isinstance(body, str) else {"data": body}
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as client,
            client.post(f"http://127.0.0.1:{self.port}{path}", headers=headers, **kwargs) as resp,  # type: ignore[arg-type]
        ):
            return resp.status, await resp.json(), dict(resp.headers)

    async def get_text(self, path: str) -> str:
        async with (
            aiohttp.ClientSession() as client,
            client.get(f"http://127.0.0.1:{self.port}{path}") as resp,
        ):
            return await resp.text()


def _write(tmp_path: Path, port: int, token: str, writable: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        f'[[device]]\nname = "mppt"\nport = "simulator:mppt"\nregisters = []\n'
        f"writable = {writable}\n[csv]\nenabled = false\n"
        f'[http]\nhost = "127.0.0.1"\nport = {port}\ntoken = "{token}"\n'
    )
    return path


def _config(tmp_path: Path, port: int, token: str, writable: str) -> Config:
    return load_config(_write(tmp_path, port, token, writable), environ={})


@contextlib.asynccontextmanager
async def serving(
    tmp_path: Path, token: str = TOKEN, writable: str = '["battery_max_current", "device_mode"]'
) -> AsyncIterator[Api]:
    port = free_port()
    config = _config(tmp_path, port, token, writable)
    hub = Hub()
    session = DeviceSession(config.device[0], hub, config.watchdog)
    control = Controller([session], config.device, interval=0.0, nvm_interval=30.0)
    server = WebServer(config, hub, control=control)
    sub = hub.subscribe("test")
    tasks = [asyncio.create_task(session.run()), asyncio.create_task(server.run())]
    try:
        await asyncio.wait_for(server.serving.wait(), 10)
        async with asyncio.timeout(10):  # identified and the writable registers read once
            while session.poller.polls < 1:
                await sub.get()
        yield Api(port, control, session)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_write_needs_the_token_and_returns_the_read_back(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with serving(tmp_path) as api:
        path = "/api/devices/mppt/battery_max_current"
        status, body, headers = await api.post(path, {"value": 12.5}, token=None)
        assert status == 401
        assert headers["WWW-Authenticate"].startswith("Bearer")
        assert (await api.post(path, {"value": 12.5}, token="wrong"))[0] == 401
        assert (await api.post(path, {"value": 12.5}, token=TOKEN + "x"))[0] == 401
        assert (await api.post(path, {"value": 12.5}, token="", Cookie=f"token={TOKEN}"))[0] == 401
        assert api.session.poller.values["battery_max_current"][0] == 20.0  # nothing written
        status, body, _ = await api.post(path, {"value": 12.5})
        assert status == 200, body
        assert body == {
            "device": "mppt",
            "name": "battery_max_current",
            "value": 12.5,
            "shown": "12.5",
            "unit": "A",
            "unchanged": False,
        }
        status, body, _ = await api.post("/api/devices/mppt/device_mode", "off")  # plain text
        assert (status, body["shown"]) == (200, "off")
        # the read-back is in the device's next reading, and so in the readings API
        sub = api.session.hub.subscribe("wait")
        async with asyncio.timeout(5):
            while (await sub.get()).values.get("battery_max_current") != 12.5:
                pass
        assert '"battery_max_current":{"value":12.5' in await api.get_text("/api/readings")
        metrics = await api.get_text("/metrics")
        assert 'vedirect_writes_total{device="mppt",result="confirmed"} 2.0' in metrics
        assert TOKEN not in metrics
    assert TOKEN not in caplog.text
    assert "asked by http 127.0.0.1" in caplog.text


async def test_forbidden_bad_and_rate_limited(tmp_path: Path) -> None:
    async with serving(tmp_path) as api:
        status, body, _ = await api.post("/api/devices/mppt/absorption_voltage", {"value": 14.2})
        assert (status, body["reason"]) == (403, "not_allowed")
        status, body, _ = await api.post("/api/devices/nobody/device_mode", {"value": "on"})
        assert status == 404
        for bad in ({"value": 35}, {"value": "lots"}, {"value": None}, {"v": 1}, [1], "", "1e999"):
            status, body, _ = await api.post("/api/devices/mppt/battery_max_current", bad)
            assert status == 400, (bad, body)
        path = "/api/devices/mppt/battery_max_current"
        assert (await api.post(path, {"value": 9}))[0] == 200
        status, body, headers = await api.post(path, {"value": 8})  # NVM: 30 s in this test
        assert (status, body["reason"]) == (429, "rate_limited")
        assert 1 <= int(headers["Retry-After"]) <= 30
        assert api.session.poller.values["battery_max_current"][0] == 9
        assert (await api.post(path, {"value": 9}))[0] == 429  # the slot holds whatever the value


async def test_read_only_without_a_token(tmp_path: Path) -> None:
    async with serving(tmp_path, token="") as api:
        status, body, _ = await api.post("/api/devices/mppt/device_mode", {"value": "off"})
        assert (status, body["reason"]) == (403, "read_only")
        assert api.control.counts == {}


async def test_token_masked_in_check_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write(tmp_path, 8080, TOKEN, '["0xEDF0"]')
    assert cli.main(["check-config", str(tmp_path / "config.toml")]) == 0
    out = capsys.readouterr().out
    assert TOKEN not in out
    assert "token" in out
    assert 'writable = ["0xEDF0"]' in out
    path = _write(tmp_path, 8080, "", "[]")
    assert load_config(path, environ={"VEDIRECT_HTTP__TOKEN": TOKEN}).http.token == TOKEN


def test_writable_checked_at_start_up(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write(tmp_path, 8080, "", '["battery_max_current", "charger_temperature"]')
    assert cli.main(["check-config", str(tmp_path / "config.toml")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "config.toml:5" in err
    assert "device[0].writable[1]" in err
    assert "a writable register" in err


async def test_the_service_wires_writes_to_the_api(tmp_path: Path) -> None:
    """The whole service: its web server and its sessions share one write policy."""
    port = free_port()
    service = Service(_config(tmp_path, port, TOKEN, '["device_mode"]'))
    sub = service.hub.subscribe("test")
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    try:
        session = service.readers[0]
        async with asyncio.timeout(10):
            while session.poller.polls < 1 or service.web is None:
                await sub.get()
            await service.web.serving.wait()
        api = Api(port, service.control, session)
        status, body, _ = await api.post("/api/devices/mppt/device_mode", {"value": "off"})
        assert (status, body["shown"]) == (200, "off")
        status, _, _ = await api.post("/api/devices/mppt/battery_max_current", {"value": 5})
        assert status == 403  # not in this device's writable list
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def test_controls_listing_needs_the_token(tmp_path: Path) -> None:
    async with serving(tmp_path) as api:
        async with aiohttp.ClientSession() as client:
            url = f"http://127.0.0.1:{api.port}/api/controls"
            async with client.get(url) as resp:  # without credentials: only whether
                assert await resp.json() == {"writes": True}
            async with client.get(url, headers={"Authorization": "Bearer nope"}) as resp:
                assert resp.status == 401
            headers = {"Authorization": f"Bearer {TOKEN}"}
            async with client.get(url, headers=headers) as resp:
                assert resp.status == 200
                body = await resp.json()
            async with client.get(f"http://127.0.0.1:{api.port}/static/control.js") as resp:
                assert resp.status == 200
        mode, current = body["devices"]["mppt"]  # sorted by register id: 0x0200, 0xEDF0
        assert mode == {
            "name": "device_mode",
            "kind": "switch",
            "unit": "",
            "min": None,
            "max": None,
            "step": None,
            "options": ["on", "off"],
            "value": "on",
        }
        assert (current["kind"], current["max"], current["step"], current["value"]) == (
            "number",
            20,
            0.1,
            "20",
        )
    async with serving(tmp_path, token="") as api:
        assert await api.get_text("/api/controls") == '{"writes":false}'
        assert (await api.post("/api/devices/mppt/device_mode", "off"))[0] == 403
