from __future__ import annotations

from pathlib import Path
from typing import Any

from ui.app import save_screenshot


def test_windows_show_pumps(qtbot: Any, session: Any, shots: Path) -> None:
    tiles = session.cashier.grid.tiles
    assert sorted(tiles) == [1, 2, 3, 4]
    qtbot.waitUntil(lambda: tiles[1].status.text() == "空闲", timeout=5000)
    save_screenshot(session.cashier, shots / "smoke_cashier.png")
    save_screenshot(session.customer, shots / "smoke_customer.png")
