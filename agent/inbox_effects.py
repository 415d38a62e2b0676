"""Domain effects of commands from the trade center, applied inside the inbox transaction.

``sync/`` parses and validates the wire message, dedups it in the ``inbox`` table, and calls one
of these functions with plain domain values *in the same* ``Store.write`` transaction, so the
inbox row and the effect commit together (or not at all).  Each returns a small result dict that
is stored as the inbox row's result, and never does I/O beyond the given ``db``.

Limits: these record the center's instruction; acting on pumps (authorizing a released mobile
order, programming a new price set) is the pump controller's job, prompted by the bus events the
caller publishes after the commit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import sqlite_utils

from agent.store.records import add_audit

__all__ = ["MobileRelease", "apply_config", "apply_price_set", "cancel_mobile_order", "release_mobile_order"]


@dataclass(frozen=True)
class MobileRelease:
    """一键加油: the center released a paid/authorized order to a nozzle, up to an amount."""

    order_id: str
    command_id: str
    nozzle: int
    grade: str
    max_amount_fen: int
    paid_fen: int
    expires_at_ms: int | None


def release_mobile_order(db: sqlite_utils.Database, rel: MobileRelease, now_ms: int) -> dict[str, Any]:
    """Record the release once per order id (another command for the same order changes nothing)."""
    row = db.execute("SELECT state FROM mobile_orders WHERE order_id = ?", [rel.order_id]).fetchone()
    if row is not None:
        return {"status": "already_known", "order_id": rel.order_id, "state": row[0]}
    db.execute(
        "INSERT INTO mobile_orders(order_id, command_id, nozzle, grade, max_amount_fen, paid_fen, state,"
        " expires_at_ms, created_at_ms, updated_at_ms) VALUES (?, ?, ?, ?, ?, ?, 'released', ?, ?, ?)",
        [rel.order_id, rel.command_id, rel.nozzle, rel.grade, rel.max_amount_fen, rel.paid_fen,
         rel.expires_at_ms, now_ms, now_ms])
    add_audit(db, at_ms=now_ms, actor="center", action="mobile_order.release", target=rel.order_id,
              after={"nozzle": rel.nozzle, "grade": rel.grade, "max_amount_fen": rel.max_amount_fen})
    return {"status": "released", "order_id": rel.order_id}


def cancel_mobile_order(db: sqlite_utils.Database, order_id: str, now_ms: int) -> dict[str, Any]:
    """Cancel a released mobile order; refused once fuelling started (BRIEF flow 3)."""
    row = db.execute("SELECT state FROM mobile_orders WHERE order_id = ?", [order_id]).fetchone()
    if row is None:
        return {"status": "unknown_order", "order_id": order_id}
    if row[0] == "cancelled":
        return {"status": "cancelled", "order_id": order_id}
    if row[0] != "released":
        return {"status": "refused", "order_id": order_id, "state": row[0],
                "reason": "fuelling already started"}
    db.execute("UPDATE mobile_orders SET state = 'cancelled', updated_at_ms = ? WHERE order_id = ?",
               [now_ms, order_id])
    add_audit(db, at_ms=now_ms, actor="center", action="mobile_order.cancel", target=order_id)
    return {"status": "cancelled", "order_id": order_id}


def apply_config(db: sqlite_utils.Database, name: str, version: int, data: dict[str, Any],
                 now_ms: int) -> dict[str, Any]:
    """Store a versioned config document; only a version above the applied one is taken."""
    row = db.execute("SELECT version FROM config_versions WHERE name = ?", [name]).fetchone()
    if row is not None and int(row[0]) >= version:
        return {"status": "stale", "name": name, "version": version, "applied_version": int(row[0])}
    db.execute("INSERT INTO config_versions(name, version, payload, applied_at_ms) VALUES (?, ?, ?, ?) "
               "ON CONFLICT(name) DO UPDATE SET version = excluded.version, payload = excluded.payload,"
               " applied_at_ms = excluded.applied_at_ms",
               [name, version, json.dumps(data, ensure_ascii=False, sort_keys=True), now_ms])
    return {"status": "applied", "name": name, "version": version}


def apply_price_set(db: sqlite_utils.Database, version: int, prices_fen: dict[str, int],
                    effective_at_ms: int, now_ms: int) -> dict[str, Any]:
    """Add the center's price set as a new version if it is newer than every stored one.

    Prices of grades not named keep their last value.  Pumps pick it up when idle (``PriceBook``).
    """
    row = db.execute("SELECT version, prices FROM price_sets ORDER BY version DESC LIMIT 1").fetchone()
    if row is not None and int(row[0]) >= version:
        return {"status": "stale", "version": version, "applied_version": int(row[0])}
    old: dict[str, int] = dict(json.loads(row[1])) if row is not None else {}
    new = {**old, **prices_fen}
    db.execute("INSERT INTO price_sets(version, prices, source, effective_at_ms, created_at_ms) "
               "VALUES (?, ?, 'center', ?, ?)", [version, json.dumps(new), effective_at_ms, now_ms])
    add_audit(db, at_ms=now_ms, actor="center", action="price.change", target="price_set",
              before={"version": int(row[0]) if row is not None else 0, "prices_fen": old},
              after={"version": version, "prices_fen": new})
    return {"status": "applied", "version": version, "prices_fen": new}
