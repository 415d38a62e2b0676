"""Online-only counter operations end to end (local API → agent → gateway → center simulator):
invoices (开发票) and member registration (会员注册).  Offline both are refused and nothing is stored or
sent; amounts are integer fen."""

from __future__ import annotations

from typing import Any

from tests.checkout.conftest import Shop

TITLE = "深圳市前海加油科技有限公司"
TAX_ID = "91440300MA5F0ABC1X"


def _paid(shop: Shop, amount_fen: int) -> dict[str, Any]:
    r = shop.api.post("/api/v1/checkout/orders", json={"lines": [{"kind": "amount", "amount_fen": amount_fen}]})
    assert r.status_code == 201, r.text
    order = r.json()
    quote = shop.api.post(f"/api/v1/orders/{order['order_id']}/confirm").json()
    pay = shop.api.post(f"/api/v1/orders/{order['order_id']}/pay",
                        json={"quote_id": quote["quote_id"], "tenders": [{"tender": "cash", "amount_fen": amount_fen}]})
    assert pay.status_code == 200 and pay.json()["state"] == "paid", pay.text
    return dict(order)


def _invoice(shop: Shop, order_id: str, **body: Any) -> Any:
    return shop.api.post(f"/api/v1/orders/{order_id}/invoice", json={"title": TITLE, **body})


def _center_calls(shop: Shop, what: str) -> int:
    with shop.center.state.lock:
        return shop.center.state.calls.get(what, 0)


def _audit(shop: Shop, action: str) -> list[dict[str, Any]]:
    return shop.st.agent.store.query("SELECT actor, target, after FROM audit WHERE action = ?", (action,))


# ------------------------------------------------------------------ invoices
def test_invoice_is_issued_once_and_a_repeat_returns_the_same_invoice(shop: Shop) -> None:
    order = _paid(shop, 2345)
    oid = order["order_id"]
    assert shop.api.get(f"/api/v1/orders/{oid}/invoice").status_code == 404
    r = _invoice(shop, oid, tax_id=TAX_ID.lower(), email="finance@example.cn")
    assert r.status_code == 201, r.text
    inv = r.json()
    assert inv["state"] == "issued" and inv["invoice_no"].startswith("FP")
    assert (inv["amount_fen"], inv["title"], inv["tax_id"], inv["email"]) == (2345, TITLE, TAX_ID, "finance@example.cn")
    center_inv = shop.center.state.invoices[oid]
    assert (center_inv["invoice_no"], center_inv["amount_fen"], center_inv["station_id"]) == (inv["invoice_no"], 2345,
                                                                                              "T001")
    # a repeat (double tap, lost answer) returns the stored invoice: the center is not asked again
    again = _invoice(shop, oid, tax_id=TAX_ID)
    assert again.status_code == 201 and again.json() == inv
    assert shop.api.get(f"/api/v1/orders/{oid}/invoice").json() == inv
    assert _center_calls(shop, "invoice") == 1
    # one invoice per order: another title is refused, nothing changes
    other = _invoice(shop, oid, title="个人")
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "invoice_exists"
    assert other.json()["error"]["details"]["invoice_no"] == inv["invoice_no"]
    assert _center_calls(shop, "invoice") == 1
    assert shop.api.get(f"/api/v1/orders/{oid}/invoice").json() == inv
    audit = _audit(shop, "order.invoice")
    assert len(audit) == 1 and audit[0]["target"] == f"order:{oid}" and inv["invoice_no"] in audit[0]["after"]
    # the center itself is idempotent by the order id: asked again it answers the same invoice
    gw = shop.checkout.gateway
    assert gw is not None
    assert gw.invoice(order_id=oid, amount_fen=2345, title=TITLE, tax_id=None, email=None).invoice_no \
        == inv["invoice_no"]
    assert len(shop.center.state.invoices) == 1


def test_invoice_is_refused_offline_and_nothing_is_stored_or_sent(shop: Shop) -> None:
    order = _paid(shop, 800)
    shop.st.agent.set_link("center", False)
    r = _invoice(shop, order["order_id"])
    assert r.status_code == 503
    err = r.json()["error"]
    assert err["code"] == "offline" and "offline" in err["message"] and err["details"]["operation"] == "invoice"
    assert shop.st.agent.store.query("SELECT * FROM invoices") == []
    assert _audit(shop, "order.invoice") == []
    assert _center_calls(shop, "invoice") == 0 and shop.center.state.invoices == {}
    assert shop.api.get(f"/api/v1/orders/{order['order_id']}/invoice").status_code == 404
    shop.checkout.sweep()  # the sentinel has nothing to send either
    assert _center_calls(shop, "invoice") == 0
    # back online: the same request is issued
    shop.st.agent.set_link("center", True)
    r = _invoice(shop, order["order_id"])
    assert r.status_code == 201, r.text
    assert r.json()["amount_fen"] == 800


