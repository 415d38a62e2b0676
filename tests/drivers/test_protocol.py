from __future__ import annotations

import pytest

from drivers.base import (
    Authorize,
    ClearTransaction,
    CommandFailed,
    CommandRejected,
    ConfigError,
    EmergencyStop,
    FillFinished,
    FillProgress,
    LineConfig,
    LinkFault,
    PricesRead,
    PumpAlarm,
    PumpConfig,
    PumpState,
    PumpStatus,
    ReadPrices,
    ReadTotals,
    Resume,
    SetPrices,
    Stop,
    Suspend,
    TotalsRead,
)
from drivers.dart.codec import Decoder, Direction, Frame, Kind
from drivers.dart.protocol import DartBus, Timing

from .harness import Wire


def states(w: Wire, pump_id: int) -> list[PumpState]:
    return [e.state for e in w.of(PumpStatus, pump_id)]  # type: ignore[attr-defined]


def finished(w: Wire, pump_id: int | None = None) -> list[FillFinished]:
    return w.of(FillFinished, pump_id)  # type: ignore[return-value]


def failed(w: Wire) -> list[CommandFailed]:
    return w.of(CommandFailed)  # type: ignore[return-value]


def sent_data(w: Wire, address: int = 0x50) -> list[Frame]:
    out = []
    for raw in w.sent:
        for f in Decoder(Direction.TO_PUMP).feed(raw):
            if isinstance(f, Frame) and f.kind is Kind.DATA and f.address == address:
                out.append(f)
    return out


def fill(w: Wire, pump: int = 1, nozzle: int = 1, litres: float | None = None, **preset: int) -> FillFinished:
    before = len(finished(w, pump))
    w.submit(Authorize(pump, (nozzle,), **preset), w.now)
    assert w.until(lambda: w.bus.state(pump) is PumpState.AUTHORIZED, 5)
    sim = w.sim_pumps[pump - 1]
    sim.lift(nozzle, w.now)
    if litres is not None:
        assert w.until(lambda: sim.fill_volume >= litres * 100, 30)
        sim.hang(w.now)
    assert w.until(lambda: len(finished(w, pump)) > before, 30)
    return finished(w, pump)[-1]


def matches_ledger(f: FillFinished, w: Wire, index: int = -1) -> None:
    entry = [e for e in w.ledger if e.pump == f.pump_id][index]
    assert (f.volume_ml, f.amount_fen, f.price_fen, f.nozzle) == (
        entry.volume_ml,
        entry.amount_fen,
        entry.price_fen,
        entry.nozzle,
    )
    assert f.volume_total_ml == entry.end_volume_total_raw * 10
    assert f.amount_total_fen == entry.end_amount_total_raw


def test_startup_reports_every_pump() -> None:
    w = Wire(pumps=3)
    w.run(0.5)
    for p in (1, 2, 3):
        assert states(w, p) == [PumpState.IDLE]


def test_fill_with_amount_preset_and_clear() -> None:
    w = Wire()
    w.run(0.2)
    f = fill(w, preset_amount_fen=5000)
    assert f.preset_reached and f.amount_fen <= 5000
    assert f.amount_fen == (f.volume_raw * 789 + 50) // 100
    matches_ledger(f, w)
    assert states(w, 1)[-1] is PumpState.END_OF_TRANSACTION
    w.run(1.0)
    assert len(finished(w, 1)) == 1  # one FillFinished; the pump is not reset by the driver
    assert w.sim_pumps[0].status == 6
    w.submit(ClearTransaction(1), w.now)
    assert w.until(lambda: w.bus.state(1) in (PumpState.IDLE, PumpState.CALLING))


def test_two_equal_consecutive_sales_are_not_merged() -> None:
    w = Wire()
    w.run(0.2)
    for _ in range(2):
        fill(w, preset_volume_ml=3000)
        w.sim_pumps[0].hang(w.now)
        w.submit(ClearTransaction(1), w.now)
        assert w.until(lambda: w.bus.state(1) is PumpState.IDLE)
    a, b = finished(w, 1)
    assert (a.volume_ml, a.amount_fen) == (b.volume_ml, b.amount_fen) == (3000, 2367)
    assert b.volume_total_ml == 2 * a.volume_total_ml  # type: ignore[operator]
    assert len(w.ledger) == 2


