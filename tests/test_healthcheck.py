"""The container health probe: light imports, its URL from the configuration, its answers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from vedirect_async import cli
from vedirect_async.healthcheck import ProbeError, config_url

ROOT = Path(__file__).resolve().parent.parent

# What the probe must never load: each costs a Pi tens of milliseconds per probe.
HEAVY = (
    *("aiohttp", "aiomqtt", "prometheus_client", "aiofiles", "serial", "ssl", "email"),
    *("vedirect_async.config", "vedirect_async.outputs", "vedirect_async.service"),
    "vedirect_async.hub",
)


class _Server:
    """A stdlib HTTP server on 127.0.0.1 answering every GET with ``status`` and ``body``."""

    def __init__(self) -> None:
        self.status = 200
        self.body = b"{}"
        self.paths: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.paths.append(self.path)
                self.send_response(outer.status)
                self.send_header("Content-Length", str(len(outer.body)))
                self.end_headers()
                self.wfile.write(outer.body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/health"


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server()
    thread = threading.Thread(target=srv.httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.httpd.shutdown()
        srv.httpd.server_close()
        thread.join(5)


def _probe_modules(*args: str, cwd: Path = ROOT) -> tuple[int, str, set[str]]:
    """Run the probe as Docker does, in a fresh interpreter; (exit, stdout, modules loaded)."""
    code = (
        "import runpy, sys, json\n"
        f"sys.argv = ['vedirect_async', *{list(args)!r}]\n"
        "try:\n"
        "    runpy.run_module('vedirect_async', run_name='__main__')\n"
        "except SystemExit as exc:\n"
        "    sys.stderr.write(json.dumps([exc.code, sorted(sys.modules)]))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("VEDIRECT_")}
    proc = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )
    exit_code, modules = json.loads(proc.stderr)
    return exit_code, proc.stdout, set(modules)


def _heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))


def test_probe_imports_nothing_heavy(server: _Server, tmp_path: Path) -> None:
    """Neither form of the probe loads aiohttp, aiomqtt, prometheus, the config registry, the
    outputs, ssl or email (the old probe loaded all of them: four bare interpreter starts)."""
    code, out, modules = _probe_modules("health", "--url", server.url)
    assert (code, out) == (0, "healthy\n")
    assert _heavy(modules) == []
    config = tmp_path / "config.toml"
    config.write_text(f'[[device]]\nname = "x"\nport = "/dev/x"\n[http]\nport = {server.port}\n')
    code, out, modules = _probe_modules("--config", str(config), "health")
    assert (code, out) == (0, "healthy\n")
    assert _heavy(modules) == []
    assert "importlib.metadata" not in modules  # the version is looked up on demand only


def test_probe_reports_the_services_problems(
    server: _Server, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 503 gives exit 1 and the body's problems on one line; a body that is not JSON, the
    status."""
    server.status = 503
    problems = ["bmv: no valid reading yet", "output csv: failed"]
    server.body = json.dumps({"problems": problems}).encode()
    assert cli.main(["health", "--url", server.url]) == 1
    assert capsys.readouterr().out == "unhealthy: bmv: no valid reading yet; output csv: failed\n"
    server.body = b"<html>"
    assert cli.main(["health", "--url", server.url]) == 1
    assert capsys.readouterr().out == "unhealthy: HTTP 503\n"
    assert server.paths == ["/health", "/health"]


def test_probe_url_errors_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    for url, expected in [
        ("ftp://x/health", "unhealthy: not an http(s) URL: ftp://x/health\n"),
        ("http://127.0.0.1:99999/health", "unhealthy: http://127.0.0.1:99999/health: bad port"),
        ("http://user@127.0.0.1/health", "unhealthy: http://user@127.0.0.1/health: expected"),
    ]:
        assert cli.main(["health", "--url", url]) == 1
        assert capsys.readouterr().out.startswith(expected)


def test_config_url_checks_just_enough(tmp_path: Path) -> None:
    """The URL comes from [http] and VEDIRECT_HTTP__*; a bad value names where it came from."""
    path = tmp_path / "config.toml"
    path.write_text('[http]\nport = "eighty"\n')
    with pytest.raises(ProbeError, match=r"config.toml: \[http\] port = 'eighty': expected a port"):
        config_url(str(path), {})
    with pytest.raises(ProbeError, match="environment: VEDIRECT_HTTP__PORT = 0: expected a port"):
        config_url(None, {"VEDIRECT_HTTP__PORT": "0"})
    # one value followed by more TOML is text, as the service reads it (it refuses it too)
    with pytest.raises(ProbeError, match=r"VEDIRECT_HTTP__PORT = '8081\\nenabled = false'"):
        config_url(None, {"VEDIRECT_HTTP__PORT": "8081\nenabled = false"})
    path.write_text("[http]\nenabled = false\n")
    with pytest.raises(ProbeError, match="enabled = false: the service serves no /health"):
        config_url(str(path), {})
    assert config_url(str(path), {"VEDIRECT_HTTP__ENABLED": "true"}).endswith(":8080/health")
    path.write_text("[http\n")
    with pytest.raises(ProbeError, match="not valid TOML"):
        config_url(str(path), {})
    with pytest.raises(ProbeError, match=r"missing\.toml: file not found"):
        config_url(str(tmp_path / "missing.toml"), {})
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)
    with pytest.raises(ProbeError, match="not a regular file"):
        config_url(str(fifo), {})  # would block forever if it were opened for reading first


def test_probe_without_config_file_uses_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """No --config and no ./config.toml: the defaults (127.0.0.1:8080) plus the environment."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VEDIRECT_HTTP__PORT", "1")
    assert cli.main(["health", "--timeout", "2"]) == 1
    assert capsys.readouterr().out.startswith("unhealthy: http://127.0.0.1:1/health: ")
