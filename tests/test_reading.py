"""The block assembler: which blocks make one reading, and when it is emitted."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import pickle
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vedirect_async.fields import text_of
from vedirect_async.parser import ErrorEvent, ErrorKind, Event, HexRecord, TextBlock, encode_block
from vedirect_async.reading import UNAVAILABLE, Assembler, Reading, json_value

WALL = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def block(*pairs: tuple[str, str]) -> TextBlock:
    """A verified block as the parser would return it."""
    return TextBlock(encode_block([(k.encode(), v.encode()) for k, v in pairs]))


def bmv_main(v: int = 12065, soc: str = "839") -> TextBlock:
    return block(
        ("PID", "0x203"),
        ("V", str(v)),
        ("I", "-7625"),
        ("CE", "-65473"),
        ("SOC", soc),
        ("TTG", "-1"),
        ("Alarm", "OFF"),
        ("AR", "0"),
        ("BMV", "700"),
        ("FW", "0308"),
    )


def bmv_history(h1: int = -149322) -> TextBlock:
    return block(("H1", str(h1)), ("H2", "-82854"), ("H17", "6843"), ("H18", "8527"))


def mppt(v: int = 13000, ser: str | None = "HQ1", pid: str = "0xA053") -> TextBlock:
    pairs = [("PID", pid), ("FW", "156")]
    if ser is not None:
        pairs.append(("SER#", ser))
    pairs += [("V", str(v)), ("I", "300"), ("CS", "3"), ("H20", "77"), ("HSDS", "12")]
    return block(*pairs)


def feed_all(asm: Assembler, blocks: list[TextBlock], step: float = 0.5) -> list[Reading | None]:
    """Feed blocks 0.5 s apart (a BMV sends two blocks a second); results per block."""
    return [asm.feed(b, WALL, i * step) for i, b in enumerate(blocks)]


def test_bmv_update_is_merged_and_emitted_on_its_second_block() -> None:
    """Main block + H block give one reading, emitted on the H block, even the very first time."""
    asm = Assembler("bmv")
    first = asm.feed(bmv_main(), WALL, 0.0)
    assert first is None
    reading = asm.feed(bmv_history(), WALL, 0.5)
    assert reading is not None
    assert reading.device == "bmv"
    assert reading.monotonic == 0.5
    assert reading.time == WALL
    assert reading.values["voltage"] == 12.065
    assert reading.values["soc"] == 83.9
    assert reading.values["time_to_go"] == math.inf
    assert reading.values["history_deepest_discharge"] == -149.322
    assert reading.values["history_charged_energy"] == 85.27
    assert [label for label, _ in reading.raw] == [
        *("PID", "V", "I", "CE", "SOC", "TTG", "Alarm", "AR", "BMV", "FW"),
        *("H1", "H2", "H17", "H18"),
    ]
    assert dict(reading.raw)["PID"] == "0x203"  # exactly as sent
    assert (reading.pid, reading.product, reading.firmware, reading.serial) == (
        0x0203,
        "BMV-700",
        "3.08",
        None,
    )


def test_steady_bmv_stream_emits_on_every_second_block() -> None:
    """After learning 2 blocks per update, every H block completes an update; no block is held."""
    asm = Assembler("bmv")
    blocks = [b for i in range(5) for b in (bmv_main(12000 + i), bmv_history())]
    results = feed_all(asm, blocks)
    assert [r is not None for r in results] == [False, True] * 5
    assert [r.values["voltage"] for r in results if r] == [12.0, 12.001, 12.002, 12.003, 12.004]
    assert asm.blocks_per_update == 2
    assert asm.stats.readings == 5


def test_single_block_device_emits_every_block_at_once() -> None:
    """An MPPT sending one block per update gets a reading per block, the first one included."""
    asm = Assembler("mppt")
    results = feed_all(asm, [mppt(13000 + i) for i in range(4)], step=1.0)
    assert all(r is not None for r in results)
    assert [r.values["voltage"] for r in results if r] == [13.0, 13.001, 13.002, 13.003]
    assert asm.blocks_per_update == 1


def test_mppt_split_update_emits_on_the_err_block() -> None:
    """A 150/70 rev3 (PID block, then ERR block with HSDS) is merged and emitted on block two."""
    asm = Assembler("mppt")
    head = block(("PID", "0xA06C"), ("FWE", "316FF"), ("SER#", "HQ2247EP3FN"), ("V", "52700"))
    tail = block(("ERR", "0"), ("LOAD", "ON"), ("H19", "1158"), ("HSDS", "2"))
    results = feed_all(asm, [head, tail] * 3)
    assert [r is not None for r in results] == [False, True] * 3
    reading = results[1]
    assert reading is not None
    assert reading.values["error"] == "no error"
    assert reading.values["load"] is True
    assert reading.firmware == "3.16"
    assert reading.serial == "HQ2247EP3FN"
    assert asm.blocks_per_update == 2


def test_lost_history_block_drops_that_update_only() -> None:
    """When the H block is lost (checksum), the lone main block is not emitted; the rest are."""
    asm = Assembler("bmv")
    blocks = [bmv_main(1000), bmv_history(), bmv_main(1500), bmv_history()]
    blocks += [bmv_main(2000), bmv_main(3000), bmv_history()]
    results = feed_all(asm, blocks)
    assert [r.values["voltage"] for r in results if r] == [1.0, 1.5, 3.0]
    assert asm.stats.incomplete == 1
    assert asm.blocks_per_update == 2  # one short update does not unlearn


def test_lost_main_block_drops_the_orphan_history_block() -> None:
    """When the main block is lost, the H block alone is dropped and counted as an orphan."""
    asm = Assembler("bmv")
    blocks = [bmv_main(1000), bmv_history(), bmv_history(-1), bmv_main(3000), bmv_history()]
    results = feed_all(asm, blocks)
    assert [r.values["voltage"] for r in results if r] == [1.0, 3.0]
    assert all(r.values["history_deepest_discharge"] != -0.001 for r in results if r)
    assert asm.stats.orphans == 1


def test_stale_half_is_not_merged() -> None:
    """A main block older than stale_after is not merged with a later H block."""
    asm = Assembler("bmv", stale_after=3.0)
    assert asm.feed(bmv_main(1000), WALL, 0.0) is None
    assert asm.feed(bmv_history(), WALL, 10.0) is None
    assert asm.stats.stale_dropped == 1
    assert asm.stats.orphans == 1
    assert asm.feed(bmv_main(2000), WALL, 11.0) is None
    reading = asm.feed(bmv_history(), WALL, 11.5)
    assert reading is not None
    assert reading.values["voltage"] == 2.0


def test_device_change_relearns_cleanly() -> None:
    """A BMV replaced by an MPPT on the same port: the BMV half is dropped, the MPPT relearned."""
    asm = Assembler("port")
    feed_all(asm, [bmv_main(), bmv_history(), bmv_main(), bmv_history(), bmv_main()])
    assert asm.blocks_per_update == 2
    first = asm.feed(mppt(), WALL, 2.5)
    assert first is not None  # the MPPT's first block is a whole update: emitted at once
    assert first.product == "SmartSolar MPPT 75/15"
    assert first.firmware == "1.56"
    assert "soc" not in first.values
    assert asm.stats.incomplete == 1  # the BMV main block left waiting
    assert asm.feed(mppt(), WALL, 3.5) is not None
    assert asm.feed(mppt(), WALL, 4.5) is not None
    assert asm.blocks_per_update == 1


def test_identity_is_carried_over_within_one_device() -> None:
    """An update without SER# keeps the serial number of the device's previous update."""
    asm = Assembler("mppt")
    feed_all(asm, [mppt(ser="HQ42")])
    later = asm.feed(mppt(ser=None), WALL, 5.0)
    assert later is not None
    assert later.serial == "HQ42"
    assert "serial_number" not in later.values
    other = asm.feed(mppt(ser=None, pid="0xA05F"), WALL, 6.0)
    assert other is not None
    assert other.serial is None  # a different device does not inherit it


