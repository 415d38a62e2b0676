"""Acceptance: lost answers after a commit create no duplicate; a poison message is parked."""

from __future__ import annotations

import pytest

from agent.orders import LineRequest
from agent.store.records import enqueue
from tests.sync.conftest import outbox_depth, wait_until


def _orders(agent, n: int) -> list[str]:
    return [agent.orders.create([LineRequest(kind="amount", amount_fen=500 + i)])["order_id"] for i in range(n)]


@pytest.mark.parametrize("knob", ["commit_then_500", "commit_then_drop"])
def test_answer_lost_after_commit_is_not_duplicated(center_http_only, make_station, knob: str) -> None:
    center = center_http_only
    setattr(center.state.faults, knob, 3)  # the next three writes commit, then the answer is lost
    st = make_station(center.url, 1, mqtt=False)
    ids = _orders(st.agent, 250)
    wait_until(st.agent, lambda: outbox_depth(st.agent) == 0, 30, "outbox drained")

    assert getattr(center.state.faults, knob) == 0, "the fault was consumed"
    applied = [a["event_id"] for a in center.state.applied]
    assert len(applied) == len(set(applied)) == 250
    assert {a["out_id"] for a in center.state.applied} == set(ids)
    assert center.state.replays > 0, "the retries really replayed committed messages"
    if knob == "commit_then_drop":
        assert center.proxy.dropped == 3
    rows = st.agent.store.query("SELECT MAX(attempts) AS a FROM outbox")
    assert rows[0]["a"] >= 1


def test_5xx_before_commit_is_retried(center_http_only, make_station) -> None:
    center = center_http_only
    center.state.faults.fail_5xx = 4
    st = make_station(center.url, 1, mqtt=False)
    _orders(st.agent, 50)
    wait_until(st.agent, lambda: outbox_depth(st.agent) == 0, 30, "outbox drained")
    assert len(center.state.applied) == 50 and center.state.replays == 0


@pytest.mark.parametrize("poison", ["semantic", "structural"])
def test_poison_is_parked_and_the_rest_arrive(center_http_only, make_station, poison: str) -> None:
    center = center_http_only
    st = make_station(center.url, 1, mqtt=False, start=False)
    agent = st.agent
    # The center rejects an order without lines (semantic) or a payload that is not an object
    # (structural: the whole batch is refused, the relay isolates the message).
    bad = {"order_id": "poison", "total_fen": 1, "payable_fen": 1, "lines": []} if poison == "semantic" else [1, 2]
    agent.store.write(lambda db: enqueue(db, event_id="order:poison:created", aggregate="order",
                                         aggregate_id="poison", kind="order.created", payload=bad,  # type: ignore[arg-type]
                                         now_ms=agent.clock.now_ms()))
    agent.store.write(lambda db: enqueue(db, event_id="order:poison:closed", aggregate="order",
                                         aggregate_id="poison", kind="order.closed",
                                         payload={"order_id": "poison", "reason": "x"}, now_ms=agent.clock.now_ms()))
    ids = _orders(agent, 998)

    import httpx

    from sync.runtime import start_sync
    from tests.sync.conftest import FAST_RELAY

    with httpx.Client(base_url=center.url, timeout=2.0) as http:
        handle = start_sync(agent, agent.config, http_client=http, relay_settings=FAST_RELAY, mqtt_enabled=False)
        try:
            wait_until(agent, lambda: outbox_depth(agent) == 0, 30, "outbox drained")
        finally:
            handle.stop()

    status = agent.sync_status()
    assert status["parked"] == 1
    parked = agent.store.query("SELECT event_id, last_error FROM outbox WHERE state = 'parked'")
    assert parked[0]["event_id"] == "order:poison:created"
    assert parked[0]["last_error"]
    # the 999 behind it (including the next message of the same aggregate) arrived, once each
    applied = [a["event_id"] for a in center.state.applied]
    assert len(applied) == len(set(applied)) == 999
    assert {a["out_id"] for a in center.state.applied} == {*ids, "poison"}
