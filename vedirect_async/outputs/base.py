"""The one small interface every output implements.

An output is built from the configuration (no I/O in its constructor), gets its own
subscription from the hub and runs until cancelled. It owns its retry policy and reports its
state through the :class:`~vedirect_async.hub.OutputState` it is given. The service supervises
it: if ``run`` raises, the exception is logged once with its traceback and ``run`` is called
again after a capped backoff, with the same subscription.

An output is registered by its :class:`OutputSpec` (one line in ``outputs.REGISTRY``): its
config section (table name and dataclass, whose field docs and bounds the loader uses), its own
validation (errors with file, line, key, value, expected), its factory and its own command-line
subcommands (:class:`OutputCommand`). The service and the CLI take everything from there.
"""

from __future__ import annotations

import abc
import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from ..config import Config, Fail
from ..hub import Hub, OutputState, Subscription

__all__ = ["Output", "OutputCommand", "OutputSpec"]


class Output(abc.ABC):
    """Base class of outputs (Domoticz, CSV, MQTT, ...)."""

    #: unique short name, used in logs, /health and /metrics
    name: ClassVar[str]
    #: True: keep only the newest reading per device (rate-limited outputs).
    #: False: a bounded FIFO of every reading (log outputs); full = drop oldest, counted.
    latest_only: ClassVar[bool] = False
    #: queue bound for FIFO subscriptions
    queue_size: ClassVar[int] = 1024

    def subscribe(self, hub: Hub) -> Subscription:
        """The subscription this output reads from (called once by the service)."""
        return hub.subscribe(self.name, maxsize=self.queue_size, latest_only=self.latest_only)

    @abc.abstractmethod
    async def run(self, readings: Subscription, state: OutputState) -> None:
        """Consume readings until cancelled. Flush what must be flushed on cancellation."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook, default does nothing
        """Release resources at shutdown (after ``run`` was cancelled)."""


@dataclass(frozen=True, slots=True)
class OutputCommand:
    """A command-line subcommand an output brings (``domoticz setup``...).

    ``add_arguments`` fills the subcommand's parser; ``run(args, load)`` does the work and
    returns the exit code; ``load()`` reads the configuration file the command line chose,
    with every registered section (it raises :class:`~vedirect_async.errors.ConfigError`).
    """

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace, Callable[[], Config]], int]


@dataclass(frozen=True, slots=True)
class OutputSpec:
    """Everything about one output, registered with one line in ``outputs.REGISTRY``.

    - ``name``: its config table (``[name]``), also the key of ``Config.sections``.
    - ``kind``: the section's dataclass; defaults, ``metadata`` docs and bounds drive the
      loader, environment overrides and ``check-config`` like the core sections'.
    - ``validate(section, config, fail)``: rules the field bounds cannot say (cross-key,
      against the devices); ``fail(key, value, expected)`` raises the one-line ConfigError
      with file and line. None = nothing more to check.
    - ``factory(config)``: the output, or None when the section disables it. No I/O.
    - ``commands``: its command-line subcommands.
    """

    name: str
    kind: type[Any]
    factory: Callable[[Config], Output | None]
    validate: Callable[[Any, Config, Fail], None] | None = None
    commands: tuple[OutputCommand, ...] = ()
