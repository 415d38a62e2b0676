from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

import main
from agent.store import CorruptDatabase, SchemaTooNew, Store, backup
from agent.store.migrations import SCHEMA_VERSION


def test_pragmas_on_every_connection(tmp_path: Path) -> None:
    with Store(tmp_path / "f.db") as store:
        r = store.reader()
        assert r.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert r.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert r.execute("PRAGMA busy_timeout").fetchone()[0] >= 5000
        assert r.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert store.write(lambda db: db.execute("PRAGMA synchronous").fetchone()[0]) == 2


def test_write_is_atomic_and_a_failure_changes_nothing(tmp_path: Path) -> None:
    with Store(tmp_path / "f.db") as store:
        def good(db: object) -> None:
            db.execute("INSERT INTO counters(name, value) VALUES ('a', 1)")  # type: ignore[attr-defined]

        def bad(db: object) -> None:
            db.execute("INSERT INTO counters(name, value) VALUES ('b', 1)")  # type: ignore[attr-defined]
            raise ValueError("boom")

        store.write(good)
        with pytest.raises(ValueError, match="boom"):
            store.write(bad)
        assert store.query("SELECT name FROM counters ORDER BY name") == [{"name": "a"}]


def test_writes_from_many_threads_are_serialised(tmp_path: Path) -> None:
    with Store(tmp_path / "f.db") as store:
        def bump(db: object) -> None:
            db.execute("INSERT INTO counters(name, value) VALUES ('n', 1) "  # type: ignore[attr-defined]
                       "ON CONFLICT(name) DO UPDATE SET value = value + 1")

        threads = [threading.Thread(target=lambda: [store.write(bump) for _ in range(50)]) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert store.query_one("SELECT value FROM counters WHERE name = 'n'") == {"value": 400}


def test_audit_log_is_immutable(tmp_path: Path) -> None:
    with Store(tmp_path / "f.db") as store:
        store.write(lambda db: db.execute(
            "INSERT INTO audit(at_ms, actor, action, target) VALUES (1, 'mgr', 'price_change', 'grade:92')"))
        with pytest.raises(sqlite3.IntegrityError, match="immutable"):
            store.write(lambda db: db.execute("UPDATE audit SET actor = 'x'"))
        with pytest.raises(sqlite3.IntegrityError, match="immutable"):
            store.write(lambda db: db.execute("DELETE FROM audit"))


def _corrupt(path: Path) -> None:
    data = bytearray(path.read_bytes())
    page = 4096
    # overwrite every page after the header page with garbage
    data[page:] = b"\x07" * (len(data) - page)
    path.write_bytes(bytes(data))


def test_corrupt_database_stops_the_agent_and_is_not_recreated(tmp_path: Path) -> None:
    db = tmp_path / "f.db"
    with Store(db) as store:
        store.write(lambda d: d.execute("INSERT INTO counters(name, value) VALUES ('x', 1)"))
    _corrupt(db)
    before = db.read_bytes()
    with pytest.raises(CorruptDatabase, match="integrity check"):
        Store(db)
    assert db.read_bytes() == before  # left untouched for the technician


def test_agent_exits_3_with_a_clear_message_on_corruption(
    tmp_path: Path, basic_config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "forecourt.db"
    Store(db).close()
    _corrupt(db)
    assert main.main(["agent", "--config", str(basic_config_file), "--no-pumps"]) == 3
    assert "integrity check" in capsys.readouterr().err


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "f.db"
    Store(db).close()
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(SchemaTooNew, match="newer"):
        Store(db)


def test_online_backup_while_writing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "f.db"
    with Store(db) as store:
        for i in range(200):
            store.write(lambda d, i=i: d.execute("INSERT INTO counters(name, value) VALUES (?, ?)", [f"k{i}", i]))
        out = tmp_path / "b.db"
        backup(db, out)
        copy = sqlite3.connect(out)
        assert copy.execute("SELECT COUNT(*) FROM counters").fetchone()[0] == 200
        copy.close()
        assert main.main(["backup", "--db", str(db), "--out", str(tmp_path / "c.db")]) == 0
        assert "verified" in capsys.readouterr().out
        assert main.main(["backup", "--db", str(db), "--out", str(tmp_path / "c.db")]) == 1  # never overwrites
