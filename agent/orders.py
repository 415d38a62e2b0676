"""Orders: create with lines, read, cancel.  Pricing and payment come on top of this.

An order and its lines, its receipt number and its outbox message commit in
one transaction.  A create request may carry ``request_key``: repeating the
request returns the order already stored instead of a second one.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlite_utils

from agent.clock import Clock, IdSource
from agent.errors import Conflict, InvalidRequest, NotFound
from agent.events import EventBus
from agent.store import Store
from agent.store.records import enqueue, next_counter

__all__ = ["LineRequest", "OrderService"]

MAX_LINES = 100
MAX_AMOUNT_FEN = 10_000_000  # 100 000 yuan: beyond this a typo is likelier than a sale


@dataclass(frozen=True)
class LineRequest:
    """One requested line: a shop item (sku, name, unit price, quantity) or a plain amount."""

    kind: str  # "item" | "amount" | "fuel"
    amount_fen: int | None = None
    fill_id: str | None = None
    sku: str | None = None
    name: str | None = None
    unit_price_fen: int | None = None
    quantity: int = 1


class OrderService:
    def __init__(self, store: Store, clock: Clock, ids: IdSource, bus: EventBus, station_id: str) -> None:
        #: Claims a finished fill for an order inside the order's transaction (set by the checkout).
        self.fuel_claimer: Callable[[sqlite_utils.Database, str, str], None] | None = None
        self._store = store
        self._clock = clock
        self._ids = ids
        self._bus = bus
        self._station_id = station_id

    # ------------------------------------------------------------ create
    def create(self, lines: list[LineRequest], *, cashier: str | None = None,
               request_key: str | None = None, member_id: str | None = None, kind: str = "sale",
               prepay_pump_id: int | None = None) -> dict[str, Any]:
        rows = self._validate(lines)
        order_id = self._ids.new_id()
        now = self._clock.now_ms()
        day = _utc_day(now)

        def tx(db: sqlite_utils.Database) -> str:
            if request_key is not None:
                row = db.execute("SELECT order_id FROM orders WHERE request_key = ?", [request_key]).fetchone()
                if row is not None:
                    return str(row[0])
            seq = next_counter(db, f"receipt:{day}")
            receipt_no = f"{self._station_id}-{day}-{seq:05d}"
            total = sum(r.get("amount_fen", 0) for r in rows)
            db.execute(
                "INSERT INTO orders(order_id, receipt_no, state, cashier, total_fen, discount_fen, payable_fen,"
                " request_key, created_at_ms, updated_at_ms, member_id, kind, prepay_pump_id)"
                " VALUES (?, ?, 'init', ?, ?, 0, ?, ?, ?, ?, ?, ?, ?)",
                [order_id, receipt_no, cashier, total, total, request_key, now, now, member_id, kind, prepay_pump_id],
            )
            for r in rows:
                if r["kind"] == "fuel":
                    if self.fuel_claimer is None:
                        raise InvalidRequest("fuel lines need the pump controller", code="no_pumps")
                    self.fuel_claimer(db, order_id, r["fill_id"])
                    continue
                i = 1 + db.execute("SELECT COALESCE(MAX(line_no), 0) FROM order_lines WHERE order_id = ?",
                                   [order_id]).fetchone()[0]
                db.execute(
                    "INSERT INTO order_lines(order_id, line_no, kind, name, sku, quantity, unit_price_fen,"
                    " amount_fen) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [order_id, i, r["kind"], r["name"], r["sku"], r["quantity"], r["unit_price_fen"],
                     r["amount_fen"]],
                )
            db.execute("UPDATE orders SET total_fen = (SELECT COALESCE(SUM(amount_fen), 0) FROM order_lines"
                       " WHERE order_id = ?1), payable_fen = (SELECT COALESCE(SUM(amount_fen), 0) FROM order_lines"
                       " WHERE order_id = ?1) WHERE order_id = ?1", [order_id])
            enqueue(db, event_id=f"order:{order_id}:created", aggregate="order", aggregate_id=order_id,
                    kind="order.created", payload=_order_payload(db, order_id), now_ms=now)
            return order_id

        stored_id = self._store.write(tx)
        order = self.get(stored_id)
        if stored_id == order_id:
            self._bus.publish("order.created", order)
        return order

    @staticmethod
    def _validate(lines: list[LineRequest]) -> list[dict[str, Any]]:
        if not lines:
            raise InvalidRequest("an order needs at least one line", code="no_lines")
        if len(lines) > MAX_LINES:
            raise InvalidRequest(f"at most {MAX_LINES} lines per order", code="too_many_lines")
        rows: list[dict[str, Any]] = []
        for i, ln in enumerate(lines):
            where = f"lines[{i}]"
            if ln.kind == "fuel":
                if not ln.fill_id:
                    raise InvalidRequest(f"{where}: a fuel line needs fill_id", code="bad_line", line=i)
                rows.append({"kind": "fuel", "fill_id": ln.fill_id, "amount_fen": 0})
            elif ln.kind == "amount":
                amount = _positive(ln.amount_fen, f"{where}.amount_fen")
                rows.append({"kind": "amount", "name": ln.name or "买单", "sku": None, "quantity": 1,
                             "unit_price_fen": amount, "amount_fen": amount})
            elif ln.kind == "item":
                if not ln.sku or not ln.name:
                    raise InvalidRequest(f"{where}: an item needs sku and name", code="bad_line", line=i)
                price = _positive(ln.unit_price_fen, f"{where}.unit_price_fen")
                qty = _positive(ln.quantity, f"{where}.quantity")
                if qty > 9999:
                    raise InvalidRequest(f"{where}.quantity: at most 9999", code="bad_line", line=i)
                rows.append({"kind": "item", "name": ln.name, "sku": ln.sku, "quantity": qty,
                             "unit_price_fen": price, "amount_fen": price * qty})
            else:
                raise InvalidRequest(f"{where}.kind: expected 'fuel', 'item' or 'amount', got {ln.kind!r}",
                                     code="bad_line", line=i)
        total = sum(r["amount_fen"] for r in rows)
        if total > MAX_AMOUNT_FEN:
            raise InvalidRequest(f"order total {total} fen exceeds the limit {MAX_AMOUNT_FEN}",
                                 code="amount_too_large")
        return rows

    # ------------------------------------------------------------ read
    def get(self, order_id: str) -> dict[str, Any]:
        order = self._store.query_one("SELECT * FROM orders WHERE order_id = ?", (order_id,))
        if order is None:
            raise NotFound(f"no order {order_id}", order_id=order_id)
        order["lines"] = self._store.query(
            "SELECT line_no, kind, name, sku, fill_id, quantity, volume_ml, unit_price_fen, amount_fen,"
            " discount_fen FROM order_lines WHERE order_id = ? ORDER BY line_no", (order_id,))
        order.pop("request_key", None)
        order["quote"] = json.loads(order["quote"]) if order.get("quote") else None
        return order

    def list(self, state: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        if state is not None and state not in ("init", "paid", "closed"):
            raise InvalidRequest(f"state: expected init, paid or closed, got {state!r}", code="bad_filter")
        if state is None:
            rows = self._store.query("SELECT order_id FROM orders ORDER BY created_at_ms DESC LIMIT ?", (limit,))
        else:
            rows = self._store.query("SELECT order_id FROM orders WHERE state = ? "
                                     "ORDER BY created_at_ms DESC LIMIT ?", (state, limit))
        return [self.get(r["order_id"]) for r in rows]

    # ------------------------------------------------------------ cancel
    def cancel(self, order_id: str, *, actor: str, reason: str = "cancelled") -> dict[str, Any]:
        now = self._clock.now_ms()

        def tx(db: sqlite_utils.Database) -> None:
            row = db.execute("SELECT state FROM orders WHERE order_id = ?", [order_id]).fetchone()
            if row is None:
                raise NotFound(f"no order {order_id}", order_id=order_id)
            if row[0] == "closed":
                return  # idempotent
            if row[0] != "init":
                raise Conflict(f"order {order_id} is {row[0]}: only an unpaid order can be cancelled",
                               code="order_not_open", state=row[0])
            db.execute("UPDATE orders SET state = 'closed', updated_at_ms = ? WHERE order_id = ?", [now, order_id])
            db.execute("UPDATE fills SET state = 'finished', order_id = NULL WHERE order_id = ? "
                       "AND state = 'claimed'", [order_id])
            enqueue(db, event_id=f"order:{order_id}:closed", aggregate="order", aggregate_id=order_id,
                    kind="order.closed", payload={"order_id": order_id, "reason": reason, "by": actor},
                    now_ms=now)

        self._store.write(tx)
        order = self.get(order_id)
        self._bus.publish("order.closed", order)
        return order


def _positive(value: int | None, name: str) -> int:
    if value is None or isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(f"{name}: expected a positive integer (fen)", code="bad_amount")
    if value <= 0:
        raise InvalidRequest(f"{name}: must be > 0, got {value}", code="bad_amount")
    if value > MAX_AMOUNT_FEN:
        raise InvalidRequest(f"{name}: {value} exceeds the limit {MAX_AMOUNT_FEN}", code="amount_too_large")
    return value


def _order_payload(db: sqlite_utils.Database, order_id: str) -> dict[str, Any]:
    cur = db.execute("SELECT * FROM orders WHERE order_id = ?", [order_id])
    cols = [d[0] for d in cur.description]
    order = dict(zip(cols, cur.fetchone(), strict=True))
    order.pop("request_key", None)
    cur = db.execute("SELECT * FROM order_lines WHERE order_id = ? ORDER BY line_no", [order_id])
    cols = [d[0] for d in cur.description]
    order["lines"] = [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
    result: dict[str, Any] = json.loads(json.dumps(order))
    return result


def _utc_day(now_ms: int) -> str:
    import datetime as _dt

    return _dt.datetime.fromtimestamp(now_ms / 1000, tz=_dt.UTC).strftime("%Y%m%d")