def test_changed_split_is_relearned_after_three_updates() -> None:
    """A device whose blocks per update really change (aux reconfigured) is relearned."""
    asm = Assembler("bmv")
    feed_all(asm, [bmv_main(), bmv_history()] * 3)
    assert asm.blocks_per_update == 2
    extra = block(("H15", "1"), ("H16", "2"))
    three = [bmv_main(), bmv_history(), extra] * 4
    results = [asm.feed(b, WALL, 10.0 + i * 0.3) for i, b in enumerate(three)]
    assert asm.blocks_per_update == 3
    last = results[-1]
    assert last is not None
    assert "history_max_aux_voltage" in last.values
    assert "voltage" in last.values


def test_misjudged_first_update_costs_one_reading_at_most() -> None:
    """An unknown-family device splitting its update: one partial first reading, then whole ones."""
    asm = Assembler("dcdc")
    head = block(("PID", "0xA3F0"), ("V", "13220"))
    tail = block(("DC_IN_V", "1262"), ("CS", "3"))
    results = feed_all(asm, [head, tail] * 4)
    emitted = [r for r in results if r]
    assert "dc_in_voltage" not in emitted[0].values  # the misjudged first update
    assert all({"voltage", "dc_in_voltage"} <= set(r.values) for r in emitted[1:])
    assert len(emitted) == 4
    assert [r is not None for r in results[2:]] == [False, True] * 3


