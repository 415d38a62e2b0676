"""Gilbarco two-wire pump replies: transaction (4p), totals (5p), money (6p), hose volume (7p) (sans-IO).

Layouts are drawn in :mod:`drivers.gilbarco.codec`; parsing is strict (one layout per kind, LRC
checked), so any single corrupted word is rejected, never misread.  The totals layout and the 6p/7p
replies are inferred from PROTOCOLS.md 2.2 word counts (unverified).
"""

from __future__ import annotations

from dataclasses import dataclass

from drivers.gilbarco.codec import (
    BlockError,
    BlockReader,
    Word,
    data_words,
    digits_value,
    lrc,
    read_digits,
    seal,
)

__all__ = [
    "HoseTotals",
    "Money",
    "Totals",
    "Transaction",
    "Volume",
    "parse_money",
    "parse_totals",
    "parse_transaction",
    "parse_volume",
]


# ---------------------------------------------------------------- pump -> master replies


@dataclass(frozen=True)
class Transaction:
    """A ``4p`` reply: the current or last sale of the pump (raw integers)."""

    hose: int
    ppu: int
    volume: int
    money: int
    prefix: bytes = b"\xf1\xf8\xe0\xe0\xe0\xe0\xe0"  #: unverified meaning, kept raw
    level: int | None = Word.LEVEL1
    ppu_digits: int = 4

    def encode(self) -> bytes:
        body = self.prefix + bytes((Word.GRADE_NEXT, 0xE0 | self.hose))
        if self.level is not None:
            body += bytes((self.level,))
        body += bytes((Word.PPU_NEXT,)) + data_words(self.ppu, self.ppu_digits)
        body += bytes((Word.VOLUME_NEXT,)) + data_words(self.volume, 6)
        body += bytes((Word.MONEY_NEXT,)) + data_words(self.money, 6)
        return seal(body)


def parse_transaction(words: bytes) -> Transaction:
    r = BlockReader(words)
    start = r.pos
    r.control(Word.VOLUME_PRESET, Word.MONEY_PRESET)
    r.control(Word.PRESET_NEXT)
    r.data(5)
    prefix = r.words[start : r.pos]
    r.control(Word.GRADE_NEXT)
    hose = digits_value(r.data(1))
    level = None
    if r.peek() in (Word.LEVEL1, Word.LEVEL2):
        level = r.control(Word.LEVEL1, Word.LEVEL2)
    r.control(Word.PPU_NEXT)
    ppu_run = r.run()
    ppu = read_digits(ppu_run, (4, 6), "ppu")
    r.control(Word.VOLUME_NEXT)
    volume = read_digits(r.run(), (6,), "volume")
    r.control(Word.MONEY_NEXT)
    money = read_digits(r.run(), (6,), "money")
    r.end()
    return Transaction(hose, ppu, volume, money, bytes(prefix), level, len(ppu_run))


@dataclass(frozen=True)
class HoseTotals:
    """Totals of one hose in a ``5p`` reply; ``ppu1``/``ppu2`` = price levels 1 and 2."""

    hose: int
    volume: int
    money: int
    ppu1: int
    ppu2: int


@dataclass(frozen=True)
class Totals:
    """A ``5p`` reply; ``extended`` = 12-digit totals and 6-digit PPUs (42 words per hose)."""

    hoses: tuple[HoseTotals, ...]
    extended: bool = False

    def encode(self) -> bytes:
        tot, ppu = (12, 6) if self.extended else (8, 4)
        body = b""
        for h in self.hoses:
            body += bytes((Word.GRADE_NEXT, 0xE0 | h.hose, Word.VOLUME_NEXT)) + data_words(h.volume, tot)
            body += bytes((Word.MONEY_NEXT,)) + data_words(h.money, tot)
            body += bytes((Word.LEVEL1,)) + data_words(h.ppu1, ppu) + bytes((Word.LEVEL2,)) + data_words(h.ppu2, ppu)
        return seal(body)


def parse_totals(words: bytes) -> Totals:
    r = BlockReader(words)
    hoses: list[HoseTotals] = []
    extended: bool | None = None
    while not r.done():
        r.control(Word.GRADE_NEXT)
        hose = digits_value(r.data(1))
        r.control(Word.VOLUME_NEXT)
        vol_run = r.run()
        if extended is None:
            extended = len(vol_run) == 12
        tot, ppu = (12, 6) if extended else (8, 4)
        volume = read_digits(vol_run, (tot,), "volume total")
        r.control(Word.MONEY_NEXT)
        money = read_digits(r.run(), (tot,), "money total")
        r.control(Word.LEVEL1)
        ppu1 = read_digits(r.run(), (ppu,), "ppu level 1")
        r.control(Word.LEVEL2)
        ppu2 = read_digits(r.run(), (ppu,), "ppu level 2")
        hoses.append(HoseTotals(hose, volume, money, ppu1, ppu2))
    if not hoses:
        raise BlockError("totals: no hose")
    return Totals(tuple(hoses), bool(extended))


@dataclass(frozen=True)
class Money:
    """A ``6p`` reply: money of the fill in progress (raw).  Unverified layout."""

    money: int

    def encode(self) -> bytes:
        body = data_words(self.money, 6) + bytes((Word.LRC_NEXT,))
        return body + bytes((lrc(body),))


@dataclass(frozen=True)
class Volume:
    """A ``7p`` reply: hose and volume of the fill in progress (raw).  Unverified layout."""

    hose: int
    volume: int

    def encode(self) -> bytes:
        body = bytes((0xE0 | self.hose,)) + data_words(self.volume, 6) + bytes((Word.LRC_NEXT,))
        return body + bytes((lrc(body),))


def _short(words: bytes, length: int) -> bytes:
    if len(words) != length or words[-2] != Word.LRC_NEXT or words[-1] >> 4 != 0xE:
        raise BlockError(f"{length}-word reply expected")
    if lrc(words[:-1]) != words[-1]:
        raise BlockError("lrc")
    return words[:-2]


def parse_money(words: bytes) -> Money:
    return Money(digits_value(_short(words, 8)))


def parse_volume(words: bytes) -> Volume:
    body = _short(words, 9)
    hose = body[0]
    if hose >> 4 != 0xE:
        raise BlockError("hose word expected")
    return Volume(hose & 0x0F, digits_value(body[1:]))
