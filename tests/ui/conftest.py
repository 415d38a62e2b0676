"""Fixtures for the UI tests: a real station (pump simulator on a PTY, agent with checkout, API on a free
port, trade-center simulator) and a UI session talking to it over real HTTP/SSE.

The agent runs in-process exactly like ``tests/test_forecourt_api.py`` and
``tests/checkout``.  Screenshots go to ``$FORECOURT_SCREENSHOTS`` when set
(``FORECOURT_SCREENSHOTS=docs/screenshots`` refreshes the committed set), else
to the test's tmp directory.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PySide6.QtCore import Qt

from agent.api import ApiServer, create_app
from tests.forecourt_harness import Station, station

TOKEN = "test-token-0123456789abcdef"

EXTRA = """
[[catalog]]
sku = "6901234567892"
plu = "101"
name = "矿泉水 550ml"
price_fen = 200

[[promotions]]
id = "gold-92"
name = "金卡 92# 会员价"
kind = "level_price"
grade = "92"
level = "gold"
price_fen = 759

[[cashiers]]
id = "s01"
name = "李站长"
role = "supervisor"
pin = "9999"

[[cashiers]]
id = "c01"
name = "张三"
role = "cashier"
pin = "1234"

[[cashiers]]
id = "m01"
name = "王经理"
role = "manager"
pin = "8888"
"""


class LiveStation:
    """The station the UI talks to; ``api`` is a test-side HTTP client (not the UI's)."""

    def __init__(self, st: Station, server: ApiServer, center: Any, checkout: Any, printer: Any = None) -> None:
        self.st, self.server, self.center, self.checkout = st, server, center, checkout
        self.printer = printer  #: the agent's PrintQueue (a file printer in the test's tmp directory)
        self.url = server.url
        self.api = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)

    def member(self, member_id: str = "m1", **kw: Any) -> dict[str, Any]:
        m = {"member_id": member_id, "name": "王五", "level": "gold", "phone": "13800000001", "card_no": "C001",
             "plates": ["粤B12345"], "balance_fen": 50_000, "points": 0, **kw}
        with self.center.state.lock:
            self.center.state.members[member_id] = m
        return m


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveStation]:
    from agent.checkout.service import CheckoutService
    from agent.config import PrinterConf
    from agent.printing import PrintQueue
    from sync.center_sim.server import serve_center
    from sync.gateway import HttpCenterGateway

    center = serve_center()
    try:
        with station(tmp_path, pumps=4, extra=EXTRA) as st:
            http = httpx.Client(base_url=center.url, timeout=3.0)
            checkout = CheckoutService(st.agent, HttpCenterGateway(http, "T001"))
            checkout.start(sentinel_s=30)  # the fill listener settles prepaid fills; tests call sweep() themselves
            st.agent.set_link("center", True)
            printer = PrintQueue(st.agent, PrinterConf(url=f"file://{tmp_path}/printer.bin"), poll_s=0.5)
            printer.start()
            app = create_app(st.agent, TOKEN)
            app.state.printer = printer
            server = ApiServer(app, port=0)
            server.start()
            ls = LiveStation(st, server, center, checkout, printer)
            try:
                st.wait_all_idle()
                yield ls
            finally:
                ls.api.close()
                ls.server.stop()
                printer.close()
                checkout.close()
                http.close()
    finally:
        center.stop()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    out = Path(os.environ.get("FORECOURT_SCREENSHOTS") or tmp_path / "screenshots")
    out.mkdir(parents=True, exist_ok=True)
    return out


@pytest.fixture
def ui_font(qapp: Any) -> str:
    from ui.app import pick_font

    return pick_font(qapp)


@pytest.fixture
def session(qtbot: Any, live: LiveStation, ui_font: str) -> Iterator[Any]:
    from ui.app import UiSession
    from ui.i18n import set_language

    set_language("zh_CN")
    s = UiSession(live.url, TOKEN)
    s.cashier.resize(1024, 768)
    s.start()
    qtbot.waitUntil(lambda: s.api.up and len(s.cashier.board.snapshots) == 4, timeout=10_000)
    login(qtbot, s, "m01", "8888")  # a manager: every existing flow (prices too) is allowed
    yield s
    s.stop()
    set_language("zh_CN")


def login(qtbot: Any, s: Any, cashier_id: str, pin: str) -> None:
    """Log in through the login screen (id typed, PIN on the keypad) and wait for the till."""
    page = s.cashier.login_page
    assert s.cashier.pages.currentWidget() is page
    page.id_edit.setText(cashier_id)
    for ch in pin:
        qtbot.mouseClick(page.keys[ch], Qt.MouseButton.LeftButton)
    qtbot.mouseClick(page.login_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: s.cashier.session is not None and s.cashier.session.cashier_id == cashier_id,
                    timeout=10_000)
