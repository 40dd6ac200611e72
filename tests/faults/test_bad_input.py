"""Bad configuration files and fuzzed HTTP requests against the real service process.

A bad configuration must stop ``run`` at once with exit status 2 and one line on stderr naming
what is wrong (never a traceback, never a secret). A fuzzed request must get 400 or 404 with a
message, never a 500, and the process must keep serving.
"""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest

from tests.faults.conftest import ROOT, Feeder, ServiceProcess, Setup, wait_until
from tests.pty_device import PtyDevice
from vedirect_async.simulator import SimulatedDevice

pytestmark = pytest.mark.faults

# (case, file content, text the one-line message must contain)
BAD_CONFIGS: list[tuple[str, bytes, str]] = [
    ("toml syntax", b"x = \n", "c.toml: not valid TOML"),
    ("not utf-8", b"\xff\xfe[csv]\n", "c.toml: cannot read"),
    ("unknown key", b"[csv]\nbogus = 1\n", "c.toml:2: csv.bogus = 1: expected no such key"),
    ("unknown section", b"[serial]\nport = 1\n", "serial"),
    ("wrong type", b'[mqtt]\nqos = "1"\n', "c.toml:2: mqtt.qos = '1'"),
    ("below minimum", b"[watchdog]\nsilence_timeout = 0\n", "watchdog.silence_timeout = 0"),
    ("above maximum", b"[http]\nport = 70000\n", "http.port = 70000"),
    ("bad choice", b'[logging]\nlevel = "LOUD"\n', "logging.level = 'LOUD'"),
    ("no device", b"device = []\n", "at least one [[device]]"),
    (
        "duplicate device",
        b'[[device]]\nname = "a"\nport = "/dev/x"\n[[device]]\nname = "a"\nport = "/dev/y"\n',
        "device[1].name = 'a'",
    ),
    ("unsafe device name", b'[[device]]\nname = "a b/c"\n', "device[0].name = 'a b/c'"),
    ("bad csv column", b'[csv]\ncolumns = ["Time", "V=NOPE"]\n', "unknown field 'NOPE'"),
    ("secret of a wrong type", b"[mqtt]\npassword = 123456\n", "mqtt.password = ***"),
    (
        "domoticz url scheme",
        b'[domoticz]\nenabled = true\nurl = "ftp://x"\n',
        "domoticz.url = 'ftp://x': expected http(s)://host:port",
    ),
]


@pytest.mark.parametrize("missing", ["file", "directory"])
async def test_missing_or_unreadable_config_path_exits_2_with_one_line(
    tmp_path: Path, missing: str
) -> None:
    """A config path that is missing, or a directory, stops ``run`` with status 2 and one line."""
    path = tmp_path / "nope.toml" if missing == "file" else tmp_path
    code, lines = await _run(path)
    assert code == 2
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"vedirect-async: {path}: ")


async def test_bad_config_files_exit_2_with_one_clear_line(tmp_path: Path) -> None:
    """Each bad file of BAD_CONFIGS stops ``run`` with status 2 and one line naming the
    problem (four processes at a time)."""

    slots = asyncio.Semaphore(4)  # a few at a time: each process imports the whole service

    async def one(case: str, content: bytes) -> tuple[int, list[str]]:
        folder = tmp_path / case.replace(" ", "_")
        folder.mkdir()
        (folder / "c.toml").write_bytes(content)
        async with slots:
            return await _run(Path("c.toml"), cwd=folder)

    results = await asyncio.gather(*(one(case, content) for case, content, _ in BAD_CONFIGS))
    problems = []
    for (case, _, expected), (code, lines) in zip(BAD_CONFIGS, results, strict=True):
        line = lines[0] if lines else ""
        if (
            code != 2
            or len(lines) != 1
            or not line.startswith("vedirect-async: ")
            or (expected not in line)
        ):
            problems.append(f"{case}: exit {code}, stderr {lines[-3:]}")
        assert "123456" not in "\n".join(lines)
    assert not problems, "\n".join(problems)


