"""Command line, the top layer: ``python -m vedirect_async [run|decode|simulate|check-config|
health|domoticz]``.

This package only parses arguments, decides which configuration file applies
(:mod:`.config_file`) and calls down into the module of each concern through a typed handler
(:mod:`.commands`). Handlers import their concern when they run, not when the parser is built,
so ``health`` (run by Docker every interval) loads nothing but the standard library and
:mod:`vedirect_async.healthcheck`. ``main(argv)`` returns the exit code, so it is testable.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from . import commands
from .config_file import DEFAULT_CONFIG

if TYPE_CHECKING:
    from ..outputs.base import OutputSpec

__all__ = ["build_parser", "main", "run_main"]

Handler = Callable[[argparse.Namespace], int]


class _VersionAction(argparse.Action):
    """``--version``, reading the installed version only when asked (importlib.metadata is
    slow to import, and the health probe must not pay for it)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, help="show the version and exit")

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        from .. import __version__  # noqa: PLC0415 - only for --version

        parser.exit(message=f"{parser.prog} {__version__}\n")


def build_parser(registry: Mapping[str, OutputSpec] | None = None) -> argparse.ArgumentParser:
    """The command line; ``registry``: the outputs whose sub-commands it offers (None: none,
    and nothing of the outputs is imported)."""
    parser = argparse.ArgumentParser(
        prog="vedirect-async",
        description="Read Victron VE.Direct devices; feed Domoticz, CSV, MQTT and HTTP.",
    )
    parser.add_argument("--version", action=_VersionAction)
    parser.add_argument(
        "--config",
        "-c",
        default=None,
        help=f"configuration file (default: {DEFAULT_CONFIG} if present)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_all(sub, registry)
    parser.set_defaults(handler=commands.run, registry=registry)
    return parser


def main(
    argv: Sequence[str] | None = None,
    *,
    early_stop: bool = False,
    registry: Mapping[str, OutputSpec] | None = None,
) -> int:
    """Parse ``argv`` and run the sub-command; returns the process exit code.

    ``early_stop`` (the console entry point): a SIGTERM that arrives while ``run`` is still
    importing, before the service has installed its own handlers, exits 0 as a stop does,
    instead of killing the process (exit 143) or, as PID 1, being ignored.
    """
    words = list(sys.argv[1:] if argv is None else argv)
    if registry is None and _names_an_output_command(words):
        from ..outputs import REGISTRY  # noqa: PLC0415 - only for an output's sub-command

        registry = REGISTRY
    args = build_parser(registry).parse_args(words)
    if args.command is None:
        args.command = "run"
    if early_stop and args.command == "run":  # SIGHUP stops, SIGUSR1/2 are ignored (service.py)
        for signum in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, _stop_before_start)
        for signum in (signal.SIGUSR1, signal.SIGUSR2):
            signal.signal(signum, signal.SIG_IGN)
    handler: Handler = args.handler
    return handler(args)


def _names_an_output_command(words: Sequence[str]) -> bool:
    """Does the command line name a sub-command that is not a core one (an output's), or ask
    for the top-level help (which lists them)? Only then are the outputs imported, so
    ``health`` (run by Docker every interval) stays light."""
    command: str | None = None
    skip = False
    for word in words:
        if skip:
            skip = False
        elif word in ("--config", "-c"):
            skip = True
        elif not word.startswith("-"):
            command = word
            break
    if command is None:
        return any(word in ("-h", "--help") for word in words)
    return command not in commands.core_commands()


def _stop_before_start(signum: int, frame: object) -> None:
    raise SystemExit(0)  # nothing has been written yet: stopping now is clean


def run_main() -> None:
    """Console-script entry point."""
    code = 130
    with contextlib.suppress(KeyboardInterrupt):
        code = main(early_stop=True)
    sys.exit(code)
