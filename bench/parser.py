"""Parser throughput and robustness, against the PyPI peers in the same run.

Input: ``karioja-vedirect__bvm702.dump`` (a real BMV-702 capture, read in place from
``../shared/captures``), cut after its last complete block and repeated to >= 20 MB.

- This project's parser, best of 5: fed whole and in 4 KiB chunks (MB/s, blocks/s), and with
  the block assembler behind it (readings/s, a reading = one merged update); then the time to
  decode one device-day of BMV data (86,400 updates, ~23 MB) through parser + assembler.
- The PyPI peers ``vedirect-jmfife`` 1.0.2, ``vedirect-m8`` 1.3.4 and ``vedirect`` 1.1.0,
  installed into their own venv (``build/bench-peers-venv``, created on first use; see
  ``bench/peers.py``), each through its own input API, best of 5 on the first ``--peer-mb``
  MB of the same stream (the per-byte peers need ~20 s per pass over 20 MB).
- Robustness: the capture once, with one byte damaged in 5 % of its blocks (seeded): per
  parser, corrupt blocks accepted and undamaged blocks lost.

Usage: python bench/parser.py [--captures DIR] [--peer-mb N] [--no-peers]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.peers import PEERS, score, setup  # noqa: E402
from vedirect_async.decoder import Decoder  # noqa: E402
from vedirect_async.parser import Parser, TextBlock  # noqa: E402
from vedirect_async.reading import Reading  # noqa: E402

CAPTURE = "karioja-vedirect__bvm702.dump"
TARGET_BYTES = 20_000_000
DAY_UPDATES = 86_400  # one BMV update (two blocks) per second
ROUNDS = 5
CHUNK = 4096
LINE_BYTES_PER_S = 19200 / 10  # VE.Direct: 19200 baud, 8N1
DAMAGE_SHARE = 0.05
SEED = 20260525
WALL = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def out(text: str) -> None:
    """Print a line (benchmarks print; the service never does)."""
    sys.stdout.write(text)
    sys.stdout.flush()


def load(captures: Path) -> bytes:
    """The capture up to the end of its last complete block (it ends mid-block)."""
    data = (captures / CAPTURE).read_bytes()
    return data[: data.rfind(b"\r\nChecksum\t") + 12]


def best_of(rounds: int, run: Callable[[], int]) -> tuple[float, int]:
    """Best CPU time of ``rounds`` runs, and the count the last run returned.

    CPU time of this process, not wall time: the machine is shared (2 cores), and the peers
    are timed the same way in their own processes, so the ratios hold under load.
    """
    best = float("inf")
    count = 0
    for _ in range(rounds):
        start = time.process_time()
        count = run()
        best = min(best, time.process_time() - start)
    return best, count


def parse_whole(data: bytes) -> int:
    """Blocks from feeding ``data`` in one call."""
    parser = Parser()
    parser.feed(data)
    return parser.stats.blocks_ok


def parse_chunks(data: bytes) -> int:
    """Blocks from feeding ``data`` in CHUNK-byte reads (what a serial reader does)."""
    parser = Parser()
    feed = parser.feed
    for i in range(0, len(data), CHUNK):
        feed(data[i : i + CHUNK])
    return parser.stats.blocks_ok


def decode(data: bytes) -> int:
    """Readings from the Decoder (parser + assembler) over ``data`` in CHUNK-byte reads."""
    decoder = Decoder("bench")
    feed = decoder.feed
    readings = 0
    for i in range(0, len(data), CHUNK):
        mono = i / LINE_BYTES_PER_S  # when these bytes would have arrived
        readings += sum(type(event) is Reading for event in feed(data[i : i + CHUNK], mono, WALL))
    readings += decoder.flush(len(data) / LINE_BYTES_PER_S, WALL) is not None
    return readings


def fields_of(block: TextBlock) -> dict[str, str]:
    """A block's records as text, the form the peers report them in."""
    return {label.decode("latin-1"): value.decode("latin-1") for label, value in block.fields}


def damage(capture: bytes) -> tuple[bytes, list[tuple[dict[str, str], bool]]]:
    """One byte changed in DAMAGE_SHARE of the blocks (seeded); every block with its flag."""
    blocks = [e for e in Parser().feed(capture) if isinstance(e, TextBlock)]
    rng = random.Random(SEED)
    hit = set(rng.sample(range(len(blocks)), round(len(blocks) * DAMAGE_SHARE)))
    parts = []
    for k, block in enumerate(blocks):
        raw = bytearray(block.raw)
        if k in hit:
            at = rng.randrange(len(raw))
            raw[at] = rng.choice([b for b in range(256) if b != raw[at]])
        parts.append(bytes(raw))
    expected = [(fields_of(block), k in hit) for k, block in enumerate(blocks)]
    return b"".join(parts), expected


