"""Issue 14 bound: register polling never costs the hub a text reading. Blocks stream while a
register is polled every 10 ms, answered 20 ms late or inside the next block; every block
becomes a reading, in order (the voltage counts up by one millivolt per block)."""

from __future__ import annotations

import pytest

from tests.test_hex_session import Rig, mppt_block, rig_factory  # noqa: F401 (the fixture)


@pytest.mark.parametrize("mode", ["slow", "inside"])  # answers between blocks / inside them
async def test_polling_leaves_no_gap_in_the_readings(
    rig_factory: object,  # noqa: F811
    mode: str,
) -> None:
    assert callable(rig_factory)
    rig: Rig = await rig_factory(
        mode, registers=["0xEDDB"], interval=0.01, delay=0.02, block=mppt_block
    )
    first = await rig.reading()
    previous = round(float(str(first.values["voltage"])) * 1000)
    polls_before = len(rig.peer.commands(b":7DBED"))
    for _ in range(100):
        reading = await rig.reading()
        millivolts = round(float(str(reading.values["voltage"])) * 1000)
        assert (millivolts - 12000) % 1000 == (previous - 12000 + 1) % 1000, "a block was lost"
        previous = millivolts
    assert len(rig.peer.commands(b":7DBED")) - polls_before >= 5  # polled all along
    assert rig.session.state.parser.checksum_errors == 0
