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
``history`` so a report can say what was injected.  The center simulator's own ``FaultProxy``
(``sync/center_sim/proxy.py``) stays as is: this proxy is chained in front of it.

Limits: loopback only (never use it toward a non-loopback address); byte-level, protocol-blind
(``cut`` lands anywhere in the stream); one asyncio loop thread per proxy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["MODES", "ChaosProxy", "FaultSchedule"]

log = logging.getLogger(__name__)

MODES = ("pass", "delay", "drop", "reset", "cut", "halfopen")


def _check_loopback(host: str) -> None:
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError(f"ChaosProxy is for loopback only, not {host!r}")


class ChaosProxy:
    """See module docstring.  ``start()`` / ``stop()``; ``set_mode(...)`` is thread-safe."""

    def __init__(self, upstream: tuple[str, int], *, name: str = "chaos", listen_port: int = 0) -> None:
        _check_loopback(upstream[0])
        self.upstream = upstream
        self.name = name
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", listen_port))
        self.port: int = self._sock.getsockname()[1]
        self.mode = "pass"
        self.delay_s = 0.2
        self.cut_after = 40
        self._loop = asyncio.new_event_loop()
        self._conns: set[_Conn] = set()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"chaos-{name}", daemon=True)
        self.stats: dict[str, int] = {"connections": 0, "resets": 0, "cuts": 0, "swallowed_bytes": 0,
                                      "forwarded_bytes": 0}

    # ------------------------------------------------------------ lifecycle
    def start(self) -> ChaosProxy:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("chaos proxy did not start")
        return self

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def main() -> None:
            self._server = await asyncio.start_server(self._handle, sock=self._sock)
            self._ready.set()

        self._loop.run_until_complete(main())
        try:
            self._loop.run_forever()
        finally:
            self._loop.close()

    def stop(self) -> None:
        if not self._thread.is_alive():
            return

        def _close() -> None:
            self._server.close()
            for c in list(self._conns):
                c.abort()
            self._loop.stop()

        self._loop.call_soon_threadsafe(_close)
        self._thread.join(5)

    def __enter__(self) -> ChaosProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------ control
    def set_mode(self, mode: str, *, delay_s: float | None = None, cut_after: int | None = None) -> None:
        """Switch the mode; ``reset`` aborts the open connections, ``cut`` arms them with ``cut_after`` bytes."""
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; one of {MODES}")
        done = threading.Event()

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
            done.set()

        if not self._thread.is_alive():
            apply()
            return
        self._loop.call_soon_threadsafe(apply)
        done.wait(5)

    # ------------------------------------------------------------ plumbing
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.stats["connections"] += 1
        if self.mode == "reset":
            self.stats["resets"] += 1
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.transport.abort()
            return
        conn = _Conn(writer, up_writer, budget=self.cut_after if self.mode == "cut" else None)
        self._conns.add(conn)
        tasks = [asyncio.ensure_future(self._pipe(conn, reader, up_writer, upstream=True)),
                 asyncio.ensure_future(self._pipe(conn, up_reader, writer, upstream=False))]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in tasks:
                t.cancel()
            self._conns.discard(conn)
            conn.abort()

    async def _pipe(self, conn: _Conn, src: asyncio.StreamReader, dst: asyncio.StreamWriter, *,
                    upstream: bool) -> None:
        while data := await src.read(65536):
            mode = self.mode
            if mode == "drop" or (mode == "halfopen" and not upstream):
                self.stats["swallowed_bytes"] += len(data)
                continue
            if mode == "delay":
                await asyncio.sleep(self.delay_s)
            if conn.budget is not None:
                if len(data) >= conn.budget:
                    dst.write(data[:conn.budget])
                    with contextlib.suppress(Exception):
                        await dst.drain()
                    self.stats["cuts"] += 1
                    return
                conn.budget -= len(data)
            dst.write(data)
            self.stats["forwarded_bytes"] += len(data)
            await dst.drain()


@dataclass(eq=False)
class _Conn:
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter
    budget: int | None = None

    def abort(self) -> None:
        for w in (self.client, self.upstream):
            with contextlib.suppress(Exception):
                w.transport.abort()


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
