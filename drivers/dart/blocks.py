"""DART transaction blocks (CD = controller to pump, DC = pump to controller) and packed BCD.

A DATA frame carries one or more transactions ``TRANS LNG DATA...``.  CD1/DC1 and CD3/DC3 share codes
and lengths, so parsing needs the :class:`Direction`.  Known codes with a wrong length or bad BCD
raise :class:`BlockError` (the frame is rejected, never half-read); unknown codes are kept as
:class:`RawBlock`.  Field names and semantics follow PROTOCOLS.md sections 1.7 and 1.8; the ones
marked unverified there are decoded but not relied on.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

__all__ = [
    "Block",
    "BlockError",
    "CdAllowedNozzles",
    "CdCommand",
    "CdPresetAmount",
    "CdPresetVolume",
    "CdPrices",
    "CdResume",
    "CdSuspend",
    "CdTotalsRequest",
    "DcAlarm",
    "DcFilling",
    "DcIdentity",
    "DcNozzle",
    "DcPrices",
    "DcStatus",
    "DcTotals",
    "Dcc",
    "Direction",
    "PumpStatusCode",
    "RawBlock",
    "bcd_decode",
    "bcd_encode",
    "encode_blocks",
    "parse_blocks",
]


class BlockError(ValueError):
    """A transaction that cannot be read (wrong length, bad BCD, truncated)."""


class Direction(enum.Enum):
    """Who sent the bytes being decoded."""

    #: Controller to pump: CD transactions.
    TO_PUMP = "cd"
    #: Pump to controller: DC transactions.
    FROM_PUMP = "dc"


class Dcc(enum.IntEnum):
    """CD1 command codes (DCC)."""

    #: Ask for DC1 (+DC3) now.
    RETURN_STATUS = 0x00
    #: Ask for DC7 pump parameters.
    RETURN_PUMP_PARAMETERS = 0x02
    #: Ask for DC9 identity.
    RETURN_PUMP_IDENTITY = 0x03
    #: Ask for DC2 volume/amount of the current or last fill.
    RETURN_FILLING_INFORMATION = 0x04
    #: Clear a finished fill (5 -> 1).
    RESET = 0x05
    #: Authorize (only from status 1).
    AUTHORIZE = 0x06
    #: Stop the fill / cancel the authorization.
    STOP = 0x08
    #: Switch the fuelling point off.
    SWITCH_OFF = 0x0A
    #: Suspend fuelling.
    SUSPEND = 0x0D
    #: Resume fuelling.
    RESUME = 0x0E
    #: Ask for DC103 prices of all grades.
    RETURN_PRICES = 0x0F


class PumpStatusCode(enum.IntEnum):
    """DC1 pump status (Rev 2.11 p.20)."""

    #: Zeroized, waits for CD5 prices.
    NOT_PROGRAMMED = 0
    #: Idle, ready for authorization.
    RESET = 1
    #: Authorized.
    AUTHORIZED = 2
    #: Product flowing.
    FILLING = 4
    #: Fill ended (nozzle hung up or stopped).
    FILLING_COMPLETED = 5
    #: Preset volume/amount reached.
    MAX_REACHED = 6
    #: Switched off.
    SWITCHED_OFF = 7
    #: Suspended.
    SUSPENDED = 8


def bcd_encode(value: int, nbytes: int) -> bytes:
    """Packed BCD, most significant digit first; raises ValueError if it does not fit."""
    digits = str(value)
    if value < 0 or len(digits) > 2 * nbytes:
        raise ValueError(f"{value} does not fit in {nbytes} BCD bytes")
    return bytes.fromhex(digits.zfill(2 * nbytes))


def bcd_decode(data: bytes) -> int:
    """Packed BCD to int; raises BlockError on a nibble above 9."""
    text = data.hex()
    if not text.isdigit():
        raise BlockError(f"bad BCD {text}")
    return int(text)


class Block:
    """A transaction; subclasses are frozen dataclasses with a ``code`` and a ``payload()``."""

    code: ClassVar[int]
    name: ClassVar[str]

    def payload(self) -> bytes:
        raise NotImplementedError


@dataclass(frozen=True)
class RawBlock(Block):
    """A transaction this codec does not interpret (kept verbatim)."""

    raw_code: int
    data: bytes
    name: ClassVar[str] = "RAW"

    def payload(self) -> bytes:
        return self.data


# ------------------------------------------------------------------ controller -> pump


@dataclass(frozen=True)
class CdCommand(Block):
    """CD1: one command code (see :class:`Dcc`)."""

    dcc: int
    code: ClassVar[int] = 0x01
    name: ClassVar[str] = "CD1"

    def payload(self) -> bytes:
        return bytes((self.dcc,))


@dataclass(frozen=True)
class CdAllowedNozzles(Block):
    """CD2: logical nozzles allowed for the next authorization."""

    nozzles: tuple[int, ...]
    code: ClassVar[int] = 0x02
    name: ClassVar[str] = "CD2"

    def payload(self) -> bytes:
        return bytes(self.nozzles)


@dataclass(frozen=True)
class CdPresetVolume(Block):
    """CD3: preset volume, raw integer (4 BCD bytes)."""

    volume: int
    code: ClassVar[int] = 0x03
    name: ClassVar[str] = "CD3"

    def payload(self) -> bytes:
        return bcd_encode(self.volume, 4)


@dataclass(frozen=True)
class CdPresetAmount(Block):
    """CD4: preset amount, raw integer (4 BCD bytes)."""

    amount: int
    code: ClassVar[int] = 0x04
    name: ClassVar[str] = "CD4"

    def payload(self) -> bytes:
        return bcd_encode(self.amount, 4)


@dataclass(frozen=True)
class CdPrices(Block):
    """CD5: one raw price (3 BCD bytes) per logical nozzle, nozzle 1 first; all nozzles."""

    prices: tuple[int, ...]
    code: ClassVar[int] = 0x05
    name: ClassVar[str] = "CD5"

    def payload(self) -> bytes:
        return b"".join(bcd_encode(p, 3) for p in self.prices)


@dataclass(frozen=True)
class CdSuspend(Block):
    """CD14: suspend request (nozzle, normally 0)."""

    nozzle: int = 0
    code: ClassVar[int] = 0x0E
    name: ClassVar[str] = "CD14"

    def payload(self) -> bytes:
        return bytes((self.nozzle,))


@dataclass(frozen=True)
class CdResume(Block):
    """CD15: resume request (nozzle, normally 0)."""

    nozzle: int = 0
    code: ClassVar[int] = 0x0F
    name: ClassVar[str] = "CD15"

    def payload(self) -> bytes:
        return bytes((self.nozzle,))


@dataclass(frozen=True)
class CdTotalsRequest(Block):
    """CD101: request total counters; here counter = logical nozzle (unverified semantics)."""

    counter: int
    code: ClassVar[int] = 0x65
    name: ClassVar[str] = "CD101"

    def payload(self) -> bytes:
        return bytes((self.counter,))


# ------------------------------------------------------------------ pump -> controller


@dataclass(frozen=True)
class DcStatus(Block):
    """DC1: pump status (see :class:`PumpStatusCode`)."""

    status: int
    code: ClassVar[int] = 0x01
    name: ClassVar[str] = "DC1"

    def payload(self) -> bytes:
        return bytes((self.status,))


@dataclass(frozen=True)
class DcFilling(Block):
    """DC2: filled volume and amount, raw (4 BCD bytes each)."""

    volume: int
    amount: int
    code: ClassVar[int] = 0x02
    name: ClassVar[str] = "DC2"

    def payload(self) -> bytes:
        return bcd_encode(self.volume, 4) + bcd_encode(self.amount, 4)


@dataclass(frozen=True)
class DcNozzle(Block):
    """DC3: price (3 BCD) + NOZIO (bits 3-0 logical nozzle, bit 4 nozzle out)."""

    price: int
    nozzle: int
    nozzle_out: bool
    code: ClassVar[int] = 0x03
    name: ClassVar[str] = "DC3"

    def payload(self) -> bytes:
        return bcd_encode(self.price, 3) + bytes(((self.nozzle & 0x0F) | (0x10 if self.nozzle_out else 0),))


@dataclass(frozen=True)
class DcAlarm(Block):
    """DC5: alarm code (01 CPU reset, 06 pulser, 09 emergency stop, 0A power failure, 0B pressure)."""

    alarm: int
    code: ClassVar[int] = 0x05
    name: ClassVar[str] = "DC5"

    def payload(self) -> bytes:
        return bytes((self.alarm,))


@dataclass(frozen=True)
class DcIdentity(Block):
    """DC9: pump identity, 5 BCD bytes (secondary source)."""

    identity: int
    code: ClassVar[int] = 0x09
    name: ClassVar[str] = "DC9"

    def payload(self) -> bytes:
        return bcd_encode(self.identity, 5)


@dataclass(frozen=True)
class DcTotals(Block):
    """DC101: COUNTER + TOTVAL (volume) + TOTM1 (amount) + TOTM2, 5 BCD bytes each, raw."""

    counter: int
    volume: int
    amount: int
    amount2: int = 0
    code: ClassVar[int] = 0x65
    name: ClassVar[str] = "DC101"

    def payload(self) -> bytes:
        return (
            bytes((self.counter,))
            + bcd_encode(self.volume, 5)
            + bcd_encode(self.amount, 5)
            + bcd_encode(self.amount2, 5)
        )


@dataclass(frozen=True)
class DcPrices(Block):
    """DC103: unit prices, 3 BCD bytes each, nozzle 1 first (pairing with CD1 0F unverified)."""

    prices: tuple[int, ...]
    code: ClassVar[int] = 0x67
    name: ClassVar[str] = "DC103"

    def payload(self) -> bytes:
        return b"".join(bcd_encode(p, 3) for p in self.prices)


# ------------------------------------------------------------------ parsing


def _exact(data: bytes, length: int) -> bytes:
    if len(data) != length:
        raise BlockError(f"length {len(data)}, expected {length}")
    return data


def _triples(data: bytes) -> tuple[int, ...]:
    if not data or len(data) % 3:
        raise BlockError(f"length {len(data)} is not a positive multiple of 3")
    return tuple(bcd_decode(data[i : i + 3]) for i in range(0, len(data), 3))


def _nozzles(data: bytes) -> tuple[int, ...]:
    if not data:
        raise BlockError("no nozzles")
    return tuple(data)


_Parser = Callable[[bytes], Block]

_CD: dict[int, _Parser] = {
    0x01: lambda d: CdCommand(_exact(d, 1)[0]),
    0x02: lambda d: CdAllowedNozzles(_nozzles(d)),
    0x03: lambda d: CdPresetVolume(bcd_decode(_exact(d, 4))),
    0x04: lambda d: CdPresetAmount(bcd_decode(_exact(d, 4))),
    0x05: lambda d: CdPrices(_triples(d)),
    0x0E: lambda d: CdSuspend(_exact(d, 1)[0]),
    0x0F: lambda d: CdResume(_exact(d, 1)[0]),
    0x65: lambda d: CdTotalsRequest(_exact(d, 1)[0]),
}

_DC: dict[int, _Parser] = {
    0x01: lambda d: DcStatus(_exact(d, 1)[0]),
    0x02: lambda d: DcFilling(bcd_decode(_exact(d, 8)[:4]), bcd_decode(d[4:])),
    0x03: lambda d: DcNozzle(bcd_decode(_exact(d, 4)[:3]), d[3] & 0x0F, bool(d[3] & 0x10)),
    0x05: lambda d: DcAlarm(_exact(d, 1)[0]),
    0x09: lambda d: DcIdentity(bcd_decode(_exact(d, 5))),
    0x65: lambda d: DcTotals(_exact(d, 16)[0], bcd_decode(d[1:6]), bcd_decode(d[6:11]), bcd_decode(d[11:16])),
    0x67: lambda d: DcPrices(_triples(d)),
}


def block_code(block: Block) -> int:
    return block.raw_code if isinstance(block, RawBlock) else block.code


def encode_blocks(blocks: tuple[Block, ...]) -> bytes:
    """Transactions -> ``TRANS LNG DATA`` bytes (unstuffed)."""
    out = bytearray()
    for block in blocks:
        data = block.payload()
        if len(data) > 0xFF:
            raise ValueError("transaction longer than 255 bytes")
        out += bytes((block_code(block), len(data))) + data
    return bytes(out)


def parse_blocks(data: bytes, direction: Direction) -> tuple[Block, ...]:
    """``TRANS LNG DATA...`` bytes -> blocks; raises BlockError."""
    table = _CD if direction is Direction.TO_PUMP else _DC
    blocks: list[Block] = []
    i = 0
    if not data:
        raise BlockError("no transactions")
    while i < len(data):
        if i + 2 > len(data):
            raise BlockError("truncated transaction header")
        code, length = data[i], data[i + 1]
        chunk = data[i + 2 : i + 2 + length]
        if len(chunk) != length:
            raise BlockError(f"transaction {code:#04x} truncated")
        parser = table.get(code)
        blocks.append(parser(chunk) if parser else RawBlock(code, chunk))
        i += 2 + length
    return tuple(blocks)
