"""``forecourt doctor``: health checks a technician reads on site.

Each check returns OK / WARN / FAIL with what to do.  Checks never change anything (the database
is opened read-only, ``mode=ro``).  This module holds the checks that need no network client and
no serial port: config, database integrity/size/schema, outbox backlog, disk, certificate expiry,
clock skew arithmetic and the agent's ``/health`` (stdlib ``urllib``, loopback only).  The checks
that need ``httpx`` or the pump bus live in ``launcher/doctor_checks.py`` and are passed in through
``run_checks(probes=...)`` so ``agent/`` stays free of those imports.

Limits: certificate expiry is read with the ``cryptography`` package when it is installed, else with
the ``openssl`` command, else the check is a WARN saying it could not look.
"""

from __future__ import annotations

import importlib
import json
import shutil
import sqlite3
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agent.config import StationConfig

__all__ = [
    "CheckResult",
    "Probe",
    "cert_not_after",
    "check_api",
    "check_certificate",
    "check_clock_skew",
    "check_config",
    "check_database",
    "check_disk",
    "config_db_path",
    "exit_code",
    "format_result",
    "run_checks",
]

LEVELS = ("OK", "WARN", "FAIL")


@dataclass(frozen=True)
class CheckResult:
    name: str
    level: str  # OK | WARN | FAIL
    message: str
    action: str = ""


#: A check that needs the parsed config (None when no config was given or it is invalid).
Probe = Callable[["StationConfig | None"], list[CheckResult]]


def format_result(r: CheckResult) -> str:
    """``[OK  ] name: message`` plus an indented ``→ action`` line when there is one."""
    return f"[{r.level:4}] {r.name}: {r.message}" + (f"\n       → {r.action}" if r.action else "")


def exit_code(results: Iterable[CheckResult]) -> int:
    """1 when any check FAILed, else 0 (WARN does not fail the run)."""
    return 1 if any(r.level == "FAIL" for r in results) else 0


def check_config(path: str) -> CheckResult:
    from agent.config import ConfigError, load_config

    try:
        cfg = load_config(path)
    except ConfigError as exc:
        text = "; ".join(exc.problems)
        if "Permission denied" in text:  # 0640 root:forecourt: the technician forgot sudo
            return CheckResult("config", "FAIL", text, "run the doctor as root: sudo forecourt doctor")
        return CheckResult("config", "FAIL", text, f"fix {path}, then `forecourt config check`")
    return CheckResult("config", "OK", f"{path}: station {cfg.station.id}, {len(cfg.all_pumps())} pumps")


def config_db_path(config_path: str | Path, cfg: StationConfig) -> Path:
    """The database file the agent uses for this config (relative paths are relative to the config)."""
    p = Path(cfg.database.path)
    return p if p.is_absolute() else Path(config_path).resolve().parent / p


