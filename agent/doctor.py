"""``forecourt doctor``: health checks a technician reads on site.

Each check returns OK / WARN / FAIL with what to do.  Checks never change
anything (the database is opened read-only).
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import urllib.request
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CheckResult", "run_checks"]


@dataclass(frozen=True)
class CheckResult:
    name: str
    level: str  # OK | WARN | FAIL
    message: str
    action: str = ""


def check_config(path: str) -> CheckResult:
    from agent.config import ConfigError, load_config

    try:
        cfg = load_config(path)
    except ConfigError as exc:
        return CheckResult("config", "FAIL", "; ".join(exc.problems), f"fix {path}, then `forecourt config check`")
    return CheckResult("config", "OK", f"{path}: station {cfg.station.id}, {len(cfg.all_pumps())} pumps")


def check_database(path: str) -> list[CheckResult]:
    p = Path(path)
    if not p.exists():
        return [CheckResult("database", "FAIL", f"no database at {p}", "start the agent once to create it")]
    out = []
    try:
        conn = sqlite3.connect(f"file:{p}?mode=ro", uri=True, timeout=5)
        try:
            rows = [r[0] for r in conn.execute("PRAGMA integrity_check").fetchall()]
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
            try:
                depth, oldest = conn.execute(
                    "SELECT COUNT(*), MIN(created_at_ms) FROM outbox WHERE state = 'pending'").fetchone()
                parked = conn.execute("SELECT COUNT(*) FROM outbox WHERE state = 'parked'").fetchone()[0]
            except sqlite3.Error:
                depth, oldest, parked = 0, None, 0
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return [CheckResult("database", "FAIL", f"cannot open {p}: {exc}", "restore the latest backup")]
    if rows != ["ok"]:
        out.append(CheckResult("database", "FAIL", f"integrity check failed: {rows[:2]}",
                               "stop the agent, restore the latest backup, call support"))
    else:
        size_mb = p.stat().st_size / 1e6
        out.append(CheckResult("database", "OK", f"integrity ok, schema v{version}, {mode}, {size_mb:.1f} MB"))
    level = "OK" if parked == 0 and depth < 1000 else "WARN"
    out.append(CheckResult("outbox", level, f"{depth} pending, {parked} parked",
                           "" if level == "OK" else "check the center connection: `forecourt sync status`"))
    del oldest
    return out


def check_disk(path: str) -> CheckResult:
    usage = shutil.disk_usage(path)
    free_pct = 100 * usage.free / usage.total
    free_gb = usage.free / 1e9
    if free_gb < 0.2 or free_pct < 2:
        return CheckResult("disk", "FAIL", f"{free_gb:.2f} GB free ({free_pct:.0f} %)", "free disk space now")
    if free_gb < 1 or free_pct < 10:
        return CheckResult("disk", "WARN", f"{free_gb:.2f} GB free ({free_pct:.0f} %)", "clean old backups/logs")
    return CheckResult("disk", "OK", f"{free_gb:.1f} GB free ({free_pct:.0f} %)")


def check_api(url: str) -> CheckResult:
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/health", timeout=3) as resp:  # noqa: S310
            body = json.load(resp)
    except (OSError, ValueError) as exc:
        return CheckResult("agent API", "FAIL", f"{url} not answering: {exc}",
                           "start the agent: systemctl start forecourt-agent")
    return CheckResult("agent API", "OK", f"{url}: {body.get('status')} (station {body.get('station_id')})")


def run_checks(*, config_path: str | None, db_path: str | None, api_url: str | None) -> list[CheckResult]:
    results: list[CheckResult] = []
    if config_path:
        results.append(check_config(config_path))
    if db_path:
        results.extend(check_database(db_path))
        results.append(check_disk(str(Path(db_path).resolve().parent)))
    else:
        results.append(check_disk("."))
    if api_url:
        results.append(check_api(api_url))
    return results
