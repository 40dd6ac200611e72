"""The field catalogue: units, scales, enums, bitmasks, placeholders, PIDs, round trips."""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vedirect_async import fields
from vedirect_async.fields import (
    CATALOGUE,
    PRODUCTS,
    UNAVAILABLE,
    Field,
    Kind,
    Value,
    decode_value,
    encode_value,
    lookup,
    product_family,
    product_name,
    try_decode,
    unit_of,
)
from vedirect_async.parser import Parser, TextBlock, encode_block
from vedirect_async.reading import UNAVAILABLE as READING_UNAVAILABLE

# -- units and scales ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "raw", "value", "unit"),
    [
        ("V", b"12065", 12.065, "V"),
        ("V", b"-14", -0.014, "V"),
        ("VS", b"12800", 12.8, "V"),
        ("VPV", b"103870", 103.87, "V"),
        ("I", b"-7625", -7.625, "A"),
        ("IL", b"300", 0.3, "A"),
        ("P", b"-92", -92, "W"),
        ("PPV", b"412", 412, "W"),
        ("CE", b"-65473", -65.473, "Ah"),
        ("SOC", b"839", 83.9, "%"),
        ("SOC", b"1000", 100.0, "%"),
        ("DM", b"-3", -0.3, "%"),
        ("TTG", b"942", 942, "min"),
        ("T", b"25", 25, "°C"),
        ("H1", b"-149322", -149.322, "Ah"),
        ("H9", b"368003", 368003, "s"),
        ("H17", b"6843", 68.43, "kWh"),
        ("H18", b"8527", 85.27, "kWh"),
        ("H19", b"1158", 11.58, "kWh"),
        ("H20", b"77", 0.77, "kWh"),
        ("H21", b"479", 479, "W"),
        ("H22", b"135", 1.35, "kWh"),
        ("H23", b"525", 525, "W"),
        ("AC_OUT_V", b"23001", 230.01, "V"),
        ("AC_OUT_I", b"15", 1.5, "A"),
        ("AC_OUT_S", b"345", 345, "VA"),
        ("DC_IN_V", b"1262", 12.62, "V"),
        ("DC_IN_I", b"138", 13.8, "A"),
        ("DC_IN_P", b"174", 174, "W"),
        ("HSDS", b"274", 274, ""),
    ],
)
def test_numbers_are_scaled_to_their_unit(label: str, raw: bytes, value: float, unit: str) -> None:
    """Each numeric label decodes to its unit (mV->V, mAh->Ah, per mille->%, 0.01 kWh->kWh)."""
    decoded = decode_value(label, raw)
    assert decoded == value
    assert type(decoded) is type(value)  # unscaled stay int, scaled are float
    assert unit_of(label) == unit
    found = lookup(label)
    assert found is not None
    assert unit_of(found.name) == unit


def test_scaled_values_are_exact_decimal_divisions() -> None:
    """Scaling divides (12345 / 1000 == 12.345), so no 12.345000000000001 reaches a display."""
    assert decode_value("V", b"12345") == 12.345
    assert repr(decode_value("CE", b"-5526294")) == "-5526.294"
    assert repr(decode_value("H17", b"1")) == "0.01"


# -- placeholders -------------------------------------------------------------------------


@pytest.mark.parametrize("label", ["CE", "SOC", "TTG", "T", "H6", "H9", "H10", "V", "CS"])
def test_dashes_are_unavailable_never_zero(label: str) -> None:
    """``---`` decodes to UNAVAILABLE (falsy but distinct from 0) for any non-text field."""
    value = decode_value(label, b"---")
    assert value is UNAVAILABLE
    assert not isinstance(value, int | float)
    assert READING_UNAVAILABLE is UNAVAILABLE  # one sentinel, importable from both modules


def test_dashes_in_a_text_field_stay_text() -> None:
    """A text field (serial number, model) that says ``---`` is kept as the text ``---``."""
    assert decode_value("SER#", b"---") == "---"


