"""The live page in a real headless Chromium: no console errors, current SOC, live chart points,
an MPPT's daily yield bars.

Set VEDIRECT_SCREENSHOT=path to keep the screenshot: ``make screenshot`` writes
build/screenshot.png, ``make screenshot-docs`` the README's docs/screenshot.png. It is taken
with every output healthy and hours of history in every chart (the page a user wants to see).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from tests.chromium import CHROMIUM, open_page
from tests.webfeed import LEGACY_COLUMNS, Feed, make_config, write_csv_history
from vedirect_async.csv_columns import device_path
from vedirect_async.daily import FIRST_DAY, LAST_DAY, DailyRecord, daily_record
from vedirect_async.hub import Hub
from vedirect_async.reading import Reading
from vedirect_async.simulator import SimulatedDevice
from vedirect_async.web import make_app

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason=f"{CHROMIUM} not installed (apt-get install -y chromium; CI installs it)",
)

HISTORY_HOURS = float(os.environ.get("VEDIRECT_SCREENSHOT_HOURS", "2"))
# the CSV output's default columns plus the power fields, so every chart has its history
CSV_COLUMNS = (*LEGACY_COLUMNS, ("Power", "power", 0), ("PPV", "panel_power", 0))
PNG = b"\x89PNG\r\n\x1a\n"


def history_of(sim: SimulatedDevice) -> tuple[DailyRecord, ...]:
    """The simulated MPPT's history days (today first), as its session reads them over HEX."""
    assert sim.model is not None
    days = []
    for register in range(FIRST_DAY, LAST_DAY + 1):
        raw = sim.model.get(register)
        if raw is None:
            break
        days.append(daily_record(register, raw))
    return tuple(days)


@contextlib.asynccontextmanager
async def pipeline(tmp_path: Path) -> AsyncIterator[tuple[str, Hub, list[Feed], asyncio.Event]]:
    """Server on 127.0.0.1 with a CSV-backfilled history and two simulated devices live."""
    config = make_config(
        tmp_path,
        extra='[[device]]\nname = "solar"\nport = "simulator:mppt"\n',
        csv=f"columns = {json.dumps(['Time', *(c[0] + '=' + c[1] for c in CSV_COLUMNS)])}",
    )
    start = datetime.now(UTC) - timedelta(hours=HISTORY_HOURS)
    sims = {
        "bmv": SimulatedDevice("bmv712", seed=3, start=start),
        "solar": SimulatedDevice("mppt", seed=5, start=start),
    }
    for name, sim in sims.items():
        # two devices: the CSV output writes one file per device (vedirect_data_bmv.csv), with
        # the default columns (an MPPT has no AHr or SOC: only its voltage and current)
        csv_path = device_path(config.csv.path, name, list(sims))
        await asyncio.to_thread(
            write_csv_history, csv_path, sim, HISTORY_HOURS, device=name, columns=CSV_COLUMNS
        )
    hub = Hub()
    feeds = [Feed(hub, name, clock=time.monotonic, sim=sim) for name, sim in sims.items()]
    for feed in feeds:
        feed.until_reading()
    solar = hub.device("solar")  # what its session keeps after reading the history over HEX
    solar.daily = history_of(sims["solar"])
    solar.daily_date = date.today()
    hub.output("csv").ok()  # as the CSV output reports after writing a row
    hub.output("mqtt").degraded("broker unreachable; retrying in 8 s")
    running = asyncio.Event()
    running.set()

    async def publish() -> None:
        # the devices' pace, sped up: a reading per device every 0.2 s while `running` is set
        while True:
            await running.wait()
            for feed in feeds:
                feed.step()
            await asyncio.sleep(0.2)

    server = TestServer(make_app(config, hub), host="127.0.0.1")
    await server.start_server()
    task = asyncio.create_task(publish())
    try:
        yield str(server.make_url("/")), hub, feeds, running
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await server.close()


def shown_as(value: object, decimals: int) -> str:
    """``value`` as the page shows it: Intl.NumberFormat rounds the number's shortest decimal
    form half away from zero (12.465 shows 12.47; a tolerance of 0.005 fails on such ties)."""
    assert isinstance(value, float)
    return str(Decimal(repr(value)).quantize(Decimal(1).scaleb(-decimals), ROUND_HALF_UP))


SOC_TEXT = 'document.querySelector(\'[data-device="bmv"] [data-field="soc"]\').textContent'


