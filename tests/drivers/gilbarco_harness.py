"""In-memory harness: a GilbarcoBus (master) wired to a GilbarcoSimLine (pumps) with a fake clock."""

from __future__ import annotations

from collections.abc import Callable

from drivers.base import Command, Decimals, DriverEvent, LineConfig, PumpConfig
from drivers.gilbarco.protocol import GilbarcoBus, Timing
from drivers.sim.gilbarco_line import GilbarcoSimLine
from drivers.sim.gilbarco_responder import GilbarcoResponder
from drivers.sim.pump import LedgerEntry, SimPump


class GilWire:
    """Steps master and pumps against a fake clock; every exchange costs its wire time."""

    def __init__(
        self,
        pumps: int = 2,
        nozzles: tuple[int, ...] = (1, 2),
        *,
        baudrate: int = 5787,
        speed: float = 10.0,
        prices: tuple[int, ...] = (789, 812),
        timing: Timing | None = None,
        seed: int = 1,
        max_timeouts: int = 5,
    ) -> None:
        self.now = 1000.0
        self.ledger: list[LedgerEntry] = []
        self.sim_pumps = [
            SimPump(i + 1, i + 1, nozzles, Decimals(), speed=speed, on_fill=self.ledger.append) for i in range(pumps)
        ]
        for p in self.sim_pumps:
            p.set_prices(prices[: len(nozzles)])
            p.status = 1
        self.responders = [GilbarcoResponder(p) for p in self.sim_pumps]
        self.line = GilbarcoSimLine(self.responders, seed=seed)
        self.config = LineConfig(
            "test",
            "gilbarco",
            "mem://",
            tuple(PumpConfig(i + 1, i + 1, nozzles) for i in range(pumps)),
            baudrate=baudrate,
            max_consecutive_timeouts=max_timeouts,
        )
        self.bus = GilbarcoBus(self.config, timing)
        self.events: list[DriverEvent] = []
        self.word_s = 11 / baudrate
        self.sent: list[bytes] = []

    def submit(self, command: Command) -> None:
        self.events += self.bus.submit(command, self.now)

    def emergency_stop(self, pump_id: int) -> None:
        self.events += self.bus.emergency_stop(pump_id, self.now)

    def step(self) -> None:
        """One exchange (or one timeout)."""
        frame = self.bus.next_frame(self.now)
        if frame is None:
            deadline = self.bus.deadline
            self.now = max(self.now, deadline if deadline is not None else self.now) + 1e-6
            self.events += self.bus.tick(self.now)
            return
        self.sent.append(frame)
        self.now += len(frame) * self.word_s
        replies = self.line.handle(frame, self.now)
        for delay, data in replies:
            self.now += delay + len(data) * self.word_s
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
