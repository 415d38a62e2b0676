"""GilbarcoBus + GilbarcoPoint against the simulated loop, in memory with a fake clock."""

from __future__ import annotations

import pytest

from drivers.base import (
    Authorize,
    ClearTransaction,
    CommandFailed,
    ConfigError,
    FillFinished,
    LineConfig,
    LinkFault,
    PumpConfig,
    PumpState,
    PumpStatus,
    ReadTotals,
)
from drivers.gilbarco.codec import ALL_STOP
from drivers.gilbarco.protocol import GilbarcoBus
from tests.drivers.gilbarco_harness import GilWire


def states(w: GilWire, pump: int) -> list[PumpState]:
    return [e.state for e in w.of(PumpStatus, pump)]  # type: ignore[attr-defined]


def ready(pumps: int = 2, **kw: object) -> GilWire:
    w = GilWire(pumps, **kw)  # type: ignore[arg-type]
    assert w.until(lambda: all(states(w, p)[-1:] == [PumpState.IDLE] for p in range(1, pumps + 1)), 5)
    return w


def fuelling(w: GilWire, pump: int, **preset: int) -> None:
    w.submit(Authorize(pump, **preset))  # type: ignore[arg-type]
    assert w.until(lambda: states(w, pump)[-1] is PumpState.AUTHORIZED, 5)
    w.sim_pumps[pump - 1].lift(1, w.now)
    if not preset:
        assert w.until(lambda: states(w, pump)[-1] is PumpState.FUELLING, 5)


def test_idle_poll_cycle_is_two_words_per_pump_at_wire_speed() -> None:
    w = ready(4)
    start, sent = w.now, len(w.sent)
    w.run(1.0)
    polls = w.sent[sent:]
    assert all(len(f) == 1 and f[0] >> 4 == 0 for f in polls)
    cycle = (w.now - start) / (len(polls) / 4)
    assert cycle == pytest.approx(4 * 2 * 11 / 5787, rel=0.05)  # 15.2 ms for 4 pumps


def test_a_changed_status_is_applied_only_when_read_twice() -> None:
    w = ready(1)
    n = len(w.sent)
    w.sim_pumps[0].lift(1, w.now)
    assert w.until(lambda: states(w, 1)[-1] is PumpState.CALLING, 1)
    assert w.sent[n:] == [b"\x01", b"\x01"]  # seen once, confirmed at once


def test_config_errors() -> None:
    def line(*pumps: PumpConfig) -> LineConfig:
        return LineConfig("l", "gilbarco", "x", pumps, baudrate=5787)

    for bad in (
        line(PumpConfig(1, 0)),
        line(PumpConfig(1, 17)),
        line(PumpConfig(1, 1), PumpConfig(2, 1)),
        line(PumpConfig(1, 1, (11,))),
        line(),
    ):
        with pytest.raises(ConfigError):
            GilbarcoBus(bad)


def test_three_bad_replies_fail_a_read_then_the_pump_goes_offline() -> None:
    w = ready(2)
    w.line.faults.silent = {2}
    w.submit(ReadTotals(2))
    assert w.until(lambda: states(w, 2)[-1] is PumpState.OFFLINE, 5)
    (failed,) = w.of(CommandFailed, 2)
    assert "3 bad replies" in failed.reason  # type: ignore[attr-defined]
    assert states(w, 1)[-1] is PumpState.IDLE
    w.line.faults.silent = set()
    assert w.until(lambda: states(w, 2)[-1] is PumpState.IDLE, 5)


def test_a_sale_whose_end_was_never_seen_is_still_reported() -> None:
    w = ready(1)
    fuelling(w, 1)
    w.run(0.5)
    pump = w.sim_pumps[0]
    pump.hang(w.now)
    pump.reset(w.now)  # straight back to 6: A/B never shown
    assert w.until(lambda: bool(w.of(FillFinished, 1)), 5)
    (fill,) = w.of(FillFinished, 1)
    assert fill.volume_raw == w.ledger[-1].volume_raw > 0  # type: ignore[attr-defined]


