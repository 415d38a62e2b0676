from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.dart.blocks import (
    Block,
    BlockError,
    CdAllowedNozzles,
    CdCommand,
    CdPresetAmount,
    CdPresetVolume,
    CdPrices,
    CdResume,
    CdSuspend,
    CdTotalsRequest,
    DcAlarm,
    DcFilling,
    DcIdentity,
    DcNozzle,
    DcPrices,
    DcStatus,
    DcTotals,
    Direction,
    RawBlock,
    bcd_decode,
    bcd_encode,
    parse_blocks,
)
from drivers.dart.codec import DecodeError, Decoder, Frame, Kind, crc16_arc, encode

CD, DC = Direction.TO_PUMP, Direction.FROM_PUMP

#: PROTOCOLS.md 1.10: (name, hex, direction, expected frame)
VECTORS = [
    ("V1", "50 30 05 06 00 11 75 00 11 75 DA C7 03 FA", CD, Frame(0x50, Kind.DATA, 0, (CdPrices((1175, 1175)),))),
    (
        "V2",
        "50 34 02 02 01 02 01 01 05 70 ED 03 FA",
        CD,
        Frame(0x50, Kind.DATA, 4, (CdAllowedNozzles((1, 2)), CdCommand(5))),
    ),
    ("V3", "51 30 65 01 01 22 83 03 FA", CD, Frame(0x51, Kind.DATA, 0, (CdTotalsRequest(1),))),
    ("V4", "50 37 01 01 06 1E 2A 03 FA", CD, Frame(0x50, Kind.DATA, 7, (CdCommand(6),))),
    (
        "V5",
        "50 36 01 01 02 03 04 00 21 80 11 0E 48 03 FA",
        DC,
        Frame(0x50, Kind.DATA, 6, (DcStatus(2), DcNozzle(2180, 1, True))),
    ),
    ("C1", "50 20 FA", CD, Frame(0x50, Kind.POLL)),
    ("C2", "50 70 FA", DC, Frame(0x50, Kind.EOT)),
    ("C3", "50 C5 FA", DC, Frame(0x50, Kind.ACK, 5)),
    ("D1", "50 38 01 01 08 9C 10 FA 03 FA", CD, Frame(0x50, Kind.DATA, 8, (CdCommand(8),))),
    ("D2", "5B 30 01 01 05 10 FA 9E 03 FA", CD, Frame(0x5B, Kind.DATA, 0, (CdCommand(5),))),
    ("D3", "50 31 04 04 00 00 50 00 E9 BB 03 FA", CD, Frame(0x50, Kind.DATA, 1, (CdPresetAmount(5000),))),
]
IDS = [v[0] for v in VECTORS]
GARBAGE = bytes.fromhex("00 11 33 10 55 03")


def feed_all(decoder: Decoder, chunks: list[bytes]) -> list[Frame | DecodeError]:
    out: list[Frame | DecodeError] = []
    for chunk in chunks:
        out += decoder.feed(chunk)
    return out


def frames(items: list[Frame | DecodeError]) -> list[Frame]:
    return [i for i in items if isinstance(i, Frame)]


def test_crc_check_value() -> None:
    assert crc16_arc(b"123456789") == 0xBB3D


@pytest.mark.parametrize(("name", "hexstr", "direction", "expected"), VECTORS, ids=IDS)
def test_vector_whole_and_encode(name: str, hexstr: str, direction: Direction, expected: Frame) -> None:
    raw = bytes.fromhex(hexstr)
    assert Decoder(direction).feed(raw) == [expected]
    assert encode(expected) == raw


@pytest.mark.parametrize(("name", "hexstr", "direction", "expected"), VECTORS, ids=IDS)
def test_vector_split_everywhere(name: str, hexstr: str, direction: Direction, expected: Frame) -> None:
    raw = bytes.fromhex(hexstr)
    for cut in range(1, len(raw)):
        assert feed_all(Decoder(direction), [raw[:cut], raw[cut:]]) == [expected]
    assert feed_all(Decoder(direction), [bytes((b,)) for b in raw]) == [expected]


