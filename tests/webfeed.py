"""Test helper for the HTTP endpoint: the real pipeline feeding a hub, one device-second a step.

Simulator bytes -> Decoder -> Hub.publish, with the device state updated the way
the reader does it (readings, last_reading, parser stats), and time under the test's control.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from vedirect_async.csv_columns import format_time, format_value
from vedirect_async.decoder import Decoder
from vedirect_async.hub import Hub, ReaderState
from vedirect_async.reading import Reading
from vedirect_async.settings import Config, load_config
from vedirect_async.simulator import SimulatedDevice


class FakeClock:
    """A monotonic clock the test advances by hand."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Feed:
    """One simulated device publishing into ``hub``; ``step()`` is one second of its output."""

    def __init__(
        self,
        hub: Hub,
        device: str = "bmv",
        kind: str = "bmv712",
        *,
        clock: Callable[[], float],
        wall: Callable[[], datetime] | None = None,
        seed: int = 7,
        sim: SimulatedDevice | None = None,
    ) -> None:
        self.hub = hub
        self.sim = sim or SimulatedDevice(kind, seed=seed)
        self.decoder = Decoder(device)
        self.clock = clock
        self.wall = wall or (lambda: datetime.now(UTC))
        self.state = hub.device(device, f"simulator:{kind}")
        self.state.parser = self.decoder.parser_stats
        self.published: list[Reading] = []

    def step(self) -> list[Reading]:
        """Feed one simulated second; returns the readings published."""
        out: list[Reading] = []
        mono, wall = self.clock(), self.wall()
        self.state.last_byte = mono
        for reading in self.decoder.feed(self.sim.next_second(), mono, wall):
            if isinstance(reading, Reading):
                self.state.readings += 1
                self.state.last_reading = mono
                self.state.last_reading_wall = wall.timestamp()
                self.state.state = ReaderState.READING
                self.hub.publish(reading)
                out.append(reading)
        self.published.extend(out)
        return out

    def until_reading(self, limit: int = 5) -> Reading:
        """Step until at least one reading is published (a BMV update spans two blocks)."""
        for _ in range(limit):
            readings = self.step()
            if readings:
                return readings[-1]
        raise AssertionError(f"no reading after {limit} simulated seconds")


# (header, field, decimals) of the CSV output's default columns after Time
LEGACY_COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("Volts", "voltage", 3),
    ("Amps", "current", 3),
    ("AHr", "consumed_ah", 3),
    ("SOC", "soc", 1),
)


def write_csv_history(
    path: Path,
    sim: SimulatedDevice,
    hours: float,
    interval: int = 30,
    device: str = "bmv",
    columns: tuple[tuple[str, str, int], ...] = LEGACY_COLUMNS,
) -> int:
    """Run ``sim`` for ``hours`` and log a row every ``interval`` s, as the CSV output does.

    Rows are stamped so the last one is now (the simulator starts ``hours`` ago). Returns the
    number of rows. Only the logged seconds (and the two before each) are parsed, for speed.
    """
    decoder = Decoder(device)
    seconds = int(hours * 3600)
    end = datetime.now(UTC)
    rows = [",".join(["Time", *(header for header, _, _ in columns)])]
    for k in range(seconds):
        data = sim.next_second()
        phase = (seconds - 1 - k) % interval
        if phase > 2:  # the two seconds before a row keep the assembler in step
            continue
        wall = end - timedelta(seconds=seconds - 1 - k)
        for r in decoder.feed(data, float(k), wall):
            if isinstance(r, Reading) and phase == 0:
                cells = [format_value(r.values.get(f), d) for _, f, d in columns]
                rows.append(",".join([format_time(wall, utc=False), *cells]))
    path.write_text("\n".join(rows) + "\n")
    return len(rows) - 1


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def make_config(
    tmp_path: Path, extra: str = "", http: str = "", port: int = 8080, csv: str = ""
) -> Config:
    """A config with one simulated BMV, the CSV in ``tmp_path``, ``http``/``csv`` keys added."""
    path = tmp_path / "config.toml"
    path.write_text(
        f'[[device]]\nname = "bmv"\nport = "simulator:bmv712"\n'
        f'[csv]\npath = "{tmp_path / "vedirect_data.csv"}"\ninterval = 30\n{csv}\n'
        f'[http]\nhost = "127.0.0.1"\nport = {port}\n{http}\n{extra}\n'
    )
    return load_config(path, environ={})


def minutes_ago(minutes: float) -> datetime:
    return datetime.now(UTC) - timedelta(minutes=minutes)
