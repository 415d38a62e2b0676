"""Fixtures for the UI tests: a real agent (pump simulator on a PTY + API on a free port) and a UI session.

The agent runs in-process exactly like ``tests/test_forecourt_api.py``; the UI
talks to it over real HTTP/SSE through its worker threads.  Screenshots go to
``$FORECOURT_SCREENSHOTS`` when set (``docs/screenshots`` to refresh the
committed set), else to the test's tmp directory.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.api import ApiServer, create_app
from tests.forecourt_harness import Station, station

TOKEN = "test-token-0123456789abcdef"


class LiveAgent:
    def __init__(self, st: Station, server: ApiServer) -> None:
        self.st, self.server = st, server
        self.url = server.url


@pytest.fixture
def live_agent(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[LiveAgent]:
    marker = request.node.get_closest_marker("station")
    kw: dict[str, Any] = dict(marker.kwargs) if marker else {}
    with station(tmp_path, pumps=kw.pop("pumps", 4), **kw) as st:
        server = ApiServer(create_app(st.agent, TOKEN), port=0)
        server.start()
        try:
            st.wait_all_idle()
            yield LiveAgent(st, server)
        finally:
            server.stop()


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
def session(qtbot: Any, live_agent: LiveAgent, ui_font: str) -> Iterator[Any]:
    from ui.app import UiSession
    from ui.i18n import set_language

    set_language("zh_CN")
    s = UiSession(live_agent.url, TOKEN)
    s.cashier.resize(1024, 768)
    s.start()
    qtbot.waitUntil(lambda: s.api.up and len(s.cashier.board.snapshots) > 0, timeout=10_000)
    yield s
    s.stop()
    set_language("zh_CN")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "station(pumps=4, speed=20, extra=''): options of the live agent")
