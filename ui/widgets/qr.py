"""A QR code drawn with QPainter from the ``qrcode`` package's module matrix (no image library).

Limits: the payload comes from the agent (the center's code URL); an empty
payload draws nothing.  ``qrcode`` is a project dependency already (receipts);
it is used here only for its pure-Python encoder (``get_matrix``).
"""

from __future__ import annotations

from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QPainter, QPaintEvent
from PySide6.QtWidgets import QSizePolicy, QWidget

__all__ = ["QrWidget", "qr_matrix"]


def qr_matrix(payload: str) -> list[list[bool]]:
    """Modules of the QR code for ``payload`` (medium error correction, no border)."""
    import qrcode  # local: only the customer display needs it

    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=0)
    code.add_data(payload)
    code.make(fit=True)
    return [[bool(v) for v in row] for row in code.get_matrix()]


class QrWidget(QWidget):
    """Square QR code with a white quiet zone, scaled to the widget."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.payload = ""
        self._matrix: list[list[bool]] = []
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(160, 160)

    def set_payload(self, payload: str) -> None:
        if payload != self.payload:
            self.payload = payload
            self._matrix = qr_matrix(payload) if payload else []
            self.update()

    def sizeHint(self) -> QSize:
        return QSize(320, 320)

    def paintEvent(self, event: QPaintEvent) -> None:
        if not self._matrix:
            return
        p = QPainter(self)
        side = min(self.width(), self.height())
        n = len(self._matrix) + 8  # 4-module quiet zone each side
        module = side / n
        x0 = (self.width() - side) / 2
        y0 = (self.height() - side) / 2
        p.fillRect(QRectF(x0, y0, side, side), QColor("white"))
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(QColor("black"))
        for r, row in enumerate(self._matrix):
            for c, on in enumerate(row):
                if on:
                    p.drawRect(QRectF(x0 + (c + 4) * module, y0 + (r + 4) * module, module + 0.5, module + 0.5))
        p.end()
