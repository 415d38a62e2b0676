"""Login screen (收银员登录): cashier id + PIN keypad; shown at start and after every logout.

``POST /api/v1/session/login`` goes out with the *station* token (the only
credential the device has before a cashier signs in); the answer's session
token is handed to ``ApiClient.set_session`` by the cashier window, which then
acts in the cashier's name and role.  A wrong id or PIN is refused by the agent
(401 ``bad_pin``) and said in one sentence; the PIN is cleared after every try.
The PIN is typed on the on-screen keypad or the keyboard's digits (never
echoed: dots only).  Limits: no lock-out after repeated failures here (the
agent's business); the id is free text.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ui.client import ApiClient, ApiError
from ui.i18n import error_text, tr
from ui.managermodels import CashierSession, PinEntry

__all__ = ["LoginPage"]

PIN_KEYS = (("1", "2", "3"), ("4", "5", "6"), ("7", "8", "9"), ("C", "0", "<"))


class LoginPage(QFrame):
    """Emits ``logged_in(CashierSession)`` once the agent accepted the id and PIN."""

    logged_in = Signal(object)

    def __init__(self, api: ApiClient, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("login_page")
        self.api = api
        self.entry = PinEntry()
        self._busy = False
        outer = QHBoxLayout(self)
        outer.addStretch(1)
        box = QFrame(self)
        box.setObjectName("login_box")
        box.setStyleSheet("#login_box { background: #FAFAFA; border: 1px solid #B0BEC5; border-radius: 12px; }")
        box.setFixedWidth(420)
        lay = QVBoxLayout(box)
        lay.setContentsMargins(24, 18, 24, 18)
        self.title = QLabel(box)
        self.title.setStyleSheet("font-size: 26px; font-weight: bold;")
        self.title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        lay.addWidget(self.title)
        self.hint = QLabel(box)
        self.hint.setWordWrap(True)
        self.hint.setStyleSheet("color: #546E7A;")
        lay.addWidget(self.hint)
        self.id_label = QLabel(box)
        lay.addWidget(self.id_label)
        self.id_edit = QLineEdit(box)
        self.id_edit.setObjectName("login_id")
        self.id_edit.setMinimumHeight(44)
        self.id_edit.setMaxLength(16)
        self.id_edit.setStyleSheet("font-size: 20px;")
        self.id_edit.returnPressed.connect(self._focus_pin)
        lay.addWidget(self.id_edit)
        self.pin_label = QLabel(box)
        lay.addWidget(self.pin_label)
        self.pin_view = QLabel(box)
        self.pin_view.setObjectName("login_pin")
        self.pin_view.setMinimumHeight(44)
        self.pin_view.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.pin_view.setStyleSheet("font-size: 24px; background: white; border: 1px solid #90A4AE;"
                                    " border-radius: 6px; letter-spacing: 6px;")
        lay.addWidget(self.pin_view)
        grid = QGridLayout()
        self.keys: dict[str, QPushButton] = {}
        for r, row in enumerate(PIN_KEYS):
            for c, key in enumerate(row):
                b = QPushButton("⌫" if key == "<" else key, box)
                b.setObjectName(f"pin_{key}")
                b.setMinimumHeight(52)
                b.setStyleSheet("font-size: 22px; font-weight: bold;")
                b.setProperty("key", key)
                b.setFocusPolicy(Qt.FocusPolicy.NoFocus)
                b.clicked.connect(self._key_clicked)
                grid.addWidget(b, r, c)
                self.keys[key] = b
        lay.addLayout(grid)
        self.login_button = QPushButton(box)
        self.login_button.setObjectName("login_button")
        self.login_button.setMinimumHeight(56)
        self.login_button.setStyleSheet("background: #1565C0; color: white; font-size: 20px; font-weight: bold;"
                                        " border-radius: 8px;")
        self.login_button.clicked.connect(self.submit)
        lay.addWidget(self.login_button)
        self.error = QLabel(box)
        self.error.setObjectName("login_error")
        self.error.setWordWrap(True)
        self.error.setMinimumHeight(24)
        self.error.setStyleSheet("color: #B71C1C; font-size: 16px; font-weight: bold;")
        lay.addWidget(self.error)
        outer.addWidget(box, 0, Qt.AlignmentFlag.AlignVCenter)
        outer.addStretch(1)
        self.retranslate()

    def retranslate(self) -> None:
        self.title.setText(tr("login.title"))
        self.hint.setText(tr("login.hint"))
        self.id_label.setText(tr("login.id"))
        self.pin_label.setText(tr("login.pin"))
        self.login_button.setText(tr("btn.login"))

    def reset(self, message: str = "") -> None:
        """Ready for the next cashier: PIN cleared, the id kept only when a try failed."""
        self.entry.press("C")
        self.pin_view.setText("")
        self._busy = False
        self.login_button.setEnabled(True)
        self.error.setText(message)
        self.error.setStyleSheet(f"color: {'#B71C1C' if message else '#1B5E20'}; font-size: 16px;"
                                 " font-weight: bold;")
        self.id_edit.setFocus()

    def press(self, key: str) -> None:
        self.pin_view.setText(self.entry.press(key))

    def _key_clicked(self) -> None:
        self.press(str(self.sender().property("key")))

    def _focus_pin(self) -> None:
        self.setFocus()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        text = event.text()
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self.submit()
        elif event.key() == Qt.Key.Key_Backspace:
            self.press("<")
        elif text.isdigit() and len(text) == 1:
            self.press(text)
        else:
            super().keyPressEvent(event)

    def submit(self) -> None:
        cashier_id = self.id_edit.text().strip()
        if self._busy:
            return
        if not cashier_id:
            self.reset(tr("login.need_id"))
            return
        if not self.entry.complete:
            self.reset(tr("login.need_pin"))
            return
        self._busy = True
        self.login_button.setEnabled(False)
        self.error.setStyleSheet("color: #37474F; font-size: 16px;")
        self.error.setText(tr("login.busy"))
        pin, _ = self.entry.pin, self.entry.press("C")
        self.pin_view.setText("")
        self.api.call("POST", "/api/v1/session/login", {"cashier_id": cashier_id, "pin": pin}, station=True,
                      on_ok=self._on_login, on_error=self._on_error)

    def _on_login(self, body: Any) -> None:
        self._busy = False
        self.login_button.setEnabled(True)
        if not isinstance(body, dict) or "token" not in body:
            self.reset(tr("err.generic", message="login"))
            return
        self.error.setText("")
        self.logged_in.emit(CashierSession.from_login(body))

    def _on_error(self, err: ApiError) -> None:
        text = tr("err.agent_down") if err.status == 0 else error_text(err.code, err.message, **err.details)
        self.reset(text)
