"""Bus poll-cycle benchmark: DartLineDriver against the pump simulator (separate process) on a PTY.

For 1, 8 and 32 idle pumps at 9600 baud it measures the poll-cycle time (one POLL to every address)
and compares it with the wire-time limit (bytes on the wire x 11 bits / baud, counted by the driver);
ratio target <= 1.5.  At 8 pumps it also measures this process's CPU (time.process_time over a
wall-clock window); target <= 10 % of one core.  Run: ``FORECOURT_DEV=1 python bench/bus.py``.
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from drivers.base import DriverEvent, LineConfig, PumpConfig  # noqa: E402
from drivers.dart.driver import DartLineDriver  # noqa: E402

BAUD = 9600
WINDOW_S = 3.0


def start_sim(pumps: int) -> tuple[subprocess.Popen[str], str]:
    cmd = [sys.executable, "-m", "drivers.sim.cli", "--simulate", "--pumps", str(pumps), "--baud", "0"]
    cmd += ["--prices", "789", "812"]
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("pumps: "):
        proc.kill()
        raise SystemExit(f"simulator did not start: {line!r}")
    return proc, line.removeprefix("pumps: ")


def measure(pumps: int) -> tuple[float, float, float]:
    """(cycle_s, wire_s per cycle, cpu fraction) for ``pumps`` idle pumps."""
    proc, url = start_sim(pumps)
    events: queue.Queue[DriverEvent] = queue.Queue()
    config = LineConfig("bench", "dart", url, tuple(PumpConfig(i + 1, 0x50 + i) for i in range(pumps)), BAUD)
    driver = DartLineDriver(config, events.put)
    try:
        driver.start()
        deadline = time.monotonic() + 10
        seen = 0
        while seen < pumps and time.monotonic() < deadline:  # wait until every pump answered once
            try:
                events.get(timeout=1)
                seen += 1
            except queue.Empty:
                pass
        frames0, bytes0 = driver.frames_sent, driver.bytes_on_wire
        wall0, cpu0 = time.monotonic(), time.process_time()
        window_end = time.monotonic() + WINDOW_S
        while time.monotonic() < window_end:
            try:
                events.get(timeout=max(0.0, window_end - time.monotonic()))
            except queue.Empty:
                pass
        wall, cpu = time.monotonic() - wall0, time.process_time() - cpu0
        frames, wire_bytes = driver.frames_sent - frames0, driver.bytes_on_wire - bytes0
    finally:
        driver.close()
        proc.terminate()
        proc.wait(5)
    cycles = frames / pumps  # idle: one POLL per pump per cycle
    wire_s = wire_bytes * 11 / BAUD / cycles
    return wall / cycles, wire_s, cpu / wall


def main() -> int:
    rows = []
    for pumps in (1, 8, 32):
        cycle, wire, cpu = measure(pumps)
        rows.append((pumps, cycle, wire, cycle / wire, cpu))
    print(f"DART poll cycle, idle pumps, {BAUD} baud 8O1 (PTY, wire time paced by the driver)")
    print(f"{'pumps':>5} {'cycle ms':>9} {'wire ms':>8} {'ratio':>6} {'cpu %':>6}")
    for pumps, cycle, wire, ratio, cpu in rows:
        print(f"{pumps:>5} {cycle * 1000:>9.1f} {wire * 1000:>8.1f} {ratio:>6.2f} {cpu * 100:>6.1f}")
    at8 = rows[1]
    ok = all(r[3] <= 1.5 for r in rows) and at8[4] <= 0.10
    print(f"targets: ratio <= 1.5, cpu at 8 pumps <= 10 % of one core -> {'OK' if ok else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
