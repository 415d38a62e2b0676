"""A minimal station for receipt tests: Agent + Store + CheckoutService without pumps or a center.

Orders go through the real services (create, confirm, pay cash); a fuel line comes
from a finished fill committed as the pump controller would commit it.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agent.checkout.service import CheckoutService
from agent.clock import FixedClock, SeqIds
from agent.config import parse_config
from agent.events import Event, Subscription
from agent.service import Agent
from agent.store import Store

CONFIG: dict[str, Any] = {
    "station": {"id": "T001", "name": "测试加油站"},
    "api": {"token": "test-token-0123456789abcdef"},
    "grades": [{"code": "92", "name": "92#汽油", "price_fen": 789}],
    "catalog": [{"sku": "6901234567892", "name": "矿泉水 550ml", "price_fen": 200}],
    "promotions": [{"id": "m200-10", "name": "满200减10", "kind": "spend_and_get", "threshold_fen": 20000,
                    "off_fen": 1000}],
    "cashiers": [{"id": "c01", "name": "张三", "pin": "1234"}],
}


@dataclass
class Till:
    agent: Agent
    clock: FixedClock
    checkout: CheckoutService
    _fills: int = 0

    def fill(self, volume_ml: int, price_fen: int = 789) -> str:
        """A finished postpay fill on pump 1 nozzle 1, committed as the controller commits it."""
        from agent.money import amount_for_volume

        self._fills += 1
        fill_id = f"fill-{self._fills}"
        now = self.clock.now_ms()
        self.agent.store.write(lambda db: db.execute(
            "INSERT INTO fills(fill_id, pump_id, nozzle, grade, state, volume_ml, amount_fen, price_fen,"
            " created_at_ms, finished_at_ms) VALUES (?, 1, 1, '92', 'finished', ?, ?, ?, ?, ?)",
            [fill_id, volume_ml, amount_for_volume(volume_ml, price_fen), price_fen, now, now]))
        return fill_id

    def sell(self, lines: list[dict[str, Any]], *, given_fen: int | None = None) -> dict[str, Any]:
        """Create, confirm and pay an order in cash; return the paid order."""
        order = self.checkout.create_order(lines, cashier="c01")
        quote = self.checkout.confirm(order["order_id"])
        tender: dict[str, Any] = {"tender": "cash", "amount_fen": quote["payable_fen"]}
        if given_fen is not None:
            tender["given_fen"] = given_fen
        result = self.checkout.pay(order["order_id"], quote_id=quote["quote_id"], tenders=[tender], actor="c01")
        assert result["state"] == "paid", result
        return self.agent.orders.get(order["order_id"])


@pytest.fixture
def till(tmp_path: Path) -> Iterator[Till]:
    clock = FixedClock(1_767_254_400_000)  # 2026-01-01 08:00 UTC = 16:00 Beijing
    agent = Agent(parse_config(CONFIG), Store(tmp_path / "f.db"), clock=clock, ids=SeqIds())
    checkout = CheckoutService(agent, gateway=None)
    try:
        yield Till(agent, clock, checkout)
    finally:
        agent.close()


def wait_event(sub: Subscription, pred: Callable[[Event], bool], timeout: float = 10.0) -> Event:
    """The first event matching ``pred`` (fails after ``timeout`` seconds of real time)."""
    import time

    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        ev = sub.get(timeout=left)
        if ev is not None and pred(ev):
            return ev
    raise AssertionError("event not seen in time")


class Listener:
    """A network printer on localhost: accepts connections and keeps every byte received."""

    def __init__(self, port: int = 0) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen()
        self.port = int(self.sock.getsockname()[1])
        self.jobs: list[bytes] = []
        self.received = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="fake-printer", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                chunks = []
                while data := conn.recv(65536):
                    chunks.append(data)
            if chunks:  # an empty connection is the queue checking that the printer answers
                self.jobs.append(b"".join(chunks))
                self.received.set()

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self._thread.join(timeout=5)
