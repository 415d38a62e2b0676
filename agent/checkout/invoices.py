"""Invoices (开发票): requested at the counter for a paid order, issued by the trade center, one per order.

Online only: while the center is unreachable the request is refused (``offline``) and nothing is
stored or sent.  The amount is what the customer paid minus what was refunded (integer fen, > 0).
The order id is the key at the center (``out_id`` and the Idempotency-Key), so asking again can
never issue a second invoice:

1. a ``requested`` row is committed before the center is asked;
2. the center's answer turns it ``issued`` with the invoice number, audited in the same transaction;
3. no answer (timeout, 5xx): the row stays ``requested`` and the outcome is unknown; the cashier may
   ask again and the sentinel does (``retry_pending``), with the same key;
4. a refusal deletes the ``requested`` row: nothing was issued.

A repeated request for an issued invoice (same title and tax id, or the same request key) returns
the stored invoice without calling the center; a request with another title or tax id is refused
(``invoice_exists``).
"""

from __future__ import annotations

import logging
import re
from typing import Any

import sqlite_utils

from agent.errors import AgentError, Conflict, InvalidRequest, NotFound, Unavailable
from agent.ports import GatewayRejected, GatewayUnavailable
from agent.service import Agent
from agent.store import Store
from agent.store.records import add_audit

log = logging.getLogger(__name__)

__all__ = ["InvoiceService"]

TAX_ID_RE = re.compile(r"[0-9A-Z]{15,20}")
EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


