"""一键加油 over a real Mosquitto and 无感支付: sales that start outside the shop."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from agent.checkout.service import CheckoutService
from sync.center_sim.server import serve_center
from sync.gateway import HttpCenterGateway
from sync.runtime import start_sync
from tests.checkout.conftest import EXTRA, Shop
from tests.forecourt_harness import station
from tests.sync.conftest import FAST_RELAY, Broker, broker  # noqa: F401 - the broker fixture


@pytest.fixture
def online_shop(tmp_path: Path, broker: Broker) -> Iterator[Shop]:  # noqa: F811 - the fixture
    center = serve_center(mqtt=("127.0.0.1", broker.port))
    center.state.faults.auto_pay = False
    extra = EXTRA + f'\n[center]\nurl = "{center.url}"\nmqtt_port = {broker.port}\ntimeout_s = 2.0\n'
    with station(tmp_path, pumps=2, extra=extra) as st:
        http = httpx.Client(base_url=center.url, timeout=3.0)
        checkout = CheckoutService(st.agent, HttpCenterGateway(http, "T001"))
        checkout.start(sentinel_s=3600)
        sync = start_sync(st.agent, st.agent.config, relay_settings=FAST_RELAY)
        st.wait_all_idle()
        st.wait_event(lambda e: e.topic == "sync.link" and e.data["link"] == "broker" and e.data["up"], 15)
        try:
            yield Shop(st, center, checkout, httpx.Client())
        finally:
            sync.stop()
            checkout.close()
            http.close()
    center.stop()


def _release(shop: Shop, **body: object) -> str:
    with httpx.Client(base_url=shop.center.url) as c:
        r = c.post("/_sim/mobile_order/T001", json=body)
        return str(r.json()["data"]["order_id"])


def test_mobile_order_is_released_by_the_cashier_filled_and_reported(online_shop: Shop) -> None:
    shop = online_shop
    order_id = _release(shop, nozzle=3, grade="92", max_amount_fen=5000)
    waiting = shop.st.wait_event(lambda e: e.topic == "mobile_order.waiting", 15)
    assert waiting.data["order_id"] == order_id
    assert shop.st.sim.status(2)["authorizations"] == 0  # not before the cashier says so
    mo = shop.checkout.mobile.release(order_id, actor="c01")
    assert mo["state"] == "fuelling"
    assert shop.checkout.mobile.release(order_id, actor="c01")["state"] == "fuelling"  # a second tap: no-op
    with pytest.raises(Exception, match="fuelling already started"):
        shop.checkout.mobile.cancel(order_id, actor="c01")
    shop.st.sim.lift(2, 1)  # gun 3 = pump 2, logical 1
    fin = shop.st.wait_event(lambda e: e.topic == "fill.finished" and e.data["pump_id"] == 2, 30)
    assert fin.data["amount_fen"] <= 5000
    done = shop.st.wait_event(lambda e: e.topic == "mobile_order.done")
    assert done.data["amount_fen"] == fin.data["amount_fen"]
    assert shop.st.sim.status(2)["authorizations"] == 1
    assert shop.st.agent.store.query_one("SELECT state FROM fills WHERE fill_id = ?",
                                         (fin.data["fill_id"],)) == {"state": "paid"}
    kinds = [r["kind"] for r in shop.st.agent.store.query(
        "SELECT kind FROM outbox WHERE aggregate = 'mobile_order' AND aggregate_id = ?", (order_id,))]
    assert kinds == ["mobile_order.filled"]


def test_expired_or_mismatched_release_never_authorizes(online_shop: Shop) -> None:
    shop = online_shop
    wrong = _release(shop, nozzle=3, grade="95", max_amount_fen=5000)  # gun 3 sells 92
    shop.st.wait_event(lambda e: e.topic == "mobile_order.waiting" and e.data["order_id"] == wrong, 15)
    with pytest.raises(Exception, match="sells 92"):
        shop.checkout.mobile.release(wrong, actor="c01")
    short = _release(shop, nozzle=1, grade="92", max_amount_fen=5000, ttl_s=1)
    shop.st.wait_event(lambda e: e.topic == "mobile_order.waiting" and e.data["order_id"] == short, 15)
    shop.st.agent.store.write(lambda db: db.execute("UPDATE mobile_orders SET expires_at_ms = 1 WHERE order_id = ?",
                                                    [short]))
    with pytest.raises(Exception, match="expired"):
        shop.checkout.mobile.release(short, actor="c01")
    assert shop.st.sim.status(1)["authorizations"] == 0
    assert shop.st.sim.status(2)["authorizations"] == 0


def test_plate_pay_charges_the_member_after_the_fill(online_shop: Shop) -> None:
    shop = online_shop
    shop.member(plates=["粤B12345"])
    shop.center.state.faults.auto_pay = True  # the agreed account pays at once
    bound = shop.checkout.plate.bind(1, "粤B12345", actor="camera-1")
    assert bound["member_id"] == "m1"
    shop.st.forecourt.authorize(1)
    shop.st.sim.lift(1, 1)
    shop.st.wait_event(lambda e: e.topic == "pump.progress" and e.data["pump_id"] == 1
                       and e.data["volume_ml"] >= 5000, 20)
    shop.st.sim.hang(1)
    fin = shop.st.wait_event(lambda e: e.topic == "fill.finished" and e.data["pump_id"] == 1)
    started = shop.st.wait_event(lambda e: e.topic == "plate_pay.started", 15)
    order = shop.st.agent.orders.get(started.data["order_id"])
    assert order["state"] == "paid"
    assert order["member_id"] == "m1"
    assert order["lines"][0]["fill_id"] == fin.data["fill_id"]
    trade = next(t for t in shop.center.state.trades.values() if t["order_id"] == order["order_id"])
    assert (trade["channel"], trade["amount_fen"], trade["status"]) == ("plate", order["payable_fen"], "success")


def test_a_released_mobile_order_nobody_fuels_is_reported_as_zero_so_the_center_refunds_it(
        online_shop: Shop) -> None:
    """The app customer paid ahead, the cashier released the pump, nobody lifted the nozzle: the
    authorization expires, the fill ends as zero, and the center is told 0 mL / 0 fen (its cue to refund
    the whole prepayment) — the order does not stay "fuelling" for ever."""
    shop = online_shop
    order_id = _release(shop, nozzle=3, grade="92", max_amount_fen=8000)
    shop.st.wait_event(lambda e: e.topic == "mobile_order.waiting" and e.data["order_id"] == order_id, 15)
    assert shop.checkout.mobile.release(order_id, actor="c01")["state"] == "fuelling"
    shop.st.wait_state(2, "authorized")
    assert shop.st.forecourt.expire_authorizations(time.monotonic() + 3600) == [2]  # as if an hour went by
    zero = shop.st.wait_event(lambda e: e.topic == "fill.zero" and e.data["pump_id"] == 2, 15)
    done = shop.st.wait_event(lambda e: e.topic == "mobile_order.done" and e.data["order_id"] == order_id, 15)
    assert (done.data["amount_fen"], done.data["volume_ml"]) == (0, 0)
    assert shop.st.agent.store.query_one("SELECT state FROM mobile_orders WHERE order_id = ?",
                                         (order_id,)) == {"state": "done"}
    # the report reaches the center through the outbox relay, exactly once
    key = f"mobile:{order_id}:filled"

    def confirmed() -> bool:
        row = shop.st.agent.store.query_one("SELECT state FROM outbox WHERE event_id = ?", (key,))
        return row is not None and row["state"] == "confirmed"

    shop.st.wait_event(lambda e: e.topic == "sync.state" and confirmed(), 20)
    assert key in shop.center.state.events
    (applied,) = [a for a in shop.center.state.applied if a["event_id"] == key]
    record = shop.center.state.records[f"{applied['out_type']}:{applied['out_id']}"]
    assert {k: record["data"][k] for k in ("volume_ml", "amount_fen", "fill_id", "nozzle", "grade")} == {
        "volume_ml": 0, "amount_fen": 0, "fill_id": zero.data["fill_id"], "nozzle": 3, "grade": "92"}
    shop.st.wait_state(2, "idle")


def test_points_redeemed_at_the_counter_reach_the_centers_member_balance_once(online_shop: Shop) -> None:
    """Points are post-settled: the station holds them on confirm, settles on payment, and the relay tells
    the center, whose member balance moves exactly once even when the upload is replayed."""
    shop, co = online_shop, online_shop.checkout
    shop.member(points=3000)
    co.lookup_member(phone="13800000001")
    shop.st.forecourt.authorize(1)
    shop.st.sim.lift(1, 1)
    shop.st.wait_event(lambda e: e.topic == "pump.progress" and e.data["pump_id"] == 1
                       and e.data["volume_ml"] >= 10_000, 20)
    shop.st.sim.hang(1)
    fill = shop.st.wait_event(lambda e: e.topic == "fill.finished" and e.data["pump_id"] == 1).data
    order = co.create_order([{"kind": "fuel", "fill_id": fill["fill_id"]}], cashier="c01", member_id="m1")
    co.set_preferences(order["order_id"], points=300, no_coupon=True)
    quote = co.confirm(order["order_id"])
    detail = quote["detail"]
    assert detail["points_used"] == 300
    pay = co.pay(order["order_id"], quote_id=quote["quote_id"], actor="c01",
                 tenders=[{"tender": "cash", "amount_fen": quote["payable_fen"]}])
    assert pay["state"] == "paid"
    key = f"points:{order['order_id']}"

    def confirmed() -> bool:
        row = shop.st.agent.store.query_one("SELECT state FROM outbox WHERE event_id = ?", (key,))
        return row is not None and row["state"] == "confirmed"

    shop.st.wait_event(lambda e: e.topic == "sync.state" and confirmed(), 20)
    earned = detail["points_earned"]
    assert earned > 0
    assert shop.center.state.members["m1"]["points"] == 3000 - 300 + earned
    row = shop.st.agent.store.query_one("SELECT aggregate, aggregate_id, kind, payload FROM outbox WHERE event_id = ?",
                                        (key,))
    assert row is not None
    replay = {"event_id": key, "out_type": row["aggregate"], "out_id": row["aggregate_id"], "kind": row["kind"],
              "payload": json.loads(row["payload"])}
    assert shop.center.state.apply_upload(replay) == ("duplicate", "")
    assert shop.center.state.members["m1"]["points"] == 3000 - 300 + earned
    # the customer brings it all back: a full refund returns the 300 and takes the earned points, at the
    # center too
    co.refunds.refund(order["order_id"], amount_fen=None, reason="退货", actor="c01", approved_by="s01")
    back = f"points:{order['order_id']}:reversed"

    def reversed_() -> bool:
        row = shop.st.agent.store.query_one("SELECT state FROM outbox WHERE event_id = ?", (back,))
        return row is not None and row["state"] == "confirmed"

    shop.st.wait_event(lambda e: e.topic == "sync.state" and reversed_(), 20)
    assert shop.center.state.members["m1"]["points"] == 3000
