"""Cashier window: refusals in clear words, emergency stop, price change, refunds, language, blinking, CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt

from tests.conftest import ROOT
from tests.ui.conftest import TOKEN, LiveStation
from ui.app import save_screenshot
from ui.i18n import set_language

WAIT = 15_000


def test_refusals_are_clear_and_emergency_stop_is_one_tap(qtbot: Any, session: Any, live: LiveStation) -> None:
    cashier = session.cashier
    assert live.api.post("/api/v1/pumps/2/lock", json={"locked": True, "reason": "维修"}).status_code == 200
    qtbot.waitUntil(lambda: cashier.grid.tiles[2].tile.display == "locked", timeout=WAIT)
    assert cashier.grid.tiles[2].detail.text() == "维修"
    cashier.pump_action(2, "authorize")
    qtbot.waitUntil(lambda: cashier.message_label.text() == "2号油机已锁定，不能授权", timeout=WAIT)
    # keyboard: F1 authorizes the idle pump 1 (pre-authorization before the lift)
    qtbot.keyClick(cashier, Qt.Key.Key_F1)
    qtbot.waitUntil(lambda: cashier.grid.tiles[1].tile.display == "authorized", timeout=WAIT)
    qtbot.keyClick(cashier, Qt.Key.Key_F1)  # authorized: the same key now stops it
    qtbot.mouseClick(cashier.estop_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: cashier.message_label.text().startswith("紧急停止全部: [1, 2, 3, 4]"), timeout=WAIT)
    # an unknown barcode and an empty payment are refused in words, nothing changes
    qtbot.keyClicks(cashier.order_panel.search_edit, "999")
    qtbot.keyClick(cashier.order_panel.search_edit, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: "没有这个商品" in cashier.message_label.text(), timeout=WAIT)
    assert session.checkout.draft.is_empty()
    qtbot.keyClick(cashier, Qt.Key.Key_F9)
    assert cashier.message_label.text() == "订单为空"


def test_calling_pump_blinks(qtbot: Any, session: Any, live: LiveStation) -> None:
    w = session.cashier.grid.tiles[3]
    live.st.sim.lift(3, 1)
    qtbot.waitUntil(lambda: w.tile.display == "calling", timeout=WAIT)
    qtbot.waitUntil(lambda: "#FFF3C4" in w.styleSheet(), timeout=WAIT)
    qtbot.waitUntil(lambda: "#FFB300" in w.styleSheet(), timeout=WAIT)
    live.st.sim.hang(3)
    qtbot.waitUntil(lambda: w.tile.display == "idle", timeout=WAIT)


def test_price_change_asks_twice(qtbot: Any, session: Any, live: LiveStation) -> None:
    cashier = session.cashier
    qtbot.mouseClick(cashier.prices_button, Qt.MouseButton.LeftButton)
    dlg = cashier.findChild(cashier.price_dialog_factory, "price_dialog")
    assert dlg is not None
    qtbot.keyClicks(dlg.edits["92"], "7.999")
    qtbot.mouseClick(dlg.ok_button, Qt.MouseButton.LeftButton)
    assert dlg.info.text() == "请输入正确的价格，例如 7.89"
    dlg.edits["92"].clear()
    qtbot.keyClicks(dlg.edits["92"], "7.99")
    qtbot.mouseClick(dlg.ok_button, Qt.MouseButton.LeftButton)
    assert "7.89 → 7.99" in dlg.info.text()
    assert live.api.get("/api/v1/prices").json()["prices_fen"]["92"] == 789  # not yet: first press only
    qtbot.mouseClick(dlg.ok_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: cashier.message_label.text() == "价格已更新为第 2 版", timeout=WAIT)
    assert live.api.get("/api/v1/prices").json()["prices_fen"]["92"] == 799


def test_refund_with_a_wrong_supervisor_pin_is_refused(qtbot: Any, session: Any, live: LiveStation) -> None:
    order = live.api.post("/api/v1/checkout/orders", json={"lines": [{"kind": "item", "sku": "101"}]}).json()
    quote = live.api.post(f"/api/v1/orders/{order['order_id']}/confirm").json()
    paid = live.api.post(f"/api/v1/orders/{order['order_id']}/pay", json={
        "quote_id": quote["quote_id"], "tenders": [{"tender": "cash", "amount_fen": 200}]}).json()
    assert paid["state"] == "paid"
    cashier = session.cashier
    dlg = cashier.open_refund()
    dlg.order.setText(order["order_id"])
    dlg.reason.setText("顾客退货")  # QTest.keyClicks aborts on non-Latin-1 text
    qtbot.keyClicks(dlg.supervisor, "s01")
    qtbot.keyClicks(dlg.pin, "0000")
    qtbot.mouseClick(dlg.findChild(type(cashier.estop_button), "refund_ok"), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: cashier.message_label.text() == "工号或密码错误", timeout=WAIT)
    dlg = cashier.open_refund()
    dlg.order.setText(order["order_id"])
    dlg.reason.setText("顾客退货")  # QTest.keyClicks aborts on non-Latin-1 text
    qtbot.keyClicks(dlg.supervisor, "s01")
    qtbot.keyClicks(dlg.pin, "9999")
    with qtbot.waitSignal(session.checkout.refunded, timeout=WAIT):
        qtbot.mouseClick(dlg.findChild(type(cashier.estop_button), "refund_ok"), Qt.MouseButton.LeftButton)
    assert cashier.message_label.text() == "已退款 ¥2.00，原路退回"


def test_english_and_screenshots(qtbot: Any, session: Any, live: LiveStation, shots: Path) -> None:
    cashier, customer = session.cashier, session.customer
    live.st.sim.lift(4, 1)
    qtbot.waitUntil(lambda: cashier.grid.tiles[4].tile.display == "calling", timeout=WAIT)
    save_screenshot(cashier, shots / "cashier_1024x768_calling.png")
    save_screenshot(customer, shots / "customer_idle.png")
    qtbot.mouseClick(cashier.lang_button, Qt.MouseButton.LeftButton)
    try:
        assert cashier.grid.tiles[4].status.text() == "Calling"
        assert cashier.estop_button.text() == "EMERGENCY STOP ALL  F12"
        assert customer.welcome.text().startswith("Welcome")
        cashier.resize(1920, 1080)
        save_screenshot(cashier, shots / "cashier_1920x1080_en.png")
        qtbot.mouseClick(cashier.lang_button, Qt.MouseButton.LeftButton)
        assert cashier.grid.tiles[4].status.text() == "提枪请求"
    finally:
        set_language("zh_CN")
        live.st.sim.hang(4)


def test_forecourt_ui_headless_smoke_run(live: LiveStation, tmp_path: Path) -> None:
    """``forecourt ui --screenshot DIR --quit-after S`` in its own process (what the demo starts)."""
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n", encoding="utf-8")
    code = ("import argparse, sys; from ui import cli; p = argparse.ArgumentParser(); cli.add_arguments(p); "
            "sys.exit(cli.run(p.parse_args(sys.argv[1:])))")
    out = tmp_path / "shots"
    proc = subprocess.run([sys.executable, "-c", code, "--api", live.url, "--token-file", str(token),
                           "--screenshot", str(out), "--quit-after", "2.5"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env={"QT_QPA_PLATFORM": "offscreen", "PATH": "/usr/bin:/bin",
                                                      "HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (out / "cashier.png").stat().st_size > 10_000
    assert (out / "customer.png").stat().st_size > 5_000
    bad = subprocess.run([sys.executable, "-c", code, "--token-file", str(tmp_path / "missing")], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2
    assert "cannot read the API token" in bad.stderr


def test_kiosk_fills_the_screen_and_never_covers_the_cashier_with_the_customer_display(
        qtbot: Any, live: LiveStation, ui_font: str) -> None:
    """One screen in kiosk mode: the cashier window is full screen, the customer display stays hidden."""
    from PySide6.QtGui import QGuiApplication

    from ui.app import UiSession

    s = UiSession(live.url, TOKEN, kiosk=True)
    try:
        s.start()
        qtbot.waitUntil(lambda: s.api.up, timeout=WAIT)
        screen = QGuiApplication.primaryScreen()
        assert s.cashier.isFullScreen() and s.cashier.geometry() == screen.geometry()
        assert not s.customer.isVisible()
        assert s.place_customer() == "hidden" and not s.customer.isVisible()
        plain = UiSession(live.url, TOKEN)  # the demo on a desktop: a second window is fine there
        try:
            assert plain.place_customer() == "window" and plain.customer.isVisible()
        finally:
            plain.stop()
    finally:
        s.stop()


def test_the_cashier_is_told_what_the_agent_did_to_a_pump_on_its_own(qtbot: Any, session: Any,
                                                                       live: LiveStation) -> None:
    """An authorization cancelled after the timeout, one the pump never took, and a meter that ran
    backwards: each is said in one line on the cashier's screen, and the tiles follow."""
    import time

    from agent.forecourt import AUTHORIZE_TAKE_S

    cashier, fc, sim = session.cashier, live.st.forecourt, live.st.sim
    msg = cashier.message_label
    assert live.api.post("/api/v1/pumps/1/authorize", json={}).status_code == 201
    qtbot.waitUntil(lambda: cashier.board.tile(1).display == "authorized", timeout=WAIT)
    assert fc.expire_authorizations(time.monotonic() + 3600) == [1]
    qtbot.waitUntil(lambda: msg.text() == "1号油机授权后300秒无人加油，授权已取消", timeout=WAIT)
    qtbot.waitUntil(lambda: cashier.board.tile(1).display == "idle", timeout=WAIT)
    qtbot.waitUntil(lambda: live.api.get("/api/v1/fills", params={"pump_id": 1}).json()[0]["state"] == "zero",
                    timeout=WAIT)  # settled from the totalizers (no fuel)

    sim.pump(2).authorize = lambda *a, **k: False  # acknowledged, never executed
    assert live.api.post("/api/v1/pumps/2/authorize", json={}).status_code == 201
    assert fc.settle_stalled_fills(time.monotonic() + AUTHORIZE_TAKE_S) == [2]
    qtbot.waitUntil(lambda: msg.text() == "2号油机未执行授权，已按泵码结算（未加油）", timeout=WAIT)
    # the driver's own confirmation timer then gives up too, and says so
    qtbot.waitUntil(lambda: msg.text().startswith("2号油机授权未成功："), timeout=WAIT)
    assert live.api.get("/api/v1/fills", params={"pump_id": 2}).json()[0]["state"] == "zero"

    with sim.cond:
        sim.pump(3).totals[1].volume = 5_000_000
    fc.read_totals(3)
    live.st.wait_event(lambda e: e.topic == "pump.totals" and e.data["pump_id"] == 3
                       and e.data["volume_total_ml"] == 50_000_000)
    with sim.cond:
        sim.pump(3).totals[1].volume = 100
    fc.read_totals(3)
    qtbot.waitUntil(lambda: msg.text() == "3号油机泵码回退（更换主板？），请核对油机表数", timeout=WAIT)
    assert cashier.board.tile(3).detail.startswith("totalizer:")
