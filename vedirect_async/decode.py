"""``python -m vedirect_async decode FILE|-``: decode a raw VE.Direct capture.

The input is what ``cat /dev/ttyUSB0 > capture.bin`` records. It is read in 64 KiB chunks
through the same :class:`~vedirect_async.decoder.Decoder` the service uses, so memory stays
constant whatever the file size, and the readings are exactly those the service would have
produced.

Output (stdout), one reading at a time as it completes:

- ``jsonl`` (default): one JSON object per line, :meth:`Reading.as_json`: device identity,
  time, ``values`` (decoded, in catalogue units), ``units``, ``unavailable`` (names whose
  value was ``---``; their value is ``null``), ``raw`` (label -> value as sent). TTG's
  infinity is the string ``"infinite"``.
- ``csv``: a header from the first reading (time, device, product, then its field names
  in wire order: product_id, serial_number, firmware...), one row per reading; ``---`` is
  an empty cell; a field the first reading did not have is left out (counted in the
  summary).
- ``table``: a block of ``name value unit`` lines per reading, for people (``---`` shown).

Values are shown as every output shows them (:mod:`vedirect_async.present`): numbers at the
device's resolution (``12.800`` V), ``ON``/``OFF``, bitmask reasons joined with ``, `` (``none``
when no bit is set), ``infinite``.

Reading from ``-`` shows each reading as soon as it is complete (``cat /dev/ttyUSB0 |``
works live). A summary of the parser and assembler counters goes to stderr. Exit 0
whenever the input could be read (bad blocks are counted, not fatal); exit 2 with a
one-line message if not.
The time of a reading is the wall clock when it was decoded (a capture carries no time).

``--hex`` also shows every verified HEX record, in stream order among the readings, with its
decoded value (:func:`hex_json`): in ``jsonl`` one object per record (``hex``, ``command``,
``register``, ``name``, ``flags``, ``value``, ``unit``; a history day as its fields), in
``table`` one ``HEX`` line per record. It does not apply to ``csv``.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import BinaryIO, TextIO

from .daily import HistoryDay, HistoryTotal, daily_record
from .decoder import Decoder
from .errors import HexError
from .hexframe import HexFrame, RegisterMessage, decode_message
from .parser import HexRecord
from .present import State, present
from .reading import Reading
from .registers import REGISTERS, catalogue_value

__all__ = ["CHUNK_SIZE", "cli_decode", "decode_events", "decode_stream", "hex_json"]

CHUNK_SIZE = 64 * 1024
_CSV_FIRST = ("time", "device", "product")  # then the field names (pid, serial... among them)


def decode_stream(
    source: BinaryIO, decoder: Decoder, chunk_size: int = CHUNK_SIZE
) -> Iterator[Reading]:
    """Yield the readings of a byte stream as they complete; reads ``chunk_size`` at a time.

    ``OSError`` from ``source`` propagates (the caller decides what an unreadable input means).
    """
    for event in decode_events(source, decoder, chunk_size):
        if type(event) is Reading:
            yield event


def decode_events(
    source: BinaryIO, decoder: Decoder, chunk_size: int = CHUNK_SIZE
) -> Iterator[Reading | HexRecord]:
    """:func:`decode_stream` with the verified HEX records too, in stream order."""
    # read1 returns what is available (a live pipe: `cat /dev/ttyUSB0 | decode -` prints each
    # reading as it arrives, not every 64 KiB); plain read for sources without it.
    read = getattr(source, "read1", source.read)
    while chunk := read(chunk_size):
        for event in decoder.feed(chunk, time.monotonic(), datetime.now(UTC)):
            if type(event) is Reading or type(event) is HexRecord:
                yield event
    last = decoder.flush(time.monotonic(), datetime.now(UTC))
    if last is not None:
        yield last


def hex_json(record: HexRecord) -> dict[str, object]:
    """A HEX record and what it says: register, name, flags, value (shown), unit."""
    out: dict[str, object] = {"hex": ":" + record.digits.decode("ascii")}
    try:
        message = decode_message(HexFrame.from_record(record))
    except HexError as exc:
        out["error"] = str(exc)
        return out
    if not isinstance(message, RegisterMessage):
        out["command"] = type(message).__name__
        return out
    reg = REGISTERS.get(message.register)
    out["command"] = message.command.name.lower()
    out["register"] = f"0x{message.register:04X}"
    out["name"] = reg.name if reg is not None else out["register"]
    out["flags"] = int(message.flags)
    try:
        decoded = message.decoded().value
    except HexError as exc:  # a value of the wrong size for its register
        out["error"] = str(exc)
        return out
    if isinstance(decoded, HistoryDay):
        out["value"] = daily_record(message.register, decoded).as_json()
    elif isinstance(decoded, HistoryTotal):
        out["value"] = _total_json(decoded)
    elif reg is not None and message.ok:
        out["value"] = present(reg.name, catalogue_value(reg, decoded)).json
    else:
        out["value"] = decoded
    out["unit"] = reg.unit if reg is not None else ""
    return out


def _total_json(total: HistoryTotal) -> dict[str, object]:
    """The fields of a history total as JSON values (tuples as lists, the raw tail left out)."""
    items = ((item.name, getattr(total, item.name)) for item in dataclasses.fields(total))
    return {
        name: list(value) if isinstance(value, tuple) else value
        for name, value in items
        if not isinstance(value, bytes)
    }


def _identity(reading: Reading) -> dict[str, str]:
    return {
        "time": reading.time.isoformat(),
        "device": reading.device,
        "product": reading.product or "",
        "pid": "" if reading.pid is None else f"0x{reading.pid:04X}",
        "serial": reading.serial or "",
        "firmware": reading.firmware or "",
    }


class _CsvWriter:
    """CSV rows with the header taken from the first reading."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._columns: list[str] | None = None
        self.dropped_fields = 0

    def __call__(self, reading: Reading | HexRecord) -> None:
        if isinstance(reading, HexRecord):
            return  # not a row (decode refuses --hex with csv)
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        if self._columns is None:
            self._columns = [*_CSV_FIRST, *(n for n in reading.values if n not in _CSV_FIRST)]
            writer.writerow(self._columns)
        row = _identity(reading)
        row.update((name, present(name, value).text) for name, value in reading.values.items())
        self.dropped_fields += sum(1 for name in reading.values if name not in self._columns)
        writer.writerow(row.get(column, "") for column in self._columns)
        self._out.write(buffer.getvalue())


