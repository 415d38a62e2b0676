"""The UI process: QApplication, API client, cashier window and customer display, screen placement.

``UiSession`` composes the parts (tests build one against an in-process agent);
``main(args)`` runs it.  Placement: the cashier window goes on the primary
screen; the customer display goes full screen on the first other screen when
there is one, otherwise it is a second normal window.  ``screenAdded`` /
``screenRemoved`` re-place it, so unplugging the customer monitor never leaves
the display on a screen that is gone.  ``--single-window`` shows only the
cashier window (a device without a customer monitor).

``--kiosk`` (what the device's kiosk session runs): the cashier window fills the primary screen
and the customer display only ever appears full screen on a second screen — with one screen it
stays hidden instead of covering the cashier's window (a kiosk has no window manager to stack
windows), and it appears as soon as a second monitor is plugged in.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QTimer
from PySide6.QtGui import QFont, QFontDatabase, QGuiApplication, QScreen
from PySide6.QtWidgets import QApplication, QWidget

from ui.cashier import CashierWindow
from ui.checkout import CheckoutController
from ui.client import ApiClient
from ui.customer import CustomerDisplay
from ui.i18n import set_language

log = logging.getLogger(__name__)

__all__ = ["CJK_FONTS", "UiSession", "main", "pick_font", "save_screenshot"]

CJK_FONTS = ("Noto Sans CJK SC", "Source Han Sans SC", "WenQuanYi Micro Hei", "WenQuanYi Zen Hei",
             "Microsoft YaHei", "PingFang SC")


def pick_font(app: QApplication, pixel_size: int = 15) -> str:
    """Use a CJK-capable font family for the whole app (so Chinese never renders as boxes)."""
    families = set(QFontDatabase.families())
    family = next((f for f in CJK_FONTS if f in families), "")
    font = QFont(family) if family else app.font()
    font.setPixelSize(pixel_size)
    app.setFont(font)
    if not family:
        log.warning("no CJK font found (install fonts-wqy-microhei or fonts-noto-cjk): Chinese may show as boxes")
    return family


def save_screenshot(widget: QWidget, path: Path) -> Path:
    """Render ``widget`` (offscreen works) into a PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not widget.grab().save(str(path)):
        raise OSError(f"could not write {path}")
    return path


class UiSession(QObject):
    """Client + checkout + both windows, wired; ``start()`` opens the connection and shows the windows."""

    def __init__(self, api_url: str, token: str, *, single_window: bool = False, kiosk: bool = False,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.single_window = single_window
        self.kiosk = kiosk
        self.api = ApiClient(api_url, token, self)
        self.checkout = CheckoutController(self.api, self)
        self.cashier = CashierWindow(self.api, self.checkout)
        self.customer = CustomerDisplay()
        self.checkout.customer_changed.connect(self.customer.show_view)
        self.cashier.language_changed.connect(self._language_changed)
        self.api.snapshot.connect(self._on_snapshot)
        self.customer.retranslate()
        app = QGuiApplication.instance()
        if isinstance(app, QGuiApplication):
            app.screenAdded.connect(self._screens_changed)
            app.screenRemoved.connect(self._screens_changed)

    def start(self) -> None:
        self.api.start()
        if self.kiosk:
            primary = QGuiApplication.primaryScreen()
            if primary is not None:
                self.cashier.setScreen(primary)
                self.cashier.setGeometry(primary.geometry())
            self.cashier.showFullScreen()
        else:
            self.cashier.show()
        if not self.single_window:
            self.place_customer()
        self.cashier.activateWindow()  # the keyboard (and the barcode scanner) types into the till

    def stop(self) -> None:
        self.api.stop()
        self.customer.close()
        self.cashier.close()
        self.customer.deleteLater()
        self.cashier.deleteLater()

    def place_customer(self, screens: list[QScreen] | None = None) -> str:
        """Put the customer display on a second screen (full screen) or in a second window."""
        if self.single_window:
            return "hidden"
        screens = screens if screens is not None else QGuiApplication.screens()
        primary = QGuiApplication.primaryScreen()
        others = [s for s in screens if s is not primary]
        if others:
            target = others[0]
            self.customer.setScreen(target)
            self.customer.setGeometry(target.geometry())
            self.customer.showFullScreen()
            return target.name()
        if self.kiosk:  # one screen: the cashier's; never cover it
            self.customer.hide()
            return "hidden"
        if self.customer.isFullScreen():
            self.customer.showNormal()
        self.customer.resize(1024, 600)
        self.customer.show()
        return "window"

    def _screens_changed(self, _: QScreen) -> None:
        QTimer.singleShot(0, self._replace)

    def _replace(self) -> None:
        if self.cashier.isVisible():
            self.place_customer()

    def _language_changed(self, _: str) -> None:
        self.customer.retranslate()

    def _on_snapshot(self, snap: Any) -> None:
        if isinstance(snap, dict):
            st = (snap.get("station") or {}).get("station", {})
            self.customer.station_name = str(st.get("name") or "")
            self.customer.show_view(self.customer.view)


def main(args: Any) -> int:
    """Run the UI until its window closes (or ``--quit-after`` seconds, after ``--screenshot``)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    set_language(args.lang)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    app.setApplicationName("forecourt-ui")
    pick_font(app)
    token = args.token
    session = UiSession(args.api, token, single_window=args.single_window, kiosk=getattr(args, "kiosk", False))
    session.cashier.resize(1024, 768)
    session.start()
    if args.quit_after:
        shots = Path(args.screenshot) if args.screenshot else None
        quitter = _Quitter(session, shots, app)
        QTimer.singleShot(int(args.quit_after * 1000), quitter.run)
    rc = app.exec()
    session.stop()
    return int(rc)


class _Quitter:
    def __init__(self, session: UiSession, shots: Path | None, app: QApplication) -> None:
        self.session, self.shots, self.app = session, shots, app

    def run(self) -> None:
        if self.shots is not None:
            save_screenshot(self.session.cashier, self.shots / "cashier.png")
            if not self.session.single_window:
                save_screenshot(self.session.customer, self.shots / "customer.png")
            log.info("screenshots in %s", self.shots)
        self.app.quit()