async def _run(config: Path, cwd: Path | None = None) -> tuple[int, list[str]]:
    """``run --config config``: (exit status, stderr lines); killed if still running at 20 s."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "vedirect_async",
        "run",
        "--config",
        str(config),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=cwd,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    try:
        _, err = await asyncio.wait_for(proc.communicate(), 20)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, err.decode("utf-8", "replace").splitlines()


# -- HTTP -----------------------------------------------------------------------------------------

PATHS = ["/api/history", "/api/readings", "/health", "/api/health", "/metrics", "/"]
KEYS = ["device", "field", "since", "max_points", "x", "", "device[]", "%00", "f%C3%A9", "since "]
VALUES = [
    "",
    "bmv",
    "nope",
    "voltage",
    "voltage,soc",
    "voltage,,",
    ",",
    ",".join(["voltage"] * 70),
    "V",
    "-1",
    "0",
    "1e309",
    "-1e309",
    "1e300",
    "-1e300",
    "nan",
    "inf",
    "-inf",
    "9" * 400,
    "%00",
    "%ff%fe",
    "%",
    "%zz",
    "%C3%A9",
    "2026-13-45",
    "2026-11-25T10:00:00+99:00",
    "9999-12-31T23:59:59",
    "0001-01-01",
    "0x10",
    "1_000",
    " 5 ",
    "5000",
    "5001",
    "-5",
    "<script>",
    "'; DROP TABLE",
]


def quote(text: str) -> str:
    """Percent-encode what a request line cannot carry; keep raw (possibly bad) % escapes."""
    return urllib.parse.quote(text, safe="%,:+-[]")


def fuzzed_queries(seed: int, count: int) -> list[str]:
    """``count`` seeded path?query strings from PATHS, KEYS and VALUES (raw, as sent)."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        path = rng.choice(PATHS)
        pairs = [
            f"{quote(rng.choice(KEYS))}={quote(rng.choice(VALUES))}"
            for _ in range(rng.randint(0, 4))
        ]
        if rng.random() < 0.1:
            pairs.append("&".join(pairs) or "device=bmv")  # repeated keys
        if rng.random() < 0.05:
            pairs = ["device=" + "a" * 2000]  # longer than any valid query
        out.append(path + ("?" + "&".join(pairs) if pairs else ""))
    return out


async def test_fuzzed_http_queries_get_400_or_404_never_500(
    tmp_path: Path, device: PtyDevice, services: list[ServiceProcess]
) -> None:
    """400 fuzzed query strings on /api/history, /api/readings, /health, /metrics and the
    page, bad /api/stream queries, unknown paths and other methods: each answer is 200, 400 or
    404 (400/404 with a message; 405 for a method), never a 500, and the process keeps
    serving readings."""
    setup = Setup(tmp_path, str(device.link))
    service = ServiceProcess(setup)
    services.append(service)
    sim = SimulatedDevice("bmv712", seed=3)
    feeder = Feeder(device, sim.next_second)
    feeder.start()
    await service.start()

    async def has_reading() -> bool:
        _, body = await service.get("/api/readings")
        return bool(body.get("devices"))

    await wait_until(has_reading, 10.0, "a reading at /api/readings")
    targets = fuzzed_queries(seed=9, count=400)
    targets += ["/nope", "/api", "/api/", "/api/history/x", "/%2e%2e/etc/passwd", "/health/"]
    # the live stream only streams for a valid query: bad ones must be refused at once
    targets += ["/api/stream?x=1", "/api/stream?device=bmv&device=bmv", "/api/stream?%ff=1"]
    requests = [("GET", target) for target in targets]
    requests += [(method, path) for method in ("POST", "PUT", "DELETE") for path in PATHS]
    statuses: dict[int, int] = {}
    bad: list[str] = []
    for method, target in requests:
        status, body = await service.get(target, method)
        statuses[status] = statuses.get(status, 0) + 1
        allowed = (200, 400, 404) if method == "GET" else (405,)
        if status not in allowed or (status != 200 and not body):
            bad.append(f"{target} -> {status} {str(body)[:200]}")
        if status == 400 and not (isinstance(body, dict) and body.get("error")):
            bad.append(f"{target} -> 400 without an error message: {str(body)[:200]}")
    await feeder.stop()
    assert not bad, "\n".join(bad[:10])
    assert statuses.get(400, 0) > 100, statuses  # the fuzz does reach the checks
    assert service.alive
    status, _ = await service.get("/api/readings")
    assert status == 200
    assert "Traceback" not in service.stderr()
    sys.stderr.write(f"fuzzed HTTP statuses: {dict(sorted(statuses.items()))}\n")
