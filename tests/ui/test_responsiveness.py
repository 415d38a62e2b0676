"""The GUI thread stays responsive while the worker streams events, and the UI survives the agent going away.

RELIABILITY.md §5: a 16 ms ``QTimer`` must keep ticking (p99 < 50 ms) while the
event stream delivers pump progress; the agent, the pump simulator, the API
server and the UI all share this one process here (and its GIL), which is
harsher than the two processes of a real device.
"""

from __future__ import annotations

import statistics
import threading
import time
from typing import Any

from PySide6.QtCore import QTimer

from agent.api import ApiServer, create_app
from tests.ui.conftest import TOKEN, LiveStation

EVENTS_PER_S = 400
MEASURE_S = 4.0


class Ticks:
    def __init__(self) -> None:
        self.stamps: list[float] = []

    def tick(self) -> None:
        self.stamps.append(time.perf_counter())

    def intervals_ms(self) -> list[float]:
        return [(b - a) * 1000 for a, b in zip(self.stamps, self.stamps[1:], strict=False)]


def test_gui_timer_keeps_ticking_while_events_stream(qtbot: Any, session: Any, live: LiveStation) -> None:
    # real fuelling on every pump, plus a synthetic flood of progress events for pump 4
    for pid in (1, 2, 3):
        assert live.api.post(f"/api/v1/pumps/{pid}/authorize", json={}).status_code == 201
        live.st.sim.lift(pid, 1)
    stop = threading.Event()
    sent = [0]

    def flood() -> None:
        period = 1 / EVENTS_PER_S
        nxt = time.perf_counter()
        while not stop.is_set():
            sent[0] += 1
            live.st.agent.bus.publish("pump.progress", {"pump_id": 4, "nozzle": 7, "volume_ml": sent[0],
                                                        "amount_fen": sent[0] * 8, "price_fen": 789, "fill_id": None})
            nxt += period
            time.sleep(max(0.0, nxt - time.perf_counter()))

    received = [0]

    def count(topic: str, data: object) -> None:
        if topic == "pump.progress":
            received[0] += 1

    session.api.received.connect(count)
    ticks = Ticks()
    timer = QTimer(session.cashier)
    timer.setInterval(16)
    timer.timeout.connect(ticks.tick)
    t = threading.Thread(target=flood, daemon=True)
    t.start()
    try:
        qtbot.waitUntil(lambda: session.cashier.grid.tiles[1].tile.display == "fuelling", timeout=10_000)
        timer.start()
        qtbot.wait(int(MEASURE_S * 1000))
        timer.stop()
    finally:
        stop.set()
        t.join(5)
        for pid in (1, 2, 3):
            live.st.sim.hang(pid)
    iv = sorted(ticks.intervals_ms())
    p99 = iv[int(len(iv) * 0.99) - 1]
    print(f"\n16 ms timer under load: n={len(iv)} median={statistics.median(iv):.1f} ms p99={p99:.1f} ms "
          f"max={iv[-1]:.1f} ms; progress events received {received[0]} (synthetic sent {sent[0]})")
    assert received[0] > EVENTS_PER_S * MEASURE_S * 0.5  # the stream really was busy
    assert p99 < 50, f"p99 {p99:.1f} ms"
    # the tile shows the latest synthetic progress (coalesced on the GUI thread, never behind)
    qtbot.waitUntil(lambda: session.cashier.board.snapshots[4]["volume_ml"] == sent[0], timeout=5000)


def test_agent_down_is_shown_and_the_ui_reconnects_by_itself(qtbot: Any, session: Any, live: LiveStation) -> None:
    cashier = session.cashier
    assert "在线" in cashier.link_label.text()
    port = live.server.port
    live.server.stop()
    qtbot.waitUntil(lambda: not session.api.up, timeout=15_000)
    assert cashier.link_label.text() == "后台服务未连接，正在重连…"
    assert cashier.message_label.text() == "后台服务未连接，正在重连…"
    # a tap while the agent is down gets a clear refusal, and the GUI does not block
    cashier.pump_action(1, "authorize")
    qtbot.waitUntil(lambda: cashier.message_label.text() == "无法连接后台服务，请稍后重试", timeout=10_000)
    # the agent comes back on the same port: the UI reconnects and reloads the pumps
    live.server = ApiServer(create_app(live.st.agent, TOKEN), port=port)
    live.server.start()
    connects = session.api.stream.connects
    qtbot.waitUntil(lambda: session.api.up and session.api.stream.connects > connects, timeout=15_000)
    assert "在线" in cashier.link_label.text()
    live.st.sim.lift(2, 1)
    qtbot.waitUntil(lambda: cashier.grid.tiles[2].tile.display == "calling", timeout=15_000)