@pytest.mark.parametrize(("name", "hexstr", "direction", "expected"), VECTORS, ids=IDS)
def test_vector_in_garbage(name: str, hexstr: str, direction: Direction, expected: Frame) -> None:
    raw = bytes.fromhex(hexstr)
    decoder = Decoder(direction)
    stream = GARBAGE + raw + GARBAGE + raw
    items = feed_all(decoder, [bytes((b,)) for b in stream])
    assert frames(items) == [expected, expected]
    assert all(i.reason == "garbage" for i in items if isinstance(i, DecodeError))
    assert decoder.buffered == 0


def test_garbage_with_sf_then_frame() -> None:
    raw = bytes.fromhex(VECTORS[0][1])
    items = Decoder(CD).feed(b"\x01\x02\xfa" + raw)
    assert items == [DecodeError("garbage", b"\x01\x02\xfa"), VECTORS[0][3]]


def test_stuffed_garbage_prefix_is_reported_raw() -> None:
    raw = bytes.fromhex(VECTORS[0][1])
    items = Decoder(CD).feed(b"\x10\xfa\x44" + raw)
    assert items == [DecodeError("garbage", b"\x10\xfa\x44"), VECTORS[0][3]]


def test_crc_failure_is_an_error_not_a_frame() -> None:
    raw = bytearray(bytes.fromhex(VECTORS[3][1]))
    raw[4] ^= 0x01
    assert Decoder(CD).feed(bytes(raw)) == [DecodeError("crc", bytes(raw))]


def test_missing_etx_and_bad_block_and_overflow() -> None:
    body = bytes.fromhex("50 30 01 01 00")
    crc = crc16_arc(body)
    no_etx = body + bytes((crc & 0xFF, crc >> 8, 0x04, 0xFA))
    assert Decoder(CD).feed(no_etx)[0].reason == "bad frame"  # type: ignore[union-attr]
    bad = bytes.fromhex("50 30 01 02 00 00")
    crc = crc16_arc(bad)
    item = Decoder(CD).feed(bad + bytes((crc & 0xFF, crc >> 8, 3, 0xFA)))[0]
    assert isinstance(item, DecodeError)
    assert item.reason.startswith("bad frame:")
    decoder = Decoder(CD, max_frame_bytes=16)
    assert decoder.feed(b"\x50" * 20) == [DecodeError("overflow", b"\x50" * 20)]
    assert decoder.buffered == 0


def test_trailing_dle_waits_for_next_byte() -> None:
    decoder = Decoder(CD)
    assert decoder.feed(b"\x50\x10") == []
    assert decoder.buffered == 2
    assert decoder.clear() == b"\x50\x10"


def test_control_frames_rules() -> None:
    assert Decoder(CD).feed(b"\x50\x21\xfa") == [DecodeError("garbage", b"\x50\x21\xfa")]  # POLL has no TX#
    assert Decoder(CD).feed(b"\x40\x20\xfa") == [DecodeError("garbage", b"\x40\x20\xfa")]
    assert Decoder(CD).feed(b"\x50\x10\xfa") == []  # escaped FA: frame not finished
    assert Decoder(CD).feed(b"\x6f\xe3\xfa\x50\x40\xfa\x50\x5f\xfa") == [
        Frame(0x6F, Kind.ACKPOLL, 3),
        Frame(0x50, Kind.IAP),
        Frame(0x50, Kind.NAK, 15),
    ]


def test_encode_rejects_bad_frames() -> None:
    with pytest.raises(ValueError, match="address"):
        encode(Frame(0x4F, Kind.POLL))
    with pytest.raises(ValueError, match="TX#"):
        encode(Frame(0x50, Kind.ACK, 16))
    with pytest.raises(ValueError, match="only DATA"):
        encode(Frame(0x50, Kind.ACK, 1, (CdCommand(0),)))
    with pytest.raises(ValueError, match="at least one"):
        encode(Frame(0x50, Kind.DATA, 1))
    with pytest.raises(ValueError, match="255"):
        encode(Frame(0x50, Kind.DATA, 1, (RawBlock(0x99, bytes(256)),)))


