"""Refunds and voids: full or partial, supervisor-approved, to the original tender, own records.

A refund never edits a payment.  The amount is taken from the order's
confirmed legs in reverse order (the last tender first), each part a refund
record with its own id (the idempotency key at the center).  Cash is handed
back at once; stored value is credited; an online payment is refunded at the
center (pending until it answers — the sentinel retries).  Underrun refunds of
prepaid fills use the same path without a supervisor.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import sqlite_utils

from agent.errors import Conflict, InvalidRequest, NotFound
from agent.ports import GatewayRejected, GatewayUnavailable
from agent.service import Agent
from agent.store import Store
from agent.store.records import add_audit, enqueue

log = logging.getLogger(__name__)

__all__ = ["RefundService"]


class RefundService:
    def __init__(self, checkout: Any) -> None:
        self.checkout = checkout
        self.agent: Agent = checkout.agent
        self._store: Store = self.agent.store

    def refundable(self, order_id: str) -> int:
        row = self._store.query_one(
            "SELECT (SELECT COALESCE(SUM(amount_fen), 0) FROM payments WHERE order_id = ?1 AND state = 'confirmed')"
            " - (SELECT COALESCE(SUM(amount_fen), 0) FROM refunds WHERE order_id = ?1) AS n", (order_id,))
        return int(row["n"]) if row else 0

    def refund(self, order_id: str, *, amount_fen: int | None, reason: str, actor: str,
               approved_by: str | None, request_key: str | None = None) -> list[dict[str, Any]]:
        if request_key is not None:
            done = self._by_key(order_id, request_key)
            if done:
                return done  # a repeated request (lost answer, double tap): the refunds already made
        order = self.agent.orders.get(order_id)
        if order["state"] != "paid":
            raise Conflict(f"order {order_id} is {order['state']}: only a paid order can be refunded",
                           code="order_not_paid")
        left = self.refundable(order_id)
        amount = left if amount_fen is None else amount_fen
        if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
            raise InvalidRequest("amount_fen: expected a positive integer", code="bad_amount")
        if amount > left:
            raise InvalidRequest(f"at most {left} fen can still be refunded", code="refund_too_large",
                                 refundable_fen=left)
        now = self.agent.clock.now_ms()
        legs = self._store.query(
            "SELECT p.payment_id, p.tender, p.amount_fen, p.detail, p.amount_fen - COALESCE((SELECT SUM(r.amount_fen)"
            " FROM refunds r WHERE r.payment_id = p.payment_id), 0) AS left_fen FROM payments p"
            " WHERE p.order_id = ? AND p.state = 'confirmed' ORDER BY p.leg_no DESC", (order_id,))
        plan: list[tuple[dict[str, Any], int, str]] = []
        rest = amount
        for leg in legs:
            take = min(rest, int(leg["left_fen"]))
            if take > 0:
                plan.append((leg, take, self.agent.ids.new_id()))
                rest -= take
        assert rest == 0, "refundable amount and legs disagree"

        inv = self._store.query_one("SELECT invoice_no FROM invoices WHERE order_id = ? AND state = 'issued'",
                                    (order_id,))
        invoice_no = str(inv["invoice_no"]) if inv else None  # issued on the old amount: the center reissues it

        def tx(db: sqlite_utils.Database) -> bool:
            if request_key is not None and db.execute(
                    "SELECT 1 FROM refunds WHERE order_id = ? AND request_key = ?", [order_id, request_key]).fetchone():
                return False
            for leg, take, rid in plan:
                db.execute("INSERT INTO refunds(refund_id, order_id, payment_id, amount_fen, reason, state, tender,"
                           " actor, created_at_ms, updated_at_ms, request_key)"
                           " VALUES (?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?)",
                           [rid, order_id, leg["payment_id"], take, reason, leg["tender"], actor, now, now,
                            request_key])
                enqueue(db, event_id=f"refund:{rid}:created", aggregate="order", aggregate_id=order_id,
                        kind="order.refunded", payload={"refund_id": rid, "order_id": order_id,
                                                        "payment_id": leg["payment_id"], "amount_fen": take,
                                                        "tender": leg["tender"], "reason": reason,
                                                        "invoice_no": invoice_no}, now_ms=now)
            points = self._reverse_points(db, order_id, now) if amount == left else None
            add_audit(db, at_ms=now, actor=actor, action="order.refund", target=f"order:{order_id}",
                      before={"refundable_fen": left},
                      after={"amount_fen": amount, "reason": reason, "approved_by": approved_by,
                             "refunds": [rid for _, _, rid in plan], "points": points, "invoice_no": invoice_no})
            return True

        if not self._store.write(tx):
            return self._by_key(order_id, str(request_key))
        for _, _, rid in plan:
            self.execute(rid)
        out = [self.get(rid) for _, _, rid in plan]
        self.agent.bus.publish("order.refunded", {"order_id": order_id, "amount_fen": amount, "refunds": out,
                                                  "invoice_no": invoice_no})
        return out

    @staticmethod
    def _reverse_points(db: sqlite_utils.Database, order_id: str, now: int) -> dict[str, int] | None:
        """The whole order is refunded: the member gets back the points redeemed on it and loses the points
        it earned (a partial refund leaves points alone).  Sent to the center, which owns the balance."""
        row = db.execute("SELECT o.member_id, q.detail FROM orders o JOIN quotes q ON q.order_id = o.order_id"
                         " AND q.state = 'used' WHERE o.order_id = ?", [order_id]).fetchone()
        if row is None or not row[0]:
            return None
        held = db.execute("SELECT points FROM points_holds WHERE order_id = ? AND state = 'settled'",
                          [order_id]).fetchone()
        used = int(held[0]) if held else 0  # what the payment actually settled
        earned = int(json.loads(row[1] or "{}").get("points_earned") or 0)
        if not (used or earned):
            return None
        db.execute("UPDATE members SET points = points + ? - ? WHERE member_id = ?", [used, earned, row[0]])
        enqueue(db, event_id=f"points:{order_id}:reversed", aggregate="member", aggregate_id=str(row[0]),
                kind="member.points_reversed", payload={"member_id": row[0], "order_id": order_id,
                                                        "returned": used, "taken_back": earned}, now_ms=now)
        return {"returned": used, "taken_back": earned}

    def _by_key(self, order_id: str, request_key: str) -> list[dict[str, Any]]:
        return self._store.query("SELECT * FROM refunds WHERE order_id = ? AND request_key = ? ORDER BY rowid",
                                 (order_id, request_key))

    def get(self, refund_id: str) -> dict[str, Any]:
        row = self._store.query_one("SELECT * FROM refunds WHERE refund_id = ?", (refund_id,))
        if row is None:
            raise NotFound(f"no refund {refund_id}")
        return row

    def execute(self, refund_id: str) -> None:
        """Carry one refund out to its tender; idempotent (the refund id is the key)."""
        r = self.get(refund_id)
        if r["state"] == "done":
            return
        gw = self.checkout.gateway
        try:
            if r["tender"] == "stored_value":
                member = self._store.query_one("SELECT member_id FROM orders WHERE order_id = ?", (r["order_id"],))
                member_id = member["member_id"] if member else None
                if gw is None or member_id is None:
                    return
                # credited at the center only (the owner of the balance); offline it waits for the sentinel
                balance = gw.stored_value("credit", out_id=refund_id, member_id=member_id,
                                          amount_fen=r["amount_fen"])
                self._store.write(lambda db: db.execute(
                    "UPDATE members SET balance_fen = ? WHERE member_id = ?", [balance, member_id]))
            elif r["tender"] in ("qr_scan", "qr_show", "plate_pay"):
                if gw is None:
                    return
                gw.refund(out_refund_no=refund_id, out_trade_no=r["payment_id"], amount_fen=r["amount_fen"],
                          reason=r["reason"])
        except GatewayUnavailable as exc:
            log.info("refund %s waits for the center: %s", refund_id, exc)
            return
        except GatewayRejected as exc:
            self._set(refund_id, "failed")
            log.error("refund %s refused by the center: %s", refund_id, exc)
            return
        self._set(refund_id, "done")

    def _set(self, refund_id: str, state: str) -> None:
        now = self.agent.clock.now_ms()
        self._store.write(lambda db: db.execute(
            "UPDATE refunds SET state = ?, updated_at_ms = ? WHERE refund_id = ?", [state, now, refund_id]))

    def retry_pending(self) -> None:
        for r in self._store.query("SELECT refund_id FROM refunds WHERE state = 'pending'"):
            self.execute(r["refund_id"])
