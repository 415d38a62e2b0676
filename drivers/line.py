"""The line loop shared by every polled pump protocol: one thread per serial line.

A :class:`PolledLineDriver` owns a :class:`~drivers.transport.SerialTransport` and a sans-IO bus
(:class:`BusProtocol`).  Its thread loops: drain commands (emergency stops first) at the frame
boundary, write the next frame, wait for bytes until the bus deadline, feed them to the bus, hand
the events to the sink.

Pacing: a PTY or socket delivers at once, so the loop never starts a frame before the wire time of
the previous exchange has elapsed (bytes x 11 bits / baud).  This keeps timing realistic and the
CPU low.  ``emergency_stop`` only appends to a deque and wakes the thread: it waits for nothing
but the end of the exchange on the wire.  A line error (port gone) is reported as ``LinkFault``
(pump 0) and the port is reopened every ``reopen_s``; pumps then go OFFLINE by timeouts.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

from drivers.base import (
    Command,
    CommandRejected,
    DriverEvent,
    EmergencyStop,
    EventSink,
    LineConfig,
    LineDriver,
    LineError,
    LinkFault,
    PumpState,
)
from drivers.transport import SerialTransport

__all__ = ["BusProtocol", "PolledLineDriver"]

log = logging.getLogger(__name__)


class BusProtocol(Protocol):
    """What a sans-IO bus offers the line loop (``DartBus``, ``GilbarcoBus``)."""

    @property
    def deadline(self) -> float | None: ...

    def state(self, pump_id: int) -> PumpState | None: ...

    def submit(self, command: Command, now: float) -> list[DriverEvent]: ...

    def emergency_stop(self, pump_id: int, now: float) -> list[DriverEvent]: ...

    def next_frame(self, now: float) -> bytes | None: ...

    def receive(self, data: bytes, now: float) -> list[DriverEvent]: ...

    def tick(self, now: float) -> list[DriverEvent]: ...


class PolledLineDriver(LineDriver):
    """The bus cycle of one line in its own thread, for any sans-IO master protocol.

    Template method (python-can's ``BusABC``): subclasses only choose the bus and how the port is
    opened (``_make_bus``, ``_make_transport``); polling, pacing, the command queues, emergency stop
    and port reopening are written once here.
    """

    #: thread name prefix, e.g. "dart"
    protocol_name = "line"

    def __init__(
        self,
        config: LineConfig,
        events: EventSink,
        *,
        transport: SerialTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
        pace: bool = True,
        reopen_s: float = 1.0,
    ) -> None:
        super().__init__(config, events)
        self._bus = self._make_bus()  # validates the configuration (ConfigError)
        self._transport = transport or self._make_transport()
        self._clock = clock
        self._byte_s = 11.0 / config.baudrate if pace else 0.0
        self._reopen_s = reopen_s
        self._lock = threading.Lock()
        self._commands: deque[Command] = deque()
        self._estops: deque[int] = deque()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ids = frozenset(self.pump_ids())
        self.frames_sent = 0
        self.bytes_on_wire = 0

    def _make_bus(self) -> BusProtocol:
        raise NotImplementedError

    def _make_transport(self) -> SerialTransport:
        return SerialTransport(self.config.url, self.config.baudrate)

    # ------------------------------------------------------------ LineDriver API

    def start(self) -> None:
        if self._thread is not None:
            return
        self._transport.open()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"{self.protocol_name} {self.config.name}", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._transport.wakeup()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)
        self._thread = None
        self._transport.close()

    def submit(self, command: Command) -> None:
        if isinstance(command, EmergencyStop):
            self.emergency_stop(command.pump_id)
            return
        if command.pump_id not in self._ids:
            raise CommandRejected(f"no pump {command.pump_id} on line {self.config.name}")
        with self._lock:
            self._commands.append(command)
        self._transport.wakeup()

    def emergency_stop(self, pump_id: int = 0) -> None:
        if pump_id != 0 and pump_id not in self._ids:
            raise CommandRejected(f"no pump {pump_id} on line {self.config.name}")
        self._estops.append(pump_id)  # deque.append is atomic: no lock, nothing to wait on
        self._transport.wakeup()

    def state(self, pump_id: int) -> PumpState | None:
        """Last reported state (for diagnostics; the agent should follow the events)."""
        return self._bus.state(pump_id)

    # ------------------------------------------------------------ thread

    def _emit(self, events: list[DriverEvent]) -> None:
        for event in events:
            try:
                self._events(event)
            except Exception:  # the sink must only enqueue; never let it kill the line
                log.exception("event sink failed on %r", event)

    def _drain(self, now: float) -> None:
        while self._estops:
            self._emit(self._bus.emergency_stop(self._estops.popleft(), now))
        while True:
            with self._lock:
                if not self._commands:
                    return
                command = self._commands.popleft()
            self._emit(self._bus.submit(command, now))

    def _run(self) -> None:
        bus, transport, clock = self._bus, self._transport, self._clock
        free_at = 0.0  # the line carries the previous exchange until then
        while not self._stop.is_set():
            try:
                now = clock()
                self._drain(now)
                if now < free_at:
                    data = transport.read(free_at - now)
                    if data:
                        self.bytes_on_wire += len(data)
                        free_at += len(data) * self._byte_s
                        self._emit(bus.receive(data, clock()))
                    continue
                frame = bus.next_frame(now)
                if frame is not None:
                    transport.write(frame)
                    self.frames_sent += 1
                    self.bytes_on_wire += len(frame)
                    free_at = max(free_at, now) + len(frame) * self._byte_s
                    continue
                deadline = bus.deadline
                data = transport.read(0.05 if deadline is None else deadline - now)
                now = clock()
                if data:
                    self.bytes_on_wire += len(data)
                    free_at = max(free_at, now - len(data) * self._byte_s) + len(data) * self._byte_s
                    self._emit(bus.receive(data, now))
                else:
                    self._emit(bus.tick(now))
            except LineError as exc:
                self._line_error(exc)

    def _line_error(self, exc: LineError) -> None:
        self._emit([LinkFault(0, self._clock(), f"line error: {exc}")])
        self._transport.close()
        while not self._stop.wait(self._reopen_s):
            try:
                self._transport.open()
                return
            except LineError as again:
                log.warning("reopen of %s failed: %s", self.config.url, again)
