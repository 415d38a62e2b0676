from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from agent.store import MigrationFailed, Store, connect
from agent.store import migrations as mig

# Sample rows per table, inserted into a database left at an older version, that must survive upgrades.
SAMPLES: dict[str, str] = {
    "counters": "INSERT INTO counters(name, value) VALUES ('receipt:20260101', 7)",
    "fills": "INSERT INTO fills(fill_id, pump_id, state, volume_ml, amount_fen, created_at_ms)"
             " VALUES ('f1', 1, 'finished', 10000, 7890, 1)",
    "orders": "INSERT INTO orders(order_id, receipt_no, state, total_fen, payable_fen, created_at_ms,"
              " updated_at_ms) VALUES ('o1', 'R1', 'init', 7890, 7890, 1, 1)",
    "outbox": "INSERT INTO outbox(event_id, aggregate, aggregate_id, kind, payload, created_at_ms)"
              " VALUES ('e1', 'order', 'o1', 'order.created', '{}', 1)",
    "payments": "INSERT INTO payments(payment_id, order_id, leg_no, tender, amount_fen, state, created_at_ms,"
                " updated_at_ms) VALUES ('p1', 'o1', 1, 'cash', 7890, 'confirmed', 1, 1)",
    "shifts": "INSERT INTO shifts(shift_id, cashier, state, opened_at_ms) VALUES ('s1', 'c1', 'open', 1)",
    "members": "INSERT INTO members(member_id, name, updated_at_ms) VALUES ('m1', '张三', 1)",
    "invoices": "INSERT INTO invoices(order_id, state, invoice_no, title, amount_fen, actor, created_at_ms)"
                " VALUES ('o1', 'issued', 'FP1', '个人', 7890, 'c01', 1)",
}


def _tables(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_from_empty_database(tmp_path: Path) -> None:
    conn = connect(tmp_path / "f.db")
    assert mig.migrate(conn) == mig.SCHEMA_VERSION
    assert set(SAMPLES) <= _tables(conn)
    assert mig.migrate(conn) == mig.SCHEMA_VERSION  # idempotent
    conn.close()


@pytest.mark.parametrize("start", range(mig.SCHEMA_VERSION))
def test_upgrade_from_every_earlier_version_keeps_data(tmp_path: Path, start: int) -> None:
    db = tmp_path / "f.db"
    conn = connect(db)
    mig.migrate(conn, target=start)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == start
    present = _tables(conn)
    inserted = [t for t in SAMPLES if t in present]
    for t in inserted:
        conn.execute(SAMPLES[t])
    conn.close()

    with Store(db) as store:  # the agent's own start path upgrades it
        r = store.reader()
        assert r.execute("PRAGMA user_version").fetchone()[0] == mig.SCHEMA_VERSION
        assert r.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert r.execute("PRAGMA foreign_key_check").fetchall() == []
        for t in inserted:
            assert r.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] == 1, t  # noqa: S608


def test_failing_step_rolls_back_and_keeps_the_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "f.db"
    conn = connect(db)
    mig.migrate(conn, target=1)

    def broken(c: sqlite3.Connection) -> None:
        c.execute("CREATE TABLE half_done (x INTEGER)")
        raise RuntimeError("disk says no")

    monkeypatch.setattr(mig, "MIGRATIONS", (mig.MIGRATIONS[0], broken))
    monkeypatch.setattr(mig, "SCHEMA_VERSION", 2)
    with pytest.raises(MigrationFailed, match="version 2"):
        mig.migrate(conn, target=2)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    assert "half_done" not in _tables(conn)
    conn.close()
