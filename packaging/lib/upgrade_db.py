#!/usr/bin/env python3
"""Package upgrade step for the station database: back up, migrate, roll back on failure.

Run by ``postinst`` with the *new* package's Python environment, while the agent is stopped::

    upgrade_db.py --db /var/lib/forecourt/forecourt.db --backup-dir /var/lib/forecourt/backups --label 0.1.0-1

1. no database yet, or already at this program's schema version → nothing to do (exit 0);
2. a newer schema than this program knows → exit 12, nothing touched (downgrade refused); a corrupt
   file → exit 11, nothing touched;
3. integrity check, then an online, verified backup (the same ``agent.store.backup`` as
   ``forecourt backup``) to ``<backup-dir>/forecourt-before-<label>-<UTC time>.db``;
4. ``migrate`` (each step its own transaction); on any error the database file is replaced by the
   backup (``-wal``/``-shm`` removed first) and the exit code is 10 — postinst then switches back to
   the previous Python environment so the old program runs on the old schema.

Limits: needs the agent stopped (the rollback replaces the file); keeps the newest ``--keep`` backups.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

#: Distinct from 1 (an uncaught Python error) so postinst only swaps programs after a real rollback.
EXIT_OK, EXIT_ROLLED_BACK, EXIT_CORRUPT, EXIT_TOO_NEW = 0, 10, 11, 12


def _restore(backup_file: Path, db: Path) -> None:
    tmp = db.with_name(db.name + ".restore")
    shutil.copyfile(backup_file, tmp)
    with tmp.open("rb+") as f:
        os.fsync(f.fileno())
    for suffix in ("-wal", "-shm"):
        db.with_name(db.name + suffix).unlink(missing_ok=True)
    os.replace(tmp, db)
    dfd = os.open(db.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def upgrade(db: Path, backup_dir: Path, label: str, *, keep: int = 5,
            migrate_fn: Callable[..., int] | None = None, say: Callable[[str], None] = print) -> int:
    from agent.store.db import backup, connect, integrity_check
    from agent.store.migrations import SCHEMA_VERSION, migrate

    migrate_fn = migrate_fn or migrate
    if not db.exists():
        say(f"upgrade-db: no database at {db} yet; nothing to migrate")
        return EXIT_OK
    conn = connect(db)
    try:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            say(f"upgrade-db: {db} has schema v{version}, newer than this package (v{SCHEMA_VERSION}); refused")
            return EXIT_TOO_NEW
        if version == SCHEMA_VERSION:
            say(f"upgrade-db: {db} already at schema v{version}")
            return EXIT_OK
        problems = integrity_check(conn)
        if problems:
            say(f"upgrade-db: {db} fails its integrity check ({problems[0]}); not migrating. "
                "Restore a backup with the agent stopped, then reinstall.")
            return EXIT_CORRUPT
    finally:
        conn.close()
    backup_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    safe = "".join(c if c.isalnum() or c in ".-_" else "_" for c in label)
    stem = f"forecourt-before-{safe}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
    dest = backup_dir / f"{stem}.db"
    n = 1
    while dest.exists():
        n += 1
        dest = backup_dir / f"{stem}-{n}.db"
    backup(db, dest)
    say(f"upgrade-db: backup of schema v{version} written and verified: {dest}")
    conn = connect(db)
    try:
        new = migrate_fn(conn)
    except Exception as exc:
        conn.close()
        _restore(dest, db)
        say(f"upgrade-db: migration from v{version} failed ({exc}); database restored from {dest}")
        return EXIT_ROLLED_BACK
    conn.close()
    say(f"upgrade-db: migrated {db} v{version} → v{new}")
    old = sorted(backup_dir.glob("forecourt-before-*.db"))
    for stale in old[:-keep] if keep > 0 else []:
        stale.unlink(missing_ok=True)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="upgrade_db.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--db", required=True)
    p.add_argument("--backup-dir", required=True)
    p.add_argument("--label", default="upgrade", help="old package version, used in the backup's name")
    p.add_argument("--keep", type=int, default=5, help="pre-upgrade backups to keep")
    a = p.parse_args(argv)
    return upgrade(Path(a.db), Path(a.backup_dir), a.label, keep=a.keep)


if __name__ == "__main__":
    sys.exit(main())
