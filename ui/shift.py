"""Shift close screen (班结): open a shift, pre-check, counted cash, close or hand over, the report.

Calls (``agent/api/manager.py``), all made in the logged-in cashier's name:

* ``GET  /api/v1/manager/shifts/current`` — the cashier's open shift (or the station's);
* ``POST /api/v1/manager/shifts`` ``{"float_fen", "request_key"}`` — open one;
* ``GET  /api/v1/manager/shifts/{id}/precheck`` — blockers, each with what to do;
* ``POST /api/v1/manager/shifts/{id}/close`` ``{"declared_cash_fen"}`` — 409
  ``shift_close_blocked`` carries the blockers, which are listed again;
* ``POST /api/v1/manager/shifts/{id}/handover`` ``{"to_cashier", "declared_cash_fen", "float_fen"}``;
* ``POST /api/v1/manager/shifts/{id}/report/print`` and ``GET …/report?format=pdf``;
* ``GET  /api/v1/manager/meters`` — every gun's totalizer as the close would take it, with its
  source (pump / last fill / unknown).

Meter readings: the table lists each gun's totalizer.  A gun the agent cannot
read from its pump (line down, pump offline) is editable: the manager types the
counter shown on the dispenser, and the close sends it as ``readings`` (marked
"typed" on the report).  Forced close: with blockers left, a manager (only; the
agent checks the role again) may close anyway after giving a reason in the
confirmation dialog; the reason and the overridden blockers stay on the report
and in the audit log.

The PDF is saved to a path chosen with ``save_dialog`` (a replaceable attribute:
tests inject one; STYLE.md §5) and written by the API worker thread.  The
report is rendered from ``managermodels.report_sections``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QFileDialog,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from ui.client import ApiClient, ApiError
from ui.dialogs import litres_ml
from ui.i18n import error_text, tr
from ui.managermodels import CashierSession, blocker_lines, report_sections, sections_html
from ui.viewmodels import money, parse_amount

__all__ = ["ForceCloseDialog", "ShiftPage", "ask_pdf_path", "meter_text", "parse_meter"]

BASE = "/api/v1/manager/shifts"
METERS = "/api/v1/manager/meters"


def meter_text(ml: int | None) -> str:
    """A totalizer in litres with two decimals as typed on a dispenser (``""`` when unknown)."""
    return "" if ml is None else f"{ml // 1000}.{ml % 1000 // 10:02d}"


def parse_meter(text: str) -> int:
    """A totalizer typed in litres (``"123456.78"``, thousands commas allowed) to mL; ``ValueError`` if
    not a number >= 0 of at most 10 whole digits."""
    plain = text.strip().replace(",", "")
    if len(plain.partition(".")[0]) > 10:
        raise ValueError(text)
    return litres_ml(plain)


class ForceCloseDialog(QDialog):
    """The manager's confirmation of a forced close: what is still open, and a reason (required)."""

    confirmed = Signal(str)

    def __init__(self, blockers: list[dict[str, Any]], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("force_close_dialog")
        self.setWindowTitle(tr("shift.force_title"))
        self.setMinimumWidth(520)
        lay = QVBoxLayout(self)
        head = QLabel(tr("shift.force_text"), self)
        head.setWordWrap(True)
        head.setStyleSheet("font-size: 15px; color: #B71C1C; font-weight: bold;")
        lay.addWidget(head)
        self.items = QListWidget(self)
        self.items.setWordWrap(True)
        for what, todo in blocker_lines(blockers):
            self.items.addItem(f"⚠ {what}\n    {tr('shift.todo', action=todo)}")
        lay.addWidget(self.items, 1)
        form = QFormLayout()
        self.reason = QLineEdit(self)
        self.reason.setObjectName("force_reason")
        self.reason.setMinimumHeight(40)
        self.reason.setMaxLength(200)
        form.addRow(QLabel(tr("shift.force_reason"), self), self.reason)
        lay.addLayout(form)
        self.error = QLabel("", self)
        self.error.setStyleSheet("color: #B71C1C;")
        lay.addWidget(self.error)
        row = QHBoxLayout()
        self.cancel_button = QPushButton(tr("dlg.cancel"), self)
        self.cancel_button.setMinimumHeight(44)
        self.cancel_button.clicked.connect(self.reject)
        self.ok_button = QPushButton(tr("shift.force_confirm"), self)
        self.ok_button.setObjectName("force_confirm")
        self.ok_button.setMinimumHeight(44)
        self.ok_button.setStyleSheet("background: #B71C1C; color: white; font-weight: bold; border-radius: 6px;")
        self.ok_button.clicked.connect(self._ok)
        row.addWidget(self.cancel_button)
        row.addWidget(self.ok_button)
        lay.addLayout(row)

    def _ok(self) -> None:
        reason = self.reason.text().strip()
        if len(reason) < 2:
            self.error.setText(tr("shift.force_need_reason"))
            return
        self.confirmed.emit(reason)
        self.accept()


def ask_pdf_path(parent: QWidget, title: str, suggested: str) -> str:
    """The default ``save_dialog``: a native save dialog; ``""`` when cancelled."""
    path, _ = QFileDialog.getSaveFileName(parent, title, suggested, "PDF (*.pdf)")
    return str(path)


def _time(ms: Any) -> str:
    return datetime.fromtimestamp(int(ms) / 1000).strftime("%m-%d %H:%M") if ms else "—"


class ShiftPage(QFrame):
    """See the module docstring; ``message(text, is_error)`` goes to the window's status line."""

    message = Signal(str, bool)
    back = Signal()

    def __init__(self, api: ApiClient, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("shift_page")
        self.api = api
        self.shift: dict[str, Any] | None = None
        self.report: dict[str, Any] | None = None
        self.report_shift_id: str | None = None
        self.blockers: list[dict[str, Any]] = []
        self.grade_names: dict[str, str] = {}
        self.station_name = ""
        self.save_dialog: Callable[[QWidget, str, str], str] = ask_pdf_path  #: replaceable (tests)
        self.session: CashierSession | None = None  #: who is logged in (set by the window)
        self.meters: list[dict[str, Any]] = []
        self.force_dialog: ForceCloseDialog | None = None

        root = QVBoxLayout(self)
        root.setContentsMargins(4, 4, 4, 4)
        head = QHBoxLayout()
        self.title = QLabel(self)
        self.title.setStyleSheet("font-size: 22px; font-weight: bold;")
        self.info = QLabel(self)
        self.info.setObjectName("shift_info")
        self.info.setStyleSheet("font-size: 15px;")
        self.back_button = QPushButton(self)
        self.back_button.setObjectName("shift_back")
        self.back_button.setMinimumHeight(40)
        self.back_button.clicked.connect(self.back)
        head.addWidget(self.title)
        head.addSpacing(12)
        head.addWidget(self.info, 1)
        head.addWidget(self.back_button)
        root.addLayout(head)

        body = QHBoxLayout()
        left = QVBoxLayout()
        # open a shift (only when none is open)
        self.open_box = QFrame(self)
        ol = QFormLayout(self.open_box)
        self.float_edit = QLineEdit(self.open_box)
        self.float_edit.setObjectName("shift_float")
        self.float_edit.setMinimumHeight(40)
        self.float_label = QLabel(self.open_box)
        ol.addRow(self.float_label, self.float_edit)
        self.open_button = QPushButton(self.open_box)
        self.open_button.setObjectName("shift_open")
        self.open_button.setMinimumHeight(46)
        self.open_button.clicked.connect(self.open_shift)
        ol.addRow(self.open_button)
        left.addWidget(self.open_box)
        # pre-check
        self.check_title = QLabel(self)
        self.check_title.setStyleSheet("font-size: 16px; font-weight: bold;")
        self.check_state = QLabel(self)
        self.check_state.setObjectName("shift_check_state")
        self.check_state.setWordWrap(True)
        self.blocker_list = QListWidget(self)
        self.blocker_list.setObjectName("shift_blockers")
        self.blocker_list.setWordWrap(True)
        self.blocker_list.setStyleSheet("QListWidget { font-size: 14px; } QListWidget::item { padding: 4px;"
                                        " border-bottom: 1px solid #E0E0E0; }")
        self.check_button = QPushButton(self)
        self.check_button.setObjectName("shift_precheck")
        self.check_button.setMinimumHeight(40)
        self.check_button.clicked.connect(self.precheck)
        left.addWidget(self.check_title)
        left.addWidget(self.check_state)
        left.addWidget(self.blocker_list, 1)
        left.addWidget(self.check_button)
        # close / hand over
        form = QFormLayout()
        self.declared_label, self.to_label = QLabel(self), QLabel(self)
        self.declared_edit = QLineEdit(self)
        self.declared_edit.setObjectName("shift_declared")
        self.declared_edit.setMinimumHeight(40)
        self.to_edit = QLineEdit(self)
        self.to_edit.setObjectName("shift_to")
        self.to_edit.setMinimumHeight(40)
        form.addRow(self.declared_label, self.declared_edit)
        form.addRow(self.to_label, self.to_edit)
        left.addLayout(form)
        row = QHBoxLayout()
        self.close_button = QPushButton(self)
        self.close_button.setObjectName("shift_close")
        self.close_button.setMinimumHeight(50)
        self.close_button.setStyleSheet("QPushButton { background: #2E7D32; color: white; font-size: 18px;"
                                        " font-weight: bold; border-radius: 8px; }"
                                        " QPushButton:disabled { background: #C8E6C9; color: #F1F8E9; }")
        self.close_button.clicked.connect(self.close_shift)
        self.handover_button = QPushButton(self)
        self.handover_button.setObjectName("shift_handover")
        self.handover_button.setMinimumHeight(50)
        self.handover_button.clicked.connect(self.handover)
        row.addWidget(self.close_button, 1)
        row.addWidget(self.handover_button, 1)
        left.addLayout(row)
        self.force_button = QPushButton(self)
        self.force_button.setObjectName("shift_force")
        self.force_button.setMinimumHeight(40)
        self.force_button.setStyleSheet("QPushButton { color: #B71C1C; font-weight: bold; }"
                                        " QPushButton:disabled { color: #BDBDBD; }")
        self.force_button.clicked.connect(self.force_close)
        left.addWidget(self.force_button)
        row2 = QHBoxLayout()
        self.print_button = QPushButton(self)
        self.print_button.setObjectName("shift_print")
        self.print_button.setMinimumHeight(44)
        self.print_button.clicked.connect(self.print_report)
        self.pdf_button = QPushButton(self)
        self.pdf_button.setObjectName("shift_pdf")
        self.pdf_button.setMinimumHeight(44)
        self.pdf_button.clicked.connect(self.export_pdf)
        row2.addWidget(self.print_button)
        row2.addWidget(self.pdf_button)
        left.addLayout(row2)
        left_w = QWidget(self)
        left_w.setLayout(left)
        left_w.setFixedWidth(360)
        body.addWidget(left_w)
        right = QVBoxLayout()
        self.meter_box = QFrame(self)
        self.meter_box.setObjectName("shift_meter_box")
        mbox = QVBoxLayout(self.meter_box)
        mbox.setContentsMargins(0, 0, 0, 0)
        mhead = QHBoxLayout()
        self.meter_title = QLabel(self)
        self.meter_title.setStyleSheet("font-size: 16px; font-weight: bold;")
        self.meter_button = QPushButton(self)
        self.meter_button.setObjectName("shift_read_meters")
        self.meter_button.setMinimumHeight(36)
        self.meter_button.clicked.connect(self.read_meters)
        mhead.addWidget(self.meter_title, 1)
        mhead.addWidget(self.meter_button)
        mbox.addLayout(mhead)
        self.meter_hint = QLabel(self)
        self.meter_hint.setWordWrap(True)
        self.meter_hint.setStyleSheet("color: #555;")
        mbox.addWidget(self.meter_hint)
        self.meter_table = QTableWidget(0, 5, self)
        self.meter_table.setObjectName("shift_meters")
        self.meter_table.verticalHeader().setVisible(False)
        self.meter_table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.meter_table.setEditTriggers(QAbstractItemView.EditTrigger.AllEditTriggers)
        self.meter_table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.meter_table.verticalHeader().setDefaultSectionSize(28)
        self.meter_table.setMaximumHeight(260)
        mbox.addWidget(self.meter_table)
        right.addWidget(self.meter_box)
        self.view = QTextBrowser(self)
        self.view.setObjectName("shift_report")
        self.view.setOpenLinks(False)
        right.addWidget(self.view, 1)
        body.addLayout(right, 1)
        root.addLayout(body, 1)
        self.retranslate()
        self._show_state()

    # ------------------------------------------------------------ texts / state
    def retranslate(self) -> None:
        self.title.setText(tr("shift.title"))
        self.back_button.setText(tr("btn.back"))
        self.float_label.setText(tr("shift.float"))
        self.open_button.setText(tr("shift.open"))
        self.check_title.setText(tr("shift.precheck"))
        self.check_button.setText(tr("shift.precheck"))
        self.declared_label.setText(tr("shift.declared"))
        self.to_label.setText(tr("shift.handover_to"))
        self.close_button.setText(tr("shift.close"))
        self.handover_button.setText(tr("shift.handover"))
        self.print_button.setText(tr("shift.print"))
        self.pdf_button.setText(tr("shift.pdf"))
        self.force_button.setText(tr("shift.force"))
        self.meter_title.setText(tr("shift.meters"))
        self.meter_button.setText(tr("shift.read_meters"))
        self.meter_hint.setText(tr("shift.meters_hint"))
        self.meter_table.setHorizontalHeaderLabels([tr("rep.nozzle"), tr("rep.pump"), tr("rep.grade"),
                                                    tr("shift.meter_reading"), tr("shift.meter_source")])
        self._show_meters()
        self._show_state()
        self._show_blockers()
        self._show_report()

    def _show_state(self) -> None:
        s = self.shift
        open_ = s is not None and s.get("state") == "open"
        self.open_box.setVisible(not open_)
        for w in (self.check_button, self.declared_edit, self.to_edit, self.close_button, self.handover_button):
            w.setEnabled(open_)
        for w in (self.print_button, self.pdf_button):
            w.setEnabled(self.report_shift_id is not None)
        self.meter_box.setVisible(open_)
        manager = self.session is not None and self.session.may("manager")
        self.force_button.setVisible(manager)
        self.force_button.setEnabled(open_ and manager and bool(self.blockers))
        if open_ and s is not None:
            self.info.setText(tr("shift.opened", id=str(s["shift_id"])[-6:], cashier=s.get("cashier"),
                                 time=_time(s.get("opened_at_ms")), float=money(int(s.get("float_fen") or 0))))
        else:
            self.info.setText(tr("shift.none"))

    def _show_meters(self) -> None:
        t = self.meter_table
        t.setRowCount(len(self.meters))
        for i, m in enumerate(self.meters):
            source = str(m.get("source") or "none")
            cells = (tr("pump.nozzle", n=m["nozzle"]), tr("pump.title", n=m["pump_id"]),
                     self.grade_names.get(str(m["grade"]), str(m["grade"])),
                     meter_text(m.get("volume_total_ml")), tr(f"meter.src.{source}"))
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                editable = col == 3 and source != "pump"
                flags = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
                item.setFlags(flags | Qt.ItemFlag.ItemIsEditable if editable else flags)
                if editable:
                    item.setBackground(Qt.GlobalColor.yellow if source == "none" else Qt.GlobalColor.white)
                if col == 3:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                if col == 4 and source == "none":
                    item.setForeground(Qt.GlobalColor.red)
                t.setItem(i, col, item)
        first = next((i for i, m in enumerate(self.meters) if m.get("source") != "pump"), None)
        target = None if first is None else t.item(first, 3)
        if target is not None:  # the reading to type is in view
            t.scrollToItem(target, QAbstractItemView.ScrollHint.PositionAtCenter)

    def manual_readings(self) -> dict[str, int] | None:
        """Totalizers the manager typed (gun -> mL) for guns not read from their pump; None if one is bad."""
        out: dict[str, int] = {}
        for i, m in enumerate(self.meters):
            item = self.meter_table.item(i, 3)
            if m.get("source") == "pump" or item is None:
                continue
            text = item.text().strip()
            if not text or text == meter_text(m.get("volume_total_ml")):
                continue  # untouched: the agent falls back to the last fill's reading itself
            try:
                out[str(m["nozzle"])] = parse_meter(text)
            except ValueError:
                self.message.emit(tr("shift.bad_meter", gun=m["nozzle"]), True)
                return None
        return out

    def _close_body(self, declared: int) -> dict[str, Any] | None:
        readings = self.manual_readings()
        if readings is None:
            return None
        body: dict[str, Any] = {"declared_cash_fen": declared}
        if readings:
            body["readings"] = readings
        return body

    def _show_blockers(self) -> None:
        self.blocker_list.clear()
        if self.shift is None or self.shift.get("state") != "open":
            self.check_state.setText("")
            return
        if not self.blockers:
            self.check_state.setText(tr("shift.ready"))
            self.check_state.setStyleSheet("color: #1B5E20; font-size: 15px; font-weight: bold;")
            return
        self.check_state.setText(tr("shift.blocked", n=len(self.blockers)))
        self.check_state.setStyleSheet("color: #B71C1C; font-size: 15px; font-weight: bold;")
        for what, todo in blocker_lines(self.blockers):
            self.blocker_list.addItem(f"⚠ {what}\n    {tr('shift.todo', action=todo)}")

    def _show_report(self) -> None:
        r = self.report
        if r is None:
            self.view.setHtml("")
            return
        sub = tr("shift.report_sub", station=(r.get("station") or {}).get("name") or self.station_name,
                 cashier=r.get("cashier", ""), start=_time(r.get("opened_at_ms")), end=_time(r.get("closed_at_ms")))
        self.view.setHtml(sections_html(tr("shift.report"), sub, report_sections(r, self.grade_names)))

    # ------------------------------------------------------------ calls
    def refresh(self) -> None:
        """Reload the current shift (called when the page is shown)."""
        self.api.call("GET", f"{BASE}/current", on_ok=self._on_current, on_error=self._fail)

    def _on_current(self, body: Any) -> None:
        shift = body.get("shift") if isinstance(body, dict) else None
        self.shift = shift if isinstance(shift, dict) else None
        self.blockers = []
        self._show_state()
        self._show_blockers()
        if self.shift is not None:
            self.precheck()
            self.read_meters()

    def read_meters(self) -> None:
        """Ask the agent for every gun's totalizer (the pumps are read on the agent's side)."""
        self.api.call("GET", METERS, on_ok=self._on_meters, on_error=self._fail)

    def _on_meters(self, body: Any) -> None:
        rows = body.get("readings") if isinstance(body, dict) else None
        self.meters = [r for r in rows if isinstance(r, dict) and "nozzle" in r] if isinstance(rows, list) else []
        self._show_meters()

    def open_shift(self) -> None:
        text = self.float_edit.text().strip()
        try:
            fen = parse_amount(text) if text and text not in ("0", "0.0", "0.00") else 0
        except ValueError:
            self.message.emit(tr("err.bad_amount"), True)
            return
        self.api.call("POST", BASE, {"float_fen": fen, "request_key": uuid.uuid4().hex},
                      on_ok=self._on_opened, on_error=self._fail)

    def _on_opened(self, shift: Any) -> None:
        self.float_edit.clear()
        self._on_current({"shift": shift})

    def precheck(self) -> None:
        if self.shift is None:
            return
        self.api.call("GET", f"{BASE}/{self.shift['shift_id']}/precheck", on_ok=self._on_precheck,
                      on_error=self._fail)

    def _on_precheck(self, body: Any) -> None:
        self.blockers = list((body or {}).get("blockers") or []) if isinstance(body, dict) else []
        self._show_blockers()
        self._show_state()

    def _declared(self) -> int | None:
        text = self.declared_edit.text().strip()
        if text in ("0", "0.0", "0.00"):
            return 0
        try:
            return parse_amount(text)
        except ValueError:
            self.message.emit(tr("shift.bad_cash"), True)
            return None

    def close_shift(self) -> None:
        declared = self._declared()
        if self.shift is None or declared is None:
            return
        body = self._close_body(declared)
        if body is None:
            return
        self.close_button.setEnabled(False)
        self.api.call("POST", f"{BASE}/{self.shift['shift_id']}/close", body,
                      on_ok=self._on_closed, on_error=self._close_failed)

    def force_close(self) -> None:
        """Manager only: close over the blockers after confirming them and giving a reason."""
        declared = self._declared()
        if self.shift is None or declared is None or not self.blockers:
            return
        body = self._close_body(declared)
        if body is None:
            return
        shift_id = str(self.shift["shift_id"])
        dialog = ForceCloseDialog(self.blockers, self)
        self.force_dialog = dialog

        def go(reason: str) -> None:
            self.force_button.setEnabled(False)
            self.api.call("POST", f"{BASE}/{shift_id}/close", {**body, "force": True, "reason": reason},
                          on_ok=self._on_forced, on_error=self._close_failed)

        dialog.confirmed.connect(go)
        dialog.open()

    def _on_forced(self, report: Any) -> None:
        self._on_closed(report)
        self.message.emit(tr("shift.forced_done"), False)

    def handover(self) -> None:
        to = self.to_edit.text().strip()
        if not to:
            self.message.emit(tr("shift.need_to"), True)
            return
        declared = self._declared()
        if self.shift is None or declared is None:
            return
        body = self._close_body(declared)
        if body is None:
            return
        self.handover_button.setEnabled(False)
        self.api.call("POST", f"{BASE}/{self.shift['shift_id']}/handover",
                      {**body, "to_cashier": to, "float_fen": 0},
                      on_ok=self._on_handed_over, on_error=self._close_failed)

    def _on_closed(self, report: Any) -> None:
        if not isinstance(report, dict):
            return
        self.report = report
        self.report_shift_id = str(report.get("shift_id") or (self.shift or {}).get("shift_id"))
        self.shift = None
        self.blockers = []
        self.meters = []
        self._show_meters()
        self.declared_edit.clear()
        self._show_state()
        self._show_blockers()
        self._show_report()
        self.message.emit(tr("shift.closed"), False)

    def _on_handed_over(self, body: Any) -> None:
        if not isinstance(body, dict):
            return
        to = self.to_edit.text().strip()
        self.to_edit.clear()
        self._on_closed(body.get("closed"))
        self.message.emit(tr("shift.handed_over", to=to), False)

    def _close_failed(self, err: ApiError) -> None:
        self._show_state()
        if err.code == "shift_close_blocked":
            self.blockers = list(err.details.get("blockers") or [])
            self._show_blockers()
        self._fail(err)

    def print_report(self) -> None:
        if self.report_shift_id:
            self.api.call("POST", f"{BASE}/{self.report_shift_id}/report/print", on_ok=self._on_printed,
                          on_error=self._fail)

    def _on_printed(self, _: Any) -> None:
        self.message.emit(tr("shift.printed"), False)

    def export_pdf(self) -> None:
        if not self.report_shift_id:
            return
        path = self.save_dialog(self, tr("shift.pdf_title"), f"shift-{self.report_shift_id}.pdf")
        if not path:
            return
        self.api.call("GET", f"{BASE}/{self.report_shift_id}/report", {"format": "pdf"}, save_to=path,
                      on_ok=self._on_saved, on_error=self._fail)

    def _on_saved(self, body: Any) -> None:
        self.message.emit(tr("shift.saved", path=(body or {}).get("path", "")), False)

    def _fail(self, err: ApiError) -> None:
        text = tr("err.agent_down") if err.status == 0 else error_text(err.code, err.message, **err.details)
        self.message.emit(text, True)

