"""Pump tiles and the pump grid of the cashier window.

A tile shows one ``viewmodels.PumpTile``: colour by state, a blinking
background while the nozzle calls, live litres and amount while fuelling, the
number of stacked unpaid sales.  One tap does the obvious thing (``primary``:
authorize a calling pump, stop a fuelling one, add the unpaid sale to the
order); the small stop button is always there while a pump is busy.  One
``QTimer`` in the grid drives every blinking tile, so N calling pumps cost one
timer, and tiles repaint only when their view-model changed.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QFrame, QGridLayout, QHBoxLayout, QLabel, QPushButton, QSizePolicy, QVBoxLayout, QWidget

from ui.i18n import tr
from ui.viewmodels import PumpTile

__all__ = ["PumpGrid", "PumpTileWidget"]

BLINK_MS = 450


class PumpTileWidget(QFrame):
    """One pump; emits ``activated(pump_id, action)`` for a tap and ``stop_requested(pump_id)``."""

    activated = Signal(int, str)
    stop_requested = Signal(int)

    def __init__(self, pump_id: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.pump_id = pump_id
        self.tile: PumpTile | None = None
        self._blink_on = False
        self.setObjectName(f"pump_{pump_id}")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(130, 150)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(8, 6, 8, 6)
        lay.setSpacing(2)
        top = QHBoxLayout()
        self.title = QLabel(self)
        self.title.setObjectName("title")
        self.unpaid = QLabel(self)
        self.unpaid.setObjectName("unpaid")
        self.unpaid.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        top.addWidget(self.title, 1)
        top.addWidget(self.unpaid)
        lay.addLayout(top)
        self.status = QLabel(self)
        self.status.setObjectName("status")
        self.detail = QLabel(self)
        self.detail.setObjectName("detail")
        self.detail.setWordWrap(True)
        self.litres = QLabel(self)
        self.litres.setObjectName("litres")
        self.amount = QLabel(self)
        self.amount.setObjectName("amount")
        for w in (self.status, self.detail):
            lay.addWidget(w)
        lay.addStretch(1)
        lay.addWidget(self.litres)
        lay.addWidget(self.amount)
        self.action = QLabel(self)  #: what one tap does ("tap: authorize")
        self.action.setObjectName("action")
        lay.addWidget(self.action)
        self.stop_button = QPushButton(self)
        self.stop_button.setObjectName("stop")
        self.stop_button.setMinimumHeight(34)
        self.stop_button.clicked.connect(self._stop_clicked)
        lay.addWidget(self.stop_button)

    def show_tile(self, tile: PumpTile) -> None:
        if tile == self.tile:
            return
        old = self.tile
        self.tile = tile
        self.title.setText(tile.title)
        self.status.setText(tile.status)
        self.detail.setText(tile.detail)
        self.detail.setVisible(bool(tile.detail))
        self.litres.setText(tile.litres)
        self.amount.setText(tile.amount)
        self.unpaid.setText(tile.unpaid_text)
        self.unpaid.setVisible(bool(tile.unpaid))
        self.stop_button.setText(tr("pump.act.stop"))
        self.stop_button.setVisible(tile.can_stop and tile.primary != "stop")
        self.action.setText(f"▶ {tr('pump.act.' + tile.primary)}" if tile.primary else "")
        self.action.setVisible(bool(tile.primary))
        # a style sheet re-polishes the whole tile: only when the colours change, not per progress frame
        if old is None or (old.background, old.foreground, old.blink) != (tile.background, tile.foreground,
                                                                          tile.blink):
            self._apply_style()

    def retranslate(self) -> None:
        self.stop_button.setText(tr("pump.act.stop"))
        if self.tile is not None and self.tile.primary:
            self.action.setText(f"▶ {tr('pump.act.' + self.tile.primary)}")

    def set_blink(self, on: bool) -> None:
        if self.tile is not None and self.tile.blink and on != self._blink_on:
            self._blink_on = on
            self._apply_style()

    def _apply_style(self) -> None:
        t = self.tile
        if t is None:
            return
        bg = t.blink_background if (t.blink and self._blink_on) else t.background
        name = self.objectName()
        self.setStyleSheet(
            f"QFrame#{name} {{ background: {bg}; border: 2px solid #37474F; border-radius: 8px; }}"
            f"QFrame#{name} QLabel {{ color: {t.foreground}; background: transparent; }}"
            f"QLabel#title {{ font-size: 17px; font-weight: bold; }}"
            f"QLabel#status {{ font-size: 15px; font-weight: bold; }}"
            f"QLabel#detail {{ font-size: 13px; }}"
            f"QLabel#litres {{ font-size: 22px; font-weight: bold; }}"
            f"QLabel#amount {{ font-size: 22px; font-weight: bold; }}"
            f"QLabel#action {{ font-size: 15px; font-weight: bold; border: 2px solid {t.foreground};"
            f" border-radius: 6px; padding: 4px; }}"
            f"QLabel#unpaid {{ background: #FFEB3B; color: #000; border-radius: 6px; padding: 1px 6px;"
            f" font-size: 13px; font-weight: bold; }}"
            f"QPushButton#stop {{ background: #B71C1C; color: white; font-size: 15px; font-weight: bold;"
            f" border-radius: 6px; }}")

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton and self.tile is not None:
            self.activated.emit(self.pump_id, self.tile.primary)
            event.accept()
            return
        super().mousePressEvent(event)

    def _stop_clicked(self) -> None:
        self.stop_requested.emit(self.pump_id)


class PumpGrid(QWidget):
    """All pump tiles in a grid (4 columns up to 8 pumps, more columns beyond)."""

    activated = Signal(int, str)
    stop_requested = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.tiles: dict[int, PumpTileWidget] = {}
        self._grid = QGridLayout(self)
        self._grid.setSpacing(8)
        self._grid.setContentsMargins(0, 0, 0, 0)
        self._blink = False
        self.blink_timer = QTimer(self)
        self.blink_timer.setInterval(BLINK_MS)
        self.blink_timer.timeout.connect(self._toggle_blink)
        self.blink_timer.start()

    def show_tiles(self, tiles: list[PumpTile]) -> None:
        ids = [t.pump_id for t in tiles]
        if ids != sorted(self.tiles):
            for w in self.tiles.values():
                self._grid.removeWidget(w)
                w.deleteLater()
            self.tiles = {}
            cols = 2 if len(ids) <= 4 else 4 if len(ids) <= 8 else 6 if len(ids) <= 18 else 8
            for i, pid in enumerate(ids):
                w = PumpTileWidget(pid, self)
                w.activated.connect(self.activated)
                w.stop_requested.connect(self.stop_requested)
                self._grid.addWidget(w, i // cols, i % cols)
                self.tiles[pid] = w
        for t in tiles:
            self.tiles[t.pump_id].show_tile(t)

    def show_tile(self, tile: PumpTile) -> None:
        w = self.tiles.get(tile.pump_id)
        if w is not None:
            w.show_tile(tile)

    def retranslate(self) -> None:
        for w in self.tiles.values():
            w.retranslate()

    def _toggle_blink(self) -> None:
        self._blink = not self._blink
        for w in self.tiles.values():
            w.set_blink(self._blink)
