"""Database snapshots for "a rejected input changes nothing" checks, and a canary scanner.

``db_digest(path, skip=...)`` hashes every row of every table (read-only connection, WAL
included) so two digests differ iff some table changed.  ``scan_for(paths, needles)`` reports
which files contain which byte strings (database, ``-wal``, ``-shm``, logs), for the
sensitive-data canary tests.

Limits: a digest is only meaningful when nothing else writes between the two snapshots (pass the
tables that background threads touch in ``skip``); ``scan_for`` reads whole files into memory.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterable
from pathlib import Path

__all__ = ["db_digest", "scan_for"]


def db_digest(path: Path, *, skip: Iterable[str] = ()) -> dict[str, str]:
    """Table name → SHA-256 of its rows in rowid order (tables in ``skip`` left out)."""
    skipped = set(skip)
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"
                                            " AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        out = {}
        for name in names:
            if name in skipped:
                continue
            h = hashlib.sha256()
            for row in conn.execute(f'SELECT * FROM "{name}"'):  # noqa: S608 - names come from sqlite_master
                h.update(repr(row).encode())
            out[name] = h.hexdigest()
        return out
    finally:
        conn.close()


def scan_for(paths: Iterable[Path], needles: Iterable[str]) -> dict[str, list[str]]:
    """Needle → the files (of ``paths`` that exist) containing it, as UTF-8 or UTF-16-LE bytes."""
    found: dict[str, list[str]] = {}
    files = [p for p in paths if p.exists() and p.is_file()]
    blobs = {p: p.read_bytes() for p in files}
    for n in needles:
        forms = (n.encode("utf-8"), n.encode("utf-16-le"))
        hits = [str(p) for p, b in blobs.items() if any(f in b for f in forms)]
        if hits:
            found[n] = hits
    return found
