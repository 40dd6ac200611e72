"""Headless Chromium driven over the DevTools protocol (aiohttp websocket), for page tests.

Launch flags follow ../shared/reference/tooling.md section 5. Console errors, uncaught
exceptions and error-level log entries (failed loads, CSP violations) are collected from the
moment the page is opened.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import itertools
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

CHROMIUM = "/usr/bin/chromium"
_LISTENING = re.compile(r"DevTools listening on (ws://\S+)")


class DevToolsError(Exception):
    """A DevTools command failed or Chromium did not start."""


class Page:
    """One page target: send commands, evaluate JS, read collected console errors."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.errors: list[str] = []
        self.console: list[str] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self._ws:
            if message.type is not aiohttp.WSMsgType.TEXT:
                break
            data = json.loads(message.data)
            future = self._pending.pop(data.get("id", -1), None)
            if future is not None and not future.done():
                future.set_result(data)
            else:
                self._event(data.get("method", ""), data.get("params", {}))
        for future in self._pending.values():
            if not future.done():
                future.set_exception(DevToolsError("DevTools connection closed"))

    def _event(self, method: str, params: dict[str, Any]) -> None:
        if method == "Runtime.consoleAPICalled":
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in params["args"])
            self.console.append(f"{params['type']}: {text}")
            if params["type"] in ("error", "assert"):
                self.errors.append(f"console.{params['type']}: {text}")
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            description = details.get("exception", {}).get("description", details.get("text"))
            self.errors.append(f"exception: {description}")
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            entry = params["entry"]
            self.errors.append(f"log ({entry['source']}): {entry['text']} {entry.get('url', '')}")

    async def send(self, method: str, limit: float = 10.0, **params: Any) -> dict[str, Any]:
        ident = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[ident] = future
        await self._ws.send_str(json.dumps({"id": ident, "method": method, "params": params}))
        reply = await asyncio.wait_for(future, limit)
        if "error" in reply:
            raise DevToolsError(f"{method}: {reply['error']}")
        result: dict[str, Any] = reply.get("result", {})
        return result

    async def evaluate(self, expression: str, limit: float = 10.0) -> Any:
        """Evaluate ``expression`` (awaiting it if it is a promise) and return its JSON value."""
        result = await self.send(
            "Runtime.evaluate",
            limit=limit,
            expression=expression,
            awaitPromise=True,
            returnByValue=True,
        )
        if "exceptionDetails" in result:
            raise DevToolsError(f"evaluate failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, condition: str, limit: float = 10.0) -> Any:
        """Resolve when the JS expression ``condition`` is truthy (checked in the browser)."""
        script = (
            "new Promise((resolve) => { const check = () => { let v; "
            f"try {{ v = ({condition}); }} catch (e) {{ v = undefined; }} "
            "if (v) resolve(v); else setTimeout(check, 20); }; check(); })"
        )
        return await self.evaluate(script, limit=limit)

    async def screenshot(self, path: Path, width: int, height: int, mobile: bool = False) -> None:
        await self.viewport(width, height, mobile)
        data = await self.send("Page.captureScreenshot", format="png", captureBeyondViewport=False)
        await asyncio.to_thread(path.write_bytes, base64.b64decode(data["data"]))

    async def viewport(self, width: int, height: int, mobile: bool = False) -> None:
        await self.send(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=mobile,
        )

    async def close(self) -> None:
        await self._ws.close()
        with contextlib.suppress(asyncio.CancelledError):
            self._reader.cancel()
            await self._reader


@contextlib.asynccontextmanager
async def open_page(
    url: str, profile: Path, width: int = 1280, height: int = 900
) -> AsyncIterator[Page]:
    """Start headless Chromium, open ``url`` in its page with console capture on, yield it."""
    proc = await asyncio.create_subprocess_exec(
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--lang=en-US",
        f"--user-data-dir={profile}",
        f"--window-size={width},{height}",
        "--remote-debugging-port=0",
        "--remote-allow-origins=*",
        "about:blank",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    stderr_tail: collections.deque[str] = collections.deque(maxlen=50)
    drain: asyncio.Task[None] | None = None
    try:
        assert proc.stderr is not None
        browser_ws = await asyncio.wait_for(_devtools_url(proc.stderr, stderr_tail), 30)
        drain = asyncio.create_task(_drain(proc.stderr, stderr_tail))
        port = browser_ws.split("//", 1)[1].split("/", 1)[0]
        async with aiohttp.ClientSession() as session:
            async with session.get(
                f"http://{port}/json/list", timeout=aiohttp.ClientTimeout(10)
            ) as r:
                targets = await r.json()
            target = next(t for t in targets if t["type"] == "page")
            ws = await session.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=64 << 20)
            page = Page(ws)
            try:
                for domain in ("Runtime", "Log", "Page"):
                    await page.send(f"{domain}.enable")
                await page.viewport(width, height)
                await page.send("Page.navigate", url=url)
                yield page
            finally:
                await page.close()
    except (TimeoutError, StopIteration) as exc:
        raise DevToolsError(
            f"chromium did not start: {exc!r}; stderr: {list(stderr_tail)}"
        ) from exc
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if drain is not None:
            drain.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await drain


async def _devtools_url(stream: asyncio.StreamReader, tail: collections.deque[str]) -> str:
    while line := await stream.readline():
        text = line.decode(errors="replace").rstrip()
        tail.append(text)
        found = _LISTENING.search(text)
        if found:
            return found.group(1)
    raise DevToolsError(f"chromium exited before DevTools listened: {list(tail)}")


async def _drain(stream: asyncio.StreamReader, tail: collections.deque[str]) -> None:
    while line := await stream.readline():
        tail.append(line.decode(errors="replace").rstrip())
