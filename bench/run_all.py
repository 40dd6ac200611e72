"""Run every benchmark in ``bench/`` with a quick setting and print one summary table.

``make bench`` runs this. Each ``bench/*.py`` script (helpers excepted) runs as its own
process, with the quick arguments below (5-10 minutes for all on a 2-core machine; each
script's own defaults may be longer, see its docstring). Its output is echoed as it finishes,
then the headline figures are picked out of it for the table. A benchmark that fails, times
out or prints nothing recognisable is reported in the table, never fatal; the exit code is
1 when any failed. A script added later without an entry below runs with its defaults and
shows its last line.

Usage: python bench/run_all.py [--only NAME ...] [--timeout 900]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
HELPERS = frozenset({"__init__.py", "run_all.py", "peers.py"})  # not benchmarks themselves


@dataclass(frozen=True)
class Plan:
    """Quick arguments, and (figure, regex whose group 1 is the value) to pick out."""

    args: tuple[str, ...]
    figures: tuple[tuple[str, str], ...]


_NUM = r"[-+]?[\d,]*\.?\d+"
PLANS: dict[str, Plan] = {
    "parser.py": Plan(
        ("--peer-mb", "0.5"),
        (
            ("throughput, 4 KiB chunks", rf"4096 B chunks\s*:\s*({_NUM} MB/s)"),
            ("+ assembler", rf"\+ assembler \(readings\)\s*:.*?({_NUM} readings/s)"),
            ("BMV device-day, parser + assembler", rf"one BMV device-day.*?: ({_NUM} s)"),
            ("corrupt accepted / undamaged lost", r"^vedirect_async \(4 KiB.*?(\d+)\s+(\d+)\s*$"),
            (
                "vs vedirect 1.1.0 (line reader)",
                rf"^vedirect 1\.1\.0\s+{_NUM}\s+{_NUM}\s+({_NUM}x)",
            ),
        ),
    ),
    "pipeline.py": Plan(
        (),
        (
            ("BMV day, 1 chunk/s, CPU", rf"1 chunk per second:.*?CPU ({_NUM} s)"),
            ("BMV day, 64-byte chunks, CPU", rf"64-byte chunks:.*?CPU ({_NUM} s)"),
        ),
    ),
    "hex_polling.py": Plan(
        (),
        (("HEX polling every 30 s, CPU per device-day", rf"polling every 30 s .*?\(({_NUM} %)"),),
    ),
    "simulator.py": Plan(
        ("--seconds", "21600"),
        (
            ("bmv712, µs per simulated second", rf"^bmv712\s+{_NUM}\s+{_NUM}\s+({_NUM})"),
            ("mppt, µs per simulated second", rf"^mppt\s+{_NUM}\s+{_NUM}\s+({_NUM})"),
        ),
    ),
    "soak_hub.py": Plan(
        ("--readings", "200000"),
        (
            ("hub readings/s (3 consumers)", rf"readings in {_NUM} s \(({_NUM})/s\)"),
            ("hub RSS growth after warm-up", rf"growth after warm-up ({_NUM} MB)"),
        ),
    ),
    "csv_log.py": Plan(
        ("--seconds", "21600"),
        (
            ("CSV interval 0, CPU per row", rf"^interval 0 .*?\(({_NUM} us) CPU per row"),
            ("CSV interval 30, CPU per row", rf"^interval 30 .*?\(({_NUM} us) CPU per row"),
        ),
    ),
    "domoticz.py": Plan(
        ("--seconds", "3"),
        (
            ("Domoticz posts/s (fake, loopback)", rf"posts: \d+ \(({_NUM})/s\)"),
            ("Domoticz CPU per post", rf"= ({_NUM} us) per post"),
        ),
    ),
    "mqtt.py": Plan(
        ("--rate", "20", "--seconds", "3"),
        (
            ("MQTT 4 dev x 20/s: delivered", rf"delivered as their own message \(({_NUM} %)"),
            ("MQTT latency p50 / p99", rf"latency p50 ({_NUM} ms), p99 ({_NUM} ms)"),
        ),
    ),
    "control.py": Plan(
        ("--commands", "20"),
        (("MQTT command -> confirmed state p50/p99", rf"state p50 ({_NUM} ms), p99 ({_NUM} ms)"),),
    ),
    "web.py": Plan(
        ("--seconds", "3"),
        (
            ("/health req/s", rf"/health\s+({_NUM}) req/s"),
            ("/api/readings req/s", rf"/api/readings\s+({_NUM}) req/s"),
            ("/metrics req/s", rf"/metrics\s+({_NUM}) req/s"),
            ("readings/s under /metrics load", rf"/metrics .*?readings\s+({_NUM}/s)"),
        ),
    ),
    "soak.py": Plan(
        ("--days", "0.5", "--speed", "200"),
        (
            ("soak: kept up", r"^service kept up\s+(.*)$"),
            ("soak: RSS after warm-up", r"^RSS after warm-up\s+.*?(growth .*)$"),
            ("soak: open fds", r"^open fds after warm-up\s+(\S+)"),
            ("soak: asyncio tasks", r"^asyncio tasks after warm-up\s+(\S+)"),
            ("soak: corrupt values", r"^corrupt values\s+(\d+)"),
            ("soak: Domoticz lag", r"^Domoticz lag \(wall\)\s+(.*?);"),
            ("soak: CPU per device-day", r"^CPU per device-day\s+(.*)$"),
            ("soak: devices per core (here)", r"^devices per core \(here\)\s+(.*)$"),
            (
                "soak: Raspberry Pi 3 (estimate)",
                r"^Raspberry Pi 3 \(est\.[^)]*\)\s+(.*?)\s+estimate$",
            ),
        ),
    ),
}


@dataclass
class Result:
    name: str
    command: str
    seconds: float
    status: str  # "ok", "failed (exit N)", "timed out"
    figures: list[tuple[str, str]]


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def pick(plan: Plan | None, output: str) -> list[tuple[str, str]]:
    """The plan's figures found in ``output``; else its last non-empty line."""
    found: list[tuple[str, str]] = []
    for figure, pattern in plan.figures if plan else ():
        match = re.search(pattern, output, re.MULTILINE)
        if match is not None:
            found.append((figure, " / ".join(g.strip() for g in match.groups())))
    if not found:
        lines = [line.strip() for line in output.splitlines() if line.strip()]
        if lines:
            found.append(("last line", lines[-1][:100]))
    return found


