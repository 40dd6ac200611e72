"""The simulator answers HEX like a real device; a named simulator keeps its identity.

Pure tests talk to ``SimulatedDevice.receive``; the pty tests run ``simulate --pty`` and talk
to it through the pseudo-terminal, as the service and ``hex`` do.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vedirect_async import fields
from vedirect_async.daily import FIRST_DAY, LAST_DAY, TOTAL, HistoryDay, HistoryTotal
from vedirect_async.hexframe import (
    Command,
    Done,
    ErrorResponse,
    Flags,
    HexFrame,
    PingResponse,
    RegisterMessage,
    UnknownResponse,
    app_version_request,
    decode_message,
    get_request,
    ping_request,
    product_id_request,
    set_request,
)
from vedirect_async.parser import HexRecord, Parser, TextBlock
from vedirect_async.registers import REGISTERS, catalogue_value, encode_value
from vedirect_async.simulator import KINDS, SimulatedDevice, SimulatorStream, open_stream
from vedirect_async.simulator.hexdevice import HexResponder

ROOT = Path(__file__).resolve().parent.parent
NOON = datetime(2026, 6, 21, 12, 0, tzinfo=UTC)
NIGHT = datetime(2026, 6, 21, 1, 0, tzinfo=UTC)


def _ask(device: SimulatedDevice, frame: HexFrame) -> object:
    """Send one request; the single answer, decoded."""
    events = Parser().feed(device.receive(frame.encode()))
    assert len(events) == 1, events
    (record,) = events
    assert isinstance(record, HexRecord)
    return decode_message(HexFrame.from_record(record))


def _get(device: SimulatedDevice, register: int) -> RegisterMessage:
    answer = _ask(device, get_request(register))
    assert isinstance(answer, RegisterMessage)
    assert answer.command is Command.GET
    assert answer.register == register
    return answer


def _set(device: SimulatedDevice, register: int, value: float) -> RegisterMessage:
    raw = encode_value(register, value)
    answer = _ask(device, set_request(register, raw))
    assert isinstance(answer, RegisterMessage)
    assert (answer.command, answer.register, answer.value) == (Command.SET, register, raw)
    return answer


def _second(device: SimulatedDevice) -> tuple[dict[str, fields.Value], list[RegisterMessage]]:
    """One second: the text values by catalogue name, and the async records."""
    values: dict[str, fields.Value] = {}
    records: list[RegisterMessage] = []
    for event in Parser().feed(device.next_second()):
        if isinstance(event, TextBlock):
            for label, raw in event.fields:
                found = fields.lookup(label.decode())
                if found is not None:
                    values[found.name] = fields.decode_value(found, raw)
        elif isinstance(event, HexRecord):
            message = decode_message(HexFrame.from_record(event))
            assert isinstance(message, RegisterMessage)
            records.append(message)
    return values, records


# -- identity commands ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "pid", "version"),
    [("mppt", 0xA05F, "1.59"), ("bmv712", 0xA381, "4.08"), ("smartshunt", 0xA389, "4.05")],
)
def test_ping_app_version_and_product_id(kind: str, pid: int, version: str) -> None:
    """Ping answers ':5' + version, app version and product id ':1' done, as the text says."""
    device = SimulatedDevice(kind, seed=1)
    text, _ = _second(device)
    ping = _ask(device, ping_request())
    assert isinstance(ping, PingResponse)
    assert ping.version.version == version == text["firmware"]
    assert ping.version.kind == 1  # a release
    app = _ask(device, app_version_request())
    assert app == Done(ping.version.raw.to_bytes(2, "little"))
    product = _ask(device, product_id_request())
    assert isinstance(product, Done)
    assert product.number == pid
    assert f"0x{pid:04X}" == text["product_id"]
    assert _get(device, 0x0100).decoded().value == pid
    assert _get(device, 0x0102).decoded().value == version


# -- Get: every register, consistent with the text stream --------------------------------------

# register -> (text field name, largest difference allowed: the coarser resolution)
_MPPT_TEXT = {
    0xEDD5: ("voltage", 0.005),
    0xEDD7: ("current", 0.05),
    0xEDBB: ("panel_voltage", 0.005),
    0xEDBC: ("panel_power", 0.5),
    0xEDAD: ("load_current", 0.05),
    0xEDDC: ("yield_total", 0),
    0xEDD3: ("yield_today", 0),
    0xEDD2: ("max_power_today", 0),
    0xEDD1: ("yield_yesterday", 0),
    0xEDD0: ("max_power_yesterday", 0),
    0x0201: ("charger_state", 0),
    0xEDB3: ("tracker_mode", 0),
    0xEDDA: ("error", 0),
    0xEDA8: ("load", 0),
    0x0207: ("off_reason", 0),
    0x010A: ("serial_number", 0),
}
_BMV_TEXT = {
    0xED8D: ("voltage", 0.005),
    0xED7D: ("aux_voltage", 0.005),
    0xED8F: ("current", 0.05),
    0xED8C: ("current", 0.0005),
    0xED8E: ("power", 1),
    0xEEFF: ("consumed_ah", 0.05),
    0x0FFF: ("soc", 0.05),
    0x031E: ("alarm_reason", 0),
    0x0300: ("history_deepest_discharge", 0.05),
    0x0301: ("history_last_discharge", 0.05),
    0x0302: ("history_average_discharge", 0.05),
    0x0303: ("history_charge_cycles", 0),
    0x0304: ("history_full_discharges", 0),
    0x0305: ("history_cumulative_ah", 0.05),
    0x0306: ("history_min_voltage", 0.005),
    0x0307: ("history_max_voltage", 0.005),
    0x0308: ("history_since_full_charge", 0),
    0x0309: ("history_auto_syncs", 0),
    0x030A: ("history_low_voltage_alarms", 0),
    0x030B: ("history_high_voltage_alarms", 0),
    0x030E: ("history_min_aux_voltage", 0.005),
    0x030F: ("history_max_aux_voltage", 0.005),
    0x0310: ("history_discharged_energy", 0),
    0x0311: ("history_charged_energy", 0),
}


def _agrees(hex_value: fields.Value, text_value: fields.Value, tolerance: float) -> bool:
    if isinstance(hex_value, int | float) and isinstance(text_value, int | float):
        return abs(hex_value - text_value) <= tolerance + 1e-6
    return hex_value == text_value


@pytest.mark.parametrize(
    ("kind", "start"),
    [("mppt", NOON), ("mppt", NIGHT), *((k, NOON) for k in ("bmv712", "smartshunt"))],
)
def test_get_every_register_agrees_with_the_text(kind: str, start: datetime) -> None:
    """Get answers every modelled register (flags 0, a value of its type) with the text's value."""
    device = SimulatedDevice(kind, seed=3, start=start)
    mapping = _MPPT_TEXT if kind == "mppt" else _BMV_TEXT
    assert device.model is not None
    assert set(mapping) <= set(device.model.registers)
    for _ in range(30):
        text, _ = _second(device)
        for register in device.model.registers:
            answer = _get(device, register)
            assert answer.flags == Flags.NONE
            decoded = answer.decoded()
            assert decoded.value is not None or register == 0x0FFE  # TTG n/a while charging
            if register in mapping:
                name, tolerance = mapping[register]
                value = catalogue_value(REGISTERS[register], decoded.value)
                assert _agrees(value, text[name], tolerance), (hex(register), value, text[name])


