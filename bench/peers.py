"""PyPI VE.Direct parsers that ``bench/parser.py`` compares against, in their own venv.

Never a project dependency: ``setup()`` creates ``build/bench-peers-venv`` on first use and
installs each peer into its own folder there (``vedirect-jmfife`` and ``vedirect`` both
install a top-level module called ``vedirect``). The benchmark then runs this file with that
venv's Python, once per peer::

    build/bench-peers-venv/bin/python bench/peers.py PEER CLEAN DAMAGED EXPECTED.json

and reads one JSON object from its stdout. Each peer is driven through its own input API,
with a fake serial port that hands out the bytes (the fake's cost is C-level ``next``, set
up before the clock starts):

- ``vedirect-jmfife`` 1.0.2: ``VEDirect.read_data_callback`` (1-byte ``ser.read()`` calls,
  its per-byte ``_input`` state machine, ``typecast`` per record).
- ``vedirect-m8`` 1.3.4: ``Vedirect.read_data_single`` in a loop (``ser.read(1)``, per-byte
  ``input_read``).
- ``vedirect`` 1.1.0: ``VEDirect._get_data`` + ``parse_pdu`` in a loop, i.e. ``refresh()``
  (``readline`` from "PID" line to "PID" line, one checksum over the lines).

After an exception a peer is restarted where it stood (the stream goes on); exceptions are
counted. This file only needs the standard library plus the peers' own dependencies.
"""

from __future__ import annotations

import functools
import importlib
import itertools
import json
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / "build" / "bench-peers-venv"
# name -> (folder under VENV/peers, pip requirement)
PEERS: dict[str, tuple[str, str]] = {
    "vedirect-jmfife": ("jmfife", "vedirect-jmfife==1.0.2"),
    "vedirect-m8": ("m8", "vedirect-m8==1.3.4"),
    "vedirect": ("vedirect", "vedirect==1.1.0"),
}
# The peers' own dependencies (from their wheel metadata).
DEPENDENCIES = ("pyserial>=3.5", "ve-utils>=2.5.3")
ROUNDS = 5

Fields = dict[str, Any]


def venv_python() -> Path:
    """The peers venv's interpreter."""
    return VENV / "bin" / "python"