def test_ttg_minus_one_is_infinite() -> None:
    """TTG -1 (battery not discharging) is infinity; -1 elsewhere is just -1."""
    assert decode_value("TTG", b"-1") == math.inf
    assert decode_value("TTG", b"-2") == -2
    assert decode_value("P", b"-1") == -1
    assert decode_value("I", b"-1") == -0.001


# -- ON/OFF, enums, bitmasks --------------------------------------------------------------


def test_on_off() -> None:
    """ON/OFF (any case) become True/False; anything else is undecodable (UNAVAILABLE)."""
    assert decode_value("Alarm", b"ON") is True
    assert decode_value("Relay", b"OFF") is False
    assert decode_value("LOAD", b"ON") is True
    assert decode_value("LOAD", b"On") is True
    assert decode_value("Relay", b"off") is False
    relay = lookup("Relay")
    assert relay is not None
    assert try_decode(relay, b"Onn") is None
    assert decode_value("Relay", b"1") is UNAVAILABLE


@pytest.mark.parametrize(
    ("label", "raw", "name"),
    [
        ("CS", b"0", "off"),
        ("CS", b"3", "bulk"),
        ("CS", b"5", "float"),
        ("CS", b"9", "inverting"),
        ("CS", b"245", "starting up"),
        ("CS", b"252", "external control"),
        ("CS", b"77", "unknown (77)"),
        ("ERR", b"0", "no error"),
        ("ERR", b"2", "battery voltage too high"),
        ("ERR", b"33", "input voltage too high"),
        ("ERR", b"119", "user settings invalid"),
        ("ERR", b"118", "incompatible hardware"),  # VELIB, not OpenDTU's "settings invalid"
        ("ERR", b"40", "internal failure (PV short protection)"),
        ("ERR", b"1", "battery temperature too high"),  # VELIB name past the VD3.33 set
        ("ERR", b"99", "unknown (99)"),
        ("MPPT", b"2", "MPP tracker active"),
        ("MPPT", b"0", "off"),
        ("MODE", b"2", "inverter"),
        ("MODE", b"4", "off"),
        ("MODE", b"253", "hibernate"),
        ("MON", b"0", "battery monitor"),
        ("MON", b"-9", "solar charger"),
        ("MON", b"8", "water heater"),
    ],
)
def test_enums_decode_to_names(label: str, raw: bytes, name: str) -> None:
    """CS, ERR (VD3.33, then VELIB, then "unknown (n)"), MPPT, MODE, MON decode to names."""
    assert decode_value(label, raw) == name


@pytest.mark.parametrize(
    ("label", "raw", "reasons"),
    [
        ("AR", b"0", ()),
        ("AR", b"140", ("low SOC", "low starter voltage", "mid voltage")),
        ("AR", b"1", ("low voltage",)),
        ("WARN", b"256", ("overload",)),
        ("AR", b"65536", ("bit 16",)),
        ("OR", b"0x00000000", ()),
        ("OR", b"0x00000009", ("no input power", "remote input")),
        ("OR", b"0x00000001", ("no input power",)),
        ("OR", b"0x00008000", ("active alarm prevents start",)),
    ],
)
def test_bitmasks_decode_to_reasons(label: str, raw: bytes, reasons: tuple[str, ...]) -> None:
    """AR/WARN (decimal) and OR (0x hex) decode to their reasons, lowest bit first."""
    assert decode_value(label, raw) == reasons


def test_negative_bitmask_is_undecodable() -> None:
    """A negative AR is not a bitmask: UNAVAILABLE, try_decode says None."""
    ar = lookup("AR")
    assert ar is not None
    assert try_decode(ar, b"-4") is None
    assert decode_value(ar, b"-4") is UNAVAILABLE


