"""A seeded fuzz of the HTTP server over raw sockets (issue 16): random methods, paths, queries,
headers and malformed request lines. Never a 500, never an HTTP/0.9 answer, never a traceback
in the log, and /health still answers after. Bounded: 600 requests, 16 at a time, seconds."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import time
from collections import Counter
from pathlib import Path

import aiohttp
import pytest

from tests.test_web_hostile import running
from tests.webfeed import Feed, free_port, make_config
from vedirect_async.hub import Hub

SEED = 16
REQUESTS = 600
IDLE = 1.0  # the server's idle timeout in this test: unfinished requests are closed after it
PATHS = (
    "/", "/health", "/metrics", "/api/health", "/api/readings", "/api/history", "/api/stream",
    "/static/app.js", "/static/chart.js", "/static/style.css", "/static/index.html", "/static/",
    "/nope", "/api", "/api/", "/health/", "//health", "/./health", "/../etc/passwd",
)  # fmt: skip
QUERY_KEYS = ("device", "field", "since", "max_points", "x", "", "%ff", "device[]", "a" * 40)
QUERY_VALUES = (
    "bmv", "soc,voltage", "-3600", "nan", "1e309", "2026-13-45T99:99", "9" * 400, "%", "%zz",
    "", "0", "-1", "5001", ",,,", "soc," * 70, "\u00e9", "%00", "bmv%2F..",
)  # fmt: skip
METHODS = ("GET", "GET", "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE")
ODD_METHODS = ("get", "G\x00T", "CONNECT", "PRI", "X" * 300, "GET\tX", "\x16\x03\x01")
HEADERS = (
    ("Host", "x"), ("Accept", "text/html"), ("Accept", "*/*"), ("Accept-Encoding", "gzip, br"),
    ("Range", "bytes=0-10"), ("Range", "bytes=999999-"), ("Range", "bytes=-0"),
    ("If-Modified-Since", "yesterday"), ("If-None-Match", '"x"'), ("Connection", "Upgrade"),
    ("Upgrade", "websocket"), ("Expect", "100-continue"), ("Content-Length", "5"),
    ("Content-Length", "-1"), ("Content-Length", "99999999999999999999"),
    ("Transfer-Encoding", "chunked"), ("Transfer-Encoding", "gzip, chunked"),
    ("Content-Type", "application/json"), ("Cookie", "a=" + "b" * 500), ("X-Forwarded-For", "::1"),
)  # fmt: skip
BAD_LINES = (
    b"GET /\r\n\r\n", b"GET / HTTP/2.0\r\n\r\n", b"GET / HTTP/1.1 extra\r\n\r\n",
    b"GET  /  HTTP/1.1\r\n\r\n", b"GET\t/\tHTTP/1.1\r\n\r\n", b"GET / HTTP/1.1\n\n",
    b"GET / HTTP/9.9\r\nHost: x\r\n\r\n", b"\r\n\r\n", b"\x00\x00\x00\x00\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", b"GET / HTTP/1.1\r\nHost: x\r\n : x\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n", b"GET / HTTP/1.1\r\nHost\r\n\r\n",
    b"GET /%zz HTTP/1.1\r\nHost: x\r\n\r\n", b"GET http://x/health HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET * HTTP/1.1\r\nHost: x\r\n\r\n", b"GET /health HTTP/1.1\r\nHost: x\r\n",
    b"GET /health HTTP/1.1\r\n" + b"X: y\r\n" * 200 + b"\r\n",
    b"GET /health HTTP/1.1\r\nX: " + b"y" * 10000 + b"\r\n\r\n",
    b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST /health HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
)  # fmt: skip


def _path(rng: random.Random) -> str:
    path = rng.choice(PATHS)
    roll = rng.random()
    if roll < 0.15:
        path += "".join(rng.choice("abc/.%~-_0") for _ in range(rng.randint(1, 40)))
    elif roll < 0.2:
        path = "/static/" + "a" * rng.choice((255, 256, 300, 4000))
    elif roll < 0.25:
        path += "%" + rng.choice(("2e", "2f", "00", "ff", "zz", "5c", ""))
    if rng.random() < 0.5:
        pairs = [
            f"{rng.choice(QUERY_KEYS)}={rng.choice(QUERY_VALUES)}" for _ in range(rng.randint(1, 4))
        ]
        path += "?" + "&".join(pairs)
    return path


def fuzzed_request(rng: random.Random) -> bytes:
    """One request: mostly well formed with odd parts, sometimes a broken request line."""
    if rng.random() < 0.15:
        return rng.choice(BAD_LINES)
    if rng.random() < 0.05:
        return bytes(rng.randrange(256) for _ in range(rng.randint(1, 200))) + b"\r\n\r\n"
    method = rng.choice(ODD_METHODS if rng.random() < 0.08 else METHODS)
    version = rng.choice(("HTTP/1.1", "HTTP/1.1", "HTTP/1.0", "HTTP/1.2", "HTTP/1.1 "))
    lines = [f"{method} {_path(rng)} {version}", "Host: x", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in rng.sample(HEADERS, rng.randint(0, 4))]
    if rng.random() < 0.1:
        name = "".join(rng.choice("ab-_:@ \x01é") for _ in range(rng.randint(1, 12)))
        lines.append(f"{name}: {rng.choice(('x', '', 'é' * 5, chr(0)))}")
    body = b"hello" if rng.random() < 0.2 else b""
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape") + body


_STATUS = re.compile(rb"^HTTP/(\d\.\d) (\d{3}) ")


async def exchange(port: int, request: bytes) -> bytes:
    """Send ``request``; the answer's head (or b"" when the server closed without one)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = b""
    try:
        with contextlib.suppress(ConnectionError):
            writer.write(request)
        with contextlib.suppress(ConnectionError):
            # a head, or the server closing (a bad request line, or the idle timeout)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), IDLE + 4)
    except asyncio.IncompleteReadError as exc:
        head = exc.partial
    finally:
        writer.close()
    return head


