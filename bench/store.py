"""Committed orders per second through the agent's store, against a bare sqlite3 loop.

Both run in this process, on the same disk, in the same run:

* baseline: plain ``sqlite3``, WAL + synchronous=FULL, ``BEGIN IMMEDIATE`` +
  one INSERT + ``COMMIT`` per row (the cheapest durable commit SQLite does);
* agent: ``OrderService.create`` — order + 2 lines + outbox row + receipt
  counter in one transaction through the single writer thread.

Prints both rates, p50/p99 latency and the ratio agent/baseline.

    .venv/bin/python bench/store.py [--seconds 3]
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.clock import SystemClock, UuidIds
from agent.events import EventBus
from agent.orders import LineRequest, OrderService
from agent.store import Store, connect


def _pct(samples: list[float], q: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(q * len(s)))] * 1000


def bare_loop(path: Path, seconds: float) -> tuple[float, list[float]]:
    conn = connect(path)
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, payload TEXT)")
    lat: list[float] = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t(payload) VALUES (?)", ("x" * 200,))
        conn.execute("COMMIT")
        lat.append(time.perf_counter() - t0)
    conn.close()
    return len(lat) / seconds, lat


def agent_loop(path: Path, seconds: float) -> tuple[float, list[float]]:
    store = Store(path)
    orders = OrderService(store, SystemClock(), UuidIds(), EventBus(), "BENCH")
    lines = [LineRequest(kind="amount", amount_fen=20_000),
             LineRequest(kind="item", sku="6901234567892", name="矿泉水", unit_price_fen=200, quantity=2)]
    lat: list[float] = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        orders.create(lines)
        lat.append(time.perf_counter() - t0)
    store.close()
    return len(lat) / seconds, lat


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=3.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=".") as d:
        bare_loop(Path(d) / "warm.db", 0.3)  # warm-up
        base_rate, base_lat = bare_loop(Path(d) / "bare.db", args.seconds)
        rate, lat = agent_loop(Path(d) / "agent.db", args.seconds)
        sync = sqlite3.connect(Path(d) / "agent.db").execute("PRAGMA journal_mode").fetchone()[0]
    print(f"store benchmark ({args.seconds:.0f} s each, journal={sync}, synchronous=FULL)")
    print(f"{'loop':<34}{'commits/s':>10}{'p50 ms':>9}{'p99 ms':>9}")
    print(f"{'bare sqlite3 insert+commit':<34}{base_rate:>10.0f}{_pct(base_lat, .5):>9.2f}{_pct(base_lat, .99):>9.2f}")
    print(f"{'agent order (4 rows + outbox)':<34}{rate:>10.0f}{_pct(lat, .5):>9.2f}{_pct(lat, .99):>9.2f}")
    print(f"ratio agent/bare: {rate / base_rate:.2f}   (median latency ratio "
          f"{statistics.median(lat) / statistics.median(base_lat):.2f})")
    print("a 16-pump station needs < 10 commits/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
