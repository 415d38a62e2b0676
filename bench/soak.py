"""Soak bench: ``python bench/soak.py --minutes 5 [--pumps 4] [--out FILE]`` (see ``reliability.soak``)."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reliability.soak import run_soak


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--pumps", type=int, default=4)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    out = run_soak(Path(tempfile.mkdtemp(prefix="soak-")), minutes=args.minutes, pumps=args.pumps, seed=args.seed,
                   progress=lambda m: print(m, flush=True))
    text = json.dumps(out, indent=2, ensure_ascii=False)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0 if out["summary"]["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
