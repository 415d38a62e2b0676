"""Whole sales driven through the UI against a live agent, pump simulator and center simulator.

Each test taps the cashier window like a cashier would and asserts what both
screens show: the pump tiles, the order panel, the payment page and the
customer display.  Screenshots of the key moments go to the ``shots``
directory (see conftest).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from PySide6.QtCore import Qt

from tests.ui.conftest import LiveStation
from ui.app import save_screenshot
from ui.viewmodels import Phase

WAIT = 20_000


def tile(session: Any, pid: int) -> Any:
    return session.cashier.grid.tiles[pid]


def fuel(qtbot: Any, session: Any, live: LiveStation, pid: int, *, min_ml: int) -> None:
    """Lift, authorize by tapping the calling tile, fuel at least ``min_ml``, hang up."""
    live.st.sim.lift(pid, 1)
    qtbot.waitUntil(lambda: tile(session, pid).tile.display == "calling", timeout=WAIT)
    assert tile(session, pid).status.text() == "提枪请求"
    assert tile(session, pid).tile.blink
    qtbot.mouseClick(tile(session, pid), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: tile(session, pid).tile.display == "fuelling", timeout=WAIT)
    qtbot.waitUntil(lambda: session.cashier.board.snapshots[pid]["volume_ml"] >= min_ml, timeout=WAIT)
    assert tile(session, pid).litres.text().endswith(" L")
    assert tile(session, pid).amount.text().startswith("¥")
    live.st.sim.hang(pid)
    qtbot.waitUntil(lambda: tile(session, pid).tile.display == "unpaid", timeout=WAIT)
    assert tile(session, pid).unpaid.text() == "挂单 1"
    assert tile(session, pid).status.text() == "待结算"


def press_keys(qtbot: Any, session: Any, text: str) -> None:
    pad = session.cashier.payment_panel.pad
    for ch in text:
        qtbot.mouseClick(pad.buttons[ch], Qt.MouseButton.LeftButton)


def test_postpay_sale_fuel_plus_shop_item_cash_with_change(qtbot: Any, session: Any, live: LiveStation,
                                                           shots: Path) -> None:
    cashier, customer, co = session.cashier, session.customer, session.checkout
    fuel(qtbot, session, live, 1, min_ml=3000)
    fill = live.api.get("/api/v1/fills", params={"pump_id": 1}).json()[0]
    assert customer.view.phase is Phase.IDLE  # nothing to show the customer yet

    # tap the unpaid sale: it becomes the first line of a new order, on both screens
    qtbot.mouseClick(tile(session, 1), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: cashier.order_panel.table.rowCount() == 1, timeout=WAIT)
    assert cashier.order_panel.table.item(0, 0).text() == "1号机 1号枪 92#"
    assert cashier.order_panel.table.item(0, 2).text() == "¥" + _yuan(fill["amount_fen"])
    qtbot.waitUntil(lambda: customer.view.phase is Phase.ORDER, timeout=WAIT)
    assert customer.stack.currentWidget() is customer.order_page
    title, detail = customer.table.item(0, 0).text().split("\n")
    assert title == "1号机 1号枪 92#"
    assert detail.endswith(" 升 × ¥7.89/升")
    assert customer.table.item(0, 1).text() == "¥" + _yuan(fill["amount_fen"])

    # a shop item by PLU
    qtbot.keyClicks(cashier.order_panel.search_edit, "101")
    qtbot.keyClick(cashier.order_panel.search_edit, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: cashier.order_panel.table.rowCount() == 2, timeout=WAIT)
    total = fill["amount_fen"] + 200
    assert cashier.order_panel.payable.text() == "¥" + _yuan(total)
    qtbot.waitUntil(lambda: customer.payable.text() == "¥" + _yuan(total), timeout=WAIT)
    assert customer.table.item(1, 0).text() == "矿泉水 550ml\n1 × ¥2.00"
    save_screenshot(cashier, shots / "cashier_1024x768_order.png")
    save_screenshot(customer, shots / "customer_order.png")

    # pay: F9 freezes the quote and opens the payment page
    qtbot.keyClick(cashier, Qt.Key.Key_F9)
    qtbot.waitUntil(lambda: cashier.side.currentWidget() is cashier.payment_panel, timeout=WAIT)
    assert cashier.payment_panel.payable.text() == "¥" + _yuan(total)
    given = (total // 10_000 + 1) * 100  # next 100 yuan note, in yuan
    press_keys(qtbot, session, str(given))
    qtbot.mouseClick(cashier.payment_panel.tender_buttons["cash"], Qt.MouseButton.LeftButton)
    change = given * 100 - total
    assert cashier.payment_panel.change.text() == "¥" + _yuan(change)
    assert cashier.payment_panel.remaining.text() == "¥0.00"
    cashier.resize(1920, 1080)
    save_screenshot(cashier, shots / "cashier_1920x1080_payment.png")
    cashier.resize(1024, 768)
    save_screenshot(cashier, shots / "cashier_1024x768_payment.png")
    qtbot.mouseClick(cashier.payment_panel.confirm_button, Qt.MouseButton.LeftButton)

    # paid: the customer sees the result, the change and the thank-you; the pump is free again
    qtbot.waitUntil(lambda: customer.view.phase is Phase.PAID, timeout=WAIT)
    assert customer.stack.currentWidget() is customer.result_page
    assert customer.result_headline.text() == "支付成功"
    assert customer.result_message.text() == f"找零 ¥{_yuan(change)}\n谢谢惠顾，一路平安！"
    assert cashier.message_label.text() == "支付成功"
    assert cashier.side.currentWidget() is cashier.order_panel
    save_screenshot(customer, shots / "customer_paid.png")
    order = live.api.get(f"/api/v1/orders/{co.last_paid_order_id}").json()
    assert order["state"] == "paid"
    assert order["payable_fen"] == total
    qtbot.waitUntil(lambda: tile(session, 1).tile.display == "idle", timeout=WAIT)
    assert not tile(session, 1).unpaid.isVisible()


def test_prepay_with_underrun_refund(qtbot: Any, session: Any, live: LiveStation, shots: Path) -> None:
    cashier, customer = session.cashier, session.customer
    qtbot.mouseClick(cashier.prepay_button, Qt.MouseButton.LeftButton)
    dlg = cashier.findChild(type(cashier.open_prepay()), "prepay_dialog")
    assert dlg is not None
    dlg.pump.setCurrentIndex(1)  # pump 2
    qtbot.keyClicks(dlg.amount, "300")
    qtbot.mouseClick(dlg.buttons["cash"], Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "2号油机预付 ¥300.00 已收款" in cashier.message_label.text(), timeout=WAIT)
    qtbot.waitUntil(lambda: customer.view.headline == "2号油机 预付成功", timeout=WAIT)
    assert customer.result_amount.text() == "¥300.00"
    qtbot.waitUntil(lambda: tile(session, 2).tile.display == "authorized", timeout=WAIT)

    live.st.sim.lift(2, 1)
    qtbot.waitUntil(lambda: tile(session, 2).tile.display == "fuelling", timeout=WAIT)
    qtbot.waitUntil(lambda: session.cashier.board.snapshots[2]["amount_fen"] >= 3000, timeout=WAIT)
    live.st.sim.hang(2)  # the tank is full long before 300 yuan
    qtbot.waitUntil(lambda: "2号油机少加，已退" in cashier.message_label.text(), timeout=WAIT)
    fill = live.api.get("/api/v1/fills", params={"pump_id": 2}).json()[0]
    refund = 30_000 - fill["amount_fen"]
    assert cashier.message_label.text() == f"2号油机少加，已退 ¥{_yuan(refund)}"
    qtbot.waitUntil(lambda: customer.view.headline == "2号油机 少加退款", timeout=WAIT)
    assert customer.result_amount.text() == "¥" + _yuan(refund)
    assert customer.result_message.text() == "已原路退回，谢谢惠顾！"
    save_screenshot(customer, shots / "customer_underrun.png")
    assert fill["state"] == "paid"
    qtbot.waitUntil(lambda: tile(session, 2).tile.display == "idle", timeout=WAIT)  # nothing left to pay


def test_combined_payment_member_stored_value_plus_merchant_qr(qtbot: Any, session: Any, live: LiveStation,
                                                               shots: Path) -> None:
    cashier, customer, co = session.cashier, session.customer, session.checkout
    live.member(balance_fen=2000)
    live.center.state.faults.auto_pay = False  # the customer pays on the phone when the test says so
    fuel(qtbot, session, live, 3, min_ml=3000)
    panel = cashier.order_panel
    qtbot.keyClicks(panel.member_edit, "13800000001")
    qtbot.keyClick(panel.member_edit, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: panel.member_label.text() == "王五", timeout=WAIT)
    qtbot.mouseClick(tile(session, 3), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel.table.rowCount() == 1, timeout=WAIT)
    fill = live.api.get("/api/v1/fills", params={"pump_id": 3}).json()[0]
    # gold members pay 7.59 instead of 7.89 for 92#: the discount is explained on both screens
    qtbot.waitUntil(lambda: "金卡 92# 会员价" in panel.discounts.text(), timeout=WAIT)
    qtbot.waitUntil(lambda: "金卡 92# 会员价" in customer.discount_lines.text(), timeout=WAIT)
    payable = co.draft.payable_fen
    assert 0 < co.draft.discount_fen < fill["amount_fen"]
    assert panel.payable.text() == customer.payable.text() == "¥" + _yuan(payable)

    qtbot.mouseClick(panel.pay_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: cashier.side.currentWidget() is cashier.payment_panel, timeout=WAIT)
    pp = cashier.payment_panel
    press_keys(qtbot, session, "20")
    qtbot.mouseClick(pp.tender_buttons["stored_value"], Qt.MouseButton.LeftButton)
    assert pp.remaining.text() == "¥" + _yuan(payable - 2000)
    qtbot.mouseClick(pp.tender_buttons["qr_show"], Qt.MouseButton.LeftButton)
    assert pp.remaining.text() == "¥0.00"
    assert pp.legs.count() == 2
    qtbot.mouseClick(pp.confirm_button, Qt.MouseButton.LeftButton)

    # the merchant QR for the rest appears on the customer display
    qtbot.waitUntil(lambda: customer.view.phase is Phase.QR, timeout=WAIT)
    assert customer.qr_box.isVisible()
    assert customer.qr.payload.startswith("sim://pay/")
    assert customer.qr_caption.text() == f"请扫码支付 ¥{_yuan(payable)}"
    save_screenshot(customer, shots / "customer_qr.png")
    assert not pp.confirm_button.isEnabled()  # no second payment while the first waits

    # the customer pays on the phone; the center's result makes the order paid
    qtbot.waitUntil(lambda: co.last_result is not None, timeout=WAIT)  # the QR event can beat the HTTP answer
    leg = next(x for x in co.last_result["legs"] if x["tender"] == "qr_show")
    trade = live.center.state.trade_by_out[leg["payment_id"]]
    with httpx.Client(base_url=live.center.url) as c:
        assert c.post(f"/notify/qr/{trade}", json={"status": "success", "amount_fen": leg["amount_fen"]}
                      ).json()["errno"] == 0
    live.checkout.sweep()
    qtbot.waitUntil(lambda: customer.view.phase is Phase.PAID, timeout=WAIT)
    assert customer.result_headline.text() == "支付成功"
    assert live.center.state.members["m1"]["balance_fen"] == 0
    assert live.api.get(f"/api/v1/orders/{co.last_paid_order_id}").json()["state"] == "paid"


def _yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"
