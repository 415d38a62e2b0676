"""Checkout controller: the order at the counter and its payment, shared by both screens.

A GUI-thread ``QObject`` that owns the pure view-models (``OrderDraft``,
``PaymentDraft``) and turns cashier actions into local-API calls through
``ApiClient`` (never blocking: every call answers later through a bound-method
callback).  The agent owns the order: after every change it returns the order
with a freshly computed quote, which replaces the draft — the UI never computes
a discount.  Order events on the stream (``order.updated``, ``order.closed``,
``order.paid``) for the open order refresh it too, so a second terminal's
change shows up.

The customer display follows ``customer`` (a ``CustomerView``): idle ads, the
order as it changes, the merchant QR, the result and thank-you, then idle
again after ``RESULT_HOLD_MS``.

All API paths of the checkout are in ``PATHS`` (one place to adapt).
Refusals become one translated sentence on ``message``.
"""

from __future__ import annotations

import uuid
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from agent.money import format_fen
from ui.client import ApiClient, ApiError
from ui.i18n import error_text, tr
from ui.viewmodels import CustomerView, OrderDraft, PaymentDraft, Phase, customer_view, parse_amount

__all__ = ["PATHS", "CheckoutController"]

RESULT_HOLD_MS = 8000

#: local API paths used by the checkout ({id} = order id)
PATHS = {
    "orders": "/api/v1/orders",
    "order": "/api/v1/orders/{id}",
    "lines": "/api/v1/orders/{id}/lines",
    "line": "/api/v1/orders/{id}/lines/{line_no}",
    "member": "/api/v1/orders/{id}/member",
    "cancel": "/api/v1/orders/{id}/cancel",
    "confirm": "/api/v1/orders/{id}/confirm",
    "pay": "/api/v1/orders/{id}/pay",
    "fills": "/api/v1/fills",
    "catalog": "/api/v1/catalog",
    "members": "/api/v1/members/lookup",
}


