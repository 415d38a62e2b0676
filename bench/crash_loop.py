"""Crash loop bench: ``python bench/crash_loop.py --kills 200 [--seed N] [--out FILE]``.

SIGKILLs the agent ``--kills`` times under pump, payment, refund and sync traffic with network and
serial faults (see ``reliability.crashloop``), then prints the exactly-once report and the figures
as JSON.  Exit 0 when nothing is lost, duplicated or mismatched and ``integrity_check`` is ok.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reliability.crashloop import CrashLoopOptions, run_crash_loop


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--kills", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--pumps", type=int, default=2)
    ap.add_argument("--no-network-faults", action="store_true")
    ap.add_argument("--no-serial-faults", action="store_true")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=None, help="write the JSON result here too")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="crashloop-"))
    opts = CrashLoopOptions(kills=args.kills, seed=args.seed, pumps=args.pumps,
                            network_faults=not args.no_network_faults, serial_faults=not args.no_serial_faults,
                            deadline_s=max(1800.0, args.kills * 10.0))
    res = run_crash_loop(workdir, opts, progress=lambda m: print(m, flush=True))
    out = {"summary": res.report.summary(), "figures": res.figures,
           "lost": res.report.lost[:50], "duplicated": res.report.duplicated[:50],
           "mismatched": res.report.mismatched[:50], "pending": res.report.pending[:50], "workdir": str(workdir)}
    text = json.dumps(out, indent=2, ensure_ascii=False)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0 if res.report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
