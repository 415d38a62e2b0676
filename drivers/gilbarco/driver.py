"""Gilbarco two-wire line driver: the shared line loop (:mod:`drivers.line`) with the Gilbarco bus, 8E1.

``GilbarcoLineDriver`` opens its port **8E1** at the loop's baud rate (5787 for a real loop behind
its current-loop adapter; never 9600, never 8N1, R10) and runs a sans-IO
:class:`~drivers.gilbarco.protocol.GilbarcoBus` in the loop shared with DART, so both protocols
behave the same towards the agent.  Pacing: 11 bits per word, 1.90 ms per word at 5787 baud.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from drivers.base import ConfigError, EventSink, LineConfig
from drivers.gilbarco.protocol import GilbarcoBus, Timing
from drivers.line import BusProtocol, PolledLineDriver
from drivers.transport import SerialTransport

__all__ = ["BAUDRATES", "GilbarcoLineDriver"]

#: 5787 (PROTOCOLS.md 2.1) or 5760 (one controller); anything else is refused unless ``any_baud``.
BAUDRATES = (5787, 5760)


class GilbarcoLineDriver(PolledLineDriver):
    """One Gilbarco loop (up to 16 pumps); several instances may run at once."""

    protocol_name = "gilbarco"

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
        any_baud: bool = False,
    ) -> None:
        if config.baudrate not in BAUDRATES and not any_baud:
            raise ConfigError(f"line {config.name}: Gilbarco two-wire runs at 5787 baud, not {config.baudrate} (R10)")
        self._timing = timing
        super().__init__(config, events, transport=transport, clock=clock, pace=pace, reopen_s=reopen_s)

    def _make_bus(self) -> BusProtocol:
        return GilbarcoBus(self.config, self._timing)

    def _make_transport(self) -> SerialTransport:
        return SerialTransport(self.config.url, self.config.baudrate, parity="E")
