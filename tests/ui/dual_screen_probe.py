"""Run by tests/ui/test_dual_screen.py in its own process: the kiosk UI on a two-screen device.

Qt's offscreen platform is given two screens (``QT_QPA_PLATFORM=offscreen:configfile=…``, the
cashier's 1024×768 touch screen and the customer's 800×480 display to its right); the kiosk UI
starts against the agent at ``argv[1]`` and, once connected, prints where each window is as one JSON
line and saves a screenshot of each into ``argv[3]``.  A second pass removes nothing: screens are
fixed by the config file.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QWidget

from ui.app import UiSession, pick_font, save_screenshot


def _where(w: QWidget) -> dict[str, object]:
    g = w.geometry()
    screen = w.screen()
    return {"screen": screen.name() if screen is not None else None, "geometry": [g.x(), g.y(), g.width(), g.height()],
            "full_screen": w.isFullScreen(), "visible": w.isVisible()}


def main() -> int:
    url, token, shots = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    app = QApplication(sys.argv[:1])
    pick_font(app)
    session = UiSession(url, token, kiosk=True)
    session.start()
    deadline = time.monotonic() + 15
    result: dict[str, object] = {}

    def check() -> None:
        if not (session.api.up and session.cashier.board.snapshots) and time.monotonic() < deadline:
            return
        timer.stop()
        result.update(up=session.api.up, screens=[s.name() for s in app.screens()],
                      cashier=_where(session.cashier), customer=_where(session.customer))
        save_screenshot(session.cashier, shots / "dual_screen_cashier_1024x768.png")
        save_screenshot(session.customer, shots / "dual_screen_customer_800x480.png")
        session.stop()
        app.quit()

    timer = QTimer()
    timer.timeout.connect(check)
    timer.start(50)
    app.exec()
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