@pytest.mark.parametrize("kind", KINDS)
def test_unknown_registers_have_flag_1_and_no_value(kind: str) -> None:
    """An id the device does not have: flags 0x01 (unknown id), no value; Set likewise."""
    device = SimulatedDevice(kind, seed=1)
    device.next_second()
    for register in (0xEDB4, 0x1234, 0xFFFF):
        answer = _get(device, register)
        assert (answer.flags, answer.value) == (Flags.UNKNOWN_ID, b"")
        assert answer.decoded().value is None
    echoed = _ask(device, set_request(0x1234, b"\x01"))
    assert isinstance(echoed, RegisterMessage)
    assert echoed.flags == Flags.UNKNOWN_ID


# -- Set -----------------------------------------------------------------------------------------


def test_set_charge_current_limit_changes_what_the_mppt_reports() -> None:
    """0xEDF0 = 5 A at noon: echoed with flags 0, read back, and the charge current obeys it."""
    device = SimulatedDevice("mppt", seed=5, start=NOON)
    assert _get(device, 0xEDF0).decoded().value == 20.0
    assert _set(device, 0xEDF0, 5.0).flags == Flags.NONE
    assert _get(device, 0xEDF0).decoded().value == 5.0
    currents = [_second(device)[0]["current"] for _ in range(120)]
    amps = [c for c in currents if isinstance(c, float)]
    assert len(amps) == len(currents)
    assert all(a <= 5.0 for a in amps)
    assert max(amps) == 5.0  # at noon the panels could give more: limited
    assert _set(device, 0xEDF0, 25.0).flags == Flags.PARAMETER_ERROR  # a 100/20: 20 A at most
    assert _get(device, 0xEDF0).decoded().value == 5.0


