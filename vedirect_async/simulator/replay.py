"""Capture replay: a recorded stream split into device updates (one per simulated second)."""

from __future__ import annotations

# -- capture replay ---------------------------------------------------------------------------

_BLOCK_END = b"\r\nChecksum\t"


def split_updates(data: bytes) -> list[list[bytes]]:
    """Split a capture into updates (seconds), each a list of pieces ending at a block end.

    A piece runs from the end of the previous block through the next checksum byte, so it
    carries whatever preceded the block (HEX records, noise). A piece whose block has a
    ``PID`` record starts a new update; the pieces after it (an H block, a split MPPT's second
    block) join it. Bytes after the last block end join the last update.
    """
    pieces: list[bytes] = []
    pos = 0
    while True:
        k = data.find(_BLOCK_END, pos)
        if k < 0 or k + len(_BLOCK_END) >= len(data):
            break
        end = k + len(_BLOCK_END) + 1
        pieces.append(data[pos:end])
        pos = end
    if not pieces:
        return []
    updates: list[list[bytes]] = []
    for piece in pieces:
        if not updates or b"\r\nPID\t" in piece:
            updates.append([piece])
        else:
            updates[-1].append(piece)
    if pos < len(data):  # a trailing partial block
        updates[-1][-1] += data[pos:]
    return updates


def split_capture(data: bytes) -> list[bytes]:
    """A capture split into one ``bytes`` per device update; joined they are ``data`` again."""
    return [b"".join(update) for update in split_updates(data)]
