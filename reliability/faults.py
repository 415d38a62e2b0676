"""A scheduled TCP fault proxy on loopback: pass, delay, drop, reset, cut mid-message, half-open.

``ChaosProxy(upstream)`` listens on ``127.0.0.1:<port>`` and forwards to ``upstream``.  Its
``mode`` decides what happens to traffic (applied to new *and* open connections):

* ``pass``      forward both ways;
* ``delay``     forward, each chunk held ``delay_s`` first (slow network);
* ``drop``      blackhole: connections stay open, nothing is forwarded either way (a pulled
                cable; the peer only notices by its own timeouts/keepalive);
* ``reset``     open connections are reset, new ones are reset at once (peer down);
* ``cut``       each connection is closed after ``cut_after`` more forwarded bytes, possibly in the
                middle of a message (HTTP body, MQTT packet);
* ``halfopen``  client→upstream still flows, upstream→client is swallowed (the answers vanish:
                "the write happened but the ack never came").

``FaultSchedule`` switches one or more proxies through a seeded random sequence of modes in a
background thread, for a bounded number of steps or until ``stop()``; every switch is logged in
``history`` so a report can say what was injected.  The plumbing (loop thread, sockets, pipes) is
``sync.center_sim.proxy.LoopbackProxy``, shared with the center simulator's own ``FaultProxy``;
this proxy is chained in front of that one.

Limits: loopback only (never use it toward a non-loopback address); byte-level, protocol-blind
(``cut`` lands anywhere in the stream); one asyncio loop thread per proxy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from sync.center_sim.proxy import Conn, LoopbackProxy

__all__ = ["MODES", "ChaosProxy", "FaultSchedule"]

log = logging.getLogger(__name__)

MODES = ("pass", "delay", "drop", "reset", "cut", "halfopen")


class ChaosProxy(LoopbackProxy):
    """See module docstring.  ``start()`` / ``stop()``; ``set_mode(...)`` is thread-safe."""

    def __init__(self, upstream: tuple[str, int], *, name: str = "chaos", listen_port: int = 0) -> None:
        super().__init__(upstream, name=name, listen=("127.0.0.1", listen_port))
        self.mode = "pass"
        self.delay_s = 0.2
        self.cut_after = 40
        self.stats: dict[str, int] = {"connections": 0, "resets": 0, "cuts": 0, "swallowed_bytes": 0,
                                      "forwarded_bytes": 0}

    def start(self) -> ChaosProxy:
        super().start()
        return self

    def __enter__(self) -> ChaosProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------ control
    def set_mode(self, mode: str, *, delay_s: float | None = None, cut_after: int | None = None) -> None:
        """Switch the mode; ``reset`` aborts the open connections, ``cut`` arms them with ``cut_after`` bytes."""
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; one of {MODES}")

        def apply() -> None:
            if delay_s is not None:
                self.delay_s = delay_s
            if cut_after is not None:
                self.cut_after = cut_after
            self.mode = mode
            for c in list(self._conns):
                if mode == "reset":
                    self.stats["resets"] += 1
                    c.abort()
                elif mode == "cut":
                    c.budget = self.cut_after

        self.in_loop(apply)

    # ------------------------------------------------------------ per connection / chunk
    def admit(self) -> bool:
        self.stats["connections"] += 1
        if self.mode == "reset":
            self.stats["resets"] += 1
            return False
        return True

    def new_conn(self, conn: Conn) -> None:
        conn.budget = self.cut_after if self.mode == "cut" else None

    async def forward(self, conn: Conn, data: bytes, upstream: bool) -> bytes | None:
        mode = self.mode
        if mode == "drop" or (mode == "halfopen" and not upstream):
            self.stats["swallowed_bytes"] += len(data)
            return b""
        if mode == "delay":
            await asyncio.sleep(self.delay_s)
        if conn.budget is not None:
            if len(data) >= conn.budget:
                self.stats["cuts"] += 1
                await self._last(conn, data[:conn.budget], upstream)
                return None
            conn.budget -= len(data)
        self.stats["forwarded_bytes"] += len(data)
        return data

    async def _last(self, conn: Conn, data: bytes, upstream: bool) -> None:
        """Write the bytes left in the budget (``cut``); the caller then ends the connection."""
        dst = conn.upstream if upstream else conn.client
        dst.write(data)
        with contextlib.suppress(Exception):
            await dst.drain()


@dataclass
class FaultSchedule:
    """Drive proxies through random modes: ``step_s`` per step, at most ``max_steps`` steps.

    ``weights`` maps mode → relative weight (``pass`` should dominate or nothing gets through).
    ``heal()`` (also called by ``stop()``) sets every proxy back to ``pass``.
    """

    proxies: Sequence[ChaosProxy]
    seed: int = 0
    step_s: tuple[float, float] = (0.5, 2.0)
    max_steps: int = 10_000
    weights: dict[str, float] = field(default_factory=lambda: {"pass": 6, "delay": 1, "drop": 1, "reset": 1,
                                                                "cut": 1, "halfopen": 1})
    history: list[tuple[float, str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fault-schedule", daemon=True)

    def start(self) -> FaultSchedule:
        self._thread.start()
        return self

    def _run(self) -> None:
        modes, weights = zip(*self.weights.items(), strict=True)
        t0 = time.monotonic()
        for _ in range(self.max_steps):
            proxy = self._rng.choice(list(self.proxies))
            mode = self._rng.choices(modes, weights)[0]
            proxy.set_mode(mode, delay_s=self._rng.uniform(0.05, 1.0), cut_after=self._rng.randint(1, 300))
            self.history.append((round(time.monotonic() - t0, 2), proxy.name, mode))
            if self._stop.wait(self._rng.uniform(*self.step_s)):
                break

    def counts(self) -> dict[str, int]:
        """How many times each mode was switched on."""
        out: dict[str, int] = {}
        for _, _, mode in self.history:
            out[mode] = out.get(mode, 0) + 1
        return out

    def heal(self) -> None:
        for p in self.proxies:
            p.set_mode("pass")

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)
        self.heal()
