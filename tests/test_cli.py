"""The console command as a user runs it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import main
from tests.conftest import ROOT, free_port

SUBCOMMANDS = ("agent", "demo", "config", "backup", "doctor", "sync", "sim", "proto", "setup", "ui", "report")


def test_help_lists_every_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as ex:
        main.main(["--help"])
    assert ex.value.code == 0
    out = capsys.readouterr().out
    for name in SUBCOMMANDS:
        assert re.search(rf"^\s+{name}\s", out, re.M), name


def test_readme_documents_every_subcommand_and_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name in SUBCOMMANDS:
        assert f"forecourt {name}" in readme, name
    assert "scripts/demo.sh" in readme
    assert "scripts/test.sh" in readme
    assert "bash scripts/test.sh" in (ROOT / ".ci" / "run").read_text()


def test_demo_headless_starts_and_answers_health(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.run(
        [sys.executable, "-m", "main", "demo", "--headless", "--run-for", "1", "--dir", str(tmp_path),
         "--port", str(port)],
        cwd=ROOT, capture_output=True, text=True, timeout=90,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert '"status": "ok"' in proc.stdout
    assert (tmp_path / "forecourt.db").exists()


def test_doctor_reports_ok_and_fail(tmp_path: Path, basic_config_file: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    from agent.store import Store

    db = tmp_path / "d.db"
    Store(db).close()
    assert main.main(["doctor", "--config", str(basic_config_file), "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "[OK  ] database: integrity ok" in out
    assert main.main(["doctor", "--db", str(tmp_path / "missing.db"),
                      "--api", f"http://127.0.0.1:{free_port()}"]) == 1
    out = capsys.readouterr().out
    assert "[FAIL] database" in out and "[FAIL] agent API" in out
