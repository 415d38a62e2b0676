"""Time and id sources, passed into the core so tests are deterministic."""

from __future__ import annotations

import time
import uuid
from typing import Protocol

__all__ = ["Clock", "FixedClock", "IdSource", "SeqIds", "SystemClock", "UuidIds"]


class Clock(Protocol):
    def now_ms(self) -> int:
        """Wall-clock UTC time in milliseconds since the epoch (stored in the database)."""

    def monotonic(self) -> float:
        """Seconds on a monotonic clock (timeouts, backoff)."""


class SystemClock:
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def monotonic(self) -> float:
        return time.monotonic()


class FixedClock:
    """A clock tests move by hand."""

    def __init__(self, now_ms: int = 1_767_225_600_000) -> None:  # 2026-01-01T00:00Z
        self._now_ms = now_ms
        self._mono = 0.0

    def now_ms(self) -> int:
        return self._now_ms

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        self._now_ms += int(seconds * 1000)
        self._mono += seconds


class IdSource(Protocol):
    def new_id(self) -> str:
        """A new globally unique id minted on this device (UUIDv4 text)."""


class UuidIds:
    def new_id(self) -> str:
        return str(uuid.uuid4())


class SeqIds:
    """Predictable ids for tests: ``t-000001``, ``t-000002`` …"""

    def __init__(self, prefix: str = "t") -> None:
        self._n = 0
        self._prefix = prefix

    def new_id(self) -> str:
        self._n += 1
        return f"{self._prefix}-{self._n:06d}"
