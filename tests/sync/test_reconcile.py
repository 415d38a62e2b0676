"""Acceptance: the reconciliation report finds each planted mismatch and nothing else."""

from __future__ import annotations

import httpx

from agent.orders import LineRequest
from sync.http import CenterClient
from sync.reconcile import reconcile
from tests.sync.conftest import STATION

DAY = "2026-03-05"
T0 = 1_772_668_800_000 + 3_600_000  # 2026-03-05T01:00Z


def _local_payment(agent, pid: str, amount: int, *, tender: str = "qr_scan", state: str = "confirmed") -> None:
    order_id = agent.orders.create([LineRequest(kind="amount", amount_fen=amount)])["order_id"]
    agent.store.write(lambda db: db.execute(
        "INSERT INTO payments(payment_id, order_id, leg_no, tender, amount_fen, state, created_at_ms, updated_at_ms)"
        " VALUES (?, ?, 1, ?, ?, ?, ?, ?)", [pid, order_id, tender, amount, state, T0, T0]))


def _local_refund(agent, rid: str, pid: str, amount: int) -> None:
    agent.store.write(lambda db: db.execute(
        "INSERT INTO refunds(refund_id, order_id, payment_id, amount_fen, reason, state, created_at_ms)"
        " SELECT ?, order_id, payment_id, ?, 'test', 'confirmed', ? FROM payments WHERE payment_id = ?",
        [rid, amount, T0 + 1000, pid]))


def _center_trade(http: httpx.Client, pid: str, amount: int) -> None:
    body = http.post("/gopay", json={"out_trade_no": pid, "amount_fen": amount, "station_id": STATION,
                                     "channel": "wechat", "at_ms": T0}).json()
    assert body["errno"] == 0, body


def test_reconcile_finds_each_planted_mismatch(center_http_only, make_station) -> None:
    center = center_http_only
    st = make_station(center.url, 1, mqtt=False, start=False)
    agent = st.agent
    with httpx.Client(base_url=center.url, timeout=5.0) as http:
        for i in range(8):  # matching trades
            _local_payment(agent, f"ok-{i}", 1000 + i)
            _center_trade(http, f"ok-{i}", 1000 + i)
        _local_payment(agent, "dup-1", 1500, state="duplicate")  # duplicates count too (seed 002)
        _center_trade(http, "dup-1", 1500)
        _local_payment(agent, "cash-1", 5000, tender="cash")  # cash never reaches the gateway: ignored
        # plant 1: the bill shows a wrong amount (the trade itself is right)
        _local_payment(agent, "amt-1", 2000)
        _center_trade(http, "amt-1", 2000)
        center.state.faults.bill_amount_delta = {"amt-1": 100}
        # plant 2: paid here, the center never had it
        _local_payment(agent, "lost-1", 3000)
        # plant 3: the center has it, the bill left it out
        _local_payment(agent, "omit-1", 3500)
        _center_trade(http, "omit-1", 3500)
        center.state.faults.bill_missing = ["omit-1"]
        # plant 4: paid at the center, unknown here (notify lost)
        _center_trade(http, "ghost-1", 4000)
        # a matching refund
        _local_refund(agent, "rf-1", "ok-1", 500)
        assert http.post("/refund", json={"out_refund_no": "rf-1", "out_trade_no": "ok-1", "amount_fen": 500,
                                          "at_ms": T0 + 1000}).json()["errno"] == 0

        report = reconcile(agent, CenterClient(http, STATION), DAY)

    found = {(m["item"], m["kind"], m.get("out_trade_no") or m.get("out_refund_no"), m.get("resolution"))
             for m in report["mismatches"]}
    assert found == {
        ("trade", "amount_differs", "amt-1", "bill_error"),
        ("trade", "missing_at_center", "lost-1", "not_at_center"),
        ("trade", "missing_at_center", "omit-1", "bill_omission"),
        ("trade", "missing_locally", "ghost-1", "notify_lost"),
    }
    amt = next(m for m in report["mismatches"] if m["kind"] == "amount_differs")
    assert (amt["local_fen"], amt["center_fen"], amt["follow_up"]["amount_fen"]) == (2000, 2100, 2000)
    s = report["settlement"]
    assert s["local_not_settled"] == ["lost-1"]
    assert s["settled_not_local"] == ["ghost-1"]
    assert s["difference_fen"] == 0
    assert not report["ok"]
    assert report["local"]["trades"] == 12 and report["local"]["refunds"] == 1


def test_clean_day_reports_nothing(center_http_only, make_station) -> None:
    center = center_http_only
    agent = make_station(center.url, 1, mqtt=False, start=False).agent
    with httpx.Client(base_url=center.url, timeout=5.0) as http:
        for i in range(3):
            _local_payment(agent, f"p-{i}", 700 + i)
            _center_trade(http, f"p-{i}", 700 + i)
        report = reconcile(agent, CenterClient(http, STATION), DAY)
    assert report["ok"] and report["mismatches"] == []
    assert report["settlement"]["ok"] and report["settlement"]["fee_fen"] > 0


def test_settlement_shortfall_is_reported(center_http_only, make_station) -> None:
    center = center_http_only
    agent = make_station(center.url, 1, mqtt=False, start=False).agent
    center.state.faults.settle_delta_fen = -37
    with httpx.Client(base_url=center.url, timeout=5.0) as http:
        _local_payment(agent, "p-1", 10_000)
        _center_trade(http, "p-1", 10_000)
        report = reconcile(agent, CenterClient(http, STATION), DAY)
    assert report["mismatches"] == []
    assert report["settlement"]["difference_fen"] == -37 and not report["settlement"]["ok"]
