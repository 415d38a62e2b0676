"""Outbox drain rate against the center simulator, and its ratio to a bare httpx POST loop.

Both run in this process, against the same simulator (HTTP through its fault proxy, faults off),
in the same run:

* baseline: a bare loop of ``httpx.Client.post("/upload")``, one message per request, with an
  ``Idempotency-Key`` — the cheapest way to tell the center one fact per request;
* relay: ``OutboxRelay`` draining a backlog of N committed orders from SQLite (read the due
  heads, POST ``/upload/batch``, mark confirmed in one transaction), batch size 200; and, for
  reference, the same relay with batch size 1.

Prints messages/s for each and the ratio relay/baseline (target ≥ 0.5).

    .venv/bin/python bench/sync.py [--messages 5000] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from agent.config import parse_config
from agent.events import EventBus
from agent.orders import LineRequest
from agent.service import Agent
from agent.store import Store
from sync.backoff import Backoff
from sync.center_sim.server import serve_center
from sync.http import CenterClient
from sync.relay import OutboxRelay, RelaySettings


def _client(url: str) -> httpx.Client:
    return httpx.Client(base_url=url, timeout=httpx.Timeout(5.0))


def bare_loop(url: str, n: int, tag: str) -> float:
    with _client(url) as c:
        t0 = time.perf_counter()
        for i in range(n):
            eid = f"bare-{tag}-{i}"
            body = json.dumps({"event_id": eid, "out_type": "order", "out_id": f"bare-{tag}-{i}",
                               "kind": "order.created", "created_at_ms": 0,
                               "payload": {"order_id": f"bare-{tag}-{i}", "total_fen": 1000, "payable_fen": 1000,
                                           "lines": [{"kind": "amount", "amount_fen": 1000}]}})
            r = c.post("/upload", content=body, headers={"Idempotency-Key": f'"{eid}"',
                                                         "Content-Type": "application/json"})
            r.raise_for_status()
        return n / (time.perf_counter() - t0)


def relay_drain(url: str, n: int, workdir: Path, batch: int, tag: str) -> float:
    cfg = parse_config({"station": {"id": f"B-{tag}"}, "center": {"url": url},
                        "grades": [{"code": "92", "name": "92#", "price_fen": 789}]})
    store = Store(workdir / f"bench-{tag}.db")
    agent = Agent(cfg, store, bus=EventBus())
    lines = [LineRequest(kind="amount", amount_fen=20_000),
             LineRequest(kind="item", sku="6901234567892", name="矿泉水", unit_price_fen=200, quantity=2)]
    for _ in range(n):
        agent.orders.create(lines)
    with _client(url) as c:
        relay = OutboxRelay(agent, CenterClient(c, cfg.station.id),
                            RelaySettings(batch_size=batch, backoff=Backoff(0.01, 0.1)))
        t0 = time.perf_counter()
        while agent.sync_status()["depth"] > 0:
            relay.step()
        rate = n / (time.perf_counter() - t0)
    assert agent.sync_status()["parked"] == 0
    agent.close()
    return rate


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=5000)
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    args = ap.parse_args()
    center = serve_center()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            bare_loop(center.url, 300, "warm")  # warm up both paths
            relay_drain(center.url, 300, Path(tmp), 200, "warm")
            baseline = bare_loop(center.url, args.messages, "run")
            batched = relay_drain(center.url, args.messages, Path(tmp), 200, "run")
            single = relay_drain(center.url, min(args.messages, 2000), Path(tmp), 1, "single")
    finally:
        center.stop()
    result = {"messages": args.messages, "bare_httpx_msg_s": round(baseline), "relay_batched_msg_s": round(batched),
              "relay_unbatched_msg_s": round(single), "ratio": round(batched / baseline, 2),
              "ratio_unbatched": round(single / baseline, 2), "center_applied": len(center.state.applied)}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"bare httpx POST loop : {baseline:8.0f} msg/s  (one message per request)")
        print(f"relay, batch 200     : {batched:8.0f} msg/s  ratio {batched / baseline:.2f}  (target >= 0.5)")
        print(f"relay, batch 1       : {single:8.0f} msg/s  ratio {single / baseline:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
