"""一键加油 (mobile orders) and 无感支付 (plate-linked pay): sales that start outside the shop.

Mobile order: the center releases "order X, nozzle N, grade G, up to amount A"
(``agent.inbox_effects`` stores it once per order id, expiry included).  The
agent checks the nozzle and grade, then releases it to the pump — by itself
when ``policy.auto_release_mobile`` is on, else when the cashier confirms — as
an authorization with an amount preset.  An expired release never authorizes
a pump; a cancel is refused once fuelling started.  After the fill, the actual
figures go to the center (post-deduct: the app is charged what was taken).

Plate pay: a member's plate (typed by the cashier or reported by a plate
camera through the API) is bound to a pump; when that pump's next fill ends,
the agent sells it to the member and charges the agreed account (tender
``plate_pay``) without the customer coming in.  A failed charge leaves the
fill unpaid on the pump for the cashier, with a clear event.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import sqlite_utils

from agent.errors import AgentError, Conflict, InvalidRequest, NotFound, Unavailable
from agent.service import Agent
from agent.store import Store
from agent.store.records import add_audit, enqueue

log = logging.getLogger(__name__)

__all__ = ["MobileOrders", "PlatePay"]


class MobileOrders:
    def __init__(self, checkout: Any) -> None:
        self.checkout = checkout
        self.agent: Agent = checkout.agent
        self._store: Store = self.agent.store
        self._lock = threading.Lock()

    def list(self, state: str | None = None) -> list[dict[str, Any]]:
        if state:
            return self._store.query("SELECT * FROM mobile_orders WHERE state = ? ORDER BY created_at_ms", (state,))
        return self._store.query("SELECT * FROM mobile_orders ORDER BY created_at_ms DESC LIMIT 200")

    def get(self, order_id: str) -> dict[str, Any]:
        row = self._store.query_one("SELECT * FROM mobile_orders WHERE order_id = ?", (order_id,))
        if row is None:
            raise NotFound(f"no mobile order {order_id}", code="unknown_mobile_order")
        return row

    def on_released(self, order_id: str) -> None:
        """The center's release was stored: release it to the pump now, or let the cashier decide."""
        if self.agent.config.policy.auto_release_mobile:
            try:
                self.release(order_id, actor="auto-release")
            except AgentError as exc:
                self.agent.bus.publish("mobile_order.refused", {"order_id": order_id, "reason": exc.message})
        else:
            self.agent.bus.publish("mobile_order.waiting", self.get(order_id))

    def _pump_for(self, gun: int) -> tuple[int, str]:
        fc = self.agent.forecourt
        if fc is None:
            raise Unavailable("the pump controller is not running", code="no_pumps")
        for p in fc.pumps():
            for n in p["nozzles"]:
                if n["number"] == gun:
                    return int(p["pump_id"]), str(n["grade"])
        raise InvalidRequest(f"no nozzle {gun} at this station", code="unknown_nozzle")

    def release(self, order_id: str, *, actor: str) -> dict[str, Any]:
        with self._lock:  # one release per order, even when the cashier taps twice
            mo = self.get(order_id)
            if mo["state"] == "fuelling":
                return mo
            if mo["state"] != "released":
                raise Conflict(f"mobile order {order_id} is {mo['state']}", code="mobile_order_closed",
                               state=mo["state"])
            now = self.agent.clock.now_ms()
            if mo["expires_at_ms"] is not None and now > mo["expires_at_ms"]:
                self._close(order_id, "cancelled", "release expired")
                raise Conflict(f"the release of mobile order {order_id} expired", code="release_expired")
            try:
                pump_id, grade = self._pump_for(int(mo["nozzle"]))
                if grade != mo["grade"]:
                    raise InvalidRequest(f"nozzle {mo['nozzle']} sells {grade}, the order is for {mo['grade']}",
                                         code="grade_mismatch")
            except InvalidRequest as exc:
                self._close(order_id, "cancelled", exc.message)
                raise
            fill = self.agent.forecourt.authorize(pump_id, nozzles=(int(mo["nozzle"]),),
                                                  preset_amount_fen=int(mo["max_amount_fen"]), actor=actor,
                                                  order_id=f"mobile:{order_id}")
            self._store.write(lambda db: db.execute(
                "UPDATE mobile_orders SET state = 'fuelling', updated_at_ms = ? WHERE order_id = ?", [now, order_id]))
        self.agent.bus.publish("mobile_order.released", {"order_id": order_id, "pump_id": pump_id,
                                                         "fill_id": fill["fill_id"]})
        return self.get(order_id)

    def cancel(self, order_id: str, *, actor: str) -> dict[str, Any]:
        mo = self.get(order_id)
        if mo["state"] not in ("released", "cancelled"):
            raise Conflict("fuelling already started: the mobile order cannot be cancelled", code="fuelling_started")
        self._close(order_id, "cancelled", f"cancelled by {actor}")
        return self.get(order_id)

    def _close(self, order_id: str, state: str, reason: str) -> None:
        now = self.agent.clock.now_ms()

        def tx(db: sqlite_utils.Database) -> None:
            db.execute("UPDATE mobile_orders SET state = ?, updated_at_ms = ? WHERE order_id = ?",
                       [state, now, order_id])
            enqueue(db, event_id=f"mobile:{order_id}:{state}", aggregate="mobile_order", aggregate_id=order_id,
                    kind=f"mobile_order.{state}", payload={"order_id": order_id, "reason": reason}, now_ms=now)

        self._store.write(tx)
        self.agent.bus.publish(f"mobile_order.{state}", {"order_id": order_id, "reason": reason})

    def on_fill_finished(self, fill: dict[str, Any]) -> bool:
        """A fill of a mobile order ended: report the actual figures (post-deduct).  False if not ours."""
        link = str(fill.get("order_id") or "")
        if not link.startswith("mobile:"):
            return False
        order_id = link.removeprefix("mobile:")
        now = self.agent.clock.now_ms()

        def tx(db: sqlite_utils.Database) -> None:
            db.execute("UPDATE mobile_orders SET state = 'done', updated_at_ms = ? WHERE order_id = ?",
                       [now, order_id])
            # a zero fill (nobody fuelled) carries no nozzle of its own: the order's released one
            mo = db.execute("SELECT nozzle, grade FROM mobile_orders WHERE order_id = ?", [order_id]).fetchone()
            enqueue(db, event_id=f"mobile:{order_id}:filled", aggregate="mobile_order", aggregate_id=order_id,
                    kind="mobile_order.filled", payload={
                        "order_id": order_id, "fill_id": fill["fill_id"],
                        "nozzle": fill["nozzle"] if fill["nozzle"] is not None or mo is None else mo[0],
                        "grade": fill["grade"] if fill["grade"] is not None or mo is None else mo[1],
                        "volume_ml": int(fill["volume_ml"] or 0), "amount_fen": int(fill["amount_fen"] or 0),
                        "price_fen": fill["price_fen"]}, now_ms=now)

        self._store.write(tx)
        self.agent.bus.publish("mobile_order.done", {"order_id": order_id, "amount_fen": int(fill["amount_fen"] or 0),
                                                     "volume_ml": int(fill["volume_ml"] or 0)})
        return True


