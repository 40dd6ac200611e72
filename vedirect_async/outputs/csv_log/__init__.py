"""CSV log output: one row per reading (``interval = 0``) or per interval, whole lines only.

The default file is the old script's ``vedirect_data.csv`` with its columns and units
(``Time,Volts,Amps,AHr,SOC`` = BMV ``V``, ``I``, ``CE``, ``SOC`` in V, A, Ah and %).

Decisions (the README's "CSV log" part says the same for users):

- **Schedule.** ``interval = 0``: a FIFO subscription, one row per reading (a full queue
  drops the oldest readings, counted as ``readings_dropped``). ``interval > 0``: a coalescing
  subscription (newest reading per device) and one row per device per tick, ticks on an
  absolute monotonic schedule (start + k * interval, missed ticks skipped, never caught up).
  A device with no new reading since the last tick gets no row: a gap in the log means the
  device was silent, never repeated stale values.
- **Time** is the reading's own timestamp, ISO 8601 to the second: local time with its UTC
  offset (``2026-11-25T17:39:32+01:00``, unambiguous across DST) or UTC (``...Z``).
- **Values** are in the catalogue unit, written at the device's resolution (V with 3
  decimals, SOC with 1...); UNAVAILABLE (``---``) and absent fields are empty cells; ON/OFF
  as ``ON``/``OFF``; bitmask reasons joined with ``|``; TTG's infinity as ``inf``.
- **Several devices**: one file per device (each file has one header and one device's
  columns). ``{device}`` in ``path`` names the files; without it a single device writes
  ``path`` itself and several devices write ``<stem>_<device><suffix>``.
- **Whole lines only.** The file is opened unbuffered in append mode and each row is one
  ``os.write`` of a complete line in a worker thread (``asyncio.to_thread``), so a
  cancellation or SIGTERM never splits a line (the write completes in its thread). A short
  write or an error (disk full) truncates the file back to its last complete line. On
  (re)open a partial last line left by a power cut is cut off.
- **Header once**: a new or empty file gets the header. An existing file whose header
  differs (columns changed) is renamed aside like a rotated file and a new file started,
  never mixed. Every row the path is checked to still be the open file (deleted, moved,
  directory removed: reopened, or a failure if that is impossible).
- **Failures** go through the shared delivery scaffold, one failure episode per file: logged
  once at WARNING (repeats at DEBUG, recovery at INFO with the episode's length), counted by
  cause (``disk_full``, ``permission_denied``, ``read_only``, ``missing_directory``,
  ``timeouts``, ``io_errors``), retried with the one jittered backoff; rows wait in a bounded
  queue meanwhile. Disk full, a missing directory or a hung disk show as ``degraded`` (rows
  only wait) and ``failed`` once rows are lost; a file the service may not write at all
  (permission denied, read-only filesystem) is ``failed`` at once, so ``/health`` answers 503
  with that one line. Directories are never created: a missing one is usually an unmounted
  disk.
- **No aiofiles.** Each file has exactly one writer (its device's target in this output), so
  plain ``os`` calls in ``asyncio.to_thread`` do all aiofiles did here, with one dependency
  less (measured: the same ~50-100 us per row either way; docs/csv.md).
- **Rotation** (``daily`` / ``size``) renames the full file to
  ``<stem>.<YYYY-MM-DD>[.N]<suffix>`` (the day of its last row) and starts a new one; old
  data is never rewritten (SD cards). ``retention`` rotated files are kept per device.
"""

from __future__ import annotations

from ...config import Config, Fail
from ...csv_columns import ColumnError, CsvConfig, parse_columns
from ..base import OutputSpec
from .file import CsvFile
from .output import CsvOutput, classify

__all__ = ["SPEC", "CsvFile", "CsvOutput", "classify", "csv_output", "validate"]


def validate(section: CsvConfig, config: Config, fail: Fail) -> None:
    """``columns`` must name catalogue fields and ``[[device]]`` names (with the line)."""
    try:
        parse_columns(section.columns, [dev.name for dev in config.device])
    except ColumnError as exc:
        fail(f"columns[{exc.index}]", exc.spec, exc.expected)


def csv_output(config: Config) -> CsvOutput | None:
    """The registry factory: the CSV output, or None when ``[csv] enabled = false``."""
    section = config.section("csv", CsvConfig)
    if not section.enabled:
        return None
    return CsvOutput(section, [device.name for device in config.device])


SPEC = OutputSpec("csv", CsvConfig, csv_output, validate)
