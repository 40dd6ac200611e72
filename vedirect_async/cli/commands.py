"""The sub-commands: each one's arguments and a typed handler that calls down into its concern.

A handler imports the module it calls when it runs (below this layer, so no cycle): building
the parser stays cheap, and ``health`` never loads aiohttp, aiomqtt or the configuration
registry. Every handler that reads a configuration gets its path from
:func:`.config_file.config_file`.
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from .config_file import config_file

if TYPE_CHECKING:
    from ..config import Config
    from ..outputs.base import OutputCommand, OutputSpec

# ruff: noqa: PLC0415 - the imports inside the handlers are the point of this module

__all__ = ["add_all", "core_commands", "run"]

SubParsers = argparse._SubParsersAction


def add_all(
    sub: SubParsers[argparse.ArgumentParser], registry: Mapping[str, OutputSpec] | None = None
) -> None:
    """Add every sub-command to ``sub``: the core ones, and each output's of ``registry`` (None:
    the output commands are left out, so nothing of the outputs is imported; ``run`` and
    ``check-config`` then load the registered outputs when they run)."""
    for add in _CORE:
        add(sub)
    for spec in (registry or {}).values():
        for command in spec.commands:
            _add_output_command(sub, command)


def core_commands() -> frozenset[str]:
    """The names of the core sub-commands (they need no output to be imported to parse)."""
    sub = argparse.ArgumentParser().add_subparsers()
    for add in _CORE:
        add(sub)
    return frozenset(sub.choices or ())


def _registry(args: argparse.Namespace) -> Mapping[str, OutputSpec]:
    """The outputs the command line was built with, else every registered one."""
    given: Mapping[str, OutputSpec] | None = getattr(args, "registry", None)
    if given is not None:
        return given
    from ..outputs import REGISTRY

    return REGISTRY


# -- run -------------------------------------------------------------------------------------


def _add_run(sub: SubParsers[argparse.ArgumentParser]) -> None:
    run_parser = sub.add_parser("run", help="run the service (the default command)")
    run_parser.add_argument("--config", "-c", default=argparse.SUPPRESS, help="configuration file")
    run_parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """``run`` (and no command at all): the service in the foreground."""
    from ..service import cli_run

    return cli_run(config_file(args.config), _registry(args))


# -- decode ----------------------------------------------------------------------------------


def _add_decode(sub: SubParsers[argparse.ArgumentParser]) -> None:
    decode = sub.add_parser("decode", help="decode a raw VE.Direct capture file")
    decode.add_argument("file", help="capture file, or - for standard input")
    decode.add_argument("--format", "-f", choices=("jsonl", "csv", "table"), default="jsonl")
    decode.add_argument("--device", default="device", help="device name put in the readings")
    decode.add_argument("--hex", action="store_true", help="also show HEX records, decoded")
    decode.set_defaults(handler=_decode)


def _decode(args: argparse.Namespace) -> int:
    from ..decode import cli_decode

    return cli_decode(args)


# -- simulate --------------------------------------------------------------------------------


def _add_simulate(sub: SubParsers[argparse.ArgumentParser]) -> None:
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
    simulate.add_argument("--name", default=None, help="stable identity: serial and counters")
    simulate.add_argument("--no-hex-answers", action="store_true", help="never answer HEX")
    simulate.add_argument("--hex-delay", type=float, default=0.0, help="answer HEX after N s")
    simulate.add_argument(
        "--record", default=None, help="--pty: append what the host writes (HEX commands) to FILE"
    )
    simulate.add_argument(
        "--duration",
        type=float,
        default=None,
        help="stop after N seconds of device time (N / speed seconds of wall time)",
    )
    simulate.set_defaults(handler=_simulate)


def _simulate(args: argparse.Namespace) -> int:
    from ..simulator import cli_simulate

    return cli_simulate(args)


# -- check-config ----------------------------------------------------------------------------


def _add_check_config(sub: SubParsers[argparse.ArgumentParser]) -> None:
    check = sub.add_parser("check-config", help="validate a config and print it, secrets masked")
    check.add_argument("path", nargs="?", default=None, help="configuration file")
    check.add_argument(
        "--format", choices=("toml", "json"), default="toml", help="output format (default toml)"
    )
    check.set_defaults(handler=_check_config)


def _check_config(args: argparse.Namespace) -> int:
    from ..service import cli_check_config

    return cli_check_config(config_file(args.path or args.config), args.format, _registry(args))


# -- health ----------------------------------------------------------------------------------


def _add_health(sub: SubParsers[argparse.ArgumentParser]) -> None:
    health = sub.add_parser("health", help="exit 0 if the running service is healthy, else 1")
    health.add_argument(
        "--url", default=None, help="health URL (default: from the config's [http], /health)"
    )
    health.add_argument("--timeout", type=float, default=3.0)
    health.set_defaults(handler=_health)


def _health(args: argparse.Namespace) -> int:
    from ..healthcheck import probe

    url: str | None = args.url
    return probe(url, config_file(args.config) if url is None else None, args.timeout)


# -- the outputs' own sub-commands (domoticz setup, ...) ---------------------------------------


def _add_output_command(sub: SubParsers[argparse.ArgumentParser], command: OutputCommand) -> None:
    parser = sub.add_parser(command.name, help=command.help)
    command.add_arguments(parser)
    parser.set_defaults(handler=functools.partial(_output_command, command))


def _output_command(command: OutputCommand, args: argparse.Namespace) -> int:
    """Run an output's sub-command; it reads the configuration the command line chose."""
    from ..settings import load_config

    path = config_file(args.config)
    registry = _registry(args)

    def load() -> Config:
        return load_config(path, registry=registry)

    return command.run(args, load)


# -- hex -------------------------------------------------------------------------------------


def _add_hex(sub: SubParsers[argparse.ArgumentParser]) -> None:
    from .hex import add_hex

    add_hex(sub)


_CORE: tuple[Callable[[SubParsers[argparse.ArgumentParser]], None], ...] = (
    _add_run,
    _add_decode,
    _add_simulate,
    _add_check_config,
    _add_health,
    _add_hex,
)
