"""Loopback TCP proxies for the simulators and the fault harness.

``LoopbackProxy`` is the plumbing both share: a listening socket on loopback, one asyncio loop
thread, ``start()`` / ``stop()``, ``in_loop(fn)`` to change state from other threads, and one
forwarding task per direction of each connection.  A subclass decides per chunk what to do through
``forward(conn, data, upstream)`` (return the bytes to send, ``b""`` to swallow, ``None`` to end
the connection) and may refuse new connections in ``admit()``.

``FaultProxy`` sits in front of the simulated center: outages and lost answers.

* ``set_down(True)``: every open connection is reset and new ones are closed at once (the center
  is unreachable); ``set_down(False)`` heals.
* An HTTP answer carrying ``x-sim-drop: 1`` (set by the app after it committed) is never
  forwarded: both connections are closed, so the client sees the write vanish although it
  happened — the "success then connection drop" fault.

The fault harness's ``reliability.faults.ChaosProxy`` (delay, blackhole, reset, cut, half-open) is
the other subclass.

Limits: HTTP/1.1 without pipelining (httpx does not pipeline); the marker must be in the first
chunk of the answer (headers are written first and are small); the upstream is on loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Conn", "FaultProxy", "LoopbackProxy"]

log = logging.getLogger(__name__)

_MARK = b"\r\nx-sim-drop: 1"
LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass(eq=False)
class Conn:
    """One proxied connection: both writers, and per-connection state a subclass may use."""

    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter
    budget: int | None = None  #: bytes left before the connection is cut (None: no limit)
    awaiting_answer: bool = False  #: the client wrote since the last answer chunk

    def abort(self) -> None:
        for w in (self.client, self.upstream):
            with contextlib.suppress(Exception):
                w.transport.abort()


class LoopbackProxy:
    """See the module docstring."""

    def __init__(self, upstream: tuple[str, int], *, name: str = "proxy", listen: tuple[str, int] = ("127.0.0.1", 0)
                 ) -> None:
        if upstream[0] not in LOOPBACK:
            raise ValueError(f"{type(self).__name__} forwards to loopback only, not {upstream[0]!r}")
        self.upstream = upstream
        self.name = name
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(listen)
        self.host, self.port = self._sock.getsockname()[:2]
        self._loop = asyncio.new_event_loop()
        self._conns: set[Conn] = set()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"proxy-{name}", daemon=True)

    # ------------------------------------------------------------ lifecycle
    def start(self) -> LoopbackProxy:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError(f"proxy {self.name} did not start")
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
            self.abort_all()
            self._loop.stop()

        self._loop.call_soon_threadsafe(_close)
        self._thread.join(5)

    def in_loop(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the proxy's loop and wait for it (directly when the loop is not running)."""
        if not self._thread.is_alive():
            fn()
            return
        done = threading.Event()

        def run() -> None:
            try:
                fn()
            finally:
                done.set()

        self._loop.call_soon_threadsafe(run)
        done.wait(5)

    def abort_all(self) -> None:
        """Reset every open connection (call on the loop)."""
        for c in list(self._conns):
            c.abort()

    # ------------------------------------------------------------ what a subclass decides
    def admit(self) -> bool:
        """Whether a new connection is let through (else it is reset at once)."""
        return True

    def new_conn(self, conn: Conn) -> None:
        """A connection was set up (e.g. arm a budget)."""

    async def forward(self, conn: Conn, data: bytes, upstream: bool) -> bytes | None:
        """The bytes to pass on for ``data`` read from one side; ``b""`` swallows, ``None`` ends it."""
        return data

    # ------------------------------------------------------------ plumbing
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.admit():
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.transport.abort()
            return
        conn = Conn(writer, up_writer)
        self.new_conn(conn)
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

    async def _pipe(self, conn: Conn, src: asyncio.StreamReader, dst: asyncio.StreamWriter, *,
                    upstream: bool) -> None:
        while data := await src.read(65536):
            out = await self.forward(conn, data, upstream)
            if out is None:
                return
            if out:
                dst.write(out)
                await dst.drain()


class FaultProxy(LoopbackProxy):
    """The center simulator's proxy: outages and lost answers (module docstring)."""

    def __init__(self, upstream: tuple[str, int], listen: tuple[str, int] = ("127.0.0.1", 0)) -> None:
        super().__init__(upstream, name="center", listen=listen)
        self._down = False
        self.dropped = 0

    def start(self) -> FaultProxy:
        super().start()
        return self

    def set_down(self, down: bool) -> None:
        def apply() -> None:
            self._down = down
            if down:
                self.abort_all()

        self.in_loop(apply)

    def admit(self) -> bool:
        return not self._down

    async def forward(self, conn: Conn, data: bytes, upstream: bool) -> bytes | None:
        if upstream:
            conn.awaiting_answer = True
        elif conn.awaiting_answer:
            conn.awaiting_answer = False
            if _MARK in data.lower():
                self.dropped += 1
                return None
        return data