def test_bcd() -> None:
    assert bcd_encode(1175, 3) == b"\x00\x11\x75"
    assert bcd_decode(b"\x00\x11\x75") == 1175
    with pytest.raises(BlockError):
        bcd_decode(b"")
    with pytest.raises(ValueError, match="fit"):
        bcd_encode(1_000_000, 3)
    with pytest.raises(ValueError, match="fit"):
        bcd_encode(-1, 3)
    with pytest.raises(BlockError, match="BCD"):
        bcd_decode(b"\x1a")


def test_block_errors() -> None:
    for data in (b"", b"\x01", b"\x01\x02\x00", b"\x05\x02\x00\x00", b"\x02\x00", b"\x01\x02\x00\x00"):
        with pytest.raises(BlockError):
            parse_blocks(data, CD)
    with pytest.raises(BlockError):
        parse_blocks(b"\x67\x00", DC)
    with pytest.raises(NotImplementedError):
        Block().payload()


ALL_CD: list[Block] = [
    CdCommand(4),
    CdAllowedNozzles((1, 2, 3)),
    CdPresetVolume(12345678),
    CdPresetAmount(5000),
    CdPrices((789, 999_999)),
    CdSuspend(0),
    CdResume(1),
    CdTotalsRequest(2),
    RawBlock(0x07, b"\x0a\x01"),
]
ALL_DC: list[Block] = [
    DcStatus(4),
    DcFilling(1234, 9876),
    DcNozzle(812, 2, False),
    DcAlarm(9),
    DcIdentity(1234567890),
    DcTotals(1, 9_999_999_999, 123, 0),
    DcPrices((789, 812)),
    RawBlock(0x66, b"\x01\x00"),
]


@pytest.mark.parametrize(("direction", "blocks"), [(CD, ALL_CD), (DC, ALL_DC)])
def test_every_block_round_trips(direction: Direction, blocks: list[Block]) -> None:
    frame = Frame(0x6F, Kind.DATA, 15, tuple(blocks))
    assert Decoder(direction).feed(encode(frame)) == [frame]


nasty = st.binary(min_size=1, max_size=40).map(lambda b: bytes(x if x % 3 else 0xFA if x % 2 else 0x10 for x in b))
raw_blocks = st.lists(
    st.builds(RawBlock, st.sampled_from([0x07, 0x09, 0x0D, 0x99, 0xFA, 0x10]), nasty), min_size=1, max_size=4
)
data_frames = st.builds(
    Frame,
    st.integers(0x50, 0x6F),
    st.just(Kind.DATA),
    st.integers(0, 15),
    raw_blocks.map(tuple),
)


@settings(max_examples=300, deadline=None)
@given(data_frames, st.integers(1, 30))
def test_round_trip_full_of_fa_and_dle(frame: Frame, chunk: int) -> None:
    wire = encode(frame)
    chunks = [wire[i : i + chunk] for i in range(0, len(wire), chunk)]
    assert feed_all(Decoder(CD), chunks) == [frame]


@settings(max_examples=500, deadline=None)
@given(data_frames, st.data())
def test_any_single_corrupted_byte_is_rejected(frame: Frame, data: st.DataObject) -> None:
    wire = bytearray(encode(frame))
    i = data.draw(st.integers(0, len(wire) - 1))
    wire[i] = data.draw(st.integers(0, 255).filter(lambda v: v != wire[i]))
    items = Decoder(CD).feed(bytes(wire)) + Decoder(CD).feed(b"")
    assert frame not in items
    assert not [f for f in frames(items) if f.kind is Kind.DATA]
