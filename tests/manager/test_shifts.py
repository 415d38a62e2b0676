"""Shift close: pre-check blockers, idempotent close and handover, immutability, the late bucket."""

from __future__ import annotations

import sqlite3

import pytest

from tests.manager.conftest import Station


def test_close_refuses_while_a_fill_is_unpaid_and_lists_it(mst: Station) -> None:
    shift = mst.call("POST", "/api/v1/manager/shifts", 201, json={"scope": "station", "float_fen": 20_000})
    sid = shift["shift_id"]
    assert set(shift["open_readings"]) == {"1", "2", "3", "4"}
    assert {r["source"] for r in shift["open_readings"].values()} == {"pump"}
    fill = mst.fill(1, min_ml=3000)
    r = mst.api.post(f"/api/v1/manager/shifts/{sid}/close", json={"declared_cash_fen": 20_000})
    assert r.status_code == 409, r.text
    err = r.json()["error"]
    assert err["code"] == "shift_close_blocked"
    (blocker,) = err["details"]["blockers"]
    assert blocker["code"] == "unpaid_fill"
    assert blocker["fill_id"] == fill["fill_id"]
    assert blocker["pump_id"] == 1
    assert "order" in blocker["action"]
    assert mst.call("GET", f"/api/v1/manager/shifts/{sid}/precheck")["ready"] is False
    # a cashier cannot force it
    c01 = mst.login("c01", "1234")
    forced = mst.api.post(f"/api/v1/manager/shifts/{sid}/close", json={"force": True}, headers=c01)
    assert forced.status_code == 403
    # paid: the close goes through, and a repeated request returns the very same report
    order = mst.order([{"kind": "fuel", "fill_id": fill["fill_id"]}])
    payable = mst.payable(order["order_id"])
    assert mst.pay(order["order_id"], [{"tender": "cash", "amount_fen": payable}])["state"] == "paid"
    report = mst.call("POST", f"/api/v1/manager/shifts/{sid}/close", json={"declared_cash_fen": 20_000 + payable})
    again = mst.call("POST", f"/api/v1/manager/shifts/{sid}/close", json={"declared_cash_fen": 1})
    assert again == report
    assert report["cash"] == {"float_fen": 20_000, "expected_fen": 20_000 + payable,
                              "declared_fen": 20_000 + payable, "over_short_fen": 0}
    assert report["orders"]["count"] == 1
    (g1,) = [m for m in report["meter"] if m["nozzle"] == 1]
    assert g1["meter_ml"] == fill["volume_ml"] == g1["sold_ml"]
    assert g1["variance_ml"] == 0
    # immutable, even with SQL
    conn = sqlite3.connect(mst.st.agent.store.path)
    with pytest.raises(sqlite3.IntegrityError, match="immutable"):
        conn.execute("UPDATE shifts SET report = '{}' WHERE shift_id = ?", (sid,))
    conn.close()
    outbox = mst.st.agent.store.query("SELECT kind FROM outbox WHERE aggregate = 'shift' AND aggregate_id = ?",
                                      (sid,))
    assert [o["kind"] for o in outbox] == ["shift.opened", "shift.closed"]


def test_handover_happens_once_even_when_repeated(mst: Station) -> None:
    c01 = mst.login("c01", "1234")
    shift = mst.call("POST", "/api/v1/manager/shifts", 201, json={"float_fen": 5000}, headers=c01)
    assert shift["cashier"] == "c01"
    sale = mst.order([{"kind": "item", "sku": "101", "quantity": 3}], headers=c01)
    mst.pay(sale["order_id"], [{"tender": "cash", "amount_fen": 600}], headers=c01)
    body = {"to_cashier": "c02", "declared_cash_fen": 5500, "float_fen": 3000}
    first = mst.call("POST", f"/api/v1/manager/shifts/{shift['shift_id']}/handover", json=body, headers=c01)
    second = mst.call("POST", f"/api/v1/manager/shifts/{shift['shift_id']}/handover", json=body, headers=c01)
    assert first == second
    assert first["closed"]["cash"]["over_short_fen"] == -100  # 5000 float + 600 sales, 5500 counted
    assert first["next"]["cashier"] == "c02"
    assert first["next"]["open_readings"] == mst.manager.shifts.get(shift["shift_id"])["close_readings"]
    assert len(mst.call("GET", "/api/v1/manager/shifts", params={"state": "open"})) == 1


def test_an_order_committed_after_the_close_lands_in_the_next_shifts_late_bucket(mst: Station) -> None:
    a = mst.call("POST", "/api/v1/manager/shifts", 201, json={"scope": "station"})
    order = mst.order([{"kind": "amount", "amount_fen": 1500}])
    pay = mst.pay(order["order_id"], [{"tender": "qr_show", "amount_fen": 1500}])
    assert pay["state"] == "running"
    blockers = mst.call("GET", f"/api/v1/manager/shifts/{a['shift_id']}/precheck")["blockers"]
    assert [b["code"] for b in blockers] == ["payment_pending"]
    # forcing over a blocker needs a reason, kept with the report and the audit entry
    refused = mst.api.post(f"/api/v1/manager/shifts/{a['shift_id']}/close", json={"force": True})
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "force_reason_needed", refused.text
    assert mst.call("GET", f"/api/v1/manager/shifts/{a['shift_id']}")["state"] == "open"
    closed = mst.call("POST", f"/api/v1/manager/shifts/{a['shift_id']}/close",
                      json={"force": True, "reason": "customer left before paying by QR; center will confirm"})
    assert closed["forced"] is True
    assert closed["force_reason"] == "customer left before paying by QR; center will confirm"
    assert closed["blockers_at_close"][0]["order_id"] == order["order_id"]
    forced = mst.call("GET", "/api/v1/manager/audit", params={"action": "shift.force_close"})
    assert forced[0]["before"]["blockers"][0]["code"] == "payment_pending"
    assert forced[0]["after"]["reason"].startswith("customer left")
    b = mst.call("POST", "/api/v1/manager/shifts", 201, json={"scope": "station"})
    # the customer's payment arrives after the close
    mst.notify(pay["legs"][0])
    mst.checkout.sweep()
    assert mst.call("GET", f"/api/v1/orders/{order['order_id']}")["state"] == "paid"
    row = mst.st.agent.store.query_one("SELECT shift_id, shift_late FROM orders WHERE order_id = ?",
                                       (order["order_id"],))
    assert row == {"shift_id": b["shift_id"], "shift_late": 1}
    preview = mst.call("GET", f"/api/v1/manager/shifts/{b['shift_id']}/report")
    assert preview["late"]["count"] == 1
    assert preview["late"]["orders"][0]["order_id"] == order["order_id"]
    assert mst.call("GET", f"/api/v1/manager/shifts/{a['shift_id']}/report") == closed  # untouched
    # an order paid while no shift is open waits for the next shift, also as late
    mst.call("POST", f"/api/v1/manager/shifts/{b['shift_id']}/close", json={})
    lone = mst.order([{"kind": "amount", "amount_fen": 700}])
    mst.pay(lone["order_id"], [{"tender": "cash", "amount_fen": 700}])
    assert mst.st.agent.store.query_one("SELECT shift_id FROM orders WHERE order_id = ?",
                                        (lone["order_id"],)) == {"shift_id": None}
    c = mst.call("POST", "/api/v1/manager/shifts", 201, json={"scope": "station"})
    assert mst.st.agent.store.query_one("SELECT shift_id, shift_late FROM orders WHERE order_id = ?",
                                        (lone["order_id"],)) == {"shift_id": c["shift_id"], "shift_late": 1}
