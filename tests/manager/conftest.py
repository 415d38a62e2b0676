"""A whole station for manager tests: the checkout station plus the manager router and service."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from agent.api import ApiServer, create_app
from agent.api.manager import router as manager_router
from agent.checkout.service import CheckoutService
from agent.manager import ManagerService
from agent.service import Agent
from sync.center_sim.server import serve_center
from sync.gateway import HttpCenterGateway
from tests.checkout.conftest import EXTRA, TOKEN, Shop
from tests.forecourt_harness import station

MANAGER = """
[[cashiers]]
id = "m01"
name = "王站长"
role = "manager"
pin = "8888"

[[cashiers]]
id = "c02"
name = "赵六"
pin = "2222"
"""


@dataclass
class Station(Shop):
    manager: ManagerService
    printer: Path

    def call(self, method: str, url: str, status: int = 200, **kw: Any) -> Any:
        r = self.api.request(method, url, **kw)
        assert r.status_code == status, (url, r.status_code, r.text)
        return r.json()

    def fill(self, pump: int, *, logical: int = 1, min_ml: int = 20_000) -> dict[str, Any]:
        self.st.seen.clear()  # stale progress events of an earlier fill must not end this one early
        return super().fill(pump, logical=logical, min_ml=min_ml)

    def login(self, cashier_id: str, pin: str) -> dict[str, str]:
        token = self.call("POST", "/api/v1/session/login", json={"cashier_id": cashier_id, "pin": pin})["token"]
        return {"Authorization": f"Bearer {token}"}

    def order(self, lines: list[dict[str, Any]], headers: dict[str, str] | None = None, **kw: Any) -> dict[str, Any]:
        return dict(self.call("POST", "/api/v1/checkout/orders", 201, json={"lines": lines, **kw}, headers=headers))

    def pay(self, order_id: str, tenders: list[dict[str, Any]], headers: dict[str, str] | None = None
            ) -> dict[str, Any]:
        quote = self.call("POST", f"/api/v1/orders/{order_id}/confirm", headers=headers)
        return dict(self.call("POST", f"/api/v1/orders/{order_id}/pay", headers=headers,
                              json={"quote_id": quote["quote_id"], "tenders": tenders}))

    def payable(self, order_id: str) -> int:
        quote = self.call("POST", f"/api/v1/orders/{order_id}/confirm")
        return int(quote["payable_fen"])

    def totals_ml(self) -> dict[int, int]:
        """The simulator's own totalizers per gun number (raw volume has 2 decimals: 10 mL)."""
        out = {}
        for pump in (1, 2):
            for logical, (vol, _) in self.st.sim.status(pump)["totals"].items():
                out[2 * (pump - 1) + int(logical)] = int(vol) * 10
        return out


def _routes(app: FastAPI, agent: Agent) -> None:
    app.include_router(manager_router)


@pytest.fixture
def mst(tmp_path: Path) -> Iterator[Station]:
    center = serve_center()
    center.state.faults.auto_pay = False
    printer = tmp_path / "printer.bin"
    extra = EXTRA + MANAGER + f'\n[printer]\nurl = "file://{printer}"\n'
    with station(tmp_path, pumps=2, extra=extra) as st:
        http = httpx.Client(base_url=center.url, timeout=3.0)
        checkout = CheckoutService(st.agent, HttpCenterGateway(http, "T001"))
        st.agent.set_link("center", True)
        checkout.start(sentinel_s=3600)
        manager = ManagerService(st.agent)
        manager.start(tick_s=0.2)
        app = create_app(st.agent, TOKEN, extra_routes=_routes)
        app.state.manager = manager
        server = ApiServer(app, port=0)
        server.start()
        api = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=20)
        st.wait_all_idle()
        try:
            yield Station(st, center, checkout, api, manager, printer)
        finally:
            api.close()
            server.stop()
            manager.close()
            checkout.close()
            http.close()
    center.stop()
