"""Wiring: readers, watchdogs, outputs and the web server in one TaskGroup; signals; shutdown.

Every long-lived part runs under a :class:`Supervisor`: an unexpected exception is logged
with its traceback once, the part restarts after a capped backoff, and everything else keeps
running. SIGTERM/SIGINT stop the readers first, then cancel the outputs so they flush (the
CSV output finishes its line), and the process exits 0 within about a second - also as PID 1,
where Python would otherwise ignore SIGTERM.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, ClassVar

from .backoff import Backoff
from .config import Config, ConfigError, masked
from .control import Controller
from .fields import lookup
from .hub import Hub, OutputState, Subscription
from .logsetup import RateLimitedLogger, setup_logging
from .outputs import REGISTRY, OutputSpec, build_outputs
from .outputs.base import Output
from .outputs.mqtt import MqttOutput
from .reading import Reading
from .session import DeviceSession
from .settings import load_config
from .watchdog import Watchdog
from .web import WebServer

__all__ = [
    "ReadingLog",
    "Service",
    "Supervisor",
    "cli_check_config",
    "cli_run",
    "summarize",
    "to_toml",
]

_LOGGER = logging.getLogger(__name__)

# Shutdown budget (seconds): readers, then outputs and web server (they flush), then aclose().
# The hard limit is a last resort for a part that ignores cancellation (a wedged thread).
READER_GRACE = 0.3
OUTPUT_GRACE = 1.0  # outputs and the web server, cancelled together (CSV flushes in 0.8)
CLOSE_GRACE = 0.3  # Output.aclose(), all outputs at once
HARD_EXIT_AFTER = 1.9
EXIT_MARGIN = 0.05  # the forced exit waits this long for its note to reach stderr
LOG_CLOSE_MARGIN = 0.25  # the logging shutdown ends this long before the hard deadline
# A supervised part that ran this long before failing starts its backoff from scratch.
STABLE_AFTER = 60.0
# Outputs whose presence means the user sees readings elsewhere (no INFO line per reading).
READING_LOG = "log"
_SILENT_OUTPUTS = frozenset({"csv", "http", "web", READING_LOG})


class Supervisor:
    """Runs ``target()`` until cancelled; restarts it with backoff whenever it fails."""

    def __init__(
        self,
        name: str,
        target: Callable[[], Awaitable[None]],
        *,
        on_failure: Callable[[str], None] | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        self.name = name
        self.target = target
        self.on_failure = on_failure
        self.backoff = backoff or Backoff(1.0, 30.0)
        self.restarts = 0
        self._limited = RateLimitedLogger(_LOGGER, interval=300.0)

    async def run(self) -> None:
        """Call the target again and again; only cancellation ends this."""
        last_failure = ""
        while True:
            started = time.monotonic()
            error: Exception | None = None
            try:
                await self.target()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                error = exc
                reason = f"{type(exc).__name__}: {exc}"
            else:
                reason = "returned unexpectedly"
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                # Cancelled, but the target swallowed it (returned or raised instead):
                # stopping is what was asked for, not a restart.
                _LOGGER.debug("%s ended while being cancelled (%s)", self.name, reason)
                raise asyncio.CancelledError
            if time.monotonic() - started >= STABLE_AFTER:
                self.backoff.reset()
                last_failure = ""
            delay = self.backoff.next()
            self.restarts += 1
            if self.on_failure is not None:
                self.on_failure(reason)
            if reason != last_failure:
                # A new kind of failure: the traceback, once.
                _LOGGER.error(
                    "%s failed (%s); restarting in %.1f s",
                    self.name,
                    reason,
                    delay,
                    exc_info=error,
                )
            else:
                self._limited.log(
                    logging.WARNING,
                    reason,
                    "%s failed again (%s); restarting in %.1f s",
                    self.name,
                    reason,
                    delay,
                )
            last_failure = reason
            await asyncio.sleep(delay)


def summarize(reading: Reading) -> str:
    """A short human line for a reading: ``bmv: 12.84 V, -3.20 A, SOC 87.3 %``."""
    parts: list[str] = []
    for label, prefix in _SUMMARY_LABELS:
        field = lookup(label)
        value = reading.values.get(field.name) if field is not None else None
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            parts.append(f"{prefix}{value}".strip())
        else:
            unit = f" {field.unit}" if field is not None and field.unit else ""
            parts.append(f"{prefix}{value:g}{unit}")
    return f"{reading.device}: " + (", ".join(parts) or f"{len(reading.values)} values")


# (VE.Direct label, prefix in the summary), in the order shown; absent fields are skipped.
_SUMMARY_LABELS = (
    ("V", ""),
    ("I", ""),
    ("P", ""),
    ("SOC", "SOC "),
    ("PPV", "PV "),
    ("CS", "state "),
    ("AC_OUT_V", "AC "),
)


class ReadingLog(Output):
    """Logs each device's newest reading at INFO every ``interval`` seconds (demo, no outputs)."""

    name: ClassVar[str] = READING_LOG
    latest_only: ClassVar[bool] = True

    def __init__(self, interval: float = 10.0) -> None:
        self.interval = interval

    async def run(self, readings: Subscription, state: OutputState) -> None:
        while True:
            await readings.wait()
            for reading in readings.drain_latest().values():
                _LOGGER.info("%s", summarize(reading))
            state.ok()
            await asyncio.sleep(self.interval)  # an output throttles itself; never the reader