# -- identity fields ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "raw", "version"),
    [
        ("FW", b"0308", "3.08"),
        ("FW", b"0408", "4.08"),
        ("FW", b"156", "1.56"),
        ("FW", b"123", "1.23"),
        ("FW", b"C208", "2.08-rc-C"),
        ("FWE", b"316FF", "3.16"),
        ("FWE", b"0325FF", "3.25"),
        ("FWE", b"112FF", "1.12"),
        ("FWE", b"0208FF", "2.08"),
        ("FWE", b"208FF", "2.08"),
        ("FWE", b"020801", "2.08-beta-01"),
    ],
)
def test_firmware_formats(label: str, raw: bytes, version: str) -> None:
    """FW (leading zero, release-candidate letter) and FWE (FF = release) decode to "3.08"."""
    assert decode_value(label, raw) == version


def test_firmware_that_is_not_a_version_is_text() -> None:
    """A firmware value that does not parse is UNAVAILABLE and reported undecodable."""
    fw = lookup("FW")
    assert fw is not None
    assert try_decode(fw, b"v3.x") is None
    assert decode_value(fw, b"v3.x") is UNAVAILABLE


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [(b"0x203", "0x0203"), (b"0xA053", "0xA053"), (b"0xa053", "0xA053"), (b"0X0300", "0x0300")],
)
def test_pid_is_normalised(raw: bytes, normalised: str) -> None:
    """PIDs come in any case and padding; they decode to one normal form."""
    assert decode_value("PID", raw) == normalised


def test_all_174_products_are_named() -> None:
    """All 174 PIDs of protocol.md section 5 are in the table, with the section 8 resolutions,
    plus 0xC038 (SmartShunt 300A/50mV, issue 13), a battery monitor."""
    assert len(PRODUCTS) == 175
    assert PRODUCTS[0xC038] == "SmartShunt 300A/50mV"
    assert product_family(0xC038) == "bmv"
    assert PRODUCTS[0x0203] == "BMV-700"
    assert PRODUCTS[0xA381] == "BMV-712 Smart"
    assert PRODUCTS[0xA389] == "SmartShunt 500A/50mV"
    assert PRODUCTS[0xA05F] == "SmartSolar MPPT 100/20"
    assert PRODUCTS[0xA06D] == "SmartSolar MPPT 150/85 rev3"
    assert PRODUCTS[0xA078] == "BlueSolar MPPT 150/35 rev3"
    assert PRODUCTS[0xA074] == "SmartSolar MPPT 75/10 rev2"
    assert PRODUCTS[0xA117] == "BlueSolar MPPT VE.Can 150/100 rev2"
    assert PRODUCTS[0xA2F9] == "Phoenix Inverter 12V 1200VA 120Vac 64k HS"
    assert PRODUCTS[0xA110] == "SmartSolar MPPT RS 450/100"
    assert "BuckBoost" in PRODUCTS[0xA3F0]
    assert "Orion XS" in PRODUCTS[0xA3F0]
    assert PRODUCTS[0xA442] == "Multi RS Solar 48V 6000VA 230V"


@pytest.mark.parametrize(
    ("pid", "family", "name"),
    [
        (0xA053, "mppt", "SmartSolar MPPT 75/15"),
        (0xA07F + 0, "mppt", "All-In-1 SmartSolar MPPT 75/15 12V"),
        (0xA0F0, "unknown", "unknown product (0xA0F0)"),
        (0xA1F0, "mppt", "unknown MPPT (0xA1F0)"),
        (0xA38F, "bmv", "unknown BMV / SmartShunt (0xA38F)"),
        (0xA2C0, "inverter", "unknown Phoenix inverter (0xA2C0)"),
        (0xA348, "charger", "unknown charger (0xA348)"),
        (0xA3F7, "dcdc", "unknown DC-DC converter (0xA3F7)"),
        (0xA445, "multi", "unknown Multi RS (0xA445)"),
        (0x1234, "unknown", "unknown product (0x1234)"),
    ],
)
def test_unknown_pids_fall_back_to_their_family(pid: int, family: str, name: str) -> None:
    """A PID missing from the table is named by its family range, never a crash or a blank."""
    assert product_family(pid) == family
    assert product_name(pid) == name


# -- unknown labels and bad bytes ---------------------------------------------------------


