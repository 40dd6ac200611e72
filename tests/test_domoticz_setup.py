"""``domoticz setup`` against the fake Domoticz: idempotent, --force, honest auth messages."""

from __future__ import annotations

import asyncio
import tomllib
from pathlib import Path
from typing import Any

import pytest

from tests.fake_domoticz import FakeDomoticz
from tests.test_domoticz import _args, _setup

Rows = list[dict[str, Any]]


async def _run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fake: FakeDomoticz, **kw: Any
) -> tuple[int, str, Rows]:
    """One `domoticz setup` run: exit code, stdout, the printed [[domoticz.devices]] rows."""
    code = await asyncio.to_thread(_setup, _args(tmp_path, fake.url, **kw))
    out = capsys.readouterr().out
    rows: Rows = tomllib.loads(out)["domoticz"]["devices"] if code == 0 else []
    return code, out, rows


async def test_second_run_reuses_hardware_and_devices(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Run twice: the second run finds everything by name, creates nothing, prints the same idx."""
    async with FakeDomoticz() as fake:
        first, _, rows1 = await _run(tmp_path, capsys, fake)
        hardware, devices = dict(fake.hardware), dict(fake.devices)
        second, out2, rows2 = await _run(tmp_path, capsys, fake)
        creating = [r for r in fake.received[len(devices) + 1 :] if r.command.startswith("add")]
        assert fake.hardware == hardware
        assert fake.devices.keys() == devices.keys()
        assert creating == []
    assert (first, second) == (0, 0)
    assert rows1 == rows2
    assert "reusing Dummy hardware 'vedirect': idx 2" in out2
    assert out2.count("# reusing 'bmv ") == len(rows2)


async def test_missing_devices_are_added_to_the_existing_hardware(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A device deleted in Domoticz since the first run is created again, the rest reused."""
    async with FakeDomoticz() as fake:
        rows = (await _run(tmp_path, capsys, fake))[2]
        del fake.devices[next(r["idx"] for r in rows if r["field"] == "SOC")]
        code, _, again = await _run(tmp_path, capsys, fake)
        assert code == 0
        assert len(fake.hardware) == 2
        new_soc = next(r["idx"] for r in again if r["field"] == "SOC")
        assert new_soc not in {r["idx"] for r in rows}
        assert fake.devices[new_soc].hardware_id == 2
        assert [r["idx"] for r in again if r["field"] != "SOC"] == [
            r["idx"] for r in rows if r["field"] != "SOC"
        ]


async def test_a_device_of_another_type_is_refused_unless_forced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Same name, other type: a clear refusal naming --force; --force makes a fresh set."""
    async with FakeDomoticz() as fake:
        rows = (await _run(tmp_path, capsys, fake))[2]
        volts = next(r["idx"] for r in rows if r["field"] == "V")
        fake.devices[volts].subtype = "Text"
        count = len(fake.devices)
        assert await asyncio.to_thread(_setup, _args(tmp_path, fake.url)) == 1
        err = capsys.readouterr().err
        assert "'bmv battery voltage'" in err
        assert "--force" in err
        assert len(fake.devices) == count
        code, _, forced = await _run(tmp_path, capsys, fake, force=True)
        assert code == 0
        assert len(fake.hardware) == 3
        assert len(fake.devices) == count + len(forced)


async def test_setup_401_with_a_username_does_not_ask_for_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A wrong password: "one of" the two causes, never "give --username" (it was given)."""
    async with FakeDomoticz(trusted=False, allow_plain_basic=True) as fake:
        args = _args(tmp_path, fake.url, username="admin")  # no password in the environment
        assert await asyncio.to_thread(_setup, args) == 1
        assert fake.hardware == {1: "Domoticz Internal"}
    err = capsys.readouterr().err
    assert "give --username" not in err
    assert "one of" in err
    assert "wrong user or password" in err
    assert "Allow Basic-Auth authentication over plain HTTP" in err


async def test_setup_401_without_a_username_asks_for_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No username and not trusted: then it does say to give --username."""
    async with FakeDomoticz(trusted=False) as fake:
        assert await asyncio.to_thread(_setup, _args(tmp_path, fake.url)) == 1
    assert "give --username" in capsys.readouterr().err
