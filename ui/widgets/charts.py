"""A bar chart drawn with QPainter (no chart library): one ``BarSeries`` per widget.

Bars grow up from a zero line, or down for negative values (meter variance);
each bar carries its value, categories are labelled below (every n-th when
there are many, e.g. 24 hours).  Everything is computed in ``paintEvent`` from
the series and the widget size, so it scales from 1024×768 up.  Limits: one
series, linear scale from 0, labels that do not fit are elided by Qt.
"""

from __future__ import annotations

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QFont, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from ui.i18n import tr
from ui.managermodels import BarSeries

__all__ = ["BarChart"]

POSITIVE = QColor("#1E88E5")
NEGATIVE = QColor("#E53935")
AXIS = QColor("#607D8B")


class BarChart(QWidget):
    """See the module docstring; ``set_series`` replaces what is drawn."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.series = BarSeries("", (), ())
        self.setMinimumSize(220, 170)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def set_series(self, series: BarSeries) -> None:
        self.series = series
        self.update()

    def paintEvent(self, event: QPaintEvent) -> None:
        p = QPainter(self)
        try:
            self._paint(p)
        finally:
            p.end()

    def _paint(self, p: QPainter) -> None:
        s = self.series
        w, h = self.width(), self.height()
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.fillRect(self.rect(), QColor("#FFFFFF"))
        p.setPen(QPen(QColor("#CFD8DC")))
        p.drawRect(0, 0, w - 1, h - 1)
        base = QFont(self.font())
        title = QFont(base)
        title.setPixelSize(15)
        title.setBold(True)
        p.setFont(title)
        p.setPen(QColor("#263238"))
        p.drawText(QRectF(8, 4, w - 16, 22), Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, s.title)
        small = QFont(base)
        small.setPixelSize(11)
        p.setFont(small)
        top, bottom, left, right = 44.0, 22.0, 10.0, 10.0
        plot_h = h - top - bottom
        if not s.values or s.empty or plot_h < 20:
            p.setPen(AXIS)
            p.drawText(QRectF(0, top, w, plot_h), Qt.AlignmentFlag.AlignCenter, tr("chart.empty"))
            return
        hi, lo = max(0, *s.values), min(0, *s.values)
        span = float(hi - lo) or 1.0
        zero_y = top + plot_h * hi / span
        n = len(s.values)
        slot = (w - left - right) / n
        bar_w = max(2.0, slot * 0.7)
        dense = slot < 34  # value texts would overlap: show only the largest bars' values
        ranked = sorted(range(n), key=lambda i: abs(s.values[i]), reverse=True)[:3] if dense else range(n)
        show_value = set(ranked)
        for i, v in enumerate(s.values):
            x = left + i * slot + (slot - bar_w) / 2
            bar_h = plot_h * abs(v) / span
            y = zero_y - bar_h if v >= 0 else zero_y
            p.fillRect(QRectF(x, y, bar_w, bar_h), POSITIVE if v >= 0 else NEGATIVE)
            if v and i in show_value:
                p.setPen(QColor("#263238"))
                ty = y - 15 if v >= 0 else y + bar_h + 1
                p.drawText(QRectF(x - 20, ty, bar_w + 40, 14), Qt.AlignmentFlag.AlignCenter, s.value_text(v))
            if i % max(1, s.label_every) == 0:
                p.setPen(AXIS)
                p.drawText(QRectF(left + i * slot - 10, h - bottom + 3, slot + 20, 16),
                           Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop, s.labels[i])
        p.setPen(QPen(AXIS, 1))
        p.drawLine(int(left), int(zero_y), int(w - right), int(zero_y))
