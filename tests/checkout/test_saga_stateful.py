"""Hypothesis state machine: combined payments with random leg outcomes, lost answers and crashes.

The center here is an in-memory fake with the real center's idempotency rules (the HTTP simulator is
exercised by the flow tests; a fake keeps hundreds of random runs fast).  After every run the world is
healed, results are delivered, the sentinel runs until quiet, and then for every order:

* paid → the center holds exactly the payable (captures − refunds), every leg confirmed;
* not paid → nothing is kept: captures fully refunded, stored value restored, cash handed back;
* every compensation took effect once (no double refund or double credit).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from agent.checkout.service import CheckoutService
from agent.config import parse_config
from agent.errors import Unavailable
from agent.ports import GatewayRejected, GatewayUnavailable, TradeResult
from agent.service import Agent
from agent.store import Store


class FakeCenter:
    """Idempotent by out ids, like the real one; ``mode`` injects faults per call."""

    def __init__(self) -> None:
        self.trades: dict[str, dict[str, Any]] = {}
        self.refunds: dict[str, tuple[str, int]] = {}
        self.balance = 100_000
        self.sv_ops: dict[str, int] = {}
        self.mode = "ok"  # ok | down | lost_answer
        self.next_status = "pending"

    def _maybe_fail(self, before: bool) -> None:
        if self.mode == "down" and before:
            raise GatewayUnavailable("down")
        if self.mode == "lost_answer" and not before:
            raise GatewayUnavailable("answer lost after commit")

    def gopay(self, *, out_trade_no: str, order_id: str, amount_fen: int, channel: str,
              auth_code: str | None = None) -> TradeResult:
        self._maybe_fail(True)
        t = self.trades.setdefault(out_trade_no, {"status": self.next_status, "amount": amount_fen})
        self._maybe_fail(False)
        return TradeResult(out_trade_no, t["status"], t["amount"], trade_no=out_trade_no, pay_url="sim://x")

    def query_trade(self, out_trade_no: str) -> TradeResult | None:
        self._maybe_fail(True)
        t = self.trades.get(out_trade_no)
        return None if t is None else TradeResult(out_trade_no, t["status"], t["amount"], trade_no=out_trade_no)

    def refund(self, *, out_refund_no: str, out_trade_no: str, amount_fen: int, reason: str) -> str:
        self._maybe_fail(True)
        t = self.trades.get(out_trade_no)
        if t is None or t["status"] != "success":
            raise GatewayRejected("no successful trade")
        self.refunds.setdefault(out_refund_no, (out_trade_no, amount_fen))
        self._maybe_fail(False)
        return "success"

    def stored_value(self, op: str, *, out_id: str, member_id: str, amount_fen: int) -> int:
        self._maybe_fail(True)
        if out_id not in self.sv_ops:
            delta = -amount_fen if op == "debit" else amount_fen
            if self.balance + delta < 0:
                raise GatewayRejected("insufficient stored value")
            self.balance += delta
            self.sv_ops[out_id] = delta
        self._maybe_fail(False)
        return self.balance

    def coupon(self, op: str, *, coupon_id: str, out_id: str) -> None:
        self._maybe_fail(True)

    def member_lookup(self, **kw: str) -> dict[str, Any] | None:
        return {"member_id": "m1", "name": "x", "level": "normal", "balance_fen": self.balance, "points": 0}

    def captured(self, payment_ids: list[str]) -> int:
        return sum(self.trades[p]["amount"] for p in payment_ids
                   if p in self.trades and self.trades[p]["status"] == "success")

    def refunded(self, payment_ids: list[str]) -> int:
        return sum(a for t, a in self.refunds.values() if t in payment_ids)


CONFIG = {"station": {"id": "H1"}, "grades": [{"code": "92", "name": "92#", "price_fen": 789}],
          "api": {"token": "x" * 20}}

tender_st = st.sampled_from(["cash", "stored_value", "qr_scan", "qr_show"])


class CombinedPayment(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp())
        self.center = FakeCenter()
        self.orders: list[str] = []
        self._boot()
        self.checkout.lookup_member(phone="1")

    def _boot(self) -> None:
        self.agent = Agent(parse_config(CONFIG), Store(self.dir / "f.db"))
        self.agent.set_link("center", True)
        self.checkout = CheckoutService(self.agent, self.center)

    def teardown(self) -> None:
        self.agent.close()

    @rule(amounts=st.lists(st.integers(min_value=1, max_value=3000), min_size=1, max_size=3),
          tenders=st.lists(tender_st, min_size=3, max_size=3), status=st.sampled_from(["pending", "success",
                                                                                          "failed"]),
          mode=st.sampled_from(["ok", "ok", "down", "lost_answer"]))
    def pay(self, amounts: list[int], tenders: list[str], status: str, mode: str) -> None:
        order = self.checkout.create_order([{"kind": "amount", "amount_fen": sum(amounts)}], cashier="c",
                                           member_id="m1")
        quote = self.checkout.confirm(order["order_id"])
        self.orders.append(order["order_id"])
        legs = []
        for amount, tender in zip(amounts, tenders, strict=False):
            leg: dict[str, Any] = {"tender": tender, "amount_fen": amount}
            if tender == "qr_scan":
                leg["auth_code"] = "1234567890123"
            legs.append(leg)
        self.center.next_status, self.center.mode = status, mode
        try:
            self.checkout.pay(order["order_id"], quote_id=quote["quote_id"], tenders=legs, actor="c")
        except (GatewayUnavailable, Unavailable):
            pass  # offline: online tenders are refused before anything is taken
        finally:
            self.center.mode = "ok"

    @precondition(lambda self: self.center.trades)
    @rule(data=st.data(), status=st.sampled_from(["success", "failed"]))
    def customer_result(self, data: st.DataObject, status: str) -> None:
        pending = [k for k, t in self.center.trades.items() if t["status"] == "pending"]
        if not pending:
            return
        key = data.draw(st.sampled_from(pending))
        self.center.trades[key]["status"] = status
        if data.draw(st.booleans()):  # the notify arrives (else only the sentinel finds out)
            self.checkout.sagas.on_trade_result(key, status, self.center.trades[key]["amount"])

    @rule(mode=st.sampled_from(["ok", "down", "lost_answer"]))
    def sentinel(self, mode: str) -> None:
        self.center.mode = mode
        try:
            self.checkout.sweep()
        finally:
            self.center.mode = "ok"

    @rule(up=st.booleans())
    def center_link(self, up: bool) -> None:
        self.agent.set_link("center", up)

    @rule()
    def crash_and_restart(self) -> None:
        # memory is lost (customer codes, caches); the database is what survives
        self.agent.close()
        self._boot()

    @invariant()
    def never_more_than_payable(self) -> None:
        for oid in self.orders:
            pids = [r["payment_id"] for r in self.agent.store.query(
                "SELECT payment_id FROM payments WHERE order_id = ?", (oid,))]
            order = self.agent.orders.get(oid)
            net_online = self.center.captured(pids) - self.center.refunded(pids)
            assert net_online >= 0
            if order["state"] == "paid":
                assert net_online <= order["payable_fen"]

    def heal_and_check(self) -> None:
        self.center.mode = "ok"
        self.agent.set_link("center", True)
        for _ in range(4):
            for t in self.center.trades.values():
                if t["status"] == "pending":
                    t["status"] = "failed"
            self.checkout.sweep()
        store = self.agent.store
        assert store.query("SELECT saga_id FROM payment_sagas WHERE state IN ('running', 'compensating')") == []
        sv_net = 100_000 - self.center.balance
        sv_kept = 0
        for oid in self.orders:
            order = self.agent.orders.get(oid)
            legs = store.query("SELECT payment_id, tender, amount_fen, state FROM payments WHERE order_id = ?", (oid,))
            pids = [leg["payment_id"] for leg in legs]
            online = self.center.captured(pids) - self.center.refunded(pids)
            cash = sum(leg["amount_fen"] for leg in legs if leg["tender"] == "cash" and leg["state"] == "confirmed")
            sv = sum(self.center.sv_ops.get(leg["payment_id"], 0) + self.center.sv_ops.get(
                f"{leg['payment_id']}:undo", 0) for leg in legs if leg["tender"] == "stored_value")
            sv_kept += -sv
            taken = online + cash - sv
            if order["state"] == "paid":
                paid_saga = store.query_one("SELECT saga_id FROM payment_sagas WHERE order_id = ? AND state = 'paid'",
                                            (oid,))
                assert paid_saga is not None
                assert taken == order["payable_fen"], (oid, online, cash, sv)
            else:
                assert taken == 0, (oid, online, cash, sv, legs)
        assert sv_kept == sv_net
        for out_no, (trade, _) in self.center.refunds.items():  # compensation once: one refund key per leg
            assert out_no.startswith(trade)


CombinedPayment.TestCase.settings = settings(max_examples=40, stateful_step_count=15, deadline=None)


TestCombinedPayment = CombinedPayment.TestCase


def test_healed_world_is_consistent_after_random_runs() -> None:
    """The state machine above checks invariants during runs; this runs it and checks the healed end state."""
    from hypothesis import given

    @settings(max_examples=60, deadline=None)
    @given(st.data())
    def run(data: st.DataObject) -> None:
        m = CombinedPayment()
        try:
            for _ in range(data.draw(st.integers(min_value=1, max_value=10))):
                step = data.draw(st.sampled_from(["pay", "result", "sentinel", "crash", "link"]))
                if step == "pay":
                    m.pay(data.draw(st.lists(st.integers(1, 3000), min_size=1, max_size=3)),
                          data.draw(st.lists(tender_st, min_size=3, max_size=3)),
                          data.draw(st.sampled_from(["pending", "success", "failed"])),
                          data.draw(st.sampled_from(["ok", "down", "lost_answer"])))
                elif step == "result" and m.center.trades:
                    m.customer_result(data, data.draw(st.sampled_from(["success", "failed"])))
                elif step == "sentinel":
                    m.sentinel(data.draw(st.sampled_from(["ok", "down", "lost_answer"])))
                elif step == "crash":
                    m.crash_and_restart()
                elif step == "link":
                    m.center_link(data.draw(st.booleans()))
                m.never_more_than_payable()
            m.heal_and_check()
        finally:
            m.teardown()

    run()
