"""Acceptance: orders made while broker and center are down all arrive exactly once, in order."""

from __future__ import annotations

from collections import defaultdict

from agent.orders import LineRequest
from tests.sync.conftest import Broker, outbox_depth, wait_until


def test_thousand_orders_offline_then_catch_up(broker: Broker, center, make_station) -> None:
    st = make_station(center.url, broker.port)
    agent = st.agent
    wait_until(agent, lambda: agent.online and agent.sync_status()["links"]["broker"], 15, "both links up")

    center.proxy.set_down(True)
    broker.stop()
    wait_until(agent, lambda: not agent.sync_status()["links"]["broker"], 15, "broker link down")

    order_ids = []
    for i in range(1000):
        o = agent.orders.create([LineRequest(kind="amount", amount_fen=1000 + i)], cashier="c1")
        order_ids.append(o["order_id"])
        if i % 10 == 0:  # a second message on the same aggregate: order must be kept
            agent.orders.cancel(o["order_id"], actor="c1")
    wait_until(agent, lambda: not agent.online, 15, "center link down")
    assert outbox_depth(agent) == 1100
    assert center.state.snapshot()["applied"] == 0

    broker.start()
    center.proxy.set_down(False)
    wait_until(agent, lambda: outbox_depth(agent) == 0, 60, "outbox drained")
    wait_until(agent, lambda: agent.online and agent.sync_status()["links"]["broker"], 15, "both links up again")

    applied = center.state.applied
    event_ids = [a["event_id"] for a in applied]
    assert len(event_ids) == len(set(event_ids)) == 1100, "duplicates or losses at the center"
    orders_at_center = {a["out_id"] for a in applied if a["kind"] == "order.created"}
    assert orders_at_center == set(order_ids)
    per_agg: dict[str, list[str]] = defaultdict(list)
    for a in sorted(applied, key=lambda a: a["seq"]):
        per_agg[a["out_id"]].append(a["kind"])
    for i, oid in enumerate(order_ids):
        expected = ["order.created", "order.closed"] if i % 10 == 0 else ["order.created"]
        assert per_agg[oid] == expected
    status = agent.sync_status()
    assert status["parked"] == 0 and status["last_success_ms"] is not None
