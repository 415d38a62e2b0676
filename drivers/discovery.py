"""Serial port discovery and a DART bus scan, for ``forecourt setup`` and ``forecourt doctor``.

:func:`list_serial_ports` lists the machine's serial ports with what udev knows about them (USB
vendor/product, serial number, ``by-path`` location), so a technician can tell two identical
USB–RS-485 adapters apart and pin each to a stable name (see ``packaging/udev/``).

:func:`scan_bus` opens one line 8O1 through :class:`~drivers.transport.SerialTransport`, sends a DART
``POLL`` to every address of ``addresses`` (default 0x50..0x6F) and records which pumps answer (a
``DATA`` frame or ``EOT``), ACKing any data frame so the pump does not hold it for the agent.
It sends nothing else: no authorize, no price, no reset.

Limits: the scan needs the port to itself — never run it while the agent holds the line (the
doctor asks the agent's API instead).  A ``socket://`` URL or PTY ignores baud rate and parity, so a
scan over them proves the wiring of the software, not the RS-485 line settings.  A pump that
answers garbage is reported as ``noise`` on its address, not as present.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from serial.tools import list_ports

from drivers.base import LineError
from drivers.dart.blocks import Direction
from drivers.dart.codec import ADDRESS_MAX, ADDRESS_MIN, DecodeError, Decoder, Frame, Kind, encode
from drivers.transport import SerialTransport

__all__ = ["PortInfo", "ScanResult", "list_serial_ports", "scan_bus"]


@dataclass(frozen=True)
class PortInfo:
    """One serial port as the OS reports it."""

    device: str
    description: str = ""
    hwid: str = ""
    vid: int | None = None
    pid: int | None = None
    serial_number: str | None = None
    location: str | None = None
    manufacturer: str | None = None
    product: str | None = None

    @property
    def is_usb(self) -> bool:
        return self.vid is not None

    def label(self) -> str:
        """A one-line human description, e.g. ``/dev/ttyUSB0  FT232R USB UART  0403:6001 sn=A10K…``."""
        parts = [self.device]
        if self.description and self.description != "n/a":
            parts.append(self.description)
        if self.vid is not None and self.pid is not None:
            parts.append(f"{self.vid:04x}:{self.pid:04x}")
        if self.serial_number:
            parts.append(f"sn={self.serial_number}")
        if self.location:
            parts.append(f"at {self.location}")
        return "  ".join(parts)


def list_serial_ports(*, include_links: bool = False) -> list[PortInfo]:
    """Serial ports present now, sorted by device path (USB adapters and built-in UARTs)."""
    out = []
    for p in list_ports.comports(include_links=include_links):
        out.append(PortInfo(
            device=p.device, description=p.description or "", hwid=p.hwid or "",
            vid=p.vid, pid=p.pid, serial_number=p.serial_number, location=p.location,
            manufacturer=p.manufacturer, product=p.product,
        ))
    return sorted(out, key=lambda x: x.device)


@dataclass
class ScanResult:
    """What one bus scan found.  ``answered`` maps address → ``"data"`` or ``"eot"``."""

    url: str
    baudrate: int
    answered: dict[int, str] = field(default_factory=dict)
    noise: dict[int, str] = field(default_factory=dict)
    error: str | None = None
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None

    def addresses(self) -> list[int]:
        return sorted(self.answered)


def _poll_one(port: SerialTransport, decoder: Decoder, address: int, timeout_s: float) -> tuple[str | None, str]:
    """POLL one address; ``(kind, detail)`` with kind "data", "eot", "noise" or None (silent)."""
    port.discard_input()
    decoder.clear()
    port.write(encode(Frame(address, Kind.POLL)))
    deadline = time.monotonic() + timeout_s
    noise = ""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return ("noise", noise) if noise else (None, "")
        for item in decoder.feed(port.read(left)):
            if isinstance(item, DecodeError):
                noise = f"{item.reason}: {item.raw.hex(' ')[:48]}"
                continue
            if item.address != address:
                noise = f"answer from {item.address:#04x}"
                continue
            if item.kind is Kind.DATA:
                # Acknowledge so the pump does not keep this frame for the next master.
                port.write(encode(Frame(address, Kind.ACK, item.tx)))
                return "data", ""
            if item.kind is Kind.EOT:
                return "eot", ""
            noise = f"unexpected {item.kind.name}"


def scan_bus(url: str, baudrate: int = 9600, addresses: range | list[int] | None = None, *,
             timeout_s: float = 0.15, retries: int = 1) -> ScanResult:
    """POLL each address once (plus ``retries`` for silent ones) and report who answers.

    Never raises for line problems: a port that cannot be opened gives ``ScanResult.error``.
    Time taken is about ``len(addresses) × timeout_s`` for an empty bus (0.15 s × 32 ≈ 5 s).
    """
    addrs = list(addresses if addresses is not None else range(ADDRESS_MIN, ADDRESS_MAX + 1))
    for a in addrs:
        if not ADDRESS_MIN <= a <= ADDRESS_MAX:
            raise ValueError(f"DART address {a:#x} outside 0x50-0x6F")
    result = ScanResult(url, baudrate)
    started = time.monotonic()
    port = SerialTransport(url, baudrate)
    try:
        port.open()
    except LineError as exc:
        result.error = str(exc)
        return result
    decoder = Decoder(Direction.FROM_PUMP)
    try:
        for a in addrs:
            for _ in range(1 + max(0, retries)):
                kind, detail = _poll_one(port, decoder, a, timeout_s)
                if kind in ("data", "eot"):
                    result.answered[a] = kind
                    result.noise.pop(a, None)
                    break
                if kind == "noise":
                    result.noise[a] = detail
    except LineError as exc:
        result.error = str(exc)
    finally:
        port.close()
        result.duration_s = time.monotonic() - started
    return result
