"""``python -m vedirect_async decode``: formats, summary, exit codes, streaming."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_captures import BVM, EXPECTED
from vedirect_async.cli import main
from vedirect_async.decode import CHUNK_SIZE, decode_stream
from vedirect_async.decoder import Decoder
from vedirect_async.parser import encode_block

ROOT = Path(__file__).resolve().parent.parent


def bmv_update(soc: bytes = b"839", v: bytes = b"12065") -> bytes:
    main_block = encode_block(
        [(b"PID", b"0x203"), (b"V", v), (b"SOC", soc), (b"TTG", b"-1"), (b"AR", b"140")]
    )
    return main_block + encode_block([(b"H1", b"-149322"), (b"H17", b"6843")])


def test_jsonl_is_the_default(captures_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """One JSON object per reading with identity, values, units and raw; summary on stderr."""
    assert main(["decode", str(captures_dir / BVM), "--device", "house"]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert len(lines) == 453
    first = json.loads(lines[0])
    assert first["device"] == "house"
    assert first["product"] == "BMV-700"
    assert first["pid"] == "0x0203"
    assert first["firmware"] == "3.08"
    assert first["values"]["voltage"] == 12.065
    assert first["units"]["voltage"] == "V"
    assert first["raw"]["V"] == "12065"
    assert first["raw"]["FW"] == "0308"
    assert "453 readings" in err
    assert "blocks_ok=906" in err
    assert "checksum_errors=0" in err
    assert len(err.splitlines()) == 1


def test_unavailable_and_infinite_in_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``---`` is null and listed under "unavailable"; TTG -1 is "infinite"; AR is a list."""
    path = tmp_path / "cap.bin"
    path.write_bytes(bmv_update(soc=b"---"))
    assert main(["decode", str(path)]) == 0
    reading = json.loads(capsys.readouterr().out)
    assert reading["values"]["soc"] is None
    assert reading["unavailable"] == ["soc"]
    assert reading["values"]["time_to_go"] == "infinite"
    assert reading["values"]["alarm_reason"] == ["low SOC", "low starter voltage", "mid voltage"]
    assert reading["raw"]["SOC"] == "---"


def test_csv_has_a_header_and_a_row_per_reading(
    captures_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """CSV: header from the first reading, one row per reading, units as in the catalogue."""
    assert main(["decode", "--format", "csv", str(captures_dir / BVM)]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 453
    assert rows[0]["product"] == "BMV-700"
    assert rows[0]["voltage"] == "12.065"
    assert rows[0]["soc"] == "83.9"
    assert rows[0]["alarm"] == "OFF"
    assert rows[0]["history_charged_energy"] == "85.27"


def test_csv_leaves_unavailable_empty(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """In CSV ``---`` is an empty cell (never 0) and infinity is "infinite"."""
    path = tmp_path / "cap.bin"
    path.write_bytes(bmv_update(soc=b"---"))
    assert main(["decode", "-f", "csv", str(path)]) == 0
    row = next(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert row["soc"] == ""
    assert row["time_to_go"] == "infinite"


def test_table_is_readable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The table shows identity and one ``name value unit`` line per field."""
    path = tmp_path / "cap.bin"
    path.write_bytes(bmv_update(soc=b"---"))
    assert main(["decode", "-f", "table", str(path)]) == 0
    out = capsys.readouterr().out
    assert "BMV-700" in out
    assert any(line.split() == ["voltage", "12.065", "V"] for line in out.splitlines())
    assert any(line.split() == ["soc", "---", "%"] for line in out.splitlines())


def test_bad_blocks_are_counted_not_fatal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Garbage and a corrupt block: exit 0, the good updates printed, the bad counted."""
    good = bmv_update()
    bad = bytearray(bmv_update(v=b"13000"))
    bad[10] ^= 1
    path = tmp_path / "cap.bin"
    path.write_bytes(b"\x00garbage" + good + bytes(bad) + good)
    assert main(["decode", str(path)]) == 0
    out, err = capsys.readouterr()
    assert len(out.splitlines()) == 2
    assert "checksum_errors=1" in err


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_capture_decodes(
    captures_dir: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    """Every capture decodes with exit 0 to its pinned number of readings."""
    assert main(["decode", str(captures_dir / name)]) == 0
    assert len(capsys.readouterr().out.splitlines()) == EXPECTED[name].readings


def test_missing_file_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unreadable input gives exit 2 and one line on stderr, nothing on stdout."""
    assert main(["decode", str(tmp_path / "nope.bin")]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert len(err.splitlines()) == 1
    assert "nope.bin" in err


def test_directory_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A directory is not a capture: exit 2 with one line."""
    assert main(["decode", str(tmp_path)]) == 2
    assert len(capsys.readouterr().err.splitlines()) == 1


def test_stdin_in_a_real_process(captures_dir: Path) -> None:
    """``decode -`` reads standard input; the real process exits 0."""
    data = (captures_dir / BVM).read_bytes()
    done = subprocess.run(
        [sys.executable, "-m", "vedirect_async", "decode", "-"],
        input=data,
        capture_output=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 453


def test_closed_pipe_ends_quietly(captures_dir: Path, tmp_path: Path) -> None:
    """``decode big.bin | head -1``: the reader going away is not an error or a traceback."""
    path = tmp_path / "big.bin"
    path.write_bytes((captures_dir / BVM).read_bytes() * 4)
    with subprocess.Popen(
        [sys.executable, "-m", "vedirect_async", "decode", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    ) as proc:
        assert proc.stdout is not None
        assert proc.stderr is not None
        assert json.loads(proc.stdout.readline())["product"] == "BMV-700"
        proc.stdout.close()
        err = proc.stderr.read()
        assert proc.wait(timeout=30) == 0
    assert b"Traceback" not in err


class _Source:
    """A long byte stream, served on demand; records how much was asked for each time."""

    def __init__(self, unit: bytes, repeat: int) -> None:
        self._unit, self._left = unit, repeat
        self.sizes: list[int] = []
        self._buffer = b""

    def read(self, size: int) -> bytes:
        self.sizes.append(size)
        while len(self._buffer) < size and self._left:
            self._buffer += self._unit
            self._left -= 1
        out, self._buffer = self._buffer[:size], self._buffer[size:]
        return out


def test_large_input_is_streamed_in_chunks() -> None:
    """Readings come out while the input is still being read, in bounded chunks."""
    unit = bmv_update()
    source = _Source(unit, repeat=(4 * CHUNK_SIZE) // len(unit) + 1)
    stream = decode_stream(source, Decoder("big"))  # type: ignore[arg-type]
    first = next(stream)
    assert first.values["voltage"] == 12.065
    assert len(source.sizes) == 1  # only the first chunk was read so far
    assert sum(1 for _ in stream) > 100
    assert max(source.sizes) == CHUNK_SIZE


async def test_live_pipe_prints_each_reading_as_it_arrives() -> None:
    """``cat /dev/ttyUSB0 | decode -``: a reading is printed when its update arrives, without
    waiting for a full 64 KiB chunk or the end of input."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "vedirect_async",
        "decode",
        "-",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"},
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    try:
        for volts in (b"12001", b"12002"):
            proc.stdin.write(bmv_update(v=volts))
            await proc.stdin.drain()
            line = await asyncio.wait_for(proc.stdout.readline(), timeout=20)
            assert json.loads(line)["raw"]["V"] == volts.decode()
        proc.stdin.close()
        assert await asyncio.wait_for(proc.wait(), timeout=20) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
