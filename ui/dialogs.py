"""Dialogs of the cashier window: price change, prepay (by amount or volume), refund, reprint, invoice,
member registration, item pick.

``PriceDialog`` asks twice: the first press of OK checks the input and shows
what will change, the second sends ``POST /api/v1/prices`` with
``confirm=true`` (the agent's own second-confirmation rule).  Prices are typed
in yuan per litre and converted exactly to fen (``parse_yuan``); a bad entry is
refused in the dialog.  The call runs on the worker thread; the dialog closes
on success and shows the agent's refusal otherwise.

``InvoiceDialog`` (开发票) and ``MemberRegisterDialog`` (会员注册) are online-only operations: the
agent refuses them while the trade center is unreachable and the dialog says so in words.  Each
sends a request key made when the dialog opens and kept after an unknown outcome (no answer), so
pressing again is the same request, never a second one; a definite refusal gets a fresh key.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from agent.money import MoneyError, amount_for_volume, format_fen, parse_yuan
from ui.checkout import PATHS, CheckoutController
from ui.client import ApiClient, ApiError
from ui.i18n import error_text, tr
from ui.viewmodels import money

__all__ = ["InvoiceDialog", "ItemPickDialog", "MemberRegisterDialog", "PrepayDialog", "PriceDialog", "RefundDialog",
           "ReprintDialog", "litres_ml", "parse_litres"]

ERROR_STYLE = "color: #B71C1C; font-weight: bold;"
OK_STYLE = "color: #1B5E20; font-weight: bold; font-size: 16px;"
BUSY_STYLE = "color: #0D47A1;"
#: answers after which the outcome is unknown: the same request (key) is sent again
UNKNOWN_OUTCOME = frozenset({"agent_down", "center_no_answer"})


def _key(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def _refusal(err: ApiError, offline_key: str) -> str:
    """The agent's refusal as one sentence; offline names the operation that needs the center."""
    if err.status == 0:
        return tr("err.agent_down")
    if err.code == "offline":
        return tr(offline_key)
    return error_text(err.code, err.message, **err.details)


def litres_ml(text: str) -> int:
    """Litres as typed (``"20"``, ``"12.5"``, at most 3 decimals) to mL, 0 included; ``ValueError`` else."""
    whole, _, frac = text.strip().partition(".")
    if not whole.isdigit() or (frac and not frac.isdigit()) or len(frac) > 3:
        raise ValueError(text)
    return int(whole) * 1000 + int((frac + "000")[:3])


def parse_litres(text: str) -> int:
    """Litres typed by the cashier (``"20"``, ``"12.5"``) to mL; ``ValueError`` if not a positive volume."""
    try:
        ml = litres_ml(text)
    except ValueError as exc:
        raise ValueError("bad_volume") from exc
    if ml <= 0:
        raise ValueError("bad_volume")
    return ml