def test_hang_up_sale_and_states() -> None:
    w = Wire()
    w.run(0.2)
    w.sim_pumps[0].lift(2, w.now)
    assert w.until(lambda: w.bus.state(1) is PumpState.CALLING)
    w.submit(Authorize(1), w.now)
    assert w.until(lambda: w.bus.state(1) is PumpState.FUELLING)
    assert w.until(lambda: w.sim_pumps[0].fill_volume >= 250)
    w.sim_pumps[0].hang(w.now)
    assert w.until(lambda: bool(finished(w)))
    f = finished(w)[0]
    assert f.nozzle == 2 and f.price_fen == 812 and not f.preset_reached
    matches_ledger(f, w)
    progress = w.of(FillProgress, 1)
    vols = [e.volume_ml for e in progress]  # type: ignore[attr-defined]
    assert vols == sorted(vols) and vols[-1] <= f.volume_ml
    assert PumpState.STARTED in states(w, 1)


def test_zero_sale_after_lift_without_flow() -> None:
    w = Wire()
    w.sim_pumps[0].start_delay_s = 100.0
    w.run(0.2)
    w.submit(Authorize(1), w.now)
    w.run(0.2)
    w.sim_pumps[0].lift(1, w.now)
    assert w.until(lambda: w.bus.state(1) is PumpState.STARTED)
    w.sim_pumps[0].hang(w.now)
    assert w.until(lambda: bool(finished(w)))
    assert finished(w)[0].volume_ml == 0


def test_tx_advances_only_on_ack_and_wraps() -> None:
    for wrap in (0, 1):
        w = Wire(pumps=1, tx_wrap_to=wrap)
        w.run(0.2)
        for _ in range(20):
            w.submit(ReadPrices(1), w.now)
            w.run(0.05)
        txs = [f.tx for f in sent_data(w)]
        assert len(txs) == 21  # resync + 20 reads, each ACKed once
        expected = [0]
        while len(expected) < 21:
            expected.append(wrap if expected[-1] == 15 else expected[-1] + 1)
        assert txs == expected
        assert len(w.of(PricesRead)) == 20


def test_nak_resends_the_same_frame() -> None:
    w = Wire(pumps=1)
    w.run(0.2)
    responder = w.responders[0]
    real = responder._tx_ok
    calls = iter([False, False])
    responder._tx_ok = lambda tx: next(calls, None) if next(iter([True])) and False else real(tx)  # type: ignore[method-assign]
    refusals = [False, False]

    def tx_ok(tx: int) -> bool:
        return refusals.pop() if refusals else real(tx)

    responder._tx_ok = tx_ok  # type: ignore[method-assign]
    w.submit(Stop(1), w.now)
    w.run(0.3)
    stops = [f for f in sent_data(w) if f.blocks[0] == sent_data(w)[-1].blocks[0]]
    assert len(stops) == 3 and len({f.tx for f in stops}) == 1
    assert responder.naks == 2 and not failed(w)


def test_too_many_naks_drop_the_command_and_resync() -> None:
    w = Wire(pumps=1)
    w.run(0.2)
    w.responders[0]._tx_ok = lambda tx: False  # type: ignore[method-assign]
    w.submit(Stop(1), w.now)
    w.run(0.3)
    assert [f.reason for f in failed(w)] == ["refused by the pump (NAK)"]
    w.responders[0]._tx_ok = lambda tx: True  # type: ignore[method-assign]
    w.run(0.3)
    assert sent_data(w)[-1].tx == 0  # restarted at 0 with an idempotent RETURN_STATUS


def test_duplicate_pump_data_is_acked_but_applied_once() -> None:
    w = Wire(pumps=1)
    w.line.faults.duplicate_rate = 1.0
    w.run(0.2)
    f = fill(w, litres=4)
    matches_ledger(f, w)
    w.run(0.5)
    assert len(finished(w)) == 1
    assert len(w.of(PumpStatus)) == len({(e.state, e.nozzle_out) for e in w.of(PumpStatus)})  # type: ignore[attr-defined]


def test_silent_pump_goes_offline_and_does_not_stall_the_line() -> None:
    w = Wire(pumps=3)
    w.line.faults.silent = {0x51}
    w.run(1.0)
    assert states(w, 2) == [PumpState.OFFLINE]
    assert len(w.of(LinkFault, 2)) == 0  # never online: no noise
    start, sent_before = w.now, len(w.sent)
    fill(w, 1, litres=5)
    w.run(5.0 - (w.now - start))
    assert w.now - start < 5.1
    polls_to_dead = sum(1 for raw in w.sent[sent_before:] if raw == b"\x51\x20\xfa")
    assert polls_to_dead <= 6  # about once per second