def test_finished_sale_held_and_never_reported_twice() -> None:
    w = ready(1)
    fuelling(w, 1)
    w.sim_pumps[0].hang(w.now)
    assert w.until(lambda: bool(w.of(FillFinished, 1)), 5)
    w.submit(ClearTransaction(1))
    w.run(2.0)  # the pump still shows FEOT: nothing more is reported
    assert len(w.of(FillFinished, 1)) == 1
    assert states(w, 1)[-1] is PumpState.IDLE
    w.sim_pumps[0].lift(2, w.now)
    assert w.until(lambda: states(w, 1)[-1] is PumpState.CALLING, 2)


def test_emergency_stop_all_sends_fc_first_and_repeats_3p_while_still_busy() -> None:
    w = ready(2)
    fuelling(w, 1)
    fuelling(w, 2)
    ignored: list[float] = []
    real_stop = w.responders[1].stop

    def deaf_once(now: float) -> None:  # misses FC and the first 3p
        if len(ignored) < 2:
            ignored.append(now)
            return
        real_stop(now)

    w.responders[1].stop = deaf_once  # type: ignore[method-assign]
    n = len(w.sent)
    w.emergency_stop(0)
    assert w.until(lambda: all(p.status in (5, 6) for p in w.sim_pumps), 1)
    sent = w.sent[n:]
    assert sent[0] == bytes((ALL_STOP,))
    assert sent.count(b"\x32") >= 2 and ignored


def test_preset_waits_for_call_and_survives_a_hang_up_before_authorize() -> None:
    w = ready(1)
    w.submit(Authorize(1, (2,), preset_volume_ml=1500))
    assert w.until(lambda: states(w, 1)[-1] is PumpState.AUTHORIZED, 1)
    assert not any(f[0] in (0x11, 0x21) for f in w.sent)  # nothing sent before CALL
    pump = w.sim_pumps[0]
    pump.lift(2, w.now)
    assert w.until(lambda: any(len(f) > 1 for f in w.sent), 1)  # the preset block went out
    pump.hang(w.now)  # ... and the nozzle is back before the 1p
    w.run(0.5)
    assert pump.authorizations == 0 and states(w, 1)[-1] is PumpState.AUTHORIZED
    pump.lift(2, w.now)
    assert w.until(lambda: bool(w.of(FillFinished, 1)), 10)
    (fill,) = w.of(FillFinished, 1)
    assert fill.volume_ml == 1500 and fill.nozzle == 2 and pump.authorizations == 1  # type: ignore[attr-defined]


def test_unconfirmed_authorization_is_failed_and_stopped() -> None:
    w = ready(1)
    w.responders[0]._authorize = lambda state, now: None  # type: ignore[method-assign]
    w.submit(Authorize(1))
    assert w.until(lambda: bool(w.of(CommandFailed, 1)), 5)
    assert "not confirmed" in w.of(CommandFailed, 1)[0].reason  # type: ignore[attr-defined]
    w.run(0.05)
    assert b"\x31" in w.sent  # 3p


def test_eight_pumps_with_noise_match_the_ledger() -> None:
    w = ready(8)
    w.line.faults.crc_error_rate = 0.05
    w.line.faults.garbage_rate = 0.05
    w.line.faults.duplicate_rate = 0.05
    for p in range(1, 9):
        fuelling(w, p, preset_amount_fen=1000 + p)
    assert w.until(lambda: len(w.of(FillFinished)) == 8, 30)
    for fill in w.of(FillFinished):
        entry = [e for e in w.ledger if e.pump == fill.pump_id][-1]
        assert (fill.volume_raw, fill.amount_raw) == (entry.volume_raw, entry.amount_raw)  # type: ignore[attr-defined]
    assert w.of(LinkFault)