def test_set_load_output_control_switches_the_load() -> None:
    """0xEDAB: off at night turns LOAD OFF and IL 0; on by day turns LOAD ON; 2 is refused."""
    device = SimulatedDevice("mppt", seed=5, start=NIGHT)
    text, _ = _second(device)
    assert (text["load"], text["load_current"]) == (True, 0.35)  # auto: lights at night
    assert _set(device, 0xEDAB, 0).flags == Flags.NONE
    text, _ = _second(device)
    assert (text["load"], text["load_current"]) == (False, 0.0)
    assert _get(device, 0xEDA8).decoded().value == 0
    assert _set(device, 0xEDAB, 2).flags == Flags.PARAMETER_ERROR
    day = SimulatedDevice("mppt", seed=5, start=NOON)
    assert _second(day)[0]["load"] is False  # auto: off by day
    assert _set(day, 0xEDAB, 4).flags == Flags.NONE
    assert _second(day)[0]["load"] is True


def test_set_device_mode_off_stops_charging() -> None:
    """0x0200 = 4 (off): the charger stops, OR says 'device mode register'; 1 turns it on."""
    device = SimulatedDevice("mppt", seed=5, start=NOON)
    assert _second(device)[0]["current"] != 0
    assert _set(device, 0x0200, 4).flags == Flags.NONE
    text, _ = _second(device)
    assert (text["current"], text["charger_state"]) == (0.0, "off")
    assert text["off_reason"] == ("switched off (device mode register)",)
    assert _get(device, 0x0200).decoded().value == 4
    assert _set(device, 0x0200, 2).flags == Flags.PARAMETER_ERROR
    assert _set(device, 0x0200, 1).flags == Flags.NONE
    assert _second(device)[0]["charger_state"] == "bulk"


def test_set_read_only_and_malformed_values_are_refused() -> None:
    """A read-only register answers 0x02; a value of the wrong size or range 0x04."""
    device = SimulatedDevice("mppt", seed=5, start=NOON)
    device.next_second()
    assert _set(device, 0xEDBB, 12.0).flags == Flags.NOT_SUPPORTED
    short = _ask(device, set_request(0xEDF0, b"\x05"))
    assert isinstance(short, RegisterMessage)
    assert short.flags == Flags.PARAMETER_ERROR
    assert _set(device, 0xEDF7, 20.0).flags == Flags.PARAMETER_ERROR
    assert _set(device, 0xEDF7, 14.2).flags == Flags.NONE
    assert _get(device, 0xEDF7).decoded().value == 14.2
    bmv = SimulatedDevice("bmv712", seed=5)
    bmv.next_second()
    assert _set(bmv, 0x1000, 400).flags == Flags.NONE
    assert _get(bmv, 0x1000).decoded().value == 400
    assert _set(bmv, 0x0FFF, 50.0).flags == Flags.NOT_SUPPORTED


# -- history -------------------------------------------------------------------------------------


