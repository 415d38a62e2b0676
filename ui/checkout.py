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
from ui.viewmodels import (
    CustomerView,
    OrderDraft,
    PaymentDraft,
    Phase,
    customer_view,
    notice_view,
    parse_amount,
)

__all__ = ["PATHS", "CheckoutController"]


class _WithPump:
    """Error callback that adds the pump number to the message context."""

    def __init__(self, fail: Any, pump_id: int) -> None:
        self.fail, self.pump_id = fail, pump_id

    def __call__(self, err: ApiError) -> None:
        self.fail(err, pump=self.pump_id)

RESULT_HOLD_MS = 8000
POLL_MS = 2000  #: ask for the payment's state while an online leg waits (events usually come first)

#: local API paths used by the checkout ({id} = order id)
PATHS = {
    "orders": "/api/v1/checkout/orders",
    "order": "/api/v1/orders/{id}",
    "lines": "/api/v1/orders/{id}/lines",
    "line": "/api/v1/orders/{id}/lines/{line_no}",
    "member": "/api/v1/orders/{id}/member",
    "preferences": "/api/v1/orders/{id}/preferences",
    "cancel": "/api/v1/orders/{id}/cancel",
    "confirm": "/api/v1/orders/{id}/confirm",
    "pay": "/api/v1/orders/{id}/pay",
    "payment": "/api/v1/orders/{id}/payment",
    "refund": "/api/v1/orders/{id}/refund",
    "prepay": "/api/v1/pumps/{pump}/prepay",
    "fills": "/api/v1/fills",
    "catalog": "/api/v1/catalog",
    "members": "/api/v1/members/lookup",
    "member_register": "/api/v1/members",
    "invoice": "/api/v1/orders/{id}/invoice",
    "login": "/api/v1/session/login",
    "logout": "/api/v1/session/logout",
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
    #: a refund went through (the list of refund records)
    refunded = Signal(object)
    #: a prepaid fill took less than paid; the difference was refunded (event data)
    underrun = Signal(object)
    #: a search by name found several items (list of catalog items): the window lets the cashier pick
    items_found = Signal(object)

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
        self.last_paid_order_id: str | None = None  #: offered by the refund dialog
        self._pending_pump: int | None = None
        self._busy = False  #: a payment is being processed: no edits, no second pay
        self._reason = ""
        self._qr_url = ""
        self._query = ""
        #: prepaid orders started here: order id -> pump (to announce an underrun refund)
        self.prepaid: dict[str, int] = {}
        self._poll = QTimer(self)
        self._poll.setSingleShot(True)
        self._poll.setInterval(POLL_MS)
        self._poll.timeout.connect(self._poll_payment)
        self._result_timer = QTimer(self)
        self._result_timer.setSingleShot(True)
        self._result_timer.setInterval(RESULT_HOLD_MS)
        self._result_timer.timeout.connect(self._back_to_idle)
        api.received.connect(self._on_event)

    @property
    def busy(self) -> bool:
        """A payment is being processed (no edits, no second payment)."""
        return self._busy

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

    def _qr_payload(self) -> str:
        return self._qr_url if self.phase is Phase.QR else ""

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
        """Add a shop item by barcode / PLU (exact)."""
        code = code.strip()
        if not code:
            return
        self._add_line({"kind": "item", "sku": code, "quantity": 1})

    def find_item(self, text: str) -> None:
        """Digits are a barcode / PLU (added at once); a name is searched in the catalog:
        one match is added, several are offered on ``items_found``, none is said."""
        text = text.strip()
        if not text:
            return
        if text.isdigit():
            self.add_item(text)
            return
        self._query = text
        self.api.call("GET", PATHS["catalog"], {"q": text}, on_ok=self._on_items, on_error=self._fail)

    def _on_items(self, items: Any) -> None:
        found = [i for i in items or [] if isinstance(i, dict)]
        if not found:
            self.message.emit(tr("search.none", q=self._query), True)
        elif len(found) == 1:
            self.add_item(str(found[0].get("sku") or found[0].get("plu")))
        else:
            self.items_found.emit(found)

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
            if self.draft.member_id:
                body["member_id"] = self.draft.member_id
            self.api.call("POST", PATHS["orders"], body, on_ok=self._on_created, on_error=self._fail)
        elif line["kind"] == "amount":
            self.message.emit(tr("err.amount_needs_new_order"), True)
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
        field = "phone" if key.isdigit() and len(key) == 11 else "card_no" if key.isascii() else "plate"
        self.api.call("GET", PATHS["members"], {field: key}, on_ok=self._on_member, on_error=self._fail)

    def use_member(self, member: Any) -> None:
        """A member just registered (or found elsewhere): on the order as after a lookup.  Right after a
        sale (its result still shown) the member starts the next order, never the paid one."""
        if self.phase is Phase.PAID:
            self._back_to_idle()
        self._on_member(member)

    def _on_member(self, member: Any) -> None:
        if not isinstance(member, dict):
            return
        self.draft.set_member(member)
        self.order_changed.emit()
        if self.draft.order_id is not None:
            self.api.call("POST", self._path("member"), {"member_id": member.get("member_id")}, on_ok=self._load,
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
        """Add a leg: ``cash`` (amount = what was handed over), ``qr_scan`` (``ref`` = the customer's
        code), ``qr_show`` (merchant QR on the customer display) or ``stored_value`` (member)."""
        if self.payment is None:
            return False
        if method == "qr_scan" and not (ref and ref.isdigit() and 10 <= len(ref) <= 32):
            self.message.emit(tr("pay.scan_hint"), True)
            return False
        if method == "stored_value" and not self.draft.member_id:
            self.message.emit(tr("err.no_member"), True)
            return False
        try:
            self.payment.add(method, amount_fen, ref=ref)
        except ValueError:
            self.message.emit(tr("err.bad_amount"), True)
            return False
        self.payment_changed.emit()
        self._publish()
        return True

    def remove_tender(self, index: int) -> None:
        if self.payment is not None and not self._busy:
            self.payment.remove(index)
            self.payment_changed.emit()
            self._publish()

    def use_coupon(self, coupon_id: str) -> None:
        """Apply a coupon (or ``""`` for none), keeping the points chosen; the agent re-quotes, then the
        quote is frozen again."""
        if self.draft.order_id is None:
            return
        body: dict[str, Any] = {"coupon_id": coupon_id} if coupon_id else {"no_coupon": True}
        if self.draft.points_used:
            body["points"] = self.draft.points_used
        self.api.call("POST", self._path("preferences"), body, on_ok=self._on_coupon, on_error=self._fail)

    def use_points(self, points: int) -> None:
        """Redeem ``points`` (0: none) on the open order, keeping the chosen coupon; the agent re-quotes."""
        if self.draft.order_id is None:
            return
        if points < 0 or points > self.draft.points_available:
            self.message.emit(tr("points.bad"), True)
            return
        body: dict[str, Any] = {"points": points}
        if self.draft.coupon_id:
            body["coupon_id"] = self.draft.coupon_id
        else:
            body["no_coupon"] = True  # no coupon on the quote (none chosen): the agent must not pick the best one
        self.api.call("POST", self._path("preferences"), body, on_ok=self._on_coupon, on_error=self._fail)

    def _on_coupon(self, order: Any) -> None:
        self._load(order)
        self.start_payment()

    def leave_payment(self) -> None:
        if self._busy:
            return
        self.payment = None
        self.quote = None
        if self.phase in (Phase.QR, Phase.FAILED):
            self.phase = Phase.ORDER
        self.paying.emit(False)
        self.payment_changed.emit()
        self._publish()

    def pay(self) -> None:
        p = self.payment
        if p is None or self.draft.order_id is None or self._busy:
            return
        if not p.complete:
            self.message.emit(tr("pay.short", amount=format_fen(p.remaining_fen)), True)
            return
        self._busy = True
        self.phase = Phase.ORDER
        self._reason = ""
        body = {"quote_id": (self.quote or {}).get("quote_id"), "tenders": [t.to_api() for t in p.legs],
                "request_key": uuid.uuid4().hex}
        self._say(tr("pay.pending"))
        self.payment_changed.emit()
        self.api.call("POST", self._path("pay"), body, on_ok=self._on_payment, on_error=self._on_pay_failed)

    def _on_payment(self, status: Any) -> None:
        """A saga status: ``paid``, ``failed`` or still ``running`` (an online leg waits for the center)."""
        if not isinstance(status, dict) or status.get("order_id") not in (None, self.draft.order_id):
            return
        self.last_result = status
        state = str(status.get("state") or "")
        if state == "paid":
            self._busy = False
            self.last_paid_order_id = self.draft.order_id
            self._say(tr("pay.success"))
            self._finish(Phase.PAID)
        elif state == "failed":
            self._busy = False
            errors = [str(leg["error"]) for leg in status.get("legs", []) if leg.get("error")]
            reason = status.get("reason") or "; ".join(errors) or state
            self.message.emit(tr("pay.failed", reason=reason), True)
            self._finish(Phase.FAILED, str(reason))
        else:
            urls = [str(leg["pay_url"]) for leg in status.get("legs", []) if leg.get("pay_url")
                    and leg.get("state") == "pending"]
            if urls:
                self._qr_url = urls[0]
                self.phase = Phase.QR
                self._publish()
            self._poll.start()

    def _poll_payment(self) -> None:
        if self._busy and self.draft.order_id is not None:
            self.api.call("GET", self._path("payment"), on_ok=self._on_payment, on_error=self._poll_failed)

    def _poll_failed(self, err: ApiError) -> None:
        self._poll.start()  # agent briefly unreachable: keep asking, the result is on the agent

    def _on_pay_failed(self, err: ApiError) -> None:
        self._fail(err)
        reason = tr("err.agent_down") if err.status == 0 else error_text(err.code, err.message, **err.details)
        self._finish(Phase.FAILED, reason)

    def _finish(self, phase: Phase, reason: str = "") -> None:
        self._poll.stop()
        self.phase = phase
        self._reason = reason
        self._qr_url = ""
        self._publish()
        self.payment_changed.emit()
        if phase is Phase.PAID:
            self.paying.emit(False)
            self._result_timer.start()

    def _notice(self, headline: str, amount: str, message: str) -> None:
        """A result on the customer display that is not the open order's (prepay, underrun refund)."""
        if self.phase not in (Phase.IDLE, Phase.PAID):
            return  # the customer at the counter is in the middle of their own order
        self.customer = notice_view(headline, amount, message)
        self.customer_changed.emit(self.customer)
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

    # ------------------------------------------------------------ prepay and refunds
    def prepay(self, pump_id: int, amount_text: str, method: str = "cash", ref: str | None = None) -> None:
        """Pay first, then the agent authorizes the pump with the amount as its preset."""
        try:
            fen = parse_amount(amount_text)
        except ValueError:
            self.message.emit(tr("err.bad_amount"), True)
            return
        tender: dict[str, Any] = {"tender": method, "amount_fen": fen}
        if method == "qr_scan" and ref:
            tender["auth_code"] = ref
        body: dict[str, Any] = {"preset_amount_fen": fen, "tenders": [tender], "request_key": uuid.uuid4().hex}
        if self.draft.member_id:
            body["member_id"] = self.draft.member_id
        self.api.call("POST", PATHS["prepay"].format(pump=pump_id), body, on_ok=self._on_prepaid,
                      on_error=_WithPump(self._fail, pump_id))

    def _on_prepaid(self, result: Any) -> None:
        payment = (result or {}).get("payment") or {}
        order = (result or {}).get("order") or {}
        self.prepaid[str(order.get("order_id"))] = int(order.get("prepay_pump_id") or 0)
        if payment.get("state") == "paid":
            amount = format_fen(int(order.get("payable_fen") or 0))
            self.last_paid_order_id = str(order.get("order_id"))
            self._say(tr("prepay.done", pump=order.get("prepay_pump_id"), amount=amount))
            self._notice(tr("cust.prepaid", pump=order.get("prepay_pump_id")), "¥" + amount,
                         tr("cust.prepay_hint"))
        else:
            self.message.emit(tr("pay.failed", reason=payment.get("state")), True)

    def prepay_volume(self, pump_id: int, nozzle: int, volume_ml: int, amount_fen: int,
                      method: str = "cash") -> None:
        """Prepay a volume on one nozzle; ``amount_fen`` is what the agent will charge for it (shown first)."""
        body: dict[str, Any] = {"nozzle": nozzle, "preset_volume_ml": volume_ml,
                                "tenders": [{"tender": method, "amount_fen": amount_fen}],
                                "request_key": uuid.uuid4().hex}
        if self.draft.member_id:
            body["member_id"] = self.draft.member_id
        self.api.call("POST", PATHS["prepay"].format(pump=pump_id), body, on_ok=self._on_prepaid,
                      on_error=_WithPump(self._fail, pump_id))

    def refund(self, order_id: str, amount_text: str, reason: str, supervisor_id: str, pin: str) -> None:
        body: dict[str, Any] = {"reason": reason or "refund", "supervisor_id": supervisor_id,
                                "supervisor_pin": pin}
        if amount_text.strip():
            try:
                body["amount_fen"] = parse_amount(amount_text)
            except ValueError:
                self.message.emit(tr("err.bad_amount"), True)
                return
        self.api.call("POST", PATHS["refund"].format(id=order_id), body, on_ok=self._on_refunded,
                      on_error=self._fail)

    def _on_refunded(self, refunds: Any) -> None:
        total = sum(int(r.get("amount_fen") or 0) for r in refunds or [])
        self._say(tr("refund.done", amount=format_fen(total)))
        self.refunded.emit(refunds)

    # ------------------------------------------------------------ stream
    def _on_event(self, topic: str, data: Any) -> None:
        if not isinstance(data, dict):
            return
        if topic == "prepay.underrun" and str(data.get("order_id")) in self.prepaid:
            pump = self.prepaid[str(data["order_id"])]
            amount = format_fen(int(data.get("amount_fen") or 0))
            self._say(tr("prepay.underrun", pump=pump, amount=amount))
            self._notice(tr("cust.underrun", pump=pump), "¥" + amount, tr("cust.underrun_hint"))
            self.underrun.emit(data)
            return
        if self.draft.order_id is None:
            return
        if data.get("order_id") != self.draft.order_id:
            return
        if topic in ("order.updated", "order.closed") and self.phase not in (Phase.PAID, Phase.FAILED) \
                and "lines" in data and not self._busy:
            self._load(data)
        elif topic == "payment.qr" and self._busy and data.get("pay_url"):
            self._qr_url = str(data["pay_url"])
            self.phase = Phase.QR
            self._publish()
        elif topic in ("order.paid", "payment.failed") and self._busy:
            self._poll_payment()