def test_bmv_family_sending_single_blocks_is_learned() -> None:
    """A BMV-family PID without H blocks loses its first two updates, then each block emits."""
    asm = Assembler("shunt")
    results = feed_all(asm, [bmv_main(1000 + i) for i in range(5)])
    assert [r.values["voltage"] for r in results if r] == [1.002, 1.003, 1.004]
    assert results[2] is not None
    assert asm.stats.incomplete == 2


def test_device_without_pid_gets_one_reading_per_block() -> None:
    """A BMV-60x (no PID at all) is recognised after three blocks; each block is then a reading."""
    asm = Assembler("bmv60")
    results = feed_all(asm, [block(("V", str(12000 + i)), ("SOC", "1000")) for i in range(5)])
    assert [r is not None for r in results] == [False, False, True, True, True]
    last = results[-1]
    assert last is not None
    assert last.pid is None
    assert last.product is None
    assert last.values["soc"] == 100.0


def test_unknown_labels_are_kept_and_counted() -> None:
    """An unknown label is kept as text under its label and counted; nothing is dropped."""
    asm = Assembler("mppt")
    reading = asm.feed(
        block(("PID", "0xA053"), ("NEWX", "42"), ("HC#", "7"), ("HSDS", "1")), WALL, 0
    )
    assert reading is not None
    assert reading.values["NEWX"] == "42"
    assert reading.values["hc"] == "7"
    assert asm.unknown_labels == 1
    assert asm.unknown_label_names == ["NEWX"]


def test_undecodable_values_are_unavailable_and_counted() -> None:
    """A number with a NUL byte is UNAVAILABLE (its text in raw) and counted; the reading
    still comes; text fields keep odd bytes as escapes."""
    asm = Assembler("mppt")
    bad = TextBlock(
        encode_block(
            [(b"PID", b"0xA053"), (b"V", b"12\x0034"), (b"SER#", b"A\xa5"), (b"HSDS", b"1")]
        )
    )
    reading = asm.feed(bad, WALL, 0.0)
    assert reading is not None
    assert reading.values["voltage"] is UNAVAILABLE
    assert reading.values["serial_number"] == "A\\xa5"
    assert dict(reading.raw)["V"] == "12\\x0034"
    assert asm.undecodable == 1


def test_unavailable_values_stay_unavailable() -> None:
    """SOC/CE ``---`` (unsynchronised BMV) arrive as UNAVAILABLE in the reading, never 0."""
    asm = Assembler("bmv")
    asm.feed(bmv_main(soc="---"), WALL, 0.0)
    reading = asm.feed(bmv_history(), WALL, 0.5)
    assert reading is not None
    assert reading.values["soc"] is UNAVAILABLE


def test_flush_emits_an_unlearned_update_and_drops_a_short_one() -> None:
    """At end of input an update whose size is unknown is emitted; a learned, short one is not."""
    asm = Assembler("dcdc")
    head = block(("PID", "0xA3F0"), ("V", "13220"))
    tail = block(
        ("DC_IN_V", "1262"),
    )
    feed_all(asm, [head, tail, head, tail, head])
    assert asm.flush(WALL, 9.0) is None
    assert asm.stats.incomplete == 1
    fresh = Assembler("x")
    fresh.feed(
        block(
            ("V", "1"),
        ),
        WALL,
        0.0,
    )
    assert fresh.flush(WALL, 1.0) is None  # an orphan is not pending


def test_reset_forgets_the_update_in_progress() -> None:
    """After reset (port reopened) the waiting half is dropped, not merged with new blocks."""
    asm = Assembler("bmv")
    feed_all(asm, [bmv_main(), bmv_history(), bmv_main(5000)])
    asm.reset()
    assert asm.feed(bmv_history(), WALL, 3.0) is None
    reading = feed_all(asm, [bmv_main(6000), bmv_history()])[1]
    assert reading is not None
    assert reading.values["voltage"] == 6.0


def test_reading_is_immutable() -> None:
    """A Reading and its values cannot be changed by a subscriber."""
    reading = Assembler("m").feed(mppt(), WALL, 0.0)
    assert reading is not None
    with pytest.raises(AttributeError):
        reading.device = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        reading.values["voltage"] = 0  # type: ignore[index]


