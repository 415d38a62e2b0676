"""Member sales and a prepay by volume, driven through the UI against a live agent, pump simulator and
center simulator (fixtures in conftest).

Each test taps the cashier window like a cashier would and checks both the
cashier screen and the customer display against the agent's API: a coupon
picked from the member's list, points redeemed, and a volume preset that the
pump stops at by itself.  Money is integer fen throughout.  Screenshots of the
key moments go to the ``shots`` directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox

from agent.money import amount_for_volume
from tests.ui.conftest import LiveStation
from ui.app import save_screenshot
from ui.dialogs import PrepayDialog
from ui.viewmodels import Phase

WAIT = 20_000


def tile(session: Any, pid: int) -> Any:
    return session.cashier.grid.tiles[pid]


def money(fen: int) -> str:
    return f"¥{fen // 100}.{fen % 100:02d}"


def pick(qtbot: Any, combo: QComboBox, text: str) -> None:
    """Open the drop-down list and tap the entry that starts with ``text``, as a cashier would."""
    index = next(i for i in range(combo.count()) if combo.itemText(i).startswith(text))
    combo.showPopup()
    view = combo.view()
    qtbot.waitUntil(view.isVisible, timeout=WAIT)
    rect = view.visualRect(view.model().index(index, 0))
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    qtbot.waitUntil(lambda: not view.isVisible(), timeout=WAIT)


def fuel(qtbot: Any, session: Any, live: LiveStation, pid: int, *, min_ml: int) -> None:
    """Lift, authorize by tapping the calling tile, fuel at least ``min_ml``, hang up."""
    live.st.sim.lift(pid, 1)
    qtbot.waitUntil(lambda: tile(session, pid).tile.display == "calling", timeout=WAIT)
    qtbot.mouseClick(tile(session, pid), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: session.cashier.board.snapshots[pid]["volume_ml"] >= min_ml, timeout=WAIT)
    live.st.sim.hang(pid)
    qtbot.waitUntil(lambda: tile(session, pid).tile.display == "unpaid", timeout=WAIT)


def member_order(qtbot: Any, session: Any, live: LiveStation, pid: int) -> dict[str, Any]:
    """Identify the member by phone, put the pump's unpaid sale on the order; returns the fill."""
    panel = session.cashier.order_panel
    qtbot.keyClicks(panel.member_edit, "13800000001")
    qtbot.keyClick(panel.member_edit, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: panel.member_label.text() == "王五", timeout=WAIT)
    qtbot.mouseClick(tile(session, pid), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel.table.rowCount() == 1, timeout=WAIT)
    qtbot.waitUntil(lambda: "金卡 92# 会员价" in panel.discounts.text(), timeout=WAIT)
    fill: dict[str, Any] = live.api.get("/api/v1/fills", params={"pump_id": pid}).json()[0]
    return fill


def open_payment(qtbot: Any, session: Any) -> Any:
    cashier = session.cashier
    qtbot.mouseClick(cashier.order_panel.pay_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: cashier.side.currentWidget() is cashier.payment_panel, timeout=WAIT)
    qtbot.waitUntil(lambda: cashier.payment_panel.member_row.isVisible(), timeout=WAIT)
    assert cashier.payment_panel.points_button.isVisible()
    # the member's coupon list and points do not push the page (and the emergency stop) below 768 px
    assert cashier.minimumSizeHint().height() <= 768
    assert cashier.size().height() == 768
    return cashier.payment_panel


def api_order(live: LiveStation, order_id: str) -> dict[str, Any]:
    order: dict[str, Any] = live.api.get(f"/api/v1/orders/{order_id}").json()
    return order


def shows(session: Any, payable: int) -> bool:
    """The payment page, the order panel and the customer display all show ``payable``."""
    c = session.cashier
    return (c.payment_panel.payable.text() == c.order_panel.payable.text() == session.customer.payable.text()
            == money(payable))


