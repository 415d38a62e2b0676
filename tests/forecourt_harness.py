"""A station on a real PTY: pump simulator + DART line driver + agent + forecourt controller."""

from __future__ import annotations

import queue
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from agent.config import parse_config
from agent.events import Event, Subscription
from agent.forecourt import Forecourt
from agent.service import Agent
from agent.store import Store
from drivers.registry import create_line_driver
from drivers.sim.simulator import PumpSimulator

GRADES = (("92", 789), ("95", 839))


def station_toml(url: str, pumps: int, *, baudrate: int = 115200, extra: str = "") -> dict[str, Any]:
    import tomllib

    lines = ["[station]", 'id = "T001"', "[api]", 'token = "test-token-0123456789abcdef"']
    for code, price in GRADES:
        lines += ["[[grades]]", f'code = "{code}"', f'name = "{code}#"', f"price_fen = {price}"]
    lines += ["[[lines]]", 'name = "bus1"', 'protocol = "dart"', f'url = "{url}"', f"baudrate = {baudrate}",
              "response_timeout_s = 0.1"]
    for i in range(pumps):
        lines += ["[[lines.pumps]]", f"pump_id = {i + 1}", f"address = 0x{0x50 + i:02X}",
                  f'nozzles = [{{ number = {2 * i + 1}, logical = 1, grade = "92" }}, '
                  f'{{ number = {2 * i + 2}, logical = 2, grade = "95" }}]']
    return tomllib.loads("\n".join(lines) + "\n" + extra)


class Station:
    def __init__(self, sim: PumpSimulator, agent: Agent, forecourt: Forecourt, sub: Subscription) -> None:
        self.sim, self.agent, self.forecourt, self.sub = sim, agent, forecourt, sub
        self.seen: list[Event] = []

    def wait_event(self, predicate: Callable[[Event], bool], timeout: float = 10.0) -> Event:
        """Wait for the next matching event on the agent's bus (events seen so far included)."""
        for ev in self.seen:
            if predicate(ev):
                self.seen.remove(ev)
                return ev
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no matching event within {timeout} s; last seen: "
                                     f"{[(e.topic, e.data.get('pump_id')) for e in self.seen[-8:]]}")
            ev = self.sub.get(timeout=left)
            if ev is None:
                continue
            if predicate(ev):
                return ev
            self.seen.append(ev)

    def wait_state(self, pump_id: int, state: str, timeout: float = 10.0) -> None:
        if self.forecourt.pump(pump_id)["state"] == state:
            return
        self.wait_event(lambda e: e.topic == "pump.status" and e.data["pump_id"] == pump_id
                        and e.data["state"] == state, timeout)

    def wait_all_idle(self, timeout: float = 15.0) -> None:
        for pid in range(1, len(self.forecourt.pumps()) + 1):
            self.wait_state(pid, "idle", timeout)

    def fills(self, state: str | None = None) -> list[dict[str, Any]]:
        return self.forecourt.fills(state=state, limit=1000)


@contextmanager
def station(tmp_path: Path, pumps: int = 2, *, speed: float = 20, extra: str = "",
            sim: PumpSimulator | None = None, db_name: str = "f.db") -> Iterator[Station]:
    own_sim = sim is None
    if sim is None:
        sim = PumpSimulator(pumps, 2, simulate=True, speed=speed, baudrate=None, seed=7)
        url = sim.start_pty()
    else:
        url = sim.url  # type: ignore[attr-defined]
    sim.url = url  # type: ignore[attr-defined]
    config = parse_config(station_toml(url, pumps, extra=extra))
    agent = Agent(config, Store(tmp_path / db_name))
    sub = agent.bus.subscribe(maxsize=100_000)
    fc = Forecourt(agent, create_line_driver)
    fc.start()
    st = Station(sim, agent, fc, sub)
    try:
        yield st
    finally:
        fc.close()
        sub.close()
        agent.close()
        if own_sim:
            sim.close()


def drain(q: queue.Queue[Any]) -> list[Any]:
    out = []
    while True:
        try:
            out.append(q.get_nowait())
        except queue.Empty:
            return out
