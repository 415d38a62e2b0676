"""The payment saga: combined payment, all or nothing (seed 000, RELIABILITY.md section 3).

One saga per payment attempt of an order, persisted step by step in
``payment_sagas`` and ``payments`` (one row per leg).  Every external call
is preceded by a committed intent and followed by a committed result; each
carries the leg's own id, so a repeat after a crash is idempotent at the center.

Order of work (seed 000):

1. **synchronous legs** — cash (in the drawer at once), member stored value
   (debited at the center; offline up to the cached balance when allowed);
2. **asynchronous legs** — QR scanned at the counter (被扫), merchant QR on
   the customer display (主扫), plate-linked pay (无感): started at the
   center, final only on its result (notify, or the sentinel's query);
3. all legs confirmed → **finalize** in one transaction: order paid, quote
   used, fills paid, points settled, coupon settled, outbox message, receipt
   job; a second success for an already paid order is a **duplicate** and is
   refunded automatically;
4. any leg failed → **compensate** in reverse order: cash handed back,
   stored value credited, captured QR refunded; the saga ends ``failed`` and
   the order stays payable (its frozen quote and locks are kept until it is
   cancelled or times out).

A timed-out call is *unknown*, never *failed*: the leg stays ``intent`` or
``pending`` and the sentinel asks the center again.  The customer's QR code
(auth code) is used once and never stored.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

import sqlite_utils

from agent.errors import Conflict, InvalidRequest, NotFound, Unavailable
from agent.ports import GatewayRejected, GatewayUnavailable
from agent.service import Agent
from agent.store import Store
from agent.store.records import enqueue

log = logging.getLogger(__name__)

__all__ = ["ASYNC_TENDERS", "SYNC_TENDERS", "PaymentSagas"]

SYNC_TENDERS = ("cash", "stored_value")
ASYNC_TENDERS = ("qr_scan", "qr_show", "plate_pay")
CHANNEL = {"qr_scan": "barcode", "qr_show": "qrcode", "plate_pay": "plate"}
FINAL_LEG = ("confirmed", "failed", "compensated", "duplicate")


class PaymentSagas:
    """See the module docstring.  Thread-safe: one lock serialises saga steps."""

    def __init__(self, checkout: Any) -> None:
        self.checkout = checkout
        self.agent: Agent = checkout.agent
        self._store: Store = self.agent.store
        self._lock = threading.RLock()
        self._auth_codes: dict[str, str] = {}  #: payment_id -> customer code, in memory only, used once
        self.crash_at: str | None = None  #: test hook: raise SystemExit at a named step (crash tests)

    # ------------------------------------------------------------ start
    def pay(self, order_id: str, *, quote_id: str, tenders: list[dict[str, Any]], actor: str,
            request_key: str | None = None) -> dict[str, Any]:
        if request_key:
            row = self._store.query_one("SELECT saga_id FROM payment_sagas WHERE request_key = ?", (request_key,))
            if row is not None:
                return self.status(row["saga_id"])
        order = self.agent.orders.get(order_id)
        if order["state"] != "init":
            raise Conflict(f"order {order_id} is {order['state']}", code="order_not_open", state=order["state"])
        now = self.agent.clock.now_ms()
        quote = self._store.query_one("SELECT * FROM quotes WHERE quote_id = ? AND order_id = ?", (quote_id, order_id))
        if quote is None:
            raise NotFound(f"no quote {quote_id} for this order", code="unknown_quote")
        if quote["state"] != "frozen":
            raise Conflict(f"quote {quote_id} is {quote['state']}: confirm again", code="quote_not_frozen")
        if quote["expires_at_ms"] <= now:
            raise Conflict("the quote has expired: confirm the order again", code="quote_expired")
        legs = self._validate_tenders(order, tenders, quote["payable_fen"])
        saga_id = self.agent.ids.new_id()

        def tx(db: sqlite_utils.Database) -> None:
            if db.execute("SELECT 1 FROM payment_sagas WHERE order_id = ? AND state IN ('running', 'compensating')",
                          [order_id]).fetchone():
                raise Conflict("a payment is already in progress for this order", code="payment_in_progress")
            db.execute("INSERT INTO payment_sagas(saga_id, order_id, quote_id, state, request_key, created_at_ms,"
                       " updated_at_ms) VALUES (?, ?, ?, 'running', ?, ?, ?)",
                       [saga_id, order_id, quote_id, request_key, now, now])
            base = db.execute("SELECT COALESCE(MAX(leg_no), 0) FROM payments WHERE order_id = ?",
                              [order_id]).fetchone()[0]
            for i, leg in enumerate(legs, start=1):
                db.execute("INSERT INTO payments(payment_id, order_id, leg_no, tender, amount_fen, state, saga_id,"
                           " detail, created_at_ms, updated_at_ms) VALUES (?, ?, ?, ?, ?, 'intent', ?, ?, ?, ?)",
                           [leg["payment_id"], order_id, base + i, leg["tender"], leg["amount_fen"], saga_id,
                            json.dumps(leg["detail"]), now, now])

        self._store.write(tx)
        for leg in legs:
            if leg.get("auth_code"):
                self._auth_codes[leg["payment_id"]] = leg["auth_code"]
        self.agent.bus.publish("payment.started", {"order_id": order_id, "saga_id": saga_id})
        return self.advance(saga_id)

    def _validate_tenders(self, order: dict[str, Any], tenders: list[dict[str, Any]],
                          payable: int) -> list[dict[str, Any]]:
        if not tenders:
            if payable == 0:
                return []
            raise InvalidRequest("give at least one tender", code="no_tenders")
        legs = []
        for i, t in enumerate(tenders):
            tender, amount = t.get("tender"), t.get("amount_fen")
            if tender not in SYNC_TENDERS + ASYNC_TENDERS:
                raise InvalidRequest(f"tenders[{i}].tender: unknown {tender!r}", code="bad_tender")
            if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
                raise InvalidRequest(f"tenders[{i}].amount_fen: expected a positive integer", code="bad_tender")
            detail: dict[str, Any] = {}
            if tender == "cash":
                given = t.get("given_fen", amount)
                if isinstance(given, bool) or not isinstance(given, int) or given < amount:
                    raise InvalidRequest(f"tenders[{i}].given_fen: at least the amount", code="bad_tender")
                detail = {"given_fen": given, "change_fen": given - amount}
            elif tender in ("stored_value", "plate_pay"):
                if not order.get("member_id"):
                    raise InvalidRequest(f"{tender} needs a member on the order", code="no_member")
                detail = {"member_id": order["member_id"]}
            elif tender == "qr_scan":
                code = t.get("auth_code")
                if not isinstance(code, str) or not code.isdigit() or not 10 <= len(code) <= 32:
                    raise InvalidRequest(f"tenders[{i}].auth_code: scan the customer's payment code",
                                         code="bad_auth_code")
                detail = {"auth_code_tail": code[-4:]}
            legs.append({"payment_id": self.agent.ids.new_id(), "tender": tender, "amount_fen": amount,
                         "detail": detail, "auth_code": t.get("auth_code") if tender == "qr_scan" else None})
        total = sum(leg["amount_fen"] for leg in legs)
        if total != payable:
            raise InvalidRequest(f"tenders add up to {total} fen but the frozen quote is {payable} fen",
                                 code="tender_mismatch", payable_fen=payable, tendered_fen=total)
        online_needed = [leg["tender"] for leg in legs if leg["tender"] in ASYNC_TENDERS]
        if online_needed and not self.agent.online:
            raise Unavailable(f"{online_needed[0]} needs the trade center, which is not reachable now "
                              "(offline mode): take cash or stored value", code="offline", operation=online_needed[0])
        return legs

    # ------------------------------------------------------------ advance
    def advance(self, saga_id: str) -> dict[str, Any]:
        with self._lock:
            saga = self._saga(saga_id)
            if saga["state"] == "running":
                self._run(saga)
                saga = self._saga(saga_id)
            if saga["state"] == "compensating":
                self._compensate(saga)
        return self.status(saga_id)

    def _saga(self, saga_id: str) -> dict[str, Any]:
        row = self._store.query_one("SELECT * FROM payment_sagas WHERE saga_id = ?", (saga_id,))
        if row is None:
            raise NotFound(f"no payment {saga_id}", code="unknown_payment")
        return row

    def _legs(self, saga_id: str) -> list[dict[str, Any]]:
        rows = self._store.query("SELECT * FROM payments WHERE saga_id = ? ORDER BY leg_no", (saga_id,))
        for r in rows:
            r["detail"] = json.loads(r["detail"])
        return rows

    def _set_leg(self, leg: dict[str, Any], state: str, **detail: Any) -> None:
        now = self.agent.clock.now_ms()
        merged = {**leg["detail"], **detail}
        ref = detail.get("trade_no") or leg.get("provider_ref")
        self._store.write(lambda db: db.execute(
            "UPDATE payments SET state = ?, detail = ?, provider_ref = ?, updated_at_ms = ? WHERE payment_id = ?",
            [state, json.dumps(merged, ensure_ascii=False), ref, now, leg["payment_id"]]))
        leg["state"], leg["detail"] = state, merged

    def _set_saga(self, saga_id: str, state: str, reason: str | None = None) -> None:
        now = self.agent.clock.now_ms()
        self._store.write(lambda db: db.execute(
            "UPDATE payment_sagas SET state = ?, reason = COALESCE(?, reason), updated_at_ms = ? WHERE saga_id = ?",
            [state, reason, now, saga_id]))

    def _crash(self, step: str) -> None:
        if self.crash_at == step:
            import os
            import signal

            os.kill(os.getpid(), signal.SIGKILL)

    def _run(self, saga: dict[str, Any]) -> None:
        legs = self._legs(saga["saga_id"])
        for leg in legs:
            if leg["tender"] in SYNC_TENDERS and leg["state"] == "intent":
                self._crash("before_sync_leg")
                self._capture_sync(leg)
                self._crash("after_sync_leg")
                if leg["state"] == "failed":
                    self._set_saga(saga["saga_id"], "compensating", leg["detail"].get("error"))
                    return
                if leg["state"] == "intent":
                    return  # unknown outcome: nothing async starts before the sync legs are settled
        for leg in legs:
            if leg["tender"] in ASYNC_TENDERS and leg["state"] in ("intent", "pending"):
                self._crash("before_async_leg")
                self._start_async(leg)
                self._crash("after_async_leg")
        if any(leg["state"] == "failed" for leg in legs):
            failed = next(leg for leg in legs if leg["state"] == "failed")
            self._set_saga(saga["saga_id"], "compensating", failed["detail"].get("error"))
        elif all(leg["state"] == "confirmed" for leg in legs):
            self._crash("before_finalize")
            self._finalize(saga, legs)

    def _capture_sync(self, leg: dict[str, Any]) -> None:
        if leg["tender"] == "cash":
            self._set_leg(leg, "confirmed")
            return
        member_id = leg["detail"]["member_id"]
        gw = self.checkout.gateway
        if gw is not None and self.agent.online:
            try:
                balance = gw.stored_value("debit", out_id=leg["payment_id"], member_id=member_id,
                                          amount_fen=leg["amount_fen"])
            except GatewayRejected as exc:
                self._set_leg(leg, "failed", error=f"stored value refused: {exc}")
                return
            except GatewayUnavailable:
                return  # outcome unknown: the leg stays 'intent'; the sentinel repeats it (same id)
            else:
                self._store.write(lambda db: db.execute(
                    "UPDATE members SET balance_fen = ? WHERE member_id = ?", [balance, member_id]))
                self._set_leg(leg, "confirmed", balance_fen=balance)
                return
        if not self.agent.config.checkout.offline_stored_value:
            self._set_leg(leg, "failed", error="stored value needs the trade center (offline)")
            return
        amount = leg["amount_fen"]

        def tx(db: sqlite_utils.Database) -> bool:
            row = db.execute("SELECT balance_fen FROM members WHERE member_id = ?", [member_id]).fetchone()
            if row is None or row[0] < amount:
                return False
            db.execute("UPDATE members SET balance_fen = balance_fen - ? WHERE member_id = ?", [amount, member_id])
            return True

        if self._store.write(tx):
            # spent against the cached balance; the sentinel debits the center (same id) once it answers
            self._set_leg(leg, "confirmed", offline=True, center_synced=False)
        else:
            self._set_leg(leg, "failed", error="insufficient stored value (cached balance, offline)")

    def sync_offline_stored_value(self) -> None:
        """Debit at the center what was spent offline against the cached balance (idempotent by leg id)."""
        gw = self.checkout.gateway
        if gw is None or not self.agent.online:
            return
        with self._lock:
            self._sync_offline(gw)

    def _sync_offline(self, gw: Any) -> None:
        for leg in self._store.query("SELECT * FROM payments WHERE tender = 'stored_value' AND state IN"
                                     " ('confirmed', 'duplicate') AND detail LIKE '%\"center_synced\": false%'"):
            leg["detail"] = json.loads(leg["detail"])
            try:
                balance = gw.stored_value("debit", out_id=leg["payment_id"], member_id=leg["detail"]["member_id"],
                                          amount_fen=leg["amount_fen"])
            except GatewayUnavailable:
                return
            except GatewayRejected as exc:
                log.error("offline stored-value spend %s refused by the center: %s", leg["payment_id"], exc)
                self._set_leg(leg, leg["state"], center_synced="refused", sync_error=str(exc))
                self.agent.bus.publish("payment.alert", {"payment_id": leg["payment_id"], "order_id": leg["order_id"],
                                                         "reason": f"offline stored value refused: {exc}"})
                continue
            self._set_leg(leg, leg["state"], center_synced=True, balance_fen=balance)

    def _start_async(self, leg: dict[str, Any]) -> None:
        gw = self.checkout.gateway
        if gw is None:
            self._set_leg(leg, "failed", error="no trade center configured")
            return
        pid = leg["payment_id"]
        code = self._auth_codes.pop(pid, None)
        try:
            if leg["tender"] == "qr_scan" and code is None:
                # after a restart the customer's code is gone (never stored): only the center can tell
                result = gw.query_trade(pid)
                if result is None:
                    self._set_leg(leg, "failed", error="payment code not sent before a restart: scan again")
                    return
            elif leg["state"] == "pending":
                result = gw.query_trade(pid)
                if result is None:
                    return
            else:
                result = gw.gopay(out_trade_no=pid, order_id=leg["order_id"], amount_fen=leg["amount_fen"],
                                  channel=CHANNEL[leg["tender"]], auth_code=code)
        except GatewayRejected as exc:
            self._set_leg(leg, "failed", error=f"payment refused: {exc}")
            return
        except GatewayUnavailable as exc:
            if code is not None:
                self._auth_codes[pid] = code  # may retry with the same code while it is valid
            log.info("payment %s: outcome unknown (%s); the sentinel will ask again", pid, exc)
            return
        self._apply_trade(leg, result.status, result.amount_fen, trade_no=result.trade_no, pay_url=result.pay_url)

    def _apply_trade(self, leg: dict[str, Any], status: str, amount_fen: int, **detail: Any) -> None:
        if status == "success":
            if amount_fen != leg["amount_fen"]:
                self._set_leg(leg, "failed", error=f"center reports {amount_fen} fen, expected {leg['amount_fen']}",
                              **detail)
            else:
                self._set_leg(leg, "confirmed", **detail)
        elif status in ("failed", "closed"):
            self._set_leg(leg, "failed", error=f"payment {status}", **detail)
        elif leg["state"] == "intent" or detail.get("pay_url"):
            self._set_leg(leg, "pending", **{k: v for k, v in detail.items() if v})
        if leg["state"] == "pending" and leg["detail"].get("pay_url"):
            self.agent.bus.publish("payment.qr", {"order_id": leg["order_id"], "payment_id": leg["payment_id"],
                                                  "pay_url": leg["detail"]["pay_url"], "amount_fen": leg["amount_fen"]})

    # ------------------------------------------------------------ finalize
    def _finalize(self, saga: dict[str, Any], legs: list[dict[str, Any]]) -> None:
        order_id, now = saga["order_id"], self.agent.clock.now_ms()
        quote_row = self._store.query_one("SELECT detail FROM quotes WHERE quote_id = ?", (saga["quote_id"],))
        quote = json.loads(quote_row["detail"]) if quote_row else {}

        def tx(db: sqlite_utils.Database) -> str:
            state = db.execute("SELECT state, member_id, kind FROM orders WHERE order_id = ?", [order_id]).fetchone()
            if state[0] == "paid":
                return "duplicate"
            db.execute("UPDATE payment_sagas SET state = 'paid', updated_at_ms = ? WHERE saga_id = ?",
                       [now, saga["saga_id"]])
            db.execute("UPDATE orders SET state = 'paid', paid_at_ms = ?, updated_at_ms = ? WHERE order_id = ?",
                       [now, now, order_id])
            db.execute("UPDATE quotes SET state = 'used' WHERE quote_id = ?", [saga["quote_id"]])
            db.execute("UPDATE fills SET state = 'paid' WHERE order_id = ? AND state = 'claimed'", [order_id])
            member_id = state[1]
            if member_id:
                held = db.execute("SELECT points FROM points_holds WHERE order_id = ? AND state = 'held'",
                                  [order_id]).fetchone()
                used = int(held[0]) if held else 0
                db.execute("UPDATE points_holds SET state = 'settled' WHERE order_id = ?", [order_id])
                earned = int(quote.get("points_earned", 0))
                db.execute("UPDATE members SET points = points - ? + ? WHERE member_id = ?", [used, earned, member_id])
                if used or earned:
                    enqueue(db, event_id=f"points:{order_id}", aggregate="member", aggregate_id=member_id,
                            kind="member.points_settled", payload={"member_id": member_id, "order_id": order_id,
                                                            "used": used, "earned": earned}, now_ms=now)
            if quote.get("coupon_id"):
                db.execute("UPDATE coupons SET state = 'settling' WHERE coupon_id = ?", [quote["coupon_id"]])
            payments = [{k: leg[k] for k in ("payment_id", "leg_no", "tender", "amount_fen", "provider_ref")}
                        for leg in legs]
            order = dict(zip([d[0] for d in db.execute("SELECT * FROM orders WHERE order_id = ?",
                                                       [order_id]).description],
                             db.execute("SELECT * FROM orders WHERE order_id = ?", [order_id]).fetchone(),
                             strict=True))
            order.pop("request_key", None)
            order["quote"] = quote
            order["payments"] = payments
            enqueue(db, event_id=f"order:{order_id}:paid", aggregate="order", aggregate_id=order_id,
                    kind="order.paid", payload=order, now_ms=now)
            db.execute("INSERT INTO print_jobs(order_id, created_at_ms) VALUES (?, ?)", [order_id, now])
            return "paid"

        outcome = self._store.write(tx)
        if outcome == "duplicate":
            self._set_saga(saga["saga_id"], "compensating", "order already paid by another payment")
            for leg in legs:
                self._set_leg(leg, "duplicate")
            self._compensate(self._saga(saga["saga_id"]))
            self.agent.bus.publish("payment.duplicate", {"order_id": order_id, "saga_id": saga["saga_id"]})
            return
        self._crash("after_finalize")
        self.settle_coupons()
        order = self.agent.orders.get(order_id)
        self.agent.bus.publish("order.paid", order)
        self.checkout.on_paid(order)

    def settle_coupons(self) -> None:
        gw = self.checkout.gateway
        for c in self._store.query("SELECT c.coupon_id, c.locked_by_order FROM coupons c WHERE c.state = 'settling'"):
            quote = self._store.query_one("SELECT quote_id FROM quotes WHERE order_id = ? AND state = 'used'",
                                          (c["locked_by_order"],))
            if gw is None or quote is None:
                continue
            try:
                gw.coupon("settle", coupon_id=c["coupon_id"], out_id=quote["quote_id"])
            except GatewayUnavailable:
                continue
            except GatewayRejected as exc:
                log.error("coupon %s settle refused: %s", c["coupon_id"], exc)
            self._mark_coupon_settled(str(c["coupon_id"]))

    def _mark_coupon_settled(self, coupon_id: str) -> None:
        self._store.write(lambda db: db.execute("UPDATE coupons SET state = 'settled' WHERE coupon_id = ?",
                                                [coupon_id]))

    # ------------------------------------------------------------ compensate
    def _compensate(self, saga: dict[str, Any]) -> None:
        legs = self._legs(saga["saga_id"])
        open_legs = False
        for leg in reversed(legs):
            state = leg["state"]
            if state in ("failed", "compensated"):
                continue
            if leg["tender"] in ASYNC_TENDERS and state in ("intent", "pending"):
                if state == "pending" or self._auth_codes.get(leg["payment_id"]):
                    self._start_async(leg)
                else:
                    self._query_unknown(leg)
                state = leg["state"]
                if state in ("intent", "pending"):
                    open_legs = True  # still unknown: ask again later, never assume
                    continue
                if state == "failed":
                    continue
            if state in ("confirmed", "duplicate") and not self._undo(leg):
                open_legs = True
        if not open_legs:
            final = "paid" if self._saga(saga["saga_id"])["state"] == "paid" else "failed"
            if final == "failed":
                self._set_saga(saga["saga_id"], "failed")
                self.agent.bus.publish("payment.failed", {"order_id": saga["order_id"], "saga_id": saga["saga_id"],
                                                          "reason": self._saga(saga["saga_id"])["reason"]})

    def _query_unknown(self, leg: dict[str, Any]) -> None:
        gw = self.checkout.gateway
        if gw is None:
            self._set_leg(leg, "failed", error="no trade center")
            return
        try:
            result = gw.query_trade(leg["payment_id"])
        except GatewayUnavailable:
            return
        if result is None:
            self._set_leg(leg, "failed", error="never reached the center")
        else:
            self._apply_trade(leg, result.status, result.amount_fen, trade_no=result.trade_no)

    def _undo(self, leg: dict[str, Any]) -> bool:
        """Give one taken leg back; True when done (or nothing to do)."""
        duplicate = leg["state"] == "duplicate"
        gw = self.checkout.gateway
        key = f"{leg['payment_id']}:undo"
        try:
            if leg["tender"] == "cash":
                pass  # the cashier hands the cash back; the record says so
            elif leg["tender"] == "stored_value":
                member_id = leg["detail"]["member_id"]
                if gw is None or not self.agent.online:
                    return False  # the center owns the balance: undo when it answers
                if leg["detail"].get("center_synced") is False:
                    # spent offline: make the debit real first (idempotent), so debit and credit always pair
                    gw.stored_value("debit", out_id=leg["payment_id"], member_id=member_id,
                                    amount_fen=leg["amount_fen"])
                    leg["detail"]["center_synced"] = True
                balance = gw.stored_value("credit", out_id=key, member_id=member_id, amount_fen=leg["amount_fen"])
                self._store.write(lambda db: db.execute(
                    "UPDATE members SET balance_fen = ? WHERE member_id = ?", [balance, member_id]))
            else:
                if gw is None:
                    return False
                gw.refund(out_refund_no=key, out_trade_no=leg["payment_id"], amount_fen=leg["amount_fen"],
                          reason="combined payment failed" if not duplicate else "duplicate payment")
        except GatewayUnavailable:
            return False
        except GatewayRejected as exc:
            log.error("undo of %s refused: %s", leg["payment_id"], exc)
            self._set_leg(leg, leg["state"], undo_error=str(exc))
            return False
        self._set_leg(leg, "compensated" if not duplicate else "duplicate", undone=True,
                      **({"returned_cash_fen": leg["amount_fen"]} if leg["tender"] == "cash" else {}))
        if duplicate:
            self._store.write(lambda db: db.execute(
                "UPDATE payments SET state = 'duplicate' WHERE payment_id = ?", [leg["payment_id"]]))
        return True

    # ------------------------------------------------------------ results and the sentinel
    def on_trade_result(self, out_trade_no: str, status: str, amount_fen: int, trade_no: str = "") -> None:
        """The center's notify (MQTT or HTTP): the success watershed."""
        with self._lock:
            row = self._store.query_one("SELECT * FROM payments WHERE payment_id = ?", (out_trade_no,))
            if row is None:
                log.warning("result for unknown payment %s ignored", out_trade_no)
                return
            row["detail"] = json.loads(row["detail"])
            saga = self._saga(row["saga_id"])
            if row["state"] in ("intent", "pending"):
                self._apply_trade(row, status, amount_fen, trade_no=trade_no)
                self.advance(saga["saga_id"])
            elif row["state"] in ("failed", "compensated") and status == "success" and not row["detail"].get(
                    "late_success_refunded"):
                # success after we gave up: a duplicate capture, refunded automatically
                self._set_leg(row, "duplicate", late_success_refunded=True, trade_no=trade_no)
                if self._undo(row):
                    self.agent.bus.publish("payment.duplicate", {"order_id": row["order_id"],
                                                                 "payment_id": out_trade_no})

    def sentinel_tick(self) -> None:
        """Re-check everything in doubt until consistent (called periodically and at start)."""
        for s in self._store.query("SELECT saga_id FROM payment_sagas WHERE state IN ('running', 'compensating')"):
            try:
                self.advance(s["saga_id"])
            except Exception:  # one broken saga never stops the others
                log.exception("sentinel: saga %s", s["saga_id"])
        for d in self._store.query("SELECT * FROM payments WHERE state = 'duplicate' AND detail NOT LIKE"
                                   " '%\"undone\": true%'"):
            d["detail"] = json.loads(d["detail"])
            self._undo(d)
        self.sync_offline_stored_value()
        self.settle_coupons()

    def status(self, saga_id: str) -> dict[str, Any]:
        saga = self._saga(saga_id)
        legs = self._legs(saga_id)
        return {"saga_id": saga_id, "order_id": saga["order_id"], "state": saga["state"], "reason": saga["reason"],
                "legs": [{"payment_id": leg["payment_id"], "tender": leg["tender"], "amount_fen": leg["amount_fen"],
                          "state": leg["state"], **{k: v for k, v in leg["detail"].items()
                                                   if k in ("change_fen", "given_fen", "pay_url", "error",
                                                            "returned_cash_fen", "offline")}}
                         for leg in legs]}

    def latest(self, order_id: str) -> dict[str, Any]:
        row = self._store.query_one("SELECT saga_id FROM payment_sagas WHERE order_id = ? ORDER BY created_at_ms DESC,"
                                    " rowid DESC LIMIT 1", (order_id,))
        if row is None:
            raise NotFound(f"order {order_id} has no payment", code="unknown_payment")
        return self.status(row["saga_id"])
