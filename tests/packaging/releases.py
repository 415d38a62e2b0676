"""Build "future" releases of the package for upgrade tests: this tree, a new version, extra migrations.

``build_release(out, "0.1.1", steps=[GOOD_EXPAND])`` copies the source tree (no tests, no caches),
sets ``[project] version``, appends the given migration steps after the shipped ones in
``agent/store/migrations.py`` exactly as a developer would add a step, and runs that copy's own
``packaging/build_deb.py`` with the dependency wheels repacked from this checkout's ``.venv``
(cached in ``build/wheels``).  The result is a real ``forecourt_<version>-1_<arch>.deb``.

The planted steps have neutral names: appended after the shipped ones, they take the schema from
``SCHEMA_VERSION`` to ``SCHEMA_VERSION + 1``, ``+ 2``, … whatever the current version is.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import ROOT

#: Top-level entries never copied into a release source tree.
SKIP_TOP = {".git", ".venv", "build", "dist", "tests", "bench", "docs", ".ci"}
SKIP_ANY = {"__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache", ".hypothesis"}


@dataclass(frozen=True)
class Step:
    """A migration step: its function name and source (a ``def`` taking the connection)."""

    name: str
    source: str


#: Expand-only, like every real step: a column on orders, backfilled from the existing rows.
GOOD_EXPAND = Step("_planted_order_channel", '''
def _planted_order_channel(c: sqlite3.Connection) -> None:
    """Which channel sold the order (backfilled: everything before this release was the till)."""
    c.execute("ALTER TABLE orders ADD COLUMN channel TEXT")
    c.execute("UPDATE orders SET channel = 'till'")
''')

#: Commits on its own (a new table with rows) before the next step fails.
GOOD_COMMITS = Step("_planted_order_marks", '''
def _planted_order_marks(c: sqlite3.Connection) -> None:
    c.execute("CREATE TABLE order_marks (order_id TEXT PRIMARY KEY REFERENCES orders(order_id), mark TEXT)")
    c.execute("INSERT INTO order_marks SELECT order_id, 'checked' FROM orders")
''')

#: The planted failure: a constraint the station's real data violates (every order has a fuel line).
FAILING = Step("_planted_one_line_per_kind", '''
def _planted_one_line_per_kind(c: sqlite3.Connection) -> None:
    c.execute("UPDATE orders SET channel = 'pos'")
    c.execute("CREATE UNIQUE INDEX order_lines_one_per_kind ON order_lines(kind)")
''')


def _ignore(directory: str, names: list[str]) -> set[str]:
    top = Path(directory).resolve() == ROOT
    return {n for n in names if n in SKIP_ANY or (top and n in SKIP_TOP) or n.endswith(".pyc")}


def source_tree(dest: Path, version: str, steps: list[Step]) -> Path:
    shutil.copytree(ROOT, dest, ignore=_ignore)
    (dest / "docs").mkdir()
    shutil.copyfile(ROOT / "docs" / "install.md", dest / "docs" / "install.md")
    pyproject = dest / "pyproject.toml"
    text, n = re.subn(r'(?m)^version = "[^"]+"$', f'version = "{version}"', pyproject.read_text(), count=1)
    assert n == 1, "no [project] version line in pyproject.toml"
    pyproject.write_text(text)
    if steps:
        mig = dest / "agent" / "store" / "migrations.py"
        src = mig.read_text()
        anchor = "SCHEMA_VERSION = len(MIGRATIONS)\n"
        assert src.count(anchor) == 1, "migrations.py no longer ends its step list with SCHEMA_VERSION = len(...)"
        added = "".join(s.source + "\n" for s in steps)
        added += f"MIGRATIONS = (*MIGRATIONS, {', '.join(s.name for s in steps)})\n"
        mig.write_text(src.replace(anchor, added + anchor))
    return dest


def build_release(out: Path, version: str, steps: list[Step] | None = None, *, revision: str = "1") -> Path:
    """A .deb of this tree as ``version`` with ``steps`` appended to the migrations; returns its path."""
    src = source_tree(out / f"src-{version}", version, steps or [])
    cmd = [sys.executable, str(src / "packaging" / "build_deb.py"), "--out-dir", str(out), "--revision", revision,
           "--from-venv", str(ROOT / ".venv"), "--cache", str(ROOT / "build" / "wheels"), "--compression", "gzip"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=src,
                          env={**os.environ, "SOURCE_DATE_EPOCH": "1700000000"})
    assert proc.returncode == 0, proc.stderr
    shutil.rmtree(src)
    return Path(proc.stdout.strip().splitlines()[-1])
