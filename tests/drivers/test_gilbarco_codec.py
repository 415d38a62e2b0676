"""Gilbarco two-wire codec: PROTOCOLS.md 2.5/2.6 golden frames, command bytes, LRC, strict parsing."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.gilbarco.codec import (
    BlockError,
    Cmd,
    Preset,
    PriceChange,
    Status,
    command_byte,
    data_words,
    digits_value,
    encode_preset,
    encode_price,
    lrc,
    parse_preset,
    parse_price,
    parse_status,
    pump_nibble,
)
from drivers.gilbarco.link import Reply, ReplyReader
from drivers.gilbarco.replies import (
    HoseTotals,
    Money,
    Totals,
    Transaction,
    Volume,
    parse_money,
    parse_totals,
    parse_transaction,
    parse_volume,
)

#: PROTOCOLS.md 2.5: a captured 4p reply (33 words, 4-digit PPU mode, LRC EC).
GOLDEN_4P = bytes.fromhex(
    "FF F1 F8 EB E1 E0 E0 E2 F6 E2 F4 F7 E0 E7 E0 E1 F9 E0 E6 E3 E3 E2 E0 FA E0 E0 E0 E5 E2 E0 FB EC F0"
)
#: PROTOCOLS.md 2.6: derived price block, hose 1, PPU 1070.
GOLDEN_PRICE = bytes.fromhex("FF E5 F4 F6 E0 F7 E0 E7 E0 E1 FB E8 F0")


def test_golden_transaction_reply() -> None:
    assert len(GOLDEN_4P) == 33
    sale = parse_transaction(GOLDEN_4P)
    assert (sale.hose, sale.ppu, sale.volume, sale.money) == (2, 1070, 23360, 25000)
    assert sale.prefix == bytes.fromhex("F1 F8 EB E1 E0 E0 E2") and sale.ppu_digits == 4
    assert lrc(GOLDEN_4P[:-2]) == 0xEC
    assert sale.encode() == GOLDEN_4P


def test_golden_price_block() -> None:
    assert encode_price(PriceChange(1, 1070)) == GOLDEN_PRICE
    assert parse_price(GOLDEN_PRICE) == PriceChange(1, 1070, 4)
    extended = encode_price(PriceChange(3, 123456, 6))
    assert extended[1] == 0xE3 and parse_price(extended) == PriceChange(3, 123456, 6)


def test_preset_block_layout() -> None:
    block = encode_preset(Preset(money=False, value=2340))
    assert block.hex(" ").upper() == "FF E3 F1 F4 F8 E0 E4 E3 E2 E0 E0 FB " + f"{lrc(block[:-2]):02X}" + " F0"
    with_hose = encode_preset(Preset(money=True, value=1555, hose=2))
    assert with_hose[:7] == bytes.fromhex("FF E3 F2 F4 F6 E1 F8")
    assert parse_preset(with_hose) == Preset(True, 1555, 2)


@pytest.mark.parametrize(
    ("cmd", "pump", "byte"),
    [
        (Cmd.STATUS, 1, 0x01),
        (Cmd.AUTHORIZE, 3, 0x13),
        (Cmd.DATA, 15, 0x2F),
        (Cmd.STOP, 16, 0x30),
        (Cmd.TRANSACTION, 2, 0x42),
        (Cmd.TOTALS, 16, 0x50),
        (Cmd.MONEY, 9, 0x69),
        (Cmd.VOLUME, 10, 0x7A),
    ],
)
def test_command_byte_is_shifted_command_or_pump_nibble(cmd: Cmd, pump: int, byte: int) -> None:
    assert command_byte(cmd, pump) == byte


def test_pump_numbers_and_status_check() -> None:
    assert pump_nibble(16) == 0
    for bad in (0, 17):
        with pytest.raises(ValueError, match="1-16"):
            pump_nibble(bad)
    assert parse_status(0x93, 3) is Status.BUSY
    assert parse_status(0x60, 16) is Status.OFF
    with pytest.raises(BlockError, match="not from pump"):
        parse_status(0x94, 3)  # low nibble must be the polled pump
    with pytest.raises(BlockError, match="unknown state"):
        parse_status(0x33, 3)


def test_digits_are_lsd_first() -> None:
    assert data_words(23360, 6) == bytes.fromhex("E0 E6 E3 E3 E2 E0")
    assert digits_value(bytes.fromhex("E0 E7 E0 E1")) == 1070
    with pytest.raises(ValueError, match="does not fit"):
        data_words(10**6, 6)
    with pytest.raises(BlockError):
        digits_value(b"\xea")


def test_totals_money_volume_round_trip() -> None:
    totals = Totals((HoseTotals(1, 12345678, 87654321, 789, 799), HoseTotals(2, 0, 0, 812, 812)))
    assert len(totals.encode()) == 1 + 2 * 30 + 3
    assert parse_totals(totals.encode()) == totals
    ext = Totals((HoseTotals(4, 123456789012, 5, 123456, 654321),), extended=True)
    assert len(ext.encode()) == 1 + 42 + 3 and parse_totals(ext.encode()) == ext
    assert len(Money(4321).encode()) == 8 and parse_money(Money(4321).encode()) == Money(4321)
    assert len(Volume(2, 99).encode()) == 9 and parse_volume(Volume(2, 99).encode()) == Volume(2, 99)


@pytest.mark.parametrize(
    "words",
    [b"", b"\xff\xf0", GOLDEN_4P[:-1], GOLDEN_4P[:-2] + b"\xed\xf0", GOLDEN_4P[:8] + GOLDEN_4P[10:]],
    ids=["empty", "no payload", "no end", "bad lrc", "hose missing"],
)
def test_bad_transaction_blocks_are_rejected(words: bytes) -> None:
    with pytest.raises(BlockError):
        parse_transaction(words)


# ---------------------------------------------------------------- hypothesis: LRC never misreads

transactions = st.builds(
    Transaction,
    hose=st.integers(1, 9),
    ppu=st.integers(0, 9999),
    volume=st.integers(0, 999999),
    money=st.integers(0, 999999),
)
totals = st.builds(
    Totals,
    st.lists(
        st.builds(
            HoseTotals,
            st.integers(1, 9),
            st.integers(0, 10**8 - 1),
            st.integers(0, 10**8 - 1),
            st.integers(0, 9999),
            st.integers(0, 9999),
        ),
        min_size=1,
        max_size=4,
    ).map(tuple),
)
prices = st.builds(PriceChange, st.integers(1, 10), st.integers(0, 9999))
presets = st.builds(Preset, st.booleans(), st.integers(0, 999999), st.none() | st.integers(1, 10))

KINDS: list[tuple[st.SearchStrategy[object], Callable[[object], bytes], Callable[[bytes], object]]] = [
    (transactions, lambda t: t.encode(), parse_transaction),  # type: ignore[attr-defined]
    (totals, lambda t: t.encode(), parse_totals),  # type: ignore[attr-defined]
    (prices, lambda p: encode_price(p), parse_price),  # type: ignore[arg-type]
    (presets, lambda p: encode_preset(p), parse_preset),  # type: ignore[arg-type]
    (st.builds(Money, st.integers(0, 999999)), lambda m: m.encode(), parse_money),  # type: ignore[attr-defined]
    (st.builds(Volume, st.integers(1, 9), st.integers(0, 999999)), lambda v: v.encode(), parse_volume),  # type: ignore[attr-defined]
]


@pytest.mark.parametrize("kind", range(len(KINDS)), ids=["4p", "5p", "price", "preset", "6p", "7p"])
@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_round_trip_and_any_single_corrupted_word_is_rejected(kind: int, data: st.DataObject) -> None:
    strategy, encode, parse = KINDS[kind]
    value = data.draw(strategy)
    words = encode(value)
    assert parse(words) == value
    i = data.draw(st.integers(0, len(words) - 1))
    new = data.draw(st.integers(0, 255).filter(lambda b: b != words[i]))
    corrupted = words[:i] + bytes((new,)) + words[i + 1 :]
    with pytest.raises(BlockError):
        parse(corrupted)


@settings(max_examples=200, deadline=None)
@given(
    sale=transactions, garbage=st.binary(max_size=12).filter(lambda g: 0xF0 not in g), cuts=st.lists(st.integers(0, 60))
)
def test_reader_finds_the_block_after_garbage_at_any_split(sale: Transaction, garbage: bytes, cuts: list[int]) -> None:
    stream = garbage + sale.encode()
    reader = ReplyReader(Reply.TRANSACTION)
    got: bytes | None = None
    dropped = b""
    for a, b in zip([0, *sorted(cuts)], [*sorted(cuts), len(stream)], strict=True):
        reply, junk = reader.feed(stream[a:b])
        dropped += junk
        got = got or reply
    assert got is not None and parse_transaction(got) == sale
    assert dropped == garbage


def test_reader_fixed_length_replies() -> None:
    reader = ReplyReader(Reply.STATUS)
    assert reader.feed(b"\x13\x61") == (b"\x61", b"\x13")  # the last word is the reply
    money = Money(5).encode()
    reader = ReplyReader(Reply.MONEY)
    assert reader.feed(b"\x00" + money[:4]) == (None, b"")
    assert reader.feed(money[4:]) == (money, b"\x00")
    block = ReplyReader(Reply.TOTALS, max_words=8)
    assert block.feed(bytes(9)) == (None, bytes(9))  # overflow without FF..F0 is dropped
    assert block.feed(b"\xf0\x01") == (None, b"\xf0")