def test_pump_offline_mid_fill_and_back_reports_the_fill() -> None:
    w = Wire(pumps=2)
    w.run(0.2)
    w.submit(Authorize(1), w.now)
    w.run(0.2)
    sim = w.sim_pumps[0]
    sim.lift(1, w.now)
    assert w.until(lambda: sim.fill_volume > 200)
    w.line.faults.offline_until[0x50] = w.now + 3.0
    assert w.until(lambda: w.bus.state(1) is PumpState.OFFLINE, 5)
    w.submit(Stop(1), w.now)
    assert failed(w)[-1].reason == "pump offline or state unknown"
    sim.hang(w.now)
    assert w.until(lambda: bool(finished(w)), 10)
    matches_ledger(finished(w)[0], w)
    assert states(w, 1)[-1] is PumpState.END_OF_TRANSACTION


def test_reconnection_in_end_of_transaction_reports_again() -> None:
    w = Wire(pumps=1)
    w.run(0.2)
    first = fill(w, preset_volume_ml=2000)
    w.line.faults.offline_until[0x50] = w.now + 2.0
    assert w.until(lambda: w.bus.state(1) is PumpState.OFFLINE, 5)
    assert w.until(lambda: len(finished(w)) == 2, 10)
    again = finished(w)[1]
    assert (again.volume_ml, again.volume_total_ml) == (first.volume_ml, first.volume_total_ml)


def test_power_cycle_mid_fill() -> None:
    w = Wire(pumps=1)
    w.run(0.2)
    w.submit(ReadPrices(1), w.now)  # advance our TX# past the pump's restart value
    w.submit(Authorize(1), w.now)
    w.run(0.2)
    sim = w.sim_pumps[0]
    sim.lift(1, w.now)
    assert w.until(lambda: sim.fill_volume > 300)
    sim.power_fail(w.now)
    w.responders[0].reset_link()
    w.responders[0].raise_alarm(0x0A)
    w.line.faults.offline_until[0x50] = w.now + 0.3
    assert w.until(lambda: bool(finished(w)), 10)
    matches_ledger(finished(w)[0], w)
    assert [a.code for a in w.of(PumpAlarm)] == [0x0A]  # type: ignore[attr-defined]
    w.submit(ClearTransaction(1), w.now)
    assert w.until(lambda: w.bus.state(1) is PumpState.CALLING)  # nozzle still out


def test_price_programming_from_status_zero() -> None:
    w = Wire(pumps=1, prices=None)
    w.run(0.2)
    assert states(w, 1) == [PumpState.CLOSED]
    w.submit(Authorize(1), w.now)
    assert "not ready" in failed(w)[-1].reason
    w.submit(SetPrices(1, ((1, 800), (2, 900))), w.now)
    assert w.until(lambda: w.bus.state(1) is PumpState.IDLE)
    assert w.of(PricesRead)[-1].prices_fen == ((1, 800), (2, 900))  # type: ignore[attr-defined]
    assert not finished(w)
    assert PumpState.END_OF_TRANSACTION not in states(w, 1)


def test_command_validation() -> None:
    w = Wire(pumps=1)
    with pytest.raises(CommandRejected):
        w.submit(Stop(9), w.now)
    w.submit(Stop(1), w.now)
    w.run(0.2)
    for cmd in (
        Authorize(1, (), preset_volume_ml=1, preset_amount_fen=1),
        Authorize(1, (7,)),
        SetPrices(1, ((1, 800),)),
        Suspend(1),
        Resume(1),
        ClearTransaction(1),
    ):
        w.submit(cmd, w.now)
    assert failed(w)[0].reason == "pump offline or state unknown"  # before first contact
    assert len(failed(w)) == 7


def test_writes_disabled_pump_only_reads() -> None:
    config = LineConfig("l", "dart", "x", (PumpConfig(1, 0x50, (1, 2), writes_enabled=False),))
    w = Wire(pumps=1)
    w.bus = DartBus(config)
    w.run(0.2)
    w.submit(Authorize(1), w.now)
    w.submit(ReadTotals(1), w.now)
    w.run(0.2)
    assert "R13" in failed(w)[0].reason
    assert {e.nozzle for e in w.of(TotalsRead)} == {1, 2}  # type: ignore[attr-defined]