def test_history_days_and_total_agree_with_the_text() -> None:
    """Days 0-30 and the total: today is H20/H21/HSDS, yesterday H22/H23, the total H19.

    Across a simulated dawn, yesterday's record becomes day 1 and the next day count goes on.
    """
    device = SimulatedDevice("mppt", seed=7, start=datetime(2026, 6, 21, 3, 0, tzinfo=UTC))
    text, _ = _second(device)
    days = [_get(device, register).decoded().value for register in range(FIRST_DAY, LAST_DAY + 1)]
    assert all(isinstance(day, HistoryDay) for day in days)
    today, yesterday = days[0], days[1]
    assert isinstance(today, HistoryDay)
    assert isinstance(yesterday, HistoryDay)
    assert (today.yield_kwh, today.max_power_w) == (text["yield_today"], text["max_power_today"])
    assert today.day_sequence == text["day_sequence"]
    assert (yesterday.yield_kwh, yesterday.max_power_w) == (
        text["yield_yesterday"],
        text["max_power_yesterday"],
    )
    sequence = [d.day_sequence for d in days if isinstance(d, HistoryDay)]
    assert today.day_sequence is not None
    assert sequence == [(today.day_sequence - n) % 365 for n in range(31)]
    total = _get(device, TOTAL).decoded().value
    assert isinstance(total, HistoryTotal)
    assert total.user_yield_kwh == text["yield_total"]
    assert total.days_available == 31
    # run through the dawn and the day: the day that was today becomes day 1
    for _ in range(4 * 3600):
        after, _ = _second(device)
    assert after["day_sequence"] == (today.day_sequence + 1) % 365
    day1 = _get(device, FIRST_DAY + 1).decoded().value
    assert isinstance(day1, HistoryDay)
    assert day1.day_sequence == today.day_sequence
    assert day1.max_power_w == after["max_power_yesterday"]
    assert _get(device, FIRST_DAY + 2).decoded().value == yesterday


# -- framing errors, reserved commands -----------------------------------------------------------


def test_bad_check_byte_gets_the_error_frame_and_garbage_is_ignored() -> None:
    """A wrong check byte -> ':4AAAAFD'; text without ':' is ignored; records split anywhere."""
    device = SimulatedDevice("bmv712", seed=1)
    device.next_second()
    assert device.receive(b":7F0ED0072\n") == b":4AAAAFD\n"
    assert device.receive(b":7f0ed0071\n") == b":4AAAAFD\n"  # lower case is not the protocol
    assert device.receive(b"hello\n\r\n") == b""
    assert device.receive(b":15") == b""  # a record in pieces
    assert device.receive(b"4\n") == _ping_answer(device)
    assert device.receive(b"noise:154\n") == _ping_answer(device)
    assert device.receive(b"x" * 10_000) == b""  # an endless line is dropped, not kept
    assert device.receive(b"\n:154\n") == _ping_answer(device)
    answer = _ask(device, HexFrame(2))  # reserved nibble: ':253' -> ':3020050' (notes 3.3)
    assert answer == UnknownResponse(b"\x02\x00")
    assert device.receive(b":253\n") == b":3020050\n"
    assert device.receive(b":64F\n") == b""  # restart: no answer
    assert decode_message(HexFrame.parse(b":4AAAAFD")) == ErrorResponse()


def _ping_answer(device: SimulatedDevice) -> bytes:
    assert device.identity is not None
    return PingResponse(device.identity.version).to_frame().encode()


# -- asynchronous records ------------------------------------------------------------------------


def test_async_records_start_with_hex_mode() -> None:
    """No ':A' until a host speaks HEX; then every second the MPPT sends uptime, charger
    temperature, panel power and voltage (agreeing with the text), and changed values."""
    device = SimulatedDevice("mppt", seed=2, start=NOON)
    for _ in range(5):
        assert _second(device)[1] == []
    _ask(device, ping_request())
    assert device.hex_mode
    seen: set[int] = set()
    for _ in range(20):
        text, records = _second(device)
        assert {0x0120, 0xEDDB, 0xEDBC, 0xEDBB} <= {r.register for r in records}
        by_register = {r.register: r.decoded().value for r in records}
        panel = by_register[0xEDBB]
        assert isinstance(panel, float)
        assert _agrees(panel, text["panel_voltage"], 0.005)
        assert by_register[0x0120] == device.seconds
        seen |= set(by_register)
    assert {0xEDD5, 0xEDD7, 0x0201} <= seen
    bmv = SimulatedDevice("bmv712", seed=2)
    bmv.receive(get_request(0x0FFF).encode())
    registers = {r.register for _ in range(20) for r in _second(bmv)[1]}
    assert {0xED8D, 0xED8F, 0x0FFF} <= registers


