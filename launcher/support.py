"""``forecourt support-bundle``: one file a technician sends to support, with no secrets and no sales data.

    sudo forecourt support-bundle [--config /etc/forecourt/station.toml] [--out DIR] [--journal-lines N]

Writes ``<out>/forecourt-support-<station>-<UTC time>.tar.gz`` (0600) holding:

* ``doctor.txt`` — the full ``forecourt doctor`` report (the same checks, network and pumps included);
* ``station.toml`` — the config with every secret replaced by ``"<redacted>"`` (API token, PINs,
  token hashes, passwords); file paths stay, the certificate and key files themselves are not taken;
* ``versions.txt`` — program, package (dpkg status), Python, OS, kernel, the venvs on disk;
* ``database.txt`` — integrity, schema version, size, journal mode, outbox states, row counts per
  table: never a row (the database holds sales, members and payment references);
* ``backups.txt`` — the backups next to the database, with sizes and times;
* ``journal.txt`` — the last ``--journal-lines`` lines of ``journalctl -u forecourt-agent`` (when
  journald is there), with anything that looks like a bearer token masked.

Each step is printed as it runs (a slow center or bus makes the doctor step take seconds).  Exit 0
with the bundle's path on stdout; 2 when the output directory cannot be written.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import re
import shutil
import sqlite3
import subprocess
import sys
import tarfile
import time
from contextlib import redirect_stdout
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agent.config import StationConfig

__all__ = ["add_arguments", "bundle", "redact_config", "run"]

DEFAULT_CONFIG = "/etc/forecourt/station.toml"
#: TOML keys whose values are secrets, wherever they appear (the API token, cashier PINs, terminal
#: token hashes, any password or secret a later section adds).
SECRET_KEYS = re.compile(r"^(\s*(?:token|pin|token_sha256|password|secret|[a-z_]*_password|[a-z_]*_secret)\s*=\s*)"
                         r"(\"[^\"\n]*\"|'[^'\n]*'|[^\s#\n]+)", re.MULTILINE)
INLINE_SECRETS = re.compile(r"((?:token|pin|token_sha256|password|secret)\s*=\s*)(\"[^\"\n]*\"|'[^'\n]*')")
BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}")


def redact_config(text: str) -> str:
    """The config text with every secret value replaced (line keys and inline-table keys)."""
    text = SECRET_KEYS.sub(lambda m: m.group(1) + '"<redacted>"', text)
    return INLINE_SECRETS.sub(lambda m: m.group(1) + '"<redacted>"', text)


def _run(cmd: list[str], timeout: float = 30.0) -> str:
    if shutil.which(cmd[0]) is None:
        return f"({cmd[0]} not available)\n"
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"({' '.join(cmd)}: {exc})\n"
    return proc.stdout + (f"\n(stderr) {proc.stderr}" if proc.stderr.strip() else "")


def _doctor(config: Path | None, api: str | None, cfg: StationConfig | None) -> str:
    from launcher import doctor_checks

    if api is None and cfg is not None:  # the agent of this config, to ask it what runs
        api = doctor_checks.api_base(cfg, None)
    out = io.StringIO()
    with redirect_stdout(out):
        rc = doctor_checks.run(argparse.Namespace(config=str(config) if config else None, db=None, api=api,
                                                  no_network=False, no_pumps=False))
    return out.getvalue() + f"(doctor exit code {rc})\n"


def _versions() -> str:
    from agent.store.migrations import SCHEMA_VERSION
    from agent.version import PACKAGE_VERSION, VERSION

    lines = [f"program: forecourt {VERSION}", f"package (this venv): {PACKAGE_VERSION or '-'}",
             f"schema this program writes: v{SCHEMA_VERSION}", f"python: {sys.version.split()[0]} ({sys.prefix})",
             f"platform: {platform.platform()} {platform.machine()}"]
    osr = Path("/etc/os-release")
    if osr.exists():
        pretty = [ln.split("=", 1)[1].strip('"') for ln in osr.read_text().splitlines()
                  if ln.startswith("PRETTY_NAME=")]
        lines += [f"os: {pretty[0] if pretty else '?'}"]
    venvs = Path("/opt/forecourt/venvs")
    if venvs.is_dir():
        current = os.path.realpath("/opt/forecourt/venv")
        lines += [f"venv on disk: {d.name}{' (in use)' if str(d) == current else ''}" for d in sorted(venvs.iterdir())]
    lines += ["", "dpkg:", _run(["dpkg-query", "-W", "-f", "${Package} ${Version} ${Status}\n", "forecourt"]).rstrip()]
    return "\n".join(lines) + "\n"


def _database(db: Path) -> str:
    if not db.exists():
        return f"no database at {db}\n"
    wal = db.with_name(db.name + "-wal")
    lines = [f"path: {db}", f"size: {db.stat().st_size} bytes, wal {wal.stat().st_size if wal.exists() else 0} bytes"]
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            lines.append(f"integrity_check: {[r[0] for r in conn.execute('PRAGMA integrity_check').fetchall()][:5]}")
            lines.append(f"user_version (schema): {conn.execute('PRAGMA user_version').fetchone()[0]}")
            lines.append(f"journal_mode: {conn.execute('PRAGMA journal_mode').fetchone()[0]}")
            tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
            lines.append("rows per table (counts only):")
            for t in tables:
                n = conn.execute(f'SELECT COUNT(*) FROM "{t}"').fetchone()[0]  # noqa: S608 - names from sqlite_master
                lines.append(f"  {t}: {n}")
            if "outbox" in tables:
                lines.append("outbox by state:")
                for state, n, oldest in conn.execute(
                        "SELECT state, COUNT(*), MIN(created_at_ms) FROM outbox GROUP BY state ORDER BY state"):
                    age = f", oldest {int(time.time() - oldest / 1000)} s ago" if oldest else ""
                    lines.append(f"  {state}: {n}{age}")
        finally:
            conn.close()
    except sqlite3.Error as exc:
        lines.append(f"cannot read: {exc}")
    return "\n".join(lines) + "\n"


def _backups(db: Path) -> str:
    d = db.parent / "backups"
    if not d.is_dir():
        return f"no backup directory at {d}\n"
    rows = [f"{p.name}  {p.stat().st_size} bytes  {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(p.stat().st_mtime))}Z"
            for p in sorted(d.iterdir()) if p.is_file()]
    return "\n".join(rows or ["(none)"]) + "\n"


def bundle(config: Path | None, out_dir: Path, *, journal_lines: int = 2000, api: str | None = None,
           say: object = print) -> Path:
    """Build the bundle; returns its path.  ``say`` gets one line per step."""
    from agent.config import ConfigError, load_config
    from agent.doctor import config_db_path

    tell = say if callable(say) else print
    cfg = None
    if config is not None and config.exists():
        try:
            cfg = load_config(config)
        except ConfigError:
            cfg = None
    station = cfg.station.id if cfg else "unknown"
    db = config_db_path(config, cfg) if (cfg and config) else Path("/var/lib/forecourt/forecourt.db")
    parts: list[tuple[str, str]] = []
    steps = [("doctor.txt", "running the doctor", lambda: _doctor(config, api, cfg)),
             ("station.toml", "copying the config (secrets redacted)",
              lambda: redact_config(config.read_text(encoding="utf-8", errors="replace"))
              if config and config.exists() else "(no config file)\n"),
             ("versions.txt", "versions", _versions),
             ("database.txt", "database summary (no rows)", lambda: _database(db)),
             ("backups.txt", "backups", lambda: _backups(db)),
             ("journal.txt", f"last {journal_lines} journal lines",
              lambda: BEARER.sub(r"\1<redacted>", _run(["journalctl", "-u", "forecourt-agent", "-n",
                                                         str(journal_lines), "--no-pager", "-o", "short-iso"])))]
    for i, (name, what, make) in enumerate(steps, 1):
        tell(f"[{i}/{len(steps)}] {what}")
        try:
            parts.append((name, make()))
        except Exception as exc:  # a failing part is reported inside the bundle, never aborts it
            parts.append((name, f"(could not collect: {exc!r})\n"))
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    safe = re.sub(r"[^A-Za-z0-9_-]", "_", station)
    target = out_dir / f"forecourt-support-{safe}-{stamp}.tar.gz"
    tmp = target.with_suffix(".part")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
        for name, text in parts:
            data = text.encode("utf-8")
            info = tarfile.TarInfo(f"forecourt-support-{safe}-{stamp}/{name}")
            info.size, info.mtime, info.mode = len(data), int(time.time()), 0o600
            tar.addfile(info, io.BytesIO(data))
    os.replace(tmp, target)
    return target


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help=f"station config (default {DEFAULT_CONFIG} when it exists)")
    parser.add_argument("--out", default=".", help="directory for the bundle (default: the current one)")
    parser.add_argument("--api", help="local API URL of a running agent (default: from the config)")
    parser.add_argument("--journal-lines", type=int, default=2000, help="journal lines to include (default 2000)")


def run(args: argparse.Namespace) -> int:
    config = Path(args.config) if args.config else (Path(DEFAULT_CONFIG) if Path(DEFAULT_CONFIG).exists() else None)
    out = Path(args.out)
    if not out.is_dir() or not os.access(out, os.W_OK):
        print(f"support-bundle: cannot write to {out}", file=sys.stderr)
        return 2
    path = bundle(config, out, journal_lines=args.journal_lines, api=args.api,
                  say=lambda m: print(m, file=sys.stderr, flush=True))
    print(path)
    return 0
