"""One simulated DART bus: N pumps on one byte stream, with fault injection (sans-IO).

``SimLine.handle(data, now)`` decodes the master's bytes and returns the replies as
``(delay_s, bytes)`` pairs; the server (:mod:`drivers.sim.dart_server`) writes them after the delay
(plus wire time).  Deterministic for a given ``seed``.

Fault knobs (:class:`Faults`, changeable at any time):

* ``crc_error_rate`` — a master DATA frame is treated as failing its CRC (no answer) and a pump DATA
  reply gets one corrupted byte, each with this probability;
* ``silent`` — addresses that never answer; ``offline_until`` — addresses silent until a time;
* ``duplicate_rate`` — a reply is sent twice; ``truncate_rate`` — a reply loses its tail;
* ``garbage_rate`` — random bytes (may contain ``FA``) are sent before a reply;
* ``latency`` — reply delay drawn from the measured distribution (p50 18, p95 32, p99 64, max 380 ms),
  divided by ``latency_scale``.

Not modelled: collisions between two talkers, echo of the master's bytes, parity errors.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from drivers.dart.blocks import Direction
from drivers.dart.codec import DecodeError, Decoder, Frame, Kind
from drivers.sim.responder import Responder

__all__ = ["Faults", "SimLine", "latency_s"]


@dataclass
class Faults:
    """Fault-injection knobs (see module docstring)."""

    crc_error_rate: float = 0.0
    duplicate_rate: float = 0.0
    truncate_rate: float = 0.0
    garbage_rate: float = 0.0
    latency: bool = False
    latency_scale: float = 1.0
    silent: set[int] = field(default_factory=set)
    offline_until: dict[int, float] = field(default_factory=dict)


def latency_s(rng: random.Random) -> float:
    """A POLL->reply latency from the measured CH340 distribution (seconds)."""
    u = rng.random()
    if u < 0.5:
        ms = rng.uniform(8, 18)
    elif u < 0.95:
        ms = rng.uniform(18, 32)
    elif u < 0.99:
        ms = rng.uniform(32, 64)
    else:
        ms = rng.uniform(64, 380)
    return ms / 1000.0


class SimLine:
    """The pump side of one line: decoder + responders + faults."""

    def __init__(self, responders: list[Responder], seed: int | None = None) -> None:
        self.responders = {r.pump.address: r for r in responders}
        self.faults = Faults()
        self.rng = random.Random(seed)
        self._decoder = Decoder(Direction.TO_PUMP)
        self.frames_in = 0
        self.errors_in = 0

    def handle(self, data: bytes, now: float) -> list[tuple[float, bytes]]:
        out: list[tuple[float, bytes]] = []
        for item in self._decoder.feed(data):
            if isinstance(item, DecodeError):
                self.errors_in += 1  # bad CRC / garbage: a pump never answers it
                continue
            self.frames_in += 1
            reply = self._answer(item, now)
            if reply is not None:
                out.extend(self._disturb(reply))
        return out

    def _answer(self, frame: Frame, now: float) -> bytes | None:
        responder = self.responders.get(frame.address)
        if responder is None or frame.address in self.faults.silent:
            return None
        until = self.faults.offline_until.get(frame.address)
        if until is not None:
            if now < until:
                return None
            del self.faults.offline_until[frame.address]
        if frame.kind is Kind.DATA and self._chance(self.faults.crc_error_rate):
            self.errors_in += 1
            return None
        return responder.handle(frame, now)

    def _chance(self, rate: float) -> bool:
        return rate > 0 and self.rng.random() < rate

    def _disturb(self, reply: bytes) -> list[tuple[float, bytes]]:
        f = self.faults
        delay = latency_s(self.rng) / max(f.latency_scale, 1e-9) if f.latency else 0.0
        if len(reply) > 3 and self._chance(f.crc_error_rate):
            i = self.rng.randrange(2, len(reply) - 2)  # a data or CRC byte
            reply = reply[:i] + bytes((reply[i] ^ (1 << self.rng.randrange(8)),)) + reply[i + 1 :]
        if self._chance(f.truncate_rate):
            reply = reply[: self.rng.randrange(1, len(reply))]
        if self._chance(f.garbage_rate):
            reply = self.rng.randbytes(self.rng.randrange(1, 12)) + reply
        out = [(delay, reply)]
        if self._chance(f.duplicate_rate):
            out.append((0.0, reply))
        return out
