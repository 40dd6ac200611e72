"""Domoticz output: what reaches Domoticz shows on /health (issue 13), TTG, auth messages."""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
import pytest

from tests.fake_domoticz import FakeDomoticz, Fault
from tests.test_domoticz import V, _output, _reading, _running, _until
from vedirect_async import __version__
from vedirect_async.config import DomoticzDevice
from vedirect_async.errors import DeliveryError, PermanentDeliveryError, TransientDeliveryError
from vedirect_async.hub import Hub, OutputHealth
from vedirect_async.outputs.domoticz import auth_hint, format_value
from vedirect_async.outputs.domoticz.client import Client, DroppedError, RejectedPostError
from vedirect_async.outputs.domoticz.mapping import Post

AMPS = DomoticzDevice(idx=2, field="I", kind="current")


def _wrong_idx(fake: FakeDomoticz) -> dict[str, Any]:
    return {}  # no device 1 or 2 exists: Domoticz answers {"status" : "ERR"} to each


def _viewer(fake: FakeDomoticz) -> dict[str, Any]:
    fake.trusted = False
    fake.allow_plain_basic = True
    fake.users["guest"] = ("g", 0)
    _devices(fake)
    return {"username": "guest", "password": "g"}


def _no_script(fake: FakeDomoticz) -> dict[str, Any]:
    fake.scripts.clear()
    _devices(fake)
    return {"mode": "udevices", "devices": []}


def _devices(fake: FakeDomoticz) -> None:
    fake.add_device(1, "V")
    fake.add_device(2, "I", subtype="Current")


@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        (_wrong_idx, "no device with idx"),
        (_viewer, "403 Forbidden for bmv"),
        (_no_script, "lua_parsers/ap_bmv.lua is missing"),
    ],
    ids=["every-idx-wrong", "viewer-403", "missing-lua-script"],
)
async def test_nothing_reaching_domoticz_is_a_failure(setup: Any, reason: str) -> None:
    """Every post rejected for a whole round: failed (so /health 503), failures counted."""
    async with FakeDomoticz() as fake:
        extra = setup(fake)
        hub = Hub()
        output = _output(fake, V, AMPS, **{"heartbeat": 0.0, **extra})
        async with _running(output, hub) as state:
            hub.publish(_reading(voltage=12.5, current=-1.0, raw=(("V", "12500"),)))
            await _until(lambda: state.failures >= 4)
        assert state.health is OutputHealth.FAILED
        assert reason in state.reason
        assert "accepted none" in state.reason
        assert state.successes == 0
        assert fake.updates == []


async def test_probe_warns_about_a_viewer_user(caplog: pytest.LogCaptureFixture) -> None:
    """The start-up probe says at once that a Viewer user cannot update anything."""
    async with FakeDomoticz() as fake:
        extra = _viewer(fake)
        hub = Hub()
        output = _output(fake, V, probe=True, **extra)
        async with _running(output, hub):
            await fake.wait_requests(1, command="getauth")
            await _until(lambda: "is a Viewer" in caplog.text)
    assert "user 'guest' is a Viewer" in caplog.text


async def test_some_posts_rejected_degrades_and_counts() -> None:
    """One idx wrong, one right: degraded (not failed), each rejected post counted."""
    async with FakeDomoticz() as fake:
        fake.add_device(1, "V")
        hub = Hub()
        output = _output(fake, V, AMPS, heartbeat=0.0)
        async with _running(output, hub) as state:
            hub.publish(_reading(voltage=12.5, current=-1.0))
            await _until(lambda: state.failures >= 2 and state.successes >= 2)
        assert state.health is OutputHealth.DEGRADED
        assert "idx 2" in state.reason


@pytest.mark.parametrize(
    ("rule", "all_rejected", "some_rejected"),
    [
        ("all", OutputHealth.FAILED, OutputHealth.DEGRADED),
        ("any", OutputHealth.FAILED, OutputHealth.FAILED),
        ("never", OutputHealth.DEGRADED, OutputHealth.DEGRADED),
    ],
)
async def test_fail_when_rejected_is_configurable(
    rule: str, all_rejected: OutputHealth, some_rejected: OutputHealth
) -> None:
    """[domoticz] fail_when_rejected chooses when rejections make the output failed."""
    for rows, expected in (((AMPS,), all_rejected), ((V, AMPS), some_rejected)):
        async with FakeDomoticz() as fake:
            fake.add_device(1, "V")
            hub = Hub()
            output = _output(fake, *rows, heartbeat=0.0, fail_when_rejected=rule)
            async with _running(output, hub) as state:
                hub.publish(_reading(voltage=12.5, current=-1.0))
                await _until(lambda: state.failures >= 2)
                await fake.wait_requests(len(rows) * 2)
            assert state.health is expected, (rows, state.reason)


