"""Connections, the single writer, integrity checks and online backup.

Every connection gets WAL, ``synchronous=FULL`` (a committed sale survives a
power cut), ``busy_timeout=5000`` and foreign keys.  All writes go through
``Store.write(fn)``: ``fn(db)`` runs on the one writer thread inside
``BEGIN IMMEDIATE … COMMIT``; the caller blocks until the commit is durable and
gets ``fn``'s result (or its exception, with the transaction rolled back).
Reads use a per-thread connection and short transactions.

Never hold a write transaction across serial, HTTP or MQTT I/O: ``fn`` must
only touch the database.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import sqlite_utils

log = logging.getLogger(__name__)

T = TypeVar("T")

__all__ = ["CorruptDatabase", "MigrationFailed", "SchemaTooNew", "Store", "StoreError", "backup", "connect"]


class StoreError(Exception):
    """Root of the store's errors."""


class CorruptDatabase(StoreError):
    """``PRAGMA integrity_check`` did not answer ``ok``."""


class SchemaTooNew(StoreError):
    """The database's ``user_version`` is newer than this program knows."""


class MigrationFailed(StoreError):
    """A migration step failed and was rolled back."""


PRAGMAS = ("journal_mode=WAL", "synchronous=FULL", "busy_timeout=5000", "foreign_keys=ON")


def connect(path: str | Path, *, check_same_thread: bool = True) -> sqlite3.Connection:
    """Open a connection with the product's pragmas; we issue BEGIN ourselves."""
    conn = sqlite3.connect(
        str(path), timeout=5.0, isolation_level=None, check_same_thread=check_same_thread
    )
    conn.row_factory = sqlite3.Row
    for p in PRAGMAS:
        conn.execute(f"PRAGMA {p}")
    return conn


def integrity_check(conn: sqlite3.Connection, *, quick: bool = False) -> list[str]:
    """Problems reported by SQLite; an empty list means the file is sound."""
    pragma = "quick_check" if quick else "integrity_check"
    try:
        rows = [r[0] for r in conn.execute(f"PRAGMA {pragma}").fetchall()]
    except sqlite3.DatabaseError as exc:
        return [str(exc)]
    return [] if rows == ["ok"] else rows


def backup(src_path: str | Path, dest_path: str | Path,
           progress: Callable[[int, int], None] | None = None) -> None:
    """Online backup with ``Connection.backup`` (safe in WAL mode), then verify the copy."""
    dest = Path(dest_path)
    if dest.exists():
        raise StoreError(f"backup target exists: {dest}")
    src = connect(src_path)
    try:
        dst = sqlite3.connect(str(dest))
        try:
            def _progress(status: int, remaining: int, total: int) -> None:
                if progress is not None:
                    progress(total - remaining, total)

            src.backup(dst, pages=64, progress=_progress)
            problems = integrity_check(dst)
        finally:
            dst.close()
    finally:
        src.close()
    if problems:
        dest.unlink(missing_ok=True)
        raise CorruptDatabase(f"backup copy failed its integrity check: {problems[:3]}")


def _corrupt_message(path: Path, problem: str) -> str:
    return (f"database {path} failed its integrity check ({problem}). The agent will not start on it. "
            "Restore the latest backup (made by `forecourt backup`) or call support; "
            "the file was left untouched.")


class _Job:
    __slots__ = ("fn", "future")

    def __init__(self, fn: Callable[[sqlite_utils.Database], Any]) -> None:
        self.fn = fn
        self.future: Future[Any] = Future()


class Store:
    """The database of one station: a writer thread plus per-thread readers.

    Opening checks integrity (``integrity_check`` after an unclean shutdown,
    ``quick_check`` otherwise) and applies pending migrations; a corrupt file
    raises ``CorruptDatabase`` and is never recreated.
    """

    def __init__(self, path: str | Path) -> None:
        from agent.store.migrations import migrate  # local: migrations import this module

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fresh = not self.path.exists()
        try:
            conn = connect(self.path, check_same_thread=False)
        except sqlite3.OperationalError as exc:
            raise StoreError(f"cannot open database {self.path}: {exc}") from exc
        except sqlite3.DatabaseError as exc:
            raise CorruptDatabase(_corrupt_message(self.path, str(exc))) from exc
        try:
            clean = fresh or self._was_clean(conn)
            problems = integrity_check(conn, quick=clean)
            if problems:
                raise CorruptDatabase(_corrupt_message(self.path, problems[0]))
            migrate(conn)
            conn.execute("CREATE TABLE IF NOT EXISTS agent_run (id INTEGER PRIMARY KEY CHECK (id = 1), clean INTEGER)")
            conn.execute("INSERT INTO agent_run(id, clean) VALUES (1, 0) "
                         "ON CONFLICT(id) DO UPDATE SET clean = 0")
        except sqlite3.OperationalError as exc:
            conn.close()
            raise StoreError(f"cannot open database {self.path}: {exc}") from exc
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise CorruptDatabase(_corrupt_message(self.path, str(exc))) from exc
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        self._db = sqlite_utils.Database(conn)
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="store-writer", daemon=True)
        self._thread.start()

    @staticmethod
    def _was_clean(conn: sqlite3.Connection) -> bool:
        try:
            row = conn.execute("SELECT clean FROM agent_run WHERE id = 1").fetchone()
        except sqlite3.DatabaseError:
            return False
        return bool(row and row[0])

    # ------------------------------------------------------------ writes
    def write(self, fn: Callable[[sqlite_utils.Database], T], *, timeout: float | None = 30.0) -> T:
        """Run ``fn(db)`` in one ``BEGIN IMMEDIATE`` transaction on the writer thread.

        Returns after COMMIT (durable with synchronous=FULL).  If ``fn`` or the
        commit raises, the transaction is rolled back and the error re-raised here.
        """
        if self._closed:
            raise StoreError("store is closed")
        job = _Job(fn)
        self._queue.put(job)
        result: T = job.future.result(timeout=timeout)
        return result

    def _run(self) -> None:
        conn = self._conn
        while True:
            job = self._queue.get()
            if job is None:
                return
            if not job.future.set_running_or_notify_cancel():
                continue
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    result = job.fn(self._db)
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            except BaseException as exc:
                job.future.set_exception(exc)
            else:
                job.future.set_result(result)

    # ------------------------------------------------------------ reads
    def reader(self) -> sqlite_utils.Database:
        """A read connection owned by the calling thread (autocommit: each query is short)."""
        db: sqlite_utils.Database | None = getattr(self._local, "db", None)
        if db is None:
            conn = connect(self.path, check_same_thread=False)
            conn.execute("PRAGMA query_only=ON")
            with self._readers_lock:
                self._readers.append(conn)
            db = sqlite_utils.Database(conn)
            self._local.db = db
        return db

    def query(self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> list[dict[str, Any]]:
        return [dict(r) for r in self.reader().execute(sql, params).fetchall()]

    def query_one(self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> dict[str, Any] | None:
        row = self.reader().execute(sql, params).fetchone()
        return dict(row) if row is not None else None

    # ------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """Drain the writer, checkpoint, mark the shutdown clean and close every connection."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._thread.join()
        try:
            self._conn.execute("UPDATE agent_run SET clean = 1 WHERE id = 1")
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as exc:  # a failing disk: keep closing
            log.warning("clean-shutdown mark failed: %s", exc)
        with self._readers_lock:
            for r in self._readers:
                r.close()
            self._readers.clear()
        self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