class InvoiceService:
    def __init__(self, checkout: Any) -> None:
        self.checkout = checkout
        self.agent: Agent = checkout.agent
        self._store: Store = self.agent.store

    # ------------------------------------------------------------ reads
    def get(self, order_id: str) -> dict[str, Any]:
        row = self._row(order_id)
        if row is None:
            self.agent.orders.get(order_id)  # an unknown order is its own 404
            raise NotFound(f"order {order_id} has no invoice", code="no_invoice", order_id=order_id)
        return row

    def _row(self, order_id: str) -> dict[str, Any] | None:
        return self._store.query_one("SELECT * FROM invoices WHERE order_id = ?", (order_id,))

    def invoiceable(self, order_id: str) -> int:
        """What the customer paid minus what was refunded (a failed refund gave nothing back)."""
        row = self._store.query_one(
            "SELECT (SELECT COALESCE(SUM(amount_fen), 0) FROM payments WHERE order_id = ?1 AND state = 'confirmed')"
            " - (SELECT COALESCE(SUM(amount_fen), 0) FROM refunds WHERE order_id = ?1 AND state != 'failed') AS n",
            (order_id,))
        return int(row["n"]) if row else 0

    # ------------------------------------------------------------ request
    def request(self, order_id: str, *, title: str, tax_id: str | None = None, email: str | None = None,
                actor: str, request_key: str | None = None) -> dict[str, Any]:
        title = title.strip()
        if not 1 <= len(title) <= 100:
            raise InvalidRequest("title: 1 to 100 characters", code="bad_title")
        tax_id = (tax_id or "").strip().upper() or None
        if tax_id is not None and not TAX_ID_RE.fullmatch(tax_id):
            raise InvalidRequest("tax_id: 15 to 20 letters or digits", code="bad_tax_id")
        email = (email or "").strip() or None
        if email is not None and (len(email) > 100 or not EMAIL_RE.fullmatch(email)):
            raise InvalidRequest("email: not an e-mail address", code="bad_email")
        order = self.agent.orders.get(order_id)
        row = self._row(order_id)
        if row is not None and row["state"] == "issued":
            return self._repeat(row, title, tax_id, request_key)
        if order["state"] != "paid":
            raise Conflict(f"order {order_id} is {order['state']}: only a paid order can be invoiced",
                           code="order_not_paid", state=order["state"])
        amount = self.invoiceable(order_id)
        if amount <= 0:
            raise InvalidRequest("nothing to invoice: the order was refunded in full", code="nothing_to_invoice")
        self.agent.require_online("invoice")
        if self.checkout.gateway is None:
            raise Unavailable("invoice needs the trade center, which is not configured", code="offline",
                              operation="invoice")
        now = self.agent.clock.now_ms()

        def tx(db: sqlite_utils.Database) -> None:
            # a row left 'requested' (no answer last time) takes the new details; an issued one is kept
            db.execute("INSERT INTO invoices(order_id, state, title, tax_id, email, amount_fen, actor, request_key,"
                       " created_at_ms) VALUES (?, 'requested', ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(order_id) DO UPDATE"
                       " SET title = excluded.title, tax_id = excluded.tax_id, email = excluded.email,"
                       " amount_fen = excluded.amount_fen, actor = excluded.actor,"
                       " request_key = excluded.request_key WHERE invoices.state = 'requested'",
                       [order_id, title, tax_id, email, amount, actor, request_key, now])

        self._store.write(tx)
        return self._issue(order_id, title, tax_id, request_key)

    @staticmethod
    def _repeat(row: dict[str, Any], title: str, tax_id: str | None, request_key: str | None) -> dict[str, Any]:
        if (request_key is not None and row["request_key"] == request_key) or \
                (row["title"] == title and row["tax_id"] == tax_id):
            return row
        raise Conflict(f"order {row['order_id']} already has invoice {row['invoice_no']} ({row['title']})",
                       code="invoice_exists", invoice_no=row["invoice_no"], title=row["title"])

    def _issue(self, order_id: str, title: str | None = None, tax_id: str | None = None,
               request_key: str | None = None) -> dict[str, Any]:
        row = self._row(order_id)
        assert row is not None
        if row["state"] == "issued":  # issued by a concurrent request meanwhile
            return row if title is None else self._repeat(row, title, tax_id, request_key)
        gw = self.checkout.gateway
        assert gw is not None
        try:
            res = gw.invoice(order_id=order_id, amount_fen=int(row["amount_fen"]), title=str(row["title"]),
                             tax_id=row["tax_id"], email=row["email"])
        except GatewayRejected as exc:
            self._store.write(lambda db: db.execute(
                "DELETE FROM invoices WHERE order_id = ? AND state = 'requested'", [order_id]))
            raise InvalidRequest(f"the trade center refused the invoice: {exc}", code="invoice_refused",
                                 center_errno=exc.errno) from None
        except GatewayUnavailable as exc:
            raise Unavailable(f"the trade center did not answer the invoice request ({exc}): ask again, the same"
                              " invoice is never issued twice", code="center_no_answer", operation="invoice") from None
        now = self.agent.clock.now_ms()

        def tx(db: sqlite_utils.Database) -> None:
            cur = db.execute("UPDATE invoices SET state = 'issued', invoice_no = ?, amount_fen = ?, title = ?,"
                             " issued_at_ms = ? WHERE order_id = ? AND state = 'requested'",
                             [res.invoice_no, res.amount_fen, res.title, now, order_id])
            if cur.rowcount == 1:
                add_audit(db, at_ms=now, actor=str(row["actor"]), action="order.invoice", target=f"order:{order_id}",
                          before={"invoiceable_fen": row["amount_fen"]},
                          after={"invoice_no": res.invoice_no, "amount_fen": res.amount_fen, "title": res.title,
                                 "tax_id": row["tax_id"]})

        self._store.write(tx)
        out = self._row(order_id)
        assert out is not None
        self.agent.bus.publish("order.invoiced", out)
        return out

    # ------------------------------------------------------------ sentinel
    def retry_pending(self) -> None:
        """Ask the center again about invoices whose answer was lost (same key: never a second invoice)."""
        if not self.agent.online or self.checkout.gateway is None:
            return
        for r in self._store.query("SELECT order_id FROM invoices WHERE state = 'requested'"):
            try:
                self._issue(str(r["order_id"]))
            except AgentError as exc:
                log.info("invoice of order %s still open: %s", r["order_id"], exc.message)
