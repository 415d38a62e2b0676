"""Property: under any mix of outages and lost answers, every message reaches the center exactly
once and in order per aggregate, after healing (RELIABILITY §6 "exactly-once e2e").

The relay is driven by hand (``step()``), so the test never waits for a backoff.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from tempfile import TemporaryDirectory

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.events import EventBus
from agent.orders import LineRequest
from agent.service import Agent
from agent.store import Store
from sync.backoff import Backoff
from sync.center_sim.server import serve_center
from sync.http import CenterClient
from sync.relay import OutboxRelay, RelaySettings
from tests.sync.conftest import STATION, station_config

steps = st.lists(st.one_of(
    st.tuples(st.just("orders"), st.integers(1, 30)),
    st.tuples(st.just("cancel"), st.integers(0, 1000)),
    st.tuples(st.sampled_from(["commit_then_500", "commit_then_drop", "fail_5xx"]), st.integers(1, 3)),
    st.tuples(st.just("down"), st.booleans()),
    st.tuples(st.just("relay"), st.integers(1, 4)),
), min_size=3, max_size=25)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=steps, batch=st.sampled_from([1, 7, 50]))
def test_exactly_once_in_order_under_faults(plan: list[tuple[str, object]], batch: int) -> None:
    center = serve_center()
    try:
        with TemporaryDirectory() as tmp, httpx.Client(base_url=center.url, timeout=2.0) as http:
            agent = Agent(station_config(center.url, 1), Store(Path(tmp) / "s.db"), bus=EventBus())
            relay = OutboxRelay(agent, CenterClient(http, STATION),
                                RelaySettings(batch_size=batch, backoff=Backoff(0.0, 0.0)))
            orders: list[str] = []
            for op, arg in plan:
                if op == "orders":
                    assert isinstance(arg, int)
                    orders += [agent.orders.create([LineRequest(kind="amount", amount_fen=100 + i)])["order_id"]
                               for i in range(arg)]
                elif op == "cancel" and orders:
                    assert isinstance(arg, int)
                    agent.orders.cancel(orders[arg % len(orders)], actor="t")
                elif op == "down":
                    center.proxy.set_down(bool(arg))
                elif op == "relay":
                    assert isinstance(arg, int)
                    for _ in range(arg):
                        relay.step()
                else:
                    setattr(center.state.faults, op, arg)
            center.proxy.set_down(False)  # heal, then drain
            for _ in range(1000):
                if agent.sync_status()["depth"] == 0:
                    break
                relay.step()
            assert agent.sync_status()["depth"] == 0 and agent.sync_status()["parked"] == 0
            local = agent.store.query("SELECT event_id, aggregate_id FROM outbox ORDER BY id")
            agent.close()
        applied = sorted(center.state.applied, key=lambda a: a["seq"])
        ids = [a["event_id"] for a in applied]
        assert len(ids) == len(set(ids)), "a message was applied twice"
        assert set(ids) == {r["event_id"] for r in local}, "lost or unknown messages"
        mine: dict[str, list[str]] = defaultdict(list)
        theirs: dict[str, list[str]] = defaultdict(list)
        for r in local:
            mine[r["aggregate_id"]].append(r["event_id"])
        for a in applied:
            theirs[a["out_id"]].append(a["event_id"])
        assert mine == theirs, "per-aggregate order differs"
    finally:
        center.stop()