def test_member_picks_a_coupon_from_the_list_and_no_coupon_restores_the_total(
        qtbot: Any, session: Any, live: LiveStation, shots: Path) -> None:
    cashier, customer, co = session.cashier, session.customer, session.checkout
    live.member()
    with live.center.state.lock:
        for cid, value, min_spend in (("cp-5", 500, 0), ("cp-2", 200, 1000)):
            live.center.state.coupons[cid] = {"coupon_id": cid, "member_id": "m1", "kind": "cash", "value": value,
                                              "min_spend_fen": min_spend, "state": "available"}
    fuel(qtbot, session, live, 1, min_ml=3000)
    fill = member_order(qtbot, session, live, 1)
    order_id = co.draft.order_id
    # with no choice made, the agent applies the member's best coupon by itself
    qtbot.waitUntil(lambda: "券 cp-5  -¥5.00" in cashier.order_panel.discounts.text(), timeout=WAIT)
    qtbot.waitUntil(lambda: "券 cp-5  -¥5.00" in customer.discount_lines.text(), timeout=WAIT)

    pp = open_payment(qtbot, session)
    assert [pp.coupon_pick.itemText(i) for i in range(pp.coupon_pick.count())] == [
        "不用优惠券", "cp-2 减 ¥2.00（满 ¥10.00）", "cp-5 减 ¥5.00（满 ¥0.00）"]
    assert pp.coupon_pick.currentData() == "cp-5"
    assert pp.points_edit.placeholderText() == "可用积分 0"

    # "no coupon": the total without any coupon (the gold member price still applies)
    pick(qtbot, pp.coupon_pick, "不用优惠券")
    level_price = amount_for_volume(fill["volume_ml"], 759)
    qtbot.waitUntil(lambda: shows(session, level_price), timeout=WAIT)
    base = api_order(live, order_id)
    assert base["payable_fen"] == level_price and base["quote"]["coupon_id"] is None
    assert "券" not in customer.discount_lines.text()
    assert pp.coupon_pick.currentIndex() == 0

    # the cashier picks the 2-yuan coupon: every screen and the agent drop by exactly 200 fen
    pick(qtbot, pp.coupon_pick, "cp-2")
    qtbot.waitUntil(lambda: shows(session, level_price - 200), timeout=WAIT)
    with_coupon = api_order(live, order_id)
    assert with_coupon["payable_fen"] == base["payable_fen"] - 200
    assert with_coupon["quote"]["coupon_id"] == "cp-2"
    assert [(d["stage"], d["amount_fen"]) for d in with_coupon["quote"]["discounts"]] == [
        ("item", fill["amount_fen"] - level_price), ("coupon", 200)]
    assert pp.coupon_pick.currentData() == "cp-2"
    assert pp.remaining.text() == money(level_price - 200)
    assert "券 cp-2  -¥2.00" in cashier.order_panel.discounts.text()
    assert "券 cp-2  -¥2.00" in customer.discount_lines.text()
    assert customer.view.phase is Phase.ORDER
    save_screenshot(cashier, shots / "member_coupon_cashier_payment.png")
    save_screenshot(customer, shots / "member_coupon_customer.png")
    pp.coupon_pick.showPopup()  # the pick list as the cashier sees it
    qtbot.waitUntil(pp.coupon_pick.view().isVisible, timeout=WAIT)
    save_screenshot(pp.coupon_pick.view().window(), shots / "member_coupon_pick_list.png")
    pp.coupon_pick.hidePopup()

    # "no coupon" again restores the total, to the fen
    pick(qtbot, pp.coupon_pick, "不用优惠券")
    qtbot.waitUntil(lambda: shows(session, level_price), timeout=WAIT)
    assert api_order(live, order_id)["payable_fen"] == base["payable_fen"]
    assert "券" not in cashier.order_panel.discounts.text()

    # the 5-yuan coupon, paid in cash: the frozen quote charges it and the center marks it used
    pick(qtbot, pp.coupon_pick, "cp-5")
    payable = level_price - 500
    qtbot.waitUntil(lambda: shows(session, payable), timeout=WAIT)
    qtbot.mouseClick(pp.tender_buttons["cash"], Qt.MouseButton.LeftButton)  # exact amount
    assert pp.remaining.text() == "¥0.00"
    qtbot.mouseClick(pp.confirm_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: customer.view.phase is Phase.PAID, timeout=WAIT)
    assert customer.result_headline.text() == "支付成功"
    paid = api_order(live, order_id)
    assert paid["state"] == "paid" and paid["payable_fen"] == payable and paid["quote"]["coupon_id"] == "cp-5"
    coupons = live.center.state.coupons
    assert coupons["cp-5"]["state"] == "used"
    assert coupons["cp-2"]["state"] == "available"  # picked, then given back


