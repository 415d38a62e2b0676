"""Login, roles, reprint, printer warning, shift close (blocked, then closed with its report) and the reports
view, driven through the UI against a live agent; screenshots of login, shift report and reports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt

from tests.ui.conftest import LiveStation, login
from ui.app import save_screenshot
from ui.dialogs import ReprintDialog
from ui.reports import station_today

WAIT = 15_000


def _logout(qtbot: Any, session: Any) -> None:
    cashier = session.cashier
    qtbot.mouseClick(cashier.logout_button, Qt.MouseButton.LeftButton)
    assert cashier.pages.currentWidget() is cashier.login_page
    assert cashier.cashier_label.text() == "未登录"


def test_login_wrong_pin_refused_role_shown_and_cashier_cannot_change_prices(
        qtbot: Any, session: Any, live: LiveStation, shots: Path) -> None:
    cashier = session.cashier
    assert cashier.session is not None and cashier.session.role == "manager"
    assert cashier.cashier_label.text() == "王经理（工号 m01）· 站长"
    _logout(qtbot, session)
    page = cashier.login_page
    save_screenshot(cashier, shots / "login_1024x768.png")
    # F1 does nothing on the login screen
    qtbot.keyClick(cashier, Qt.Key.Key_F1)
    # a wrong PIN is refused in words, nobody is logged in
    page.id_edit.setText("c01")
    for ch in "0000":
        qtbot.mouseClick(page.keys[ch], Qt.MouseButton.LeftButton)
    assert page.pin_view.text() == "●●●●"
    qtbot.mouseClick(page.login_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: page.error.text() == "工号或密码错误", timeout=WAIT)
    assert cashier.session is None and page.pin_view.text() == ""
    assert cashier.pages.currentWidget() is page
    assert session.api.session_token is None
    # the right PIN: the till, the cashier's name and role
    login(qtbot, session, "c01", "1234")
    assert cashier.pages.currentWidget() is cashier.till_page
    assert cashier.cashier_label.text() == "张三（工号 c01）· 收银员"
    assert session.checkout.cashier == "张三"
    # calls now act as the cashier: an order made here is the cashier's
    qtbot.keyClicks(cashier.order_panel.search_edit, "101")
    qtbot.keyClick(cashier.order_panel.search_edit, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: session.checkout.draft.order_id is not None, timeout=WAIT)
    assert live.api.get(f"/api/v1/orders/{session.checkout.draft.order_id}").json()["cashier"] == "c01"
    # a cashier may not change prices: the agent's 403 becomes one clear sentence
    qtbot.mouseClick(cashier.prices_button, Qt.MouseButton.LeftButton)
    dlg = cashier.findChild(cashier.price_dialog_factory, "price_dialog")
    dlg.edits["92"].setText("7.99")
    qtbot.mouseClick(dlg.ok_button, Qt.MouseButton.LeftButton)
    qtbot.mouseClick(dlg.ok_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dlg.info.text() == "权限不足：此操作需要站长权限（当前为收银员）", timeout=WAIT)
    dlg.reject()
    assert live.api.get("/api/v1/prices").json()["prices_fen"]["92"] == 789
    # the reports need a supervisor: refused in words too
    qtbot.mouseClick(cashier.reports_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "权限不足" in cashier.message_label.text(), timeout=WAIT)
    qtbot.mouseClick(cashier.reports_page.back_button, Qt.MouseButton.LeftButton)
    # logout ends the session on the agent
    token = session.api.session_token
    session.checkout.cancel_order()
    qtbot.waitUntil(lambda: session.checkout.draft.order_id is None, timeout=WAIT)
    _logout(qtbot, session)
    qtbot.waitUntil(lambda: live.api.get("/api/v1/session", headers={"Authorization": f"Bearer {token}"})
                    .status_code == 401, timeout=WAIT)
    assert page.error.text() == "已退出登录"


def test_item_search_by_name_and_reprint_and_printer_warning(qtbot: Any, session: Any, live: LiveStation) -> None:
    cashier, co = session.cashier, session.checkout
    # by name: one match is added at once
    cashier.order_panel.search_edit.setText("矿泉水")
    qtbot.keyClick(cashier.order_panel.search_edit, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: cashier.order_panel.table.rowCount() == 1, timeout=WAIT)
    assert cashier.order_panel.table.item(0, 0).text() == "矿泉水 550ml"
    qtbot.keyClick(cashier, Qt.Key.Key_F9)
    qtbot.waitUntil(lambda: cashier.side.currentWidget() is cashier.payment_panel, timeout=WAIT)
    qtbot.mouseClick(cashier.payment_panel.tender_buttons["cash"], Qt.MouseButton.LeftButton)
    qtbot.mouseClick(cashier.payment_panel.confirm_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: co.last_paid_order_id is not None, timeout=WAIT)
    order = live.api.get(f"/api/v1/orders/{co.last_paid_order_id}").json()
    # reprint from the recent orders list: the paid order is preselected
    qtbot.mouseClick(cashier.orders_button, Qt.MouseButton.LeftButton)
    dlg = cashier.findChild(ReprintDialog, "reprint_dialog")
    qtbot.waitUntil(lambda: dlg.list.count() >= 1, timeout=WAIT)
    assert str(order["receipt_no"]) in dlg.list.currentItem().text()
    qtbot.mouseClick(dlg.reprint_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: cashier.message_label.text() == f"小票 {order['receipt_no']} 已加入打印队列（重印）",
                    timeout=WAIT)
    jobs = live.api.get(f"/api/v1/orders/{order['order_id']}/receipt").json()["jobs"]
    assert any(j.get("reprint") or j.get("kind") == "reprint" for j in jobs), jobs
    # the printer goes missing: a visible warning with the agent's message, gone when it is back
    live.st.agent.bus.publish("printer.status", {"state": "error",
                                                 "message": "打印机未连接 / printer not reachable at tcp://x"})
    qtbot.waitUntil(lambda: cashier.printer_label.isVisible(), timeout=WAIT)
    assert cashier.printer_label.text() == "⚠ 打印机故障：打印机未连接 / printer not reachable at tcp://x"
    live.st.agent.bus.publish("printer.status", {"state": "ok", "message": "打印机正常"})
    qtbot.waitUntil(lambda: not cashier.printer_label.isVisible(), timeout=WAIT)
    assert cashier.message_label.text() == "打印机已恢复"


def test_shift_close_with_a_blocker_then_closed_with_report_pdf(qtbot: Any, session: Any, live: LiveStation,
                                                                 shots: Path, tmp_path: Path) -> None:
    cashier = session.cashier
    qtbot.mouseClick(cashier.shift_button, Qt.MouseButton.LeftButton)
    page = cashier.shift_page
    assert cashier.pages.currentWidget() is page
    qtbot.waitUntil(lambda: page.info.text() == "当前没有开班", timeout=WAIT)
    page.float_edit.setText("200")
    qtbot.mouseClick(page.open_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: page.shift is not None, timeout=WAIT)
    assert "备用金 ¥200.00" in page.info.text()
    qtbot.waitUntil(lambda: page.check_state.text() == "✔ 可以班结", timeout=WAIT)
    # a sale on pump 1 left unpaid blocks the close; the blocker says what to do
    live.st.sim.lift(1, 1)
    qtbot.waitUntil(lambda: cashier.board.snapshots[1]["state"] == "calling", timeout=WAIT)
    live.api.post("/api/v1/pumps/1/authorize", json={})
    qtbot.waitUntil(lambda: cashier.board.snapshots[1].get("volume_ml", 0) >= 2000, timeout=WAIT)
    live.st.sim.hang(1)
    qtbot.waitUntil(lambda: cashier.board.tile(1).display == "unpaid", timeout=WAIT)
    page.declared_edit.setText("200")
    qtbot.mouseClick(page.close_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: page.blocker_list.count() == 1, timeout=WAIT)
    assert page.check_state.text() == "有 1 项需要先处理："
    text = page.blocker_list.item(0).text()
    assert text.startswith("⚠ 1号油机 1号枪有未付挂单 ¥") and "处理：把挂单加入订单并收款" in text
    assert cashier.message_label.text() == "还有未处理事项，不能班结"
    save_screenshot(cashier, shots / "shift_blocked_1024x768.png")
    # settle it at the till (cash), then close with the counted cash
    qtbot.mouseClick(page.back_button, Qt.MouseButton.LeftButton)
    qtbot.mouseClick(cashier.grid.tiles[1], Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: cashier.order_panel.table.rowCount() == 1, timeout=WAIT)
    qtbot.keyClick(cashier, Qt.Key.Key_F9)
    qtbot.waitUntil(lambda: cashier.side.currentWidget() is cashier.payment_panel, timeout=WAIT)
    payable = session.checkout.draft.payable_fen
    qtbot.mouseClick(cashier.payment_panel.tender_buttons["cash"], Qt.MouseButton.LeftButton)
    qtbot.mouseClick(cashier.payment_panel.confirm_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: cashier.message_label.text() == "支付成功", timeout=WAIT)
    qtbot.mouseClick(cashier.shift_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: page.check_state.text() == "✔ 可以班结", timeout=WAIT)
    page.declared_edit.setText(f"{(20_000 + payable - 100) / 100:.2f}")  # one yuan short
    qtbot.mouseClick(page.close_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: page.report is not None, timeout=WAIT)
    assert cashier.message_label.text() == "班结完成，报表如下"
    html = page.view.toPlainText()
    for words in ("按油品", "92#", "按支付方式", "现金", "按收银员", "m01", "长短款", "-¥1.00", "泵码对账", "1号枪"):
        assert words in html, words
    assert page.report["cash"]["over_short_fen"] == -100
    save_screenshot(cashier, shots / "shift_report_1024x768.png")
    # PDF export through the injected dialog, written by the worker thread
    target = tmp_path / "shift.pdf"
    page.save_dialog = lambda parent, title, name: str(target)
    qtbot.mouseClick(page.pdf_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: cashier.message_label.text() == f"已保存 {target}", timeout=WAIT)
    assert target.read_bytes().startswith(b"%PDF")
    # no receipt printer configured for reports: said in words
    qtbot.mouseClick(page.print_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: cashier.message_label.text() == "没有配置小票打印机", timeout=WAIT)


def test_reports_view_with_charts(qtbot: Any, session: Any, live: LiveStation, shots: Path) -> None:
    cashier = session.cashier
    for sku in ("101", "101"):
        order = live.api.post("/api/v1/checkout/orders", json={"lines": [{"kind": "item", "sku": sku}]}).json()
        quote = live.api.post(f"/api/v1/orders/{order['order_id']}/confirm").json()
        paid = live.api.post(f"/api/v1/orders/{order['order_id']}/pay", json={
            "quote_id": quote["quote_id"], "tenders": [{"tender": "cash", "amount_fen": 200}]}).json()
        assert paid["state"] == "paid"
    page = cashier.reports_page
    qtbot.mouseClick(cashier.reports_button, Qt.MouseButton.LeftButton)
    assert cashier.pages.currentWidget() is page
    qtbot.waitUntil(lambda: page.report is not None, timeout=WAIT)
    assert page.report["kind"] == "day"
    assert sum(page.hour_chart.series.values) == 400
    assert page.hour_chart.series.labels[0] == "00" and len(page.hour_chart.series.values) == 24
    assert page.totals.text().startswith("净收入 ¥4.00")
    save_screenshot(cashier, shots / "reports_day_1024x768.png")
    page.kind.setCurrentIndex(1)
    assert page.period.text() == station_today().isoformat()[:7]
    qtbot.mouseClick(page.load_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: page.report is not None and page.report["kind"] == "month", timeout=WAIT)
    assert "统计期" in page.view.toPlainText()
