"""Station traffic for reliability runs: customers at the pumps and a cashier at the counter.

* ``Customer`` (one thread per pump): when the pump is idle it asks the agent to authorize it,
  lifts the nozzle on the simulator, lets a random volume flow and hangs up.  The customer does not
  care whether the agent is alive: a fill that runs while the agent is dead is still a real fill
  (in the pump ledger) that the restarted agent must find.
* ``Cashier`` (one thread): takes every unpaid fill into an order (``request_key`` per fill), confirms
  it and pays it with a tender drawn from the seed (cash, QR shown to the customer, stored value, or
  stored value + QR), then refunds some paid orders in full with the supervisor's PIN.  Every call is
  logged in ``ops`` as ``{"op", "order_id", "result"}`` with ``result`` ``paid``/``failed``/
  ``unknown`` (no answer: the agent died or the network cut it) — the checker's operations log.
  Retries reuse the same request key until a definitive answer, as a real till would.

Both stop when ``stop`` is set and never wait longer than their timeouts; transport errors are
expected (the agent is SIGKILLed under them) and only logged.

Limits: postpay fuel + one shop item; full refunds only (a partial refund has no request key in the
API, so a blind retry could refund twice — see docs/reliability.md); one member for stored value.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from drivers.sim.simulator import PumpSimulator
from reliability.rig import SUPERVISOR, TOKEN

__all__ = ["Cashier", "Customer", "OpsLog"]

log = logging.getLogger(__name__)

TENDERS = ("cash", "qr_show", "stored_value", "split")


@dataclass
class OpsLog:
    """Thread-safe list of client-side operations and counters."""

    items: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, op: str, order_id: str | None, result: str, **extra: Any) -> None:
        with self._lock:
            self.items.append({"op": op, "order_id": order_id, "result": result, **extra})
            key = f"{op}.{result}"
            self.counts[key] = self.counts.get(key, 0) + 1

    def bump(self, key: str, n: int = 1) -> None:
        with self._lock:
            self.counts[key] = self.counts.get(key, 0) + n


def _client(port: int) -> httpx.Client:
    return httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {TOKEN}"},
                        timeout=httpx.Timeout(5.0, connect=1.0))


class Customer(threading.Thread):
    """Fills at one pump, over and over, until ``stop`` (see module docstring)."""

    def __init__(self, sim: PumpSimulator, pump: int, api_port: int, stop: threading.Event, ops: OpsLog, *,
                 seed: int, max_ml: int = 20_000, idle_s: tuple[float, float] = (0.05, 0.5)) -> None:
        super().__init__(name=f"customer-{pump}", daemon=True)
        self.sim, self.pump, self.stop_ev, self.ops = sim, pump, stop, ops
        self.api = _client(api_port)
        self.rng = random.Random(seed)
        self.max_ml = max_ml
        self.idle_s = idle_s

    def run(self) -> None:
        try:
            while not self.stop_ev.is_set():
                self._one()
                self.stop_ev.wait(self.rng.uniform(*self.idle_s))
        finally:
            self.api.close()

    def _one(self) -> None:
        if not self.sim.wait_for(lambda: self.sim.pump(self.pump).status in (1, 2), timeout=2.0):
            return  # busy: a fill not yet released, or not programmed yet
        if self.sim.pump(self.pump).status == 1:
            try:
                r = self.api.post(f"/api/v1/pumps/{self.pump}/authorize", json={})
            except httpx.HTTPError:
                self.ops.bump("authorize.unknown")
                return
            if r.status_code != 201:
                self.ops.bump(f"authorize.{r.status_code}")
                return
            self.ops.bump("authorize.ok")
            if not self.sim.wait_status(self.pump, 2, timeout=3.0):
                return  # the agent died before the command reached the pump
        self.sim.lift(self.pump, 1)
        target_raw = self.rng.randint(50, self.max_ml // 10)  # 0.5 L .. max_ml (raw = 10 mL)
        pump = self.sim.pump(self.pump)

        def flowed() -> bool:
            pump.advance(time.monotonic())
            return pump.fill_volume >= target_raw or pump.status not in (2, 4)

        self.sim.wait_for(flowed, timeout=8.0)
        self.sim.hang(self.pump)


class Cashier(threading.Thread):
    """Pays every unpaid fill and some refunds, until ``stop`` (see module docstring)."""

    def __init__(self, api_port: int, stop: threading.Event, ops: OpsLog, *, seed: int,
                 refund_rate: float = 0.15, item_rate: float = 0.3) -> None:
        super().__init__(name="cashier", daemon=True)
        self.stop_ev, self.ops = stop, ops
        self.api = _client(api_port)
        self.rng = random.Random(seed)
        self.refund_rate, self.item_rate = refund_rate, item_rate
        self.attempt: dict[str, int] = {}
        self.tender: dict[str, str] = {}
        self.refund_wanted: set[str] = set()
        self.refunded: set[str] = set()

    def run(self) -> None:
        try:
            while not self.stop_ev.is_set():
                try:
                    self.round()
                except httpx.HTTPError:
                    self.ops.bump("cashier.transport_error")
                self.stop_ev.wait(0.1)
        except Exception:
            log.exception("cashier stopped")
            raise

    def close(self) -> None:
        self.api.close()

    # one pass over the counter; also called by the harness for the final settlement
    def round(self) -> int:
        """Take unpaid fills into orders, pay open orders, refund; returns how many things were done."""
        done = 0
        for f in self._json("GET", "/api/v1/fills", params={"state": "finished", "limit": 200}) or []:
            done += self._order_for(f)
        for o in self._json("GET", "/api/v1/orders", params={"state": "init"}) or []:
            done += self._pay(o)
        for oid in sorted(self.refund_wanted - self.refunded):
            done += self._refund(oid)
        return done

    def _json(self, method: str, path: str, **kw: Any) -> Any:
        r = self.api.request(method, path, **kw)
        return r.json() if r.status_code < 300 else None

    def _order_for(self, fill: dict[str, Any]) -> int:
        fid = str(fill["fill_id"])
        tender = self.tender.setdefault(fid, self.rng.choice(TENDERS))
        lines: list[dict[str, Any]] = [{"kind": "fuel", "fill_id": fid}]
        if self.rng.random() < self.item_rate:
            lines.append({"kind": "item", "sku": "6901234567892", "quantity": 1})
        body: dict[str, Any] = {"lines": lines, "request_key": f"o-{fid}"}
        if tender in ("stored_value", "split"):
            self.api.get("/api/v1/members/lookup", params={"phone": "13800000001"})
            body["member_id"] = "m1"
        try:
            r = self.api.post("/api/v1/checkout/orders", json=body)
        except httpx.HTTPError:
            self.ops.add("create", None, "unknown", fill_id=fid)
            return 0
        if r.status_code != 201:
            self.ops.add("create", None, f"http_{r.status_code}", fill_id=fid, detail=r.text[:200])
            if "no_member" in r.text:
                self.tender[fid] = "cash"  # member unknown here (center was unreachable): the customer pays cash
            return 0
        oid = str(r.json()["order_id"])
        self.tender[oid] = tender
        self.ops.add("create", oid, "ok", fill_id=fid)
        return 1

    def _tenders(self, oid: str, payable: int) -> list[dict[str, Any]]:
        tender = self.tender.get(oid) or self.tender.setdefault(oid, self.rng.choice(TENDERS))
        if tender == "split" and payable >= 2:
            sv = payable // 3
            return [{"tender": "stored_value", "amount_fen": sv}, {"tender": "qr_show", "amount_fen": payable - sv}]
        if tender == "split":
            tender = "cash"
        t: dict[str, Any] = {"tender": tender, "amount_fen": payable}
        if tender == "cash":
            t["given_fen"] = payable
        return [t]

    def _pay(self, order: dict[str, Any]) -> int:
        oid = str(order["order_id"])
        if order.get("payable_fen", 0) <= 0:
            return 0
        try:
            q = self.api.post(f"/api/v1/orders/{oid}/confirm")
            if q.status_code >= 300:
                self.ops.bump(f"confirm.{q.status_code}")
                return 0
            quote = q.json()
            n = self.attempt.get(oid, 0)
            r = self.api.post(f"/api/v1/orders/{oid}/pay", json={
                "quote_id": quote["quote_id"], "tenders": self._tenders(oid, int(quote["payable_fen"])),
                "request_key": f"p-{oid}-{n}"})
        except httpx.HTTPError:
            self.ops.add("pay", oid, "unknown")
            return 0
        if r.status_code >= 300:
            self.ops.add("pay", oid, f"http_{r.status_code}", detail=r.text[:200])
            return 0
        state = str(r.json().get("state"))
        result = {"paid": "paid", "failed": "failed"}.get(state, "unknown")
        self.ops.add("pay", oid, result, tender=self.tender.get(oid))
        if state == "failed":
            self.attempt[oid] = n + 1
            self.tender[oid] = "cash"  # the customer pays cash instead
        if state == "paid" and self.rng.random() < self.refund_rate:
            self.refund_wanted.add(oid)
        return 1

    def _refund(self, oid: str) -> int:
        try:
            r = self.api.post(f"/api/v1/orders/{oid}/refund", json={
                "reason": "reliability run", "supervisor_id": SUPERVISOR[0], "supervisor_pin": SUPERVISOR[1]})
        except httpx.HTTPError:
            self.ops.add("refund", oid, "unknown")
            return 0
        if r.status_code == 201:
            self.ops.add("refund", oid, "ok")
            self.refunded.add(oid)
            return 1
        self.ops.add("refund", oid, f"http_{r.status_code}")
        if r.status_code in (400, 409, 422):
            self.refunded.add(oid)  # nothing left to refund (an earlier try went through) or not refundable
        return 0