class Service:
    """The running service: build with a config (no I/O), then ``await run(stop)``."""

    def __init__(
        self,
        config: Config,
        hub: Hub | None = None,
        outputs: Sequence[Output] | None = None,
        *,
        registry: Mapping[str, OutputSpec] = REGISTRY,
    ) -> None:
        self.config = config
        self.hub = hub or Hub()
        self.outputs = list(build_outputs(config, registry) if outputs is None else outputs)
        interval = config.logging.readings_interval
        if interval > 0 and not {o.name for o in self.outputs} - _SILENT_OUTPUTS:
            self.outputs.append(ReadingLog(interval))
        self.readers = [DeviceSession(d, self.hub, config.watchdog) for d in config.device]
        self.control = Controller(self.readers, config.device)  # writes (issue 15)
        for output in self.outputs:
            if isinstance(output, MqttOutput):
                output.control = self.control  # command topics and HA control entities
        self.supervisors: dict[str, Supervisor] = {}
        self.web: WebServer | None = None  # once started (its ``serving`` event: port open)

    def _supervisor(
        self, name: str, target: Callable[[], Awaitable[None]], on_failure: Callable[[str], None]
    ) -> Supervisor:
        wd = self.config.watchdog
        sup = Supervisor(
            name, target, on_failure=on_failure, backoff=Backoff(wd.backoff_initial, wd.backoff_max)
        )
        self.supervisors[name] = sup
        return sup

    async def run(self, stop: asyncio.Event) -> None:
        """Run every part until ``stop`` is set; then shut down in order."""
        hub = self.hub
        names = ", ".join(f"{r.name}={r.port}" for r in self.readers)
        _LOGGER.info(
            "starting: devices %s; outputs %s", names, ", ".join(o.name for o in self.outputs)
        )
        async with asyncio.TaskGroup() as group:
            device_tasks: list[asyncio.Task[None]] = []
            for reader in self.readers:
                crashed = functools.partial(reader.report_crash, "reader")
                sup = self._supervisor(f"reader {reader.name}", reader.run, crashed)
                device_tasks.append(group.create_task(sup.run(), name=f"reader-{reader.name}"))
                dog = Watchdog(self.config.watchdog, reader)
                crashed = functools.partial(reader.report_crash, "watchdog")
                sup = self._supervisor(f"watchdog {reader.name}", dog.run, crashed)
                device_tasks.append(group.create_task(sup.run(), name=f"watchdog-{reader.name}"))
            output_tasks = [self._start_output(group, output) for output in self.outputs]
            output_tasks += self._start_web(group)
            await stop.wait()
            _LOGGER.info("stopping")
            await _cancel(device_tasks, READER_GRACE, "readers")
            await _cancel(output_tasks, OUTPUT_GRACE, "outputs")
            await asyncio.gather(*(self._close_output(output) for output in self.outputs))
        _LOGGER.info(
            "stopped: %d readings published, %d readers restarted",
            hub.published,
            sum(r.state.restarts for r in self.readers),
        )

    def _start_output(self, group: asyncio.TaskGroup, output: Output) -> asyncio.Task[None]:
        subscription = output.subscribe(self.hub)
        state = self.hub.output(output.name)

        def failed(reason: str) -> None:
            state.failed(reason)
            state.restarts += 1

        sup = self._supervisor(
            f"output {output.name}", lambda: output.run(subscription, state), failed
        )
        return group.create_task(sup.run(), name=f"output-{output.name}")

    def _start_web(self, group: asyncio.TaskGroup) -> list[asyncio.Task[None]]:
        if not self.config.http.enabled:
            return []
        server = self.web = WebServer(self.config, self.hub, control=self.control)

        def failed(reason: str) -> None:
            state = self.hub.output("http")  # shown on /health only once it has failed
            state.failed(reason)
            state.restarts += 1

        sup = self._supervisor("web server", server.run, failed)
        return [group.create_task(sup.run(), name="web")]

    async def _close_output(self, output: Output) -> None:
        try:
            async with asyncio.timeout(CLOSE_GRACE):
                await output.aclose()
        except Exception:
            _LOGGER.exception("output %s: error while closing", output.name)
        for sub in self.hub.subscriptions:
            if sub.name == output.name:
                sub.close()


