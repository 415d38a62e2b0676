"""In-memory harness: a GilbarcoBus (master) wired to a GilbarcoSimLine (pumps) with a fake clock."""

from __future__ import annotations

from drivers.base import Decimals, DriverEvent, LineConfig, PumpConfig
from drivers.gilbarco.protocol import GilbarcoBus, Timing
from drivers.sim.gilbarco_line import GilbarcoSimLine
from drivers.sim.gilbarco_responder import GilbarcoResponder
from drivers.sim.pump import LedgerEntry, SimPump
from tests.drivers.harness import BusHarness


class GilWire(BusHarness):
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
        self.unit_s = 11 / baudrate  # 11-bit words
        self.sent: list[bytes] = []
