from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("FORECOURT_DEV", "1")

ROOT = Path(__file__).resolve().parent.parent

BASIC_CONFIG = """
[station]
id = "T001"
name = "测试站"

[api]
token = "test-token-0123456789abcdef"

[[grades]]
code = "92"
name = "92#汽油"
price_fen = 789

[[grades]]
code = "95"
name = "95#汽油"
price_fen = 839
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def basic_config_file(tmp_path: Path) -> Path:
    p = tmp_path / "station.toml"
    p.write_text(BASIC_CONFIG, encoding="utf-8")
    return p
