"""A small TCP proxy in front of the simulated center: outages and lost answers.

* ``set_down(True)``: every open connection is reset and new ones are closed at once (the center
  is unreachable); ``set_down(False)`` heals.
* An HTTP answer carrying ``x-sim-drop: 1`` (set by the app after it committed) is never
  forwarded: both connections are closed, so the client sees the write vanish although it
  happened — the "success then connection drop" fault.

Limits: HTTP/1.1 without pipelining (httpx does not pipeline); the marker must be in the first
chunk of the answer (headers are written first and are small); loopback only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading

__all__ = ["FaultProxy"]

log = logging.getLogger(__name__)

_MARK = b"\r\nx-sim-drop: 1"


class FaultProxy:
    def __init__(self, upstream: tuple[str, int], listen: tuple[str, int] = ("127.0.0.1", 0)) -> None:
        self.upstream = upstream
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # => TCP_NODELAY
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(listen)
        self.host, self.port = self._sock.getsockname()[:2]
        self._loop = asyncio.new_event_loop()
        self._down = False
        self._writers: set[asyncio.StreamWriter] = set()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="center-proxy", daemon=True)
        self.dropped = 0

    def start(self) -> FaultProxy:
        self._thread.start()
        self._ready.wait(10)
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
            self._loop.run_until_complete(self._server.wait_closed())
            self._loop.close()

    def stop(self) -> None:
        def _close() -> None:
            self._server.close()
            for w in list(self._writers):
                w.close()
            self._loop.stop()

        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(_close)
            self._thread.join(5)

    def set_down(self, down: bool) -> None:
        def _apply() -> None:
            self._down = down
            if down:
                for w in list(self._writers):
                    with contextlib.suppress(Exception):
                        w.transport.abort()

        done = threading.Event()

        def _run() -> None:
            _apply()
            done.set()

        self._loop.call_soon_threadsafe(_run)
        done.wait(5)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._down:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        awaiting_answer = [False]

        async def client_to_up() -> None:
            while data := await reader.read(65536):
                awaiting_answer[0] = True
                up_writer.write(data)
                await up_writer.drain()

        async def up_to_client() -> None:
            while data := await up_reader.read(65536):
                if awaiting_answer[0]:
                    awaiting_answer[0] = False
                    if _MARK in data.lower():
                        self.dropped += 1
                        return
                writer.write(data)
                await writer.drain()

        tasks = [asyncio.ensure_future(client_to_up()), asyncio.ensure_future(up_to_client())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in tasks:
                t.cancel()
            for w in (writer, up_writer):
                self._writers.discard(w)
                with contextlib.suppress(Exception):
                    w.transport.abort()
