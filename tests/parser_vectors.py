"""The text test vectors of protocol.md section 7, as literal bytes (shared by the parser tests).

Each is ``(hex_records_before, block)``: the async HEX records that precede the block on the
wire (T8b, T9, T12), and the block from its leading CR LF through its checksum byte.
"""

from __future__ import annotations

T1 = (
    b"\r\nPID\t0x203\r\nV\t26201\r\nI\t0\r\nP\t0\r\nCE\t0\r\nSOC\t1000\r\nTTG\t-1\r\nAlarm\tOFF"
    b"\r\nRelay\tOFF\r\nAR\t0\r\nBMV\t700\r\nFW\t0307\r\nChecksum\t\xd8"
)
T2A = (
    b"\r\nPID\t0x203\r\nV\t12164\r\nI\t-2674\r\nP\t-33\r\nCE\t-65887\r\nSOC\t837\r\nTTG\t2199"
    b"\r\nAlarm\tOFF\r\nRelay\tOFF\r\nAR\t0\r\nBMV\t700\r\nFW\t0308\r\nChecksum\t:"
)
T2B = (
    b"\r\nH1\t-149322\r\nH2\t-82854\r\nH3\t0\r\nH4\t0\r\nH5\t0\r\nH6\t-5526707\r\nH7\t11733"
    b"\r\nH8\t16161\r\nH9\t368259\r\nH10\t26\r\nH11\t0\r\nH12\t0\r\nH17\t6843\r\nH18\t8527"
    b"\r\nChecksum\t\xb0"
)
T3A = (
    b"\r\nPID\t0xA381\r\nV\t26457\r\nVS\t34\r\nI\t-6032\r\nP\t-160\r\nCE\t-6673\r\nSOC\t937"
    b"\r\nTTG\t435\r\nAlarm\tOFF\r\nRelay\tOFF\r\nAR\t0\r\nBMV\t712 Smart\r\nFW\t0408\r\nMON\t0"
    b"\r\nChecksum\t\x9e"
)
T3B = (
    b"\r\nH1\t-96470\r\nH2\t-6673\r\nH3\t-26485\r\nH4\t29\r\nH5\t4\r\nH6\t-2316636\r\nH7\t27"
    b"\r\nH8\t28776\r\nH9\t7135\r\nH10\t31\r\nH11\t0\r\nH12\t0\r\nH15\t22\r\nH16\t38\r\nH17\t6066"
    b"\r\nH18\t6117\r\nChecksum\tj"
)
T4A = (
    b"\r\nPID\t0xA389\r\nV\t12865\r\nVS\t-14\r\nI\t0\r\nP\t0\r\nCE\t0\r\nSOC\t1000\r\nTTG\t-1"
    b"\r\nAlarm\tOFF\r\nAR\t0\r\nBMV\tSmartShunt 500A/50mV\r\nFW\t0405\r\nChecksum\tL"
)
T4B = (
    b"\r\nH1\t-32914\r\nH2\t0\r\nH3\t0\r\nH4\t0\r\nH5\t0\r\nH6\t-35652\r\nH7\t12041\r\nH8\t14282"
    b"\r\nH9\t0\r\nH10\t0\r\nH11\t0\r\nH12\t0\r\nH15\t-22\r\nH16\t0\r\nH17\t46\r\nH18\t48"
    b"\r\nChecksum\t\x1a"
)
T5 = (
    b"\r\nPID\t0xA053\r\nFW\t156\r\nSER#\tHQ1942K7LJ8\r\nV\t12450\r\nI\t0\r\nVPV\t10\r\nPPV\t0"
    b"\r\nCS\t0\r\nMPPT\t0\r\nOR\t0x00000001\r\nERR\t0\r\nLOAD\tON\r\nIL\t0\r\nH19\t3\r\nH20\t0"
    b"\r\nH21\t24\r\nH22\t1\r\nH23\t15\r\nHSDS\t3\r\nChecksum\t\xe1"
)
T6 = (
    b"\r\nPID\t0xA042\r\nFW\t150\r\nSER#\tHQ1909K249H\r\nV\t12440\r\nI\t0\r\nVPV\t0\r\nPPV\t0"
    b"\r\nCS\t0\r\nMPPT\t0\r\nERR\t0\r\nLOAD\tOFF\r\nIL\t0\r\nH19\t559\r\nH20\t24\r\nH21\t84"
    b"\r\nH22\t22\r\nH23\t67\r\nHSDS\t34\r\nChecksum\t\xc8"
)
T7 = (
    b"\r\nPID\t0xA068\r\nFW\t164\r\nSER#\tHQ2322J6VYR\r\nV\t54290\r\nI\t0\r\nVPV\t135030"
    b"\r\nPPV\t4\r\nCS\t5\r\nMPPT\t1\r\nOR\t0x00000000\r\nERR\t2\r\nLOAD\tON\r\nRelay\tOFF"
    b"\r\nH19\t607\r\nH20\t5\r\nH21\t37\r\nH22\t10\r\nH23\t29\r\nHSDS\t25\r\nChecksum\t\xe5"
)
T8A = (
    b"\r\nPID\t0xA06C\r\nFWE\t316FF\r\nSER#\tHQ2247EP3FN\r\nV\t52700\r\nI\t7600\r\nVPV\t103880"
    b"\r\nPPV\t412\r\nMPPT\t2\r\nCS\t3\r\nOR\t0x00000000\r\nChecksum\t\xf9"
)
T8B_HEX = (
    b":A2001002570030092\n:ADBED00D10AA8\n:ABCED0024A10000DD\n:ABBED009C28DF\n"
    b":AB4ED00BEA100004B\n:AB5ED00802801\n:AD5ED009714DE\n:A8DED00971426\n"
)
T8B = (
    b"\r\nERR\t0\r\nLOAD\tON\r\nRelay\tOFF\r\nH19\t1158\r\nH20\t77\r\nH21\t479\r\nH22\t135"
    b"\r\nH23\t525\r\nHSDS\t2\r\nChecksum\t\x05"
)
T9_HEX = b":A501000000000000000000000ED04C6040000000000C200000000000B0000000900C80D120172\n"
T9 = (
    b"\r\nPID\t0xA042\r\nFW\t123\r\nSER#\tHQ1411MYIKN\r\nV\t12540\r\nI\t620\r\nVPV\t34890"
    b"\r\nPPV\t8\r\nCS\t3\r\nERR\t0\r\nLOAD\tON\r\nIL\t0\r\nH19\t8272\r\nH20\t0\r\nH21\t11"
    b"\r\nH22\t25\r\nH23\t119\r\nHSDS\t274\r\nChecksum\t\xaa"
)
T10 = (
    b"\r\nPID\t0xA279\r\nFW\t0121\r\nSER#\tHQ2017JGK6S\r\nMODE\t2\r\nCS\t9\r\nAC_OUT_V\t12003"
    b"\r\nAC_OUT_I\t2\r\nV\t13308\r\nAR\t0\r\nWARN\t0\r\nOR\t0x00000000\r\nChecksum\t\x05"
)
T11 = (
    b"\r\nPID\t0xA3F0\r\nFWE\t112FF\r\nSER#\tHQ2433EWGZZ\r\nV\t13220\r\nI\t0\r\nP\t0"
    b"\r\nDC_IN_V\t1262\r\nDC_IN_I\t0\r\nDC_IN_P\t0\r\nCS\t0\r\nOR\t0x00000009\r\nERR\t0"
    b"\r\nChecksum\t\r"
)
T12_HEX = b":A8FED000D00C2\n:A8CED001E050000AF\n:AD7ED000D007A\n:A200100560C0000C8\n"
T12 = (
    b"\r\nPID\t0xA30A\r\nFWE\t0325FF\r\nSER#\tHQ2232GGMEH\r\nV\t14190\r\nI\t1000\r\nERR\t0"
    b"\r\nCS\t4\r\nHC#\t136663\r\nChecksum\t\x0b"
)
S1 = (
    b"\r\nPID\t0x203\r\nV\t26150\r\nI\t1002\r\nP\t26\r\nCE\t0\r\nSOC\t1000\r\nTTG\t-1"
    b"\r\nAlarm\tOFF\r\nRelay\tOFF\r\nAR\t0\r\nBMV\t700\r\nFW\t0307\r\nChecksum\t\n"
)
S2 = (
    b"\r\nPID\t0x203\r\nV\t26150\r\nI\t1003\r\nP\t26\r\nCE\t0\r\nSOC\t1000\r\nTTG\t-1"
    b"\r\nAlarm\tOFF\r\nRelay\tOFF\r\nAR\t0\r\nBMV\t700\r\nFW\t0307\r\nChecksum\t\t"
)
S3 = (
    b"\r\nPID\t0x203\r\nV\t26150\r\nI\t1130\r\nP\t30\r\nCE\t0\r\nSOC\t1000\r\nTTG\t-1"
    b"\r\nAlarm\tOFF\r\nRelay\tOFF\r\nAR\t0\r\nBMV\t700\r\nFW\t0307\r\nChecksum\t\r"
)
S4 = (
    b"\r\nPID\t0x203\r\nV\t26150\r\nI\t370\r\nP\t10\r\nCE\t0\r\nSOC\t1000\r\nTTG\t-1"
    b"\r\nAlarm\tOFF\r\nRelay\tOFF\r\nAR\t0\r\nBMV\t700\r\nFW\t0307\r\nChecksum\t:"
)
S5 = (
    b"\r\nPID\t0x203\r\nV\t26150\r\nI\t1029\r\nP\t27\r\nCE\t0\r\nSOC\t1000\r\nTTG\t-1"
    b"\r\nAlarm\tOFF\r\nRelay\tOFF\r\nAR\t0\r\nBMV\t700\r\nFW\t0307\r\nChecksum\t\x00"
)