def test_old_firmware_never_answers() -> None:
    """answers=False: no answer to anything, no async records, the text goes on unchanged."""
    quiet = SimulatedDevice("mppt", seed=4, answers=False)
    normal = SimulatedDevice("mppt", seed=4)
    for request in (ping_request(), get_request(0xEDF0), HexFrame(7, b"\x00")):
        assert quiet.receive(request.encode()) == b""
    assert quiet.receive(b":7F0ED0072\n") == b""
    assert not quiet.hex_mode
    assert [quiet.next_second() for _ in range(5)] == [normal.next_second() for _ in range(5)]


# -- identity (issue 13) ---------------------------------------------------------------------------

_COUNTERS_MPPT = ("yield_total", "day_sequence")
_COUNTERS_BMV = (
    "history_cumulative_ah",
    "history_charge_cycles",
    "history_auto_syncs",
    "history_discharged_energy",
    "history_charged_energy",
)


@pytest.mark.parametrize("kind", KINDS)
def test_a_named_device_keeps_its_serial(kind: str) -> None:
    """Same name: the same serial on every start (text SER# and HEX 0x010A); other name: other."""
    a = SimulatedDevice(kind, name="garage", wall_start=NOON)
    b = SimulatedDevice(kind, name="garage", wall_start=NOON + timedelta(days=40))
    c = SimulatedDevice(kind, name="shed", wall_start=NOON)
    a.next_second(), b.next_second(), c.next_second()
    serials = [_get(d, 0x010A).decoded().value for d in (a, b, c)]
    assert serials[0] == serials[1] != serials[2]
    assert isinstance(serials[0], str)
    assert serials[0].startswith("HQ")
    assert len(serials[0]) == 11
    if kind == "mppt":
        assert _second(a)[0]["serial_number"] == serials[0]


def _counters(device: SimulatedDevice, names: tuple[str, ...]) -> dict[str, float]:
    text, _ = _second(device)
    out = {}
    for name in names:
        value = text[name]
        assert isinstance(value, int | float)
        out[name] = -value if name == "history_cumulative_ah" else value  # drawn: negative
    return out


@pytest.mark.parametrize("kind", ["mppt", "bmv712"])
def test_counters_never_go_back_across_restarts(kind: str) -> None:
    """Two starts later in time give counters >= those of the earlier start, and a start after
    a run continues from at least where the run ended (however much the run produced)."""
    names = _COUNTERS_MPPT if kind == "mppt" else _COUNTERS_BMV
    first = SimulatedDevice(kind, name="van", seed=1, wall_start=NOON)
    start1 = _counters(first, names)
    end1 = start1
    for _ in range(2 * 3600):  # two busy midday hours
        first.next_second()
    end1 = _counters(first, names)
    for name in names:
        assert end1[name] >= start1[name]
    for later in (timedelta(seconds=1), timedelta(hours=2, seconds=2), timedelta(days=3)):
        again = SimulatedDevice(kind, name="van", seed=2, wall_start=NOON + later)
        start2 = _counters(again, names)
        reference = end1 if later > timedelta(hours=2) else start1
        for name in names:
            if name == "day_sequence":
                continue  # a day number, not a counter
            assert start2[name] >= reference[name], (later, name)
    # plausible: a few days later the yield grew by kWh, not by a hundred
    far = _counters(SimulatedDevice(kind, name="van", wall_start=NOON + timedelta(days=3)), names)
    if kind == "mppt":
        assert 0 < far["yield_total"] - start1["yield_total"] < 10
    else:
        assert 0 < far["history_charged_energy"] - start1["history_charged_energy"] < 10


