r"""Wayne DART line codec: frames, CRC-16/ARC, DLE stuffing and an incremental decoder (sans-IO).

No I/O, no clock.  ``encode(frame) -> bytes`` and ``Decoder.feed(bytes) -> [Frame | DecodeError, ...]``.
Transaction blocks (CD1, DC3, ...) are parsed by :mod:`drivers.dart.blocks`; the decoder must be told
the direction because CD1/DC1 and CD3/DC3 share codes and lengths.

Frame layout (PROTOCOLS.md section 1.2)::

    control frame (POLL, EOT, ACK, NAK, IAP, ACKPOLL)
    +-----+------+----+
    | ADR | CTRL | SF |          ADR 0x50-0x6F, SF = 0xFA, no CRC
    +-----+------+----+

    data frame
    +-----+------+-------+-----+------+-----+-------+-------+-----+----+
    | ADR | 0x3n | TRANS | LNG | DATA | ... | CRC-1 | CRC-2 | ETX | SF |
    +-----+------+-------+-----+------+-----+-------+-------+-----+----+
          n = TX#  \_____ one or more transactions ____/    0x03  0xFA
    CRC-16/ARC over ADR .. last data byte (unescaped), CRC-1 = low byte.

    CTRL high nibble: 2 POLL, 3 DATA, 4 IAP, 5 NAK, 7 EOT, C ACK, E ACKPOLL; low nibble = TX#.

DLE stuffing: on transmit a DLE (0x10) goes before every data or CRC byte equal to 0xFA; the DLE is
not covered by the CRC.  On receive ``10 FA`` is a data 0xFA, any other 0x10 is literal, and an 0xFA
not consumed by a DLE ends the frame.

Decoder recovery rules:

* bytes accumulate until an unescaped SF; that span is one *candidate*;
* a candidate ending in a valid control frame yields that frame (any bytes before it become one
  ``DecodeError("garbage")``);
* otherwise the earliest start ``ADR 3n`` whose CRC, ETX and transaction lengths check out yields
  the data frame, bytes before it become ``DecodeError("garbage")``;
* otherwise the whole candidate is one ``DecodeError`` (``"crc"``, ``"bad frame"`` or ``"garbage"``);
  a frame failing its CRC is never returned as a frame;
* a buffer growing past ``max_frame_bytes`` without an SF is dropped as ``DecodeError("overflow")``.

Limits: control frames carry no CRC, so a corrupted control byte can read as another control frame;
the caller checks that a reply fits its request.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from drivers.dart.blocks import Block, BlockError, Direction, encode_blocks, parse_blocks

__all__ = [
    "ADDRESS_MAX",
    "ADDRESS_MIN",
    "DLE",
    "ETX",
    "SF",
    "DecodeError",
    "Decoder",
    "Frame",
    "Kind",
    "crc16_arc",
    "encode",
    "stuff",
]

DLE = 0x10
ETX = 0x03
SF = 0xFA
ADDRESS_MIN = 0x50
ADDRESS_MAX = 0x6F


class Kind(enum.Enum):
    """Frame kind, from the CTRL byte's high nibble."""

    #: ``20``: the master asks the slave for data.
    POLL = 0x20
    #: ``3n``: transactions with TX# n.
    DATA = 0x30
    #: ``40``: unverified meaning, never seen live.
    IAP = 0x40
    #: ``5n``: the receiver refuses block n; the sender retransmits.
    NAK = 0x50
    #: ``7n``: reply to POLL, nothing to send.
    EOT = 0x70
    #: ``Cn``: acknowledges DATA block n.
    ACK = 0xC0
    #: ``En``: ACK + poll; unverified, never seen live.
    ACKPOLL = 0xE0


_KIND_BY_NIBBLE = {k.value >> 4: k for k in Kind}
#: Kinds whose CTRL low nibble must be 0.
_FIXED = frozenset({Kind.POLL, Kind.IAP})


@dataclass(frozen=True)
class Frame:
    """One decoded or to-be-encoded frame.  ``tx`` is the TX# nibble (0 for POLL/IAP)."""

    address: int
    kind: Kind
    tx: int = 0
    blocks: tuple[Block, ...] = ()

    @property
    def ctrl(self) -> int:
        return self.kind.value | (0 if self.kind in _FIXED else self.tx)


@dataclass(frozen=True)
class DecodeError:
    """Bytes that did not form a valid frame (reported, never raised)."""

    reason: str
    raw: bytes


def crc16_arc(data: bytes) -> int:
    """CRC-16/ARC: poly 0x8005 reflected (0xA001), init 0, no final xor; check("123456789") = 0xBB3D."""
    crc = 0
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def stuff(data: bytes) -> bytes:
    """Insert a DLE before every 0xFA."""
    return data.replace(b"\xfa", b"\x10\xfa")


