"""Cashiers: PIN login, roles, sessions; supervisor approval for sensitive actions.

PINs are stored only as salted PBKDF2-SHA256 hashes.  A login returns a random
session token (stored hashed); API calls made with it act as that cashier
with that cashier's role.  Roles are ordered: cashier < supervisor < manager.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any

import sqlite_utils

from agent.errors import Forbidden, InvalidRequest, Unauthorized
from agent.store import Store
from agent.store.records import add_audit

__all__ = ["ROLES", "CashierService", "hash_pin", "verify_pin"]

ROLES = {"cashier": 1, "supervisor": 2, "manager": 3, "station": 4}
_ITER = 60_000


def hash_pin(pin: str, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", pin.encode(), salt, _ITER)
    return f"pbkdf2_sha256${_ITER}${salt.hex()}${digest.hex()}"


def verify_pin(pin: str, stored: str) -> bool:
    try:
        _, iters, salt_hex, digest_hex = stored.split("$")
        digest = hashlib.pbkdf2_hmac("sha256", pin.encode(), bytes.fromhex(salt_hex), int(iters))
    except ValueError:
        return False
    return hmac.compare_digest(digest.hex(), digest_hex)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class CashierService:
    def __init__(self, store: Store, clock: Any) -> None:
        self._store = store
        self._clock = clock

    def bootstrap(self, accounts: list[Any]) -> None:
        """Create config-listed accounts that do not exist yet (PINs changed later stay changed)."""
        def tx(db: sqlite_utils.Database) -> None:
            for a in accounts:
                if db.execute("SELECT 1 FROM cashiers WHERE cashier_id = ?", [a.id]).fetchone() is None:
                    db.execute("INSERT INTO cashiers(cashier_id, name, role, pin_hash) VALUES (?, ?, ?, ?)",
                               [a.id, a.name, a.role, hash_pin(a.pin)])

        if accounts:
            self._store.write(tx)

    def _check(self, cashier_id: str, pin: str) -> dict[str, Any]:
        row = self._store.query_one("SELECT * FROM cashiers WHERE cashier_id = ? AND active = 1", (cashier_id,))
        if row is None or not verify_pin(pin, row["pin_hash"]):
            raise Unauthorized("wrong cashier id or PIN", code="bad_pin")
        return row

    def login(self, cashier_id: str, pin: str) -> dict[str, Any]:
        row = self._check(cashier_id, pin)
        token = secrets.token_urlsafe(24)
        now = self._clock.now_ms()

        def tx(db: sqlite_utils.Database) -> None:
            db.execute("INSERT INTO sessions(token_hash, cashier_id, created_at_ms) VALUES (?, ?, ?)",
                       [_token_hash(token), cashier_id, now])
            add_audit(db, at_ms=now, actor=cashier_id, action="cashier.login", target=f"cashier:{cashier_id}")

        self._store.write(tx)
        return {"token": token, "cashier_id": cashier_id, "name": row["name"], "role": row["role"]}

    def logout(self, token: str) -> None:
        now = self._clock.now_ms()
        self._store.write(lambda db: db.execute(
            "UPDATE sessions SET ended_at_ms = ? WHERE token_hash = ? AND ended_at_ms IS NULL",
            [now, _token_hash(token)]))

    def session(self, token: str) -> dict[str, Any] | None:
        return self._store.query_one(
            "SELECT c.cashier_id, c.name, c.role FROM sessions s JOIN cashiers c USING (cashier_id)"
            " WHERE s.token_hash = ? AND s.ended_at_ms IS NULL AND c.active = 1", (_token_hash(token),))

    def approve(self, supervisor_id: str | None, pin: str | None, *, min_role: str = "supervisor") -> str:
        """A supervisor's (or manager's) PIN for a sensitive action; returns who approved."""
        if not supervisor_id or not pin:
            raise InvalidRequest("this needs a supervisor's id and PIN", code="supervisor_required")
        row = self._check(supervisor_id, pin)
        if ROLES[row["role"]] < ROLES[min_role]:
            raise Forbidden(f"{supervisor_id} is a {row['role']}: a {min_role} must approve", code="role")
        return str(row["cashier_id"])

    def list(self) -> list[dict[str, Any]]:
        return self._store.query("SELECT cashier_id, name, role, active FROM cashiers ORDER BY cashier_id")
