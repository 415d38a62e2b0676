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
"""


class LiveStation:
    """The station the UI talks to; ``api`` is a test-side HTTP client (not the UI's)."""

    def __init__(self, st: Station, server: ApiServer, center: Any, checkout: Any) -> None:
        self.st, self.server, self.center, self.checkout = st, server, center, checkout
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
    from sync.center_sim.server import serve_center
    from sync.gateway import HttpCenterGateway

    center = serve_center()
    try:
        with station(tmp_path, pumps=4, extra=EXTRA) as st:
            http = httpx.Client(base_url=center.url, timeout=3.0)
            checkout = CheckoutService(st.agent, HttpCenterGateway(http, "T001"))
            checkout.start(sentinel_s=30)  # the fill listener settles prepaid fills; tests call sweep() themselves
            st.agent.set_link("center", True)
            server = ApiServer(create_app(st.agent, TOKEN), port=0)
            server.start()
            ls = LiveStation(st, server, center, checkout)
            try:
                st.wait_all_idle()
                yield ls
            finally:
                ls.api.close()
                server.stop()
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
    yield s
    s.stop()
    set_language("zh_CN")