class PriceDialog(QDialog):
    """Enter new prices per grade; emits ``applied(body)`` with the agent's answer."""

    applied = Signal(object)

    def __init__(self, api: ApiClient, grades: list[dict[str, Any]], prices: dict[str, Any],
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("price_dialog")
        self.setWindowTitle(tr("prices.title"))
        self.api = api
        self.current: dict[str, int] = {str(k): int(v) for k, v in (prices.get("prices_fen") or {}).items()}
        for g in grades:
            self.current.setdefault(str(g["code"]), int(g.get("price_fen") or 0))
        self.names = {str(g["code"]): str(g.get("name") or g["code"]) for g in grades}
        self.pending: dict[str, int] | None = None
        lay = QVBoxLayout(self)
        grid = QGridLayout()
        for c, key in enumerate(("prices.grade", "prices.current", "prices.new")):
            h = QLabel(tr(key), self)
            h.setStyleSheet("font-weight: bold;")
            grid.addWidget(h, 0, c)
        self.edits: dict[str, QLineEdit] = {}
        for r, code in enumerate(sorted(self.current), start=1):
            grid.addWidget(QLabel(self.names.get(code, code), self), r, 0)
            grid.addWidget(QLabel(format_fen(self.current[code]), self), r, 1)
            e = QLineEdit(self)
            e.setObjectName(f"price_{code}")
            e.setPlaceholderText(format_fen(self.current[code]))
            e.setMinimumHeight(40)
            grid.addWidget(e, r, 2)
            self.edits[code] = e
        lay.addLayout(grid)
        self.info = QLabel(self)
        self.info.setObjectName("price_info")
        self.info.setWordWrap(True)
        lay.addWidget(self.info)
        row = QHBoxLayout()
        self.cancel_button = QPushButton(tr("dlg.cancel"), self)
        self.cancel_button.clicked.connect(self.reject)
        self.ok_button = QPushButton(tr("dlg.ok"), self)
        self.ok_button.setObjectName("price_ok")
        self.ok_button.clicked.connect(self._ok)
        for b in (self.cancel_button, self.ok_button):
            b.setMinimumHeight(48)
            row.addWidget(b)
        lay.addLayout(row)

    def changes(self) -> dict[str, int]:
        """Grades whose price the user changed; ``ValueError`` for a bad entry."""
        out = {}
        for code, e in self.edits.items():
            text = e.text().strip()
            if not text:
                continue
            try:
                fen = parse_yuan(text)
            except MoneyError as exc:
                raise ValueError(code) from exc
            if fen <= 0:
                raise ValueError(code)
            if fen != self.current.get(code):
                out[code] = fen
        return out

    def _ok(self) -> None:
        try:
            changes = self.changes()
        except ValueError:
            self._error(tr("prices.bad"))
            self.pending = None
            return
        if not changes:
            self._error(tr("prices.nochange"))
            return
        if self.pending != changes:
            self.pending = changes
            lines = [f"{self.names.get(c, c)}: {format_fen(self.current.get(c, 0))} → {format_fen(v)}"
                     for c, v in sorted(changes.items())]
            self.info.setStyleSheet("color: #E65100; font-weight: bold;")
            self.info.setText("\n".join(lines) + "\n" + tr("prices.confirm"))
            return
        self.ok_button.setEnabled(False)
        self.api.call("POST", "/api/v1/prices", {"prices_fen": changes, "confirm": True}, on_ok=self._done,
                      on_error=self._failed)

    def _done(self, body: Any) -> None:
        self.applied.emit(body)
        self.accept()

    def _failed(self, err: ApiError) -> None:
        self.ok_button.setEnabled(True)
        self.pending = None
        self._error(tr("err.agent_down") if err.status == 0 else error_text(err.code, err.message, **err.details))

    def _error(self, text: str) -> None:
        self.info.setStyleSheet("color: #B71C1C; font-weight: bold;")
        self.info.setText(text)


class PrepayDialog(QDialog):
    """Prepay (预付/定额): pump + amount *or* volume (with the nozzle, whose grade sets the price) + tender;
    the agent charges, then authorizes the pump with the preset.

    For a volume the amount shown and charged is ``agent.money.amount_for_volume`` at the current price
    of the nozzle's grade, the same rule the agent applies (it refuses a tender that does not match).
    An underrun is refunded by the agent to the original tender; the checkout controller announces it.
    """

    def __init__(self, checkout: CheckoutController, pumps: list[int], parent: QWidget | None = None, *,
                 nozzles: dict[int, list[dict[str, Any]]] | None = None,
                 prices_fen: dict[str, int] | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("prepay_dialog")
        self.setWindowTitle(tr("prepay.title"))
        self.co = checkout
        self.nozzles = nozzles or {}
        self.prices_fen = prices_fen or {}
        form = QFormLayout(self)
        self.pump = QComboBox(self)
        self.pump.setObjectName("prepay_pump")
        for pid in pumps:
            self.pump.addItem(tr("pump.title", n=pid), pid)
        self.pump.currentIndexChanged.connect(self._pump_changed)
        self.mode = QComboBox(self)
        self.mode.setObjectName("prepay_mode")
        self.mode.addItem(tr("prepay.by_amount"), "amount")
        self.mode.addItem(tr("prepay.by_volume"), "volume")
        self.mode.currentIndexChanged.connect(self._mode_changed)
        self.amount = QLineEdit(self)
        self.amount.setObjectName("prepay_amount")
        self.amount.setMinimumHeight(40)
        self.nozzle = QComboBox(self)
        self.nozzle.setObjectName("prepay_nozzle")
        self.nozzle.currentIndexChanged.connect(self._update_price)
        self.volume = QLineEdit(self)
        self.volume.setObjectName("prepay_volume")
        self.volume.setMinimumHeight(40)
        self.volume.textChanged.connect(self._update_price)
        self.price_info = QLabel(self)
        self.price_info.setObjectName("prepay_price_info")
        form.addRow(tr("prepay.pump"), self.pump)
        form.addRow("", self.mode)
        form.addRow(tr("prepay.amount"), self.amount)
        form.addRow(tr("prepay.nozzle"), self.nozzle)
        form.addRow(tr("prepay.volume"), self.volume)
        form.addRow(self.price_info)
        self._rows = form
        row = QHBoxLayout()
        self.buttons: dict[str, QPushButton] = {}
        for method in ("cash", "stored_value"):
            b = QPushButton(tr(f"pay.{method}"), self)
            b.setObjectName(f"prepay_{method}")
            b.setMinimumHeight(48)
            b.setProperty("method", method)
            b.clicked.connect(self._pay)
            row.addWidget(b)
            self.buttons[method] = b
        cancel = QPushButton(tr("dlg.cancel"), self)
        cancel.setMinimumHeight(48)
        cancel.clicked.connect(self.reject)
        row.addWidget(cancel)
        form.addRow(row)
        self._pump_changed(0)
        self._mode_changed(0)

    def _pump_changed(self, _: int) -> None:
        self.nozzle.clear()
        for n in self.nozzles.get(int(self.pump.currentData() or 0), []):
            self.nozzle.addItem(f"{tr('pump.nozzle', n=n['number'])}  {n.get('grade', '')}#", n)

    def _mode_changed(self, _: int) -> None:
        by_volume = self.mode.currentData() == "volume"
        self._rows.setRowVisible(self.amount, not by_volume)
        self._rows.setRowVisible(self.nozzle, by_volume)
        self._rows.setRowVisible(self.volume, by_volume)
        self._rows.setRowVisible(self.price_info, by_volume)
        self._update_price()

    def volume_amount(self) -> tuple[int, int, int] | None:
        """``(nozzle, volume_ml, amount_fen)`` for the volume entered, or ``None`` if incomplete."""
        n = self.nozzle.currentData()
        try:
            ml = parse_litres(self.volume.text())
        except ValueError:
            return None
        if not isinstance(n, dict) or str(n.get("grade")) not in self.prices_fen:
            return None
        return int(n["number"]), ml, amount_for_volume(ml, int(self.prices_fen[str(n["grade"])]))

    def _update_price(self) -> None:
        got = self.volume_amount()
        n = self.nozzle.currentData()
        if got is None or not isinstance(n, dict):
            self.price_info.setText("")
            return
        _, ml, fen = got
        self.price_info.setText(tr("prepay.volume_price", litres=f"{ml / 1000:g}",
                                   price=format_fen(int(self.prices_fen[str(n["grade"])])), amount=format_fen(fen)))

    def _pay(self) -> None:
        method = str(self.sender().property("method"))
        pump = int(self.pump.currentData())
        if self.mode.currentData() == "volume":
            got = self.volume_amount()
            if got is None:
                self.price_info.setText(tr("err.bad_amount"))
                return
            self.co.prepay_volume(pump, got[0], got[1], got[2], method)
        else:
            self.co.prepay(pump, self.amount.text(), method)
        self.accept()


class RefundDialog(QDialog):
    """Refund of a paid order (full, or partial by amount) approved by a supervisor's id and PIN."""

    def __init__(self, checkout: CheckoutController, order_id: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("refund_dialog")
        self.setWindowTitle(tr("refund.title"))
        self.co = checkout
        form = QFormLayout(self)
        self.order = QLineEdit(order_id, self)
        self.amount = QLineEdit(self)
        self.reason = QLineEdit(self)
        self.supervisor = QLineEdit(self)
        self.pin = QLineEdit(self)
        self.pin.setEchoMode(QLineEdit.EchoMode.Password)
        for key, w in (("refund.order", self.order), ("refund.amount", self.amount), ("refund.reason", self.reason),
                       ("refund.supervisor", self.supervisor), ("refund.pin", self.pin)):
            w.setMinimumHeight(40)
            form.addRow(tr(key), w)
        row = QHBoxLayout()
        ok = QPushButton(tr("dlg.ok"), self)
        ok.setObjectName("refund_ok")
        ok.clicked.connect(self._ok)
        cancel = QPushButton(tr("dlg.cancel"), self)
        cancel.clicked.connect(self.reject)
        for b in (cancel, ok):
            b.setMinimumHeight(48)
            row.addWidget(b)
        form.addRow(row)

    def _ok(self) -> None:
        self.co.refund(self.order.text().strip(), self.amount.text(), self.reason.text().strip(),
                       self.supervisor.text().strip(), self.pin.text())
        self.pin.clear()
        self.accept()


class ReprintDialog(QDialog):
    """Recent paid orders; the chosen one is reprinted (the agent marks the copy 重印/DUPLICATE).

    ``GET /api/v1/orders?state=paid`` fills the list (newest first), the last order paid at this
    till is preselected; ``POST /api/v1/orders/{id}/reprint`` queues the copy.  The result and any
    refusal go to ``message`` (the window's status line); the printer's own state arrives later
    as a ``printer.status`` event.  开发票 opens ``InvoiceDialog`` for the chosen order.
    """

    message = Signal(str, bool)

    def __init__(self, api: ApiClient, preselect: str | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("reprint_dialog")
        self.setWindowTitle(tr("reprint.title"))
        self.resize(560, 460)
        self.api = api
        self.preselect = preselect
        lay = QVBoxLayout(self)
        self.list = QListWidget(self)
        self.list.setObjectName("reprint_list")
        self.list.setStyleSheet("font-size: 16px;")
        lay.addWidget(self.list, 1)
        self.info = QLabel(self)
        self.info.setWordWrap(True)
        lay.addWidget(self.info)
        row = QHBoxLayout()
        self.refresh_button = QPushButton(tr("reprint.load"), self)
        self.refresh_button.clicked.connect(self.load)
        self.reprint_button = QPushButton(tr("btn.reprint"), self)
        self.reprint_button.setObjectName("reprint_ok")
        self.reprint_button.setStyleSheet("font-weight: bold;")
        self.reprint_button.clicked.connect(self.reprint)
        self.invoice_button = QPushButton(tr("btn.invoice"), self)
        self.invoice_button.setObjectName("reprint_invoice")
        self.invoice_button.clicked.connect(self.open_invoice)
        close = QPushButton(tr("dlg.cancel"), self)
        close.clicked.connect(self.reject)
        for b in (self.refresh_button, close, self.invoice_button, self.reprint_button):
            b.setMinimumHeight(48)
            row.addWidget(b)
        lay.addLayout(row)
        self.load()

    def load(self) -> None:
        self.api.call("GET", "/api/v1/orders", {"state": "paid", "limit": 30}, on_ok=self._on_orders,
                      on_error=self._failed)

    def _on_orders(self, orders: Any) -> None:
        self.list.clear()
        rows = sorted((o for o in orders or [] if isinstance(o, dict)),
                      key=lambda o: int(o.get("paid_at_ms") or o.get("created_at_ms") or 0), reverse=True)
        for o in rows:
            ms = o.get("paid_at_ms") or o.get("created_at_ms")
            when = datetime.fromtimestamp(int(ms) / 1000).strftime("%m-%d %H:%M") if ms else ""
            item = QListWidgetItem(tr("reprint.row", receipt=o.get("receipt_no", ""), time=when,
                                      amount=money(int(o.get("payable_fen") or 0)), cashier=o.get("cashier") or ""))
            item.setData(Qt.ItemDataRole.UserRole, str(o["order_id"]))
            item.setData(Qt.ItemDataRole.UserRole + 1, str(o.get("receipt_no") or ""))
            self.list.addItem(item)
            if str(o["order_id"]) == self.preselect:
                self.list.setCurrentItem(item)
        if not rows:
            self.info.setText(tr("reprint.none"))
        elif self.list.currentItem() is None:
            self.list.setCurrentRow(0)

    def reprint(self) -> None:
        item: QListWidgetItem | None = self.list.currentItem()
        if item is None:
            self.info.setText(tr("reprint.pick"))
            return
        self._receipt = str(item.data(Qt.ItemDataRole.UserRole + 1))
        self.reprint_button.setEnabled(False)
        self.api.call("POST", f"/api/v1/orders/{item.data(Qt.ItemDataRole.UserRole)}/reprint", None,
                      on_ok=self._done, on_error=self._failed)

    def _done(self, _: Any) -> None:
        self.message.emit(tr("reprint.done", receipt=self._receipt), False)
        self.accept()

    def open_invoice(self) -> InvoiceDialog | None:
        item: QListWidgetItem | None = self.list.currentItem()
        if item is None:
            self.info.setText(tr("reprint.pick"))
            return None
        dlg = InvoiceDialog(self.api, str(item.data(Qt.ItemDataRole.UserRole)),
                            str(item.data(Qt.ItemDataRole.UserRole + 1)), self)
        dlg.message.connect(self.message)
        dlg.open()
        return dlg

    def _failed(self, err: ApiError) -> None:
        self.reprint_button.setEnabled(True)
        text = tr("err.agent_down") if err.status == 0 else error_text(err.code, err.message, **err.details)
        self.info.setStyleSheet("color: #B71C1C; font-weight: bold;")
        self.info.setText(text)
        self.message.emit(text, True)


class InvoiceDialog(QDialog):
    """开发票 for one paid order: buyer, optional tax id and e-mail; the trade center issues it (online only).

    ``GET /api/v1/orders/{id}/invoice`` first: an order that has its invoice already shows it (one per
    order).  ``POST`` asks for it; the invoice number, or the agent's refusal in words, is shown here
    and on ``message`` (the window's status line).
    """

    message = Signal(str, bool)
    issued = Signal(object)

    def __init__(self, api: ApiClient, order_id: str, receipt_no: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("invoice_dialog")
        self.setWindowTitle(tr("invoice.title", receipt=receipt_no or order_id[:8]))
        self.setMinimumWidth(520)
        self.api = api
        self.path = PATHS["invoice"].format(id=order_id)
        self.request_key = _key("inv")
        self.invoice: dict[str, Any] | None = None
        lay = QVBoxLayout(self)
        head = QLabel(tr("invoice.title", receipt=receipt_no or order_id[:8]), self)
        head.setStyleSheet("font-size: 18px; font-weight: bold;")
        lay.addWidget(head)
        form = QFormLayout()
        self.title_edit = QLineEdit(self)
        self.title_edit.setObjectName("invoice_title")
        self.title_edit.setPlaceholderText(tr("invoice.buyer_hint"))
        self.title_edit.setMaxLength(100)
        self.tax_edit = QLineEdit(self)
        self.tax_edit.setObjectName("invoice_tax_id")
        self.tax_edit.setPlaceholderText(tr("invoice.tax_id_hint"))
        self.tax_edit.setMaxLength(20)
        self.email_edit = QLineEdit(self)
        self.email_edit.setObjectName("invoice_email")
        self.email_edit.setMaxLength(100)
        for key, w in (("invoice.buyer", self.title_edit), ("invoice.tax_id", self.tax_edit),
                       ("invoice.email", self.email_edit)):
            w.setMinimumHeight(40)
            form.addRow(tr(key), w)
        lay.addLayout(form)
        self.info = QLabel(self)
        self.info.setObjectName("invoice_info")
        self.info.setWordWrap(True)
        self.info.setMinimumHeight(48)
        lay.addWidget(self.info)
        row = QHBoxLayout()
        self.close_button = QPushButton(tr("dlg.cancel"), self)
        self.close_button.setObjectName("invoice_close")
        self.close_button.clicked.connect(self.reject)
        self.ok_button = QPushButton(tr("invoice.submit"), self)
        self.ok_button.setObjectName("invoice_ok")
        self.ok_button.setStyleSheet("font-weight: bold;")
        self.ok_button.clicked.connect(self.submit)
        for b in (self.close_button, self.ok_button):
            b.setMinimumHeight(48)
            row.addWidget(b)
        lay.addLayout(row)
        self.api.call("GET", self.path, on_ok=self._on_existing, on_error=self._no_invoice)

    def _say(self, text: str, style: str) -> None:
        self.info.setStyleSheet(style)
        self.info.setText(text)

    def _on_existing(self, body: Any) -> None:
        if not isinstance(body, dict) or self.invoice is not None:
            return
        if body.get("state") == "issued":
            self._show_issued(body)
        else:  # asked before and the center's answer was lost: send the same request again
            for e, key in ((self.title_edit, "title"), (self.tax_edit, "tax_id"), (self.email_edit, "email")):
                e.setText(str(body.get(key) or ""))
            self.request_key = str(body.get("request_key") or self.request_key)
            self._say(tr("invoice.pending"), BUSY_STYLE)

    def _no_invoice(self, _: ApiError) -> None:
        """No invoice yet (404): the form stays empty."""

    def submit(self) -> None:
        title, tax_id, email = (self.title_edit.text().strip(), self.tax_edit.text().strip().upper(),
                                self.email_edit.text().strip())
        if not title:
            self._say(tr("invoice.need_title"), ERROR_STYLE)
            return
        if tax_id and not re.fullmatch(r"[0-9A-Z]{15,20}", tax_id):
            self._say(tr("invoice.bad_tax_id"), ERROR_STYLE)
            return
        if email and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", email):
            self._say(tr("invoice.bad_email"), ERROR_STYLE)
            return
        body: dict[str, Any] = {"title": title, "request_key": self.request_key}
        if tax_id:
            body["tax_id"] = tax_id
        if email:
            body["email"] = email
        self.ok_button.setEnabled(False)
        self._say(tr("invoice.busy"), BUSY_STYLE)
        self.api.call("POST", self.path, body, on_ok=self._done, on_error=self._failed)

    def _done(self, body: Any) -> None:
        if not isinstance(body, dict):
            return
        self._show_issued(body)
        self.message.emit(self._issued_text(body), False)
        self.issued.emit(body)

    @staticmethod
    def _issued_text(inv: dict[str, Any]) -> str:
        return tr("invoice.issued", no=inv.get("invoice_no", ""), amount=format_fen(int(inv.get("amount_fen") or 0)))

    def _show_issued(self, inv: dict[str, Any]) -> None:
        self.invoice = inv
        for e, key in ((self.title_edit, "title"), (self.tax_edit, "tax_id"), (self.email_edit, "email")):
            e.setText(str(inv.get(key) or ""))  # as the center issued it
        self._say(self._issued_text(inv) + "\n" + tr("invoice.issued_detail", title=inv.get("title", "")), OK_STYLE)
        for e in (self.title_edit, self.tax_edit, self.email_edit):
            e.setReadOnly(True)
        self.ok_button.hide()
        self.close_button.setText(tr("dlg.close"))

    def _failed(self, err: ApiError) -> None:
        self.ok_button.setEnabled(True)
        if err.code not in UNKNOWN_OUTCOME:
            self.request_key = _key("inv")
        text = _refusal(err, "invoice.offline")
        self._say(text, ERROR_STYLE)
        self.message.emit(text, True)


class MemberRegisterDialog(QDialog):
    """会员注册: phone and name (plate optional) → ``POST /api/v1/members`` (online only).

    On success ``registered(member)`` carries the member as a lookup returns it (the window puts it on
    the order) and the dialog closes; a refusal (offline, phone already a member's) stays in the dialog.
    """

    registered = Signal(object)
    message = Signal(str, bool)

    def __init__(self, api: ApiClient, phone: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("member_register_dialog")
        self.setWindowTitle(tr("member.reg_title"))
        self.setMinimumWidth(480)
        self.api = api
        self.request_key = _key("reg")
        lay = QVBoxLayout(self)
        head = QLabel(tr("member.reg_title"), self)
        head.setStyleSheet("font-size: 18px; font-weight: bold;")
        lay.addWidget(head)
        form = QFormLayout()
        self.phone_edit = QLineEdit(phone.strip() if phone.strip().isdigit() else "", self)
        self.phone_edit.setObjectName("reg_phone")
        self.phone_edit.setMaxLength(11)
        self.name_edit = QLineEdit(self)
        self.name_edit.setObjectName("reg_name")
        self.name_edit.setMaxLength(30)
        self.plate_edit = QLineEdit(self)
        self.plate_edit.setObjectName("reg_plate")
        self.plate_edit.setMaxLength(10)
        self.plate_edit.setPlaceholderText("粤B12345")
        for key, w in (("member.phone", self.phone_edit), ("member.name", self.name_edit),
                       ("member.plate", self.plate_edit)):
            w.setMinimumHeight(40)
            form.addRow(tr(key), w)
        lay.addLayout(form)
        self.info = QLabel(self)
        self.info.setObjectName("reg_info")
        self.info.setWordWrap(True)
        self.info.setMinimumHeight(48)
        lay.addWidget(self.info)
        row = QHBoxLayout()
        cancel = QPushButton(tr("dlg.cancel"), self)
        cancel.clicked.connect(self.reject)
        self.ok_button = QPushButton(tr("member.reg_submit"), self)
        self.ok_button.setObjectName("reg_ok")
        self.ok_button.setStyleSheet("font-weight: bold;")
        self.ok_button.clicked.connect(self.submit)
        for b in (cancel, self.ok_button):
            b.setMinimumHeight(48)
            row.addWidget(b)
        lay.addLayout(row)

    def _say(self, text: str, style: str) -> None:
        self.info.setStyleSheet(style)
        self.info.setText(text)

    def submit(self) -> None:
        phone, name = self.phone_edit.text().strip(), self.name_edit.text().strip()
        plate = self.plate_edit.text().strip().upper()
        if not re.fullmatch(r"1[0-9]{10}", phone):
            self._say(tr("member.bad_phone"), ERROR_STYLE)
            return
        if not 1 <= len(name) <= 30:
            self._say(tr("member.need_name"), ERROR_STYLE)
            return
        body: dict[str, Any] = {"phone": phone, "name": name, "request_key": self.request_key}
        if plate:
            body["plate"] = plate
        self.ok_button.setEnabled(False)
        self._say(tr("member.busy"), BUSY_STYLE)
        self.api.call("POST", PATHS["member_register"], body, on_ok=self._done, on_error=self._failed)

    def _done(self, member: Any) -> None:
        if not isinstance(member, dict):
            return
        self.registered.emit(member)
        self.message.emit(tr("member.registered", name=member.get("name", ""), phone=member.get("phone", "")), False)
        self.accept()

    def _failed(self, err: ApiError) -> None:
        self.ok_button.setEnabled(True)
        if err.code not in UNKNOWN_OUTCOME:
            self.request_key = _key("reg")  # a definite refusal: a corrected entry is a new request
        self._say(_refusal(err, "member.offline"), ERROR_STYLE)


class ItemPickDialog(QDialog):
    """Items found by name (``GET /api/v1/catalog?q=``); a tap adds the item to the order."""

    def __init__(self, checkout: CheckoutController, items: list[dict[str, Any]],
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("item_pick_dialog")
        self.setWindowTitle(tr("search.title", n=len(items)))
        self.resize(480, 420)
        self.co = checkout
        lay = QVBoxLayout(self)
        lay.addWidget(QLabel(tr("search.title", n=len(items)), self))
        self.list = QListWidget(self)
        self.list.setObjectName("item_list")
        self.list.setStyleSheet("QListWidget { font-size: 18px; } QListWidget::item { padding: 6px; }")
        for it in items:
            row = QListWidgetItem(f"{it.get('name', '')}    {money(int(it.get('price_fen') or 0))}")
            row.setData(Qt.ItemDataRole.UserRole, str(it.get("sku") or it.get("plu") or ""))
            self.list.addItem(row)
        self.list.itemClicked.connect(self._picked)
        self.list.itemActivated.connect(self._picked)
        lay.addWidget(self.list, 1)
        cancel = QPushButton(tr("dlg.cancel"), self)
        cancel.setMinimumHeight(48)
        cancel.clicked.connect(self.reject)
        lay.addWidget(cancel)

    def _picked(self, item: QListWidgetItem) -> None:
        self.co.add_item(str(item.data(Qt.ItemDataRole.UserRole)))
        self.accept()
