"""Cashier window (收银台): pump grid, order and payment panels, status bar, emergency stop.

Touch-first (big targets, one tap per action) and keyboard-fast:

=================  =============================================
F1 … F8            tap pump 1 … 8 (authorize / stop / add sale)
Shift+F1 … F8      stop pump 1 … 8
F9                 pay (order page) / confirm payment (payment page)
F10                cancel the order / leave the payment page
F12                emergency stop ALL pumps (no confirmation)
Ctrl+F             barcode / PLU field
Ctrl+M             member field
=================  =============================================

The window reads ``PumpBoard`` (pump tiles) and ``CheckoutController`` (order,
payment); all I/O goes through ``ApiClient`` (worker threads).  The
online/offline indicator shows three states: agent unreachable (red, the UI
reconnects by itself), center offline (orange) or online (green), each with
the outbox depth.  Every refusal shows one translated sentence at the bottom.
Layout works from 1024×768 up: the pump grid takes the left ~60 %, the
order/payment panel the rest, the emergency stop is always in the bottom bar.

Pages (one ``QStackedWidget`` above the bottom bar): the login screen (at
start and after logout: nothing but login and the emergency stop is offered
until a cashier signs in), the till, the shift close (班结) and the reports.
The logged-in cashier, their id and role are shown in the top bar; the agent
decides what the role may do (a cashier changing prices gets its 403 in
words).  A ``printer.status`` error shows a warning strip with the agent's
message until the printer is back.  The online-only counter operations — 开发票 (from the recent
orders dialog) and 注册会员 (next to the member field) — show the agent's refusal in words offline.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QDialog,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QPushButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from ui.checkout import CheckoutController
from ui.client import ApiClient, ApiError
from ui.dialogs import (
    ItemPickDialog,
    MemberRegisterDialog,
    PrepayDialog,
    PriceDialog,
    RefundDialog,
    ReprintDialog,
)
from ui.i18n import CATALOG, error_text, language, set_language, tr
from ui.login import LoginPage
from ui.managermodels import CashierSession
from ui.reports import ReportsPage
from ui.shift import ShiftPage
from ui.viewmodels import PumpBoard
from ui.widgets.order import OrderPanel, PaymentPanel
from ui.widgets.pumps import PumpGrid

__all__ = ["CashierWindow"]

MESSAGE_MS = 10_000
#: events after which a pump's unpaid count may have changed without a pump.status
REFRESH_PUMPS_ON = frozenset({"order.paid", "order.closed", "order.updated", "order.refunded", "prepay.underrun",
                              "prepay.authorized", "fill.zero"})


class CashierWindow(QMainWindow):
    """See the module docstring."""

    #: the language changed (the app re-translates the customer display too)
    language_changed = Signal(str)

    def __init__(self, api: ApiClient, checkout: CheckoutController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("cashier_window")
        self.api = api
        self.co = checkout
        self.board = PumpBoard()
        self.station: dict[str, Any] = {}
        self.prices: dict[str, Any] = {}
        self.sync: dict[str, Any] = {}
        self.center_online: bool | None = None
        self.price_dialog_factory = PriceDialog  #: replaceable in tests
        self.session: CashierSession | None = None
        self.printer: dict[str, Any] = {}

        outer = QWidget(self)
        self.setCentralWidget(outer)
        root = QVBoxLayout(outer)
        root.setContentsMargins(8, 6, 8, 6)
        root.setSpacing(6)
        self.pages = QStackedWidget(outer)
        self.login_page = LoginPage(api, self.pages)
        self.login_page.logged_in.connect(self.on_logged_in)
        central = QWidget(self.pages)
        central.setObjectName("till_page")
        self.till_page = central
        self.shift_page = ShiftPage(api, self.pages)
        self.reports_page = ReportsPage(api, self.pages)
        for page in (self.login_page, central, self.shift_page, self.reports_page):
            self.pages.addWidget(page)
        for sub in (self.shift_page, self.reports_page):
            sub.message.connect(self.show_message)
            sub.back.connect(self.show_till)
        root.addWidget(self.pages, 1)
        till = QVBoxLayout(central)
        till.setContentsMargins(0, 0, 0, 0)
        till.setSpacing(4)

        # ---- top bar: station, link, who is logged in; then the functions
        top = QHBoxLayout()
        functions = QHBoxLayout()
        self.station_label = QLabel(central)
        self.station_label.setObjectName("station_label")
        self.station_label.setStyleSheet("font-size: 18px; font-weight: bold;")
        self.link_label = QLabel(central)
        self.link_label.setObjectName("link_label")
        self.cashier_label = QLabel(central)
        self.clock_label = QLabel(central)
        self.clock_label.setStyleSheet("font-size: 16px;")
        self.prices_button = QPushButton(central)
        self.prices_button.setObjectName("prices_button")
        self.prices_button.clicked.connect(self.open_prices)
        self.prepay_button = QPushButton(central)
        self.prepay_button.setObjectName("prepay_button")
        self.prepay_button.clicked.connect(self.open_prepay)
        self.refund_button = QPushButton(central)
        self.refund_button.setObjectName("refund_button")
        self.refund_button.clicked.connect(self.open_refund)
        self.reports_button = QPushButton(central)
        self.reports_button.setObjectName("reports_button")
        self.reports_button.clicked.connect(self.open_reports)
        self.shift_button = QPushButton(central)
        self.shift_button.setObjectName("shift_button")
        self.shift_button.clicked.connect(self.open_shift)
        self.orders_button = QPushButton(central)
        self.orders_button.setObjectName("orders_button")
        self.orders_button.clicked.connect(self.open_reprint)
        self.logout_button = QPushButton(central)
        self.logout_button.setObjectName("logout_button")
        self.logout_button.clicked.connect(self.logout)
        self.lang_button = QPushButton(central)
        self.lang_button.setObjectName("lang_button")
        self.lang_button.clicked.connect(self.toggle_language)
        self.cashier_label.setObjectName("cashier_label")
        self.cashier_label.setStyleSheet("font-size: 15px; font-weight: bold; color: #0D47A1;")
        top.addWidget(self.station_label)
        top.addWidget(self.link_label)
        top.addStretch(1)
        top.addWidget(self.cashier_label)
        for b in (self.logout_button, self.lang_button):
            b.setMinimumHeight(30)
            top.addWidget(b)
        top.addWidget(self.clock_label)
        till.addLayout(top)
        for b in (self.prepay_button, self.refund_button, self.orders_button, self.prices_button,
                  self.shift_button, self.reports_button):
            b.setMinimumHeight(36)
            functions.addWidget(b)
        till.addLayout(functions)

        # ---- middle: pumps | order/payment
        mid = QHBoxLayout()
        self.grid = PumpGrid(central)
        self.grid.activated.connect(self.pump_action)
        self.grid.stop_requested.connect(self.stop_pump)
        mid.addWidget(self.grid, 3)
        self.side = QStackedWidget(central)
        self.order_panel = OrderPanel(checkout, self.side)
        self.payment_panel = PaymentPanel(checkout, self.side)
        self.order_panel.register_requested.connect(self.open_member_register)
        self.side.addWidget(self.order_panel)
        self.side.addWidget(self.payment_panel)
        self.side.setMinimumWidth(380)
        mid.addWidget(self.side, 2)
        till.addLayout(mid, 1)

        # ---- printer warning (hidden while the printer is fine)
        self.printer_label = QLabel(outer)
        self.printer_label.setObjectName("printer_label")
        self.printer_label.setWordWrap(True)
        self.printer_label.setStyleSheet("background: #FFF3E0; color: #BF360C; border: 2px solid #FB8C00;"
                                         " border-radius: 6px; padding: 4px 8px; font-size: 15px; font-weight: bold;")
        self.printer_label.hide()
        root.addWidget(self.printer_label)

        # ---- bottom bar: messages + emergency stop (always visible, also on the login screen)
        bottom = QHBoxLayout()
        self.message_label = QLabel(outer)
        self.message_label.setObjectName("message_label")
        self.message_label.setWordWrap(True)
        self.message_label.setMinimumHeight(48)
        self.estop_button = QPushButton(outer)
        self.estop_button.setObjectName("estop_button")
        self.estop_button.setMinimumSize(340, 60)
        self.estop_button.setStyleSheet("QPushButton { background: #D50000; color: white; font-size: 20px;"
                                        " font-weight: bold; border: 3px solid #FFEB3B; border-radius: 10px; }")
        self.estop_button.clicked.connect(self.emergency_stop_all)
        bottom.addWidget(self.message_label, 1)
        bottom.addWidget(self.estop_button)
        root.addLayout(bottom)

        self._message_timer = QTimer(self)
        self._message_timer.setSingleShot(True)
        self._message_timer.setInterval(MESSAGE_MS)
        self._message_timer.timeout.connect(self._clear_message)
        #: the agent publishes no pump.status when a sale is paid (unpaid count): re-read the pumps then
        self._pumps_refresh = QTimer(self)
        self._pumps_refresh.setSingleShot(True)
        self._pumps_refresh.setInterval(150)
        self._pumps_refresh.timeout.connect(self._refresh_pumps)
        self._clock_timer = QTimer(self)
        self._clock_timer.setInterval(1000)
        self._clock_timer.timeout.connect(self._tick)
        self._clock_timer.start()

        api.snapshot.connect(self.on_snapshot)
        api.received.connect(self.on_event)
        api.link_changed.connect(self.on_link)
        checkout.message.connect(self.show_message)
        checkout.paying.connect(self._show_payment)
        checkout.items_found.connect(self._pick_item)
        api.call_failed.connect(self._call_failed)
        self._shortcuts()
        self.retranslate()
        self.on_link(api.up, api.link_detail)

    # ------------------------------------------------------------ texts
    def retranslate(self) -> None:
        self.setWindowTitle(tr("app.cashier_title"))
        self.prices_button.setText(tr("btn.prices"))
        self.prepay_button.setText(tr("order.prepay"))
        self.refund_button.setText(tr("btn.refund"))
        self.reports_button.setText(tr("btn.reports"))
        self.shift_button.setText(tr("btn.shift"))
        self.lang_button.setText(tr("btn.language"))
        self.estop_button.setText(tr("btn.estop_all") + "  F12")
        self.orders_button.setText(tr("btn.orders"))
        self.logout_button.setText(tr("btn.logout"))
        self.cashier_label.setText(self.session.label if self.session else tr("cashier.none"))
        self.login_page.retranslate()
        self.shift_page.retranslate()
        self.reports_page.retranslate()
        self._show_printer()
        self.order_panel.retranslate()
        self.payment_panel.retranslate()
        if self.board.snapshots:
            self.grid.show_tiles(self.board.tiles())
        self.grid.retranslate()
        self._show_link()
        self._tick()

    def toggle_language(self) -> None:
        set_language("en" if language() == "zh_CN" else "zh_CN")
        self.retranslate()
        self.language_changed.emit(language())

    def _shortcuts(self) -> None:
        for n in range(1, 9):
            for seq, slot in ((f"F{n}", self._pump_key), (f"Shift+F{n}", self._pump_stop_key)):
                sc = QShortcut(QKeySequence(seq), self)
                sc.setContext(Qt.ShortcutContext.ApplicationShortcut)  # also with the customer window focused
                sc.setProperty("pump", n)
                sc.activated.connect(slot)
        for key, slot in (("F9", self._pay_key), ("F10", self._cancel_key), ("F12", self.emergency_stop_all),
                          ("Ctrl+F", self.order_panel.search_edit.setFocus),
                          ("Ctrl+M", self.order_panel.member_edit.setFocus)):
            sc = QShortcut(QKeySequence(key), self)
            sc.setContext(Qt.ShortcutContext.ApplicationShortcut)
            sc.activated.connect(slot)

    @property
    def on_till(self) -> bool:
        """A cashier is logged in and the till page is showing (pump keys act only then)."""
        return self.session is not None and self.pages.currentWidget() is self.till_page

    def _pump_key(self) -> None:
        if not self.on_till:
            return
        pid = int(self.sender().property("pump"))
        if pid in self.board.snapshots:
            self.pump_action(pid, self.board.tile(pid).primary)

    def _pump_stop_key(self) -> None:
        if not self.on_till:
            return
        self.stop_pump(int(self.sender().property("pump")))

    def _pay_key(self) -> None:
        if not self.on_till:
            return
        if self.side.currentWidget() is self.payment_panel:
            self.co.pay()
        else:
            self.co.start_payment()

    def _cancel_key(self) -> None:
        if not self.on_till:
            return
        if self.side.currentWidget() is self.payment_panel:
            self.co.leave_payment()
        else:
            self.co.cancel_order()

    # ------------------------------------------------------------ agent state
    def on_snapshot(self, snap: object) -> None:
        if not isinstance(snap, dict):
            return
        self.station = snap.get("station") or self.station
        self.prices = snap.get("prices") or self.prices
        self.sync = snap.get("sync") or self.sync
        if "online" in self.sync:
            self.center_online = bool(self.sync["online"])
        self.board.set_grades(self.station.get("grades", []))
        self.co.draft.grade_names = dict(self.board.grade_names)
        self.board.load(snap.get("pumps") or [])
        self.grid.show_tiles(self.board.tiles())
        st = self.station.get("station", {})
        self.station_label.setText(str(st.get("name") or st.get("id") or ""))
        self._show_link()

    def on_event(self, topic: str, data: object) -> None:
        if not isinstance(data, dict):
            return
        for pid in self.board.apply(topic, data):
            self.grid.show_tile(self.board.tile(pid))
        if topic in ("sync.link", "sync.state"):
            self.sync = {**self.sync, **data}
            if "online" in data:
                self.center_online = bool(data["online"])
            self._show_link()
        elif topic == "prices.changed":
            self.prices = {**self.prices, "prices_fen": data.get("prices_fen", {}), "version": data.get("version")}
        elif topic == "printer.status":
            self.on_printer(data)
        elif topic == "pump.refused":
            self.show_message(str(data.get("reason", "")), True)
        elif topic == "order.refunded" and data.get("invoice_no"):
            self.show_message(tr("refund.invoice", invoice=data["invoice_no"]), True)
            self._pumps_refresh.start()
        elif topic in ("pump.alert", "pump.authorization_expired", "pump.command_failed", "pump.alarm"):
            self._pump_notice(topic, data)
        elif topic in REFRESH_PUMPS_ON:
            self._pumps_refresh.start()

    def _pump_notice(self, topic: str, data: dict[str, Any]) -> None:
        """What the agent did to a pump on its own, in one line the cashier can act on."""
        pump = data.get("pump_id", "?")
        if topic == "pump.authorization_expired":
            self.show_message(tr("alert.authorization_expired", pump=pump, after=data.get("after_s", "?")), True)
        elif topic == "pump.alert":
            key = f"alert.{data.get('code')}"
            self.show_message(tr(key, pump=pump) if key in CATALOG else f"{pump}: {data.get('reason', '')}", True)
        elif topic == "pump.command_failed" and data.get("command") == "Authorize":
            self.show_message(tr("alert.authorize_failed", pump=pump, reason=data.get("reason", "")), True)
        elif topic == "pump.alarm" and data.get("code") == "totalizer":
            self.show_message(tr("alert.totalizer", pump=pump), True)
        if topic != "pump.alarm":
            self._pumps_refresh.start()  # the fill was closed: the tile's unpaid count may change

    def _refresh_pumps(self) -> None:
        self.api.call("GET", "/api/v1/pumps", on_ok=self._on_pumps)

    def _on_pumps(self, pumps: Any) -> None:
        if isinstance(pumps, list):
            for p in pumps:
                for pid in self.board.apply("pump.status", p):
                    self.grid.show_tile(self.board.tile(pid))

    def on_link(self, up: bool, detail: str) -> None:
        self._show_link()
        if not up:
            self.show_message(tr("link.agent_down"), True)
        elif self.message_label.text() == tr("link.agent_down"):
            self._clear_message()

    def _show_link(self) -> None:
        depth = int(self.sync.get("depth") or 0)
        if not self.api.up:
            text, colour = tr("link.agent_down"), "#D50000"
        elif self.center_online:
            text, colour = f"● {tr('link.online')}  {tr('link.outbox', n=depth)}", "#2E7D32"
        else:
            text, colour = f"● {tr('link.offline')}  {tr('link.outbox', n=depth)}", "#EF6C00"
        self.link_label.setText(text)
        self.link_label.setStyleSheet(f"color: white; background: {colour}; border-radius: 6px; padding: 4px 10px;"
                                      " font-size: 15px; font-weight: bold;")

    # ------------------------------------------------------------ pump actions
    def pump_action(self, pump_id: int, action: str) -> None:
        if action == "authorize":
            self.api.call("POST", f"/api/v1/pumps/{pump_id}/authorize", {}, on_ok=self._ok_quiet,
                          on_error=self._pump_error(pump_id))
        elif action == "stop":
            self.stop_pump(pump_id)
        elif action == "add":
            self.co.add_unpaid(pump_id)

    def stop_pump(self, pump_id: int) -> None:
        self.api.call("POST", f"/api/v1/pumps/{pump_id}/stop", None, on_ok=self._ok_quiet,
                      on_error=self._pump_error(pump_id))

    def emergency_stop_all(self) -> None:
        self.api.call("POST", "/api/v1/pumps/emergency-stop", None, on_ok=self._estop_done, on_error=self.api_error)

    def _estop_done(self, body: Any) -> None:
        self.show_message(f"{tr('btn.estop_all')}: {body.get('stopped') if isinstance(body, dict) else ''}", True)

    def _pump_error(self, pump_id: int) -> _PumpError:
        return _PumpError(self, pump_id)

    def _ok_quiet(self, _: Any) -> None:
        pass

    def api_error(self, err: ApiError, **ctx: Any) -> None:
        text = tr("err.agent_down") if err.status == 0 else error_text(err.code, err.message,
                                                                        **{**err.details, **ctx})
        self.show_message(text, True)

    # ------------------------------------------------------------ dialogs
    def open_prices(self) -> None:
        dlg = self.price_dialog_factory(self.api, self.station.get("grades", []), self.prices, self)
        dlg.applied.connect(self._prices_applied)
        self._open(dlg)

    def open_prepay(self) -> PrepayDialog:
        nozzles = {pid: list(s.get("nozzles") or []) for pid, s in self.board.snapshots.items()}
        prices = {str(k): int(v) for k, v in (self.prices.get("prices_fen") or {}).items()}
        dlg = PrepayDialog(self.co, sorted(self.board.snapshots), self, nozzles=nozzles, prices_fen=prices)
        self._open(dlg)
        return dlg

    def open_refund(self) -> RefundDialog:
        last = self.co.last_paid_order_id or ""
        dlg = RefundDialog(self.co, last, self)
        self._open(dlg)
        return dlg

    def _open(self, dlg: QDialog) -> None:
        """Open a dialog; when it closes the keyboard comes back to the till (the scanner types there).
        Without a window manager (the kiosk) nobody else would hand activation back."""
        dlg.finished.connect(self._take_keyboard)
        dlg.open()

    def _take_keyboard(self) -> None:
        self.activateWindow()
        if self.on_till and self.side.currentWidget() is self.order_panel:
            self.order_panel.search_edit.setFocus()

    def _prices_applied(self, body: object) -> None:
        if isinstance(body, dict):
            self.prices = body
            self.show_message(tr("prices.done", version=body.get("version")), False)

    def open_reprint(self) -> ReprintDialog:
        dlg = ReprintDialog(self.api, self.co.last_paid_order_id, self)
        dlg.message.connect(self.show_message)
        self._open(dlg)
        return dlg

    def open_member_register(self, phone: str = "") -> MemberRegisterDialog:
        """会员注册 (online only): the new member goes on the order like a looked-up one."""
        dlg = MemberRegisterDialog(self.api, phone, self)
        dlg.registered.connect(self.co.use_member)
        dlg.message.connect(self.show_message)
        self._open(dlg)
        return dlg

    def _pick_item(self, items: object) -> None:
        if isinstance(items, list):
            self._open(ItemPickDialog(self.co, items, self))

    # ------------------------------------------------------------ pages, login, logout
    def show_till(self) -> None:
        self.pages.setCurrentWidget(self.till_page if self.session else self.login_page)

    def open_shift(self) -> None:
        self.shift_page.grade_names = dict(self.board.grade_names)
        self.shift_page.station_name = self.station_label.text()
        self.shift_page.session = self.session
        self.pages.setCurrentWidget(self.shift_page)
        self.shift_page.refresh()

    def open_reports(self) -> None:
        self.reports_page.grade_names = dict(self.board.grade_names)
        self.pages.setCurrentWidget(self.reports_page)
        self.reports_page.show_default()

    def on_logged_in(self, session: object) -> None:
        if not isinstance(session, CashierSession):
            return
        self.session = session
        self.api.set_session(session.token)
        self.co.cashier = session.name
        self.cashier_label.setText(session.label)
        self.pages.setCurrentWidget(self.till_page)
        self.show_message(tr("login.welcome", name=session.name, role=session.role_text), False)
        self.api.call("GET", "/api/v1/printer", on_ok=self.on_printer, on_error=self._ok_quiet)

    def logout(self) -> None:
        """End the cashier's session on the agent and go back to the login screen."""
        if self.session is not None:
            self.api.call("POST", "/api/v1/session/logout", None, on_ok=self._ok_quiet, on_error=self._ok_quiet)
        self._logged_out(tr("login.logged_out"))

    def _logged_out(self, text: str) -> None:
        self.session = None
        self.api.set_session(None)  # queued after the logout call: that one still carries the session
        self._clear_message()
        self.co.cashier = None
        self.cashier_label.setText(tr("cashier.none"))
        self.pages.setCurrentWidget(self.login_page)
        self.login_page.reset()
        self.login_page.error.setStyleSheet("color: #1B5E20; font-size: 16px; font-weight: bold;")
        self.login_page.error.setText(text)

    def _call_failed(self, err: ApiError) -> None:
        if err.code == "unauthorized" and self.session is not None:
            self._logged_out(tr("login.expired"))  # the session ended on the agent (logged out elsewhere)

    # ------------------------------------------------------------ printer
    def on_printer(self, status: Any) -> None:
        if not isinstance(status, dict):
            return
        was_error = self.printer.get("state") == "error"
        self.printer = dict(status)
        self._show_printer()
        if was_error and status.get("state") == "ok":
            self.show_message(tr("printer.ok"), False)

    def _show_printer(self) -> None:
        if self.printer.get("state") == "error":
            self.printer_label.setText(tr("printer.error", message=self.printer.get("message") or ""))
            self.printer_label.show()
        else:
            self.printer_label.hide()

    # ------------------------------------------------------------ misc
    def show_message(self, text: str, error: bool = False) -> None:
        self.message_label.setText(text)
        colour = "#B71C1C" if error else "#1B5E20"
        self.message_label.setStyleSheet(f"color: {colour}; font-size: 16px; font-weight: bold;")
        self._message_timer.start()

    def _clear_message(self) -> None:
        self.message_label.clear()

    def _show_payment(self, on: bool) -> None:
        self.side.setCurrentWidget(self.payment_panel if on else self.order_panel)

    def _tick(self) -> None:
        from datetime import datetime

        self.clock_label.setText(datetime.now().strftime("%H:%M:%S"))

    def closeEvent(self, event: QCloseEvent) -> None:
        self._clock_timer.stop()
        super().closeEvent(event)


class _PumpError:
    """Error callback that names the pump in the message (a small callable, not a lambda)."""

    def __init__(self, window: CashierWindow, pump_id: int) -> None:
        self.window, self.pump_id = window, pump_id

    def __call__(self, err: ApiError) -> None:
        self.window.api_error(err, pump=self.pump_id)
