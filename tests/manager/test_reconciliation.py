"""A shift with mixed sales closes with totals that match the pump simulator's totalizers and the center."""

from __future__ import annotations

import httpx

from sync.http import CenterClient
from sync.relay import OutboxRelay
from tests.manager.conftest import Station


def test_mixed_shift_matches_the_pump_totalizers_and_the_centers_records(mst: Station) -> None:
    start_totals = mst.totals_ml()
    shift = mst.call("POST", "/api/v1/manager/shifts", 201, json={"scope": "station", "float_fen": 50_000})
    sid = shift["shift_id"]
    assert {int(k): v["volume_total_ml"] for k, v in shift["open_readings"].items()} == start_totals

    # 1. postpay, cash, then a partial refund approved by the supervisor
    f1 = mst.fill(1, min_ml=4000)
    o1 = mst.order([{"kind": "fuel", "fill_id": f1["fill_id"]}])
    p1 = mst.payable(o1["order_id"])
    mst.pay(o1["order_id"], [{"tender": "cash", "amount_fen": p1, "given_fen": p1 + 1000}])
    mst.call("POST", f"/api/v1/orders/{o1['order_id']}/refund", 201,
             json={"amount_fen": 500, "reason": "多收", "supervisor_id": "s01", "supervisor_pin": "9999"})
    # 2. prepay by amount with an underrun refunded in cash
    r = mst.call("POST", "/api/v1/pumps/2/prepay", 201, json={
        "preset_amount_fen": 30_000, "tenders": [{"tender": "cash", "amount_fen": 30_000}]})
    o2 = r["order"]["order_id"]
    mst.st.wait_event(lambda e: e.topic == "prepay.authorized" and e.data["order_id"] == o2)
    mst.st.sim.lift(2, 1)
    mst.st.wait_event(lambda e: e.topic == "pump.progress" and e.data["pump_id"] == 2
                      and e.data["amount_fen"] >= 4000, 20)
    mst.st.sim.hang(2)
    f2 = mst.st.wait_event(lambda e: e.topic == "fill.finished" and e.data["pump_id"] == 2).data
    under = mst.st.wait_event(lambda e: e.topic == "prepay.underrun" and e.data["order_id"] == o2)
    mst.st.wait_state(2, "idle")
    # 3. combined payment: member stored value + scanned QR for a fill on nozzle 2 and a shop item
    mst.member(balance_fen=2000)
    mst.lookup()
    f3 = mst.fill(1, logical=2, min_ml=3000)
    o3 = mst.order([{"kind": "fuel", "fill_id": f3["fill_id"]}, {"kind": "item", "sku": "101"}], member_id="m1")
    p3 = mst.payable(o3["order_id"])
    pay3 = mst.pay(o3["order_id"], [{"tender": "stored_value", "amount_fen": 2000},
                                    {"tender": "qr_scan", "amount_fen": p3 - 2000, "auth_code": "134567890123456789"}])
    mst.notify(pay3["legs"][1])
    mst.checkout.sweep()
    assert mst.call("GET", f"/api/v1/orders/{o3['order_id']}")["state"] == "paid"

    cash_in = p1 + 30_000 - 500 - under.data["amount_fen"]
    report = mst.call("POST", f"/api/v1/manager/shifts/{sid}/close", json={"declared_cash_fen": 50_000 + cash_in})

    # pump side: every nozzle's meter delta is the simulator's own, and is fully explained by the fills
    end_totals = mst.totals_ml()
    meter = {m["nozzle"]: m for m in report["meter"]}
    for gun in (1, 2, 3, 4):
        assert meter[gun]["meter_ml"] == end_totals[gun] - start_totals[gun], gun
        assert meter[gun]["variance_ml"] == 0, meter[gun]
    assert meter[1]["sold_ml"] == f1["volume_ml"]
    assert meter[2]["sold_ml"] == f3["volume_ml"]
    assert meter[3]["sold_ml"] == f2["volume_ml"]
    assert report["meter_variance_ml"] == 0
    # sales side
    assert {g["grade"]: g["volume_ml"] for g in report["by_grade"]} == {
        "92": f1["volume_ml"] + f2["volume_ml"], "95": f3["volume_ml"]}
    assert sum(n["amount_fen"] for n in report["by_nozzle"]) == f1["amount_fen"] + f2["amount_fen"] + f3["amount_fen"]
    tenders = {t["tender"]: t for t in report["by_tender"]}
    assert tenders["cash"]["paid_fen"] == p1 + 30_000
    assert tenders["cash"]["refunded_fen"] == 500 + under.data["amount_fen"]
    assert tenders["stored_value"]["net_fen"] == 2000
    assert tenders["qr_scan"]["net_fen"] == p3 - 2000
    assert report["cash"]["expected_fen"] == 50_000 + cash_in
    assert report["cash"]["over_short_fen"] == 0
    assert report["totals"]["net_fen"] == p1 - 500 + f2["amount_fen"] + p3
    assert report["shop"]["amount_fen"] == 200
    assert {r["reason"] for r in report["refunds"]["by_reason"]} == {"多收", "underrun"}
    assert report["orders"]["count"] == 3 and report["late"]["count"] == 0
    # the center's records agree: the QR trade and the stored-value balance
    state = mst.center.state
    trade = state.trades[state.trade_by_out[pay3["legs"][1]["payment_id"]]]
    assert trade["status"] == "success"
    assert trade["amount_fen"] - trade["refunded_fen"] == tenders["qr_scan"]["net_fen"]
    assert state.members["m1"]["balance_fen"] == 2000 - tenders["stored_value"]["net_fen"]
    # ... and the report reaches the center through the outbox, with the audit entries
    with httpx.Client(base_url=mst.center.url, timeout=3) as http:
        relay = OutboxRelay(mst.st.agent, CenterClient(http, "T001"))
        for _ in range(50):
            relay.step()
            if not mst.st.agent.store.query("SELECT 1 FROM outbox WHERE state = 'pending'"):
                break
    rec = state.records[f"shift:{sid}"]
    assert rec["kinds"] == ["shift.opened", "shift.closed"]
    assert rec["data"]["totals"]["net_fen"] == report["totals"]["net_fen"]
    actions = {r["data"]["action"] for k, r in state.records.items() if k.startswith("audit:")}
    assert {"order.refund", "shift.open", "shift.close"} <= actions
