"""Command line: ``python -m vedirect_async [run|decode|simulate|check-config|health|domoticz]``.

Each sub-command's work lives in the module of its concern; this file only parses arguments
and dispatches. ``main(argv)`` returns the exit code, so it is directly testable.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import signal
import sys
from collections.abc import Sequence

from . import __version__

__all__ = ["build_parser", "main", "run_main"]

DEFAULT_CONFIG = "config.toml"

# sub-command -> "module:function"; the function takes the parsed args and returns an exit code
_HANDLERS = {
    "run": "vedirect_async.service:cli_run",
    "decode": "vedirect_async.decode:cli_decode",
    "simulate": "vedirect_async.simulator:cli_simulate",
    "check-config": "vedirect_async.service:cli_check_config",
    "health": "vedirect_async.healthcheck:cli_health",
    "domoticz": "vedirect_async.outputs.domoticz:cli_domoticz",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vedirect-async",
        description="Read Victron VE.Direct devices; feed Domoticz, CSV, MQTT and HTTP.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--config",
        "-c",
        default=None,
        help=f"configuration file (default: {DEFAULT_CONFIG} if present)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="run the service (the default command)")
    run.add_argument("--config", "-c", default=argparse.SUPPRESS, help="configuration file")

    decode = sub.add_parser("decode", help="decode a raw VE.Direct capture file")
    decode.add_argument("file", help="capture file, or - for standard input")
    decode.add_argument("--format", "-f", choices=("jsonl", "csv", "table"), default="jsonl")
    decode.add_argument("--device", default="device", help="device name put in the readings")

    simulate = sub.add_parser("simulate", help="simulated device on a pseudo-terminal or stdout")
    simulate.add_argument(
        "kind",
        nargs="?",
        default="bmv712",
        help="bmv712, mppt, smartshunt, or a capture file to replay",
    )
    simulate.add_argument(
        "--pty", action="store_true", help="create a pseudo-terminal, print its path, write into it"
    )
    simulate.add_argument("--link", default=None, help="also make this symlink to the pty")
    simulate.add_argument(
        "--speed", type=float, default=1.0, help="time factor (10 = 10x; inf = no pacing)"
    )
    simulate.add_argument(
        "--corrupt", type=float, default=0.0, help="fraction of bytes to corrupt (0..1)"
    )
    simulate.add_argument("--hex", action="store_true", help="interleave async HEX records")
    simulate.add_argument("--seed", type=int, default=None, help="random seed")
    simulate.add_argument(
        "--duration",
        type=float,
        default=None,
        help="stop after N seconds of device time (N / speed seconds of wall time)",
    )

    check = sub.add_parser("check-config", help="validate a config and print it, secrets masked")
    check.add_argument("path", nargs="?", default=None, help="configuration file")
    check.add_argument(
        "--format", choices=("toml", "json"), default="toml", help="output format (default toml)"
    )

    health = sub.add_parser("health", help="exit 0 if the running service is healthy, else 1")
    health.add_argument(
        "--url", default=None, help="health URL (default: from the config's [http], /health)"
    )
    health.add_argument("--timeout", type=float, default=3.0)

    domoticz = sub.add_parser("domoticz", help="Domoticz helpers")
    dsub = domoticz.add_subparsers(dest="domoticz_command", metavar="ACTION", required=True)
    setup = dsub.add_parser("setup", help="create Dummy hardware and virtual devices")
    setup.add_argument("--url", required=True, help="Domoticz base URL")
    setup.add_argument("--device", default=None, help="which [[device]] (default: the first)")
    setup.add_argument(
        "--kind",
        default=None,
        help="device type for the field set (bmv, smartshunt, mppt); "
        "default from the device's simulator/port",
    )
    setup.add_argument("--username", default=None)
    setup.add_argument(
        "--password-env",
        default="VEDIRECT_DOMOTICZ__PASSWORD",
        help="environment variable holding the password",
    )
    setup.add_argument("--hardware-name", default="vedirect")
    setup.add_argument("--dry-run", action="store_true", help="print the requests, send none")
    return parser


def main(argv: Sequence[str] | None = None, *, early_stop: bool = False) -> int:
    """Parse ``argv`` and run the sub-command; returns the process exit code.

    ``early_stop`` (the console entry point): a SIGTERM that arrives while ``run`` is still
    importing, before the service has installed its own handlers, exits 0 as a stop does,
    instead of killing the process (exit 143) or, as PID 1, being ignored.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    command = args.command or "run"
    if args.command is None:
        args.command = "run"
    if early_stop and command == "run":
        signal.signal(signal.SIGTERM, _stop_before_start)
    module_name, func_name = _HANDLERS[command].split(":")
    handler = getattr(importlib.import_module(module_name), func_name)
    code: int = handler(args)
    return code


def _stop_before_start(signum: int, frame: object) -> None:
    raise SystemExit(0)  # nothing has been written yet: stopping now is clean


def run_main() -> None:
    """Console-script entry point."""
    code = 130
    with contextlib.suppress(KeyboardInterrupt):
        code = main(early_stop=True)
    sys.exit(code)