def test_unnamed_devices_keep_their_seeded_streams() -> None:
    """Without a name nothing changes: a seed gives the same bytes as before (tests, captures)."""
    a = SimulatedDevice("mppt", seed=9)
    b = SimulatedDevice("mppt", seed=9)
    assert [a.next_second() for _ in range(10)] == [b.next_second() for _ in range(10)]


# -- on the event loop and over a real pty ---------------------------------------------------------


async def test_open_stream_answers_between_seconds() -> None:
    """open_stream's write: the answer arrives as its own chunk between the seconds."""
    stream = open_stream("mppt", speed=50, seed=1, name="loop")
    writer = getattr(stream, "write", None)
    assert writer is not None
    parser = Parser()
    answer: RegisterMessage | None = None

    async def run() -> None:
        nonlocal answer
        async for chunk in stream:
            for event in parser.feed(chunk):
                if isinstance(event, TextBlock) and answer is None:
                    writer(get_request(0x010A).encode())
                if isinstance(event, HexRecord):
                    message = decode_message(HexFrame.from_record(event))
                    if isinstance(message, RegisterMessage) and message.command is Command.GET:
                        answer = message
                        return

    await asyncio.wait_for(run(), timeout=10)
    assert answer is not None
    assert isinstance(answer.decoded().value, str)
    with pytest.raises(ValueError, match="answer delay"):
        open_stream("mppt", answer_delay=-1)


@dataclass
class _Pty:
    """The host end of `simulate --pty`: write requests, collect what comes back."""

    fd: int
    parser: Parser = field(default_factory=Parser)
    blocks: int = 0
    messages: list[tuple[float, object]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def readable(self) -> None:
        try:
            data = os.read(self.fd, 4096)
        except BlockingIOError:
            return
        now = asyncio.get_running_loop().time()
        for event in self.parser.feed(data):
            if isinstance(event, TextBlock):
                self.blocks += 1
            elif isinstance(event, HexRecord):
                self.messages.append((now, decode_message(HexFrame.from_record(event))))
        self.changed.set()

    async def until(self, predicate: object) -> None:
        assert callable(predicate)
        async with asyncio.timeout(10):
            while not predicate():
                self.changed.clear()
                await self.changed.wait()

    def registers(self, command: Command, register: int) -> list[RegisterMessage]:
        """The register messages received so far for ``command`` and ``register``."""
        return [
            m
            for _, m in self.messages
            if isinstance(m, RegisterMessage) and (m.command, m.register) == (command, register)
        ]

    def answers(self) -> list[object]:
        return [
            m
            for _, m in self.messages
            if not (isinstance(m, RegisterMessage) and m.command is Command.ASYNC)
        ]


@asynccontextmanager
async def _simulate_pty(*args: str) -> AsyncIterator[_Pty]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "vedirect_async", "simulate", *args, "--pty",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    fd = -1
    loop = asyncio.get_running_loop()
    try:
        assert proc.stdout is not None
        path = (await asyncio.wait_for(proc.stdout.readline(), timeout=10)).decode().strip()
        fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        pty = _Pty(fd)
        loop.add_reader(fd, pty.readable)
        yield pty
    finally:
        if fd >= 0:
            loop.remove_reader(fd)
            os.close(fd)
        if proc.returncode is None:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), timeout=5)


async def test_simulate_pty_answers_hex() -> None:
    """Over a real pty: ping, Get, Set with its effect, an unknown id, a bad check byte."""
    async with _simulate_pty("mppt", "--speed", "10", "--name", "pty-mppt") as pty:
        await pty.until(lambda: pty.blocks >= 1)
        os.write(pty.fd, ping_request().encode() + get_request(0xEDF0).encode())
        await pty.until(lambda: len(pty.registers(Command.GET, 0xEDF0)) >= 1)
        assert any(isinstance(m, PingResponse) for m in pty.answers())
        assert pty.registers(Command.GET, 0xEDF0)[0].decoded().value == 20.0
        os.write(pty.fd, set_request(0xEDF0, encode_value(0xEDF0, 7.5)).encode())
        await pty.until(lambda: len(pty.registers(Command.SET, 0xEDF0)) >= 1)
        assert pty.registers(Command.SET, 0xEDF0)[0].flags == Flags.NONE
        os.write(pty.fd, get_request(0xEDF0).encode() + get_request(0xEDB4).encode())
        os.write(pty.fd, b":7F0ED0072\n")
        await pty.until(lambda: ErrorResponse() in pty.answers())
        assert pty.registers(Command.GET, 0xEDF0)[-1].decoded().value == 7.5
        (unknown,) = pty.registers(Command.GET, 0xEDB4)
        assert unknown.flags == Flags.UNKNOWN_ID
        # in HEX mode now: async records arrive with the text
        await pty.until(lambda: len(pty.registers(Command.ASYNC, 0xEDBB)) >= 1)


