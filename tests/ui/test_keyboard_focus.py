"""The keyboard belongs to the till: the barcode scanner is a keyboard, so whatever window Qt thinks is
active receives its keystrokes.  The customer display (display only) never takes activation, and after
any dialog closes the till takes the keyboard back — a kiosk has no window manager to do it."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from tests.ui.conftest import LiveStation

WAIT = 15_000


def test_the_scanner_types_into_the_till_after_the_customer_display_and_dialogs(
        qtbot: Any, session: Any, live: LiveStation) -> None:
    cashier, customer = session.cashier, session.customer
    assert customer.isVisible()
    assert QApplication.activeWindow() is cashier  # the customer display was shown after it: still the till
    assert customer.windowFlags() & Qt.WindowType.WindowDoesNotAcceptFocus

    for open_dialog in (cashier.open_refund, cashier.open_reprint, cashier.open_prepay):
        dlg = open_dialog()
        qtbot.waitUntil(lambda d=dlg: d.isVisible() and QApplication.activeWindow() is d, timeout=WAIT)
        dlg.reject()
        qtbot.waitUntil(lambda: QApplication.activeWindow() is cashier, timeout=WAIT)
        assert QApplication.focusWidget() is cashier.order_panel.search_edit

    # a scan (a keyboard wedge types the code and Enter) lands on the order
    qtbot.keyClicks(QApplication.focusWidget(), "101")
    qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: cashier.order_panel.table.rowCount() == 1, timeout=WAIT)
    # and F9 (an application shortcut) reaches the till: the payment page opens
    qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_F9)
    qtbot.waitUntil(lambda: cashier.side.currentWidget() is cashier.payment_panel, timeout=WAIT)
