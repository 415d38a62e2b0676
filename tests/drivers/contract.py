"""The contract every line driver must pass, over a real PTY against the pump simulator.

``PumpDriverContract`` is not collected (no ``Test`` prefix); ``tests/drivers/test_contract.py``
subclasses it once per protocol.  A subclass sets ``protocol``, ``baudrate`` and ``first_address``
and declares what the protocol must do where protocols differ:

* ``supports_suspend`` -- True: Suspend -> SUSPENDED, Resume -> FUELLING on the same fill.  False:
  both are answered with ``CommandFailed`` whose reason names suspend/resume, and the fill goes on.
* Everything else is the same for every protocol: the vendor-neutral states, one FillFinished per
  sale with the ledger's figures and end totalizers, the pump not released (END_OF_TRANSACTION)
  until ``ClearTransaction``, presets by amount and volume, stop, emergency stop, prices with
  read-back, totals, and fill recovery after a pump power cycle and after a driver restart (the
  sale is reported again with the same (nozzle, end volume totalizer) key; the agent dedups on it).
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable, Iterator
from typing import ClassVar

import pytest

from drivers.base import (
    Authorize,
    ClearTransaction,
    CommandFailed,
    CommandRejected,
    DriverEvent,
    FillFinished,
    FillProgress,
    LineConfig,
    LineDriver,
    PricesRead,
    PumpConfig,
    PumpState,
    PumpStatus,
    ReadTotals,
    Resume,
    SetPrices,
    Stop,
    Suspend,
    TotalsRead,
)
from drivers.registry import create_line_driver
from drivers.sim.pump import LedgerEntry
from drivers.sim.simulator import PumpSimulator

PUMPS = 2
NOZZLES = (1, 2)
PRICES = (789, 812)


class Events:
    """Collects driver events; waits on a queue with a timeout (no sleeping)."""

    def __init__(self, timeout: float = 10.0) -> None:
        self.q: queue.Queue[DriverEvent] = queue.Queue()
        self.seen: list[DriverEvent] = []
        self.timeout = timeout

    def wait(self, cond: Callable[[], bool], timeout: float | None = None) -> bool:
        end = time.monotonic() + (self.timeout if timeout is None else timeout)
        while not cond():
            left = end - time.monotonic()
            if left <= 0:
                return False
            try:
                self.seen.append(self.q.get(timeout=left))
            except queue.Empty:
                return cond()
        return True

    def pump_events(self, kind: type[DriverEvent], pump_id: int | None = None) -> list[DriverEvent]:
        return [e for e in self.seen if isinstance(e, kind) and pump_id in (None, e.pump_id)]

    def finished(self, pump_id: int | None = None) -> list[FillFinished]:
        return [e for e in self.seen if isinstance(e, FillFinished) and pump_id in (None, e.pump_id)]

    def failed(self, pump_id: int) -> list[CommandFailed]:
        return [e for e in self.seen if isinstance(e, CommandFailed) and e.pump_id == pump_id]

    def state(self, pump_id: int) -> PumpState | None:
        st = [e.state for e in self.seen if isinstance(e, PumpStatus) and e.pump_id == pump_id]
        return st[-1] if st else None

    def reach(self, pump_id: int, state: PumpState, timeout: float = 10.0) -> None:
        assert self.wait(lambda: self.state(pump_id) is state, timeout), (pump_id, state, self.state(pump_id))


class Rig:
    """A simulator on a PTY and a driver built through the registry."""

    def __init__(self, contract: PumpDriverContract) -> None:
        self.contract = contract
        self.sim = PumpSimulator(
            PUMPS,
            len(NOZZLES),
            simulate=True,
            speed=20,
            prices=PRICES,
            baudrate=None,
            seed=5,
            protocol=contract.protocol,
        )
        self.url = self.sim.start_pty()
        self.ev = Events()
        self.driver = self.new_driver()

    def config(self) -> LineConfig:
        c = self.contract
        pumps = tuple(PumpConfig(i + 1, c.first_address + i, NOZZLES) for i in range(PUMPS))
        return LineConfig(f"{c.protocol}-line", c.protocol, self.url, pumps, baudrate=c.baudrate)

    def new_driver(self) -> LineDriver:
        driver = create_line_driver(self.config(), self.ev.q.put)
        driver.start()
        return driver

    def restart_driver(self) -> None:
        """The agent restarts: a fresh driver (knowing nothing) on the same line."""
        self.driver.close()
        self.ev = Events()
        self.driver = self.new_driver()

    def close(self) -> None:
        self.driver.close()
        self.sim.close()

    def ledger(self, pump: int) -> list[LedgerEntry]:
        return [e for e in self.sim.ledger() if e.pump == pump]

    def start_fill(self, pump: int, nozzle: int = 1, **preset: int) -> None:
        self.driver.submit(Authorize(pump, **preset))  # type: ignore[arg-type]
        self.ev.reach(pump, PumpState.AUTHORIZED)
        self.sim.lift(pump, nozzle)
        if not preset:
            self.ev.reach(pump, PumpState.FUELLING)

    def assert_matches_ledger(self, fill: FillFinished) -> None:
        entry = self.ledger(fill.pump_id)[-1]
        got = (fill.nozzle, fill.volume_ml, fill.amount_fen, fill.price_fen, fill.volume_raw, fill.amount_raw)
        want = (
            entry.nozzle,
            entry.volume_ml,
            entry.amount_fen,
            entry.price_fen,
            entry.volume_raw,
            entry.amount_raw,
        )
        assert got == want
        assert fill.volume_total_ml == entry.end_volume_total_raw * 10
        assert fill.amount_total_fen == entry.end_amount_total_raw


class PumpDriverContract:
    """Base of the per-protocol contract classes (see module docstring)."""

    protocol: ClassVar[str]
    baudrate: ClassVar[int]
    first_address: ClassVar[int]
    supports_suspend: ClassVar[bool]

    @pytest.fixture
    def rig(self) -> Iterator[Rig]:
        rig = Rig(self)
        try:
            for p in range(1, PUMPS + 1):
                rig.ev.reach(p, PumpState.IDLE)
            yield rig
        finally:
            rig.close()

    # ------------------------------------------------------------ state model

    def test_nozzle_lift_is_calling_and_hang_up_idle(self, rig: Rig) -> None:
        rig.sim.lift(1, 2)
        rig.ev.reach(1, PumpState.CALLING)
        rig.sim.hang(1)
        rig.ev.reach(1, PumpState.IDLE)
        assert rig.sim.status(1)["authorizations"] == 0  # R3: no auto-authorization

    def test_sale_is_reported_once_and_held_until_cleared(self, rig: Rig) -> None:
        rig.start_fill(1, 2)
        assert rig.ev.wait(
            lambda: any(
                isinstance(e, FillProgress) and e.volume_ml >= 1000 for e in rig.ev.pump_events(FillProgress, 1)
            )
        )
        rig.sim.hang(1)
        assert rig.ev.wait(lambda: len(rig.ev.finished(1)) == 1)
        rig.ev.reach(1, PumpState.END_OF_TRANSACTION)
        (fill,) = rig.ev.finished(1)
        rig.assert_matches_ledger(fill)
        assert fill.nozzle == 2 and not fill.preset_reached
        volumes = [e.volume_ml for e in rig.ev.pump_events(FillProgress, 1) if isinstance(e, FillProgress)]
        assert volumes == sorted(volumes)
        # R1: not released by the driver itself; a new authorization is refused until cleared
        rig.driver.submit(Authorize(1))
        assert rig.ev.wait(lambda: len(rig.ev.failed(1)) == 1)
        assert rig.ev.state(1) is PumpState.END_OF_TRANSACTION
        rig.driver.submit(ClearTransaction(1))
        rig.ev.reach(1, PumpState.IDLE)
        rig.driver.submit(ClearTransaction(1))  # nothing left to clear
        assert rig.ev.wait(lambda: len(rig.ev.failed(1)) == 2)
        assert len(rig.ev.finished(1)) == 1
        assert len(rig.ledger(1)) == 1

    @pytest.mark.parametrize("preset", [{"preset_volume_ml": 2340}, {"preset_amount_fen": 1555}])
    def test_presets(self, rig: Rig, preset: dict[str, int]) -> None:
        rig.start_fill(2, 1, **preset)
        assert rig.ev.wait(lambda: len(rig.ev.finished(2)) == 1)
        (fill,) = rig.ev.finished(2)
        rig.assert_matches_ledger(fill)
        assert fill.preset_reached
        if "preset_volume_ml" in preset:
            assert fill.volume_ml == preset["preset_volume_ml"]
        else:
            assert preset["preset_amount_fen"] - 10 < fill.amount_fen <= preset["preset_amount_fen"]
        rig.sim.hang(2)
        rig.driver.submit(ClearTransaction(2))
        rig.ev.reach(2, PumpState.IDLE)

    def test_stop_mid_fill_ends_the_sale(self, rig: Rig) -> None:
        rig.start_fill(1)
        rig.driver.submit(Stop(1))
        assert rig.ev.wait(lambda: len(rig.ev.finished(1)) == 1)
        assert rig.ledger(1)[-1].ended_by == "stop"
        rig.assert_matches_ledger(rig.ev.finished(1)[0])
        rig.sim.hang(1)
        rig.driver.submit(ClearTransaction(1))
        rig.ev.reach(1, PumpState.IDLE)

    def test_stop_before_lift_cancels_without_sale(self, rig: Rig) -> None:
        rig.driver.submit(Authorize(1))
        rig.ev.reach(1, PumpState.AUTHORIZED)
        rig.driver.submit(Stop(1))
        rig.ev.reach(1, PumpState.IDLE)
        assert rig.ev.finished() == [] and rig.sim.ledger() == []

    def test_suspend_and_resume(self, rig: Rig) -> None:
        rig.start_fill(1)
        rig.driver.submit(Suspend(1))
        if self.supports_suspend:
            rig.ev.reach(1, PumpState.SUSPENDED)
            rig.driver.submit(Resume(1))
            rig.ev.reach(1, PumpState.FUELLING)
        else:
            rig.driver.submit(Resume(1))
            assert rig.ev.wait(lambda: len(rig.ev.failed(1)) == 2)
            reasons = [f.reason for f in rig.ev.failed(1)]
            assert all("suspend" in r for r in reasons), reasons
            assert [type(f.command) for f in rig.ev.failed(1)] == [Suspend, Resume]
            assert rig.ev.state(1) is PumpState.FUELLING
        rig.sim.hang(1)
        assert rig.ev.wait(lambda: len(rig.ev.finished(1)) == 1)
        rig.assert_matches_ledger(rig.ev.finished(1)[0])

    def test_emergency_stop_all(self, rig: Rig) -> None:
        for p in (1, 2):
            rig.start_fill(p)
        t0 = time.monotonic()
        rig.driver.emergency_stop()
        assert rig.sim.wait_for(lambda: all(p.status in (5, 6) for p in rig.sim.pumps), 2.0)
        assert time.monotonic() - t0 < 1.0
        assert rig.ev.wait(lambda: len(rig.ev.finished()) == 2)
        for fill in rig.ev.finished():
            rig.assert_matches_ledger(fill)

    # ------------------------------------------------------------ prices and totals

    def test_prices_are_set_and_read_back(self, rig: Rig) -> None:
        rig.driver.submit(SetPrices(2, ((1, 801), (2, 855))))
        assert rig.ev.wait(lambda: bool(rig.ev.pump_events(PricesRead, 2)))
        (read,) = rig.ev.pump_events(PricesRead, 2)
        assert isinstance(read, PricesRead) and read.prices_fen == ((1, 801), (2, 855))
        assert rig.sim.status(2)["prices"] == {1: 801, 2: 855}
        rig.driver.submit(SetPrices(2, ((1, 801),)))  # must cover every nozzle
        assert rig.ev.wait(lambda: len(rig.ev.failed(2)) == 1)

    def test_totals(self, rig: Rig) -> None:
        rig.start_fill(1, 2, preset_volume_ml=1500)
        assert rig.ev.wait(lambda: len(rig.ev.finished(1)) == 1)
        rig.driver.submit(ReadTotals(1))

        def totals() -> dict[int, TotalsRead]:
            return {e.nozzle: e for e in rig.ev.pump_events(TotalsRead, 1) if isinstance(e, TotalsRead)}

        assert rig.ev.wait(lambda: set(totals()) >= {1, 2})
        last = totals()
        assert last[2].volume_total_ml == 1500 and last[1].volume_total_ml == 0

    def test_unknown_pump_is_rejected(self, rig: Rig) -> None:
        with pytest.raises(CommandRejected):
            rig.driver.submit(Authorize(99))
        with pytest.raises(CommandRejected):
            rig.driver.emergency_stop(99)

    # ------------------------------------------------------------ recovery

    def test_fill_survives_a_pump_power_cycle(self, rig: Rig) -> None:
        rig.start_fill(2)
        rig.sim.power_cycle(2, off_s=0.6)
        rig.ev.reach(2, PumpState.OFFLINE)
        assert rig.ev.wait(lambda: len(rig.ev.finished(2)) == 1)
        assert rig.ledger(2)[-1].ended_by == "power"
        rig.assert_matches_ledger(rig.ev.finished(2)[0])

    def test_fill_survives_a_driver_restart(self, rig: Rig) -> None:
        rig.start_fill(1)
        rig.restart_driver()
        rig.ev.reach(1, PumpState.FUELLING)
        rig.sim.hang(1)
        assert rig.ev.wait(lambda: len(rig.ev.finished(1)) == 1)
        rig.assert_matches_ledger(rig.ev.finished(1)[0])

    def test_unpersisted_sale_is_reported_again_after_a_driver_restart(self, rig: Rig) -> None:
        rig.start_fill(2, 1, preset_amount_fen=1000)
        assert rig.ev.wait(lambda: len(rig.ev.finished(2)) == 1)
        first = rig.ev.finished(2)[0]
        rig.sim.hang(2)
        rig.restart_driver()  # the agent died before persisting: no ClearTransaction was sent
        assert rig.ev.wait(lambda: len(rig.ev.finished(2)) == 1)
        again = rig.ev.finished(2)[0]
        assert (again.nozzle, again.volume_total_ml, again.volume_ml) == (
            first.nozzle,
            first.volume_total_ml,
            first.volume_ml,
        )
        rig.driver.submit(ClearTransaction(2))
        rig.ev.reach(2, PumpState.IDLE)
        assert len(rig.ledger(2)) == 1

    def test_fills_are_exact_under_line_noise(self, rig: Rig) -> None:
        rig.sim.set_faults(
            crc_error_rate=0.05,
            garbage_rate=0.05,
            duplicate_rate=0.05,
            truncate_rate=0.02,
            latency=True,
            latency_scale=4.0,
        )
        rig.start_fill(1, 1, preset_amount_fen=1234)
        rig.start_fill(2, 2, preset_volume_ml=1110)
        assert rig.ev.wait(lambda: len(rig.ev.finished()) == 2, 20)
        for fill in rig.ev.finished():
            rig.assert_matches_ledger(fill)
        assert rig.sim.line.errors_in > 0 or rig.sim.faults.crc_error_rate > 0

    def test_silent_pump_goes_offline_and_never_stalls_the_other(self, rig: Rig) -> None:
        rig.sim.set_faults(silent=[2])
        rig.ev.reach(2, PumpState.OFFLINE)
        rig.start_fill(1, 1, preset_volume_ml=1000)
        assert rig.ev.wait(lambda: len(rig.ev.finished(1)) == 1)
        rig.sim.set_faults(silent=[])
        rig.ev.reach(2, PumpState.IDLE)