def setup(log: Callable[[str], None]) -> Path:
    """Create the peers venv and install the peers (once); return its Python."""
    stamp = VENV / ".installed"
    wanted = " ".join([*DEPENDENCIES, *(spec for _, spec in PEERS.values())])
    if stamp.exists() and stamp.read_text() == wanted:
        return venv_python()
    log(f"creating {VENV} for the PyPI peers (first run only)\n")
    _quiet([sys.executable, "-m", "venv", "--clear", str(VENV)])
    pip = [str(venv_python()), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    _quiet([*pip, *DEPENDENCIES])
    for folder, spec in PEERS.values():
        _quiet([*pip, "--no-deps", "--target", str(VENV / "peers" / folder), spec])
    stamp.write_text(wanted)
    return venv_python()


def _quiet(command: list[str]) -> None:
    """Run a set-up step; its output only matters when it fails (then it is in the error)."""
    subprocess.run(command, check=True, capture_output=True)


# -- scoring (shared with bench/parser.py) ------------------------------------------------


def score(emitted: list[Fields], expected: list[tuple[Fields, bool]]) -> tuple[int, int]:
    """(corrupt blocks accepted, undamaged blocks lost).

    ``expected`` is every block of the stream in order with a "damaged" flag. Each emitted
    record must equal the next not-yet-matched undamaged block within a window (peers may
    skip blocks); a record that matches none (a damaged block, or fields of two blocks mixed
    together) counts as a corrupt block accepted.
    """
    window = 64
    matched: set[int] = set()
    corrupt = 0
    nxt = 0
    for record in emitted:
        for k in range(nxt, min(nxt + window, len(expected))):
            fields, damaged = expected[k]
            if not damaged and fields == record:
                matched.add(k)
                nxt = k + 1
                break
        else:
            corrupt += 1
    lost = sum(1 for k, (_, damaged) in enumerate(expected) if not damaged and k not in matched)
    return corrupt, lost


# -- fake ports ---------------------------------------------------------------------------


class EndOfData(Exception):  # noqa: N818 - a signal, not an error
    """Raised by the fake port when the stream is used up."""


class _End:
    """An iterator that raises EndOfData instead of StopIteration."""

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        raise EndOfData


def byte_reader(single: tuple[bytes, ...]) -> Callable[..., bytes]:
    """``read()`` / ``read(1)`` handing out one byte per call, C-level; EndOfData at the end."""
    # next(it, 1) for read(1): the default is never used because the chain raises first.
    return functools.partial(next, itertools.chain(single, _End()))


# -- drivers ------------------------------------------------------------------------------


def drive_jmfife(data: bytes, single: tuple[bytes, ...]) -> tuple[list[Fields], int]:
    """vedirect-jmfife: read_data_callback over a fake serial port."""
    serial: Any = importlib.import_module("serial")
    module = importlib.import_module("vedirect.vedirect")
    read = byte_reader(single)

    class Port:
        def __init__(self, **_: object) -> None:
            self.read = read

        def flushInput(self) -> None:  # noqa: N802 - pyserial's name
            """Nothing to flush."""

    serial.Serial = Port
    ve = module.VEDirect("fake", 60)
    records: list[Fields] = []
    errors = 0
    while True:
        try:
            ve.read_data_callback(records.append)
        except EndOfData:
            return records, errors
        except Exception:  # counting the peer's failures is the point
            errors += 1


def drive_m8(data: bytes, single: tuple[bytes, ...]) -> tuple[list[Fields], int]:
    """vedirect-m8: read_data_single in a loop over a fake (pyserial subclass) port."""
    serial: Any = importlib.import_module("serial")
    module = importlib.import_module("vedirect_m8.vedirect")
    read = byte_reader(single)

    class Port(serial.Serial):  # type: ignore[misc]
        def __init__(self) -> None:  # no port is opened
            self.is_open = True
            self.read = read

    ve = module.Vedirect(serial_conf={"serial_port": "/dev/ttyUSB0"}, auto_start=False)
    ve._com.ser = Port()  # the port m8 reads from
    records: list[Fields] = []
    errors = 0
    while True:
        try:
            records.append(dict(ve.read_data_single(timeout=3600)))
        except EndOfData:
            return records, errors
        except Exception:  # the peer's own failure, counted
            errors += 1


def drive_vedirect(data: bytes, single: tuple[bytes, ...]) -> tuple[list[Fields], int]:
    """vedirect 1.1.0: its refresh() steps (_get_data + parse_pdu) over a fake line port."""
    serial: Any = importlib.import_module("serial")
    module = importlib.import_module("vedirect")
    readline = functools.partial(next, itertools.chain(data.splitlines(keepends=True), _End()))

    class Port:
        def __init__(self, *_: object, **__: object) -> None:
            self.readline = readline

        def __enter__(self) -> Port:
            return self

        def __exit__(self, *_: object) -> None:
            return None

    serial.Serial = Port
    ve = module.VEDirect.__new__(module.VEDirect)  # __init__ would refresh() at once
    ve.device, ve.speed, ve._data = "fake", 19200, {}
    records: list[Fields] = []
    errors = 0
    while True:
        try:
            lines = ve._get_data()  # refresh() = _get_data + parse_pdu
            ve.parse_pdu(lines)
        except EndOfData:
            return records, errors
        except Exception:  # the peer's own failure, counted
            errors += 1
            continue
        records.extend(_pdu_blocks(lines))


def _pdu_blocks(lines: list[bytes]) -> list[Fields]:
    """The blocks whose fields one accepted PDU applied (the trailing PID line is block 1's)."""
    blocks: list[Fields] = [{}]
    for line in lines:
        if line.startswith(b"Checksum"):
            blocks.append({})
            continue
        key, value = line.strip().decode("utf-8").split("\t")
        blocks[-1][key] = value
    trailing = blocks.pop()  # the next update's "PID" line
    blocks[0].update(trailing)
    return blocks


def _normalise(peer: str, fields: Fields) -> Fields:
    """An expected block in the form the peer reports it."""
    if peer == "vedirect-jmfife":
        try:
            return dict(importlib.import_module("vedirect.vedirect").VEDirect.typecast(fields))
        except Exception:  # the peer's own failure, counted
            return fields
    return fields


DRIVERS = {"vedirect-jmfife": drive_jmfife, "vedirect-m8": drive_m8, "vedirect": drive_vedirect}


def run(peer: str, clean: bytes, damaged: bytes, expected: list[tuple[Fields, bool]]) -> Fields:
    """Throughput on ``clean`` (best of ROUNDS) and the damaged-stream score."""
    folder, spec = PEERS[peer]
    sys.path.insert(0, str(VENV / "peers" / folder))
    drive = DRIVERS[peer]
    clean_single = struct.unpack(f"{len(clean)}c", clean)
    best = float("inf")
    records: list[Fields] = []
    for _ in range(ROUNDS):
        start = time.process_time()
        records, errors = drive(clean, clean_single)
        best = min(best, time.process_time() - start)
    emitted, damaged_errors = drive(damaged, struct.unpack(f"{len(damaged)}c", damaged))
    corrupt, lost = score(emitted, [(_normalise(peer, f), d) for f, d in expected])
    return {
        "parser": f"{peer} {spec.split('==')[1]}",
        "seconds": best,
        "records": len(records),
        "errors": errors,
        "corrupt_accepted": corrupt,
        "undamaged_lost": lost,
        "damaged_exceptions": damaged_errors,
    }


def main(argv: list[str]) -> int:
    """``peers.py PEER CLEAN DAMAGED EXPECTED.json``: print one JSON result line."""
    peer, clean, damaged, expected = argv
    blocks = [(dict(f), bool(d)) for f, d in json.loads(Path(expected).read_text())]
    result = run(peer, Path(clean).read_bytes(), Path(damaged).read_bytes(), blocks)
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
