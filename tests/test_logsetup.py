"""Logging set-up and the rate-limited logger."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from vedirect_async.config import LoggingConfig
from vedirect_async.logsetup import RateLimitedLogger, setup_logging


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
