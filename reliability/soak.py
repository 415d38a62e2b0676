"""Soak: a compressed station day (hours of traffic in minutes) with faults of every kind, then figures.

``run_soak(workdir, minutes=5, pumps=4)`` is a long crash loop tuned for a day rather than for kills:
4 pumps at 40× flow, the cashier selling and refunding throughout, the agent SIGKILLed about once a
minute, a network fault schedule on the center and broker links (drop, delay, reset, cut,
half-open), broker SIGKILLs, and serial CRC errors/duplicates/garbage/truncation on the pump line.
At the end it heals, drains and runs the exactly-once checker.  Returns the figures as a dict.

Limits: "a day" = the number of fills of a busy 4-pump shop in ``minutes`` of wall time (the pump
simulator's flow is sped up); no price changes or shift closes; loopback only.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from reliability.crashloop import CrashLoopOptions, run_crash_loop

__all__ = ["run_soak"]


def run_soak(workdir: Path, *, minutes: float = 5.0, pumps: int = 4, seed: int = 42,
             progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    kills = max(1, int(minutes))  # about one SIGKILL per minute
    up = minutes * 60.0 / kills
    opts = CrashLoopOptions(kills=kills, seed=seed, pumps=pumps, up_s=(up * 0.8, up * 1.2), crash_point_rate=0.2,
                            broker_outage_rate=0.3, refund_rate=0.1, deadline_s=minutes * 60 * 2 + 300,
                            drain_timeout_s=180)
    res = run_crash_loop(workdir, opts, progress)
    return {"summary": res.report.summary(), "figures": res.figures, "lost": res.report.lost,
            "duplicated": res.report.duplicated, "mismatched": res.report.mismatched}