@pytest.mark.parametrize("label", ["XYZ", b"NEW_1", "CVPV", "checksum"])
def test_unknown_labels_decode_as_text(label: str | bytes) -> None:
    """A label the catalogue does not know decodes its value as text, never raises."""
    assert decode_value(label, b"136663") == "136663"


def test_hc_is_an_opaque_string() -> None:
    """HC# (undocumented, Blue Smart IP65) is kept as text, digits and all."""
    assert decode_value("HC#", b"136663") == "136663"


def test_nul_and_non_utf8_bytes_are_escaped_in_text() -> None:
    """A NUL inside SER# (emonhub#160) and byte 0xA5 (emonhub#113) become visible \\xNN escapes."""
    assert decode_value("SER#", b"HQ2035\x00I1QX1") == "HQ2035\\x00I1QX1"
    assert decode_value("BMV", b"712\xa5Smart") == "712\\xa5Smart"
    assert decode_value("XYZ", b"\x7f\x01") == "\\x7f\\x01"


@pytest.mark.parametrize(
    ("label", "raw"),
    [("V", b"12\x0065"), ("SOC", b"\xa5"), ("CS", b"3 "), ("PID", b"0xZZ"), ("I", b"1_000")],
)
def test_numbers_that_do_not_parse_are_unavailable(label: str, raw: bytes) -> None:
    """A numeric field whose value is not a number is UNAVAILABLE, never text under its unit
    (try_decode: None, so the assembler counts it)."""
    found = lookup(label)
    assert found is not None
    assert try_decode(found, raw) is None
    assert decode_value(label, raw) is UNAVAILABLE


@given(
    st.sampled_from(["V", "I", "SOC", "H9", "CS", "AR"]),
    st.one_of(st.binary(max_size=16), st.from_regex(rb"\A[-+ _0-9]{0,15}\Z")),
)
def test_a_number_is_exactly_minus_and_1_to_12_ascii_digits(label: str, raw: bytes) -> None:
    """Numeric, enum and bitmask values parse exactly when they are -?[0-9]{1,12} (no +, _,
    spaces or non-ASCII digits, which int() alone would take); anything else is undecodable."""
    found = lookup(label)
    assert found is not None
    number = re.fullmatch(rb"-?[0-9]{1,12}", raw) is not None
    if found.kind is Kind.BITMASK:
        number = number and not raw.startswith(b"-")
    if raw != b"---":
        assert (try_decode(found, raw) is not None) == number


@given(st.binary(max_size=24))
def test_text_keeps_printable_ascii_and_escapes_every_other_byte(raw: bytes) -> None:
    """text_of keeps bytes 0x20-0x7E as they are and writes every other byte as \\xNN."""
    expected = "".join(chr(b) if 0x20 <= b <= 0x7E else f"\\x{b:02x}" for b in raw)
    assert fields.text_of(raw) == expected


@given(st.sampled_from(sorted(CATALOGUE)), st.binary(max_size=40))
def test_decode_never_raises(label: str, raw: bytes) -> None:
    """Any bytes in any field decode to a value without raising."""
    value = decode_value(label, raw)
    assert value is UNAVAILABLE or isinstance(value, float | int | str | tuple)


# -- the catalogue itself -----------------------------------------------------------------


def test_lookup_by_label_and_by_name() -> None:
    """lookup() accepts catalogue names and exact-case labels; unknown gives None."""
    soc = lookup("SOC")
    assert soc is not None
    assert soc.name == "soc"
    assert lookup("soc") is soc
    assert lookup("Alarm") is lookup("alarm")
    assert lookup("SER#") is lookup("serial_number")
    assert lookup("firmware") is lookup("FW")  # FW and FWE share the name
    assert lookup("nope") is None
    assert unit_of("nope") == ""


def test_names_are_topic_safe_and_unique_per_label() -> None:
    """Every name is snake_case (MQTT topics, CSV headers); only FW/FWE share one."""
    names: dict[str, str] = {}
    for label, found in CATALOGUE.items():
        assert found.label == label
        assert found.name.replace("_", "").isalnum(), found.name
        assert found.name.islower(), found.name
        if found.name in names:
            assert {names[found.name], label} == {"FW", "FWE"}
        names[found.name] = label
    assert len(CATALOGUE) == 64


