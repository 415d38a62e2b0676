"""The online-only counter operations tapped through the cashier window against a live agent and center
simulator (fixtures in conftest): 会员注册 next to the member field and 开发票 from the recent orders.

Online, the new member goes on the order and the invoice number is shown; offline, or for a phone
that is already a member's, the dialog says why in Chinese and nothing reaches the center.
Screenshots of each state go to the ``shots`` directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt

from tests.ui.conftest import LiveStation
from ui.app import save_screenshot
from ui.dialogs import InvoiceDialog, MemberRegisterDialog, ReprintDialog
from ui.i18n import tr

WAIT = 20_000
PHONE = "13912345678"
TITLE = "深圳市前海加油科技有限公司"


def calls(live: LiveStation, what: str) -> int:
    with live.center.state.lock:
        return live.center.state.calls.get(what, 0)


def register_dialog(qtbot: Any, session: Any) -> MemberRegisterDialog:
    """Tap 注册会员 and return the dialog it opened (the newest one)."""
    cashier = session.cashier
    before = len(cashier.findChildren(MemberRegisterDialog))
    qtbot.mouseClick(cashier.order_panel.register_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(cashier.findChildren(MemberRegisterDialog)) == before + 1, timeout=WAIT)
    dlg: MemberRegisterDialog = cashier.findChildren(MemberRegisterDialog)[-1]
    qtbot.waitUntil(dlg.isVisible, timeout=WAIT)
    return dlg


def test_register_a_member_then_invoice_the_sale_offline_refused_in_words(
        qtbot: Any, session: Any, live: LiveStation, shots: Path) -> None:
    cashier, co = session.cashier, session.checkout
    panel = cashier.order_panel
    assert panel.register_button.text() == "注册会员"
    save_screenshot(cashier, shots / "till_member_register_1024x768.png")
    assert panel.register_button.isVisible() and panel.register_button.width() >= \
        panel.register_button.fontMetrics().horizontalAdvance("注册会员")

    # ---- 会员注册: the phone typed in the member field is taken over; the new member goes on the order
    qtbot.keyClicks(panel.member_edit, PHONE)
    dlg = register_dialog(qtbot, session)
    assert dlg.phone_edit.text() == PHONE
    dlg.name_edit.setText("赵六")  # typed with the IME (keyClicks is ASCII only)
    dlg.plate_edit.setText("粤B54321")
    save_screenshot(dlg, shots / "member_register_dialog.png")
    qtbot.mouseClick(dlg.ok_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel.member_label.text() == "赵六", timeout=WAIT)
    assert not dlg.isVisible()
    assert cashier.message_label.text() == f"会员 赵六（{PHONE}）已注册"
    member = next(m for m in live.center.state.members.values() if m["phone"] == PHONE)
    assert member["plates"] == ["粤B54321"] and co.draft.member_id == member["member_id"]

    # ---- the same phone again: refused, in words
    dup = register_dialog(qtbot, session)
    dup.name_edit.setText("赵六")
    qtbot.mouseClick(dup.ok_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dup.info.text() == "该手机号已是会员，请直接查询会员", timeout=WAIT)
    assert dup.isVisible() and dup.ok_button.isEnabled()
    save_screenshot(dup, shots / "member_register_exists.png")
    dup.reject()

    # ---- offline: refused before anything reaches the center
    live.st.agent.set_link("center", False)
    panel.member_edit.setText("13700000000")
    off = register_dialog(qtbot, session)
    off.name_edit.setText("孙七")
    qtbot.mouseClick(off.ok_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: off.info.text() == tr("member.offline"), timeout=WAIT)
    assert off.info.text() == "当前离线，不能注册会员：注册需要连接总部，请网络恢复后再试"
    save_screenshot(off, shots / "member_register_offline.png")
    off.reject()
    assert calls(live, "member.register") == 2 and len(live.center.state.members) == 1
    live.st.agent.set_link("center", True)

    # ---- a sale for the new member, paid in cash
    panel.search_edit.setText("矿泉水")
    qtbot.keyClick(panel.search_edit, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: panel.table.rowCount() == 1, timeout=WAIT)
    qtbot.mouseClick(panel.pay_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: cashier.side.currentWidget() is cashier.payment_panel, timeout=WAIT)
    qtbot.mouseClick(cashier.payment_panel.tender_buttons["cash"], Qt.MouseButton.LeftButton)
    qtbot.mouseClick(cashier.payment_panel.confirm_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: co.last_paid_order_id is not None, timeout=WAIT)
    order = live.api.get(f"/api/v1/orders/{co.last_paid_order_id}").json()
    assert order["state"] == "paid" and order["member_id"] == member["member_id"]

    # ---- 开发票 from the recent orders (the sale is preselected); offline first: refused in words
    live.st.agent.set_link("center", False)
    assert cashier.orders_button.text() == "重印 / 发票"
    qtbot.mouseClick(cashier.orders_button, Qt.MouseButton.LeftButton)
    rdlg = cashier.findChild(ReprintDialog, "reprint_dialog")
    qtbot.waitUntil(lambda: rdlg.list.count() >= 1 and rdlg.list.currentItem() is not None, timeout=WAIT)
    assert str(order["receipt_no"]) in rdlg.list.currentItem().text()
    save_screenshot(rdlg, shots / "recent_orders_invoice.png")
    qtbot.mouseClick(rdlg.invoice_button, Qt.MouseButton.LeftButton)
    inv = rdlg.findChild(InvoiceDialog, "invoice_dialog")
    qtbot.waitUntil(lambda: inv is not None and inv.isVisible(), timeout=WAIT)
    assert inv.windowTitle() == f"开发票 · 小票 {order['receipt_no']}"
    qtbot.mouseClick(inv.ok_button, Qt.MouseButton.LeftButton)  # no title yet
    assert inv.info.text() == "请填写发票抬头"
    inv.title_edit.setText(TITLE)
    qtbot.keyClicks(inv.tax_edit, "91440300ma5f0abc1x")
    qtbot.mouseClick(inv.ok_button, Qt.MouseButton.LeftButton)
    offline_text = "当前离线，不能开发票：开票需要连接总部，请网络恢复后再开"
    qtbot.waitUntil(lambda: inv.info.text() == offline_text, timeout=WAIT)
    assert cashier.message_label.text() == offline_text
    save_screenshot(inv, shots / "invoice_offline.png")
    assert calls(live, "invoice") == 0
    assert live.api.get(f"/api/v1/orders/{order['order_id']}/invoice").status_code == 404

    # ---- back online: the same dialog, pressed again, gets the invoice number
    live.st.agent.set_link("center", True)
    qtbot.waitUntil(lambda: inv.ok_button.isEnabled(), timeout=WAIT)
    qtbot.mouseClick(inv.ok_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: inv.invoice is not None, timeout=WAIT)
    issued = live.api.get(f"/api/v1/orders/{order['order_id']}/invoice").json()
    assert (issued["state"], issued["amount_fen"], issued["tax_id"]) == ("issued", 200, "91440300MA5F0ABC1X")
    line = f"发票已开具：发票号 {issued['invoice_no']}，金额 ¥2.00"
    assert inv.info.text() == f"{line}\n抬头：{TITLE}"
    assert cashier.message_label.text() == line
    assert not inv.ok_button.isVisible() and inv.close_button.text() == "关闭"
    save_screenshot(inv, shots / "invoice_issued.png")
    qtbot.mouseClick(inv.close_button, Qt.MouseButton.LeftButton)

    # ---- opened again for the same order: it shows the invoice already issued, the center is not asked
    qtbot.mouseClick(rdlg.invoice_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(rdlg.findChildren(InvoiceDialog)) == 2, timeout=WAIT)
    again = rdlg.findChildren(InvoiceDialog)[-1]
    qtbot.waitUntil(lambda: again.invoice is not None, timeout=WAIT)
    assert again.invoice["invoice_no"] == issued["invoice_no"] and again.title_edit.text() == TITLE
    assert not again.ok_button.isVisible()
    assert calls(live, "invoice") == 1
    again.reject()
    rdlg.reject()

    # ---- a refund of that order afterwards: the cashier is told the invoice must be reissued
    r = live.api.post(f"/api/v1/orders/{order['order_id']}/refund",
                      json={"amount_fen": 50, "reason": "多收", "supervisor_id": "s01", "supervisor_pin": "9999"})
    assert r.status_code == 201, r.text
    qtbot.waitUntil(lambda: cashier.message_label.text()
                    == f"已退款；该单已开发票 {issued['invoice_no']}，中心将按退款后金额冲红重开", timeout=WAIT)
