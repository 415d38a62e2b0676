"""SIGKILL the agent between payment-saga steps; after a restart the order is fully paid or fully compensated."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sync.center_sim.server import CenterHandle, serve_center
from tests.agent_process import AgentProcess
from tests.conftest import free_port

TOKEN = "test-token-0123456789abcdef"
STEPS = ["before_sync_leg", "after_sync_leg", "before_async_leg", "after_async_leg", "before_finalize",
         "after_finalize"]


def _config(path: Path, center: str, port: int) -> Path:
    path.write_text("\n".join([
        "[station]", 'id = "T001"', "[api]", f"port = {port}", f'token = "{TOKEN}"',
        "[center]", f'url = "{center}"', "timeout_s = 2.0", f"mqtt_port = {free_port()}",  # no broker: HTTP only
        "[[grades]]", 'code = "92"', 'name = "92#"', "price_fen = 789"]) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def center() -> Iterator[CenterHandle]:
    h = serve_center()
    with h.state.lock:
        h.state.members["m1"] = {"member_id": "m1", "name": "王五", "level": "normal", "phone": "13800000001",
                                 "plates": [], "balance_fen": 5000, "points": 0}
    yield h
    h.stop()


def _wait_for(api: httpx.Client, done: Any, timeout: float = 20.0) -> Any:
    """Subscribe to the event stream, then check; wait for events until ``done()`` returns something."""
    with api.stream("GET", "/api/v1/events", params={"heartbeat_s": 0.3}, timeout=timeout) as resp:
        result = done()
        if result:
            return result
        for _line in resp.iter_lines():
            result = done()
            if result:
                return result
    raise AssertionError("condition never reached")


def _final(api: httpx.Client, order_id: str) -> dict[str, Any] | None:
    status = api.get(f"/api/v1/orders/{order_id}/payment").json()
    return dict(status) if status["state"] in ("paid", "failed") else None


def _online(api: httpx.Client) -> bool:
    return bool(api.get("/health").json()["online"])


@pytest.mark.parametrize("step", STEPS)
def test_killed_between_saga_steps_ends_paid_or_compensated(tmp_path: Path, center: CenterHandle,
                                                            step: str) -> None:
    port = free_port()
    cfg = _config(tmp_path / "station.toml", center.url, port)
    api = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {TOKEN}"},
                       timeout=10)
    proc = AgentProcess(cfg, "--no-pumps", env={"FORECOURT_CRASH_AT": step})
    try:
        _wait_for(api, lambda: _online(api))
        assert api.get("/api/v1/members/lookup", params={"phone": "13800000001"}).status_code == 200
        order = api.post("/api/v1/checkout/orders", json={"lines": [{"kind": "amount", "amount_fen": 3000}],
                                                          "member_id": "m1"}).json()
        quote = api.post(f"/api/v1/orders/{order['order_id']}/confirm").json()
        with pytest.raises(httpx.TransportError):
            api.post(f"/api/v1/orders/{order['order_id']}/pay", json={"quote_id": quote["quote_id"], "tenders": [
                {"tender": "stored_value", "amount_fen": 1000}, {"tender": "qr_show", "amount_fen": 2000}]})
        proc.proc.wait(10)
        assert proc.proc.returncode == -9, "the agent should have been killed at the crash point"
        proc.stop()
        proc = AgentProcess(cfg, "--no-pumps")
        _wait_for(api, lambda: _online(api))
        final = _wait_for(api, lambda: _final(api, order["order_id"]))
        order_now = api.get(f"/api/v1/orders/{order['order_id']}").json()
        member = center.state.members["m1"]
        trades = [t for t in center.state.trades.values() if t["order_id"] == order["order_id"]]
        if final["state"] == "paid":
            assert order_now["state"] == "paid"
            assert [leg["state"] for leg in final["legs"]] == ["confirmed", "confirmed"]
            assert member["balance_fen"] == 4000  # debited once
            assert [(t["status"], t["amount_fen"], t["refunded_fen"]) for t in trades] == [("success", 2000, 0)]
        else:
            assert order_now["state"] == "init"
            assert member["balance_fen"] == 5000  # nothing kept
            assert all(t["refunded_fen"] == t["amount_fen"] or t["status"] != "success" for t in trades)
        assert len(trades) <= 1  # never a second charge
    finally:
        proc.stop()
        api.close()