def run_peers(
    clean: bytes, damaged: bytes, expected: list[tuple[dict[str, str], bool]]
) -> list[dict[str, object]]:
    """Each PyPI peer in the peers venv, one subprocess each; a failed peer is reported."""
    try:
        python = setup(out)
    except (OSError, subprocess.CalledProcessError) as exc:
        out(f"peers skipped: could not create {ROOT / 'build' / 'bench-peers-venv'}: {exc}\n")
        return []
    results: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory() as tmp:
        paths = [Path(tmp) / name for name in ("clean.bin", "damaged.bin", "expected.json")]
        paths[0].write_bytes(clean)
        paths[1].write_bytes(damaged)
        paths[2].write_text(json.dumps(expected))
        for peer in PEERS:
            command = [str(python), str(ROOT / "bench" / "peers.py"), peer, *map(str, paths)]
            try:
                done = subprocess.run(
                    command, capture_output=True, text=True, timeout=600, check=True
                )
                results.append(json.loads(done.stdout.splitlines()[-1]))
            except (subprocess.SubprocessError, ValueError, IndexError) as exc:
                out(f"peer {peer} failed: {exc}\n")
    return results


def main() -> int:
    """Run everything and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--captures", type=Path, default=ROOT.parent / "shared" / "captures")
    parser.add_argument("--peer-mb", type=float, default=2.0, help="peer input size (MB)")
    parser.add_argument("--no-peers", action="store_true", help="only this project's parser")
    args = parser.parse_args()
    if not (args.captures / CAPTURE).is_file():
        out(f"capture not found: {args.captures / CAPTURE}; nothing to measure\n")
        return 0

    capture = load(args.captures)
    clean = capture * (TARGET_BYTES // len(capture) + 1)
    updates = len(Parser().feed(capture)) // 2
    day = capture * -(-DAY_UPDATES // updates)  # whole copies, at least one day
    mb = len(clean) / 1e6
    out(
        f"# bench/parser.py  {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC  "
        f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"load {os.getloadavg()[0]:.1f}\n"
        f"# input: {CAPTURE} ({len(capture)} bytes, complete blocks) x "
        f"{len(clean) // len(capture)} = {mb:.1f} MB; best of {ROUNDS}, CPU time\n"
    )

    whole, blocks = best_of(ROUNDS, lambda: parse_whole(clean))
    chunked, _ = best_of(ROUNDS, lambda: parse_chunks(clean))
    with_readings, readings = best_of(ROUNDS, lambda: decode(clean))
    day_time, day_readings = best_of(3, lambda: decode(day))
    out(
        f"vedirect_async, fed whole      : {mb / whole:6.1f} MB/s  {blocks / whole:9.0f} blocks/s\n"
        f"vedirect_async, {CHUNK} B chunks  : {mb / chunked:6.1f} MB/s  "
        f"{blocks / chunked:9.0f} blocks/s\n"
        f"  + assembler (readings)       : {mb / with_readings:6.1f} MB/s  "
        f"{readings / with_readings:9.0f} readings/s ({readings} readings)\n"
        f"one BMV device-day ({len(day) / 1e6:.1f} MB, {day_readings} readings): "
        f"{day_time:.2f} s parser + assembler\n\n"
    )

    damaged, expected = damage(capture)
    events = Parser().feed(damaged)
    ours = score([fields_of(e) for e in events if isinstance(e, TextBlock)], expected)
    n_damaged = sum(d for _, d in expected)
    rows: list[tuple[str, float, float, int, int, str]] = [
        ("vedirect_async (4 KiB chunks)", mb / chunked, blocks / chunked, *ours, "")
    ]
    if not args.no_peers:
        peer_bytes = clean[: int(args.peer_mb * 1e6)]
        peer_bytes = peer_bytes[: peer_bytes.rfind(b"\r\nChecksum\t") + 12]
        before, _ = best_of(ROUNDS, lambda: parse_chunks(peer_bytes))
        results = run_peers(peer_bytes, damaged, expected)
        after, same_blocks = best_of(ROUNDS, lambda: parse_chunks(peer_bytes))
        same = min(before, after)
        peer_mb = len(peer_bytes) / 1e6
        rows.append(
            (
                f"vedirect_async, same {peer_mb:.0f} MB",
                peer_mb / same,
                same_blocks / same,
                *ours,
                "",
            )
        )
        for result in results:
            seconds = float(str(result["seconds"]))
            note = f"{result['errors']} exceptions" if result["errors"] else ""
            if result["damaged_exceptions"]:
                note += f"; {result['damaged_exceptions']} exceptions on the damaged stream"
            rows.append(
                (
                    str(result["parser"]),
                    len(peer_bytes) / 1e6 / seconds,
                    int(str(result["records"])) / seconds,
                    int(str(result["corrupt_accepted"])),
                    int(str(result["undamaged_lost"])),
                    note.strip("; "),
                )
            )
    out(
        f"damaged stream: {len(expected)} blocks, {n_damaged} with one byte damaged (seed {SEED})\n"
        f"{'parser':32} {'MB/s':>6} {'records/s':>10} {'ours is':>8} "
        f"{'corrupt accepted':>17} {'undamaged lost':>15}\n"
    )
    base = rows[1][1] if len(rows) > 1 else rows[0][1]  # ours on the peers' input
    for name, rate, per_s, corrupt, lost, note in rows:
        ratio = base / rate
        out(
            f"{name:32} {rate:6.1f} {per_s:10.0f} {ratio:7.1f}x {corrupt:17d} {lost:15d}"
            f"{'  (' + note + ')' if note else ''}\n"
        )
    if len(rows) > 1:
        out(
            f"\npeers timed on the first {args.peer_mb:g} MB of the same stream; "
            "records = what each peer emits (blocks; PDUs split into blocks for vedirect)\n"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
