"""Order panel and payment panel of the cashier window (both read ``CheckoutController``)."""

from __future__ import annotations

from typing import TypeVar

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from agent.money import format_fen
from ui.checkout import CheckoutController
from ui.i18n import tr
from ui.viewmodels import Keypad, Phase, coupon_text, money, parse_amount
from ui.widgets.keypad import KeypadWidget

__all__ = ["OrderPanel", "PaymentPanel"]


W = TypeVar("W", bound=QWidget)


def _big(label: W, px: int, bold: bool = True) -> W:
    label.setStyleSheet(f"font-size: {px}px;" + (" font-weight: bold;" if bold else ""))
    return label


class OrderPanel(QFrame):
    """Lines, member (lookup, or 注册会员 for a new one), search by barcode/PLU, amount line, discounts
    explained, totals, pay."""

    #: the cashier asked to register a new member (the text of the member field: a phone, maybe)
    register_requested = Signal(str)

    def __init__(self, checkout: CheckoutController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("order_panel")
        self.co = checkout
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        head = QHBoxLayout()
        self.title = _big(QLabel(self), 18)
        self.receipt = QLabel(self)
        self.receipt.setObjectName("receipt_no")
        self.receipt.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        head.addWidget(self.title, 1)
        head.addWidget(self.receipt)
        lay.addLayout(head)

        member_row = QHBoxLayout()
        self.member_edit = QLineEdit(self)
        self.member_edit.setObjectName("member_edit")
        self.member_edit.returnPressed.connect(self._lookup_member)
        self.member_button = QPushButton(self)
        self.member_button.clicked.connect(self._lookup_member)
        self.member_label = QLabel(self)
        self.member_label.setObjectName("member_label")
        self.register_button = QPushButton(self)
        self.register_button.setObjectName("member_register_button")
        self.register_button.clicked.connect(lambda: self.register_requested.emit(self.member_edit.text()))
        member_row.addWidget(self.member_edit, 1)
        member_row.addWidget(self.member_button)
        member_row.addWidget(self.register_button)
        member_row.addWidget(self.member_label)
        lay.addLayout(member_row)

        self.table = QTableWidget(0, 3, self)
        self.table.setObjectName("order_lines")
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.table.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setWordWrap(False)
        self.table.setStyleSheet("font-size: 15px;")
        lay.addWidget(self.table, 1)
        self.empty = QLabel(self)
        self.empty.setWordWrap(True)
        self.empty.setStyleSheet("color: #607D8B; font-size: 14px;")
        lay.addWidget(self.empty)

        search = QHBoxLayout()
        self.search_edit = QLineEdit(self)
        self.search_edit.setObjectName("search_edit")
        self.search_edit.returnPressed.connect(self._add_item)
        self.add_button = QPushButton(self)
        self.add_button.clicked.connect(self._add_item)
        self.amount_button = QPushButton(self)
        self.amount_button.setObjectName("amount_button")
        self.amount_button.clicked.connect(self._add_amount)
        search.addWidget(self.search_edit, 1)
        search.addWidget(self.add_button)
        search.addWidget(self.amount_button)
        lay.addLayout(search)

        self.discounts = QLabel(self)
        self.discounts.setObjectName("discounts")
        self.discounts.setWordWrap(True)
        self.discounts.setStyleSheet("color: #2E7D32; font-size: 14px;")
        lay.addWidget(self.discounts)
        totals = QGridLayout()
        self.subtotal_name, self.subtotal = QLabel(self), QLabel(self)
        self.discount_name, self.discount = QLabel(self), QLabel(self)
        self.payable_name, self.payable = _big(QLabel(self), 22), _big(QLabel(self), 26)
        self.payable.setObjectName("payable")
        for r, (a, b) in enumerate(((self.subtotal_name, self.subtotal), (self.discount_name, self.discount),
                                    (self.payable_name, self.payable))):
            b.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            totals.addWidget(a, r, 0)
            totals.addWidget(b, r, 1)
        lay.addLayout(totals)

        buttons = QHBoxLayout()
        self.remove_button = QPushButton(self)
        self.remove_button.clicked.connect(self._remove)
        self.clear_button = QPushButton(self)
        self.clear_button.setObjectName("clear_button")
        self.clear_button.clicked.connect(self.co.cancel_order)
        self.pay_button = QPushButton(self)
        self.pay_button.setObjectName("pay_button")
        self.pay_button.setMinimumHeight(56)
        self.pay_button.setStyleSheet("background: #2E7D32; color: white; font-size: 20px; font-weight: bold;"
                                      " border-radius: 8px;")
        self.pay_button.clicked.connect(self.co.start_payment)
        for btn in (self.remove_button, self.clear_button):
            btn.setMinimumHeight(56)
            buttons.addWidget(btn)
        buttons.addWidget(self.pay_button, 2)
        lay.addLayout(buttons)
        self.co.order_changed.connect(self.refresh)
        self.retranslate()

    def retranslate(self) -> None:
        self.title.setText(tr("order.title"))
        self.member_edit.setPlaceholderText(tr("order.member_hint"))
        self.member_button.setText(tr("order.member"))
        self.register_button.setText(tr("member.register"))
        self.search_edit.setPlaceholderText(tr("order.search"))
        self.add_button.setText(tr("order.add_item"))
        self.amount_button.setText(tr("order.amount_line"))
        self.subtotal_name.setText(tr("order.subtotal"))
        self.discount_name.setText(tr("order.discount"))
        self.payable_name.setText(tr("order.payable"))
        self.remove_button.setText(tr("order.remove"))
        self.clear_button.setText(tr("order.clear"))
        self.pay_button.setText(tr("order.pay") + "  F9")
        self.empty.setText(tr("order.empty"))
        self.refresh()

    def refresh(self) -> None:
        d = self.co.draft
        self.receipt.setText(d.receipt_no or "")
        self.member_label.setText(d.member_name or tr("order.member_none"))
        self.table.setRowCount(len(d.lines))
        for r, ln in enumerate(d.lines):
            cells = (ln.title(d.grade_names), ln.detail(), money(ln.amount_fen))
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if c == 2:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(r, c, item)
        self.empty.setVisible(d.is_empty())
        self.discounts.setText("\n".join(f"{x.name}  -{money(x.amount_fen)}" for x in d.discounts))
        self.discounts.setVisible(bool(d.discounts))
        self.subtotal.setText(money(d.subtotal_fen))
        self.discount.setText("-" + money(d.discount_fen) if d.discount_fen else money(0))
        self.payable.setText(money(d.payable_fen))
        self.pay_button.setEnabled(not d.is_empty())

    def _lookup_member(self) -> None:
        self.co.lookup_member(self.member_edit.text())

    def _add_item(self) -> None:
        text = self.search_edit.text()
        self.search_edit.clear()
        self.co.find_item(text)

    def _add_amount(self) -> None:
        text = self.search_edit.text()
        self.search_edit.clear()
        self.co.add_amount(text)

    def _remove(self) -> None:
        row = self.table.currentRow()
        if 0 <= row < len(self.co.draft.lines):
            self.co.remove_line(self.co.draft.lines[row].line_no)


class PaymentPanel(QFrame):
    """Tenders of a (combined) payment: cash keypad with change, scan, merchant QR, stored value; with a
    member on the order, their coupons as a pick list and points to redeem (the agent re-quotes)."""

    METHODS = ("cash", "qr_scan", "qr_show", "stored_value", "coupon")

    def __init__(self, checkout: CheckoutController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("payment_panel")
        self.co = checkout
        self.keypad = Keypad()
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        self.title = _big(QLabel(self), 18)
        lay.addWidget(self.title)
        grid = QGridLayout()
        self.names = [QLabel(self) for _ in range(4)]
        self.payable, self.paid, self.remaining, self.change = (_big(QLabel(self), 22) for _ in range(4))
        self.payable.setObjectName("pay_payable")
        self.remaining.setObjectName("pay_remaining")
        self.change.setObjectName("pay_change")
        self.change.setStyleSheet("font-size: 22px; font-weight: bold; color: #C62828;")
        # two columns (payable | remaining, paid | change): the page, member row included, fits 1024x768
        for i, (n, v) in enumerate(zip(self.names, (self.payable, self.paid, self.remaining, self.change),
                                       strict=True)):
            v.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            grid.addWidget(n, i % 2, 2 * (i // 2))
            grid.addWidget(v, i % 2, 2 * (i // 2) + 1)
        grid.setHorizontalSpacing(16)
        lay.addLayout(grid)
        self.legs = QListWidget(self)
        self.legs.setObjectName("legs")
        self.legs.setMaximumHeight(90)
        self.legs.setStyleSheet("font-size: 15px;")
        self.legs.itemDoubleClicked.connect(self._remove_leg)
        lay.addWidget(self.legs)
        self.entry = _big(QLineEdit(self), 24)
        self.entry.setObjectName("entry")
        self.entry.setAlignment(Qt.AlignmentFlag.AlignRight)
        self.entry.textEdited.connect(self._typed)
        self.entry.returnPressed.connect(self._cash)
        lay.addWidget(self.entry)
        tenders = QGridLayout()
        self.tender_buttons: dict[str, QPushButton] = {}
        for i, m in enumerate(self.METHODS):
            b = QPushButton(self)
            b.setObjectName(f"tender_{m}")
            b.setMinimumHeight(40)
            b.setStyleSheet("font-size: 16px; font-weight: bold;")
            b.setProperty("method", m)
            b.clicked.connect(self._tender_clicked)
            tenders.addWidget(b, i // 3, i % 3)
            self.tender_buttons[m] = b
        lay.addLayout(tenders)
        member = QHBoxLayout()
        self.coupon_pick = QComboBox(self)
        self.coupon_pick.setObjectName("coupon_pick")
        self.coupon_pick.setMinimumHeight(40)
        self.coupon_pick.activated.connect(self._coupon_picked)
        self.points_edit = QLineEdit(self)
        self.points_edit.setObjectName("points_edit")
        self.points_edit.setMinimumHeight(40)
        self.points_edit.setMaximumWidth(140)
        self.points_edit.setMinimumWidth(120)
        self.points_button = QPushButton(self)
        self.points_button.setObjectName("points_button")
        self.points_button.setMinimumHeight(40)
        self.points_button.setStyleSheet("font-size: 16px; font-weight: bold;")
        self.points_button.clicked.connect(self._use_points)
        self.points_button.hide()  # shown with a member on the order
        tenders.addWidget(self.points_button, (len(self.METHODS)) // 3, len(self.METHODS) % 3)
        member.addWidget(self.coupon_pick, 1)  # the row's width, so a coupon's text is not cut off
        member.addWidget(self.points_edit)
        self.member_row = QWidget(self)
        self.member_row.setLayout(member)
        member.setContentsMargins(0, 0, 0, 0)
        self.member_row.hide()  # shown with a member on the order
        lay.addWidget(self.member_row)
        self.pad = KeypadWidget(self)
        self.pad.pressed.connect(self._key)
        lay.addWidget(self.pad, 1)
        row = QHBoxLayout()
        self.back_button = QPushButton(self)
        self.back_button.setObjectName("pay_back")
        self.back_button.setMinimumHeight(50)
        self.back_button.clicked.connect(self.co.leave_payment)
        self.confirm_button = QPushButton(self)
        self.confirm_button.setObjectName("pay_confirm")
        self.confirm_button.setMinimumHeight(50)
        self.confirm_button.setStyleSheet("background: #2E7D32; color: white; font-size: 20px; font-weight: bold;"
                                          " border-radius: 8px;")
        self.confirm_button.clicked.connect(self.co.pay)
        row.addWidget(self.back_button)
        row.addWidget(self.confirm_button, 2)
        lay.addLayout(row)
        self.co.payment_changed.connect(self.refresh)
        self.retranslate()

    def retranslate(self) -> None:
        self.title.setText(tr("pay.title"))
        for n, key in zip(self.names, ("order.payable", "pay.paid_legs", "pay.remaining", "pay.change"),
                          strict=True):
            n.setText(tr(key))
        for m, b in self.tender_buttons.items():
            b.setText(tr(f"pay.{m}"))
        self.back_button.setText(tr("pay.back"))
        self.confirm_button.setText(tr("pay.confirm") + "  F9")
        self.entry.setPlaceholderText(tr("pay.given"))
        self.points_button.setText(tr("points.apply"))
        self.refresh()

    def refresh(self) -> None:
        p = self.co.payment
        if p is None:
            return
        self.payable.setText(money(p.payable_fen))
        self.paid.setText(money(p.paid_fen))
        self.remaining.setText(money(p.remaining_fen))
        self.change.setText(money(p.change_fen))
        self.legs.clear()
        for t in p.legs:
            extra = f"  ({tr('pay.given')} ¥{format_fen(t.given_fen)})" if t.given_fen else ""
            self.legs.addItem(f"{tr('pay.' + t.method)}  {money(t.amount_fen)}{extra}")
        self.confirm_button.setEnabled(p.complete and self.co.phase is not Phase.PAID and not self.co.busy)
        self._show_member_choices()

    def _show_member_choices(self) -> None:
        d = self.co.draft
        self.member_row.setVisible(bool(d.member_id))
        self.points_button.setVisible(bool(d.member_id))
        self.coupon_pick.clear()
        self.coupon_pick.addItem(tr("coupon.none"), "")
        for c in d.usable_coupons():
            self.coupon_pick.addItem(coupon_text(c), str(c["coupon_id"]))
        if d.coupon_id:
            i = self.coupon_pick.findData(d.coupon_id)
            if i < 0:
                self.coupon_pick.addItem(str(d.coupon_id), str(d.coupon_id))
                i = self.coupon_pick.count() - 1
            self.coupon_pick.setCurrentIndex(i)
        self.coupon_pick.setToolTip(tr("coupon.pick"))
        self.points_edit.setPlaceholderText(tr("points.available", n=d.points_available))
        if d.points_used and not self.points_edit.hasFocus():
            self.points_edit.setText(str(d.points_used))

    def _coupon_picked(self, index: int) -> None:
        self.co.use_coupon(str(self.coupon_pick.itemData(index) or ""))

    def _use_points(self) -> None:
        text = self.points_edit.text().strip() or "0"
        if not text.isdigit():
            self.co.message.emit(tr("points.bad"), True)
            return
        self.co.use_points(int(text))

    def _typed(self, text: str) -> None:
        # free text: a scanner (keyboard wedge) types long payment codes here; amounts are checked on use
        self.keypad.text = text

    def _key(self, key: str) -> None:
        if key in ("50", "100"):
            self.co.add_tender("cash", int(key) * 100)
            return
        self.entry.setText(self.keypad.press(key))

    def _amount(self) -> int | None:
        fen = self.keypad.fen()
        self.keypad.press("C")
        self.entry.clear()
        return fen

    def _cash(self) -> None:
        text = self.entry.text().strip()
        if text.isdigit() and len(text) >= 10:  # a scanned payment code, not an amount
            self.keypad.press("C")
            self.entry.clear()
            self.co.add_tender("qr_scan", None, ref=text)
            return
        self.co.add_tender("cash", self._amount())

    def _tender_clicked(self) -> None:
        method = str(self.sender().property("method"))
        text = self.entry.text().strip()
        self.keypad.press("C")
        self.entry.clear()
        if method == "cash":
            self.co.add_tender("cash", self._fen(text))
        elif method == "qr_scan":
            # the scanner types the customer's code into the entry (keyboard wedge), then this button / Enter
            self.co.add_tender("qr_scan", None, ref=text)
        elif method == "coupon":
            if text:
                self.co.use_coupon(text)
            elif self.co.draft.usable_coupons():
                self.coupon_pick.showPopup()
            else:
                self.co.message.emit(tr("pay.coupon_hint"), True)
        else:
            self.co.add_tender(method, self._fen(text))

    def _fen(self, text: str) -> int | None:
        if not text:
            return None
        try:
            return parse_amount(text)
        except ValueError:
            return -1  # refused by the controller with a clear message

    def _remove_leg(self) -> None:
        self.co.remove_tender(self.legs.currentRow())
