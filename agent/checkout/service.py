"""Checkout service: fuel and shop lines, member, live quote, freezing it.

Every change (line added or removed, member set, coupon or points chosen)
recomputes the best quote and stores it on the order, so both screens always
show what payment will charge.  ``confirm`` freezes it (quote id + expiry),
locks the coupon at the center and holds the points; payment then charges
exactly the frozen amount (``agent.checkout.saga``).

A fill belongs to at most one open order: claiming it is a conditional
update inside the order's write transaction (two cashiers cannot sell it
twice).  Cancelling or timing out an order releases its fills, coupon lock
and points hold.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from typing import Any

import sqlite_utils
from pydantic import ValidationError

from agent.checkout.pricing import CouponInfo, PricingError, PricingLine, Quote, Rule, best_quote
from agent.config import PromotionConf
from agent.errors import Conflict, InvalidRequest, NotFound, Unavailable
from agent.ports import CenterGateway, GatewayRejected, GatewayUnavailable
from agent.service import Agent
from agent.store.records import add_audit, enqueue

log = logging.getLogger(__name__)

__all__ = ["CheckoutService"]


class CheckoutService:
    def __init__(self, agent: Agent, gateway: CenterGateway | None = None) -> None:
        from agent.cashiers import CashierService
        from agent.checkout.invoices import InvoiceService
        from agent.checkout.refunds import RefundService
        from agent.checkout.saga import PaymentSagas

        self.agent = agent
        self.gateway = gateway
        self._store = agent.store
        self._cfg = agent.config
        agent.checkout = self
        agent.orders.fuel_claimer = self._claim_fill
        from agent.checkout.mobile import MobileOrders, PlatePay

        self.sagas = PaymentSagas(self)
        self.mobile = MobileOrders(self)
        self.plate = PlatePay(self)
        self.refunds = RefundService(self)
        self.invoices = InvoiceService(self)
        self.cashiers = CashierService(agent.store, agent.clock)
        self.cashiers.bootstrap(list(agent.config.cashiers))
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # ------------------------------------------------------------ lifecycle
    def start(self, *, sentinel_s: float = 5.0) -> None:
        """Recover open sagas, then run the sentinel and the fill listener in the background."""
        self._sub = self.agent.bus.subscribe(maxsize=10_000)
        for target, name in ((self._listen, "checkout-fills"), (lambda: self._sentinel(sentinel_s), "sentinel")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)

    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=5)

    def _sentinel(self, every_s: float) -> None:
        # after a (re)start, give sync a moment to find the center, so open sagas resume online
        for _ in range(50):
            if self.agent.online or self._stop.wait(0.2):
                break
        while True:
            try:
                self.sweep()
            except Exception:  # the sentinel must survive anything
                log.exception("sentinel sweep failed")
            if self._stop.wait(every_s):
                return

    def sweep(self) -> None:
        """One sentinel round: open sagas, duplicates, coupon settles, pending refunds and invoices, order timeouts."""
        self.sagas.sentinel_tick()
        self.refunds.retry_pending()
        self.invoices.retry_pending()
        self.expire_orders()

    def _listen(self) -> None:
        while not self._stop.is_set():
            ev = self._sub.get(timeout=0.5)
            if ev is None:
                continue
            try:
                if ev.topic == "fill.finished":
                    if self.mobile.on_fill_finished(ev.data):
                        continue
                    if ev.data.get("order_id"):
                        self._settle_prepaid_fill(ev.data)
                    else:
                        self.plate.on_fill_finished(ev.data)
                elif ev.topic == "fill.zero" and self.agent.forecourt is not None:
                    # nothing delivered (hung up without fuel, authorization expired or refused): a paid
                    # prepay is refunded in full, a mobile order reports 0 so the center refunds it
                    fill = self.agent.forecourt.fill(str(ev.data["fill_id"]))
                    if fill.get("order_id") and not self.mobile.on_fill_finished(fill):
                        self._settle_prepaid_fill(fill)
                elif ev.topic == "center.mobile_order.release" and ev.data.get("status") == "applied":
                    self.mobile.on_released(str((ev.data.get("result") or {}).get("order_id")))
                elif ev.topic == "sync.link" and ev.data.get("link") == "center" and ev.data.get("up"):
                    self.sweep()  # the center is back: settle what waited for it now
                elif ev.topic == "center.payment.result" and ev.data.get("status") == "applied":
                    self._on_center_result(ev.data.get("result") or {})
                elif ev.topic == "center.config.prices" and ev.data.get("status") == "applied" \
                        and self.agent.forecourt is not None:
                    self.agent.forecourt.prices.ensure_initial()  # reload the newest version
                    self.agent.forecourt.apply_prices_to_idle()
            except Exception:
                log.exception("handling %s failed", ev.topic)

    # ------------------------------------------------------------ create
    def create_order(self, lines: list[dict[str, Any]], *, cashier: str | None, member_id: str | None = None,
                     request_key: str | None = None) -> dict[str, Any]:
        from agent.orders import LineRequest

        reqs = []
        for i, ln in enumerate(lines):
            if ln.get("kind") == "item" and ln.get("sku") and ln.get("unit_price_fen") is None:
                item = self._item(str(ln["sku"]))
                if item is None:
                    raise NotFound(f"lines[{i}]: no item with barcode/PLU {ln['sku']!r}", code="unknown_item",
                                   sku=ln["sku"])
                ln = {**ln, "sku": item["sku"], "name": item["name"], "unit_price_fen": int(item["price_fen"])}
            reqs.append(LineRequest(**ln))
        if member_id is not None:
            self.member(member_id)
        order = self.agent.orders.create(reqs, cashier=cashier, request_key=request_key, member_id=member_id)
        return self.reprice(order["order_id"]) if order["state"] == "init" else order

    # ------------------------------------------------------------ pay / refund
    def pay(self, order_id: str, *, quote_id: str, tenders: list[dict[str, Any]], actor: str,
            request_key: str | None = None) -> dict[str, Any]:
        return self.sagas.pay(order_id, quote_id=quote_id, tenders=tenders, actor=actor, request_key=request_key)

    def refund(self, order_id: str, *, amount_fen: int | None, reason: str, actor: str, supervisor_id: str | None,
               supervisor_pin: str | None, request_key: str | None = None) -> list[dict[str, Any]]:
        approved = self.cashiers.approve(supervisor_id, supervisor_pin)
        return self.refunds.refund(order_id, amount_fen=amount_fen, reason=reason, actor=actor, approved_by=approved,
                                   request_key=request_key)

    # ------------------------------------------------------------ prepay
    def prepay(self, pump_id: int, *, tenders: list[dict[str, Any]], actor: str, nozzle: int | None = None,
               preset_amount_fen: int | None = None, preset_volume_ml: int | None = None,
               member_id: str | None = None, request_key: str | None = None) -> dict[str, Any]:
        """Pay first, then authorize the pump with the preset; an underrun is refunded to the tender."""
        from agent.money import amount_for_volume
        from agent.orders import LineRequest

        fc = self.agent.forecourt
        if fc is None:
            raise Unavailable("the pump controller is not running", code="no_pumps")
        pump = fc.pump(pump_id)
        if (preset_amount_fen is None) == (preset_volume_ml is None):
            raise InvalidRequest("a prepay needs exactly one of preset_amount_fen or preset_volume_ml",
                                 code="bad_preset")
        guns = {n["number"]: n for n in pump["nozzles"]}
        if nozzle is not None and nozzle not in guns:
            raise InvalidRequest(f"pump {pump_id} has no nozzle {nozzle}", code="unknown_nozzle")
        if preset_volume_ml is not None:
            if nozzle is None:
                raise InvalidRequest("a prepay by volume needs the nozzle (its grade sets the price)",
                                     code="nozzle_required")
            price = fc.prices.current()["prices_fen"][guns[nozzle]["grade"]]
            amount = amount_for_volume(preset_volume_ml, price)
        else:
            amount = int(preset_amount_fen or 0)
        if pump["state"] not in ("idle", "calling") or pump["locked"] or pump["fill_id"]:
            raise Conflict(f"pump {pump_id} cannot take a prepay now ({pump['state']})", code="pump_busy")
        line = LineRequest(kind="amount", amount_fen=amount, name=f"预付 {pump_id}号机")
        order = self.agent.orders.create([line], cashier=actor, request_key=request_key, member_id=member_id,
                                         kind="prepay", prepay_pump_id=pump_id)
        if order["state"] != "init":
            return {"order": order, "payment": self.sagas.latest(order["order_id"])}
        self._store.write(lambda db: db.execute(
            "UPDATE order_lines SET volume_ml = ?, sku = ? WHERE order_id = ? AND line_no = 1",
            [preset_volume_ml or 0, str(nozzle) if nozzle else None, order["order_id"]]))
        self.reprice(order["order_id"])
        quote = self.confirm(order["order_id"])
        payment = self.pay(order["order_id"], quote_id=quote["quote_id"], tenders=tenders, actor=actor)
        return {"order": self.agent.orders.get(order["order_id"]), "payment": payment}

    def on_paid(self, order: dict[str, Any]) -> None:
        """After a payment commits: the pumps' unpaid counts change; a paid prepay authorizes its pump."""
        self.touch_pumps(order["order_id"])
        if order.get("kind") != "prepay" or self.agent.forecourt is None:
            return
        line = order["lines"][0]
        try:
            fill = self.agent.forecourt.authorize(
                int(order["prepay_pump_id"]), nozzles=(int(line["sku"]),) if line["sku"] else (),
                preset_volume_ml=line["volume_ml"] or None,
                preset_amount_fen=None if line["volume_ml"] else line["amount_fen"],
                actor=order.get("cashier") or "prepay", order_id=order["order_id"])
        except Exception as exc:
            log.error("prepay %s paid but the pump was not authorized: %s", order["order_id"], exc)
            self.agent.bus.publish("prepay.authorize_failed", {"order_id": order["order_id"], "reason": str(exc)})
            return
        self.agent.bus.publish("prepay.authorized", {"order_id": order["order_id"], "fill_id": fill["fill_id"]})

    def _on_center_result(self, data: dict[str, Any]) -> None:
        """A payment result pushed by the center over MQTT (deduplicated by the inbox)."""
        out_no, status, amount = data.get("out_trade_no"), data.get("status"), data.get("amount_fen")
        if not isinstance(out_no, str) or status not in ("success", "failed", "closed", "pending") or \
                isinstance(amount, bool) or not isinstance(amount, int):
            log.warning("payment result not understood: %r", data)
            return
        self.sagas.on_trade_result(out_no, str(status), amount, str(data.get("trade_no", "")))

    def _settle_prepaid_fill(self, fill: dict[str, Any]) -> None:
        order = self.agent.orders.get(str(fill["order_id"]))
        if order.get("kind") != "prepay" or order["state"] != "paid":
            return
        paid = order["payable_fen"]
        underrun = paid - int(fill["amount_fen"])
        done = self._store.query_one("SELECT 1 AS x FROM refunds WHERE order_id = ? AND reason = 'underrun'",
                                     (order["order_id"],))
        if underrun > 0 and done is None:
            refunds = self.refunds.refund(order["order_id"], amount_fen=underrun, reason="underrun",
                                          actor="system", approved_by=None)
            self.agent.bus.publish("prepay.underrun", {"order_id": order["order_id"], "amount_fen": underrun,
                                                       "refunds": refunds})

    # ------------------------------------------------------------ catalog & rules
    def catalog(self, query: str = "", limit: int = 50) -> list[dict[str, Any]]:
        items = self._catalog_items()
        q = query.strip().lower()
        if q:
            items = [i for i in items if q == i["sku"] or q == i.get("plu") or q in i["name"].lower()]
        return items[:limit]

    def _catalog_items(self) -> list[dict[str, Any]]:
        row = self._store.query_one("SELECT payload FROM config_versions WHERE name = 'catalog'")
        if row is not None:
            data = json.loads(row["payload"])
            items = data.get("items", data) if isinstance(data, dict) else data
            if isinstance(items, list):
                return [dict(i) for i in items if isinstance(i, dict)]
        return [c.model_dump() for c in self._cfg.catalog]

    def _item(self, sku: str) -> dict[str, Any] | None:
        return next((i for i in self._catalog_items() if i.get("sku") == sku or (i.get("plu") and i["plu"] == sku)),
                    None)

    def rules(self) -> list[Rule]:
        row = self._store.query_one("SELECT payload FROM config_versions WHERE name = 'promotions'")
        raw: list[dict[str, Any]] = []
        if row is not None:
            data = json.loads(row["payload"])
            raw = data.get("rules", data) if isinstance(data, dict) else data
        else:
            raw = [p.model_dump() for p in self._cfg.promotions]
        rules = []
        for r in raw if isinstance(raw, list) else []:
            try:  # the center's rules pass the same validation as the config's; a bad one is skipped
                rules.append(Rule(**PromotionConf.model_validate(r).model_dump()))
            except (ValidationError, TypeError) as exc:
                log.warning("promotion rule %r ignored: %s", r.get("id") if isinstance(r, dict) else r, exc)
        return rules

    # ------------------------------------------------------------ members
    def lookup_member(self, *, phone: str = "", card_no: str = "", plate: str = "") -> dict[str, Any]:
        if not (phone or card_no or plate):
            raise InvalidRequest("give a phone, card number or plate", code="no_member_key")
        if self.gateway is not None and self.agent.online:
            try:
                m = self.gateway.member_lookup(phone=phone, card_no=card_no, plate=plate)
            except GatewayUnavailable:
                m = None
                log.info("member lookup: center unavailable, using the cache")
            else:
                if m is None:
                    raise NotFound("no such member", code="no_member")
                self._cache_member(m)
                return self.member(str(m["member_id"]))
        row = self._store.query_one(
            "SELECT member_id FROM members WHERE (? != '' AND phone = ?) OR (? != '' AND card_no = ?) "
            "OR (? != '' AND plates LIKE ?)", (phone, phone, card_no, card_no, plate, f'%"{plate}"%'))
        if row is None:
            raise NotFound("no such member (offline: only cached members can be found)", code="no_member")
        return self.member(row["member_id"])

    def register_member(self, *, phone: str, name: str, plate: str | None = None, actor: str,
                        request_key: str | None = None) -> dict[str, Any]:
        """会员注册 at the counter: online only; the center creates the member, the station caches it.

        The registration's id (``out_id`` at the center) comes from the request key when there is one,
        so a repeat after a lost answer returns the same member; a phone that is already a member's is
        refused (``member_exists``).  Offline: refused (``offline``), nothing stored or sent.
        """
        phone, name = phone.strip(), name.strip()
        plate = (plate or "").strip().upper() or None
        if not re.fullmatch(r"1[0-9]{10}", phone):
            raise InvalidRequest("phone: 11 digits starting with 1", code="bad_phone")
        if not 1 <= len(name) <= 30:
            raise InvalidRequest("name: 1 to 30 characters", code="bad_name")
        if plate is not None and not 5 <= len(plate) <= 10:
            raise InvalidRequest("plate: expected 5 to 10 characters, e.g. 粤B12345", code="bad_plate")
        self.agent.require_online("member registration")
        if self.gateway is None:
            raise Unavailable("member registration needs the trade center, which is not configured",
                              code="offline", operation="member registration")
        out_id = f"{self._cfg.station.id}:{request_key}" if request_key else self.agent.ids.new_id()
        try:
            m = self.gateway.member_register(out_id=out_id, phone=phone, name=name, plate=plate)
        except GatewayRejected as exc:
            if exc.errno == 409:
                raise Conflict(f"phone {phone} already belongs to a member: look the member up",
                               code="member_exists", phone=phone) from None
            raise InvalidRequest(f"the trade center refused the registration: {exc}", code="member_refused") from None
        except GatewayUnavailable as exc:
            raise Unavailable(f"the trade center did not answer the registration ({exc}): ask again with the same"
                              " request_key", code="center_no_answer", operation="member registration") from None
        now = self.agent.clock.now_ms()
        member_id = str(m["member_id"])

        def tx(db: sqlite_utils.Database) -> None:
            known = db.execute("SELECT 1 FROM members WHERE member_id = ?", [member_id]).fetchone()
            self._upsert_member(db, m, now)
            if known is None:  # a repeated registration is not audited twice
                add_audit(db, at_ms=now, actor=actor, action="member.register", target=f"member:{member_id}",
                          after={"name": m.get("name", name), "phone": f"{phone[:3]}****{phone[-4:]}",
                                 "plate": plate})

        self._store.write(tx)
        member = self.member(member_id)
        self.agent.bus.publish("member.registered", {"member_id": member_id, "name": member["name"]})
        return member

    def _cache_member(self, m: dict[str, Any]) -> None:
        now = self.agent.clock.now_ms()
        self._store.write(lambda db: self._upsert_member(db, m, now))

    @staticmethod
    def _upsert_member(db: sqlite_utils.Database, m: dict[str, Any], now: int) -> None:
        """Inside a transaction: the member and its coupons as the center sent them (the cache)."""
        db.execute(
            "INSERT INTO members(member_id, name, level, phone, card_no, plates, balance_fen, points,"
            " updated_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT(member_id) DO UPDATE SET name = excluded.name,"
            " level = excluded.level, phone = excluded.phone, card_no = excluded.card_no,"
            " plates = excluded.plates, balance_fen = excluded.balance_fen, points = excluded.points,"
            " updated_at_ms = excluded.updated_at_ms",
            [m["member_id"], m.get("name", ""), m.get("level", "normal"), m.get("phone"), m.get("card_no"),
             json.dumps(m.get("plates", [])), int(m.get("balance_fen", 0)), int(m.get("points", 0)), now])
        for c in m.get("coupons", []) or []:
            db.execute(
                "INSERT INTO coupons(coupon_id, member_id, kind, value, min_spend_fen, state, updated_at_ms)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(coupon_id) DO UPDATE SET state = CASE WHEN"
                " coupons.state IN ('locked', 'settled') THEN coupons.state ELSE excluded.state END,"
                " updated_at_ms = excluded.updated_at_ms",
                [c["coupon_id"], m["member_id"], c.get("kind", "cash"), int(c["value"]),
                 int(c.get("min_spend_fen", 0)), c.get("state", "available"), now])

    def member(self, member_id: str) -> dict[str, Any]:
        m = self._store.query_one("SELECT * FROM members WHERE member_id = ?", (member_id,))
        if m is None:
            raise NotFound(f"no member {member_id}", code="no_member")
        m["plates"] = json.loads(m["plates"])
        held = self._store.query_one("SELECT COALESCE(SUM(points), 0) AS p FROM points_holds WHERE member_id = ?"
                                     " AND state = 'held'", (member_id,))
        m["points_available"] = m["points"] - int(held["p"] if held else 0)
        m["coupons"] = self._store.query("SELECT coupon_id, kind, value, min_spend_fen, state FROM coupons"
                                         " WHERE member_id = ? ORDER BY coupon_id", (member_id,))
        return m

    # ------------------------------------------------------------ order editing
    def add_fuel(self, order_id: str, fill_id: str) -> dict[str, Any]:
        def tx(db: sqlite_utils.Database) -> tuple[str, str] | None:
            released = self._require_open(db, order_id)
            self._claim_fill(db, order_id, fill_id)
            return released

        self._release_remote(self._store.write(tx))
        return self.reprice(order_id)

    def _claim_fill(self, db: sqlite_utils.Database, order_id: str, fill_id: str) -> None:
        row = db.execute("SELECT state, order_id, nozzle, grade, volume_ml, amount_fen, price_fen, pump_id"
                         " FROM fills WHERE fill_id = ?", [fill_id]).fetchone()
        if row is None:
            raise NotFound(f"no fill {fill_id}", code="unknown_fill")
        if row[0] == "claimed" and row[1] == order_id:
            return
        if row[0] != "finished":
            holder = db.execute("SELECT cashier, receipt_no FROM orders WHERE order_id = ?", [row[1]]).fetchone() \
                if row[1] else None
            held = f" by {holder[0] or 'another terminal'} (receipt {holder[1]})" if holder else ""
            raise Conflict(f"fill {fill_id} is {row[0]}{held}: it cannot be sold", code="fill_not_available",
                           state=row[0], order_id=row[1], cashier=holder[0] if holder else None,
                           receipt_no=holder[1] if holder else None)
        cur = db.execute("UPDATE fills SET state = 'claimed', order_id = ? WHERE fill_id = ? AND state = 'finished'",
                         [order_id, fill_id])
        if cur.rowcount != 1:
            raise Conflict(f"fill {fill_id} was just taken by another order", code="fill_not_available")
        line_no = db.execute("SELECT COALESCE(MAX(line_no), 0) + 1 FROM order_lines WHERE order_id = ?",
                             [order_id]).fetchone()[0]
        name = f"{row[7]}号机 {row[2]}号枪 {row[3]}#"
        db.execute("INSERT INTO order_lines(order_id, line_no, kind, name, sku, fill_id, quantity, volume_ml,"
                   " unit_price_fen, amount_fen) VALUES (?, ?, 'fuel', ?, ?, ?, 1, ?, ?, ?)",
                   [order_id, line_no, name, row[3], fill_id, row[4], row[6] or 0, row[5]])

    def add_item(self, order_id: str, sku: str, quantity: int = 1) -> dict[str, Any]:
        item = self._item(sku)
        if item is None:
            raise NotFound(f"no item with barcode/PLU {sku!r}", code="unknown_item", sku=sku)
        if isinstance(quantity, bool) or not isinstance(quantity, int) or not 1 <= quantity <= 9999:
            raise InvalidRequest("quantity: expected 1..9999", code="bad_quantity")

        def tx(db: sqlite_utils.Database) -> tuple[str, str] | None:
            released = self._require_open(db, order_id)
            line_no = db.execute("SELECT COALESCE(MAX(line_no), 0) + 1 FROM order_lines WHERE order_id = ?",
                                 [order_id]).fetchone()[0]
            db.execute("INSERT INTO order_lines(order_id, line_no, kind, name, sku, quantity, unit_price_fen,"
                       " amount_fen) VALUES (?, ?, 'item', ?, ?, ?, ?, ?)",
                       [order_id, line_no, item["name"], item["sku"], quantity, int(item["price_fen"]),
                        int(item["price_fen"]) * quantity])
            return released

        self._release_remote(self._store.write(tx))
        return self.reprice(order_id)

    def remove_line(self, order_id: str, line_no: int) -> dict[str, Any]:
        def tx(db: sqlite_utils.Database) -> tuple[str, str] | None:
            released = self._require_open(db, order_id)
            row = db.execute("SELECT fill_id FROM order_lines WHERE order_id = ? AND line_no = ?",
                             [order_id, line_no]).fetchone()
            if row is None:
                raise NotFound(f"order {order_id} has no line {line_no}", code="unknown_line")
            if db.execute("SELECT COUNT(*) FROM order_lines WHERE order_id = ?", [order_id]).fetchone()[0] == 1:
                raise Conflict("the last line cannot be removed: cancel the order instead", code="last_line")
            db.execute("DELETE FROM order_lines WHERE order_id = ? AND line_no = ?", [order_id, line_no])
            if row[0]:
                db.execute("UPDATE fills SET state = 'finished', order_id = NULL WHERE fill_id = ?", [row[0]])
            return released

        self._release_remote(self._store.write(tx))
        return self.reprice(order_id)

    def set_member(self, order_id: str, member_id: str | None) -> dict[str, Any]:
        if member_id is not None:
            self.member(member_id)

        def tx(db: sqlite_utils.Database) -> tuple[str, str] | None:
            released = self._require_open(db, order_id)
            db.execute("UPDATE orders SET member_id = ? WHERE order_id = ?", [member_id, order_id])
            return released

        self._release_remote(self._store.write(tx))
        return self.reprice(order_id)

    def set_preferences(self, order_id: str, *, coupon_id: str | None = None, no_coupon: bool = False,
                        points: int = 0) -> dict[str, Any]:
        """Coupon / points chosen (also on the payment page): like any edit after confirmation, a frozen
        quote is voided and its coupon lock and points hold are given back (``_require_open``), so the
        next ``confirm`` freezes the new quote."""
        self._release_remote(self._store.write(lambda db: self._require_open(db, order_id)))
        return self.reprice(order_id, coupon_id=coupon_id, use_coupon=not no_coupon, points=points)

    @staticmethod
    def _require_open(db: sqlite_utils.Database, order_id: str) -> tuple[str, str] | None:
        """Inside a transaction: the order may still be edited.  An edit after confirmation voids the
        frozen quote and gives back its points hold and coupon lock here; returns ``(coupon, quote id)``
        for the caller to release at the center after the commit (``_release_remote``), else None."""
        row = db.execute("SELECT state FROM orders WHERE order_id = ?", [order_id]).fetchone()
        if row is None:
            raise NotFound(f"no order {order_id}", order_id=order_id)
        if row[0] != "init":
            raise Conflict(f"order {order_id} is {row[0]}", code="order_not_open", state=row[0])
        frozen = db.execute("SELECT quote_id, detail FROM quotes WHERE order_id = ? AND state = 'frozen'",
                            [order_id]).fetchone()
        running = db.execute("SELECT saga_id FROM payment_sagas WHERE order_id = ? AND state IN"
                             " ('running', 'compensating')", [order_id]).fetchone()
        if running is not None:
            raise Conflict("a payment is in progress for this order", code="payment_in_progress")
        if frozen is None:
            return None
        db.execute("UPDATE quotes SET state = 'released' WHERE quote_id = ?", [frozen[0]])
        db.execute("UPDATE points_holds SET state = 'released' WHERE order_id = ? AND state = 'held'", [order_id])
        locked = json.loads(frozen[1]).get("coupon_id")
        if not locked:
            return None
        db.execute("UPDATE coupons SET state = 'available', locked_by_order = NULL WHERE coupon_id = ?"
                   " AND locked_by_order = ? AND state = 'locked'", [locked, order_id])
        return str(locked), str(frozen[0])

    def _release_remote(self, released: tuple[str, str] | None) -> None:
        if released is not None:
            self._release_coupon(*released)

    # ------------------------------------------------------------ quote
    def compute(self, order_id: str, *, coupon_id: str | None = None, use_coupon: bool = True,
                points: int = 0) -> Quote:
        order = self.agent.orders.get(order_id)
        lines = [PricingLine(ln["line_no"], ln["kind"], ln["amount_fen"],
                             grade=ln["sku"] if ln["kind"] == "fuel" else None, volume_ml=ln["volume_ml"])
                 for ln in order["lines"]]
        level, balance, coupons = None, 0, []
        if order.get("member_id"):
            m = self.member(order["member_id"])
            level, balance = m["level"], m["points_available"]
            coupons = [CouponInfo(c["coupon_id"], f"券 {c['coupon_id']}", c["kind"], c["value"], c["min_spend_fen"])
                       for c in m["coupons"] if c["state"] == "available"]
        if order.get("kind") == "prepay":
            return best_quote(lines, [], use_coupon=False)
        co = self._cfg.checkout
        try:
            return best_quote(lines, self.rules(), level=level, coupons=coupons, coupon_id=coupon_id,
                              use_coupon=use_coupon, points_balance=balance, points_to_use=points,
                              point_value_fen=co.point_value_fen, max_points_percent=co.max_points_percent)
        except PricingError as exc:
            raise InvalidRequest(str(exc), code="pricing") from None

    def reprice(self, order_id: str, *, coupon_id: str | None = None, use_coupon: bool = True,
                points: int = 0) -> dict[str, Any]:
        quote = self.compute(order_id, coupon_id=coupon_id, use_coupon=use_coupon, points=points)
        prefs = {"coupon_id": coupon_id, "use_coupon": use_coupon, "points": points}

        def tx(db: sqlite_utils.Database) -> None:
            self._store_quote(db, order_id, quote, prefs)

        self._store.write(tx)
        order = self.agent.orders.get(order_id)
        self.agent.bus.publish("order.updated", order)
        self.touch_pumps(order_id)
        return order

    def touch_pumps(self, order_id: str) -> None:
        """Tell the screens that the pumps of this order changed their unpaid count."""
        if self.agent.forecourt is None:
            return
        rows = self._store.query("SELECT DISTINCT f.pump_id FROM order_lines l JOIN fills f USING (fill_id)"
                                 " WHERE l.order_id = ?", (order_id,))
        for r in rows:
            self.agent.forecourt.publish_pump(int(r["pump_id"]))

    def _store_quote(self, db: sqlite_utils.Database, order_id: str, quote: Quote, prefs: dict[str, Any]) -> None:
        line_nos = [r[0] for r in db.execute("SELECT line_no FROM order_lines WHERE order_id = ? ORDER BY line_no",
                                             [order_id]).fetchall()]
        for line_no, disc in zip(line_nos, quote.line_discounts, strict=True):
            db.execute("UPDATE order_lines SET discount_fen = ? WHERE order_id = ? AND line_no = ?",
                       [disc, order_id, line_no])
        detail = {**quote.as_dict(), "prefs": prefs}
        db.execute("UPDATE orders SET total_fen = ?, discount_fen = ?, payable_fen = ?, quote = ?, updated_at_ms = ?"
                   " WHERE order_id = ?", [quote.total_fen, quote.discount_fen, quote.payable_fen,
                                           json.dumps(detail, ensure_ascii=False), self.agent.clock.now_ms(),
                                           order_id])

    def confirm(self, order_id: str) -> dict[str, Any]:
        """Freeze the quote; lock its coupon at the center and hold its points (预扣)."""
        order = self.agent.orders.get(order_id)
        if order["state"] != "init":
            raise Conflict(f"order {order_id} is {order['state']}", code="order_not_open")
        existing = self._store.query_one("SELECT * FROM quotes WHERE order_id = ? AND state = 'frozen' AND"
                                         " expires_at_ms > ?", (order_id, self.agent.clock.now_ms()))
        if existing is not None:
            return _quote_row(existing)
        prefs = (order["quote"] or {}).get("prefs", {})
        quote = self.compute(order_id, coupon_id=prefs.get("coupon_id"), use_coupon=prefs.get("use_coupon", True),
                             points=prefs.get("points", 0))
        quote_id = self.agent.ids.new_id()
        if quote.coupon_id is not None:
            if self.gateway is None or not self.agent.online:
                raise Unavailable("a coupon needs the trade center, which is not reachable now (offline mode)",
                                  code="offline", operation="coupon")
            try:
                self.gateway.coupon("lock", coupon_id=quote.coupon_id, out_id=quote_id)
            except GatewayRejected as exc:
                raise Conflict(f"coupon {quote.coupon_id} cannot be used: {exc}", code="coupon_refused") from None
            except GatewayUnavailable as exc:
                raise Unavailable(f"coupon lock failed: {exc}", code="offline", operation="coupon") from None
        now = self.agent.clock.now_ms()
        expires = now + self._cfg.checkout.quote_ttl_s * 1000

        def tx(db: sqlite_utils.Database) -> tuple[str, str] | None:
            released = self._require_open(db, order_id)  # an expired frozen quote, voided with its locks
            self._store_quote(db, order_id, quote, prefs)
            db.execute("INSERT INTO quotes(quote_id, order_id, payable_fen, detail, state, expires_at_ms,"
                       " created_at_ms) VALUES (?, ?, ?, ?, 'frozen', ?, ?)",
                       [quote_id, order_id, quote.payable_fen, json.dumps(quote.as_dict(), ensure_ascii=False),
                        expires, now])
            if quote.coupon_id is not None:
                db.execute("UPDATE coupons SET state = 'locked', locked_by_order = ? WHERE coupon_id = ?",
                           [order_id, quote.coupon_id])
            if quote.points_used > 0:
                db.execute("INSERT INTO points_holds(order_id, member_id, points, state) VALUES (?, ?, ?, 'held')"
                           " ON CONFLICT(order_id) DO UPDATE SET points = excluded.points, state = 'held'",
                           [order_id, order["member_id"], quote.points_used])
            # the same coupon was locked again for the new quote just now: not released
            return None if released is None or released[0] == quote.coupon_id else released

        try:
            released = self._store.write(tx)
        except Exception:
            if quote.coupon_id is not None and self.gateway is not None:
                self._release_coupon(quote.coupon_id, quote_id)
            raise
        self._release_remote(released)
        row = self._store.query_one("SELECT * FROM quotes WHERE quote_id = ?", (quote_id,))
        assert row is not None
        self.agent.bus.publish("order.confirmed", {"order_id": order_id, **_quote_row(row)})
        return _quote_row(row)

    def _release_coupon(self, coupon_id: str, out_id: str) -> None:
        if self.gateway is None:
            return
        try:
            self.gateway.coupon("release", coupon_id=coupon_id, out_id=out_id)
        except (GatewayRejected, GatewayUnavailable) as exc:
            log.warning("coupon %s release failed (%s): the sentinel retries", coupon_id, exc)

    # ------------------------------------------------------------ cancel / timeout
    def release_order(self, db: sqlite_utils.Database, order_id: str) -> list[tuple[str, str]]:
        """Inside a transaction: release fills, quotes, points; return (coupon, quote) pairs to release remotely."""
        db.execute("UPDATE fills SET state = 'finished', order_id = NULL WHERE order_id = ? AND state = 'claimed'",
                   [order_id])
        coupons = db.execute("SELECT c.coupon_id, q.quote_id FROM coupons c JOIN quotes q ON q.order_id ="
                             " c.locked_by_order WHERE c.locked_by_order = ? AND c.state = 'locked'"
                             " AND q.detail LIKE '%' || c.coupon_id || '%'", [order_id]).fetchall()
        db.execute("UPDATE coupons SET state = 'available', locked_by_order = NULL WHERE locked_by_order = ?"
                   " AND state = 'locked'", [order_id])
        db.execute("UPDATE quotes SET state = 'released' WHERE order_id = ? AND state = 'frozen'", [order_id])
        db.execute("UPDATE points_holds SET state = 'released' WHERE order_id = ? AND state = 'held'", [order_id])
        return [(str(c[0]), str(c[1])) for c in coupons]

    def cancel(self, order_id: str, *, actor: str, reason: str = "cancelled") -> dict[str, Any]:
        now = self.agent.clock.now_ms()

        def tx(db: sqlite_utils.Database) -> list[tuple[str, str]]:
            row = db.execute("SELECT state FROM orders WHERE order_id = ?", [order_id]).fetchone()
            if row is None:
                raise NotFound(f"no order {order_id}", order_id=order_id)
            if row[0] == "closed":
                return []
            if row[0] != "init":
                raise Conflict(f"order {order_id} is {row[0]}: only an unpaid order can be cancelled",
                               code="order_not_open", state=row[0])
            if db.execute("SELECT 1 FROM payment_sagas WHERE order_id = ? AND state IN ('running', 'compensating')",
                          [order_id]).fetchone():
                raise Conflict("a payment is in progress: wait for its result", code="payment_in_progress")
            db.execute("UPDATE orders SET state = 'closed', updated_at_ms = ? WHERE order_id = ?", [now, order_id])
            add_audit(db, at_ms=now, actor=actor, action="order.void" if reason == "void" else "order.cancel",
                      target=f"order:{order_id}", before={"state": row[0]}, after={"state": "closed",
                                                                                  "reason": reason})
            released = self.release_order(db, order_id)
            enqueue(db, event_id=f"order:{order_id}:closed", aggregate="order", aggregate_id=order_id,
                    kind="order.closed", payload={"order_id": order_id, "reason": reason, "by": actor}, now_ms=now)
            return released

        for coupon_id, quote_id in self._store.write(tx):
            self._release_coupon(coupon_id, quote_id)
        order = self.agent.orders.get(order_id)
        self.agent.bus.publish("order.closed", order)
        self.touch_pumps(order_id)
        return order

    def expire_orders(self) -> list[str]:
        """Close unpaid orders older than the policy's timeout (called by the sentinel)."""
        cutoff = self.agent.clock.now_ms() - self._cfg.policy.order_timeout_s * 1000
        rows = self._store.query("SELECT order_id FROM orders WHERE state = 'init' AND updated_at_ms < ?", (cutoff,))
        closed = []
        for r in rows:
            try:
                self.cancel(r["order_id"], actor="system", reason="timeout")
                closed.append(r["order_id"])
            except Conflict:
                continue
        return closed


def _quote_row(row: dict[str, Any]) -> dict[str, Any]:
    return {"quote_id": row["quote_id"], "order_id": row["order_id"], "payable_fen": row["payable_fen"],
            "expires_at_ms": row["expires_at_ms"], "state": row["state"], "detail": json.loads(row["detail"])}
