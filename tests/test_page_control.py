"""The live page's controls (issue 15) in a real headless Chromium: none while the API is
read-only; with a token configured, none until the person types it; then a control writes to
the simulated MPPT and shows what the device read back."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chromium import CHROMIUM, open_page
from tests.test_web_control import TOKEN, serving

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason=f"{CHROMIUM} not installed (apt-get install -y chromium; CI installs it)",
)

SELECT = "document.querySelector('[data-control=device_mode] select')"


async def test_controls_only_after_the_token_and_they_write(tmp_path: Path) -> None:
    async with (
        serving(tmp_path) as api,
        open_page(f"http://127.0.0.1:{api.port}/", tmp_path / "p") as page,
    ):
        await page.wait_for("window.vedirectControl && window.vedirectControl.probed", limit=20)
        await page.wait_for("document.querySelector('section.device[data-device=mppt]')")
        assert await page.evaluate("document.querySelector('.controls') === null")
        await page.evaluate(
            "document.getElementById('control-token').value = 'wrong';"
            "document.getElementById('control-unlock').click()"
        )
        await page.wait_for("document.querySelector('.unlock .control-result').textContent")
        assert await page.evaluate("document.querySelector('.controls') === null")
        await page.evaluate(
            f"document.getElementById('control-token').value = '{TOKEN}';"
            "document.getElementById('control-unlock').click()"
        )
        assert await page.wait_for(f"{SELECT} && {SELECT}.value") == "on"
        await page.evaluate(
            f"{SELECT}.value = 'off';"
            "document.querySelector('[data-control=device_mode] button').click()"
        )
        result = "document.querySelector('[data-control=device_mode] .control-result').textContent"
        assert await page.wait_for(f"{result} === 'confirmed' && {result}") == "confirmed"
        assert api.session.poller.values["device_mode"][0] == "off"
        assert await page.evaluate(f"document.body.innerHTML.includes('{TOKEN}')") is False


async def test_no_controls_while_read_only(tmp_path: Path) -> None:
    async with (
        serving(tmp_path, token="") as api,
        open_page(f"http://127.0.0.1:{api.port}/", tmp_path / "p") as page,
    ):
        await page.wait_for("window.vedirectControl && window.vedirectControl.probed", limit=20)
        assert await page.evaluate("window.vedirectControl.writable") is False
        assert await page.evaluate("document.getElementById('control-unlock') === null")
        assert page.errors == [], page.errors
