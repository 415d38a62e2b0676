"""The kiosk UI on a device with two screens: the cashier window fills the primary (touch) screen and
the customer display fills the second one — neither covers the other.  Qt's offscreen platform is
configured with two screens in a separate process (``dual_screen_probe.py``); screenshots of both."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.ui.conftest import TOKEN, LiveStation

ROOT = Path(__file__).resolve().parents[2]
SCREENS = {"synchronousWindowSystemEvents": False, "windowFrameMargins": False, "screens": [
    {"name": "cashier-touch", "x": 0, "y": 0, "width": 1024, "height": 768, "logicalDpiX": 96, "logicalDpiY": 96,
     "dpr": 1},
    {"name": "customer-display", "x": 1024, "y": 0, "width": 800, "height": 480, "logicalDpiX": 96,
     "logicalDpiY": 96, "dpr": 1},
]}


def test_kiosk_puts_the_cashier_on_the_touch_screen_and_the_customer_display_on_the_second(
        live: LiveStation, shots: Path, tmp_path: Path) -> None:
    conf = tmp_path / "screens.json"
    conf.write_text(json.dumps(SCREENS), encoding="utf-8")
    env = {**os.environ, "QT_QPA_PLATFORM": f"offscreen:configfile={conf}", "PYTHONPATH": str(ROOT),
           "FORECOURT_LANG": "zh_CN"}
    proc = subprocess.run([sys.executable, str(ROOT / "tests/ui/dual_screen_probe.py"), live.url, TOKEN, str(shots)],
                          capture_output=True, text=True, timeout=60, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["up"] is True and got["screens"] == ["cashier-touch", "customer-display"]
    assert got["cashier"] == {"screen": "cashier-touch", "geometry": [0, 0, 1024, 768], "full_screen": True,
                              "visible": True}
    assert got["customer"] == {"screen": "customer-display", "geometry": [1024, 0, 800, 480], "full_screen": True,
                               "visible": True}
    assert (shots / "dual_screen_cashier_1024x768.png").stat().st_size > 0
    assert (shots / "dual_screen_customer_800x480.png").stat().st_size > 0