async def _cancel(tasks: list[asyncio.Task[None]], grace: float, what: str) -> None:
    """Cancel ``tasks`` and wait up to ``grace`` seconds for them to finish."""
    if not tasks:
        return
    for task in tasks:
        task.cancel()
    _, pending = await asyncio.wait(tasks, timeout=grace)
    for task in pending:
        task.cancel()  # again: a part may have lost the first cancellation in a race
    if pending:
        _LOGGER.warning(
            "%s still stopping after %.1f s: %s",
            what,
            grace,
            ", ".join(t.get_name() for t in pending),
        )


# -- command line -----------------------------------------------------------------------------


def _load(path: str | None, registry: Mapping[str, OutputSpec] = REGISTRY) -> Config | None:
    """The configuration at ``path`` (None: defaults; the command line chose the file)."""
    try:
        config = load_config(path, registry=registry)
    except ConfigError as exc:
        sys.stderr.write(f"vedirect-async: {exc}\n")
        return None
    try:
        build_outputs(
            config, registry
        )  # an output's own checks (domoticz.url...): now, not at start
    except ConfigError as exc:
        sys.stderr.write(f"vedirect-async: {config.source}: {exc}\n")
        return None
    return config


def cli_run(path: str | None, registry: Mapping[str, OutputSpec] = REGISTRY) -> int:
    """``run``: the service in the foreground until SIGTERM/SIGINT/SIGHUP; exit 0, or 2 on bad
    config. ``registry``: the outputs (their sections, factories), normally all registered ones.
    The hard deadline, once a stop began, covers everything to the process's end, the logging
    shutdown included: a stderr nobody reads cannot hold the exit."""
    config = _load(path, registry)
    if config is None:
        return 2
    try:
        handle = setup_logging(config.logging)
    except ConfigError as exc:
        sys.stderr.write(f"vedirect-async: {config.source}: {exc}\n")
        return 2
    _LOGGER.info("configuration from %s", config.source)
    deadline = _HardDeadline()
    try:
        asyncio.run(_serve(config, deadline, registry))
    finally:
        deadline.start()  # no-op after a signal; otherwise (an error) the budget starts now
        drained = handle.close(timeout=max(0.0, deadline.remaining() - LOG_CLOSE_MARGIN))
        if not drained:
            # The log writer is stuck in write(2) (stderr not read, a hung disk): the normal
            # interpreter exit would flush stderr and block, or abort on its lock. Everything
            # else is closed by now, so leave without it.
            os._exit(0 if sys.exc_info()[0] is None else 1)
        deadline.cancel()
    return 0


