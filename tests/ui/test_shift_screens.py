"""The shift page beyond the plain close (tests/ui/test_manager_screens.py): the manager's forced close with
a reason, meter readings typed for a pump that cannot be read, and the handover to the next cashier —
driven through the UI against a live agent; screenshots of the meter table, the force dialog and the report."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt

from tests.ui.conftest import LiveStation, login
from ui.app import save_screenshot

WAIT = 15_000


def _open_shift(qtbot: Any, session: Any, float_yuan: str = "100") -> Any:
    cashier = session.cashier
    qtbot.mouseClick(cashier.shift_button, Qt.MouseButton.LeftButton)
    page = cashier.shift_page
    qtbot.waitUntil(lambda: page.info.text() == "当前没有开班", timeout=WAIT)
    page.float_edit.setText(float_yuan)
    qtbot.mouseClick(page.open_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: page.shift is not None, timeout=WAIT)
    qtbot.waitUntil(lambda: page.check_state.text() == "✔ 可以班结", timeout=WAIT)
    return page


def _unpaid_fill(qtbot: Any, session: Any, live: LiveStation, pid: int, ml: int) -> None:
    live.st.sim.lift(pid, 1)
    qtbot.waitUntil(lambda: session.cashier.board.snapshots[pid]["state"] == "calling", timeout=WAIT)
    live.api.post(f"/api/v1/pumps/{pid}/authorize", json={})
    qtbot.waitUntil(lambda: session.cashier.board.snapshots[pid].get("volume_ml", 0) >= ml, timeout=WAIT)
    live.st.sim.hang(pid)
    qtbot.waitUntil(lambda: session.cashier.board.tile(pid).display == "unpaid", timeout=WAIT)


def test_manager_forces_the_close_with_a_reason_and_types_the_meter_of_an_offline_pump(
        qtbot: Any, session: Any, live: LiveStation, shots: Path) -> None:
    cashier = session.cashier
    page = _open_shift(qtbot, session)
    # every gun's totalizer is listed as the close would take it; the pumps answered, so none is editable
    qtbot.waitUntil(lambda: page.meter_table.rowCount() == 8, timeout=WAIT)
    assert {m["source"] for m in page.meters} == {"pump"}
    assert page.meter_table.item(0, 4).text() == "油机读取"
    assert not page.meter_table.item(0, 3).flags() & Qt.ItemFlag.ItemIsEditable
    assert page.force_button.isVisible() and not page.force_button.isEnabled()  # nothing to force over

    # pump 1 leaves an unpaid sale; pump 4's line goes dead: its meters must be typed from the dispenser
    _unpaid_fill(qtbot, session, live, 1, 2000)
    guns4 = [m["nozzle"] for m in page.meters if m["pump_id"] == 4]
    live.st.sim.offline(4)
    qtbot.waitUntil(lambda: cashier.board.snapshots[4]["state"] == "offline", timeout=WAIT)
    qtbot.mouseClick(page.check_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: page.blocker_list.count() == 1, timeout=WAIT)
    qtbot.mouseClick(page.meter_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: [m["source"] for m in page.meters if m["pump_id"] == 4] == ["none", "none"],
                    timeout=WAIT)
    row = next(i for i, m in enumerate(page.meters) if m["nozzle"] == guns4[0])
    cell = page.meter_table.item(row, 3)
    assert cell.flags() & Qt.ItemFlag.ItemIsEditable
    assert page.meter_table.item(row, 4).text() == "请手工录入"
    save_screenshot(cashier, shots / "shift_meters_offline_pump_1024x768.png")

    # a bad reading is refused on the page, nothing is sent
    cell.setText("12a.5")
    page.declared_edit.setText("100")
    assert page.force_button.isEnabled()
    qtbot.mouseClick(page.force_button, Qt.MouseButton.LeftButton)
    assert cashier.message_label.text() == f"泵码读数格式不对：{guns4[0]}号枪"
    assert page.force_dialog is None
    cell.setText("123456.78")

    # the manager forces the close: the dialog lists what is left and insists on a reason
    qtbot.mouseClick(page.force_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: page.force_dialog is not None and page.force_dialog.isVisible(), timeout=WAIT)
    dialog = page.force_dialog
    assert dialog.items.count() == 1 and dialog.items.item(0).text().startswith("⚠ 1号油机 1号枪有未付挂单")
    qtbot.mouseClick(dialog.ok_button, Qt.MouseButton.LeftButton)
    assert dialog.error.text() == "请填写强制班结的原因" and dialog.isVisible()
    dialog.reason.setText("客户驾车离开未付款，已报警")
    save_screenshot(dialog, shots / "shift_force_dialog.png")
    qtbot.mouseClick(dialog.ok_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: page.report is not None, timeout=WAIT)
    assert cashier.message_label.text() == "已强制班结，报表如下"
    report = live.api.get(f"/api/v1/manager/shifts/{page.report_shift_id}/report").json()
    assert report["forced"] is True and report["force_reason"] == "客户驾车离开未付款，已报警"
    assert [b["code"] for b in report["blockers_at_close"]] == ["unpaid_fill"]
    typed = next(m for m in report["meter"] if m["nozzle"] == guns4[0])
    assert (typed["close_ml"], typed["close_source"]) == (123_456_780, "manual")
    assert next(m for m in report["meter"] if m["nozzle"] == 1)["close_source"] == "pump"
    text = page.view.toPlainText()
    for words in ("强制班结", "客户驾车离开未付款，已报警", "1号油机 1号枪有未付挂单", "（手工）"):
        assert words in text, words
    audit = live.api.get("/api/v1/manager/audit", params={"action": "shift.force_close"}).json()
    assert audit[0]["actor"] == "m01" and audit[0]["after"]["reason"] == "客户驾车离开未付款，已报警"
    save_screenshot(cashier, shots / "shift_forced_report_1024x768.png")
    # the printed and exported reports say the same: who forced it, why, and which reading was typed
    txt = live.api.get(f"/api/v1/manager/shifts/{page.report_shift_id}/report", params={"format": "txt"}).text
    assert "客户驾车离开未付款，已报警" in txt and "forced_by" in txt
    pdf = live.api.get(f"/api/v1/manager/shifts/{page.report_shift_id}/report", params={"format": "pdf"}).content
    pdf_text = subprocess.run(["pdftotext", "-layout", "-", "-"], input=pdf, capture_output=True, check=True,
                              timeout=30).stdout.decode()
    assert "强制班结 Forced close" in pdf_text and "客户驾车离开未付款，已报警" in pdf_text, pdf_text[-1500:]
    assert "123456.780*" in pdf_text, pdf_text[-1500:]
    live.st.sim.online(4)


def test_handover_from_the_shift_page_opens_the_next_cashiers_shift_and_a_cashier_cannot_force(
        qtbot: Any, session: Any, live: LiveStation, shots: Path) -> None:
    cashier = session.cashier
    page = _open_shift(qtbot, session, "200")
    qtbot.waitUntil(lambda: page.meter_table.rowCount() == 8, timeout=WAIT)
    qtbot.mouseClick(page.handover_button, Qt.MouseButton.LeftButton)
    assert cashier.message_label.text() == "请输入接班人工号"
    page.declared_edit.setText("200")
    page.to_edit.setText("c01")
    qtbot.mouseClick(page.handover_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: page.report is not None, timeout=WAIT)
    assert cashier.message_label.text() == "已交接给 c01，新班次已开"
    assert page.report["cash"]["over_short_fen"] == 0
    open_ = live.api.get("/api/v1/manager/shifts", params={"state": "open"}).json()
    assert [s["cashier"] for s in open_] == ["c01"]
    # the next shift starts from the very readings the last one closed with: no litre falls between shifts
    assert open_[0]["open_readings"] == live.api.get(
        f"/api/v1/manager/shifts/{page.report_shift_id}").json()["close_readings"]
    save_screenshot(cashier, shots / "shift_handover_1024x768.png")

    # c01 takes over: their shift is already open, and the force button is not theirs to press
    qtbot.mouseClick(page.back_button, Qt.MouseButton.LeftButton)
    qtbot.mouseClick(cashier.logout_button, Qt.MouseButton.LeftButton)
    login(qtbot, session, "c01", "1234")
    qtbot.mouseClick(cashier.shift_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: page.shift is not None and page.shift["cashier"] == "c01", timeout=WAIT)
    assert "备用金 ¥0.00" in page.info.text()
    assert not page.force_button.isVisible()