def test_member_redeems_points_and_pays_the_rest_in_cash(qtbot: Any, session: Any, live: LiveStation,
                                                         shots: Path) -> None:
    cashier, customer, co = session.cashier, session.customer, session.checkout
    live.member(points=3000)
    with live.center.state.lock:
        live.center.state.coupons["cp-3"] = {"coupon_id": "cp-3", "member_id": "m1", "kind": "cash", "value": 300,
                                             "min_spend_fen": 0, "state": "available"}
    fuel(qtbot, session, live, 2, min_ml=3000)
    fill = member_order(qtbot, session, live, 2)
    order_id = co.draft.order_id
    pp = open_payment(qtbot, session)
    assert pp.points_edit.placeholderText() == "可用积分 3000"
    # the customer keeps the coupon for another day: no coupon, the gold price only
    pick(qtbot, pp.coupon_pick, "不用优惠券")
    before = amount_for_volume(fill["volume_ml"], 759)
    qtbot.waitUntil(lambda: shows(session, before), timeout=WAIT)

    # 500 points typed and applied: the total drops by their value as the agent quotes it
    qtbot.keyClicks(pp.points_edit, "500")
    qtbot.mouseClick(pp.points_button, Qt.MouseButton.LeftButton)
    quote: dict[str, Any] = {}

    def redeemed() -> bool:
        quote.update(api_order(live, order_id)["quote"])
        return bool(quote["points_used"] == 500)

    qtbot.waitUntil(redeemed, timeout=WAIT)
    value = next(d["amount_fen"] for d in quote["discounts"] if d["stage"] == "points")
    assert value == 500 * live.st.agent.config.checkout.point_value_fen
    assert quote["coupon_id"] is None  # the coupon declined above does not come back with the points
    assert quote["payable_fen"] == before - value
    qtbot.waitUntil(lambda: shows(session, before - value), timeout=WAIT)
    assert f"积分抵扣  -{money(value)}" in cashier.order_panel.discounts.text()
    assert f"积分抵扣  -{money(value)}" in customer.discount_lines.text()
    assert pp.remaining.text() == money(before - value)
    save_screenshot(cashier, shots / "member_points_cashier_payment.png")
    save_screenshot(customer, shots / "member_points_customer.png")

    # then the customer uses the coupon after all: the points stay redeemed
    pick(qtbot, pp.coupon_pick, "cp-3")
    payable = before - 300 - value
    qtbot.waitUntil(lambda: shows(session, payable), timeout=WAIT)
    quote.update(api_order(live, order_id)["quote"])
    assert (quote["coupon_id"], quote["points_used"], quote["payable_fen"]) == ("cp-3", 500, payable)
    assert pp.points_edit.text() == "500"

    # the rest in cash: a 50-yuan note
    assert payable < 5000
    qtbot.mouseClick(pp.pad.buttons["50"], Qt.MouseButton.LeftButton)
    assert pp.remaining.text() == "¥0.00"
    assert pp.change.text() == money(5000 - payable)
    qtbot.mouseClick(pp.confirm_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: customer.view.phase is Phase.PAID, timeout=WAIT)
    assert customer.result_amount.text() == money(payable)
    assert customer.result_message.text() == f"找零 {money(5000 - payable)}\n谢谢惠顾，一路平安！"
    save_screenshot(customer, shots / "member_points_customer_paid.png")

    paid = api_order(live, order_id)
    assert paid["state"] == "paid"
    assert paid["payable_fen"] == payable
    assert paid["quote"]["points_used"] == 500
    assert live.center.state.coupons["cp-3"]["state"] == "used"
    earned = paid["quote"]["points_earned"]
    member = live.checkout.member("m1")  # the station's ledger (this UI station runs no relay to the center)
    assert member["points"] == 3000 - 500 + earned < 3000
    assert member["points_available"] == member["points"]  # the hold was settled, nothing left held