async def test_simulate_pty_old_firmware_never_answers() -> None:
    """--no-hex-answers: while five more blocks arrive, no HEX record comes back at all."""
    async with _simulate_pty("mppt", "--speed", "20", "--no-hex-answers") as pty:
        await pty.until(lambda: pty.blocks >= 1)
        os.write(pty.fd, ping_request().encode() + get_request(0xEDF0).encode())
        seen = pty.blocks
        await pty.until(lambda: pty.blocks >= seen + 5)
        assert pty.registers(Command.GET, 0xEDF0) == []
        assert pty.messages == []


async def test_simulate_pty_slow_answers_keep_the_text_flowing() -> None:
    """--hex-delay 0.6: the answer comes no sooner than 0.6 s, and text blocks arrive meanwhile."""
    async with _simulate_pty("bmv712", "--speed", "20", "--hex-delay", "0.6") as pty:
        await pty.until(lambda: pty.blocks >= 1)
        loop = asyncio.get_running_loop()
        sent = loop.time()
        seen = pty.blocks
        os.write(pty.fd, get_request(0x0FFF).encode())
        await pty.until(lambda: len(pty.registers(Command.GET, 0x0FFF)) >= 1)
        # async records may come first (the device is in HEX mode at once)
        ((arrived, _),) = [
            (t, m) for t, m in pty.messages if m in pty.registers(Command.GET, 0x0FFF)
        ]
        assert arrived - sent >= 0.6
        assert pty.blocks >= seen + 4  # 0.6 s at speed 20: text went on (2 blocks a second)


async def _first_update(name: str) -> dict[str, fields.Value]:
    """The first text block of ``open_stream("mppt", name=name)``, as catalogue values."""
    parser = Parser()
    stream = open_stream("mppt", speed=1000, name=name)
    assert isinstance(stream, SimulatorStream)
    try:
        async for chunk in stream:
            for event in parser.feed(chunk):
                if isinstance(event, TextBlock):
                    return {
                        found.name: fields.decode_value(found, raw)
                        for label, raw in event.fields
                        if (found := fields.lookup(label.decode())) is not None
                    }
    finally:
        await stream.aclose()
    raise AssertionError("the stream ended")


async def test_open_stream_with_a_name_is_the_same_device_on_every_start() -> None:
    """What the service does for `simulator:mppt` ports: two starts, one serial, no step back."""
    first = await asyncio.wait_for(_first_update("roof"), timeout=10)
    second = await asyncio.wait_for(_first_update("roof"), timeout=10)
    other = await asyncio.wait_for(_first_update("barn"), timeout=10)
    assert first["serial_number"] == second["serial_number"] != other["serial_number"]
    assert isinstance(first["yield_total"], float)
    assert isinstance(second["yield_total"], float)
    assert second["yield_total"] >= first["yield_total"]


@settings(max_examples=200, deadline=None)
@given(chunks=st.lists(st.binary(max_size=300), max_size=8))
def test_any_host_bytes_get_valid_records_or_nothing(chunks: list[bytes]) -> None:
    """Whatever a host writes: no exception, every answer a valid record, the buffer bounded."""
    device = SimulatedDevice("mppt", seed=1)
    device.next_second()
    assert device.model is not None
    responder = HexResponder(device.model)
    for chunk in chunks:
        for record in responder.feed(chunk):
            HexFrame.parse(record)  # raises if the simulator sent a malformed record
        assert responder.buffered <= 256
