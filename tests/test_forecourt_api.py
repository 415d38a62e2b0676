"""Pump endpoints of the local API over real HTTP, with the simulator on a PTY."""

from __future__ import annotations

from pathlib import Path

import httpx

from agent.api import ApiServer, create_app
from tests.forecourt_harness import station

TOKEN = "test-token-0123456789abcdef"


def test_pump_endpoints(tmp_path: Path) -> None:
    with station(tmp_path, pumps=2) as st:
        server = ApiServer(create_app(st.agent, TOKEN), port=0)
        server.start()
        try:
            api = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
            st.wait_all_idle()
            pumps = api.get("/api/v1/pumps").json()
            assert [p["state"] for p in pumps] == ["idle", "idle"]
            assert pumps[1]["nozzles"] == [{"number": 3, "logical": 1, "grade": "92"},
                                           {"number": 4, "logical": 2, "grade": "95"}]
            r = api.post("/api/v1/pumps/2/authorize", json={"nozzles": [4], "preset_amount_fen": 2000})
            assert r.status_code == 201, r.text
            assert r.json()["preset_amount_fen"] == 2000
            again = api.post("/api/v1/pumps/2/authorize", json={})
            assert again.status_code == 409
            # refused either by the open fill or, once the pump reported it, by the pump's own state
            assert again.json()["error"]["code"] in ("fill_in_progress", "pump_busy")
            assert api.post("/api/v1/pumps/9/authorize", json={}).status_code == 404
            bad = api.post("/api/v1/pumps/1/authorize", json={"preset_amount_fen": -1})
            assert bad.status_code == 422
            assert api.post("/api/v1/pumps/1/authorize", json={"nozzles": [4]}).json()["error"]["code"] == \
                "unknown_nozzle"
            st.sim.lift(2, 2)
            ev = st.wait_event(lambda e: e.topic == "fill.finished" and e.data["pump_id"] == 2)
            assert ev.data["amount_fen"] <= 2000
            assert ev.data["grade"] == "95"
            fills = api.get("/api/v1/fills", params={"pump_id": 2}).json()
            assert len(fills) == 1
            assert fills[0]["state"] == "finished"
            r = api.post("/api/v1/pumps/1/lock", json={"locked": True, "reason": "维修"})
            assert r.json()["locked"] is True
            assert api.post("/api/v1/pumps/1/authorize", json={}).json()["error"]["code"] == "pump_locked"
            assert api.post("/api/v1/pumps/emergency-stop").json() == {"stopped": [1, 2]}
            assert api.post("/api/v1/prices", json={"prices_fen": {"92": 800}}).json()["error"]["code"] == \
                "confirm_required"
            r = api.post("/api/v1/prices", json={"prices_fen": {"92": 800}, "confirm": True})
            assert r.status_code == 201
            assert r.json()["version"] == 2
            api.close()
        finally:
            server.stop()