def _write_jsonl(out: TextIO, device: str) -> Callable[[Reading | HexRecord], None]:
    def write(event: Reading | HexRecord) -> None:
        data = (
            event.as_json() if isinstance(event, Reading) else {"device": device, **hex_json(event)}
        )
        out.write(json.dumps(data, ensure_ascii=False) + "\n")

    return write


def _hex_line(record: HexRecord) -> str:
    data = hex_json(record)
    parts = [f"HEX {data['hex']}", str(data.get("command", ""))]
    if "register" in data:
        parts.append(f"{data['register']} {data['name']}")
    if data.get("flags"):
        parts.append(f"flags 0x{data['flags']:02X}")
    value = data.get("value")
    if isinstance(value, dict):
        parts.append(" ".join(f"{k}={v}" for k, v in value.items()))
    elif "value" in data:
        parts.append(f"{'n/a' if value is None else value} {data.get('unit', '')}".rstrip())
    if "error" in data:
        parts.append(f"error: {data['error']}")
    return "  ".join(parts) + "\n"


def _write_table(out: TextIO) -> Callable[[Reading | HexRecord], None]:
    def write(reading: Reading | HexRecord) -> None:
        if isinstance(reading, HexRecord):
            out.write(_hex_line(reading))
            return
        ident = _identity(reading)
        lines = [
            f"{ident['time']}  {reading.device}  {ident['product'] or 'unknown product'}"
            f"  pid {ident['pid'] or '-'}  fw {ident['firmware'] or '-'}"
            f"  serial {ident['serial'] or '-'}"
        ]
        for name, value in reading.values.items():
            shown = present(name, value)
            text = "---" if shown.state is State.UNAVAILABLE else shown.text
            lines.append(f"  {name:<32} {text} {shown.unit}".rstrip())
        out.write("\n".join(lines) + "\n\n")

    return write


def _summary(decoder: Decoder, extra: dict[str, int]) -> str:
    def fmt(counters: dict[str, int]) -> str:
        return " ".join(f"{name}={count}" for name, count in counters.items())

    text = (
        f"decode: {decoder.stats.readings} readings; "
        f"parser: {fmt(decoder.parser_stats.as_dict())}; "
        f"assembler: {fmt(decoder.stats.as_dict())}"
    )
    if extra:
        text += f"; {fmt(extra)}"
    if decoder.unknown_label_names:
        text += f"; unknown labels: {', '.join(decoder.unknown_label_names)}"
    return text + "\n"


def cli_decode(args: argparse.Namespace) -> int:
    """Entry point of ``decode``: returns 0 when the input was read, 2 when it could not be."""
    path: str = args.file
    fmt: str = getattr(args, "format", "jsonl")
    device: str = getattr(args, "device", "device")
    with_hex: bool = getattr(args, "hex", False)
    if with_hex and fmt == "csv":
        sys.stderr.write("decode: --hex shows HEX records in jsonl or table, not in csv\n")
        return 2
    decoder = Decoder(device)
    out = sys.stdout
    csv_writer = _CsvWriter(out) if fmt == "csv" else None
    write: Callable[[Reading | HexRecord], None] = csv_writer or (
        _write_table(out) if fmt == "table" else _write_jsonl(out, device)
    )
    try:
        source: BinaryIO = sys.stdin.buffer if path == "-" else open(path, "rb")  # noqa: SIM115
    except OSError as exc:
        sys.stderr.write(f"decode: cannot read {path}: {exc.strerror or exc}\n")
        return 2
    try:
        live = path == "-"  # maybe a live device: show each reading as soon as it is complete
        events = decode_events(source, decoder) if with_hex else decode_stream(source, decoder)
        for reading in events:
            write(reading)
            if live:
                out.flush()
        out.flush()
    except OSError as exc:
        if isinstance(exc, BrokenPipeError):  # e.g. `decode x | head`: stop quietly
            _silence_stdout()
            return 0
        sys.stderr.write(f"decode: cannot read {path}: {exc.strerror or exc}\n")
        return 2
    finally:
        if source is not sys.stdin.buffer:
            source.close()
    extra = {"csv_fields_not_in_header": csv_writer.dropped_fields} if csv_writer else {}
    sys.stderr.write(_summary(decoder, extra))
    return 0


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout without a file descriptor (tests)
        pass
    finally:
        os.close(devnull)