def run(script: Path, timeout: float) -> Result:
    plan = PLANS.get(script.name)
    args = plan.args if plan else ()
    command = " ".join(("python", f"bench/{script.name}", *args))
    sys.stdout.write(f"\n=== {command}\n")
    sys.stdout.flush()
    start = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, str(script), *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        partial = exc.stdout if isinstance(exc.stdout, str) else ""
        sys.stdout.write(partial)
        return Result(script.stem, command, time.monotonic() - start, "timed out", [])
    elapsed = time.monotonic() - start
    sys.stdout.write(done.stdout)
    if done.returncode != 0:
        sys.stdout.write(done.stderr[-2000:])
        reason = (done.stderr.strip().splitlines() or ["no output"])[-1][:100]
        return Result(
            script.stem,
            command,
            elapsed,
            f"failed (exit {done.returncode})",
            [("error", reason)],
        )
    return Result(script.stem, command, elapsed, "ok", pick(plan, done.stdout))


def table(results: list[Result]) -> str:
    rows = [("benchmark", "figure", "value", "command")]
    for result in results:
        if result.status != "ok":
            detail = result.figures[0][1] if result.figures else ""
            rows.append((result.name, result.status.upper(), detail, result.command))
            continue
        for number, (figure, value) in enumerate(result.figures):
            rows.append((result.name if number == 0 else "", figure, value, result.command))
    widths = [min(60, max(len(row[i]) for row in rows)) for i in range(3)]
    lines = []
    for number, row in enumerate(rows):
        cells = [row[i].ljust(widths[i]) for i in range(3)]
        command = row[3] if number == 0 or row[0] else ""
        lines.append("  ".join((*cells, command)).rstrip())
        if number == 0:
            lines.append("  ".join("-" * w for w in (*widths, 7)))
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", help="run only these (e.g. soak parser)")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per benchmark")
    args = parser.parse_args()
    scripts = sorted(p for p in BENCH.glob("*.py") if p.name not in HELPERS)
    if args.only:
        wanted = {name.removesuffix(".py") for name in args.only}
        scripts = [p for p in scripts if p.stem in wanted]
    started = datetime.now(UTC)
    results = [run(script, args.timeout) for script in scripts]
    sys.stdout.write(
        f"\n# make bench: {started:%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs, {cpu_model()}, "
        f"Python {platform.python_version()}, load average {os.getloadavg()[0]:.1f}, "
        f"{sum(r.seconds for r in results) / 60:.1f} min\n\n"
    )
    sys.stdout.write(table(results))
    return 0 if all(r.status == "ok" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
