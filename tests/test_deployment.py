"""The deployment files say what issue 13 found they must (Docker, compose, systemd, make, CI).

These files are not Python, so nothing else runs them in the suite: each check reads one and
fails on what a real engine, a Raspberry Pi or a new user hit (see docs/deployment.md).
``make`` is run for real (``-n`` only prints the demo's commands; a missing Python stops it
before anything is created).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _lines(name: str) -> list[str]:
    """The file's lines without comments (a ``#`` that starts a line or follows a space)."""
    out = []
    for line in (ROOT / name).read_text(encoding="utf-8").splitlines():
        code = re.sub(r"(^|\s)#.*", "", line).rstrip()
        if code:
            out.append(code)
    return out


def test_compose_mqtt_publishes_no_anonymous_broker() -> None:
    """No port of the anonymous broker is published unless the user opts in (was 1883:1883 on
    every interface)."""
    ports = [line for line in _lines("compose.mqtt.yaml") if line.strip() == "ports:"]
    assert not ports, "compose.mqtt.yaml publishes a port of the broker"


def test_compose_admits_the_raspberry_pi_uarts() -> None:
    """ttyAMA* (PL011) and ttyS0 (mini UART), and not all of major 4 (the consoles)."""
    rules = {m[1] for line in _lines("compose.yaml") if (m := re.search(r'"(c [^"]+)"', line))}
    assert {"c 188:* rmw", "c 204:* rmw", "c 4:64 rmw"} <= rules, rules
    assert "c 4:* rmw" not in rules


def test_systemd_unit_admits_the_raspberry_pi_uarts() -> None:
    allowed = set(_lines("contrib/systemd/vedirect-async.service"))
    assert {"DeviceAllow=char-ttyAMA rw", "DeviceAllow=char-ttyS rw"} <= allowed


def test_dockerfile_health_check_timing_and_no_wheels_layer() -> None:
    """Start-up is the start period's job (longer than one interval), the probe runs at most
    every 30 s, and no /wheels layer is copied into the final image."""
    text = "\n".join(_lines("Dockerfile"))
    check = re.search(r"HEALTHCHECK ([^\n]*)", text)
    assert check is not None
    options = dict(re.findall(r"--([a-z-]+)=(\d+)s", check[1]))
    assert int(options["interval"]) >= 30
    assert int(options["start-period"]) > int(options["interval"])
    assert "/wheels" not in text


def test_ci_installs_no_socat() -> None:
    assert "socat" not in "\n".join(_lines(".ci/run"))


@pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")
def test_make_demo_installs_the_runtime_only(tmp_path: Path) -> None:
    """The demo's commands: the runtime dependencies, no dev toolchain, no project build."""
    done = subprocess.run(
        ["make", "-n", "-B", "demo", f"VENV={tmp_path / 'venv'}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert "pip install" in done.stdout, done.stdout
    assert "[dev]" not in done.stdout
    assert "pip install --quiet -e" not in done.stdout


@pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")
def test_make_demo_without_a_suitable_python_says_how_to_choose_one(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    done = subprocess.run(
        ["make", "demo", f"VENV={venv}", "PYTHON_CANDIDATES=no-such-python3"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode != 0
    assert "make demo PYTHON=" in done.stderr, done.stderr
    assert not venv.exists()


def test_a_config_file_the_service_user_cannot_read_is_one_line_and_exit_2(
    tmp_path: Path,
) -> None:
    """uid 10001 and a config file private to its owner: exit 2 with the line docs/deployment.md
    shows (what ``docker logs`` repeats under ``restart: unless-stopped``)."""
    prefix: list[str] = []
    if os.geteuid() == 0:  # root reads anything: drop the capabilities that ignore permissions
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root and setpriv (util-linux) is missing")
        prefix = [setpriv, "--bounding-set=-dac_override,-dac_read_search"]
    config = tmp_path / "config.toml"
    config.write_text("[http]\nenabled = false\n")
    config.chmod(0)
    done = subprocess.run(
        [*prefix, sys.executable, "-m", "vedirect_async", "--config", str(config), "run"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.splitlines() == [f"vedirect-async: {config}: cannot read: Permission denied"]
    shown = "vedirect-async: /config/config.toml: cannot read: Permission denied\n"
    assert shown in (ROOT / "docs" / "deployment.md").read_text(encoding="utf-8")


def test_container_check_touches_no_bridge_of_another_engine() -> None:
    """scripts/container-check (root, not CI) deleted docker0 unconditionally; its dockerd now
    has no default bridge and it removes only the bridge it created; --keep-base is parsed."""
    code = "\n".join(_lines("scripts/container-check"))
    assert "--bridge=none" in code
    assert not re.search(r"ip link del(ete)? +docker0", code)
    assert re.search(r"--keep-base\) *KEEP_BASE=1", code)
