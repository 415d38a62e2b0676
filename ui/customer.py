"""Customer display (客显): ads when idle, the order as it changes, the QR to pay, the result.

Shows one ``viewmodels.CustomerView`` at a time (from ``CheckoutController``):
each order line as name + "litres × unit price" with its amount, the discounts
by name, subtotal, discount and the payable total; the merchant QR beside the
order while an online leg waits; the result with change and thank-you.  Big
text: sizes scale with the window height, so the same layout reads at 800×600
and at 1920×1080.  Limits: the idle slideshow is text slides (no image or video
assets yet); live litres while fuelling are on the pump's own display, not here.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QStackedWidget,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ui.i18n import tr
from ui.viewmodels import CustomerView, Phase
from ui.widgets.qr import QrWidget

__all__ = ["CustomerDisplay"]

SLIDE_MS = 6000
SLIDES = ("cust.ad1", "cust.ad2", "cust.ad3")
SLIDE_COLOURS = ("#0D47A1", "#1B5E20", "#BF360C")


class CustomerDisplay(QWidget):
    """The customer-facing window (second monitor, or a second window)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent, Qt.WindowType.Window | Qt.WindowType.WindowDoesNotAcceptFocus)
        self.setObjectName("customer_display")
        # display only: showing it (on the second screen, or again when a screen is plugged in) must
        # never take the keyboard from the cashier's window, where the barcode scanner types
        self.setAttribute(Qt.WidgetAttribute.WA_ShowWithoutActivating)
        self.view = CustomerView(Phase.IDLE, headline=tr("cust.welcome"))
        self.slide = 0
        self.station_name = ""
        self.stack = QStackedWidget(self)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(self.stack)

        # idle: welcome + rotating slides
        self.idle_page = QWidget(self)
        self.idle_page.setObjectName("idle_page")
        il = QVBoxLayout(self.idle_page)
        self.welcome = QLabel(self.idle_page)
        self.welcome.setObjectName("welcome")
        self.slide_label = QLabel(self.idle_page)
        self.slide_label.setObjectName("slide")
        self.slide_label.setWordWrap(True)
        for w in (self.welcome, self.slide_label):
            w.setAlignment(Qt.AlignmentFlag.AlignCenter)
            il.addWidget(w, 1)
        self.stack.addWidget(self.idle_page)

        # order (+ QR when paying by merchant code)
        self.order_page = QWidget(self)
        self.order_page.setObjectName("order_page")
        ol = QHBoxLayout(self.order_page)
        left = QVBoxLayout()
        self.headline = QLabel(self.order_page)
        self.headline.setObjectName("headline")
        left.addWidget(self.headline)
        self.table = QTableWidget(0, 2, self.order_page)  # "name\ndetail" | amount
        self.table.setObjectName("customer_lines")
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.table.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.table.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.table.setShowGrid(False)
        self.table.setAlternatingRowColors(True)
        left.addWidget(self.table, 1)
        totals = QGridLayout()
        self.subtotal_name, self.subtotal = QLabel(self.order_page), QLabel(self.order_page)
        self.discount_name, self.discount = QLabel(self.order_page), QLabel(self.order_page)
        self.payable_name, self.payable = QLabel(self.order_page), QLabel(self.order_page)
        self.discount_lines = QLabel(self.order_page)
        self.discount_lines.setObjectName("customer_discounts")
        self.discount_lines.setWordWrap(True)
        self.payable.setObjectName("customer_payable")
        self.discount.setObjectName("customer_discount")
        for r, (a, b) in enumerate(((self.subtotal_name, self.subtotal), (self.discount_name, self.discount),
                                    (self.payable_name, self.payable))):
            b.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            totals.addWidget(a, r, 0)
            totals.addWidget(b, r, 1)
        left.addWidget(self.discount_lines)
        left.addLayout(totals)
        ol.addLayout(left, 3)
        self.qr_box = QWidget(self.order_page)
        ql = QVBoxLayout(self.qr_box)
        self.qr = QrWidget(self.qr_box)
        self.qr.setObjectName("qr")
        self.qr_caption = QLabel(self.qr_box)
        self.qr_caption.setObjectName("qr_caption")
        self.qr_caption.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.qr_caption.setWordWrap(True)
        ql.addWidget(self.qr, 1)
        ql.addWidget(self.qr_caption)
        ol.addWidget(self.qr_box, 2)
        self.stack.addWidget(self.order_page)

        # result
        self.result_page = QWidget(self)
        self.result_page.setObjectName("result_page")
        rl = QVBoxLayout(self.result_page)
        self.result_headline = QLabel(self.result_page)
        self.result_headline.setObjectName("result_headline")
        self.result_amount = QLabel(self.result_page)
        self.result_amount.setObjectName("result_amount")
        self.result_message = QLabel(self.result_page)
        self.result_message.setObjectName("result_message")
        self.result_message.setWordWrap(True)
        for w in (self.result_headline, self.result_amount, self.result_message):
            w.setAlignment(Qt.AlignmentFlag.AlignCenter)
            rl.addWidget(w, 1)
        self.stack.addWidget(self.result_page)

        self.slide_timer = QTimer(self)
        self.slide_timer.setInterval(SLIDE_MS)
        self.slide_timer.timeout.connect(self._next_slide)
        self.slide_timer.start()
        self.resize(1024, 600)
        self._restyle()
        self.show_view(self.view)

    # ------------------------------------------------------------ content
    def show_view(self, view: object) -> None:
        if not isinstance(view, CustomerView):
            return
        self.view = view
        if view.phase is Phase.IDLE:
            self.stack.setCurrentWidget(self.idle_page)
            self.welcome.setText(tr("cust.welcome") + (f"\n{self.station_name}" if self.station_name else ""))
            self._show_slide()
            return
        if view.phase in (Phase.PAID, Phase.FAILED):
            self.stack.setCurrentWidget(self.result_page)
            self.result_headline.setText(view.headline)
            self.result_amount.setText(view.payable if view.phase is Phase.PAID else "")
            self.result_message.setText(view.message)
            colour = "#2E7D32" if view.phase is Phase.PAID else "#C62828"
            self.result_headline.setStyleSheet(f"color: {colour}; font-weight: bold;"
                                               f" font-size: {self._px(0.12)}px;")
            return
        self.stack.setCurrentWidget(self.order_page)
        self.headline.setText(view.headline if view.phase is Phase.ORDER else tr("cust.your_order"))
        self.table.setRowCount(len(view.rows))
        for r, row in enumerate(view.rows):
            for c, text in enumerate((f"{row.title}\n{row.detail}" if row.detail else row.title, row.amount)):
                item = QTableWidgetItem(text)
                if c == 1:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(r, c, item)
        self.table.resizeRowsToContents()
        self.discount_lines.setText("\n".join(f"{d.title}  {d.amount}" for d in view.discounts))
        self.discount_lines.setVisible(bool(view.discounts))
        self.subtotal.setText(view.subtotal)
        self.discount.setText(view.discount or "¥0.00")
        self.payable.setText(view.payable)
        self.qr_box.setVisible(view.phase is Phase.QR)
        self.qr.set_payload(view.qr_payload)
        self.qr_caption.setText(view.headline if view.phase is Phase.QR else "")

    def retranslate(self) -> None:
        self.setWindowTitle(tr("app.customer_title"))
        self.subtotal_name.setText(tr("order.subtotal"))
        self.discount_name.setText(tr("order.discount"))
        self.payable_name.setText(tr("order.payable"))
        self.show_view(self.view)

    def _show_slide(self) -> None:
        key = SLIDES[self.slide % len(SLIDES)]
        self.slide_label.setText(tr(key))
        colour = SLIDE_COLOURS[self.slide % len(SLIDE_COLOURS)]
        self.idle_page.setStyleSheet(f"QWidget#idle_page {{ background: {colour}; }}"
                                     f"QLabel {{ color: white; }}")

    def _next_slide(self) -> None:
        self.slide += 1
        if self.view.phase is Phase.IDLE:
            self._show_slide()

    # ------------------------------------------------------------ sizes
    def _px(self, fraction: float) -> int:
        return max(14, int(self.height() * fraction))

    def _restyle(self) -> None:
        self.welcome.setStyleSheet(f"font-size: {self._px(0.11)}px; font-weight: bold;")
        self.slide_label.setStyleSheet(f"font-size: {self._px(0.07)}px;")
        self.headline.setStyleSheet(f"font-size: {self._px(0.06)}px; font-weight: bold;")
        self.table.setStyleSheet(f"font-size: {self._px(0.045)}px;")
        for w in (self.subtotal_name, self.subtotal, self.discount_name, self.discount):
            w.setStyleSheet(f"font-size: {self._px(0.045)}px;")
        self.discount_lines.setStyleSheet(f"font-size: {self._px(0.04)}px; color: #2E7D32;")
        self.discount.setStyleSheet(f"font-size: {self._px(0.045)}px; color: #2E7D32;")
        for w in (self.payable_name, self.payable):
            w.setStyleSheet(f"font-size: {self._px(0.085)}px; font-weight: bold; color: #C62828;")
        self.qr_caption.setStyleSheet(f"font-size: {self._px(0.05)}px; font-weight: bold;")
        self.result_amount.setStyleSheet(f"font-size: {self._px(0.09)}px; font-weight: bold;")
        self.result_message.setStyleSheet(f"font-size: {self._px(0.06)}px;")

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._restyle()
        self.show_view(self.view)
