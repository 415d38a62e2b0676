from __future__ import annotations

from pathlib import Path

import pytest

import main
from agent.config import ConfigError, load_config, parse_config
from launcher.demo import demo_config
from tests.conftest import BASIC_CONFIG


def test_demo_config_is_valid_and_complete() -> None:
    cfg = parse_config(__import__("tomllib").loads(demo_config("D1", 8, "socket://127.0.0.1:1", 8640)))
    assert len(cfg.all_pumps()) == 8
    assert {n.number for p in cfg.all_pumps() for n in p.nozzles} == set(range(1, 17))
    assert cfg.grade_price("95") == 839


def test_config_check_ok(basic_config_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main.main(["config", "check", str(basic_config_file)]) == 0
    assert "OK" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        ('[station]\nid = ""\n', "station.id"),
        ("\n[policy]\nmax_unpaid_per_pump = -1\n", "policy.max_unpaid_per_pump"),
        ("\n[policy]\nauto_authorise = true\n", "policy.auto_authorise: unknown key"),
        ("\n[center]\nmqtt_port = \"1883\"\n", "center.mqtt_port"),
        ('\n[center]\ncert_file = "certs/client.pem"\n', "cert_file and key_file go together"),
        ('\n[center]\nurl = "ftp://center"\n', "expected http://"),
        (
            '\n[[lines]]\nname = "b"\nprotocol = "dart"\nurl = "socket://x"\n[[lines.pumps]]\npump_id = 1\n'
            'address = 0x20\nnozzles = [{ number = 1, logical = 1, grade = "92" }]\n',
            "0x50..0x6F",
        ),
        (
            '\n[[lines]]\nname = "b"\nprotocol = "dart"\nurl = "socket://x"\n[[lines.pumps]]\npump_id = 1\n'
            'address = 0x50\nnozzles = [{ number = 1, logical = 1, grade = "98" }]\n',
            "unknown grade '98'",
        ),
        (
            '\n[[lines]]\nname = "b"\nprotocol = "gilbarko"\nurl = "x"\n[[lines.pumps]]\npump_id = 1\n'
            'address = 0x50\nnozzles = [{ number = 1, logical = 1, grade = "92" }]\n',
            "lines[0].protocol",
        ),
        ("this is = not toml [", "not valid TOML"),
    ],
)
def test_bad_config_names_the_key_and_exits_2(
    tmp_path: Path, patch: str, expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    text = BASIC_CONFIG.replace('[station]\nid = "T001"\n', patch) if patch.startswith("[station]") \
        else BASIC_CONFIG + patch
    f = tmp_path / "bad.toml"
    f.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(f)
    assert expected in str(err.value)
    assert main.main(["config", "check", str(f)]) == 2
    assert expected in capsys.readouterr().err


def test_missing_and_binary_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nope.toml")
    f = tmp_path / "bin.toml"
    f.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError, match="UTF-8"):
        load_config(f)


def test_agent_refuses_to_start_on_bad_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "bad.toml"
    f.write_text(BASIC_CONFIG + "\n[database]\npath = 5\n", encoding="utf-8")
    assert main.main(["agent", "--config", str(f)]) == 2
    assert "database.path" in capsys.readouterr().err
    assert not (tmp_path / "forecourt.db").exists()  # nothing was created from half a config
