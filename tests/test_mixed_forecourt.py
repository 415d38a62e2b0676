"""A station mixing a DART line and a Gilbarco two-wire loop: the agent cannot tell them apart.

Pumps 1-2 sit on a DART line (addresses 0x50, 0x51), pumps 3-4 on a Gilbarco loop (pump numbers 1, 2
at 5787 baud 8E1), each line against its own simulator on a real PTY.  The same agent calls and the
same assertions run on every pump.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from agent.config import ConfigError, parse_config
from agent.forecourt import Forecourt
from agent.service import Agent
from agent.store import Store
from drivers.registry import create_line_driver
from drivers.sim.pump import LedgerEntry
from drivers.sim.simulator import PumpSimulator
from tests.forecourt_harness import GRADES, Station

DART_PUMPS = (1, 2)
GILBARCO_PUMPS = (3, 4)
ALL = DART_PUMPS + GILBARCO_PUMPS


def mixed_toml(dart_url: str, gilbarco_url: str) -> dict[str, Any]:
    lines = ["[station]", 'id = "T001"', "[api]", 'token = "test-token-0123456789abcdef"']
    for code, price in GRADES:
        lines += ["[[grades]]", f'code = "{code}"', f'name = "{code}#"', f"price_fen = {price}"]
    for name, protocol, url, extra in (("dart1", "dart", dart_url, "baudrate = 9600"),
                                       ("gil1", "gilbarco", gilbarco_url, "")):
        lines += ["[[lines]]", f'name = "{name}"', f'protocol = "{protocol}"', f'url = "{url}"', extra]
        pumps = DART_PUMPS if protocol == "dart" else GILBARCO_PUMPS
        for i, pid in enumerate(pumps):
            address = f"0x{0x50 + i:02X}" if protocol == "dart" else str(i + 1)
            lines += ["[[lines.pumps]]", f"pump_id = {pid}", f"address = {address}",
                      f'nozzles = [{{ number = {2 * pid - 1}, logical = 1, grade = "92" }}, '
                      f'{{ number = {2 * pid}, logical = 2, grade = "95" }}]']
    return tomllib.loads("\n".join(lines) + "\n")


class Mixed(Station):
    def __init__(self, sims: dict[str, PumpSimulator], st: Station) -> None:
        super().__init__(st.sim, st.agent, st.forecourt, st.sub)
        self.sims = sims

    def sim_of(self, pump_id: int) -> tuple[PumpSimulator, int]:
        """(simulator, its pump number) for a station pump id."""
        return (self.sims["dart"], pump_id) if pump_id in DART_PUMPS else (self.sims["gilbarco"], pump_id - 2)

    def lift(self, pump_id: int, nozzle: int) -> None:
        sim, n = self.sim_of(pump_id)
        sim.lift(n, nozzle)

    def hang(self, pump_id: int) -> None:
        sim, n = self.sim_of(pump_id)
        sim.hang(n)

    def ledger(self, pump_id: int) -> list[LedgerEntry]:
        sim, n = self.sim_of(pump_id)
        return [e for e in sim.ledger() if e.pump == n]


@contextmanager
def sims() -> Iterator[dict[str, PumpSimulator]]:
    out = {p: PumpSimulator(2, 2, simulate=True, speed=20, baudrate=None, seed=9, protocol=p)
           for p in ("dart", "gilbarco")}
    try:
        yield out
    finally:
        for s in out.values():
            s.close()


@contextmanager
def mixed_station(tmp_path: Path, simulators: dict[str, PumpSimulator]) -> Iterator[Mixed]:
    urls = {p: getattr(s, "url", None) or s.start_pty() for p, s in simulators.items()}
    for p, s in simulators.items():
        s.url = urls[p]  # type: ignore[attr-defined]
    config = parse_config(mixed_toml(urls["dart"], urls["gilbarco"]))
    agent = Agent(config, Store(tmp_path / "mixed.db"))
    sub = agent.bus.subscribe(maxsize=100_000)
    fc = Forecourt(agent, create_line_driver)
    fc.start()
    st = Mixed(simulators, Station(simulators["dart"], agent, fc, sub))
    try:
        yield st
    finally:
        fc.close()
        sub.close()
        agent.close()


def _ready(st: Mixed) -> None:
    for pid in ALL:
        st.wait_state(pid, "idle", 15)
    for pid in ALL:  # every pump got the price book (DART: zeroized pump programmed; Gilbarco: per hose)
        st.wait_event(lambda e, p=pid: e.topic == "pump.prices" and e.data["pump_id"] == p and e.data["ok"], 15)


def _assert_matches(row: dict[str, Any], entry: LedgerEntry) -> None:
    assert (row["volume_ml"], row["amount_fen"], row["price_fen"]) == (entry.volume_ml, entry.amount_fen,
                                                                      entry.price_fen)
    assert row["end_total_ml"] == entry.end_volume_total_raw * 10


def test_mixed_station_fills_are_recorded_identically(tmp_path: Path) -> None:
    with sims() as simulators, mixed_station(tmp_path, simulators) as st:
        _ready(st)
        snapshots = [st.forecourt.pump(pid) for pid in ALL]
        assert all(s.keys() == snapshots[0].keys() for s in snapshots)
        assert {s["state"] for s in snapshots} == {"idle"}
        for sim in simulators.values():
            assert [p.prices for p in sim.pumps] == [{1: 789, 2: 839}] * 2
        fills = {}
        for pid in ALL:
            preset = {"preset_amount_fen": 1500 + pid} if pid % 2 else {"preset_volume_ml": 1200 + 10 * pid}
            fills[pid] = st.forecourt.authorize(pid, **preset)["fill_id"]
            st.wait_state(pid, "authorized")
            st.lift(pid, 1 + pid % 2)
        for pid in ALL:
            ev = st.wait_event(lambda e, p=pid: e.topic == "fill.finished" and e.data["pump_id"] == p, 20)
            assert ev.data["fill_id"] == fills[pid]
            st.hang(pid)
        for pid in ALL:
            st.wait_state(pid, "idle")
            row = st.forecourt.fill(fills[pid])
            assert row["state"] == "finished" and row["nozzle"] == 2 * pid - 1 + pid % 2
            (entry,) = st.ledger(pid)
            _assert_matches(row, entry)
            if pid % 2:
                assert row["amount_fen"] <= 1500 + pid
            else:
                assert row["volume_ml"] == 1200 + 10 * pid
            assert st.forecourt.pump(pid)["unpaid"] == 1
        # a second round on every pump: start totals now come from the first round (R7)
        for pid in ALL:
            st.forecourt.authorize(pid, preset_volume_ml=1000)
            st.wait_state(pid, "authorized")
            st.lift(pid, 1)
        for pid in ALL:
            st.wait_event(lambda e, p=pid: e.topic == "fill.finished" and e.data["pump_id"] == p, 20)
            st.hang(pid)
        assert len(st.fills("finished")) == 8
        assert all(f["note"] is None for f in st.fills("finished"))  # no meter variance, nothing unattributed


def test_emergency_stop_reaches_both_protocols(tmp_path: Path) -> None:
    with sims() as simulators, mixed_station(tmp_path, simulators) as st:
        _ready(st)
        for pid in ALL:
            st.forecourt.authorize(pid)
            st.wait_state(pid, "authorized")
            st.lift(pid, 1)
        for pid in ALL:
            st.wait_state(pid, "fuelling")
        assert st.forecourt.emergency_stop(0, actor="cashier") == list(ALL)
        for pid in ALL:
            st.wait_event(lambda e, p=pid: e.topic == "fill.finished" and e.data["pump_id"] == p)
        assert {e.ended_by for s in simulators.values() for e in s.ledger()} == {"stop"}
        assert len(st.fills("finished")) == 4


def test_agent_restart_mid_fill_records_each_protocols_fill_once(tmp_path: Path) -> None:
    with sims() as simulators:
        with mixed_station(tmp_path, simulators) as st:
            _ready(st)
            fill_ids = {pid: st.forecourt.authorize(pid)["fill_id"] for pid in (2, 3)}
            for pid in (2, 3):
                st.wait_state(pid, "authorized")
                st.lift(pid, 1)
            for pid in (2, 3):
                st.wait_state(pid, "fuelling")
        for pid in (2, 3):  # the customers finish while the agent is down
            st.hang(pid)
        with mixed_station(tmp_path, simulators) as st2:
            for pid in (2, 3):
                st2.wait_state(pid, "idle", 15)
                (entry,) = st2.ledger(pid)
                rows = st2.forecourt.fills(pump_id=pid)
                assert [r["fill_id"] for r in rows] == [fill_ids[pid]]
                _assert_matches(rows[0], entry)
            assert simulators["gilbarco"].status(1)["authorizations"] == 1  # R2: never re-sent
            assert simulators["dart"].status(2)["authorizations"] == 1


def test_config_rejects_gilbarco_mistakes() -> None:
    base = mixed_toml("/dev/a", "/dev/b")
    bad_addr = mixed_toml("/dev/a", "/dev/b")
    bad_addr["lines"][1]["pumps"][0]["address"] = 17
    bad_baud = mixed_toml("/dev/a", "/dev/b")
    bad_baud["lines"][1]["baudrate"] = 9600
    assert parse_config(base).lines[1].baudrate == 5787
    with pytest.raises(ConfigError, match=r"1\.\.16"):
        parse_config(bad_addr)
    with pytest.raises(ConfigError, match="5787"):
        parse_config(bad_baud)
