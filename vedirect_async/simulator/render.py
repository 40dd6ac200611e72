"""What each simulated device sends: text block templates and asynchronous HEX records."""

from __future__ import annotations

from ..hexframe import Command, RegisterMessage
from ..parser import checksum_byte, encode_block
from ..registers import encode_value as encode_register
from .plant import CAPACITY_AH, CS_OFF, DISCHARGE_FLOOR, Plant

# -- rendering: what each device sends --------------------------------------------------


class _Template:
    """A block layout laid out once by the protocol core's ``encode_block``.

    Per second only the ``%``-placeholders are filled in and the checksum byte recomputed,
    which makes a device-day about three times faster to generate than calling
    ``encode_block`` on fresh (label, value) pairs every second (same bytes; a test pins it).
    """

    __slots__ = ("_body",)

    def __init__(self, fields: list[tuple[bytes, bytes]]) -> None:
        self._body = encode_block(fields)[:-1]  # without its checksum byte

    def render(self, values: tuple[object, ...]) -> bytes:
        body = self._body % values
        return body + _BYTE[checksum_byte(body)]


_BYTE = tuple(bytes((i,)) for i in range(256))
_ON_OFF = (b"OFF", b"ON")


def bmv_templates(smartshunt: bool) -> tuple[_Template, _Template]:
    """Main block and H block of a BMV-712 Smart (FW 4.08) or a SmartShunt 500A (FW 4.05)."""
    main = [
        (b"PID", b"0xA389" if smartshunt else b"0xA381"),
        (b"V", b"%d"),
        (b"VS", b"%d"),
        (b"I", b"%d"),
        (b"P", b"%d"),
        (b"CE", b"%d"),
        (b"SOC", b"%d"),
        (b"TTG", b"%d"),
        (b"Alarm", b"%s"),
        (b"Relay", b"%s"),
        (b"AR", b"%d"),
        (b"BMV", b"SmartShunt 500A/50mV" if smartshunt else b"712 Smart"),
        (b"FW", b"0405" if smartshunt else b"0408"),
        (b"MON", b"0"),
    ]
    if smartshunt:  # no relay; no MON at FW 4.05
        main = [field for field in main if field[0] not in (b"Relay", b"MON")]
    history = [(b"H%d" % n, b"%d") for n in (*range(1, 13), 15, 16, 17, 18)]
    return _Template(main), _Template(history)


def bmv_blocks(plant: Plant, main: _Template, history: _Template, relay: bool) -> list[bytes]:
    """One update of a BMV or SmartShunt: the main block, then the H block."""
    i_ma = round(plant.i_batt * 1000.0)
    soc = plant.soc
    if i_ma < 0:
        remaining = max(0.0, (soc - DISCHARGE_FLOOR) / 100.0 * CAPACITY_AH)
        ttg = min(14_400, round(remaining / (-i_ma / 1000.0) * 60.0))
    else:
        ttg = -1  # not discharging: infinite
    ar = (1 if plant.alarm_low_v else 0) | (4 if plant.alarm_low_soc else 0)
    values: tuple[object, ...] = (
        round(plant.v * 1000.0),
        round(plant.vs * 1000.0),
        i_ma,
        round(plant.v * plant.i_batt),
        round(plant.ce * 1000.0),
        round(soc * 10.0),
        ttg,
        _ON_OFF[ar != 0],
    )
    values += (_ON_OFF[plant.alarm_low_soc], ar) if relay else (ar,)
    average = plant.depth_sum / plant.depth_count if plant.depth_count else 0.0
    h_values = (
        round(plant.deepest * 1000.0),  # H1..H3 mAh
        round(plant.last_depth * 1000.0),
        round(average * 1000.0),
        plant.cycles,
        plant.full_discharges,
        round(plant.drawn * 1000.0),  # H6 mAh
        round(plant.v_min * 1000.0),  # H7, H8 mV
        round(plant.v_max * 1000.0),
        plant.since_full,  # H9 s
        plant.syncs,
        plant.low_v_alarms,
        plant.high_v_alarms,
        round(plant.vs_min * 1000.0),  # H15, H16 mV
        round(plant.vs_max * 1000.0),
        int(plant.e_discharged // 10.0),  # H17, H18 0.01 kWh
        int(plant.e_charged // 10.0),
    )
    return [main.render(values), history.render(h_values)]


def mppt_template(serial: bytes) -> _Template:
    """The single block of a SmartSolar MPPT 100/20 (FW 1.59)."""
    return _Template(
        [
            (b"PID", b"0xA05F"),
            (b"FW", b"159"),
            (b"SER#", serial),
            (b"V", b"%d"),
            (b"I", b"%d"),
            (b"VPV", b"%d"),
            (b"PPV", b"%d"),
            (b"CS", b"%d"),
            (b"MPPT", b"%d"),
            (b"OR", b"%s"),
            (b"ERR", b"0"),
            (b"LOAD", b"%s"),
            (b"IL", b"%d"),
            (b"H19", b"%d"),
            (b"H20", b"%d"),
            (b"H21", b"%d"),
            (b"H22", b"%d"),
            (b"H23", b"%d"),
            (b"HSDS", b"%d"),
        ]
    )


def off_reason(plant: Plant) -> bytes:
    """OR: switched off by the device mode register, or no input power at night."""
    if not plant.charger_on:
        return b"0x00000004"
    return b"0x00000001" if plant.cs == CS_OFF else b"0x00000000"


def mppt_blocks(plant: Plant, block: _Template) -> list[bytes]:
    """One update of the MPPT."""
    values = (
        round(plant.v * 1000.0),
        round(plant.i_charge * 1000.0),
        round(plant.vpv * 1000.0),
        round(plant.ppv),
        plant.cs,
        plant.tracker,
        off_reason(plant),
        _ON_OFF[plant.load_on],
        round(plant.load_out * 1000.0),
        int(plant.yield_total // 10.0),  # H19, H20 0.01 kWh
        int(plant.yield_today // 10.0),
        round(plant.pmax_today),
        int(plant.yield_yesterday // 10.0),
        round(plant.pmax_yesterday),
        plant.hsds,
    )
    return [block.render(values)]


# -- asynchronous HEX records --------------------------------------------------------------


def async_record(register: int, value: float) -> bytes:
    """An asynchronous HEX record (``:A…\n``) carrying ``value``, in the register's unit.

    Scaling and layout come from :mod:`vedirect_async.registers`'s register table, so the
    record is exactly what a device would send (and what the HEX decoder reads back).
    """
    raw = encode_register(register, value)
    return RegisterMessage(Command.ASYNC, register, value=raw).encode()


def bmv_registers(plant: Plant) -> list[tuple[int, float]]:
    return [
        (0xED8D, plant.v),  # main voltage
        (0xED8F, plant.i_batt),  # current
        (0x0FFF, plant.soc),  # state of charge
        (0xEEFF, plant.ce),  # consumed Ah
    ]


def mppt_registers(plant: Plant) -> list[tuple[int, float]]:
    return [
        (0xEDBB, plant.vpv),  # panel voltage
        (0xEDBC, plant.ppv),  # panel power
        (0x0201, plant.cs),  # device state
        (0xEDD5, plant.v),  # charger voltage
        (0xEDD7, plant.i_charge),  # charger current
    ]
