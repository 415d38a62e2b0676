"""Byte streams for the pump simulator: PTY master, TCP (``socket://`` peer) or a serial URL.

:func:`serve` runs one :class:`~drivers.sim.line.SimLine` on one stream in the calling thread until
``stop`` is set.  Each reply is written after its simulated latency plus, when ``baudrate`` is
given, the wire time of request and reply (bytes x 11 / baud) -- a PTY or socket would otherwise
deliver 960 bytes in no time.

Limits: one TCP client at a time (a new connection waits for the previous one to close); a PTY
ignores baud and parity; on a PTY the simulator keeps the slave open so the path stays valid.
"""

from __future__ import annotations

import os
import select
import socket
import threading
import time
import tty
from collections.abc import Callable
from typing import Protocol

from drivers.transport import SerialTransport

__all__ = ["PtyStream", "SerialStream", "Stream", "TcpStream", "serve"]

Handler = Callable[[bytes, float], list[tuple[float, bytes]]]


class Stream(Protocol):
    def recv(self, timeout_s: float) -> bytes: ...
    def send(self, data: bytes) -> None: ...
    def close(self) -> None: ...


class PtyStream:
    """A fresh pseudo-terminal; the driver opens :attr:`path` (the slave) with pyserial."""

    def __init__(self) -> None:
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.path = os.ttyname(self._slave)

    def recv(self, timeout_s: float) -> bytes:
        ready, _, _ = select.select([self.master], [], [], timeout_s)
        if not ready:
            return b""
        try:
            return os.read(self.master, 4096)
        except OSError:  # pragma: no cover - slave side hung up
            return b""

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def close(self) -> None:
        for fd in (self.master, self._slave):
            try:
                os.close(fd)
            except OSError:  # pragma: no cover
                pass


class TcpStream:
    """Listens on host:port; the driver uses ``socket://host:port``.  One client at a time."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._server = socket.create_server((host, port))
        self.host, self.port = self._server.getsockname()[:2]
        self.url = f"socket://{self.host}:{self.port}"
        self._client: socket.socket | None = None

    def recv(self, timeout_s: float) -> bytes:
        if self._client is None:
            ready, _, _ = select.select([self._server], [], [], timeout_s)
            if ready:
                self._client, _ = self._server.accept()
                self._client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return b""
        ready, _, _ = select.select([self._client], [], [], timeout_s)
        if not ready:
            return b""
        try:
            data = self._client.recv(4096)
        except OSError:
            data = b""
        if not data:
            self._client.close()
            self._client = None
        return data

    def send(self, data: bytes) -> None:
        if self._client is not None:
            try:
                self._client.sendall(data)
            except OSError:
                self._client.close()
                self._client = None

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
        self._server.close()


class SerialStream:
    """The pump side on a real port (e.g. a second USB-RS485 adapter), through the transport."""

    def __init__(self, url: str, baudrate: int, parity: str = "O") -> None:
        self._transport = SerialTransport(url, baudrate, parity=parity)
        self._transport.open()

    def recv(self, timeout_s: float) -> bytes:
        return self._transport.read(timeout_s)

    def send(self, data: bytes) -> None:
        self._transport.write(data)

    def close(self) -> None:
        self._transport.close()


def serve(stream: Stream, handle: Handler, stop: threading.Event, baudrate: int | None = None) -> None:
    """Answer the master on ``stream`` until ``stop`` is set."""
    byte_s = 11.0 / baudrate if baudrate else 0.0
    while not stop.is_set():
        data = stream.recv(0.1)
        if not data:
            continue
        for delay, reply in handle(data, time.monotonic()):
            wait = delay + (len(data) + len(reply)) * byte_s
            if wait > 0 and stop.wait(wait):
                return
            stream.send(reply)