class PlatePay:
    def __init__(self, checkout: Any) -> None:
        self.checkout = checkout
        self.agent: Agent = checkout.agent
        #: pump -> member; kept in memory only: after a restart the cashier sells the fill
        self._bound: dict[int, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def bind(self, pump_id: int, plate: str, *, actor: str) -> dict[str, Any]:
        plate = plate.strip().upper()
        if not 5 <= len(plate) <= 10:
            raise InvalidRequest("plate: expected 5 to 10 characters, e.g. 粤B12345", code="bad_plate")
        if self.agent.forecourt is None:
            raise Unavailable("the pump controller is not running", code="no_pumps")
        self.agent.forecourt.pump(pump_id)
        self.agent.require_online("plate-linked pay")
        member = self.checkout.lookup_member(plate=plate)
        with self._lock:
            self._bound[pump_id] = {"member_id": member["member_id"], "plate": plate, "name": member["name"]}
        now = self.agent.clock.now_ms()
        self.agent.store.write(lambda db: add_audit(db, at_ms=now, actor=actor, action="plate.bind",
                                                    target=f"pump:{pump_id}", after={"plate": plate}))
        self.agent.bus.publish("plate.bound", {"pump_id": pump_id, "plate": plate, "member": member["name"]})
        return {"pump_id": pump_id, **self._bound[pump_id]}

    def unbind(self, pump_id: int) -> None:
        with self._lock:
            self._bound.pop(pump_id, None)

    def on_fill_finished(self, fill: dict[str, Any]) -> bool:
        """Sell a finished postpay fill to the member bound to its pump; False when none is bound."""
        with self._lock:
            bound = self._bound.pop(int(fill["pump_id"]), None)
        if bound is None or fill.get("order_id") or fill.get("state") != "finished":
            return False
        co = self.checkout
        order = None
        try:
            order = co.create_order([{"kind": "fuel", "fill_id": fill["fill_id"]}], cashier="plate-pay",
                                    member_id=bound["member_id"])
            quote = co.confirm(order["order_id"])
            result = co.pay(order["order_id"], quote_id=quote["quote_id"], actor="plate-pay",
                            tenders=[{"tender": "plate_pay", "amount_fen": quote["payable_fen"]}])
        except AgentError as exc:
            if order is not None:
                try:
                    co.cancel(order["order_id"], actor="plate-pay", reason=f"plate pay failed: {exc.message}")
                except AgentError:
                    log.exception("plate pay: could not release order %s", order["order_id"])
            self.agent.bus.publish("plate_pay.failed", {"pump_id": fill["pump_id"], "fill_id": fill["fill_id"],
                                                        "plate": bound["plate"], "reason": exc.message})
            return True
        self.agent.bus.publish("plate_pay.started", {"pump_id": fill["pump_id"], "order_id": order["order_id"],
                                                     "plate": bound["plate"], "state": result["state"]})
        return True