def test_invoice_is_refused_for_an_unpaid_or_unknown_order_and_bad_input(shop: Shop) -> None:
    r = shop.api.post("/api/v1/checkout/orders", json={"lines": [{"kind": "amount", "amount_fen": 1000}]})
    oid = r.json()["order_id"]
    unpaid = _invoice(shop, oid)
    assert unpaid.status_code == 409
    assert unpaid.json()["error"]["code"] == "order_not_paid"
    assert _invoice(shop, "no-such-order").status_code == 404
    paid = _paid(shop, 500)["order_id"]
    for body in ({"title": ""}, {"title": "x" * 101}, {"tax_id": "12345"}, {"tax_id": "9144030#MA5F0ABC1"},
                 {"title": "   "}, {"email": "not-an-address"}, {"amount_fen": 1}):
        bad = _invoice(shop, paid, **body)
        assert bad.status_code == 422, (body, bad.text)
    assert shop.st.agent.store.query("SELECT * FROM invoices") == []
    assert _center_calls(shop, "invoice") == 0


def test_invoice_amount_is_what_was_paid_minus_refunds(shop: Shop) -> None:
    order = _paid(shop, 2000)
    oid = order["order_id"]
    r = shop.api.post(f"/api/v1/orders/{oid}/refund", json={"amount_fen": 650, "reason": "多收",
                                                             "supervisor_id": "s01", "supervisor_pin": "9999"})
    assert r.status_code == 201, r.text
    inv = _invoice(shop, oid)
    assert inv.status_code == 201, inv.text
    assert inv.json()["amount_fen"] == 2000 - 650
    assert shop.center.state.invoices[oid]["amount_fen"] == 1350
    # refunded in full: nothing left to invoice, nothing sent
    full = _paid(shop, 900)["order_id"]
    r = shop.api.post(f"/api/v1/orders/{full}/refund", json={"reason": "退货", "supervisor_id": "s01",
                                                              "supervisor_pin": "9999"})
    assert r.status_code == 201, r.text
    none_left = _invoice(shop, full)
    assert none_left.status_code == 422
    assert none_left.json()["error"]["code"] == "nothing_to_invoice"
    assert _center_calls(shop, "invoice") == 1


def test_a_lost_invoice_answer_is_asked_again_and_never_issued_twice(shop: Shop) -> None:
    oid = _paid(shop, 1200)["order_id"]
    shop.center.state.faults.commit_then_500 = 1  # the center issues it, the answer is lost
    r = _invoice(shop, oid)
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "center_no_answer"
    row = shop.st.agent.store.query_one("SELECT state, invoice_no FROM invoices WHERE order_id = ?", (oid,))
    assert row == {"state": "requested", "invoice_no": None}
    issued = shop.center.state.invoices[oid]["invoice_no"]
    shop.checkout.sweep()  # the sentinel asks again with the same key
    got = shop.api.get(f"/api/v1/orders/{oid}/invoice").json()
    assert (got["state"], got["invoice_no"], got["amount_fen"]) == ("issued", issued, 1200)
    assert len(shop.center.state.invoices) == 1 and _center_calls(shop, "invoice") == 2
    assert len(_audit(shop, "order.invoice")) == 1


# ------------------------------------------------------------------ member registration
def test_member_registration_caches_the_new_member_and_a_repeat_is_the_same_member(shop: Shop) -> None:
    body = {"phone": "13912345678", "name": " 赵六 ", "plate": "粤b54321", "request_key": "reg-0000000001"}
    r = shop.api.post("/api/v1/members", json=body)
    assert r.status_code == 201, r.text
    m = r.json()
    assert (m["name"], m["phone"], m["plates"], m["level"]) == ("赵六", "13912345678", ["粤B54321"], "normal")
    assert (m["balance_fen"], m["points"], m["coupons"]) == (0, 0, [])
    assert shop.center.state.members[m["member_id"]]["phone"] == "13912345678"
    # cached like a lookup: found offline, and usable on an order
    shop.st.agent.set_link("center", False)
    assert shop.lookup("13912345678")["member_id"] == m["member_id"]
    shop.st.agent.set_link("center", True)
    order = shop.api.post("/api/v1/checkout/orders", json={"lines": [{"kind": "amount", "amount_fen": 500}],
                                                           "member_id": m["member_id"]})
    assert order.status_code == 201, order.text
    # a repeat of the same request (lost answer) is the same member, registered and audited once
    again = shop.api.post("/api/v1/members", json=body)
    assert again.status_code == 201 and again.json()["member_id"] == m["member_id"]
    assert len(shop.center.state.members) == 1 and _center_calls(shop, "member.register") == 2
    audit = _audit(shop, "member.register")
    assert len(audit) == 1 and "139****5678" in audit[0]["after"] and "13912345678" not in audit[0]["after"]


