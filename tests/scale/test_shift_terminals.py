"""Shift close covers every terminal: two terminals sell under one station shift, one close reports both."""

from __future__ import annotations

import ssl

import httpx

from agent.api import ApiServer, create_app
from tests.manager.conftest import Station, _routes
from tests.manager.conftest import mst as mst  # the fixture, re-exported
from tests.scale.conftest import TERMINAL_TOKENS, TOKEN, Pki, api_config


def test_one_station_shift_covers_two_terminals(mst: Station, pki: Pki) -> None:
    app = create_app(mst.st.agent, TOKEN, extra_routes=_routes)
    app.state.manager = mst.manager
    lan = ApiServer.from_config(app, api_config(pki), pki.ca.parent, port=0)
    lan.start()
    try:
        shift = mst.call("POST", "/api/v1/manager/shifts", 201, json={"scope": "station", "float_fen": 10_000})
        paid = 0
        ctx = ssl.create_default_context(cafile=str(pki.ca))
        for tid, (cashier, pin) in (("T1", ("c01", "1234")), ("T2", ("c02", "2222"))):
            device = {"X-Terminal-Token": TERMINAL_TOKENS[tid]}
            with httpx.Client(base_url=lan.url, verify=ctx, timeout=20, headers=device) as t:
                r = t.post("/api/v1/session/login", json={"cashier_id": cashier, "pin": pin},
                           headers={"Authorization": f"Bearer {TERMINAL_TOKENS[tid]}"})
                assert r.status_code == 200, r.text
                t.headers["Authorization"] = f"Bearer {r.json()['token']}"
                order = t.post("/api/v1/checkout/orders", json={"lines": [{"kind": "item", "sku": "101"}]}).json()
                quote = t.post(f"/api/v1/orders/{order['order_id']}/confirm").json()
                r = t.post(f"/api/v1/orders/{order['order_id']}/pay", json={
                    "quote_id": quote["quote_id"], "tenders": [{"tender": "cash", "amount_fen": quote["payable_fen"]}]})
                assert r.status_code == 200 and r.json()["state"] == "paid", r.text
                paid += quote["payable_fen"]
        rows = mst.st.agent.store.query("SELECT cashier, terminal_id FROM orders ORDER BY cashier")
        assert [(r["cashier"], r["terminal_id"]) for r in rows] == [("c01", "T1"), ("c02", "T2")]
        report = mst.call("POST", f"/api/v1/manager/shifts/{shift['shift_id']}/close",
                          json={"declared_cash_fen": 10_000 + paid})
        assert report["orders"]["count"] == 2
        assert {c["cashier"] for c in report["by_cashier"]} == {"c01", "c02"}
        assert report["cash"]["over_short_fen"] == 0
    finally:
        lan.stop()
