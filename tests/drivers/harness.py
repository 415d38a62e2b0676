"""In-memory harness: a DartBus (master) wired to a SimLine (pumps) with a fake clock."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from drivers.base import Command, Decimals, DriverEvent, LineConfig, PumpConfig
from drivers.dart.protocol import DartBus, Timing
from drivers.sim.line import SimLine
from drivers.sim.pump import LedgerEntry, SimPump
from drivers.sim.responder import Responder


class BusHarness:
    """Steps a bus master and its simulated pumps against a fake clock; every exchange costs wire time.

    Subclasses set ``bus``, ``line``, ``unit_s`` (seconds per byte or word on the wire) and
    ``events``/``sent``/``now``; ``Wire`` is DART, ``tests.drivers.gilbarco_harness.GilWire`` Gilbarco.
    """

    bus: Any
    line: Any
    unit_s: float
    now: float
    events: list[DriverEvent]
    sent: list[bytes]

    def submit(self, command: Command, now: float | None = None) -> None:
        self.events += self.bus.submit(command, self.now if now is None else now)

    def emergency_stop(self, pump_id: int, now: float | None = None) -> None:
        self.events += self.bus.emergency_stop(pump_id, self.now if now is None else now)

    def step(self) -> None:
        """One exchange (or one timeout)."""
        frame = self.bus.next_frame(self.now)
        if frame is None:
            deadline = self.bus.deadline
            self.now = max(self.now, deadline if deadline is not None else self.now) + 1e-6
            self.events += self.bus.tick(self.now)
            return
        self.sent.append(frame)
        self.now += len(frame) * self.unit_s
        replies = self.line.handle(frame, self.now)
        for delay, data in replies:
            self.now += delay + len(data) * self.unit_s
            self.events += self.bus.receive(data, self.now)
        if not replies and self.bus.deadline is not None:
            self.now = max(self.now, self.bus.deadline)
        self.events += self.bus.tick(self.now)

    def run(self, seconds: float) -> None:
        end = self.now + seconds
        while self.now < end:
            self.step()

    def until(self, cond: Callable[[], bool], seconds: float = 30.0) -> bool:
        end = self.now + seconds
        while self.now < end:
            if cond():
                return True
            self.step()
        return cond()

    def of(self, kind: type[DriverEvent], pump_id: int | None = None) -> list[DriverEvent]:
        return [e for e in self.events if isinstance(e, kind) and (pump_id is None or e.pump_id == pump_id)]


class Wire(BusHarness):
    """Steps master and pumps against a fake clock; every exchange costs its wire time."""

    def __init__(
        self,
        pumps: int = 2,
        nozzles: tuple[int, ...] = (1, 2),
        *,
        baudrate: int = 9600,
        speed: float = 10.0,
        prices: tuple[int, ...] | None = (789, 812),
        timing: Timing | None = None,
        seed: int = 1,
        tx_wrap_to: int = 1,
        max_timeouts: int = 5,
    ) -> None:
        self.now = 1000.0
        self.ledger: list[LedgerEntry] = []
        self.sim_pumps = [
            SimPump(i + 1, 0x50 + i, nozzles, Decimals(), speed=speed, on_fill=self.ledger.append) for i in range(pumps)
        ]
        self.responders = [Responder(p, tx_wrap_to) for p in self.sim_pumps]
        self.line = SimLine(self.responders, seed=seed)
        self.config = LineConfig(
            "test",
            "dart",
            "mem://",
            tuple(PumpConfig(i + 1, 0x50 + i, nozzles, tx_wrap_to=tx_wrap_to) for i in range(pumps)),
            baudrate=baudrate,
            max_consecutive_timeouts=max_timeouts,
        )
        self.bus = DartBus(self.config, timing)
        self.events: list[DriverEvent] = []
        self.unit_s = 11 / baudrate  # 8O1: 11 bits a byte
        self.sent: list[bytes] = []
        if prices is not None:
            for p in self.sim_pumps:
                p.set_prices(prices[: len(nozzles)])
                p.status = 1
