"""Dialogs of the cashier window: price change (more — shift close, reports — come with issue 7).

``PriceDialog`` asks twice: the first press of OK checks the input and shows
what will change, the second sends ``POST /api/v1/prices`` with
``confirm=true`` (the agent's own second-confirmation rule).  Prices are typed
in yuan per litre and converted exactly to fen (``parse_yuan``); a bad entry is
refused in the dialog.  The call runs on the worker thread; the dialog closes
on success and shows the agent's refusal otherwise.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QDialog, QGridLayout, QHBoxLayout, QLabel, QLineEdit, QPushButton, QVBoxLayout, QWidget

from agent.money import MoneyError, format_fen, parse_yuan
from ui.client import ApiClient, ApiError
from ui.i18n import error_text, tr

__all__ = ["PriceDialog"]


class PriceDialog(QDialog):
    """Enter new prices per grade; emits ``applied(body)`` with the agent's answer."""

    applied = Signal(object)

    def __init__(self, api: ApiClient, grades: list[dict[str, Any]], prices: dict[str, Any],
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("price_dialog")
        self.setWindowTitle(tr("prices.title"))
        self.api = api
        self.current: dict[str, int] = {str(k): int(v) for k, v in (prices.get("prices_fen") or {}).items()}
        for g in grades:
            self.current.setdefault(str(g["code"]), int(g.get("price_fen") or 0))
        self.names = {str(g["code"]): str(g.get("name") or g["code"]) for g in grades}
        self.pending: dict[str, int] | None = None
        lay = QVBoxLayout(self)
        grid = QGridLayout()
        for c, key in enumerate(("prices.grade", "prices.current", "prices.new")):
            h = QLabel(tr(key), self)
            h.setStyleSheet("font-weight: bold;")
            grid.addWidget(h, 0, c)
        self.edits: dict[str, QLineEdit] = {}
        for r, code in enumerate(sorted(self.current), start=1):
            grid.addWidget(QLabel(self.names.get(code, code), self), r, 0)
            grid.addWidget(QLabel(format_fen(self.current[code]), self), r, 1)
            e = QLineEdit(self)
            e.setObjectName(f"price_{code}")
            e.setPlaceholderText(format_fen(self.current[code]))
            e.setMinimumHeight(40)
            grid.addWidget(e, r, 2)
            self.edits[code] = e
        lay.addLayout(grid)
        self.info = QLabel(self)
        self.info.setObjectName("price_info")
        self.info.setWordWrap(True)
        lay.addWidget(self.info)
        row = QHBoxLayout()
        self.cancel_button = QPushButton(tr("dlg.cancel"), self)
        self.cancel_button.clicked.connect(self.reject)
        self.ok_button = QPushButton(tr("dlg.ok"), self)
        self.ok_button.setObjectName("price_ok")
        self.ok_button.clicked.connect(self._ok)
        for b in (self.cancel_button, self.ok_button):
            b.setMinimumHeight(48)
            row.addWidget(b)
        lay.addLayout(row)

    def changes(self) -> dict[str, int]:
        """Grades whose price the user changed; ``ValueError`` for a bad entry."""
        out = {}
        for code, e in self.edits.items():
            text = e.text().strip()
            if not text:
                continue
            try:
                fen = parse_yuan(text)
            except MoneyError as exc:
                raise ValueError(code) from exc
            if fen <= 0:
                raise ValueError(code)
            if fen != self.current.get(code):
                out[code] = fen
        return out

    def _ok(self) -> None:
        try:
            changes = self.changes()
        except ValueError:
            self._error(tr("prices.bad"))
            self.pending = None
            return
        if not changes:
            self._error(tr("prices.nochange"))
            return
        if self.pending != changes:
            self.pending = changes
            lines = [f"{self.names.get(c, c)}: {format_fen(self.current.get(c, 0))} → {format_fen(v)}"
                     for c, v in sorted(changes.items())]
            self.info.setStyleSheet("color: #E65100; font-weight: bold;")
            self.info.setText("\n".join(lines) + "\n" + tr("prices.confirm"))
            return
        self.ok_button.setEnabled(False)
        self.api.call("POST", "/api/v1/prices", {"prices_fen": changes, "confirm": True}, on_ok=self._done,
                      on_error=self._failed)

    def _done(self, body: Any) -> None:
        self.applied.emit(body)
        self.accept()

    def _failed(self, err: ApiError) -> None:
        self.ok_button.setEnabled(True)
        self.pending = None
        self._error(tr("err.agent_down") if err.status == 0 else error_text(err.code, err.message, **err.details))

    def _error(self, text: str) -> None:
        self.info.setStyleSheet("color: #B71C1C; font-weight: bold;")
        self.info.setText(text)
