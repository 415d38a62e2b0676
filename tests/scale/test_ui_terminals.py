"""Acceptance (issue 11): three UI terminals (offscreen) on one agent over TLS with their own credentials.

All three see every pump live; two terminals claim the same unpaid fill in
the same GUI-loop turn (their worker threads race over HTTPS): exactly one gets
the order, the other is told who holds it, the third sees the pump's unpaid
sale taken.  The winner then dies mid-sale and its open order is finished on
another terminal.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.scale.conftest import TERMINAL_TOKENS, LanStation

WAIT = 20_000


@pytest.fixture
def terminals(qtbot: Any, lan: LanStation, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    from ui.app import UiSession
    from ui.i18n import set_language

    monkeypatch.setenv("SSL_CERT_FILE", str(lan.pki.ca))  # the UI's httpx clients trust the station CA
    set_language("zh_CN")
    sessions = {tid: UiSession(lan.url, token, single_window=True) for tid, token in TERMINAL_TOKENS.items()}
    for s in sessions.values():
        s.cashier.resize(1024, 768)
        s.start()
    for s in sessions.values():
        qtbot.waitUntil(lambda s=s: s.api.up and len(s.cashier.board.snapshots) == 2, timeout=WAIT)
    yield sessions
    for s in sessions.values():
        s.stop()


def test_three_terminals_one_fill(qtbot: Any, lan: LanStation, terminals: dict[str, Any]) -> None:
    fill = lan.shop.fill(1, min_ml=2_000)
    for s in terminals.values():  # every terminal sees the pump live and then the unpaid sale
        qtbot.waitUntil(lambda s=s: s.cashier.board.snapshots[1]["unpaid"] == 1, timeout=WAIT)
        # the pump is released just after the sale is stored: "finishing", then "unpaid"
        qtbot.waitUntil(lambda s=s: s.cashier.grid.tiles[1].tile.display == "unpaid", timeout=WAIT)

    errors: dict[str, list[Any]] = {tid: [] for tid in terminals}
    said: dict[str, list[str]] = {tid: [] for tid in terminals}
    for tid, s in terminals.items():
        original = s.checkout._fail

        def record(err: Any, _tid: str = tid, _orig: Any = original, **ctx: Any) -> None:
            errors[_tid].append(err)
            _orig(err, **ctx)

        s.checkout._fail = record
        s.checkout.message.connect(lambda text, bad, _tid=tid: said[_tid].append(text) if bad else None)

    terminals["T1"].checkout.add_fuel(fill["fill_id"])  # same GUI turn: both calls race in their workers
    terminals["T2"].checkout.add_fuel(fill["fill_id"])
    qtbot.waitUntil(lambda: sum(terminals[t].checkout.draft.order_id is not None for t in ("T1", "T2"))
                    + sum(len(errors[t]) for t in ("T1", "T2")) == 2, timeout=WAIT)
    winners = [t for t in ("T1", "T2") if terminals[t].checkout.draft.order_id is not None]
    assert len(winners) == 1, (winners, errors)
    winner = winners[0]
    loser = "T2" if winner == "T1" else "T1"
    order_id = terminals[winner].checkout.draft.order_id
    order = lan.shop.api.get(f"/api/v1/orders/{order_id}").json()
    (err,) = errors[loser]
    assert err.status == 409 and err.code == "fill_not_available"
    assert err.details["cashier"] == f"terminal:{winner}" and err.details["order_id"] == order_id
    assert f"terminal:{winner}" in err.message and order["receipt_no"] in err.message
    assert said[loser], "the losing terminal shows a refusal"
    row = lan.shop.st.agent.store.query_one("SELECT terminal_id FROM orders WHERE order_id = ?", (order_id,))
    assert row == {"terminal_id": winner}

    # the third terminal taps pump 1: the sale is taken, nothing is added (the pump tile still counts it
    # as unpaid until it is paid: the snapshot has no separate "claimed" count yet)
    t3 = terminals["T3"]
    t3.checkout.add_unpaid(1)
    qtbot.waitUntil(lambda: bool(said["T3"]), timeout=WAIT)
    assert said["T3"] == ["1号油机没有挂单"] and t3.checkout.draft.order_id is None

    # the winning terminal dies mid-sale: its order stays open and is finished on terminal T3
    terminals[winner].api.stop()
    with lan.client(TERMINAL_TOKENS["T3"]) as t3:
        open_orders = t3.get("/api/v1/orders", params={"state": "init"}).json()
        assert [o["order_id"] for o in open_orders] == [order_id]
        quote = t3.post(f"/api/v1/orders/{order_id}/confirm").json()
        amount = quote.get("payable_fen", order["payable_fen"])
        r = t3.post(f"/api/v1/orders/{order_id}/pay", json={
            "quote_id": quote["quote_id"], "tenders": [{"tender": "cash", "amount_fen": amount,
                                                        "given_fen": amount}]})
        assert r.status_code == 200, r.text
    assert lan.shop.api.get(f"/api/v1/orders/{order_id}").json()["state"] == "paid"
    fills = lan.shop.api.get("/api/v1/fills", params={"pump_id": 1}).json()
    assert [f["state"] for f in fills if f["fill_id"] == fill["fill_id"]] == ["paid"]
