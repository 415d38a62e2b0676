"""The fleet tool (bench/fleet.py) end to end: stations, one Mosquitto, the center, a broker crash.

The default run uses 5 stations and a SIGKILLed broker (the harder restart: the broker
forgets sessions and queued messages); the 50-station run is ``slow`` (its figures are
committed in docs/fleet.md) and runs only with ``FORECOURT_SLOW=1``.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.skipif(shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists(),
                                reason="mosquitto not installed")


def _fleet() -> Any:
    path = Path(__file__).resolve().parents[2] / "bench" / "fleet.py"
    spec = importlib.util.spec_from_file_location("bench_fleet", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_fleet"] = mod
    spec.loader.exec_module(mod)
    return mod


def _check(r: dict[str, Any], stations: int) -> None:
    assert r["ok"], r
    up, down, storm = r["uplink"], r["downlink"], r["restart"]
    assert up["fills_created"] > 0 and up["lost"] == 0 and up["unconfirmed_after_drain"] == 0
    assert up["at_center"] == up["fills_created"] == up["rows"]
    assert down["published"] > 0 and down["lost"] == 0 and down["received"] == down["published"]
    assert storm["all_reconnected_s"] is not None and storm["stations_dropped"] >= stations
    assert r["broker"]["rss_peak_kb"] > 0 and up["latency"]["p99_ms"] > 0


def test_small_fleet_survives_a_broker_crash(tmp_path: Path) -> None:
    fleet = _fleet()
    opts = fleet.FleetOptions(stations=5, workers=1, rate=2.0, downlink=2.0, steady_s=3.0, after_s=3.0,
                              restart="kill")
    r = fleet.run_fleet(opts, tmp_path, log=lambda _m: None)
    _check(r, 5)
    assert "| broker restart (kill) |" in fleet.markdown(r)


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("FORECOURT_SLOW") != "1", reason="about 60 s: set FORECOURT_SLOW=1")
def test_fifty_stations_survive_a_broker_restart(tmp_path: Path) -> None:
    fleet = _fleet()
    opts = fleet.FleetOptions(stations=50, workers=2, rate=0.5, downlink=0.2, steady_s=20.0, after_s=15.0,
                              restart="term")
    _check(fleet.run_fleet(opts, tmp_path, log=lambda _m: None), 50)
