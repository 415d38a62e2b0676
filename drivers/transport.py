"""Serial byte transport: the only module that imports pyserial.

:class:`SerialTransport` opens a pyserial URL (device path, PTY slave path, ``socket://host:port``,
``rfc2217://``, ``spy://``) with **8 data bits, the protocol's parity, 1 stop bit** -- odd (8O1) for
DART, even (8E1) for Gilbarco two-wire -- and never falls back to another framing: if the parity
cannot be set, :class:`~drivers.base.LineError`.  A reader thread only moves bytes
from the port into a buffer; :meth:`read` waits on that buffer with a timeout and can be woken early
by :meth:`wakeup` (emergency stop, close).

Limits: ``socket://`` and PTYs ignore baud rate and parity (PROTOCOLS.md section 5); pacing to the
wire time is the caller's job.  pyserial exceptions never leave this module: they become LineError.
"""

from __future__ import annotations

import os
import termios
import threading

import serial

from drivers.base import LineError

__all__ = ["PARITIES", "SerialTransport"]

#: parity letter -> pyserial constant; "N" is deliberately absent (R10: no fallback to 8N1).
PARITIES = {"O": serial.PARITY_ODD, "E": serial.PARITY_EVEN}


def _clear_parity(url: str) -> bool:
    """Reset parity (PARENB/PARODD) and a custom speed on a tty device path so pyserial can set them
    afresh; False if not a tty.

    Linux PTYs keep the previous holder's settings; pyserial then fails to re-apply the same parity,
    or a custom rate such as 5787 (BOTHER, which it cannot read back).
    """
    if "://" in url:
        return False
    try:
        fd = os.open(url, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        attrs = termios.tcgetattr(fd)
        attrs[2] &= ~(termios.PARENB | termios.PARODD)
        cbaud = getattr(termios, "CBAUD", 0)
        if cbaud and attrs[2] & cbaud not in _STANDARD_SPEEDS:
            attrs[2] = (attrs[2] & ~cbaud) | termios.B9600
            attrs[4] = attrs[5] = termios.B9600
        termios.tcsetattr(fd, termios.TCSANOW, attrs)
    except termios.error:
        return False
    finally:
        os.close(fd)
    return True


_STANDARD_SPEEDS = frozenset(
    getattr(termios, f"B{rate}") for rate in (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)
)


class SerialTransport:
    """A byte pipe over one serial URL (see module docstring)."""

    def __init__(self, url: str, baudrate: int, *, parity: str = "O", poll_s: float = 0.05) -> None:
        if parity not in PARITIES:
            raise LineError(f"{url}: parity {parity!r} not allowed (only 8O1 or 8E1; never 8N1)")
        self.url = url
        self.baudrate = baudrate
        self.parity = parity
        self.poll_s = poll_s
        self._port: serial.SerialBase | None = None
        self._buf = bytearray()
        self._cond = threading.Condition()
        self._woken = False
        self._error: str | None = None
        self._stop = threading.Event()
        self._reader: threading.Thread | None = None
        self._write_lock = threading.Lock()

    @property
    def is_open(self) -> bool:
        return self._port is not None

    def open(self) -> None:
        """Open the port 8O1 or 8E1 and start the reader thread; raises LineError."""
        try:
            port = self._open_port()
        except termios.error as exc:
            # pyserial cannot re-apply parity or a custom speed over a tty that already has it
            # (Linux PTYs after an earlier holder): reset them once and open again.
            if not _clear_parity(self.url):
                raise LineError(f"cannot open {self.url} 8{self.parity}1 at {self.baudrate}: {exc}") from exc
            try:
                port = self._open_port()
            except (serial.SerialException, ValueError, OSError, termios.error) as exc2:
                raise LineError(f"cannot open {self.url} 8{self.parity}1 at {self.baudrate}: {exc2}") from exc2
        except (serial.SerialException, ValueError, OSError) as exc:
            raise LineError(f"cannot open {self.url} 8{self.parity}1 at {self.baudrate}: {exc}") from exc
        if port.parity != PARITIES[self.parity] or port.bytesize != serial.EIGHTBITS or port.baudrate != self.baudrate:
            port.close()
            raise LineError(f"{self.url}: 8{self.parity}1 at {self.baudrate} baud not available; refusing a fallback")
        self._port = port
        self._error = None
        self._stop.clear()
        self._reader = threading.Thread(target=self._read_loop, name=f"serial-rx {self.url}", daemon=True)
        self._reader.start()

    def _open_port(self) -> serial.SerialBase:
        port: serial.SerialBase = serial.serial_for_url(
            self.url,
            baudrate=self.baudrate,
            bytesize=serial.EIGHTBITS,
            parity=PARITIES[self.parity],
            stopbits=serial.STOPBITS_ONE,
            timeout=self.poll_s,
        )
        return port

    def close(self) -> None:
        """Stop the reader and close the port (idempotent)."""
        self._stop.set()
        port, self._port = self._port, None
        if port is not None and hasattr(port, "cancel_read"):
            try:
                port.cancel_read()
            except (serial.SerialException, OSError):  # pragma: no cover - best effort
                pass
        if self._reader is not None and self._reader is not threading.current_thread():
            self._reader.join(timeout=2.0)
        self._reader = None
        if port is not None:
            try:
                port.close()
            except (serial.SerialException, OSError):  # pragma: no cover - best effort
                pass
        self.wakeup()

    def write(self, data: bytes) -> None:
        port = self._port
        if port is None:
            raise LineError(f"{self.url} is not open")
        try:
            with self._write_lock:
                port.write(data)
        except (serial.SerialException, OSError) as exc:
            raise LineError(f"write to {self.url} failed: {exc}") from exc

    def read(self, timeout_s: float) -> bytes:
        """Bytes received so far; waits up to ``timeout_s`` for some (b"" on timeout or wakeup)."""
        with self._cond:
            if not self._buf and not self._woken and self._error is None:
                self._cond.wait(max(0.0, timeout_s))
            self._woken = False
            if self._error is not None and not self._buf:
                raise LineError(self._error)
            data = bytes(self._buf)
            self._buf.clear()
        return data

    def discard_input(self) -> bytes:
        with self._cond:
            data = bytes(self._buf)
            self._buf.clear()
        return data

    def wakeup(self) -> None:
        """Make a waiting :meth:`read` return now."""
        with self._cond:
            self._woken = True
            self._cond.notify_all()

    def _read_loop(self) -> None:
        port = self._port
        assert port is not None
        while not self._stop.is_set():
            try:
                waiting: int = getattr(port, "in_waiting", 0)  # not in SerialBase's stubs
                data = port.read(waiting or 1)
            except (serial.SerialException, OSError, TypeError, AttributeError) as exc:
                if not self._stop.is_set():
                    with self._cond:
                        self._error = f"read from {self.url} failed: {exc}"
                        self._cond.notify_all()
                return
            if data:
                with self._cond:
                    self._buf += data
                    self._cond.notify_all()