def _age(ms: int | None, now_ms: int) -> str:
    if ms is None:
        return ""
    s = max(0, (now_ms - int(ms)) // 1000)
    return f", oldest {s // 3600} h {s % 3600 // 60} min" if s >= 60 else f", oldest {s} s"


def check_database(path: str, *, now_ms: int | None = None, backlog_warn: int = 1000,
                   age_warn_s: int = 3600, open_fill_warn_s: int = 1800) -> list[CheckResult]:
    """Integrity, schema version, size (plus WAL) of the database, the outbox backlog, and fills left
    open for long (a pump the agent could not settle blocks that pump's next customer)."""
    from agent.store.migrations import SCHEMA_VERSION

    p = Path(path)
    if not p.exists():
        return [CheckResult("database", "FAIL", f"no database at {p}", "start the agent once to create it")]
    now = int(time.time() * 1000) if now_ms is None else now_ms
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
            try:  # fills still open long after their authorization: a pump the agent cannot settle
                stuck = conn.execute(
                    "SELECT pump_id, state, created_at_ms FROM fills WHERE state IN ('authorized', 'fuelling',"
                    " 'needs_reconciliation') AND created_at_ms < ? ORDER BY created_at_ms",
                    [now - open_fill_warn_s * 1000]).fetchall()
            except sqlite3.Error:
                stuck = []
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return [CheckResult("database", "FAIL", f"cannot open {p}: {exc}", "restore the latest backup")]
    wal = p.with_name(p.name + "-wal")
    size_mb = (p.stat().st_size + (wal.stat().st_size if wal.exists() else 0)) / 1e6
    if rows != ["ok"]:
        out.append(CheckResult("database", "FAIL", f"integrity check failed: {rows[:2]}",
                               "stop the agent, restore the latest backup, call support"))
    elif version > SCHEMA_VERSION:
        out.append(CheckResult("database", "FAIL",
                               f"schema v{version} is newer than this program (v{SCHEMA_VERSION})",
                               "install the newer forecourt package again, or restore a backup made by this version"))
    elif version < SCHEMA_VERSION:
        out.append(CheckResult("database", "WARN",
                               f"integrity ok, schema v{version} < v{SCHEMA_VERSION}, {mode}, {size_mb:.1f} MB",
                               "the agent migrates it at its next start (a backup is made on package upgrade)"))
    else:
        out.append(CheckResult("database", "OK", f"integrity ok, schema v{version}, {mode}, {size_mb:.1f} MB"))
    old = oldest is not None and (now - int(oldest)) > age_warn_s * 1000
    level = "OK" if parked == 0 and depth < backlog_warn and not old else "WARN"
    out.append(CheckResult("outbox", level, f"{depth} pending, {parked} parked{_age(oldest, now)}",
                           "" if level == "OK" else "check the center connection: `forecourt sync status`"))
    if stuck:
        what = ", ".join(f"pump {r[0]} {r[1]} for {(now - int(r[2])) // 60_000} min" for r in stuck[:5])
        out.append(CheckResult("open fills", "WARN", f"{len(stuck)} open for over {open_fill_warn_s // 60} min: {what}",
                               "check those pumps answer (doctor's pump lines); the agent settles each from the "
                               "meters once its pump is idle and answering"))
    else:
        out.append(CheckResult("open fills", "OK", "none left open"))
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
    """The running agent answers; which program and schema it runs, and whether that is this one."""
    from agent.version import PACKAGE_VERSION, VERSION

    try:
        with urllib.request.urlopen(url.rstrip("/") + "/health", timeout=3) as resp:  # noqa: S310
            body = json.load(resp)
    except (OSError, ValueError) as exc:
        return CheckResult("agent API", "FAIL", f"{url} not answering: {exc}",
                           "start the agent: systemctl start forecourt-agent")
    running = body.get("package") or body.get("version")
    detail = (f"{url}: {body.get('status')} (station {body.get('station_id')}, program {body.get('version')}"
              + (f", package {body.get('package')}" if body.get("package") else "")
              + f", schema v{body.get('schema_version')})")
    if isinstance(body.get("event_streams"), int):
        detail += f", {body['event_streams']} screen(s) connected"
    mine = PACKAGE_VERSION or VERSION
    if PACKAGE_VERSION and running != mine:
        return CheckResult("agent API", "WARN", f"{detail}; the installed program is {mine}",
                           "restart the agent onto the installed program: systemctl restart forecourt-agent")
    return CheckResult("agent API", "OK", detail)


# ------------------------------------------------------------------ certificates
def cert_not_after(path: str | Path) -> datetime | None:
    """The certificate's notAfter (UTC), or None when neither ``cryptography`` nor ``openssl`` is available.

    Raises ValueError when the file is not a PEM/DER certificate.
    """
    data = Path(path).read_bytes()
    try:  # optional: imported by name so the package stays an optional dependency
        x509: Any = importlib.import_module("cryptography.x509")
    except ImportError:
        x509 = None
    if x509 is not None:
        cert = x509.load_pem_x509_certificate(data) if b"-----BEGIN" in data else x509.load_der_x509_certificate(data)
        not_after: datetime = cert.not_valid_after_utc
        return not_after
    openssl = shutil.which("openssl")
    if openssl is None:
        return None
    form = "PEM" if b"-----BEGIN" in data else "DER"
    proc = subprocess.run([openssl, "x509", "-inform", form, "-noout", "-enddate"], input=data,
                          capture_output=True, timeout=10, check=False)
    text = proc.stdout.decode("ascii", "replace").strip()
    if proc.returncode != 0 or not text.startswith("notAfter="):
        raise ValueError(f"not a certificate: {proc.stderr.decode('ascii', 'replace').strip()[:120]}")
    return datetime.strptime(text.removeprefix("notAfter="), "%b %d %H:%M:%S %Y %Z").replace(tzinfo=UTC)


def check_certificate(label: str, path: str | Path, *, now: datetime | None = None,
                      warn_days: int = 30) -> CheckResult:
    """FAIL when missing, unreadable or expired; WARN within ``warn_days`` of expiry or when it cannot look."""
    name = f"certificate {label}"
    p = Path(path)
    if not p.exists():
        return CheckResult(name, "FAIL", f"{p} is missing", "run `forecourt setup` again with the certificate files")
    try:
        not_after = cert_not_after(p)
    except (OSError, ValueError) as exc:
        return CheckResult(name, "FAIL", f"{p}: {exc}", "replace it with the PEM file from the trade center")
    if not_after is None:
        return CheckResult(name, "WARN", f"{p}: cannot read the expiry date (no cryptography, no openssl)",
                           "apt-get install openssl")
    days = (not_after - (now or datetime.now(UTC))).total_seconds() / 86400
    when = not_after.strftime("%Y-%m-%d")
    if days < 0:
        return CheckResult(name, "FAIL", f"{p} expired on {when}", "ask the trade center for a new certificate")
    if days < warn_days:
        return CheckResult(name, "WARN", f"{p} expires on {when} ({days:.0f} days)",
                           "ask the trade center for a new certificate now")
    return CheckResult(name, "OK", f"{p} valid until {when} ({days:.0f} days)")


# ------------------------------------------------------------------ clock
def check_clock_skew(date_header: str | None, local: datetime, *, source: str = "center",
                     warn_s: float = 10.0, fail_s: float = 300.0) -> CheckResult:
    """Compare an HTTP ``Date`` header (1 s resolution) with the local clock at the time of the answer."""
    if not date_header:
        return CheckResult("clock", "WARN", f"{source} sent no Date header; skew unknown",
                           "check NTP: timedatectl status")
    try:
        remote = parsedate_to_datetime(date_header)
    except (TypeError, ValueError):
        return CheckResult("clock", "WARN", f"{source} sent an unreadable Date header {date_header!r}")
    if remote.tzinfo is None:
        remote = remote.replace(tzinfo=UTC)
    skew = (local - remote).total_seconds()
    text = f"local clock {skew:+.0f} s vs {source}"
    if abs(skew) >= fail_s:
        return CheckResult("clock", "FAIL", text, "set the time and enable NTP: timedatectl set-ntp true")
    if abs(skew) >= warn_s:
        return CheckResult("clock", "WARN", text, "enable NTP: timedatectl set-ntp true")
    return CheckResult("clock", "OK", text)


# ------------------------------------------------------------------ runner
def run_checks(*, config_path: str | None, db_path: str | None, api_url: str | None,
               probes: Sequence[Probe] = ()) -> list[CheckResult]:
    """Run every local check; then each probe with the parsed config (None if absent/invalid).

    Without ``db_path`` the database named in a valid config is checked.  ``probes`` are the
    network and bus checks supplied by the launcher.
    """
    from agent.config import ConfigError, load_config

    results: list[CheckResult] = []
    cfg: StationConfig | None = None
    if config_path:
        results.append(check_config(config_path))
        try:
            cfg = load_config(config_path)
        except ConfigError:
            cfg = None
    if not db_path and cfg is not None and config_path:
        db_path = str(config_db_path(config_path, cfg))
    if db_path:
        results.extend(check_database(db_path))
        parent = Path(db_path).resolve().parent
        results.append(check_disk(str(parent if parent.exists() else Path.cwd())))
    else:
        results.append(check_disk("."))
    if api_url:
        results.append(check_api(api_url))
    for probe in probes:
        try:
            results.extend(probe(cfg))
        except Exception as exc:  # a broken probe is a finding, not a crash of the whole report
            results.append(CheckResult(getattr(probe, "__name__", "probe"), "FAIL", f"check crashed: {exc!r}",
                                       "report this to support with the output above"))
    return results