def test_suspend_resume_and_stop() -> None:
    w = Wire(pumps=1)
    w.run(0.2)
    w.submit(Authorize(1), w.now)
    w.run(0.1)
    w.sim_pumps[0].lift(1, w.now)
    assert w.until(lambda: w.bus.state(1) is PumpState.FUELLING)
    w.submit(Suspend(1), w.now)
    assert w.until(lambda: w.bus.state(1) is PumpState.SUSPENDED)
    w.submit(Resume(1), w.now)
    assert w.until(lambda: w.bus.state(1) is PumpState.FUELLING)
    w.submit(Stop(1), w.now)
    assert w.until(lambda: bool(finished(w)))
    assert w.ledger[-1].ended_by == "stop"


def test_emergency_stop_preempts_queued_commands() -> None:
    w = Wire(pumps=3)
    w.run(0.2)
    for p in (1, 2):
        w.submit(Authorize(p), w.now)
    w.run(0.3)
    for p in (1, 2):
        w.sim_pumps[p - 1].lift(1, w.now)
    assert w.until(lambda: w.bus.state(2) is PumpState.FUELLING)
    w.submit(ReadPrices(1), w.now)
    w.submit(Authorize(3), w.now)
    w.submit(EmergencyStop(0), w.now)
    assert {f.reason for f in failed(w)} == {"preempted by emergency stop"}
    w.step()
    w.step()
    stops = [f for f in sent_data(w, 0x50) + sent_data(w, 0x51) if f.blocks == sent_data(w, 0x50)[-1].blocks]
    assert stops, "STOP went out first"
    assert w.until(lambda: len(finished(w)) == 2)
    assert {e.ended_by for e in w.ledger} == {"stop"}
    assert w.sim_pumps[2].status == 1


def test_emergency_stop_of_dead_pump_fails_visibly() -> None:
    w = Wire(pumps=2)
    w.run(0.2)
    w.line.faults.silent = {0x51}
    w.emergency_stop(2, w.now)
    w.run(2.0)
    assert [type(f.command) for f in failed(w)] == [EmergencyStop]
    assert w.bus.deadline is None or w.bus.deadline > 0


def test_authorization_not_confirmed_is_cancelled() -> None:
    w = Wire(pumps=1, timing=Timing(authorize_confirm_s=0.5))
    w.run(0.2)
    w.sim_pumps[0].authorize = lambda *a, **k: False  # type: ignore[method-assign]
    w.submit(Authorize(1), w.now)
    w.run(1.0)
    assert "not confirmed" in failed(w)[0].reason
    assert sent_data(w)[-1].blocks == (sent_data(w)[-1].blocks[0],)


@pytest.mark.parametrize("knob", ["crc_error_rate", "garbage_rate", "truncate_rate"])
def test_noisy_line_still_gives_exact_fills(knob: str) -> None:
    w = Wire(pumps=2, seed=7)
    setattr(w.line.faults, knob, 0.05 if knob == "crc_error_rate" else 0.1)
    w.run(0.3)
    for i in range(3):
        f = fill(w, 1 + i % 2, litres=3 + i)
        matches_ledger(f, w)
        w.sim_pumps[f.pump_id - 1].hang(w.now)
        w.submit(ClearTransaction(f.pump_id), w.now)
        assert w.until(lambda p=f.pump_id: w.bus.state(p) is PumpState.IDLE, 10)
    assert len(finished(w)) == 3
    assert w.of(LinkFault)


def test_missed_end_and_fast_relift_never_lose_a_sale() -> None:
    w = Wire(pumps=1)
    w.run(0.2)
    sim = w.sim_pumps[0]
    w.submit(Authorize(1), w.now)
    w.run(0.2)
    sim.lift(1, w.now)
    assert w.until(lambda: sim.fill_volume > 300)
    # between two polls: hang, someone resets and re-authorizes, customer lifts again
    sim.hang(w.now)
    sim.reset(w.now)
    sim.authorize(w.now, (), None, None)
    sim.lift(1, w.now)
    assert w.until(lambda: len(finished(w)) == 1 and sim.fill_volume > 100)
    old = finished(w)[0]
    assert 0 < old.volume_ml <= w.ledger[0].volume_ml
    sim.hang(w.now)
    sim.reset(w.now)  # and this end is missed entirely (4 -> 1)
    assert w.until(lambda: len(finished(w)) == 2)
    assert finished(w)[1].volume_ml <= w.ledger[1].volume_ml


def test_bus_config_errors() -> None:
    pump = PumpConfig(1, 0x50)
    for pumps in ((), (PumpConfig(1, 0x40),), (pump, pump), (PumpConfig(1, 0x50, tx_wrap_to=2),)):
        with pytest.raises(ConfigError):
            DartBus(LineConfig("l", "dart", "x", pumps))
