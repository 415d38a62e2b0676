"""Dialogs of the cashier window: price change (more — shift close, reports — come with issue 7).

``PriceDialog`` asks twice: the first press of OK checks the input and shows
what will change, the second sends ``POST /api/v1/prices`` with
``confirm=true`` (the agent's own second-confirmation rule).  Prices are typed
in yuan per litre and converted exactly to fen (``parse_yuan``); a bad entry is
refused in the dialog.  The call runs on the worker thread; the dialog closes
on success and shows the agent's refusal otherwise.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from agent.money import MoneyError, format_fen, parse_yuan
from ui.checkout import CheckoutController
from ui.client import ApiClient, ApiError
from ui.i18n import error_text, tr

__all__ = ["PrepayDialog", "PriceDialog", "RefundDialog"]


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
    """Prepay (预付/定额): pump + amount + tender; the agent charges, then authorizes the pump with the preset.

    An underrun is refunded by the agent to the original tender; the checkout
    controller announces it on both screens.
    """

    def __init__(self, checkout: CheckoutController, pumps: list[int], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("prepay_dialog")
        self.setWindowTitle(tr("prepay.title"))
        self.co = checkout
        form = QFormLayout(self)
        self.pump = QComboBox(self)
        self.pump.setObjectName("prepay_pump")
        for pid in pumps:
            self.pump.addItem(tr("pump.title", n=pid), pid)
        self.amount = QLineEdit(self)
        self.amount.setObjectName("prepay_amount")
        self.amount.setMinimumHeight(40)
        form.addRow(tr("prepay.pump"), self.pump)
        form.addRow(tr("prepay.amount"), self.amount)
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

    def _pay(self) -> None:
        method = str(self.sender().property("method"))
        self.co.prepay(int(self.pump.currentData()), self.amount.text(), method)
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
