"""SIGKILL a process that writes orders, at random moments; nothing acknowledged may be lost."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

from tests.conftest import ROOT

ROUNDS = 50


def _run_and_kill(db: Path, delay_s: float) -> list[str]:
    proc = subprocess.Popen([sys.executable, "-m", "tests.crash_writer", str(db)], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    timer = threading.Timer(delay_s, lambda: os.kill(proc.pid, signal.SIGKILL))
    timer.start()
    acked = [line.strip() for line in proc.stdout if line.endswith("\n")]
    proc.wait()
    proc.stdout.close()
    timer.cancel()
    assert proc.returncode == -signal.SIGKILL
    return acked


def test_sigkill_loop_loses_no_acknowledged_order(tmp_path: Path) -> None:
    db = tmp_path / "crash.db"
    rng = random.Random(1234)
    acked_all: list[str] = []
    for _ in range(ROUNDS):
        acked_all += _run_and_kill(db, rng.uniform(0.05, 0.4))
    assert len(acked_all) > ROUNDS  # the writer really wrote between kills

    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    stored = {r[0] for r in conn.execute("SELECT order_id FROM orders")}
    missing = set(acked_all) - stored
    assert not missing, f"{len(missing)} acknowledged orders lost"
    # every stored order committed together with its lines and its outbox message
    assert conn.execute("SELECT COUNT(*) FROM orders o WHERE NOT EXISTS "
                        "(SELECT 1 FROM outbox WHERE aggregate_id = o.order_id)").fetchone()[0] == 0
    assert conn.execute("SELECT COUNT(*) FROM orders o WHERE (SELECT COUNT(*) FROM order_lines l "
                        "WHERE l.order_id = o.order_id) != 2").fetchone()[0] == 0
    # receipt numbers stay unique across crashes
    assert conn.execute("SELECT COUNT(DISTINCT receipt_no) = COUNT(*) FROM orders").fetchone()[0] == 1
    conn.close()
