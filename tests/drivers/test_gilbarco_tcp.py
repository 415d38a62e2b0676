"""Gilbarco over ``socket://`` (the demo's transport) with the simulator's demo traffic and control socket."""

from __future__ import annotations

import json
import socket

from drivers.base import Authorize, ClearTransaction, FillFinished, LineConfig, PumpConfig, PumpState
from drivers.registry import create_line_driver
from drivers.sim.control import start_control
from drivers.sim.scenario import run_demo_traffic
from drivers.sim.simulator import PumpSimulator
from tests.drivers.contract import Events


def test_gilbarco_over_tcp_with_demo_traffic() -> None:
    with PumpSimulator(2, 2, simulate=True, speed=40, prices=(789, 812), baudrate=None, protocol="gilbarco") as sim:
        url = sim.start_tcp()
        host, port = start_control(sim)
        ev = Events()
        pumps = (PumpConfig(1, 1, (1, 2)), PumpConfig(2, 2, (1, 2)))
        driver = create_line_driver(LineConfig("tcp", "gilbarco", url, pumps, baudrate=5787), ev.q.put)
        driver.start()
        try:
            for p in (1, 2):
                ev.reach(p, PumpState.IDLE)
            with socket.create_connection((host, port)) as conn, conn.makefile("rw") as fh:
                fh.write(json.dumps({"cmd": "status", "pump": 2}) + "\n")
                fh.flush()
                assert json.loads(fh.readline())["result"][0]["address"] == 2
            sim.spawn("traffic", lambda: run_demo_traffic(sim, seed=1, mean_gap_s=0.2))
            assert ev.wait(lambda: ev.state(1) is PumpState.CALLING or ev.state(2) is PumpState.CALLING)
            done = 0

            def calling_or_finished(n: int) -> bool:
                return any(ev.state(p) is PumpState.CALLING for p in (1, 2)) or len(ev.finished()) > n

            while done < 3:  # the cashier authorizes whoever calls; each sale is cleared after "persisting"
                assert ev.wait(lambda n=done: calling_or_finished(n), 15)  # type: ignore[misc]
                for p in (1, 2):
                    if ev.state(p) is PumpState.CALLING:
                        driver.submit(Authorize(p))
                        ev.reach(p, PumpState.FUELLING)
                new = ev.finished()[done:]
                for fill in new:
                    driver.submit(ClearTransaction(fill.pump_id))
                done += len(new)
            ledger = sim.ledger()
            for fill in ev.finished():
                assert isinstance(fill, FillFinished)
                entry = [
                    e for e in ledger if e.pump == fill.pump_id and e.end_volume_total_raw * 10 == fill.volume_total_ml
                ]
                assert len(entry) == 1 and entry[0].volume_ml == fill.volume_ml, (fill, ledger)
        finally:
            driver.close()
