"""CPU cost of the container health probe against a bare interpreter start.

Docker runs ``python -m vedirect_async health`` every HEALTHCHECK interval for the life of the
container, so its cost is paid all day, on a Raspberry Pi too. This runs, interleaved,
``--runs`` times each:

- ``python -c pass`` (the floor: interpreter and site start-up),
- ``python -m vedirect_async health --url http://127.0.0.1:PORT/health`` (what the Dockerfile
  runs), against a small standard-library server in this process answering 200 with a body
  like the service's,
- ``python -m vedirect_async --config FILE health`` (the URL read from a configuration file),

and prints the CPU time (user + system, from ``RUSAGE_CHILDREN``) per run of each and its
ratio to the floor. The target is a ratio of at most 3.

Usage: python bench/healthprobe.py [--runs 30]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BODY = json.dumps(
    {"status": "ok", "problems": [], "devices": {"bmv": {"fresh": True}}, "outputs": {}}
).encode()


class _Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # the name http.server dispatches to
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, format: str, *args: object) -> None:
        pass


def _cpu_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run(argv: list[str], expect: int) -> float:
    """CPU seconds of one run of ``argv`` (which must exit with ``expect``)."""
    before = _cpu_children()
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, check=False, timeout=60)
    cpu = _cpu_children() - before
    if proc.returncode != expect:
        raise SystemExit(f"{argv}: exit {proc.returncode}: {proc.stdout!r} {proc.stderr!r}")
    return cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "config.toml"
        config.write_text(
            '[[device]]\nname = "bmv"\nport = "/dev/ttyUSB0"\n\n'
            f'[http]\nhost = "0.0.0.0"\nport = {port}\n'
        )
        cases = {
            "python -c pass": ([py, "-c", "pass"], 0),
            "health --url": (
                [py, "-m", "vedirect_async", "health", "--url", f"http://127.0.0.1:{port}/health"],
                0,
            ),
            "health (config)": ([py, "-m", "vedirect_async", "--config", str(config), "health"], 0),
        }
        totals = dict.fromkeys(cases, 0.0)
        for argv, expect in cases.values():  # warm the page cache
            _run(argv, expect)
        for _ in range(args.runs):
            for name, (argv, expect) in cases.items():
                totals[name] += _run(argv, expect)
    server.shutdown()
    floor = totals["python -c pass"] / args.runs
    print(
        f"CPU per run (user + system), {args.runs} runs each, interleaved; {sys.version.split()[0]}"
    )
    for name, total in totals.items():
        per_run = total / args.runs
        print(f"  {name:<18} {per_run * 1000:7.1f} ms   {per_run / floor:4.2f}x python -c pass")
    ratio = max(totals["health --url"], totals["health (config)"]) / totals["python -c pass"]
    print(f"ratio (worst probe / python -c pass): {ratio:.2f} (target <= 3)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