# id -> (HEX records before the block, block, expected checksum byte, text length per §7.3)
TEXT_VECTORS: dict[str, tuple[bytes, bytes, int, int]] = {
    "T1": (b"", T1, 0xD8, 112),
    "T2a": (b"", T2A, 0x3A, 124),
    "T2b": (b"", T2B, 0xB0, 139),
    "T3a": (b"", T3A, 0x9E, 144),
    "T3b": (b"", T3B, 0x6A, 154),
    "T4a": (b"", T4A, 0x4C, 127),
    "T4b": (b"", T4B, 0x1A, 137),
    "T5": (b"", T5, 0xE1, 175),
    "T6": (b"", T6, 0xC8, 165),
    "T7": (b"", T7, 0xE5, 188),
    "T8a": (b"", T8A, 0xF9, 120),
    "T8b": (T8B_HEX, T8B, 0x05, 92),
    "T9": (T9_HEX, T9, 0xAA, 164),
    "T10": (b"", T10, 0x05, 131),
    "T11": (b"", T11, 0x0D, 136),
    "T12": (T12_HEX, T12, 0x0B, 96),
    "S1": (b"", S1, 0x0A, 116),
    "S2": (b"", S2, 0x09, 116),
    "S3": (b"", S3, 0x0D, 116),
    "S4": (b"", S4, 0x3A, 115),
    "S5": (b"", S5, 0x00, 116),
}

# A stream that exercises everything at once: split frames, HEX between blocks, checksum
# bytes ':', CR, LF, TAB and NUL.
ALL_BLOCKS: tuple[bytes, ...] = tuple(block for _, block, _, _ in TEXT_VECTORS.values())
STREAM = b"".join(hexes + block for hexes, block, _, _ in TEXT_VECTORS.values())