def test_field_is_frozen() -> None:
    """Fields are immutable, so the shared catalogue cannot be changed by a caller."""
    soc = lookup("SOC")
    assert soc is not None
    with pytest.raises(AttributeError):
        soc.unit = "x"  # type: ignore[misc]


# -- round trip ---------------------------------------------------------------------------

_SAMPLES: dict[Kind, list[Value]] = {
    Kind.ON_OFF: [True, False],
    Kind.PID: ["0x0203", "0xA053", "0xA3F0"],
    Kind.FIRMWARE: ["3.08", "1.56", "2.08-rc-C"],
    Kind.FIRMWARE_EXT: ["3.16", "3.25", "2.08-beta-01"],
    # (a NUL in text is escaped by text_of, but the parser rejects a block with one: 16.1)
    Kind.TEXT: ["HQ2249TNFVM", "712 Smart", "SmartShunt 500A/50mV", "HQ2035\\xa5I1QX1"],
}


def _samples(found: Field) -> list[Value]:
    if found.kind is Kind.NUMBER:
        samples: list[Value] = [0, 1, -1, 12345, -65473, 2**31 - 1, UNAVAILABLE]
        if found.divisor != 1:
            samples = [n / found.divisor if isinstance(n, int) else n for n in samples]
        if found.label == "TTG":
            samples = [s for s in samples if s != -1] + [math.inf]  # -1 *is* infinity
        return samples
    if found.kind is Kind.ENUM:
        return [*found.table.values(), "unknown (77)", UNAVAILABLE]
    if found.kind in (Kind.BITMASK, Kind.HEX_BITMASK):
        every_bit = tuple(found.table[bit] for bit in sorted(found.table))
        return [(), every_bit, (found.table[0], "bit 20"), UNAVAILABLE]
    return _SAMPLES[found.kind]


@pytest.mark.parametrize("label", sorted(CATALOGUE))
def test_round_trip_through_encode_block_and_the_parser(label: str) -> None:
    """encode_value + encode_block give blocks that the parser accepts and decode back equal."""
    found = CATALOGUE[label]
    parser = Parser()
    for value in _samples(found):
        wire = encode_value(found, value)
        block = encode_block([(b"PID", b"0xA053"), (label.encode("ascii"), wire)])
        events = parser.feed(block)
        assert len(events) == 1, (value, events)
        assert isinstance(events[0], TextBlock), (value, events)
        got_label, got_raw = events[0].fields[1]
        assert got_label.decode() == label
        assert decode_value(label, got_raw) == value, (label, value, wire)


def test_encode_rejects_what_a_field_cannot_carry() -> None:
    """encode_value raises ValueError for impossible values (our own simulator's mistakes)."""
    with pytest.raises(ValueError, match="needs a number"):
        encode_value("V", "twelve")
    with pytest.raises(ValueError, match="not a known name"):
        encode_value("CS", "flying")
    with pytest.raises(ValueError, match="cannot be sent"):
        encode_value("SER#", "a\tb")
    with pytest.raises(ValueError, match="unknown field"):
        encode_value("nope", 1)
    with pytest.raises(ValueError, match="not a firmware version"):
        encode_value("FW", "latest")


def test_module_exports_exist() -> None:
    """Everything in fields.__all__ is importable (others build on this API)."""
    for name in fields.__all__:
        assert hasattr(fields, name), name


@pytest.mark.parametrize(
    ("code", "name"),
    [
        *((n, "network misconfigured") for n in (68, 69, 70, 71)),
        *((n, "PV input shutdown") for n in range(80, 88)),
        (202, "PV residual current sensor self-test failure"),
    ],
)
def test_current_victron_error_codes_are_named(code: int, name: str) -> None:
    """ERR 69-71, 80-87 and 202 (Victron's current list) have their names, not "unknown"."""
    assert decode_value("ERR", b"%d" % code) == name
    assert encode_value("ERR", code) == b"%d" % code
