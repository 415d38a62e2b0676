"""Bus poll-cycle benchmark: each line driver against the pump simulator (separate process) on a PTY.

DART (9600 8O1) with 1, 8 and 32 idle pumps and Gilbarco two-wire (5787 8E1) with 1, 8 and 16 idle
pumps: it measures the poll-cycle time (one status poll to every address: DART ``POLL``/``EOT``,
Gilbarco ``0p``/``6p``) and compares it with the wire-time limit (bytes on the wire x 11 bits / baud,
counted by the driver); ratio target <= 1.5.  At 8 pumps it also measures this process's CPU
(time.process_time over a wall-clock window); target <= 10 % of one core.
Run: ``FORECOURT_DEV=1 python bench/bus.py`` (``--protocol dart|gilbarco`` for one only).
"""

from __future__ import annotations

import argparse
import os
import queue
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from drivers.base import DriverEvent, LineConfig, PumpConfig  # noqa: E402
from drivers.registry import create_line_driver  # noqa: E402

#: protocol -> (baud, framing, first address, pump counts)
PROTOCOLS = {
    "dart": (9600, "8O1", 0x50, (1, 8, 32)),
    "gilbarco": (5787, "8E1", 1, (1, 8, 16)),
}
WINDOW_S = 3.0


def start_sim(protocol: str, pumps: int) -> tuple[subprocess.Popen[str], str]:
    cmd = [sys.executable, "-m", "drivers.sim.cli", "--simulate", "--protocol", protocol]
    cmd += ["--pumps", str(pumps), "--baud", "0"]
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


def measure(protocol: str, pumps: int) -> tuple[float, float, float]:
    """(cycle_s, wire_s per cycle, cpu fraction) for ``pumps`` idle pumps."""
    baud, _, first, _ = PROTOCOLS[protocol]
    proc, url = start_sim(protocol, pumps)
    events: queue.Queue[DriverEvent] = queue.Queue()
    pump_configs = tuple(PumpConfig(i + 1, first + i) for i in range(pumps))
    driver = create_line_driver(LineConfig("bench", protocol, url, pump_configs, baud), events.put)
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
        frames0, bytes0 = _counters(driver)
        wall0, cpu0 = time.monotonic(), time.process_time()
        window_end = time.monotonic() + WINDOW_S
        while time.monotonic() < window_end:
            try:
                events.get(timeout=max(0.0, window_end - time.monotonic()))
            except queue.Empty:
                pass
        wall, cpu = time.monotonic() - wall0, time.process_time() - cpu0
        frames1, bytes1 = _counters(driver)
        frames, wire_bytes = frames1 - frames0, bytes1 - bytes0
    finally:
        driver.close()
        proc.terminate()
        proc.wait(5)
    cycles = frames / pumps  # idle: one POLL per pump per cycle
    wire_s = wire_bytes * 11 / baud / cycles
    return wall / cycles, wire_s, cpu / wall


def _counters(driver: object) -> tuple[int, int]:
    return int(getattr(driver, "frames_sent", 0)), int(getattr(driver, "bytes_on_wire", 0))


def report(protocol: str) -> bool:
    baud, framing, _, counts = PROTOCOLS[protocol]
    rows = []
    for pumps in counts:
        cycle, wire, cpu = measure(protocol, pumps)
        rows.append((pumps, cycle, wire, cycle / wire, cpu))
    print(f"{protocol} poll cycle, idle pumps, {baud} baud {framing} (PTY, wire time paced by the driver)")
    print(f"{'pumps':>5} {'cycle ms':>9} {'wire ms':>8} {'ratio':>6} {'cpu %':>6}")
    for pumps, cycle, wire, ratio, cpu in rows:
        print(f"{pumps:>5} {cycle * 1000:>9.1f} {wire * 1000:>8.1f} {ratio:>6.2f} {cpu * 100:>6.1f}")
    at8 = rows[1]
    ok = all(r[3] <= 1.5 for r in rows) and at8[4] <= 0.10
    print(f"targets: ratio <= 1.5, cpu at 8 pumps <= 10 % of one core -> {'OK' if ok else 'MISSED'}")
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--protocol", choices=sorted(PROTOCOLS), action="append", help="default: both")
    args = parser.parse_args(argv)
    for i, protocol in enumerate(args.protocol or sorted(PROTOCOLS)):
        if i:
            print()
        report(protocol)
    return 0


if __name__ == "__main__":
    sys.exit(main())
