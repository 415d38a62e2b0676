"""A compressed station day: two shifts, hundreds of fills of several kinds, reports against ground truth.

Ground truth is the pump simulator: its ledger (every fill, to the 10 mL and the fen) and its own
totalizers.  The shift and day reports must equal it, with zero meter variance; then a meter
discrepancy is planted (the simulator's totalizer moves without a sale) and the next report shows
exactly it.
"""

from __future__ import annotations

import random
from typing import Any

from tests.manager.conftest import Station

ROUNDS_PER_SHIFT = 60  # x 2 pumps x 2 shifts = 240 fills


def _round(mst: Station, rng: random.Random) -> list[dict[str, Any]]:
    """Both pumps fill at once: a postpay preset by amount or volume, or a prepay; all paid."""
    co, fc = mst.checkout, mst.st.forecourt
    mst.st.seen.clear()  # events of earlier rounds must not satisfy this round's waits
    kinds: dict[int, str] = {}
    for pump in (1, 2):
        kind = rng.choice(["post_amount", "post_volume", "prepay"])
        kinds[pump] = kind
        if kind == "post_amount":
            fc.authorize(pump, preset_amount_fen=rng.randint(300, 1500))
        elif kind == "post_volume":
            fc.authorize(pump, preset_volume_ml=rng.randint(40, 200) * 10)
        else:
            amount = rng.randint(300, 1500)
            res = co.prepay(pump, preset_amount_fen=amount, tenders=[{"tender": "cash", "amount_fen": amount}],
                            actor="c01")
            assert res["payment"]["state"] == "paid"
            oid = res["order"]["order_id"]
            mst.st.wait_event(lambda e, o=oid: e.topic == "prepay.authorized" and e.data["order_id"] == o)
        mst.st.sim.lift(pump, rng.choice([1, 2]))
    fills = []
    for pump in (1, 2):
        ev = mst.st.wait_event(lambda e, p=pump: e.topic == "fill.finished" and e.data["pump_id"] == p, 20)
        mst.st.sim.hang(pump)
        fills.append(ev.data)
        if kinds[pump] != "prepay":
            order = co.create_order([{"kind": "fuel", "fill_id": ev.data["fill_id"]}], cashier="c01")
            quote = co.confirm(order["order_id"])
            tender = rng.choice(["cash", "cash", "qr_show"]) if mst.st.agent.online else "cash"
            pay = co.pay(order["order_id"], quote_id=quote["quote_id"], actor="c01",
                         tenders=[{"tender": tender, "amount_fen": quote["payable_fen"]}])
            if tender == "qr_show":
                mst.notify(pay["legs"][0])
                co.sweep()
            assert co.sagas.latest(order["order_id"])["state"] == "paid"
    for pump in (1, 2):
        assert mst.st.sim.wait_status(pump, 1, timeout=10)  # the pump itself was released (RESET)
    mst.st.seen.clear()
    for pump in (1, 2):
        mst.st.wait_state(pump, "idle")
    return fills


def _shift(mst: Station, rng: random.Random, plant: Any = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    sid = mst.call("POST", "/api/v1/manager/shifts", 201, json={"scope": "station", "float_fen": 0})["shift_id"]
    if plant is not None:
        plant()
    fills = []
    for i in range(ROUNDS_PER_SHIFT):
        try:
            fills += _round(mst, rng)
        except Exception as exc:
            raise AssertionError(f"round {i}: {exc}; pumps {mst.st.forecourt.pumps()}") from exc
    mst.checkout.sweep()
    blockers = mst.call("GET", f"/api/v1/manager/shifts/{sid}/precheck")
    assert not blockers.get("blockers"), blockers
    cash = mst.call("GET", f"/api/v1/manager/shifts/{sid}/report")["cash"]["expected_fen"]
    report = mst.call("POST", f"/api/v1/manager/shifts/{sid}/close", json={"declared_cash_fen": cash})
    return report, fills


def _ledger_since(mst: Station, count: int) -> list[Any]:
    return mst.st.sim.ledger()[-count:]


def test_a_day_of_two_shifts_matches_the_pumps_ground_truth(mst: Station) -> None:
    rng = random.Random(2026)
    start = mst.totals_ml()
    report1, fills1 = _shift(mst, rng)
    ledger1 = _ledger_since(mst, len(fills1))
    mid = mst.totals_ml()

    # shift 1 equals the simulator's ledger and totalizers, to the 10 mL and the fen
    assert report1["fuel"]["fills"] == len(ledger1)
    assert report1["fuel"]["volume_ml"] == sum(e.volume_ml for e in ledger1)
    assert report1["fuel"]["amount_fen"] == sum(e.amount_fen for e in ledger1)
    assert sum(n["amount_fen"] for n in report1["by_nozzle"]) == sum(e.amount_fen for e in ledger1)
    meter1 = {m["nozzle"]: m for m in report1["meter"]}
    for gun in (1, 2, 3, 4):
        assert meter1[gun]["meter_ml"] == mid[gun] - start[gun]
        assert meter1[gun]["variance_ml"] == 0, meter1[gun]
    assert report1["cash"]["over_short_fen"] == 0

    # a meter discrepancy is planted on gun 3 (pump 2, logical 1): 1.23 L through the meter, no sale
    def plant() -> None:
        with mst.st.sim.cond:
            mst.st.sim.pump(2).totals[1].volume += 123

    report2, fills2 = _shift(mst, rng, plant)
    ledger2 = _ledger_since(mst, len(fills2))
    end = mst.totals_ml()
    assert report2["fuel"]["volume_ml"] == sum(e.volume_ml for e in ledger2)
    assert report2["fuel"]["amount_fen"] == sum(e.amount_fen for e in ledger2)
    meter2 = {m["nozzle"]: m for m in report2["meter"]}
    for gun in (1, 2, 4):
        assert meter2[gun]["variance_ml"] == 0, meter2[gun]
    assert meter2[3]["meter_ml"] == end[3] - mid[3]
    assert meter2[3]["variance_ml"] == 1230, meter2[3]

    # both shifts together: every fill of the day, each once
    assert len(fills1) + len(fills2) == 4 * ROUNDS_PER_SHIFT
    assert len({f["fill_id"] for f in fills1 + fills2}) == 4 * ROUNDS_PER_SHIFT
    assert report1["fuel"]["fills"] + report2["fuel"]["fills"] == len(mst.st.sim.ledger())
