"""Checkout flows end to end through the local API, pump simulator and center simulator; amounts to the fen."""

from __future__ import annotations

import time
from typing import Any

from agent.money import amount_for_volume
from tests.checkout.conftest import Shop


def _order(shop: Shop, lines: list[dict[str, Any]], **kw: Any) -> dict[str, Any]:
    r = shop.api.post("/api/v1/checkout/orders", json={"lines": lines, **kw})
    assert r.status_code == 201, r.text
    return r.json()


def _confirm(shop: Shop, order_id: str) -> dict[str, Any]:
    r = shop.api.post(f"/api/v1/orders/{order_id}/confirm")
    assert r.status_code == 200, r.text
    return r.json()


def _pay(shop: Shop, order_id: str, quote_id: str, tenders: list[dict[str, Any]], status: int = 200
         ) -> dict[str, Any]:
    r = shop.api.post(f"/api/v1/orders/{order_id}/pay", json={"quote_id": quote_id, "tenders": tenders})
    assert r.status_code == status, r.text
    return r.json()


def test_postpay_fuel_plus_shop_item_paid_in_cash_with_change(shop: Shop) -> None:
    fill = shop.fill(1)
    order = _order(shop, [{"kind": "fuel", "fill_id": fill["fill_id"]},
                          {"kind": "item", "sku": "101", "quantity": 2}])
    assert [ln["kind"] for ln in order["lines"]] == ["fuel", "item"]
    assert order["lines"][0]["amount_fen"] == fill["amount_fen"]
    total = fill["amount_fen"] + 400
    assert order["total_fen"] == total
    # a second cashier cannot sell the same fill
    r = shop.api.post("/api/v1/checkout/orders", json={"lines": [{"kind": "fuel", "fill_id": fill["fill_id"]}]})
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "fill_not_available"
    quote = _confirm(shop, order["order_id"])
    payable = quote["payable_fen"]
    assert payable == total - quote["detail"]["discount_fen"]
    given = (payable // 10_000 + 1) * 10_000
    pay = _pay(shop, order["order_id"], quote["quote_id"],
               [{"tender": "cash", "amount_fen": payable, "given_fen": given}])
    assert pay["state"] == "paid"
    assert pay["legs"][0]["change_fen"] == given - payable
    paid = shop.api.get(f"/api/v1/orders/{order['order_id']}").json()
    assert paid["state"] == "paid"
    assert shop.api.get(f"/api/v1/fills/{fill['fill_id']}").json()["state"] == "paid"
    assert shop.api.get("/api/v1/pumps/1").json()["unpaid"] == 0
    kinds = [r["kind"] for r in shop.st.agent.store.query(
        "SELECT kind FROM outbox WHERE aggregate_id = ? ORDER BY id", (order["order_id"],))]
    assert kinds == ["order.created", "order.paid"]
    assert shop.st.agent.store.query("SELECT order_id FROM print_jobs") == [{"order_id": order["order_id"]}]


def test_member_level_price_spend_and_get_coupon_and_points_in_the_fixed_order(shop: Shop) -> None:
    shop.member()
    shop.coupon("cp-5", value=500)
    shop.coupon("cp-rate", kind="rate", value=1000, min_spend_fen=100_000)  # 10 % off above 1000 yuan: not met
    fill = shop.fill(1, min_ml=30_000)  # nozzle 1 = 92#, 7.89/L
    m = shop.lookup()
    assert m["level"] == "gold"
    assert {c["coupon_id"] for c in m["coupons"]} == {"cp-5", "cp-rate"}
    order = _order(shop, [{"kind": "fuel", "fill_id": fill["fill_id"]}, {"kind": "item", "sku": "6920202888883"}],
                   member_id="m1")
    vol, amount = fill["volume_ml"], fill["amount_fen"]
    level_disc = amount - amount_for_volume(vol, 759)
    after_item = amount + 650 - level_disc
    order_disc = 1000 if after_item >= 20_000 else 0
    q = order["quote"]
    stages = [(d["stage"], d["rule_id"], d["amount_fen"]) for d in q["discounts"]]
    expected = [("item", "gold-92", level_disc)]
    if order_disc:
        expected.append(("order", "m200-10", 1000))
    expected.append(("coupon", "cp-5", 500))  # the best usable coupon is picked by itself
    assert stages == expected
    assert q["payable_fen"] == after_item - order_disc - 500
    # the customer also spends 300 points: recomputed at once
    r = shop.api.post(f"/api/v1/orders/{order['order_id']}/preferences", json={"points": 300})
    q2 = r.json()["quote"]
    assert q2["payable_fen"] == q["payable_fen"] - 300
    assert sum(ln["discount_fen"] for ln in r.json()["lines"]) == q2["discount_fen"]
    quote = _confirm(shop, order["order_id"])
    assert shop.center.state.coupons["cp-5"]["state"] == "locked"
    pay = _pay(shop, order["order_id"], quote["quote_id"],
               [{"tender": "stored_value", "amount_fen": quote["payable_fen"]}])
    assert pay["state"] == "paid"
    assert shop.center.state.members["m1"]["balance_fen"] == 50_000 - quote["payable_fen"]
    assert shop.center.state.coupons["cp-5"]["state"] == "used"
    member = shop.checkout.member("m1")
    assert member["points"] == 3000 - 300 + quote["payable_fen"] // 100


def test_combined_stored_value_and_scanned_qr_becomes_paid_on_the_center_result(shop: Shop) -> None:
    shop.member(balance_fen=1000)
    shop.lookup()
    order = _order(shop, [{"kind": "amount", "amount_fen": 3000}], member_id="m1")
    quote = _confirm(shop, order["order_id"])
    pay = _pay(shop, order["order_id"], quote["quote_id"],
               [{"tender": "stored_value", "amount_fen": 1000},
                {"tender": "qr_scan", "amount_fen": 2000, "auth_code": "134567890123456789"}])
    assert pay["state"] == "running"
    assert [leg["state"] for leg in pay["legs"]] == ["confirmed", "pending"]
    assert shop.api.get(f"/api/v1/orders/{order['order_id']}").json()["state"] == "init"  # not before the result
    shop.notify(pay["legs"][1])
    shop.checkout.sweep()  # the sentinel asks the center
    assert shop.api.get(f"/api/v1/orders/{order['order_id']}/payment").json()["state"] == "paid"
    assert shop.api.get(f"/api/v1/orders/{order['order_id']}").json()["state"] == "paid"
    # the customer's code is not kept anywhere
    rows = shop.st.agent.store.query("SELECT detail FROM payments")
    assert all("134567890123456789" not in r["detail"] for r in rows)


def test_failed_qr_leg_compensates_the_stored_value_leg_once(shop: Shop) -> None:
    shop.member(balance_fen=1000)
    shop.lookup()
    order = _order(shop, [{"kind": "amount", "amount_fen": 3000}], member_id="m1")
    quote = _confirm(shop, order["order_id"])
    pay = _pay(shop, order["order_id"], quote["quote_id"],
               [{"tender": "stored_value", "amount_fen": 1000}, {"tender": "qr_show", "amount_fen": 2000}])
    assert pay["legs"][1]["pay_url"].startswith("sim://pay/")
    assert shop.center.state.members["m1"]["balance_fen"] == 0
    shop.notify(pay["legs"][1], "failed")
    shop.checkout.sweep()
    shop.checkout.sweep()  # a second round must not credit twice
    status = shop.api.get(f"/api/v1/orders/{order['order_id']}/payment").json()
    assert status["state"] == "failed"
    assert [leg["state"] for leg in status["legs"]] == ["compensated", "failed"]
    assert shop.center.state.members["m1"]["balance_fen"] == 1000
    order_now = shop.api.get(f"/api/v1/orders/{order['order_id']}").json()
    assert order_now["state"] == "init"  # still payable with another tender
    pay2 = _pay(shop, order["order_id"], quote["quote_id"], [{"tender": "cash", "amount_fen": 3000}])
    assert pay2["state"] == "paid"


def test_a_late_success_after_failure_is_refunded_automatically(shop: Shop) -> None:
    order = _order(shop, [{"kind": "amount", "amount_fen": 1500}])
    quote = _confirm(shop, order["order_id"])
    pay = _pay(shop, order["order_id"], quote["quote_id"], [{"tender": "qr_show", "amount_fen": 1500}])
    leg = pay["legs"][0]
    # the customer gave up; the cashier takes cash: mark the QR failed at the center, pay cash
    shop.checkout.sagas.on_trade_result(leg["payment_id"], "failed", 1500)
    assert _pay(shop, order["order_id"], quote["quote_id"], [{"tender": "cash", "amount_fen": 1500}])["state"] \
        == "paid"
    # ... and then the customer's phone pays after all: a duplicate, refunded at once
    shop.notify(leg)
    shop.checkout.sagas.on_trade_result(leg["payment_id"], "success", 1500)
    trade = shop.center.state.trades[shop.center.state.trade_by_out[leg["payment_id"]]]
    assert trade["refunded_fen"] == 1500
    row = shop.st.agent.store.query_one("SELECT state FROM payments WHERE payment_id = ?", (leg["payment_id"],))
    assert row == {"state": "duplicate"}


def test_prepay_by_amount_with_underrun_refunds_the_difference_in_cash(shop: Shop) -> None:
    r = shop.api.post("/api/v1/pumps/2/prepay", json={
        "preset_amount_fen": 30_000, "tenders": [{"tender": "cash", "amount_fen": 30_000}]})
    assert r.status_code == 201, r.text
    order_id = r.json()["order"]["order_id"]
    assert r.json()["payment"]["state"] == "paid"
    shop.st.wait_event(lambda e: e.topic == "prepay.authorized" and e.data["order_id"] == order_id)
    shop.st.sim.lift(2, 1)
    shop.st.wait_event(lambda e: e.topic == "pump.progress" and e.data["pump_id"] == 2
                       and e.data["amount_fen"] >= 5000, 20)
    shop.st.sim.hang(2)  # the tank is full before 300 yuan
    fin = shop.st.wait_event(lambda e: e.topic == "fill.finished" and e.data["pump_id"] == 2)
    under = shop.st.wait_event(lambda e: e.topic == "prepay.underrun" and e.data["order_id"] == order_id)
    assert under.data["amount_fen"] == 30_000 - fin.data["amount_fen"]
    (refund,) = under.data["refunds"]
    assert refund["tender"] == "cash"
    assert refund["state"] == "done"
    assert shop.api.get(f"/api/v1/fills/{fin.data['fill_id']}").json()["state"] == "paid"
    assert shop.api.get("/api/v1/pumps/2").json()["unpaid"] == 0


def test_refund_needs_a_supervisor_pin_and_goes_to_the_original_tender(shop: Shop) -> None:
    shop.member(balance_fen=5000)
    shop.lookup()
    order = _order(shop, [{"kind": "amount", "amount_fen": 2000}], member_id="m1")
    quote = _confirm(shop, order["order_id"])
    _pay(shop, order["order_id"], quote["quote_id"], [{"tender": "stored_value", "amount_fen": 2000}])
    url = f"/api/v1/orders/{order['order_id']}/refund"
    bad = shop.api.post(url, json={"amount_fen": 500, "reason": "多收", "supervisor_id": "c01",
                                   "supervisor_pin": "1234"})
    assert bad.status_code == 403  # a cashier cannot approve
    wrong = shop.api.post(url, json={"amount_fen": 500, "reason": "多收", "supervisor_id": "s01",
                                     "supervisor_pin": "0000"})
    assert wrong.status_code == 401
    ok = shop.api.post(url, json={"amount_fen": 500, "reason": "多收", "supervisor_id": "s01",
                                  "supervisor_pin": "9999"})
    assert ok.status_code == 201, ok.text
    assert ok.json()[0]["state"] == "done"
    assert shop.center.state.members["m1"]["balance_fen"] == 5000 - 2000 + 500
    too_much = shop.api.post(url, json={"amount_fen": 1600, "reason": "x", "supervisor_id": "s01",
                                        "supervisor_pin": "9999"})
    assert too_much.status_code == 422
    # a retried partial refund (the answer was lost) is applied once
    body = {"amount_fen": 300, "reason": "多收", "supervisor_id": "s01", "supervisor_pin": "9999",
            "request_key": "refund-000001"}
    first = shop.api.post(url, json=body).json()
    again = shop.api.post(url, json=body).json()
    assert [r["refund_id"] for r in first] == [r["refund_id"] for r in again]
    assert shop.center.state.members["m1"]["balance_fen"] == 5000 - 2000 + 500 + 300
    audit = shop.st.agent.store.query("SELECT actor, action, after FROM audit WHERE action = 'order.refund'")
    assert len(audit) == 2
    assert '"approved_by": "s01"' in audit[0]["after"]


def test_bad_requests_get_clear_4xx_and_change_nothing(shop: Shop) -> None:
    order = _order(shop, [{"kind": "amount", "amount_fen": 1000}])
    oid = order["order_id"]
    quote = _confirm(shop, oid)
    cases = [
        ({"quote_id": quote["quote_id"], "tenders": [{"tender": "cash", "amount_fen": 1500}]}, 422,
         "tender_mismatch"),
        ({"quote_id": quote["quote_id"], "tenders": [{"tender": "cash", "amount_fen": -5}]}, 422, "invalid_request"),
        ({"quote_id": "nope", "tenders": [{"tender": "cash", "amount_fen": 1000}]}, 404, "unknown_quote"),
        ({"quote_id": quote["quote_id"], "tenders": [{"tender": "stored_value", "amount_fen": 1000}]}, 422,
         "no_member"),
        ({"quote_id": quote["quote_id"], "tenders": [{"tender": "qr_scan", "amount_fen": 1000,
                                                      "auth_code": "12"}]}, 422, "invalid_request"),
    ]
    for body, status, code in cases:
        r = shop.api.post(f"/api/v1/orders/{oid}/pay", json=body)
        assert r.status_code == status, (body, r.text)
        assert r.json()["error"]["code"] == code
    assert shop.st.agent.store.query("SELECT * FROM payments") == []
    assert shop.api.post("/api/v1/pumps/1/prepay", json={"nozzle": 9, "preset_amount_fen": 100, "tenders": [
        {"tender": "cash", "amount_fen": 100}]}).status_code == 422
    # a replayed payment request returns the first result, never a second payment
    body = {"quote_id": quote["quote_id"], "tenders": [{"tender": "cash", "amount_fen": 1000}],
            "request_key": "pay-000001-abc"}
    first = shop.api.post(f"/api/v1/orders/{oid}/pay", json=body).json()
    again = shop.api.post(f"/api/v1/orders/{oid}/pay", json=body).json()
    assert first == again
    assert len(shop.st.agent.store.query("SELECT * FROM payments")) == 1


def test_expired_quote_is_refused(shop: Shop) -> None:
    order = _order(shop, [{"kind": "amount", "amount_fen": 1000}])
    quote = _confirm(shop, order["order_id"])
    shop.st.agent.store.write(lambda db: db.execute("UPDATE quotes SET expires_at_ms = 1"))
    r = shop.api.post(f"/api/v1/orders/{order['order_id']}/pay",
                      json={"quote_id": quote["quote_id"], "tenders": [{"tender": "cash", "amount_fen": 1000}]})
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "quote_expired"


def test_offline_refuses_qr_but_sells_with_cash(shop: Shop) -> None:
    shop.st.agent.set_link("center", False)
    order = _order(shop, [{"kind": "amount", "amount_fen": 800}])
    quote = _confirm(shop, order["order_id"])
    r = shop.api.post(f"/api/v1/orders/{order['order_id']}/pay",
                      json={"quote_id": quote["quote_id"], "tenders": [{"tender": "qr_show", "amount_fen": 800}]})
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "offline"
    assert "offline" in r.json()["error"]["message"]
    assert _pay(shop, order["order_id"], quote["quote_id"], [{"tender": "cash", "amount_fen": 800}])["state"] \
        == "paid"


def test_cancel_releases_the_fill_and_the_coupon(shop: Shop) -> None:
    shop.member()
    shop.coupon("cp-9", value=300)
    fill = shop.fill(1, min_ml=5000)
    shop.lookup()
    order = _order(shop, [{"kind": "fuel", "fill_id": fill["fill_id"]}], member_id="m1")
    _confirm(shop, order["order_id"])
    assert shop.center.state.coupons["cp-9"]["state"] == "locked"
    r = shop.api.post(f"/api/v1/orders/{order['order_id']}/cancel", json={"reason": "顾客离开"})
    assert r.json()["state"] == "closed"
    assert shop.center.state.coupons["cp-9"]["state"] == "available"
    assert shop.api.get(f"/api/v1/fills/{fill['fill_id']}").json()["state"] == "finished"
    again = _order(shop, [{"kind": "fuel", "fill_id": fill["fill_id"]}])  # sellable again
    assert again["lines"][0]["fill_id"] == fill["fill_id"]


def test_a_coupon_or_points_chosen_after_confirm_voids_the_frozen_quote_and_its_locks(shop: Shop) -> None:
    shop.member()
    shop.coupon("cp-5", value=500)
    shop.coupon("cp-2", value=200)
    fill = shop.fill(1, min_ml=5000)
    shop.lookup()
    order = _order(shop, [{"kind": "fuel", "fill_id": fill["fill_id"]}], member_id="m1")
    oid = order["order_id"]
    first = _confirm(shop, oid)  # the best coupon, locked at the center
    assert first["detail"]["coupon_id"] == "cp-5"
    assert shop.center.state.coupons["cp-5"]["state"] == "locked"
    # on the payment page the customer picks the other coupon and 100 points
    r = shop.api.post(f"/api/v1/orders/{oid}/preferences", json={"coupon_id": "cp-2", "points": 100})
    assert r.status_code == 200, r.text
    assert shop.center.state.coupons["cp-5"]["state"] == "available"
    second = _confirm(shop, oid)
    assert second["quote_id"] != first["quote_id"]
    assert second["payable_fen"] == first["payable_fen"] + 500 - 200 - 100
    assert shop.center.state.coupons["cp-2"]["state"] == "locked"
    assert shop.api.post(f"/api/v1/orders/{oid}/pay", json={"quote_id": first["quote_id"], "tenders": [
        {"tender": "cash", "amount_fen": first["payable_fen"]}]}).status_code >= 400  # the voided quote
    assert _pay(shop, oid, second["quote_id"],
                [{"tender": "cash", "amount_fen": second["payable_fen"]}])["state"] == "paid"
    assert shop.center.state.coupons["cp-2"]["state"] == "used"
    assert shop.center.state.coupons["cp-5"]["state"] == "available"
    assert shop.checkout.member("m1")["points"] == 3000 - 100 + second["payable_fen"] // 100
    # a paid order's quote can no longer be changed
    r = shop.api.post(f"/api/v1/orders/{oid}/preferences", json={"no_coupon": True})
    assert r.status_code == 409 and r.json()["error"]["code"] == "order_not_open"


def test_any_edit_after_confirm_gives_back_the_coupon_lock_and_the_points_hold(shop: Shop) -> None:
    """The customer adds a bottle of water on the payment page: the frozen quote is void, so is its coupon
    lock at the center and its points hold; confirming again locks the coupon again and charges the new
    total (before, the edit left the coupon locked and the points held by a dead quote)."""
    shop.member()
    shop.coupon("cp-5", value=500)
    fill = shop.fill(1, min_ml=5000)
    shop.lookup()
    order = _order(shop, [{"kind": "fuel", "fill_id": fill["fill_id"]}], member_id="m1")
    oid = order["order_id"]
    assert shop.api.post(f"/api/v1/orders/{oid}/preferences", json={"points": 200}).status_code == 200
    first = _confirm(shop, oid)
    assert (first["detail"]["coupon_id"], first["detail"]["points_used"]) == ("cp-5", 200)
    assert shop.center.state.coupons["cp-5"]["state"] == "locked"
    assert shop.checkout.member("m1")["points_available"] == 3000 - 200
    r = shop.api.post(f"/api/v1/orders/{oid}/lines", json={"kind": "item", "sku": "101"})
    assert r.status_code == 200, r.text
    assert shop.center.state.coupons["cp-5"]["state"] == "available"
    assert shop.checkout.member("m1")["points_available"] == 3000
    second = _confirm(shop, oid)
    assert second["quote_id"] != first["quote_id"]
    assert second["payable_fen"] == r.json()["quote"]["payable_fen"] > first["payable_fen"]  # what was shown
    assert shop.center.state.coupons["cp-5"]["state"] == "locked"
    assert second["detail"]["points_used"] == 0  # an edit re-quotes from scratch: points are asked again
    assert shop.checkout.member("m1")["points_available"] == 3000
    assert _pay(shop, oid, second["quote_id"],
                [{"tender": "cash", "amount_fen": second["payable_fen"]}])["state"] == "paid"
    assert shop.center.state.coupons["cp-5"]["state"] == "used"


def test_cashier_login_and_roles(shop: Shop) -> None:
    r = shop.api.post("/api/v1/session/login", json={"cashier_id": "c01", "pin": "1234"})
    token = r.json()["token"]
    cashier = {"Authorization": f"Bearer {token}"}
    assert shop.api.get("/api/v1/session", headers=cashier).json() == {"actor": "c01", "role": "cashier"}
    denied = shop.api.post("/api/v1/prices", headers=cashier, json={"prices_fen": {"92": 799}, "confirm": True})
    assert denied.status_code == 403
    order = shop.api.post("/api/v1/checkout/orders", headers=cashier,
                          json={"lines": [{"kind": "amount", "amount_fen": 100}]}).json()
    assert order["cashier"] == "c01"
    assert shop.api.post("/api/v1/session/login", json={"cashier_id": "c01", "pin": "0000"}).status_code == 401
    shop.api.post("/api/v1/session/logout", headers=cashier)
    assert shop.api.get("/api/v1/session", headers=cashier).status_code == 401


def test_prepay_by_volume_fills_exactly_and_needs_no_refund(shop: Shop) -> None:
    price = 839  # gun 4 = pump 2, logical 2 = 95#
    r = shop.api.post("/api/v1/pumps/2/prepay", json={
        "nozzle": 4, "preset_volume_ml": 10_000, "tenders": [{"tender": "cash", "amount_fen": 8390}]})
    assert r.status_code == 201, r.text
    assert r.json()["order"]["payable_fen"] == amount_for_volume(10_000, price)
    order_id = r.json()["order"]["order_id"]
    shop.st.wait_event(lambda e: e.topic == "prepay.authorized" and e.data["order_id"] == order_id)
    shop.st.sim.lift(2, 2)
    fin = shop.st.wait_event(lambda e: e.topic == "fill.finished" and e.data["pump_id"] == 2, 30)
    shop.st.sim.hang(2)
    assert fin.data["volume_ml"] == 10_000
    assert fin.data["amount_fen"] == 8390
    shop.checkout.sweep()
    assert shop.st.agent.store.query("SELECT * FROM refunds WHERE order_id = ?", (order_id,)) == []
    # a volume prepay without the nozzle is refused: its grade sets the price
    bad = shop.api.post("/api/v1/pumps/1/prepay", json={"preset_volume_ml": 5000,
                                                         "tenders": [{"tender": "cash", "amount_fen": 100}]})
    assert bad.status_code == 422
    assert bad.json()["error"]["code"] == "nozzle_required"


def test_a_prepay_whose_authorization_expires_unused_is_refunded_in_full(shop: Shop) -> None:
    """The customer paid 200 yuan and drove off: the authorization is cancelled and the money goes back."""
    r = shop.api.post("/api/v1/pumps/1/prepay", json={
        "preset_amount_fen": 20_000, "tenders": [{"tender": "cash", "amount_fen": 20_000}]})
    assert r.status_code == 201, r.text
    order_id = r.json()["order"]["order_id"]
    auth = shop.st.wait_event(lambda e: e.topic == "prepay.authorized" and e.data["order_id"] == order_id)
    shop.st.wait_state(1, "authorized")
    assert shop.st.forecourt.expire_authorizations(time.monotonic() + 3600) == [1]  # as if 1 h went by
    shop.st.wait_event(lambda e: e.topic == "fill.zero" and e.data["fill_id"] == auth.data["fill_id"])
    under = shop.st.wait_event(lambda e: e.topic == "prepay.underrun" and e.data["order_id"] == order_id)
    assert under.data["amount_fen"] == 20_000
    (refund,) = under.data["refunds"]
    assert (refund["tender"], refund["state"], refund["amount_fen"]) == ("cash", "done", 20_000)
    shop.st.wait_state(1, "idle")


def test_a_full_refund_gives_the_redeemed_points_back_and_takes_the_earned_ones(shop: Shop) -> None:
    shop.member(points=3000)
    shop.lookup()
    order = _order(shop, [{"kind": "amount", "amount_fen": 20_000}], member_id="m1")
    oid = order["order_id"]
    r = shop.api.post(f"/api/v1/orders/{oid}/preferences", json={"points": 500, "no_coupon": True})
    assert r.status_code == 200, r.text
    quote = _confirm(shop, oid)
    _pay(shop, oid, quote["quote_id"], [{"tender": "cash", "amount_fen": quote["payable_fen"]}])
    earned = quote["payable_fen"] // 100
    assert shop.checkout.member("m1")["points"] == 3000 - 500 + earned
    url = f"/api/v1/orders/{oid}/refund"
    sup = {"reason": "客户退货", "supervisor_id": "s01", "supervisor_pin": "9999"}
    # a partial refund leaves the points as they are
    assert shop.api.post(url, json={"amount_fen": 1000, **sup}).status_code == 201
    assert shop.checkout.member("m1")["points"] == 3000 - 500 + earned
    # refunding the rest makes the order whole again: the 500 come back, the earned go
    assert shop.api.post(url, json=sup).status_code == 201
    assert shop.checkout.member("m1")["points"] == 3000
    (row,) = shop.st.agent.store.query("SELECT kind, payload FROM outbox WHERE event_id = ?",
                                       (f"points:{oid}:reversed",))
    assert row["kind"] == "member.points_reversed"
    assert '"returned": 500' in row["payload"] and f'"taken_back": {earned}' in row["payload"]
    audit = shop.st.agent.store.query("SELECT after FROM audit WHERE action = 'order.refund' ORDER BY id")
    assert '"points": null' in audit[0]["after"] and '"returned": 500' in audit[1]["after"]