def test_member_registration_refuses_a_phone_that_is_already_a_member(shop: Shop) -> None:
    shop.member()  # 13800000001 is m1's at the center
    r = shop.api.post("/api/v1/members", json={"phone": "13800000001", "name": "冒名"})
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "member_exists"
    first = shop.api.post("/api/v1/members", json={"phone": "13700000000", "name": "孙七"})
    assert first.status_code == 201, first.text
    dup = shop.api.post("/api/v1/members", json={"phone": "13700000000", "name": "孙七"})
    assert dup.status_code == 409 and dup.json()["error"]["code"] == "member_exists"
    assert sorted(m["phone"] for m in shop.center.state.members.values()) == ["13700000000", "13800000001"]
    assert [r["phone"] for r in shop.st.agent.store.query("SELECT phone FROM members")] == ["13700000000"]
    assert len(_audit(shop, "member.register")) == 1


def test_member_registration_is_refused_offline_and_bad_input_changes_nothing(shop: Shop) -> None:
    for body in ({"phone": "23800000001", "name": "x"}, {"phone": "1380000000", "name": "x"},
                 {"phone": "13800000009", "name": ""}, {"phone": "13800000009", "name": "名" * 31},
                 {"phone": "13800000009", "name": "x", "plate": "粤B"}, {"phone": 13800000009, "name": "x"}):
        r = shop.api.post("/api/v1/members", json=body)
        assert r.status_code == 422, (body, r.text)
    shop.st.agent.set_link("center", False)
    r = shop.api.post("/api/v1/members", json={"phone": "13800000009", "name": "周八"})
    assert r.status_code == 503
    err = r.json()["error"]
    assert err["code"] == "offline" and err["details"]["operation"] == "member registration"
    assert _center_calls(shop, "member.register") == 0 and shop.center.state.members == {}
    assert shop.st.agent.store.query("SELECT * FROM members") == []
    assert _audit(shop, "member.register") == []


def test_a_refund_after_the_invoice_names_the_invoice_for_the_center_to_reissue(shop: Shop) -> None:
    order = _paid(shop, 3000)
    oid = order["order_id"]
    inv = _invoice(shop, oid).json()
    r = shop.api.post(f"/api/v1/orders/{oid}/refund", json={"amount_fen": 500, "reason": "多收",
                                                             "supervisor_id": "s01", "supervisor_pin": "9999"})
    assert r.status_code == 201, r.text
    ev = shop.st.wait_event(lambda e: e.topic == "order.refunded" and e.data["order_id"] == oid)
    assert ev.data["invoice_no"] == inv["invoice_no"]  # the cashier is told; the center reissues it
    (row,) = shop.st.agent.store.query("SELECT payload FROM outbox WHERE kind = 'order.refunded' AND aggregate_id = ?",
                                       (oid,))
    assert f'"invoice_no": "{inv["invoice_no"]}"' in row["payload"]
    audit = _audit(shop, "order.refund")
    assert inv["invoice_no"] in audit[-1]["after"]


def test_the_shift_report_counts_the_invoices_issued(shop: Shop) -> None:
    from agent.manager import ManagerService

    mgr = ManagerService(shop.st.agent)
    shift = mgr.shifts.open(scope="station", cashier=None, actor="m01", float_fen=0)
    a, b = _paid(shop, 1200)["order_id"], _paid(shop, 800)["order_id"]
    _paid(shop, 500)  # no invoice asked
    for oid in (a, b):
        assert _invoice(shop, oid).status_code == 201
    report = mgr.shifts.close(shift["shift_id"], actor="m01", declared_cash_fen=None)
    assert report["invoices"] == {"count": 2, "amount_fen": 2000}
    assert report["orders"]["count"] == 3
    from agent.report_export import receipt_lines, to_csv

    assert any(line.startswith("发票 invoices 2") and line.endswith("20.00") for line in receipt_lines(report, 32))
    assert "invoice,issued,,2," in to_csv(report)
