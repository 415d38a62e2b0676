"""Row-level writes and reads shared by the services: outbox, audit, counters.

Every function taking ``db`` runs inside the caller's ``Store.write``
transaction, so a fact and its outbox row commit together or not at all.
"""

from __future__ import annotations

import json
from typing import Any

import sqlite_utils

__all__ = ["add_audit", "enqueue", "next_counter", "outbox_status"]


def next_counter(db: sqlite_utils.Database, name: str) -> int:
    """Increment and return a named counter (receipt numbers), inside the caller's transaction."""
    db.execute(
        "INSERT INTO counters(name, value) VALUES (?, 1) "
        "ON CONFLICT(name) DO UPDATE SET value = value + 1",
        [name],
    )
    row = db.execute("SELECT value FROM counters WHERE name = ?", [name]).fetchone()
    return int(row[0])


def enqueue(
    db: sqlite_utils.Database,
    *,
    event_id: str,
    aggregate: str,
    aggregate_id: str,
    kind: str,
    payload: dict[str, Any],
    now_ms: int,
) -> None:
    """Add a message for the center to the outbox; a repeated ``event_id`` is ignored."""
    db.execute(
        "INSERT INTO outbox(event_id, aggregate, aggregate_id, kind, payload, created_at_ms) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(event_id) DO NOTHING",
        [event_id, aggregate, aggregate_id, kind, json.dumps(payload, ensure_ascii=False, sort_keys=True), now_ms],
    )


def add_audit(
    db: sqlite_utils.Database,
    *,
    at_ms: int,
    actor: str,
    action: str,
    target: str,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    db.execute(
        "INSERT INTO audit(at_ms, actor, action, target, before, after) VALUES (?, ?, ?, ?, ?, ?)",
        [at_ms, actor, action, target, json.dumps(before or {}, ensure_ascii=False),
         json.dumps(after or {}, ensure_ascii=False)],
    )


def outbox_status(db: sqlite_utils.Database, now_ms: int) -> dict[str, Any]:
    """Depth, age of the oldest pending message, parked count and last success."""
    pending = db.execute(
        "SELECT COUNT(*), MIN(created_at_ms) FROM outbox WHERE state = 'pending'"
    ).fetchone()
    parked = db.execute("SELECT COUNT(*) FROM outbox WHERE state = 'parked'").fetchone()
    last = db.execute("SELECT MAX(confirmed_at_ms) FROM outbox WHERE state = 'confirmed'").fetchone()
    return {
        "depth": int(pending[0]),
        "oldest_age_s": (now_ms - int(pending[1])) // 1000 if pending[1] is not None else None,
        "parked": int(parked[0]),
        "last_success_ms": int(last[0]) if last[0] is not None else None,
    }