async def test_fuzzed_requests_never_500_never_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="vedirect_async")
    rng = random.Random(SEED)
    requests = [fuzzed_request(rng) for _ in range(REQUESTS)]
    port = free_port()
    hub = Hub()
    Feed(hub, clock=time.monotonic).until_reading()
    statuses: Counter[str] = Counter()
    bad: list[str] = []
    gate = asyncio.Semaphore(16)

    async def one(request: bytes) -> None:
        async with gate:
            head = await exchange(port, request)
        found = _STATUS.match(head)
        statuses[found.group(2).decode() if found else "closed"] += 1
        if found is None and head:
            bad.append(f"{request[:80]!r} -> not an HTTP answer: {head[:80]!r}")
        elif found and (found.group(1) == b"0.9" or found.group(2).startswith(b"5")):
            bad.append(f"{request[:80]!r} -> {head[:80]!r}")

    started = time.monotonic()
    async with running(make_config(tmp_path, port=port), hub, idle_timeout=IDLE):
        await asyncio.gather(*(one(r) for r in requests))
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{port}/health") as resp,
        ):
            assert resp.status == 200
    took = time.monotonic() - started
    assert not bad, "\n".join(bad[:20])
    assert statuses["400"] > 50, statuses  # the fuzz reaches the checks, the paths, the data
    assert statuses["404"] > 20, statuses
    assert statuses["200"] > 5, statuses
    traces = [r.getMessage() for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert traces == []
    logged = [r for r in caplog.records if r.levelno >= logging.INFO and "http:" in r.getMessage()]
    assert len(logged) <= 12, [r.getMessage() for r in logged]  # one line per kind, at most
    print(f"fuzzed HTTP: {REQUESTS} requests in {took:.1f} s: {dict(sorted(statuses.items()))}")