# SIGTERM, SIGINT and SIGHUP (the terminal or session went away) stop the service cleanly;
# SIGUSR1/SIGUSR2 are logged and ignored (their default would kill the process uncleanly).
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
IGNORED_SIGNALS = (signal.SIGUSR1, signal.SIGUSR2)


async def _serve(
    config: Config, deadline: _HardDeadline, registry: Mapping[str, OutputSpec] = REGISTRY
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        name = signal.Signals(signum).name
        if signum in IGNORED_SIGNALS:
            _LOGGER.info("%s received; ignored (it has no meaning here)", name)
            return
        if stop.is_set():
            # Repeats are common (`timeout` and some supervisors signal the process and its
            # group); the hard deadline already bounds the shutdown, so they change nothing.
            _LOGGER.debug("%s again while stopping; ignored", name)
            return
        _LOGGER.info("%s received", name)
        stop.set()
        deadline.start()

    for signum in (*STOP_SIGNALS, *IGNORED_SIGNALS):
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        await Service(config, registry=registry).run(stop)
    finally:
        for signum in (*STOP_SIGNALS, *IGNORED_SIGNALS):
            loop.remove_signal_handler(signum)  # this restores the default action (death) ...
            signal.signal(signum, signal.SIG_IGN)  # ... so: ignored until the process ends
        deadline.start()  # a stop without a signal (an error) is bounded too


class _HardDeadline:
    """Exits the process if a clean shutdown takes longer than HARD_EXIT_AFTER seconds."""

    def __init__(self) -> None:
        self._timer: threading.Timer | None = None
        self._ends = 0.0

    def start(self) -> None:
        if self._timer is None:
            self._ends = time.monotonic() + HARD_EXIT_AFTER
            self._timer = threading.Timer(HARD_EXIT_AFTER, self.fire)
            self._timer.daemon = True
            self._timer.start()

    def remaining(self) -> float:
        """Seconds left before the deadline fires (HARD_EXIT_AFTER before it started)."""
        if self._timer is None:
            return HARD_EXIT_AFTER
        return max(0.0, self._ends - time.monotonic())

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()

    @staticmethod
    def fire() -> None:
        # The note is written by another thread: if stderr is a pipe nobody reads, write(2)
        # blocks, and the exit must not wait for it.
        note = threading.Thread(
            target=os.write,
            args=(2, b"vedirect-async: shutdown did not finish in time; exiting\n"),
            daemon=True,
        )
        note.start()
        note.join(EXIT_MARGIN)
        os._exit(1)


def cli_check_config(
    path: str | None, output_format: str = "toml", registry: Mapping[str, OutputSpec] = REGISTRY
) -> int:
    """``check-config``: validate and print the effective configuration (secrets masked)."""
    config = _load(path, registry)
    if config is None:
        return 2
    data = masked(config)
    data.pop("source", None)
    if output_format == "json":
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
    else:
        sys.stdout.write(f"# effective configuration from {config.source}\n" + to_toml(data))
    return 0


def to_toml(data: Mapping[str, Any]) -> str:
    """Plain configuration data (tables, arrays of tables, scalars, lists) as TOML."""
    lines: list[str] = []

    def scalar(value: Any) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int | float):
            return repr(value)
        if isinstance(value, list):
            return "[" + ", ".join(scalar(v) for v in value) + "]"
        return json.dumps(str(value), ensure_ascii=False)  # a valid TOML basic string

    def table(prefix: str, body: Mapping[str, Any], header: str) -> None:
        if lines:
            lines.append("")
        lines.append(header)
        nested: list[tuple[str, Any]] = []
        for key, value in body.items():
            if isinstance(value, Mapping) or _is_table_list(value):
                nested.append((key, value))
            else:
                lines.append(f"{key} = {scalar(value)}")
        for key, value in nested:
            emit(f"{prefix}.{key}", value)

    def emit(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping):
            table(prefix, value, f"[{prefix}]")
        else:
            for item in value:
                table(prefix, item, f"[[{prefix}]]")

    for key, value in data.items():
        if isinstance(value, Mapping) or _is_table_list(value):
            emit(key, value)
        else:
            lines.append(f"{key} = {scalar(value)}")
    return "\n".join(lines) + "\n"


def _is_table_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, Mapping) for v in value)
