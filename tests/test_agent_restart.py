"""The agent process SIGKILLed around a fill and restarted: no second authorization, the fill recorded once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from drivers.sim.simulator import PumpSimulator
from tests.agent_process import AgentProcess
from tests.conftest import free_port
from tests.forecourt_harness import GRADES

TOKEN = "test-token-0123456789abcdef"


def _config(path: Path, url: str, port: int) -> Path:
    text = ["[station]", 'id = "T001"', "[api]", f"port = {port}", f'token = "{TOKEN}"']
    for code, price in GRADES:
        text += ["[[grades]]", f'code = "{code}"', f'name = "{code}#"', f"price_fen = {price}"]
    text += ["[[lines]]", 'name = "bus1"', 'protocol = "dart"', f'url = "{url}"', "baudrate = 115200"]
    for i in range(2):
        text += ["[[lines.pumps]]", f"pump_id = {i + 1}", f"address = 0x{0x50 + i:02X}",
                 f'nozzles = [{{ number = {i + 1}, logical = 1, grade = "92" }}]']
    path.write_text("\n".join(text) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def sim() -> Iterator[PumpSimulator]:
    s = PumpSimulator(2, 1, simulate=True, speed=5, baudrate=None, seed=11)
    s.url = s.start_pty()  # type: ignore[attr-defined]
    try:
        yield s
    finally:
        s.close()


@pytest.mark.parametrize("kill_when", ["fuelling", "after_hang"])
def test_sigkill_mid_fill_never_reauthorizes_and_records_once(tmp_path: Path, sim: PumpSimulator,
                                                              kill_when: str) -> None:
    port = free_port()
    cfg = _config(tmp_path / "station.toml", sim.url, port)  # type: ignore[attr-defined]
    api = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {TOKEN}"},
                       timeout=10)
    agent = AgentProcess(cfg)
    try:
        assert sim.wait_status(1, 1, timeout=15), "pump never programmed and reset by the agent"
        r = api.post("/api/v1/pumps/1/authorize", json={})
        assert r.status_code == 201, r.text
        fill_id = r.json()["fill_id"]
        sim.lift(1, 1)
        assert sim.wait_status(1, 4, timeout=10)
        if kill_when == "after_hang":
            assert sim.wait_for(lambda: sim.status(1)["volume_raw"] >= 100, timeout=10)
            sim.hang(1)
            assert sim.wait_status(1, 5, timeout=10)
        agent.kill()
        if kill_when == "fuelling":
            # the customer goes on filling while the agent is down, then hangs up
            assert sim.wait_for(lambda: sim.status(1)["volume_raw"] >= 100, timeout=10)
            sim.hang(1)
        agent = AgentProcess(cfg)
        assert sim.wait_status(1, 1, timeout=20), "the restarted agent never persisted and released the fill"
        fills = api.get("/api/v1/fills", params={"pump_id": 1}).json()
        assert [f["fill_id"] for f in fills] == [fill_id]
        (entry,) = sim.ledger()
        assert fills[0]["state"] == "finished"
        assert fills[0]["volume_ml"] == entry.volume_ml
        assert fills[0]["amount_fen"] == entry.amount_fen
        assert sim.status(1)["authorizations"] == 1  # R2: never re-sent
        assert api.get("/api/v1/pumps/1").json()["unpaid"] == 1
    finally:
        agent.stop()
        api.close()