def test_prepay_by_volume_stops_at_the_preset(qtbot: Any, session: Any, live: LiveStation, shots: Path) -> None:
    cashier, customer = session.cashier, session.customer
    qtbot.mouseClick(cashier.prepay_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: cashier.findChild(PrepayDialog, "prepay_dialog") is not None, timeout=WAIT)
    dlg = cashier.findChild(PrepayDialog, "prepay_dialog")
    pick(qtbot, dlg.pump, "4号")
    pick(qtbot, dlg.mode, "按升数")
    assert dlg.volume.isVisible() and dlg.nozzle.isVisible() and not dlg.amount.isVisible()
    assert dlg.nozzle.currentText() == "7号枪  92#"
    qtbot.keyClicks(dlg.volume, "20")
    amount = amount_for_volume(20_000, 789)
    assert amount == 15_780
    assert dlg.price_info.text() == f"20 升 × ¥7.89/升 = {money(amount)}"
    save_screenshot(dlg, shots / "prepay_volume_dialog.png")
    qtbot.mouseClick(dlg.buttons["cash"], Qt.MouseButton.LeftButton)

    qtbot.waitUntil(lambda: f"4号油机预付 {money(amount)} 已收款" in cashier.message_label.text(), timeout=WAIT)
    qtbot.waitUntil(lambda: customer.view.headline == "4号油机 预付成功", timeout=WAIT)
    assert customer.result_amount.text() == money(amount)
    qtbot.waitUntil(lambda: tile(session, 4).tile.display == "authorized", timeout=WAIT)
    assert live.st.sim.pump(4).preset_volume == 2000  # raw wire units of 10 mL
    save_screenshot(customer, shots / "prepay_volume_customer.png")

    # the customer fuels; the pump stops by itself at 20 litres, with the nozzle still in the tank
    shown: list[tuple[str, str]] = []  # (display, litres) of pump 4's tile after every event
    session.api.received.connect(lambda *_: shown.append((tile(session, 4).tile.display,
                                                          tile(session, 4).litres.text())))
    live.st.sim.lift(4, 1)
    qtbot.waitUntil(lambda: tile(session, 4).tile.display == "fuelling"
                    and cashier.board.snapshots[4]["volume_ml"] >= 10_000, timeout=WAIT)
    save_screenshot(cashier, shots / "prepay_volume_cashier_fuelling.png")
    qtbot.waitUntil(lambda: len(live.st.sim.ledger()) == 1, timeout=WAIT)
    stop = live.st.sim.ledger()[0]
    assert (stop.ended_by, stop.preset_reached, stop.volume_raw, stop.volume_ml) == ("preset", True, 2000, 20_000)
    # the tile went fuelling -> finishing -> calling (nozzle still out) and never showed more than 20 litres
    qtbot.waitUntil(lambda: tile(session, 4).tile.display == "calling", timeout=WAIT)
    displays = [d for d, _ in shown]
    assert displays.index("fuelling") < displays.index("finishing") < len(displays) - 1
    assert max(float(text.removesuffix(" L")) for _, text in shown if text) <= 20.0
    assert ("finishing", "20.00 L") in shown  # the sale's final figure, not the last flow reading
    live.st.sim.hang(4)

    def fill() -> dict[str, Any]:
        f: dict[str, Any] = live.api.get("/api/v1/fills", params={"pump_id": 4}).json()[0]
        return f

    qtbot.waitUntil(lambda: fill()["state"] == "paid", timeout=WAIT)
    f = fill()
    assert f["volume_ml"] == f["preset_volume_ml"] == 20_000
    assert f["amount_fen"] == amount  # exactly what was charged: nothing to refund
    qtbot.waitUntil(lambda: tile(session, 4).tile.display == "idle", timeout=WAIT)
    assert "少加" not in cashier.message_label.text()