def test_assembled_reading_is_an_ordinary_reading() -> None:
    """The assembler's fast-built Reading equals, copies and pickles like Reading(...)."""
    asm = Assembler("bmv")
    asm.feed(bmv_main(), WALL, 0.0)
    reading = asm.feed(bmv_history(), WALL, 0.5)
    assert reading is not None
    built = Reading(**{f.name: getattr(reading, f.name) for f in dataclasses.fields(Reading)})
    assert reading == built
    assert repr(reading) == repr(built)
    assert dataclasses.replace(reading, device="x") == dataclasses.replace(built, device="x")
    assert copy.copy(reading) == built
    again = pickle.loads(pickle.dumps(dataclasses.replace(reading, values=dict(reading.values))))
    assert again == dataclasses.replace(built, values=dict(built.values))
    with pytest.raises(dataclasses.FrozenInstanceError):
        reading.pid = 1  # type: ignore[misc]


def test_as_json_marks_unavailable_and_infinite() -> None:
    """The JSON view: --- is null and listed, TTG -1 is "infinite", reasons are lists, raw kept."""
    asm = Assembler("bmv")
    asm.feed(bmv_main(soc="---"), WALL, 0.0)
    reading = asm.feed(bmv_history(), WALL, 0.5)
    assert reading is not None
    view = json.loads(json.dumps(reading.as_json()))
    assert view["values"]["soc"] is None
    assert view["unavailable"] == ["soc"]
    assert view["values"]["time_to_go"] == "infinite"
    assert view["values"]["alarm_reason"] == []
    assert view["units"]["soc"] == "%"
    assert "alarm" not in view["units"]
    assert view["raw"]["SOC"] == "---"
    assert view["pid"] == "0x0203"
    assert view["time"] == WALL.isoformat()
    assert json_value(("a",)) == ["a"]
    assert json_value(UNAVAILABLE) is None
    assert json_value(-math.inf) == "-infinite"


_POOL = [
    bmv_main(),
    bmv_main(13000, soc="---"),
    bmv_history(),
    mppt(),
    mppt(pid="0xA05F"),
    block(("PID", "0xA06C"), ("V", "52700")),
    block(("ERR", "0"), ("HSDS", "2")),
    block(("PID", "0xA3F0"), ("V", "1")),
    block(("V", "1"), ("NEWX", "\x01")),
    block(("PID", "0xZZ"), ("V", "1")),
]


def _pairs(blocks: list[TextBlock]) -> list[tuple[str, str]]:
    return [(k.decode(), text_of(v)) for b in blocks for k, v in b.fields]


@given(
    st.lists(
        st.tuples(st.integers(0, len(_POOL) - 1), st.floats(0, 5, allow_nan=False)),
        max_size=60,
    )
)
def test_any_block_sequence_gives_contiguous_whole_readings(steps: list[tuple[int, float]]) -> None:
    """Whatever blocks arrive, in any order and timing: no exception, every reading is a run of
    consecutive fed blocks ending with the block that emitted it, and no block is used twice."""
    asm = Assembler("fuzz")
    fed: list[TextBlock] = []
    used_up_to = 0  # blocks before this index are already in a reading (or dropped)
    mono = 0.0
    for index, gap in steps:
        mono += gap
        fed.append(_POOL[index])
        reading = asm.feed(_POOL[index], WALL, mono)
        if reading is None:
            continue
        # Emitted on its own last block, or (size not learned yet) when the next PID block
        # showed that the update had ended: then that PID block is not part of it.
        ends = [len(fed)]
        if any(k == b"PID" for k, _ in fed[-1].fields):
            ends.append(len(fed) - 1)
        matches = [
            (first, end)
            for end in ends
            for first in range(used_up_to, end)
            if _pairs(fed[first:end]) == list(reading.raw)
        ]
        assert matches, "a reading must be a run of consecutive, unused blocks"
        used_up_to = max(end for _, end in matches)
    assert asm.stats.blocks == len(steps)


def test_reported_losses_never_merge_halves_of_two_updates() -> None:
    """H block of one update and main block of the next both lost: the parser's error events
    keep the first main block from merging with the second update's H block."""
    lost = ErrorEvent(ErrorKind.CHECKSUM, 100)
    events: list[Event] = [bmv_main(1000), bmv_history(), bmv_main(1500), bmv_history()]
    events += [bmv_main(2000), lost, lost, bmv_history(-2), bmv_main(3000), bmv_history()]
    asm = Assembler("bmv")
    readings = [asm.feed_event(e, WALL, i * 0.5) for i, e in enumerate(events)]
    emitted = [r for r in readings if r]
    assert [r.values["voltage"] for r in emitted] == [1.0, 1.5, 3.0]
    assert all(r.values["history_deepest_discharge"] != -0.002 for r in emitted)
    assert asm.stats.incomplete == 1
    assert asm.stats.orphans == 1


