"""Price changes through the manager API: double confirmation, step limit, idle-only, scheduled sets."""

from __future__ import annotations

from typing import Any

from tests.manager.conftest import Station


def _change(mst: Station, body: dict[str, Any]) -> dict[str, Any]:
    first = mst.call("POST", "/api/v1/manager/prices", 202, json=body)
    assert first["confirmation"]
    return dict(mst.call("POST", "/api/v1/manager/prices", 201, json={**body, "confirmation": first["confirmation"]}))


def test_a_change_during_a_fill_reaches_that_pump_after_it_and_the_fill_sells_at_the_old_price(mst: Station) -> None:
    fill = mst.call("POST", "/api/v1/pumps/2/authorize", 201, json={})
    mst.st.sim.lift(2, 1)
    mst.st.wait_state(2, "fuelling")
    preview = mst.call("POST", "/api/v1/manager/prices", 202, json={"prices_fen": {"92": 799}})
    assert preview["changes"] == [{"grade": "92", "old_fen": 789, "new_fen": 799, "step_fen": 10}]
    assert mst.call("GET", "/api/v1/prices")["version"] == 1  # nothing before the second confirmation
    wrong = mst.api.post("/api/v1/manager/prices", json={"prices_fen": {"92": 800}, "confirmation":
                                                         preview["confirmation"]})
    assert wrong.status_code == 403
    assert wrong.json()["error"]["code"] == "confirmation_invalid"
    done = _change(mst, {"prices_fen": {"92": 799}})
    version = done["version"]
    assert version == 2
    mst.st.wait_event(lambda e: e.topic == "pump.prices" and e.data["pump_id"] == 1 and e.data["ok"]
                      and e.data["version"] == version)
    assert mst.st.sim.status(1)["prices"] == {1: 799, 2: 839}
    assert mst.st.sim.status(2)["prices"] == {1: 789, 2: 839}  # in a fill: untouched
    mst.st.wait_event(lambda e: e.topic == "pump.progress" and e.data["pump_id"] == 2 and e.data["volume_ml"] > 2000)
    mst.st.sim.hang(2)
    fin = mst.st.wait_event(lambda e: e.topic == "fill.finished" and e.data["pump_id"] == 2).data
    mst.st.wait_event(lambda e: e.topic == "pump.prices" and e.data["pump_id"] == 2 and e.data["ok"]
                      and e.data["version"] == version)
    assert mst.st.sim.status(2)["prices"] == {1: 799, 2: 839}
    assert fin["fill_id"] == fill["fill_id"]
    assert (fin["price_fen"], fin["price_set_version"]) == (789, 1)
    order = mst.order([{"kind": "fuel", "fill_id": fin["fill_id"]}])
    assert order["lines"][0]["amount_fen"] == fin["amount_fen"]
    assert order["lines"][0]["unit_price_fen"] == 789
    # limits: the step, and the role
    too_big = mst.api.post("/api/v1/manager/prices", json={"prices_fen": {"95": 1500}})
    assert too_big.status_code == 422
    assert too_big.json()["error"]["code"] == "price_step_too_large"
    s01 = mst.login("s01", "9999")
    assert mst.api.post("/api/v1/manager/prices", json={"prices_fen": {"95": 840}}, headers=s01).status_code == 403
    audit = mst.call("GET", "/api/v1/manager/audit", params={"action": "price.change"})
    assert audit[0]["before"]["prices_fen"]["92"] == 789
    assert audit[0]["after"]["prices_fen"]["92"] == 799
    applied = mst.st.agent.store.query("SELECT kind FROM outbox WHERE aggregate = 'price_set' AND aggregate_id = '2'")
    assert {"price_set.created", "price_set.applied"} <= {r["kind"] for r in applied}


def test_scheduled_change_applies_at_its_time_and_can_be_cancelled_before(mst: Station) -> None:
    now = mst.st.agent.clock.now_ms()
    later = _change(mst, {"prices_fen": {"95": 849}, "effective_at_ms": now + 3_600_000})
    soon = _change(mst, {"prices_fen": {"92": 779}, "effective_at_ms": now + 1500})
    assert (later["version"], soon["version"]) == (2, 3)
    assert mst.call("GET", "/api/v1/prices")["version"] == 1  # nothing is effective yet
    sched = mst.call("GET", "/api/v1/manager/prices/scheduled")["scheduled"]
    assert [(s["version"], s["prices_fen"]["92"]) for s in sched] == [(3, 779), (2, 789)]
    assert mst.call("DELETE", "/api/v1/manager/prices/scheduled/2")["version"] == 2
    assert [s["version"] for s in mst.call("GET", "/api/v1/manager/prices/scheduled")["scheduled"]] == [3]
    ev = mst.st.wait_event(lambda e: e.topic == "prices.changed" and e.data["version"] == 3, 10)
    assert ev.data["prices_fen"] == {"92": 779, "95": 839}  # the cancelled 849 never applies
    for pump in (1, 2):
        mst.st.wait_event(lambda e, p=pump: e.topic == "pump.prices" and e.data["pump_id"] == p and e.data["ok"]
                          and e.data["version"] == 3)
        assert mst.st.sim.status(pump)["prices"] == {1: 779, 2: 839}
    assert mst.call("GET", "/api/v1/manager/prices/scheduled")["scheduled"] == []
    cancelled = mst.call("DELETE", "/api/v1/manager/prices/scheduled/3", 409)
    assert cancelled["error"]["code"] == "price_set_effective"
    actions = [a["action"] for a in mst.call("GET", "/api/v1/manager/audit", params={"action": "price.*"})]
    assert actions == ["price.cancel", "price.schedule", "price.schedule"]
