"""Touch keypad for cash amounts; keys also come from the physical keyboard (digits, '.', Backspace)."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QGridLayout, QPushButton, QSizePolicy, QWidget

__all__ = ["KeypadWidget"]

KEYS = (("7", "8", "9", "<"), ("4", "5", "6", "C"), ("1", "2", "3", "."), ("0", "00", "50", "100"))


class KeypadWidget(QWidget):
    """Emits ``pressed(key)``: a digit, ``"."``, ``"<"`` (backspace), ``"C"`` (clear), or a note
    value ``"50"``/``"100"`` meaning "the customer handed over this note"."""

    pressed = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        grid = QGridLayout(self)
        grid.setSpacing(6)
        grid.setContentsMargins(0, 0, 0, 0)
        self.buttons: dict[str, QPushButton] = {}
        for r, row in enumerate(KEYS):
            for c, key in enumerate(row):
                label = {"<": "⌫", "50": "¥50", "100": "¥100"}.get(key, key)
                b = QPushButton(label, self)
                b.setObjectName(f"key_{key}")
                b.setMinimumHeight(40)
                b.setStyleSheet("font-size: 22px; font-weight: bold;")
                b.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
                b.setProperty("key", key)
                b.clicked.connect(self._clicked)
                grid.addWidget(b, r, c)
                self.buttons[key] = b

    def _clicked(self) -> None:
        key = self.sender().property("key")
        if isinstance(key, str):
            self.pressed.emit(key)