async def test_page_live_in_chromium(tmp_path: Path) -> None:
    """The page loads without console errors, shows the current SOC and charts live points."""
    async with (
        pipeline(tmp_path) as (url, hub, feeds, running),
        open_page(url, tmp_path / "profile") as page,
    ):
        # history from the CSV is drawn, and live readings arrive over SSE
        await page.wait_for("window.vedirect && window.vedirect.ready", limit=20)
        history_points = await page.evaluate(
            "window.vedirect.devices.get('bmv').charts.get('soc').points.length"
        )
        assert history_points >= HISTORY_HOURS * 120 * 0.9
        await page.wait_for(
            "window.vedirect.devices.get('bmv').charts.get('soc').liveCount >= 3", limit=20
        )

        # freeze the devices, then one more reading: the page must show exactly it
        running.clear()  # the publisher is single-threaded: no step runs after this
        reading: Reading = feeds[0].until_reading()
        soc = reading.values["soc"]
        assert isinstance(soc, float)
        t_ms = reading.time.timestamp() * 1000
        last_point = (
            "(() => { const p = window.vedirect.devices.get('bmv').charts.get('soc').points; "
            "return p[p.length - 1]; })()"
        )
        point = await page.wait_for(f"{last_point}[0] === {t_ms} && {last_point}", limit=10)
        assert point == [t_ms, soc]
        shown = await page.wait_for(f"{SOC_TEXT} === '{shown_as(soc, 1)}' && {SOC_TEXT}")
        assert shown == shown_as(soc, 1)
        voltage = await page.evaluate(
            'document.querySelector(\'[data-device="bmv"] [data-field="voltage"]\').textContent'
        )
        assert voltage == shown_as(reading.values["voltage"], 2)
        # the MPPT card exists with its own fields and charts
        await page.wait_for(
            'document.querySelector(\'[data-device="solar"] [data-field="panel_power"]\')'
        )
        assert await page.wait_for("window.vedirect.devices.get('solar').charts.has('panel_power')")
        # health is visible
        status = await page.wait_for(
            "document.getElementById('status').textContent !== 'connecting…' && "
            "document.getElementById('status').textContent"
        )
        assert status == "healthy"  # a degraded output does not make the service unhealthy
        outputs = await page.wait_for("document.getElementById('outputs').textContent")
        assert outputs == "csvmqtt: degraded"
        # an output failing turns the page's health badge red with the reason
        hub.output("csv").failed("disk full")
        status = await page.evaluate(
            "pollHealth().then(() => document.getElementById('status').textContent)"
        )
        assert status == "unhealthy"
        problems = await page.evaluate("document.getElementById('problems').textContent")
        assert problems == "output csv: failed (disk full)"
        hub.output("csv").ok()
        hub.output("mqtt").ok()  # the picture a user wants: every output healthy
        outputs = await page.evaluate(
            "pollHealth().then(() => document.getElementById('outputs').textContent)"
        )
        assert outputs == "csvmqtt"
        running.set()
        # every chart has its hours of history, not a lone live point
        for device, field in (("bmv", "power"), ("solar", "panel_power")):
            count = await page.evaluate(
                f"window.vedirect.devices.get('{device}').charts.get('{field}').points.length"
            )
            assert count >= HISTORY_HOURS * 120 * 0.9, (device, field, count)

        shot = tmp_path / "screenshot.png"
        await page.screenshot(shot, 1280, 900)
        data = shot.read_bytes()
        assert data.startswith(PNG)
        assert len(data) > 20_000  # a rendered page, not a blank one
        target = os.environ.get("VEDIRECT_SCREENSHOT")
        if target:
            shutil.copyfile(shot, target)

        # readable on a phone: nothing wider than the screen
        await page.viewport(390, 844, mobile=True)
        overflow = await page.wait_for(
            "new Promise(r => requestAnimationFrame(() => r("
            "{scroll: document.documentElement.scrollWidth, width: window.innerWidth})))"
        )
        assert overflow["scroll"] <= overflow["width"]
        await page.screenshot(tmp_path / "phone.png", 390, 844, mobile=True)
        assert page.errors == [], page.errors


BARS = "[...document.querySelectorAll('[data-device=\"solar\"] .daily rect.bar')]"


async def test_daily_yield_bars_in_chromium(tmp_path: Path) -> None:
    """An MPPT's history (GET /api/daily) as one bar per day, oldest left, today right and
    paler; none for a battery monitor; a history read anew replaces the bars."""
    async with (
        pipeline(tmp_path) as (url, hub, _feeds, _running),
        open_page(url, tmp_path / "profile") as page,
    ):
        await page.wait_for("window.vedirect && window.vedirect.ready", limit=20)
        days = hub.devices["solar"].daily
        assert len(days) == 31
        today = date.today()
        bars = await page.wait_for(
            f"{BARS}.length === {len(days)} && {BARS}.map(b => [b.dataset.date, "
            "+b.getAttribute('height'), b.querySelector('title').textContent, "
            "b.classList.contains('today')])"
        )
        oldest_first = list(reversed(days))
        assert [b[0] for b in bars] == [d.calendar_day(today).isoformat() for d in oldest_first]
        assert [b[3] for b in bars] == [False] * 30 + [True]
        yields = [d.yield_kwh or 0.0 for d in oldest_first]
        tallest = max(b[1] for b in bars)
        for bar, value in zip(bars, yields, strict=True):  # heights in proportion, to a pixel
            assert bar[1] == pytest.approx(tallest * value / max(yields), abs=1.0)
        assert bars[0][2] == f"{oldest_first[0].calendar_day(today)}: {yields[0]:.2f} kWh"
        assert bars[-1][2].endswith(" kWh so far")
        total = await page.evaluate(
            "document.querySelector('[data-device=\"solar\"] .daily .sum').textContent"
        )
        assert total == f"31 days: {sum(yields):.1f} kWh"
        # a battery monitor has no history: no bars
        assert await page.evaluate("document.querySelector('[data-device=\"bmv\"] .daily').hidden")
        assert await page.evaluate("window.vedirect.devices.get('bmv').daily.length") == 0

        # a day later the session has read the history anew: the page shows the new one
        state = hub.device("solar")
        new_day = replace(days[0], yield_kwh=0.05, day_sequence=(days[0].day_sequence or 0) + 1)
        state.daily = (new_day, *(replace(d, days_ago=d.days_ago + 1) for d in days[:30]))
        state.daily_date = today + timedelta(days=1)
        await page.evaluate("loadDaily(window.vedirect.devices.get('solar'))")
        newest = f"{BARS}[{BARS}.length - 1]"
        shown = await page.wait_for(
            f"{newest}.dataset.date === '{today + timedelta(days=1)}' && "
            f"{newest}.querySelector('title').textContent"
        )
        assert shown == f"{today + timedelta(days=1)}: 0.05 kWh so far"
        assert await page.evaluate(f"{BARS}.length") == 31
        await page.screenshot(tmp_path / "bars.png", 1280, 900)
        assert page.errors == [], page.errors
