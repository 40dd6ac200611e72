"""Logging set-up and the rate-limited logger."""

from __future__ import annotations

import contextlib
import fcntl
import io
import logging
import logging.handlers
import os
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from vedirect_async.config import LoggingConfig
from vedirect_async.errors import ConfigError
from vedirect_async.logsetup import QUEUE_SIZE, RateLimitedLogger, setup_logging

from .entry_point import run_entry_point


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_rate_limited_logger_logs_once_per_interval_and_counts_the_rest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Repeats within the interval are held back and counted on the next line; keys are apart."""
    caplog.set_level(logging.DEBUG)
    clock = Clock()
    limited = RateLimitedLogger(logging.getLogger("t"), interval=60, clock=clock)
    assert limited.log(logging.WARNING, "bmv", "bmv: %d checksum errors", 1)
    assert not limited.log(logging.WARNING, "bmv", "bmv: %d checksum errors", 2)
    assert not limited.log(logging.WARNING, "bmv", "bmv: %d checksum errors", 3)
    assert limited.log(logging.WARNING, "mppt", "mppt: %d checksum errors", 1)
    clock.now = 60.0
    assert limited.log(logging.WARNING, "bmv", "bmv: %d checksum errors", 4)
    assert [r.getMessage() for r in caplog.records] == [
        "bmv: 1 checksum errors",
        "mppt: 1 checksum errors",
        "bmv: 4 checksum errors (2 similar suppressed)",
    ]
    limited.reset("bmv")
    assert limited.log(logging.WARNING, "bmv", "bmv: again")


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    root.setLevel(level)
    root.handlers[:] = handlers


@pytest.mark.usefixtures("restore_root")
def test_setup_logging_writes_one_line_per_event_to_a_rotating_file(tmp_path: Path) -> None:
    """With [logging] file set, records reach the file (rotated at max_bytes) after close()."""
    path = tmp_path / "vedirect.log"
    handle = setup_logging(
        LoggingConfig(level="DEBUG", file=str(path), max_bytes=10_000, backup_count=2)
    )
    log = logging.getLogger("vedirect_async.test")
    for n in range(400):
        log.debug("bmv: line %d %s", n, "x" * 40)
    handle.close()
    handle.close()  # idempotent
    assert logging.getLogger().level == logging.DEBUG
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[-1].endswith("DEBUG   vedirect_async.test: bmv: line 399 " + "x" * 40)
    assert (tmp_path / "vedirect.log.1").exists()
    assert (tmp_path / "vedirect.log.2").exists()
    assert not (tmp_path / "vedirect.log.3").exists()
    assert all(len(p.read_bytes()) <= 10_000 for p in tmp_path.iterdir())


@pytest.mark.usefixtures("restore_root")
def test_setup_logging_level_filters(tmp_path: Path) -> None:
    """The configured level applies: INFO hides DEBUG lines."""
    path = tmp_path / "v.log"
    handle = setup_logging(LoggingConfig(level="INFO", file=str(path)))
    logging.getLogger("vedirect_async.test").debug("hidden")
    logging.getLogger("vedirect_async.test").info("shown")
    handle.close()
    text = path.read_text(encoding="utf-8")
    assert "shown" in text
    assert "hidden" not in text


def full_pipe() -> tuple[int, int]:
    """A pipe (read end, write end) whose buffer is already full: writes to it block."""
    read_end, write_end = os.pipe()
    with contextlib.suppress(OSError):
        fcntl.fcntl(write_end, 1031, 4096)  # F_SETPIPE_SZ: a small buffer, filled quickly
    os.set_blocking(write_end, False)
    with contextlib.suppress(BlockingIOError):
        while True:
            os.write(write_end, b"x" * 4096)
    os.set_blocking(write_end, True)
    return read_end, write_end


@pytest.mark.parametrize("then", ["record", "close"])
@pytest.mark.usefixtures("restore_root")
def test_a_stalled_stderr_drops_and_counts_records_and_says_so_once_it_recovers(
    monkeypatch: pytest.MonkeyPatch, then: str
) -> None:
    """stderr is a real pipe nobody reads: the queue stays bounded (it grew without bound),
    records past it are dropped and counted, and once the pipe is read again one line says
    how many were lost, before the next record (or at the end, when none follows)."""
    read_end, write_end = full_pipe()
    stream = open(write_end, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
    monkeypatch.setattr(sys, "stderr", stream)
    handle = setup_logging(LoggingConfig(level="INFO"))
    log = logging.getLogger("vedirect_async.test")
    extra = 5_000
    for n in range(QUEUE_SIZE + extra):
        log.info("record %d", n)
    assert handle.dropped >= extra - 2  # the writer took at most a record or two first
    received = bytearray()
    drained = threading.Event()  # every queued record has come out of the pipe
    reader = threading.Thread(target=read_all, args=(read_end, received, drained), daemon=True)
    reader.start()  # stderr is read again
    assert drained.wait(20)
    if then == "record":
        log.warning("after the stall")
    assert handle.close(timeout=10)
    stream.close()
    os.close(write_end)
    reader.join(10)
    os.close(read_end)
    text = received.decode("utf-8", "replace")
    notice = f"logging: {handle.dropped} records dropped: stderr or the log file did not keep up"
    assert text.count(notice) == 1, text[-500:]
    if then == "record":
        assert text.index(notice) < text.index("after the stall")
    assert text.count("record ") <= QUEUE_SIZE + 2


def iter_read(fd: int) -> Iterator[bytes]:
    while chunk := os.read(fd, 65536):
        yield chunk


def read_all(fd: int, into: bytearray, drained: threading.Event | None = None) -> None:
    for chunk in iter_read(fd):
        into.extend(chunk)
        if drained is not None and into.count(b"\n") >= QUEUE_SIZE:
            drained.set()


@pytest.mark.usefixtures("restore_root")
def test_close_gives_up_in_time_when_stderr_never_drains(monkeypatch: pytest.MonkeyPatch) -> None:
    """close(timeout) returns False within the timeout instead of blocking in write(2)."""
    read_end, write_end = full_pipe()
    stream = open(write_end, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
    monkeypatch.setattr(sys, "stderr", stream)
    handle = setup_logging(LoggingConfig(level="INFO"))
    for n in range(QUEUE_SIZE + 10):
        logging.getLogger("vedirect_async.test").info("record %d", n)
    started = time.monotonic()
    assert handle.close(timeout=0.2) is False
    assert time.monotonic() - started < 0.5
    # let the stuck writer finish so the thread ends with the test
    reader = threading.Thread(target=lambda: list(iter_read(read_end)), daemon=True)
    reader.start()
    handle._root_handler.records.put(None)
    handle._thread.join(10)
    assert not handle._thread.is_alive()
    stream.close()
    os.close(write_end)
    reader.join(10)
    os.close(read_end)


@pytest.mark.usefixtures("restore_root")
def test_log_file_in_a_missing_directory_is_one_line_at_start(tmp_path: Path) -> None:
    """It was a traceback per record; now setup_logging refuses it with a ConfigError."""
    path = tmp_path / "missing" / "vedirect.log"
    with pytest.raises(ConfigError) as info:
        setup_logging(LoggingConfig(file=str(path)))
    assert str(info.value) == (
        f"logging.file = '{path}': cannot open: No such file or directory "
        "(expected a writable file in an existing directory)"
    )
    assert not any(
        isinstance(h, logging.handlers.QueueHandler) for h in logging.getLogger().handlers
    )


def test_log_file_in_a_missing_directory_exits_2(tmp_path: Path) -> None:
    """The real process: one line naming the config file and the key, exit 2."""
    config = tmp_path / "c.toml"
    config.write_text(f'[logging]\nfile = "{tmp_path}/missing/v.log"\n', encoding="utf-8")
    done = run_entry_point("--config", str(config))
    assert done.returncode == 2
    assert done.stderr == (
        f"vedirect-async: {config}: logging.file = '{tmp_path}/missing/v.log': cannot open: "
        "No such file or directory (expected a writable file in an existing directory)\n"
    )


@pytest.mark.usefixtures("restore_root")
def test_a_log_file_failing_at_run_time_is_reported_once_not_per_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The directory vanishes under the running service: each record fails to reopen the
    file; that is reported on stderr once a minute with a count, not as a traceback each."""
    errors = io.StringIO()
    monkeypatch.setattr(sys, "stderr", errors)
    directory = tmp_path / "logs"
    directory.mkdir()
    handle = setup_logging(
        LoggingConfig(level="INFO", file=str(directory / "v.log"), max_bytes=10_000)
    )
    log = logging.getLogger("vedirect_async.test")
    log.info("before")
    shutil.rmtree(directory)
    for n in range(500):
        log.info("record %d %s", n, "x" * 100)  # past max_bytes: rotation reopens and fails
    assert handle.close(timeout=10)
    reports = [line for line in errors.getvalue().splitlines() if "log file" in line]
    assert len(reports) == 1, reports
    assert reports[0].startswith(f"vedirect-async: log file {directory / 'v.log'}: ")
    assert "Traceback" not in errors.getvalue()