def test_hex_records_and_hex_errors_do_not_touch_the_update() -> None:
    """HEX records (and bad HEX) between the two halves of an update change nothing."""
    asm = Assembler("bmv")
    events: list[Event] = [
        bmv_main(),
        HexRecord(b"A0102000543"),
        ErrorEvent(ErrorKind.HEX_CHECKSUM, 12),
        bmv_history(),
    ]
    readings = [asm.feed_event(e, WALL, 0.1 * i) for i, e in enumerate(events)]
    assert readings[:3] == [None, None, None]
    assert readings[3] is not None
    assert readings[3].values["voltage"] == 12.065


# -- unparsable values and family inference (issues 16.1, 13) ---------------------------------


def test_an_unparsable_number_is_unavailable_never_text() -> None:
    """``V +12450`` (or a high byte in a number) is no number: the value is UNAVAILABLE (so no
    output shows text under a unit), the wire text stays in ``raw``, and it is counted."""
    asm = Assembler("mppt")
    bad = block(("PID", "0xA053"), ("V", "+12450"), ("CS", "x"), ("FW", "v3.x"), ("HSDS", "1"))
    reading = asm.feed(bad, WALL, 0.0)
    assert reading is not None
    assert reading.values["voltage"] is UNAVAILABLE
    assert reading.values["charger_state"] is UNAVAILABLE
    assert reading.values["firmware"] is UNAVAILABLE
    assert dict(reading.raw)["V"] == "+12450"
    assert asm.undecodable == 3
    assert reading.as_json()["values"]["voltage"] is None  # type: ignore[index]


def test_load_on_in_any_case_is_true() -> None:
    """``LOAD On`` (some firmware) is the boolean true, like ``ON``; ``off`` is false."""
    asm = Assembler("mppt")
    reading = asm.feed(block(("PID", "0xA053"), ("LOAD", "On"), ("HSDS", "1")), WALL, 0.0)
    assert reading is not None
    assert reading.values["load"] is True
    reading = asm.feed(block(("PID", "0xA053"), ("LOAD", "off"), ("HSDS", "1")), WALL, 1.0)
    assert reading is not None
    assert reading.values["load"] is False
    assert asm.undecodable == 0


def test_smartshunt_300a_is_known() -> None:
    """PID 0xC038 is the SmartShunt 300A/50mV: named, and merged as a battery monitor."""
    asm = Assembler("shunt")
    main = block(("PID", "0xC038"), ("V", "13200"), ("SOC", "1000"), ("TTG", "-1"))
    assert asm.feed(main, WALL, 0.0) is None  # waits for its H block
    reading = asm.feed(bmv_history(), WALL, 0.5)
    assert reading is not None
    assert reading.product == "SmartShunt 300A/50mV"
    assert {"soc", "history_deepest_discharge"} <= set(reading.values)


@pytest.mark.parametrize("pid", ["0xC0FF", "0xBEEF"])
def test_unknown_pid_with_monitor_labels_is_merged_from_the_first_update(pid: str) -> None:
    """An unknown PID whose block carries battery-monitor labels is a battery monitor: its
    first two-block update is merged, not split into a lone main block and an orphan."""
    asm = Assembler("shunt")
    main = block(("PID", pid), ("V", "13200"), ("CE", "-100"), ("SOC", "990"))
    results = feed_all(asm, [main, bmv_history(), main, bmv_history()])
    assert results[0] is None
    assert results[1] is not None
    assert {"soc", "history_deepest_discharge"} <= set(results[1].values)
    assert results[3] is not None
    assert asm.stats.orphans == 0
    assert asm.stats.incomplete == 0


def test_unknown_pid_with_mppt_labels_waits_for_hsds() -> None:
    """An unknown PID whose first block has panel labels is an MPPT: complete with HSDS."""
    asm = Assembler("mppt")
    main = block(("PID", "0xBEEF"), ("V", "13200"), ("VPV", "40000"), ("PPV", "100"))
    rest = block(("ERR", "0"), ("H20", "5"), ("HSDS", "3"))
    results = feed_all(asm, [main, rest])
    assert results[0] is None
    assert results[1] is not None
    assert results[1].values["day_sequence"] == 3
    assert asm.stats.orphans == 0
