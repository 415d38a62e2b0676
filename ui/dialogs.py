"""Dialogs of the cashier window: price change, prepay (by amount or volume), refund, reprint, item pick.

``PriceDialog`` asks twice: the first press of OK checks the input and shows
what will change, the second sends ``POST /api/v1/prices`` with
``confirm=true`` (the agent's own second-confirmation rule).  Prices are typed
in yuan per litre and converted exactly to fen (``parse_yuan``); a bad entry is
refused in the dialog.  The call runs on the worker thread; the dialog closes
on success and shows the agent's refusal otherwise.
"""

from __future__ import annotations

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
from ui.checkout import CheckoutController
from ui.client import ApiClient, ApiError
from ui.i18n import error_text, tr
from ui.viewmodels import money

__all__ = ["ItemPickDialog", "PrepayDialog", "PriceDialog", "RefundDialog", "ReprintDialog", "parse_litres"]


def parse_litres(text: str) -> int:
    """Litres typed by the cashier (``"20"``, ``"12.5"``) to mL; ``ValueError`` if not a positive volume."""
    try:
        whole, _, frac = text.strip().partition(".")
        if not whole.isdigit() or (frac and not frac.isdigit()) or len(frac) > 3:
            raise ValueError(text)
        ml = int(whole) * 1000 + int((frac + "000")[:3])
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
    as a ``printer.status`` event.
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
        close = QPushButton(tr("dlg.cancel"), self)
        close.clicked.connect(self.reject)
        for b in (self.refresh_button, close, self.reprint_button):
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

    def _failed(self, err: ApiError) -> None:
        self.reprint_button.setEnabled(True)
        text = tr("err.agent_down") if err.status == 0 else error_text(err.code, err.message, **err.details)
        self.info.setStyleSheet("color: #B71C1C; font-weight: bold;")
        self.info.setText(text)
        self.message.emit(text, True)


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
