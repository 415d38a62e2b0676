"""Bounded crash loop (30 SIGKILLs under traffic, network and serial faults): nothing lost or duplicated.

The 200-kill run is ``bench/crash_loop.py --kills 200`` (figures in docs/reliability.md).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from reliability.checker import unexplained
from reliability.crashloop import CrashLoopOptions, run_crash_loop


@pytest.mark.timeout(240)
def test_crash_loop_30_kills_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    res = run_crash_loop(tmp_path, CrashLoopOptions(kills=30, seed=11, up_s=(0.2, 1.2), deadline_s=150,
                                                       drain_timeout_s=60))
    rep = res.report
    detail = rep.details() + f"\nfigures: {res.figures}"
    assert res.figures["kills"] == 30, detail
    assert rep.integrity == "ok", detail
    assert rep.lost == [], detail
    assert rep.duplicated == [], detail
    assert unexplained(rep.mismatched) == [], detail
    assert rep.figures["ledger_fills"] >= 10, detail  # the loop really sold fuel
    assert rep.figures["orders_paid"] >= 10, detail
