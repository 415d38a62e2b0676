"""The agent's SQLite store: one file, WAL, synchronous=FULL, one writer thread.

Error tree::

    StoreError
     ├── CorruptDatabase     integrity check failed: the agent refuses to start
     ├── SchemaTooNew        the file was written by a newer version: refused
     └── MigrationFailed     a migration step raised; the database is unchanged
"""

from __future__ import annotations

from agent.store.db import (
    CorruptDatabase,
    MigrationFailed,
    SchemaTooNew,
    Store,
    StoreError,
    backup,
    connect,
)

__all__ = ["CorruptDatabase", "MigrationFailed", "SchemaTooNew", "Store", "StoreError", "backup", "connect"]
