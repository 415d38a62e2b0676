"""A whole station for checkout tests: pumps on a PTY, the agent with its API, the center simulator (HTTP)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent.api import ApiServer, create_app
from agent.checkout.service import CheckoutService
from sync.center_sim.server import CenterHandle, serve_center
from sync.gateway import HttpCenterGateway
from tests.forecourt_harness import Station, station

TOKEN = "test-token-0123456789abcdef"

EXTRA = """
[[catalog]]
sku = "6901234567892"
plu = "101"
name = "矿泉水 550ml"
price_fen = 200

[[catalog]]
sku = "6920202888883"
name = "红牛 250ml"
price_fen = 650

[[promotions]]
id = "gold-92"
name = "金卡 92# 会员价"
kind = "level_price"
grade = "92"
level = "gold"
price_fen = 759

[[promotions]]
id = "m200-10"
name = "满200减10"
kind = "spend_and_get"
threshold_fen = 20000
off_fen = 1000

[[cashiers]]
id = "c01"
name = "张三"
pin = "1234"

[[cashiers]]
id = "s01"
name = "李站长"
role = "supervisor"
pin = "9999"
"""


@dataclass
class Shop:
    st: Station
    center: CenterHandle
    checkout: CheckoutService
    api: httpx.Client

    def fill(self, pump: int, *, logical: int = 1, min_ml: int = 20_000) -> dict[str, Any]:
        """A postpay fill on ``pump`` of at least ``min_ml`` (full tank, the customer hangs up)."""
        r = self.api.post(f"/api/v1/pumps/{pump}/authorize", json={})
        assert r.status_code == 201, r.text
        self.st.sim.lift(pump, logical)
        self.st.wait_event(lambda e: e.topic == "pump.progress" and e.data["pump_id"] == pump
                           and e.data["volume_ml"] >= min_ml, 20)
        self.st.sim.hang(pump)
        ev = self.st.wait_event(lambda e: e.topic == "fill.finished" and e.data["pump_id"] == pump)
        self.st.wait_state(pump, "idle")
        return ev.data

    def member(self, member_id: str = "m1", **kw: Any) -> dict[str, Any]:
        m = {"member_id": member_id, "name": "王五", "level": "gold", "phone": "13800000001", "card_no": "C001",
             "plates": ["粤B12345"], "balance_fen": 50_000, "points": 3000, **kw}
        with self.center.state.lock:
            self.center.state.members[member_id] = m
        return m

    def lookup(self, phone: str = "13800000001") -> dict[str, Any]:
        """The cashier looks the member up (this caches the member and coupons on the station)."""
        r = self.api.get("/api/v1/members/lookup", params={"phone": phone})
        assert r.status_code == 200, r.text
        return dict(r.json())

    def coupon(self, coupon_id: str, member_id: str = "m1", *, kind: str = "cash", value: int = 500,
               min_spend_fen: int = 0) -> None:
        with self.center.state.lock:
            self.center.state.coupons[coupon_id] = {"coupon_id": coupon_id, "member_id": member_id, "kind": kind,
                                                    "value": value, "min_spend_fen": min_spend_fen,
                                                    "state": "available"}

    def notify(self, payment: dict[str, Any], status: str = "success") -> None:
        trade = self.center.state.trade_by_out[payment["payment_id"]]
        with httpx.Client(base_url=self.center.url) as c:
            r = c.post(f"/notify/qr/{trade}", json={"status": status, "amount_fen": payment["amount_fen"]})
            assert r.json()["errno"] == 0


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Shop]:
    center = serve_center()
    center.state.faults.auto_pay = False  # customers pay when a test says so
    with station(tmp_path, pumps=2, extra=EXTRA) as st:
        http = httpx.Client(base_url=center.url, timeout=3.0)
        checkout = CheckoutService(st.agent, HttpCenterGateway(http, "T001"))
        st.agent.set_link("center", True)
        checkout.start(sentinel_s=3600)  # tests run the sentinel by hand (checkout.sweep())
        server = ApiServer(create_app(st.agent, TOKEN), port=0)
        server.start()
        api = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
        st.wait_all_idle()
        try:
            yield Shop(st, center, checkout, api)
        finally:
            api.close()
            server.stop()
            checkout.close()
            http.close()
    center.stop()
