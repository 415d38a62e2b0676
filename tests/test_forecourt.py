"""The forecourt controller against the pump simulator over a real PTY (DART bytes both ways)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from agent.errors import Conflict, InvalidRequest
from agent.forecourt import AUTHORIZE_TAKE_S
from tests.forecourt_harness import Station, station


def _ledger(st: Station, pump: int) -> list[object]:
    return [e for e in st.sim.ledger() if e.pump == pump]


def _fill_and_hang(st: Station, pump: int, nozzle_gun: int | None = None, *, logical: int = 1,
                   min_ml: int = 1500, **preset: int) -> dict[str, object]:
    fill = st.forecourt.authorize(pump, nozzles=(nozzle_gun,) if nozzle_gun else (), **preset)
    st.sim.lift(pump, logical)
    st.wait_state(pump, "fuelling")
    if not preset:
        st.wait_event(lambda e: e.topic == "pump.progress" and e.data["pump_id"] == pump
                      and e.data["volume_ml"] >= min_ml)
        st.sim.hang(pump)
    ev = st.wait_event(lambda e: e.topic == "fill.finished" and e.data["pump_id"] == pump)
    assert ev.data["fill_id"] == fill["fill_id"]
    st.sim.hang(pump)
    return ev.data


def _assert_matches_ledger(fill: dict[str, object], entry: object) -> None:
    assert fill["volume_ml"] == entry.volume_ml  # type: ignore[attr-defined]
    assert fill["amount_fen"] == entry.amount_fen  # type: ignore[attr-defined]
    assert fill["price_fen"] == entry.price_fen  # type: ignore[attr-defined]
    # totalizers: raw volume has 2 decimals (10 mL), so compare in mL
    assert fill["end_total_ml"] == entry.end_volume_total_raw * 10  # type: ignore[attr-defined]
    if fill["start_total_ml"] is not None:
        assert fill["end_total_ml"] - fill["start_total_ml"] == fill["volume_ml"]  # type: ignore[operator]


def test_unprogrammed_pumps_get_the_config_prices_and_go_idle(tmp_path: Path) -> None:
    with station(tmp_path, pumps=2) as st:
        st.wait_all_idle()
        for pid in (1, 2):
            assert st.sim.status(pid)["prices"] == {1: 789, 2: 839}
        st.wait_event(lambda e: e.topic == "pump.prices" and e.data["ok"])


def test_postpay_fill_is_committed_before_the_pump_is_released(tmp_path: Path) -> None:
    with station(tmp_path, pumps=1) as st:
        st.wait_all_idle()
        fill = _fill_and_hang(st, 1, 2, logical=2)
        assert st.sim.wait_status(1, 1, timeout=5)  # released (CD1 RESET) ...
        row = st.forecourt.fill(str(fill["fill_id"]))  # ... and by then the sale was durable
        assert row["state"] == "finished"
        assert row["nozzle"] == 2
        assert row["grade"] == "95"
        assert row["price_set_version"] == 1
        _assert_matches_ledger(row, _ledger(st, 1)[0])
        assert st.forecourt.pump(1)["unpaid"] == 1
        outbox = st.agent.store.query("SELECT kind FROM outbox WHERE aggregate_id = ?", (fill["fill_id"],))
        assert outbox == [{"kind": "fill.finished"}]


def test_eight_pumps_fill_concurrently_and_match_the_ground_truth(tmp_path: Path) -> None:
    with station(tmp_path, pumps=8) as st:
        st.wait_all_idle()
        # round 1 establishes start totals, round 2 runs all eight at once with mixed presets
        for rnd in range(2):
            fills = {}
            for pid in range(1, 9):
                preset = {} if pid % 3 == 0 else ({"preset_amount_fen": 1000 + 37 * pid} if pid % 3 == 1
                                                  else {"preset_volume_ml": 1230 + 10 * pid})
                fills[pid] = st.forecourt.authorize(pid, **preset)["fill_id"]
                st.sim.lift(pid, 1 + (pid + rnd) % 2)
            for pid in range(1, 9):
                if pid % 3 == 0:
                    st.wait_event(lambda e, p=pid: e.topic == "pump.progress" and e.data["pump_id"] == p
                                  and e.data["volume_ml"] >= 1000)
                    st.sim.hang(pid)
            for pid in range(1, 9):
                st.wait_event(lambda e, p=pid: e.topic == "fill.finished" and e.data["pump_id"] == p)
                st.sim.hang(pid)
            for pid in range(1, 9):
                row = st.forecourt.fill(fills[pid])
                _assert_matches_ledger(row, _ledger(st, pid)[rnd])
                if pid % 3 == 1:
                    assert row["amount_fen"] <= 1000 + 37 * pid
                elif pid % 3 == 2:
                    assert row["volume_ml"] == 1230 + 10 * pid
                if rnd == 1:
                    assert row["start_total_ml"] is not None
            st.wait_all_idle()
        assert len(st.fills("finished")) == 16
        assert len(st.sim.ledger()) == 16


def test_five_percent_crc_noise_still_records_every_fill_exactly(tmp_path: Path) -> None:
    with station(tmp_path, pumps=4) as st:
        st.wait_all_idle()
        st.sim.set_faults(crc_error_rate=0.05)
        for pid in range(1, 5):
            st.forecourt.authorize(pid, preset_amount_fen=2000 + pid)
            st.sim.lift(pid, 1)
        for pid in range(1, 5):
            st.wait_event(lambda e, p=pid: e.topic == "fill.finished" and e.data["pump_id"] == p, 20)
            st.sim.hang(pid)
        for pid in range(1, 5):
            (row,) = st.forecourt.fills(pump_id=pid)
            _assert_matches_ledger(row, _ledger(st, pid)[0])


def test_pump_offline_mid_fill_is_recovered_and_recorded_once(tmp_path: Path) -> None:
    with station(tmp_path, pumps=2) as st:
        st.wait_all_idle()
        fill = st.forecourt.authorize(1)
        st.sim.lift(1, 1)
        st.wait_state(1, "fuelling")
        st.sim.offline(1)
        st.wait_state(1, "offline")
        st.sim.hang(1)  # the customer finishes while the pump does not answer
        # the other pump keeps working meanwhile
        _fill_and_hang(st, 2, preset_amount_fen=500)
        st.sim.online(1)
        ev = st.wait_event(lambda e: e.topic == "fill.finished" and e.data["pump_id"] == 1, 15)
        assert ev.data["fill_id"] == fill["fill_id"]
        (row,) = st.forecourt.fills(pump_id=1)
        _assert_matches_ledger(row, _ledger(st, 1)[0])
        st.wait_state(1, "idle")


def test_stacking_limit_refuses_a_third_sale_until_paid(tmp_path: Path) -> None:
    with station(tmp_path, pumps=1) as st:
        st.wait_all_idle()
        _fill_and_hang(st, 1, preset_amount_fen=300)
        st.wait_state(1, "idle")
        _fill_and_hang(st, 1, preset_amount_fen=400)
        st.wait_state(1, "idle")
        with pytest.raises(Conflict, match="pay the previous sale"):
            st.forecourt.authorize(1)
        assert st.sim.status(1)["authorizations"] == 2


def test_authorize_rejects_bad_requests_and_changes_nothing(tmp_path: Path) -> None:
    with station(tmp_path, pumps=1) as st:
        st.wait_all_idle()
        with pytest.raises(InvalidRequest):
            st.forecourt.authorize(1, nozzles=(7,))
        with pytest.raises(InvalidRequest):
            st.forecourt.authorize(1, preset_amount_fen=-5)
        with pytest.raises(InvalidRequest):
            st.forecourt.authorize(1, preset_amount_fen=100, preset_volume_ml=100)
        st.forecourt.authorize(1)
        with pytest.raises(Conflict):
            st.forecourt.authorize(1)  # already authorized: a second cashier cannot authorize it again
        assert len(st.fills()) == 1


def test_no_authorization_on_nozzle_lift_unless_enabled(tmp_path: Path) -> None:
    with station(tmp_path, pumps=1) as st:
        st.wait_all_idle()
        st.sim.lift(1, 1)
        st.wait_state(1, "calling")
        assert st.forecourt.pump(1)["nozzle"] == 1
        st.forecourt.drain()
        assert st.sim.status(1)["authorizations"] == 0
        assert st.fills() == []
    with station(tmp_path, pumps=1, extra="[policy]\nauto_authorize = true\n", db_name="g.db") as st:
        st.wait_all_idle()
        st.sim.lift(1, 1)
        st.wait_state(1, "fuelling")
        st.sim.hang(1)
        st.wait_event(lambda e: e.topic == "fill.finished")
        assert st.sim.status(1)["authorizations"] == 1


def test_emergency_stop_reaches_every_pump_and_fills_are_kept(tmp_path: Path) -> None:
    with station(tmp_path, pumps=4) as st:
        st.wait_all_idle()
        for pid in range(1, 5):
            st.forecourt.authorize(pid)
            st.sim.lift(pid, 1)
        for pid in range(1, 5):
            st.wait_state(pid, "fuelling")
        assert st.forecourt.emergency_stop(0, actor="cashier") == [1, 2, 3, 4]
        for pid in range(1, 5):
            st.wait_event(lambda e, p=pid: e.topic == "fill.finished" and e.data["pump_id"] == p)
        assert {e.ended_by for e in st.sim.ledger()} == {"stop"}
        assert len(st.fills("finished")) == 4


def test_locked_pump_refuses_and_the_lock_survives_a_restart(tmp_path: Path) -> None:
    with station(tmp_path, pumps=1) as st:
        st.wait_all_idle()
        st.forecourt.set_locked(1, True, reason="calibration", actor="mgr")
        with pytest.raises(Conflict, match="calibration"):
            st.forecourt.authorize(1)
    with station(tmp_path, pumps=1) as st:
        assert st.forecourt.pump(1)["locked"] is True
        audit = st.agent.store.query("SELECT actor, action FROM audit WHERE action LIKE 'pump.lock%'")
        assert audit == [{"actor": "mgr", "action": "pump.lock"}]


def test_price_change_applies_to_idle_pumps_now_and_busy_pumps_after_their_fill(tmp_path: Path) -> None:
    with station(tmp_path, pumps=2) as st:
        st.wait_all_idle()
        old_fill = st.forecourt.authorize(2)
        st.sim.lift(2, 1)
        st.wait_state(2, "fuelling")
        version = st.forecourt.prices.new_version({"92": 799}, actor="mgr", max_step_fen=200)
        st.forecourt.apply_prices_to_idle()
        st.wait_event(lambda e: e.topic == "pump.prices" and e.data["pump_id"] == 1 and e.data["ok"]
                      and e.data["version"] == version)
        assert st.sim.status(1)["prices"] == {1: 799, 2: 839}
        assert st.sim.status(2)["prices"] == {1: 789, 2: 839}  # mid-fill: untouched
        st.sim.hang(2)
        st.wait_event(lambda e: e.topic == "fill.finished" and e.data["pump_id"] == 2)
        st.wait_event(lambda e: e.topic == "pump.prices" and e.data["pump_id"] == 2 and e.data["ok"]
                      and e.data["version"] == version)
        assert st.sim.status(2)["prices"] == {1: 799, 2: 839}
        row = st.forecourt.fill(old_fill["fill_id"])
        assert row["price_fen"] == 789
        assert row["price_set_version"] == 1
        with pytest.raises(InvalidRequest, match="step"):
            st.forecourt.prices.new_version({"92": 1500}, actor="mgr", max_step_fen=200)


def test_a_missing_serial_port_does_not_stop_the_agent(tmp_path: Path) -> None:
    from agent.config import parse_config
    from agent.errors import Unavailable
    from agent.forecourt import Forecourt
    from agent.service import Agent
    from agent.store import Store
    from drivers.registry import create_line_driver
    from tests.forecourt_harness import station_toml

    agent = Agent(parse_config(station_toml("/dev/ttyFORECOURT-missing", 1)), Store(tmp_path / "f.db"))
    sub = agent.bus.subscribe()
    fc = Forecourt(agent, create_line_driver)
    fc.start()
    try:
        ev = sub.get(timeout=5)
        while ev is not None and ev.topic != "line.error":
            ev = sub.get(timeout=5)
        assert ev is not None
        assert "ttyFORECOURT-missing" in ev.data["error"]
        assert agent.health()["line:bus1"].startswith("down")
        assert fc.pump(1)["state"] == "offline"
        with pytest.raises(Unavailable, match="offline"):
            fc.authorize(1)
    finally:
        fc.close()
        sub.close()
        agent.close()


def test_a_sale_the_pump_never_reports_is_recovered_from_the_totalizers(tmp_path: Path) -> None:
    """The agent is down while a customer fills; the pump loses the transaction record (returns to idle).

    The totalizers still show the litres: after the restart the fill is recorded from them, not as zero.
    """
    import time

    from agent.forecourt import Forecourt
    from drivers.registry import create_line_driver

    with station(tmp_path, pumps=1) as st:
        st.wait_all_idle()
        st.wait_event(lambda e: e.topic == "pump.totals" and e.data["pump_id"] == 1)  # baseline known
        fill = st.forecourt.authorize(1)
        st.sim.lift(1, 1)
        st.wait_state(1, "fuelling")
        st.forecourt.close()  # the agent dies mid-fill
        assert st.sim.wait_for(lambda: st.sim.status(1)["volume_raw"] >= 150, timeout=10)
        st.sim.hang(1)
        assert st.sim.wait_status(1, 5, timeout=5)
        with st.sim.cond:  # the pump forgets the unread sale (seen on one dispenser family)
            st.sim.pump(1).reset(time.monotonic())
        (entry,) = st.sim.ledger()
        fc = Forecourt(st.agent, create_line_driver)
        st.forecourt = fc
        fc.start()
        try:
            ev = st.wait_event(lambda e: e.topic == "fill.finished" and e.data["pump_id"] == 1, 15)
            assert ev.data["fill_id"] == fill["fill_id"]
            assert ev.data["volume_ml"] == entry.volume_ml, ev.data
            assert ev.data["amount_fen"] == entry.amount_fen
            assert "recovered from the totalizers" in ev.data["note"]
            assert st.sim.status(1)["authorizations"] == 1
        finally:
            fc.close()


def test_a_price_the_pump_does_not_take_is_reported_retried_and_the_pump_locked(tmp_path: Path) -> None:
    """R4: never sell at an unknown price — a read-back mismatch is reported, retried ≥ 2 s apart, then locks."""
    with station(tmp_path, pumps=2) as st:
        st.wait_all_idle()
        with st.sim.cond:  # pump 1 acknowledges CD5 but keeps its old prices (a busy tax module)
            st.sim.pump(1).set_prices = lambda prices: True  # type: ignore[method-assign]
        version = st.forecourt.prices.new_version({"92": 799}, actor="mgr")
        st.forecourt.apply_prices_to_idle()
        bad = st.wait_event(lambda e: e.topic == "pump.prices" and e.data["pump_id"] == 1
                            and e.data.get("ok") is False and "read" in e.data)
        assert bad.data["expected"] == {1: 799, 2: 839}
        assert bad.data["read"] == {1: 789, 2: 839}
        ok = st.wait_event(lambda e: e.topic == "pump.prices" and e.data["pump_id"] == 2 and e.data["ok"]
                           and e.data["version"] == version)
        assert ok.data["pump_id"] == 2  # the other pump took the change
        st.wait_event(lambda e: e.topic == "pump.inoperative" and e.data["pump_id"] == 1, 20)
        st.wait_event(lambda e: e.topic == "pump.status" and e.data["pump_id"] == 1 and e.data["locked"])
        pump = st.forecourt.pump(1)
        assert pump["locked"] is True
        assert pump["lock_reason"] == "price not verified"
        with pytest.raises(Conflict, match="price not verified"):
            st.forecourt.authorize(1)


def test_an_authorization_nobody_uses_is_cancelled_and_ends_as_a_zero_sale(tmp_path: Path) -> None:
    """policy.authorization_timeout_s: a pump authorized for a customer who drove off does not stay open."""
    with station(tmp_path, pumps=2, extra="[policy]\nauthorization_timeout_s = 1\n") as st:
        st.wait_all_idle()
        fill = st.forecourt.authorize(1)
        st.wait_state(1, "authorized")
        st.forecourt.authorize(2)
        st.wait_state(2, "authorized")
        st.sim.lift(2, 1)  # pump 2's customer is at the nozzle: never cancelled under them
        st.wait_state(2, "fuelling")
        expired = st.wait_event(lambda e: e.topic == "pump.authorization_expired", timeout=10)
        assert expired.data["pump_id"] == 1 and expired.data["fill_id"] == fill["fill_id"]
        st.wait_event(lambda e: e.topic == "fill.zero" and e.data["fill_id"] == fill["fill_id"], timeout=10)
        st.wait_state(1, "idle")
        assert st.forecourt.pump(2)["state"] == "fuelling"
        st.sim.hang(2)
        done = st.wait_event(lambda e: e.topic == "fill.finished" and e.data["pump_id"] == 2)
        assert done.data["volume_ml"] > 0
        assert [f["state"] for f in st.fills() if f["pump_id"] == 1] == ["zero"]
        # the pump takes the next customer's authorization as usual
        st.forecourt.authorize(1)
        st.wait_state(1, "authorized")
        assert st.sim.status(1)["authorizations"] == 2


def test_an_authorization_the_pump_never_took_does_not_block_the_pump(tmp_path: Path) -> None:
    """The pump acknowledged the authorize frame but never showed AUTHORIZED, and the line dropped before
    the driver's confirmation timer fired: the agent must not keep the fill open (and the pump refused,
    409) forever.  After a short grace it reads the totalizers and closes the fill as a zero sale."""
    with station(tmp_path, pumps=1) as st:
        st.wait_all_idle()
        for _ in range(2):  # the meter readings the agent takes when a pump first shows idle
            st.wait_event(lambda e: e.topic == "pump.totals")
        pump = st.sim.pump(1)
        real = pump.authorize
        reached = threading.Event()
        pump.authorize = lambda *a, **k: reached.set() or False  # type: ignore[method-assign]  # ACKed, not done
        fill = st.forecourt.authorize(1)
        assert reached.wait(5)
        st.sim.offline(1, 1.5)  # the link drops inside the confirmation window
        st.wait_state(1, "offline")
        st.wait_state(1, "idle", timeout=15)
        zero = st.wait_event(lambda e: e.topic == "fill.zero" and e.data["fill_id"] == fill["fill_id"], timeout=30)
        assert zero.data["note"] == "no delivery (totalizers unchanged)"
        assert [f["state"] for f in st.fills()] == ["zero"]
        pump.authorize = real  # type: ignore[method-assign]
        st.forecourt.authorize(1)  # the next customer is served
        st.wait_state(1, "authorized")
        # a pump that shows AUTHORIZED took it: never settled behind the customer's back
        assert st.forecourt.settle_stalled_fills(time.monotonic() + 100) == []

        # still idle AUTHORIZE_TAKE_S after the authorization (checked once a second): settled the same way
        st.seen.clear()  # from here on, only events of this sale
        st.sim.lift(1, 1)
        st.wait_state(1, "fuelling")
        st.sim.hang(1)
        st.wait_event(lambda e: e.topic == "fill.finished")
        st.wait_state(1, "idle")
        pump.authorize = lambda *a, **k: False  # type: ignore[method-assign]
        second = st.forecourt.authorize(1)
        assert st.forecourt.settle_stalled_fills(time.monotonic() + AUTHORIZE_TAKE_S) == [1]
        zero = st.wait_event(lambda e: e.topic == "fill.zero" and e.data["fill_id"] == second["fill_id"])
        assert zero.data["note"] == "no delivery (totalizers unchanged)"
        assert st.forecourt.pump(1)["state"] == "idle" and st.forecourt.pump(1)["fill_id"] is None


def test_a_totalizer_that_runs_backwards_raises_an_alarm_on_the_pump(tmp_path: Path) -> None:
    """A replaced pump board starts its meters again near zero: every reconciliation across that point is
    wrong, so the pump shows an alarm, and the audit log keeps both readings."""
    with station(tmp_path, pumps=1) as st:
        st.wait_all_idle()
        st.wait_event(lambda e: e.topic == "pump.totals" and e.data["nozzle"] == 1)
        with st.sim.cond:
            st.sim.pump(1).totals[1].volume = 5_000_000  # the old board: 50 000 L sold over the years
        st.forecourt.read_totals(1)
        first = st.wait_event(lambda e: e.topic == "pump.totals" and e.data["nozzle"] == 1
                              and e.data["volume_total_ml"] == 50_000_000)
        with st.sim.cond:
            st.sim.pump(1).totals[1].volume = 1234  # raw 10 mL units: 12.34 L on the new board
        st.forecourt.read_totals(1)
        alarm = st.wait_event(lambda e: e.topic == "pump.alarm" and e.data["pump_id"] == 1)
        assert alarm.data["code"] == "totalizer"
        assert f"from {first.data['volume_total_ml']} mL to 12340 mL" in alarm.data["text"]
        assert st.forecourt.pump(1)["alarm"].startswith("totalizer: nozzle 1: totalizer went back")
        (row,) = st.agent.store.query("SELECT actor, after FROM audit WHERE action = 'pump.totalizer_back'")
        assert row["actor"] == "agent" and '"after_ml": 12340' in row["after"]
        # the pump still sells: the alarm informs, it does not block
        fill = st.forecourt.authorize(1)
        st.wait_state(1, "authorized")
        assert fill["state"] == "authorized"


def test_a_fill_whose_meter_reading_never_comes_back_is_asked_again(tmp_path: Path) -> None:
    """The pump went idle with the fill open and did not answer the totalizer request: the agent asks
    again every AUTHORIZE_TAKE_S instead of leaving the pump blocked, and settles once it answers."""
    with station(tmp_path, pumps=1) as st:
        st.wait_all_idle()
        for _ in range(2):
            st.wait_event(lambda e: e.topic == "pump.totals")
        pump = st.sim.pump(1)
        fill = st.forecourt.authorize(1)
        st.wait_state(1, "authorized")
        with st.sim.cond:
            saved, pump.totals = pump.totals, {}  # the counters do not answer for a while
        st.forecourt.stop(1)  # authorized, not lifted: back to idle without a sale report
        st.wait_state(1, "idle")
        assert st.forecourt.fills()[0]["state"] == "authorized"  # still open: nothing proves it was zero
        assert st.forecourt.settle_stalled_fills(time.monotonic() + 1) == []  # too early to ask again
        with st.sim.cond:
            pump.totals = saved
        assert st.forecourt.settle_stalled_fills(time.monotonic() + AUTHORIZE_TAKE_S + 1) == [1]
        alert = st.wait_event(lambda e: e.topic == "pump.alert")
        assert alert.data["code"] == "fill_not_reported" and alert.data["fill_id"] == fill["fill_id"]
        zero = st.wait_event(lambda e: e.topic == "fill.zero" and e.data["fill_id"] == fill["fill_id"])
        assert zero.data["note"] == "no delivery (totalizers unchanged)"
        st.forecourt.authorize(1)  # the pump serves the next customer
        st.wait_state(1, "authorized")