def encode(frame: Frame) -> bytes:
    """Frame -> wire bytes (stuffed, with CRC, ETX and SF for DATA)."""
    if not ADDRESS_MIN <= frame.address <= ADDRESS_MAX:
        raise ValueError(f"address {frame.address:#x} outside 0x50-0x6F")
    if not 0 <= frame.tx <= 0xF:
        raise ValueError(f"TX# {frame.tx} outside 0-15")
    head = bytes((frame.address, frame.ctrl))
    if frame.kind is not Kind.DATA:
        if frame.blocks:
            raise ValueError("only DATA frames carry transactions")
        return head + bytes((SF,))
    if not frame.blocks:
        raise ValueError("a DATA frame needs at least one transaction")
    body = head + encode_blocks(frame.blocks)
    crc = crc16_arc(body)
    return stuff(body + bytes((crc & 0xFF, crc >> 8))) + bytes((ETX, SF))


def _unstuff(raw: bytes) -> bytes:
    return raw.replace(b"\x10\xfa", b"\xfa")


class Decoder:
    """Incremental frame decoder for one direction of one line.

    ``feed`` returns the frames and errors completed by the new bytes, in order.  The buffer holds
    at most ``max_frame_bytes`` bytes of an unfinished frame.
    """

    def __init__(self, direction: Direction, max_frame_bytes: int = 512) -> None:
        self.direction = direction
        self.max_frame_bytes = max_frame_bytes
        self._buf = bytearray()

    @property
    def buffered(self) -> int:
        """Bytes of an unfinished frame held in the buffer."""
        return len(self._buf)

    def clear(self) -> bytes:
        """Drop and return the unfinished bytes (e.g. at a line restart)."""
        old = bytes(self._buf)
        self._buf.clear()
        return old

    def feed(self, data: bytes) -> list[Frame | DecodeError]:
        out: list[Frame | DecodeError] = []
        buf = self._buf
        start = 0
        i = 0
        buf += data
        n = len(buf)
        while i < n:
            b = buf[i]
            if b == DLE and i + 1 < n and buf[i + 1] == SF:
                i += 2
                continue
            if b == DLE and i + 1 == n:
                break  # wait: the next byte decides whether this DLE escapes an SF
            i += 1
            if b == SF:
                out.extend(self._candidate(bytes(buf[start:i])))
                start = i
        del buf[:start]
        if len(buf) > self.max_frame_bytes:
            out.append(DecodeError("overflow", bytes(buf)))
            buf.clear()
        return out

    def _candidate(self, raw: bytes) -> list[Frame | DecodeError]:
        """Interpret the bytes up to and including one unescaped SF."""
        if len(raw) >= 3:
            control = self._control(raw[-3:])
            if control is not None:
                return [DecodeError("garbage", raw[:-3]), control] if len(raw) > 3 else [control]
        body = _unstuff(raw[:-1])  # without SF
        reason = "garbage"
        for pos in range(len(body) - 5):
            if not (ADDRESS_MIN <= body[pos] <= ADDRESS_MAX and body[pos + 1] >> 4 == 3):
                continue
            result = self._data(body[pos:])
            if isinstance(result, Frame):
                if pos == 0:
                    return [result]
                return [DecodeError("garbage", _raw_prefix(raw, pos)), result]
            if pos == 0:
                reason = result.reason
        return [DecodeError(reason, raw)]

    def _control(self, raw: bytes) -> Frame | None:
        adr, ctrl = raw[0], raw[1]
        kind = _KIND_BY_NIBBLE.get(ctrl >> 4)
        if not ADDRESS_MIN <= adr <= ADDRESS_MAX or kind is None or kind is Kind.DATA:
            return None
        if kind in _FIXED and ctrl & 0xF:
            return None
        return Frame(adr, kind, ctrl & 0xF)

    def _data(self, body: bytes) -> Frame | DecodeError:
        """``body`` = unstuffed ``ADR CTRL ... CRC-1 CRC-2 ETX`` (ETX possibly missing)."""
        if body[-1] != ETX:
            return DecodeError("bad frame", body)
        payload, crc = body[:-3], body[-3] | body[-2] << 8
        if crc16_arc(payload) != crc:
            return DecodeError("crc", body)
        try:
            blocks = parse_blocks(payload[2:], self.direction)
        except BlockError as exc:
            return DecodeError(f"bad frame: {exc}", body)
        return Frame(payload[0], Kind.DATA, payload[1] & 0xF, blocks)


def _raw_prefix(raw: bytes, count: int) -> bytes:
    """The raw (stuffed) bytes standing for the first ``count`` unstuffed bytes."""
    i = 0
    for _ in range(count):
        i += 2 if raw[i : i + 2] == b"\x10\xfa" else 1
    return raw[:i]
