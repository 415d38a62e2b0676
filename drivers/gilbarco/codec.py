r"""Gilbarco two-wire (TWOTP) words, LRC, command bytes and pump replies (sans-IO).

No I/O, no clock.  Gilbarco has **no STX/DLE framing and no CRC** (PROTOCOLS.md section 2): the master
sends one *command word* per exchange and the pump answers with a fixed kind of reply that only the
master's request tells apart.  Every word is one byte on the wire (11 bits at 5787 baud 8E1, 1.90 ms).

Command word (section 2.2)::

    +---------+---------+
    | cmd 7-4 | pump 3-0|     pump 1-15 as is, pump 16 -> 0;  FC = all pumps stop
    +---------+---------+
    0p status -> 1 word   1p authorize   2p data to pump -> Dp, then a block   3p stop
    4p transaction -> block   5p totals -> block   6p money -> 8 words   7p hose volume -> 9 words

Status reply: ``S p`` -- high nibble the state, low nibble the polled pump (checked).

Words inside blocks: data ``E0|digit`` (digits **LSD first**), control ``F*`` (:class:`Word`).  A block::

    FF  <payload words ...>  FB  E(lrc)  F0
    lrc = (-(sum of low nibbles of FF .. FB)) & 0xF

    price (master, 4-digit PPU)  FF E5 F4 F6 E(hose-1) F7 d0 d1 d2 d3 FB E(lrc) F0
    preset (master)              FF E3 F1|F2 F4 [F6 E(hose-1)] F8 d0..d5 FB E(lrc) F0
    transaction (pump, 4p)       FF F1|F2 F8 e e e e e  F6 E(hose) [F4|F5] F7 d0..d3|d0..d5
                                    F9 d0..d5  FA d0..d5  FB E(lrc) F0            (33 or 35 words)
    totals (pump, 5p), per hose  F6 E(hose) F9 v0..v7 FA m0..m7 F4 p0..p3 F5 p0..p3 (30 words;
                                 extended: 12-digit totals, 6-digit PPUs, 42 words)

Pump replies (``4p`` .. ``7p``) are in :mod:`drivers.gilbarco.replies`.  The transaction prefix
``F1 F8 e e e e e`` is unverified (kept raw); the totals layout and the 6p/7p
replies below are inferred from the word counts in section 2.2 and are **unverified**::

    money (6p)        d0..d5 FB E(lrc)           8 words
    hose volume (7p)  E(hose) d0..d5 FB E(lrc)   9 words

Parsing is strict: every block kind has one layout, any word out of place rejects the block, and the
LRC is checked.  So any single corrupted word is rejected: a changed low nibble breaks the LRC, a
changed high nibble turns a data word into a control word (or an invalid byte) or back, which
breaks the layout.  Status replies carry no check at all: the caller confirms state changes.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = [
    "ALL_STOP",
    "BlockError",
    "BlockReader",
    "Cmd",
    "Preset",
    "PriceChange",
    "Status",
    "Word",
    "command_byte",
    "data_words",
    "digits_value",
    "encode_preset",
    "encode_price",
    "lrc",
    "parse_preset",
    "parse_price",
    "parse_status",
    "pump_nibble",
    "read_digits",
    "seal",
]

#: ``FC``: every pump on the loop stops (no reply).
ALL_STOP = 0xFC


class Cmd(enum.IntEnum):
    """Command nibble, already shifted into the high nibble (PROTOCOLS.md 2.2 pitfall)."""

    #: ``0p`` -> one status word.
    STATUS = 0x00
    #: ``1p``, no reply.
    AUTHORIZE = 0x10
    #: ``2p`` -> ``Dp``; then the master sends a block (no reply).
    DATA = 0x20
    #: ``3p``, no reply.
    STOP = 0x30
    #: ``4p`` -> transaction block.
    TRANSACTION = 0x40
    #: ``5p`` -> totals block.
    TOTALS = 0x50
    #: ``6p`` -> real-time money (unverified layout).
    MONEY = 0x60
    #: ``7p`` -> real-time hose volume (unverified layout).
    VOLUME = 0x70


class Status(enum.IntEnum):
    """Status nibble of a ``0p`` reply (PROTOCOLS.md 2.3)."""

    #: The pump got bad data.
    DATA_ERROR = 0x0
    #: Off / idle.
    OFF = 0x6
    #: Nozzle up, not authorized.
    CALL = 0x7
    #: Authorized, not delivering.
    AUTHORIZED = 0x8
    #: Delivering.
    BUSY = 0x9
    #: End of transaction, preset reached.
    PEOT = 0xA
    #: End of transaction, full / normal.
    FEOT = 0xB
    #: Stopped by the master.
    STOPPED = 0xC
    #: Waiting for the master's data block (reply to ``2p``).
    SEND_DATA = 0xD


class Word(enum.IntEnum):
    """Control words inside blocks."""

    START = 0xFF
    END = 0xF0
    VOLUME_PRESET = 0xF1
    MONEY_PRESET = 0xF2
    LEVEL1 = 0xF4
    LEVEL2 = 0xF5  #: unverified
    GRADE_NEXT = 0xF6
    PPU_NEXT = 0xF7
    PRESET_NEXT = 0xF8
    VOLUME_NEXT = 0xF9
    MONEY_NEXT = 0xFA
    LRC_NEXT = 0xFB
    SPECIAL = 0xFE


PRICE_HEAD = {4: 0xE5, 6: 0xE3}  #: second word of a price block by PPU digits
PRESET_HEAD = 0xE3


class BlockError(ValueError):
    """Words that do not form a valid block (layout, LRC, digit)."""


def pump_nibble(pump: int) -> int:
    """Pump 1-16 -> its nibble (16 -> 0)."""
    if not 1 <= pump <= 16:
        raise ValueError(f"Gilbarco pump {pump} outside 1-16")
    return pump & 0x0F


def command_byte(cmd: Cmd, pump: int) -> int:
    """``(cmd & 0xF0) | (pump & 0x0F)``."""
    return (int(cmd) & 0xF0) | pump_nibble(pump)


def lrc(words: bytes) -> int:
    """LRC data word over ``FF .. FB`` inclusive: ``((-sum(low nibbles)) & 0xF) | 0xE0``."""
    return ((-sum(w & 0x0F for w in words)) & 0x0F) | 0xE0


def seal(payload: bytes) -> bytes:
    """``FF payload FB E(lrc) F0``."""
    body = bytes((Word.START,)) + payload + bytes((Word.LRC_NEXT,))
    return body + bytes((lrc(body), Word.END))


def data_words(value: int, digits: int) -> bytes:
    """Non-negative integer -> ``digits`` data words, least significant digit first."""
    if not 0 <= value < 10**digits:
        raise ValueError(f"{value} does not fit in {digits} digits")
    return bytes(0xE0 | (value // 10**i) % 10 for i in range(digits))


def digits_value(words: bytes) -> int:
    """Data words (LSD first) -> integer; BlockError on a non-digit."""
    value = 0
    for i, w in enumerate(words):
        if w >> 4 != 0xE or w & 0x0F > 9:
            raise BlockError(f"word {w:02X} is not a decimal data word")
        value += (w & 0x0F) * 10**i
    return value


def parse_status(word: int, pump: int) -> Status:
    """A ``0p`` reply for ``pump``; BlockError if the pump nibble or the state is wrong."""
    if word & 0x0F != pump_nibble(pump):
        raise BlockError(f"status {word:02X} is not from pump {pump}")
    try:
        return Status(word >> 4)
    except ValueError:
        raise BlockError(f"status {word:02X}: unknown state") from None


# ---------------------------------------------------------------- strict block reader


class BlockReader:
    """Walks the payload of a sealed block (between FF and FB)."""

    def __init__(self, words: bytes) -> None:
        if len(words) < 4 or words[0] != Word.START or words[-1] != Word.END or words[-3] != Word.LRC_NEXT:
            raise BlockError("not a block: FF ... FB E(lrc) F0 expected")
        if words[-2] >> 4 != 0xE or lrc(words[:-2]) != words[-2]:
            raise BlockError("lrc")
        self.words = words[1:-3]
        self.pos = 0

    def done(self) -> bool:
        return self.pos == len(self.words)

    def peek(self) -> int | None:
        return self.words[self.pos] if self.pos < len(self.words) else None

    def control(self, *allowed: int) -> int:
        w = self.peek()
        if w is None or w not in allowed:
            raise BlockError(f"word {self.pos}: expected {'/'.join(f'{a:02X}' for a in allowed)}")
        self.pos += 1
        return w

    def data(self, count: int) -> bytes:
        chunk = self.words[self.pos : self.pos + count]
        if len(chunk) != count or any(w >> 4 != 0xE for w in chunk):
            raise BlockError(f"word {self.pos}: {count} data words expected")
        self.pos += count
        return chunk

    def run(self) -> bytes:
        """Data words up to the next control word (or the end)."""
        start = self.pos
        while self.pos < len(self.words) and self.words[self.pos] >> 4 == 0xE:
            self.pos += 1
        return self.words[start : self.pos]

    def end(self) -> None:
        if not self.done():
            raise BlockError(f"word {self.pos}: unexpected {self.words[self.pos]:02X}")


def read_digits(run: bytes, allowed: tuple[int, ...], what: str) -> int:
    if len(run) not in allowed:
        raise BlockError(f"{what}: {len(run)} digits, expected {allowed}")
    return digits_value(run)


# ---------------------------------------------------------------- master -> pump blocks


@dataclass(frozen=True)
class PriceChange:
    """Unit price of one hose (``2p`` block); ``ppu`` raw, 4 or 6 digits."""

    hose: int
    ppu: int
    digits: int = 4


@dataclass(frozen=True)
class Preset:
    """Preset before ``1p``: by volume or money, raw 6 digits; ``hose`` None = any hose."""

    money: bool
    value: int
    hose: int | None = None


def encode_price(p: PriceChange) -> bytes:
    if p.digits not in PRICE_HEAD or not 1 <= p.hose <= 10:
        raise ValueError("price: hose 1-10, 4 or 6 PPU digits")
    head = bytes((PRICE_HEAD[p.digits], Word.LEVEL1, Word.GRADE_NEXT, 0xE0 | (p.hose - 1), Word.PPU_NEXT))
    return seal(head + data_words(p.ppu, p.digits))


def encode_preset(p: Preset) -> bytes:
    kind = Word.MONEY_PRESET if p.money else Word.VOLUME_PRESET
    out = bytes((PRESET_HEAD, kind, Word.LEVEL1))
    if p.hose is not None:
        if not 1 <= p.hose <= 10:
            raise ValueError("preset: hose 1-10")
        out += bytes((Word.GRADE_NEXT, 0xE0 | (p.hose - 1)))
    return seal(out + bytes((Word.PRESET_NEXT,)) + data_words(p.value, 6))


def parse_price(words: bytes) -> PriceChange:
    r = BlockReader(words)
    head = r.data(1)[0]
    digits = next((d for d, h in PRICE_HEAD.items() if h == head), None)
    if digits is None:
        raise BlockError(f"price block: head {head:02X}")
    r.control(Word.LEVEL1)
    r.control(Word.GRADE_NEXT)
    hose = digits_value(r.data(1)) + 1
    r.control(Word.PPU_NEXT)
    ppu = read_digits(r.run(), (digits,), "ppu")
    r.end()
    return PriceChange(hose, ppu, digits)


def parse_preset(words: bytes) -> Preset:
    r = BlockReader(words)
    if r.data(1)[0] != PRESET_HEAD:
        raise BlockError("preset block: head")
    kind = r.control(Word.VOLUME_PRESET, Word.MONEY_PRESET)
    r.control(Word.LEVEL1)
    hose = None
    if r.peek() == Word.GRADE_NEXT:
        r.control(Word.GRADE_NEXT)
        hose = digits_value(r.data(1)) + 1
    r.control(Word.PRESET_NEXT)
    value = read_digits(r.run(), (6,), "preset")
    r.end()
    return Preset(kind == Word.MONEY_PRESET, value, hose)
