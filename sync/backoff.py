"""Exponential backoff with full jitter (``uniform(0, min(cap, base * 2**attempt))``).

Pure: the random source is passed in, so tests are deterministic.  The relay and the MQTT
client share it; ``attempt`` counts consecutive failures from 0.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["Backoff"]


@dataclass(frozen=True)
class Backoff:
    """Delay policy: ``base_s`` for the first retry window, never beyond ``cap_s``."""

    base_s: float = 1.0
    cap_s: float = 120.0

    def ceiling(self, attempt: int) -> float:
        """The upper bound of the jitter window for this attempt (no randomness)."""
        if attempt < 0:
            raise ValueError("attempt must be >= 0")
        # 2**attempt overflows float beyond ~1024; the cap is reached long before.
        return min(self.cap_s, self.base_s * (2.0 ** min(attempt, 64)))

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """A full-jitter delay in seconds for the ``attempt``-th consecutive failure."""
        r = rng if rng is not None else random
        return r.uniform(0.0, self.ceiling(attempt))
