"""``hex get`` shows what a code means (issue 14: the decoded value, for a person): an enum's
name, on/off, the reasons of a bit field, next to the number the device sent."""

from __future__ import annotations

import pytest

from vedirect_async.commands import Request, describe
from vedirect_async.hexframe import Command, Flags, RegisterMessage
from vedirect_async.parser import HexRecord


def _get(register: int, value: bytes) -> str:
    record = HexRecord(RegisterMessage(Command.GET, register, Flags.NONE, value).encode()[1:-1])
    result = Request.get(register).match(record)
    assert result is not None
    return describe(result)


@pytest.mark.parametrize(
    ("register", "value", "shown"),
    [
        (0x0201, b"\x03", "0x0201 (charger_state): 3 (bulk)"),
        (0xEDA8, b"\x00", "0xEDA8 (load): 0 (off)"),
        (0xEDAB, b"\x04", "0xEDAB (load_output_control): 4 (on)"),
        (0x0207, b"\x00\x00\x00\x00", "0x0207 (off_reason): 0 (none)"),
        (0xEDF0, b"\x96\x00", "0xEDF0 (battery_max_current): 15.0 A"),  # a number: as before
    ],
)
def test_codes_are_shown_with_their_meaning(register: int, value: bytes, shown: str) -> None:
    assert _get(register, value) == shown
