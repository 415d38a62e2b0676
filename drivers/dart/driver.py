"""DART line driver: the shared line loop (:mod:`drivers.line`) with the DART bus, 8O1.

``DartLineDriver`` runs the bus cycle of one line (up to 32 fuelling points) in its own thread with a
sans-IO :class:`~drivers.dart.protocol.DartBus`; the port is opened 8 data bits, odd parity, one stop
bit, never 8N1 (R10).  Polling, pacing to the wire time, command queues, emergency stop and port
reopening live in :class:`~drivers.line.PolledLineDriver`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from drivers.base import EventSink, LineConfig
from drivers.dart.protocol import DartBus, Timing
from drivers.line import BusProtocol, PolledLineDriver
from drivers.transport import SerialTransport

__all__ = ["DartLineDriver"]


class DartLineDriver(PolledLineDriver):
    """One DART line (up to 32 fuelling points); several instances may run at once."""

    protocol_name = "dart"

    def __init__(
        self,
        config: LineConfig,
        events: EventSink,
        *,
        timing: Timing | None = None,
        transport: SerialTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
        pace: bool = True,
        reopen_s: float = 1.0,
    ) -> None:
        self._timing = timing
        super().__init__(config, events, transport=transport, clock=clock, pace=pace, reopen_s=reopen_s)

    def _make_bus(self) -> BusProtocol:
        return DartBus(self.config, self._timing)