# -- time to go while not discharging ----------------------------------------------------------


async def test_infinite_time_to_go_is_posted_readably(caplog: pytest.LogCaptureFixture) -> None:
    """TTG infinite: the sentinel on a Custom sensor, 'infinite' on a Text one; no warning."""
    caplog.set_level(logging.INFO, "vedirect_async.outputs.domoticz")
    rows = (
        DomoticzDevice(idx=1, field="TTG", kind="custom"),
        DomoticzDevice(idx=2, field="TTG", kind="text"),
    )
    async with FakeDomoticz() as fake:
        fake.add_device(1, "TTG", subtype="Custom Sensor", sensor_unit="min")
        fake.add_device(2, "TTG text", subtype="Text")
        hub = Hub()
        output = _output(fake, *rows, interval=10.0)
        async with _running(output, hub) as state:
            hub.publish(_reading(time_to_go=float("inf")))
            await fake.wait_for(lambda: len(fake.updates) == 2)
            await _until(lambda: state.successes == 1)
        assert {u.idx: u.svalue for u in fake.updates} == {1: "99999.000", 2: "infinite"}
        assert state.health is OutputHealth.OK
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_infinite_value_is_configurable() -> None:
    """The sentinel comes from [domoticz] infinite_value; a finite TTG is posted as is."""
    assert format_value("custom", float("inf"), "time_to_go", infinite=14400) == (0, "14400.000")
    assert format_value("custom", 435.0, "time_to_go", infinite=14400) == (0, "435.000")
    assert format_value("text", float("inf"), "time_to_go") == (0, "infinite")


# -- authentication messages and the User-Agent -------------------------------------------------


def test_wrong_password_message_lists_both_causes() -> None:
    """Plain HTTP + a user: a 401 is one of two causes, and the message says both."""
    text = auth_hint("admin", https=False)
    assert "one of" in text
    assert "wrong user or password" in text
    assert "Allow Basic-Auth authentication over plain HTTP" in text
    assert text.index("wrong user or password") < text.index("Allow Basic-Auth")


async def test_user_agent_and_basic_auth_reach_domoticz() -> None:
    """Every request says who sends it (vedirect-async/<version>); Basic auth is pre-emptive."""
    async with FakeDomoticz(trusted=False, allow_plain_basic=True) as fake:
        fake.add_device(1, "V")
        hub = Hub()
        output = _output(fake, username="admin", password="domoticz", probe=True)
        async with _running(output, hub):
            hub.publish(_reading(voltage=12.0))
            await fake.wait_for(lambda: len(fake.updates) == 1)
    assert fake.received
    for request in fake.received:
        assert request.headers["User-Agent"] == f"vedirect-async/{__version__}"
        assert request.user == "admin"


# -- typed delivery errors (issue 12: no classification by message text) ------------------------

ERROR_CASES = [
    ("refused", None, TransientDeliveryError),
    ("hang", Fault.HANG, TransientDeliveryError),
    ("close", Fault.CLOSE, DroppedError),
    ("500", Fault.HTTP500, TransientDeliveryError),
    ("401", "untrusted", PermanentDeliveryError),
    ("403", Fault.FORBIDDEN, PermanentDeliveryError),
    ("404", "/old", PermanentDeliveryError),
    ("non-json", Fault.NON_JSON, PermanentDeliveryError),
    ("err-idx", "err", RejectedPostError),
]


@pytest.mark.parametrize(
    ("case", "setup", "expected"), ERROR_CASES, ids=[c[0] for c in ERROR_CASES]
)
async def test_the_client_raises_typed_errors(case: str, setup: object, expected: type) -> None:
    """Each failure is a typed DeliveryError at the client's boundary: transient ones are
    retried with backoff, permanent ones wait the cap, a rejected post ends only itself."""
    async with FakeDomoticz() as fake:
        fake.add_device(1, "V")
        suffix = ""
        if isinstance(setup, Fault):
            fake.fault = setup
        elif setup == "untrusted":
            fake.trusted = False
        elif setup == "/old":
            suffix = "/old"
        elif setup == "err":
            fake.err_idx.add(1)
        url = fake.url + suffix
        if case == "refused":
            await fake.stop()
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(force_close=True),
            timeout=aiohttp.ClientTimeout(total=0.3),
        ) as session:
            client = Client(session, url + "/json.htm", url, "", False, 0.3, "x.lua")
            post = Post("idx 1", "type=command&param=udevice&idx=1&nvalue=0&svalue=1", "", 1, "V")
            with pytest.raises(DeliveryError) as raised:
                await client.send(post)
            if case == "hang":
                await fake.stop()
    assert type(raised.value) is expected, raised.value
    assert raised.value.reason  # one line for the log and /health
