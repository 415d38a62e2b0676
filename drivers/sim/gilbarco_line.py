"""One simulated Gilbarco two-wire loop: up to 16 pumps on one byte stream, with faults (sans-IO).

``GilbarcoSimLine.handle(data, now)`` reads the master's words and returns the replies as
``(delay_s, bytes)`` pairs, like :class:`drivers.sim.line.SimLine` (same :class:`Faults` knobs, so
the server, the control socket and the scenarios work unchanged).  Input rules:

* outside a block every byte is a command word ``cmd|pump`` (``FC`` = every pump stops);
* after a ``2p`` answered ``Dp`` the next bytes from ``FF`` to ``F0`` are that pump's data block; a
  command word instead of ``FF`` ends the wait (the master gave up);
* a word for a silent or offline pump is ignored (no reply, a sent block is lost).

Fault knobs, as for DART: ``crc_error_rate`` -- a master block is treated as failing its LRC (dropped,
next status ``0``), a block/8/9-word reply gets one word's low nibble corrupted (LRC error), a status
word gets a wrong pump nibble (on a real 8E1 line parity catches single-bit errors; a status word has
no other check); ``silent``, ``offline_until``, ``duplicate_rate``, ``truncate_rate``, ``garbage_rate``
(random bytes before a reply), ``latency`` (the measured distribution).

Not modelled: collisions, echo of the master's words, parity errors as such, 6-digit PPU presets.
"""

from __future__ import annotations

import random

from drivers.gilbarco.codec import ALL_STOP, Cmd, Word
from drivers.sim.gilbarco_responder import GilbarcoResponder
from drivers.sim.line import Faults, latency_s

__all__ = ["GilbarcoSimLine"]

_MAX_BLOCK = 64
_COMMANDS = frozenset(int(c) for c in Cmd)


class GilbarcoSimLine:
    """The pump side of one loop: responders + faults."""

    def __init__(self, responders: list[GilbarcoResponder], seed: int | None = None) -> None:
        self.responders = {r.pump.address: r for r in responders}
        self.faults = Faults()
        self.rng = random.Random(seed)
        self.frames_in = 0
        self.errors_in = 0
        self._block_for: GilbarcoResponder | None = None
        self._block = bytearray()

    def _reachable(self, pump: int, now: float) -> GilbarcoResponder | None:
        responder = self.responders.get(pump)
        if responder is None or pump in self.faults.silent:
            return None
        until = self.faults.offline_until.get(pump)
        if until is not None:
            if now < until:
                return None
            del self.faults.offline_until[pump]
        return responder

    def handle(self, data: bytes, now: float) -> list[tuple[float, bytes]]:
        out: list[tuple[float, bytes]] = []
        for word in data:
            if self._block_for is not None and (self._block or word == Word.START):
                self._block.append(word)
                if word == Word.END or len(self._block) > _MAX_BLOCK:
                    self._end_block(now)
                continue
            self._block_for = None
            self.frames_in += 1
            if word == ALL_STOP:
                for number in self.responders:
                    responder = self._reachable(number, now)
                    if responder is not None:
                        responder.stop(now)
                continue
            cmd, nibble = word & 0xF0, word & 0x0F
            responder = self._reachable(16 if nibble == 0 else nibble, now)
            if cmd not in _COMMANDS:
                self.errors_in += 1
                continue
            if responder is None:
                continue
            reply = responder.command(cmd, now)
            if cmd == Cmd.DATA:
                self._block_for = responder
                self._block.clear()
            if reply is not None:
                out.extend(self._disturb(reply))
        return out

    def _end_block(self, now: float) -> None:
        responder, words = self._block_for, bytes(self._block)
        self._block_for = None
        self._block.clear()
        assert responder is not None
        if self._chance(self.faults.crc_error_rate):
            self.errors_in += 1
            responder.blocks_rejected += 1
            responder.data_error = True
            return
        responder.block(words, now)

    def _chance(self, rate: float) -> bool:
        return rate > 0 and self.rng.random() < rate

    def _disturb(self, reply: bytes) -> list[tuple[float, bytes]]:
        f = self.faults
        delay = latency_s(self.rng) / max(f.latency_scale, 1e-9) if f.latency else 0.0
        if self._chance(f.crc_error_rate):
            i = self.rng.randrange(len(reply))
            if len(reply) == 1:
                flipped = reply[0] ^ (1 << self.rng.randrange(4))  # wrong pump nibble
            else:
                flipped = reply[i] ^ (1 << self.rng.randrange(4))  # low nibble: LRC error
            j = 0 if len(reply) == 1 else i
            reply = reply[:j] + bytes((flipped,)) + reply[j + 1 :]
        if len(reply) > 1 and self._chance(f.truncate_rate):
            reply = reply[: self.rng.randrange(1, len(reply))]
        if self._chance(f.garbage_rate):
            reply = self.rng.randbytes(self.rng.randrange(1, 12)) + reply
        out = [(delay, reply)]
        if self._chance(f.duplicate_rate):
            out.append((0.0, reply))
        return out