class CheckoutController(QObject):
    """See the module docstring."""

    #: the order draft changed (lines, quote, member)
    order_changed = Signal()
    #: the payment draft changed (tenders, remaining, change) or its phase
    payment_changed = Signal()
    #: the customer display should show this ``CustomerView``
    customer_changed = Signal(object)
    #: (text, is_error) for the cashier's status line
    message = Signal(str, bool)
    #: the payment page should open (True) or close (False)
    paying = Signal(bool)

    def __init__(self, api: ApiClient, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.api = api
        self.draft = OrderDraft()
        self.payment: PaymentDraft | None = None
        self.quote: dict[str, Any] | None = None
        self.phase = Phase.IDLE
        self.customer: CustomerView = customer_view(Phase.IDLE, None)
        self.cashier: str | None = None
        self.last_result: dict[str, Any] | None = None
        self._pending_pump: int | None = None
        self._busy = False
        self._result_timer = QTimer(self)
        self._result_timer.setSingleShot(True)
        self._result_timer.setInterval(RESULT_HOLD_MS)
        self._result_timer.timeout.connect(self._back_to_idle)
        api.received.connect(self._on_event)

    # ------------------------------------------------------------ helpers
    def _path(self, key: str, **kw: Any) -> str:
        return PATHS[key].format(id=self.draft.order_id, **kw)

    def _fail(self, err: ApiError, **ctx: Any) -> None:
        self._busy = False
        text = tr("err.agent_down") if err.status == 0 else error_text(err.code, err.message,
                                                                        **{**err.details, **ctx})
        self.message.emit(text, True)

    def _say(self, text: str) -> None:
        self.message.emit(text, False)

    def _publish(self) -> None:
        if self.phase in (Phase.PAID, Phase.FAILED):
            pass
        elif self.draft.is_empty():
            self.phase = Phase.IDLE
        elif self.phase is Phase.IDLE:
            self.phase = Phase.ORDER
        self.customer = customer_view(self.phase, None if self.draft.is_empty() and self.phase is Phase.IDLE
                                      else self.draft, qr_payload=self._qr_payload(),
                                      change_fen=self.payment.change_fen if self.payment else 0,
                                      reason=self._reason)
        self.customer_changed.emit(self.customer)

    _reason = ""

    def _qr_payload(self) -> str:
        if self.phase is not Phase.QR or self.quote is None:
            return ""
        return str(self.quote.get("qr_payload") or f"forecourt://pay/{self.draft.order_id}"
                   f"?amount_fen={self.draft.payable_fen}")

    def _load(self, order: Any) -> None:
        self._busy = False
        if not isinstance(order, dict):
            return
        if order.get("state") == "closed" and order.get("order_id") == self.draft.order_id:
            self.draft.clear()
        elif order.get("state") == "init":
            self.draft.load_order(order)
        self.order_changed.emit()
        self._publish()

    # ------------------------------------------------------------ order editing
    def add_unpaid(self, pump_id: int) -> None:
        """Add the oldest unpaid sale of ``pump_id`` not yet in the order."""
        self._pending_pump = pump_id
        self.api.call("GET", PATHS["fills"], {"pump_id": pump_id, "state": "finished"},
                      on_ok=self._on_unpaid_fills, on_error=self._fail)

    def _on_unpaid_fills(self, fills: Any) -> None:
        pump = self._pending_pump
        taken = set(self.draft.fill_ids())
        free = [f for f in (fills or []) if f.get("fill_id") not in taken]
        if not free:
            self.message.emit(tr("err.no_unpaid", pump=pump), True)
            return
        oldest = min(free, key=lambda f: f.get("finished_at_ms") or 0)
        self.add_fuel(str(oldest["fill_id"]))

    def add_fuel(self, fill_id: str) -> None:
        self._add_line({"kind": "fuel", "fill_id": fill_id})

    def add_item(self, code: str) -> None:
        """Add a shop item by barcode / PLU (exact), or the single item whose name matches."""
        code = code.strip()
        if not code:
            return
        self._add_line({"kind": "item", "sku": code, "quantity": 1})

    def add_amount(self, text: str) -> None:
        try:
            fen = parse_amount(text)
        except ValueError:
            self.message.emit(tr("err.bad_amount"), True)
            return
        self._add_line({"kind": "amount", "amount_fen": fen, "name": tr("order.amount_name")})

    def _add_line(self, line: dict[str, Any]) -> None:
        if self.phase in (Phase.PAID, Phase.FAILED):
            self._back_to_idle()
        if self.draft.order_id is None:
            body: dict[str, Any] = {"lines": [line], "request_key": uuid.uuid4().hex}
            if self.cashier:
                body["cashier"] = self.cashier
            self.api.call("POST", PATHS["orders"], body, on_ok=self._on_created, on_error=self._fail)
        else:
            self.api.call("POST", self._path("lines"), line, on_ok=self._load, on_error=self._fail)

    def _on_created(self, order: Any) -> None:
        if isinstance(order, dict):
            self.draft.load_order(order)
            self._say(tr("order.created", receipt=order.get("receipt_no", "")))
        self._load(order)

    def remove_line(self, line_no: int) -> None:
        if self.draft.order_id is None:
            return
        if len(self.draft.lines) == 1:
            self.cancel_order()
            return
        self.api.call("DELETE", self._path("line", line_no=line_no), on_ok=self._load, on_error=self._fail)

    def cancel_order(self) -> None:
        if self.draft.order_id is None:
            self.draft.clear()
            self._publish()
            return
        self.api.call("POST", self._path("cancel"), {"reason": "cashier"}, on_ok=self._on_cancelled,
                      on_error=self._fail)

    def _on_cancelled(self, order: Any) -> None:
        self.draft.clear()
        self.payment = None
        self.phase = Phase.IDLE
        self.paying.emit(False)
        self.order_changed.emit()
        self._say(tr("order.cancelled"))
        self._publish()

    def lookup_member(self, key: str) -> None:
        key = key.strip()
        if not key:
            return
        field = "plate" if not key.isdigit() else "phone" if len(key) == 11 else "card_no"
        self.api.call("POST", PATHS["members"], {field: key}, on_ok=self._on_member, on_error=self._fail)

    def _on_member(self, member: Any) -> None:
        if not isinstance(member, dict):
            return
        self.draft.set_member(member)
        self.order_changed.emit()
        if self.draft.order_id is not None:
            self.api.call("PUT", self._path("member"), {"member_id": member.get("member_id")}, on_ok=self._load,
                          on_error=self._fail)

    # ------------------------------------------------------------ payment
    def start_payment(self) -> None:
        """Freeze the quote (confirm) and open the payment page."""
        if self.draft.order_id is None or self.draft.is_empty():
            self.message.emit(tr("err.empty_order"), True)
            return
        self.api.call("POST", self._path("confirm"), {}, on_ok=self._on_confirmed, on_error=self._fail)

    def _on_confirmed(self, quote: Any) -> None:
        self.quote = quote if isinstance(quote, dict) else {}
        payable = int(self.quote.get("payable_fen", self.draft.payable_fen))
        self.draft.payable_fen = payable
        self.payment = PaymentDraft(payable)
        self.payment_changed.emit()
        self.paying.emit(True)
        self._publish()

    def add_tender(self, method: str, amount_fen: int | None = None, ref: str | None = None) -> bool:
        if self.payment is None:
            return False
        try:
            self.payment.add(method, amount_fen, ref=ref)
        except ValueError:
            self.message.emit(tr("err.bad_amount"), True)
            return False
        if method == "qr":
            self.phase = Phase.QR
        self.payment_changed.emit()
        self._publish()
        return True

    def remove_tender(self, index: int) -> None:
        if self.payment is not None:
            self.payment.remove(index)
            if not any(t.method == "qr" for t in self.payment.legs) and self.phase is Phase.QR:
                self.phase = Phase.ORDER
            self.payment_changed.emit()
            self._publish()

    def show_qr(self) -> None:
        """Put the merchant QR for what is left on the customer display (a ``qr`` leg)."""
        if self.payment is not None and self.payment.remaining_fen > 0:
            self.add_tender("qr")

    def leave_payment(self) -> None:
        self.payment = None
        self.quote = None
        if self.phase is Phase.QR:
            self.phase = Phase.ORDER
        self.paying.emit(False)
        self.payment_changed.emit()
        self._publish()

    def pay(self) -> None:
        p = self.payment
        if p is None or self.draft.order_id is None:
            return
        if not p.complete:
            self.message.emit(tr("pay.short", amount=format_fen(p.remaining_fen)), True)
            return
        if self._busy:
            return
        self._busy = True
        body = {"quote_id": (self.quote or {}).get("quote_id"), "tenders": [t.to_api() for t in p.legs],
                "request_key": uuid.uuid4().hex}
        self._say(tr("pay.pending"))
        self.api.call("POST", self._path("pay"), body, on_ok=self._on_paid, on_error=self._on_pay_failed)

    def _on_paid(self, result: Any) -> None:
        self._busy = False
        self.last_result = result if isinstance(result, dict) else {}
        state = str(self.last_result.get("state") or self.last_result.get("order", {}).get("state") or "paid")
        if state not in ("paid", "success"):
            self._finish(Phase.FAILED, str(self.last_result.get("reason") or state))
            return
        self._say(tr("pay.success"))
        self._finish(Phase.PAID)

    def _on_pay_failed(self, err: ApiError) -> None:
        self._fail(err)
        reason = tr("err.agent_down") if err.status == 0 else error_text(err.code, err.message, **err.details)
        self._finish(Phase.FAILED, reason)

    def _finish(self, phase: Phase, reason: str = "") -> None:
        self.phase = phase
        self._reason = reason
        self._publish()
        self.payment_changed.emit()
        if phase is Phase.PAID:
            self.paying.emit(False)
            self._result_timer.start()

    def _back_to_idle(self) -> None:
        self._result_timer.stop()
        if self.phase is Phase.PAID:
            self.draft.clear()
            self.payment = None
            self.quote = None
        self.phase = Phase.ORDER if not self.draft.is_empty() else Phase.IDLE
        self._reason = ""
        self.order_changed.emit()
        self._publish()

    # ------------------------------------------------------------ stream
    def _on_event(self, topic: str, data: Any) -> None:
        if not isinstance(data, dict) or self.draft.order_id is None:
            return
        if data.get("order_id") != self.draft.order_id:
            return
        if topic in ("order.updated", "order.closed") and self.phase not in (Phase.PAID, Phase.FAILED) \
                and "lines" in data:
            self._load(data)
