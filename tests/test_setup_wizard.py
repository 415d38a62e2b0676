"""forecourt setup (launcher/setup_wizard.py) and the bus scan it uses (drivers/discovery.py)."""

from __future__ import annotations

import argparse
import os
import stat
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.config import load_config
from drivers.discovery import list_serial_ports, scan_bus
from drivers.sim.simulator import PumpSimulator
from launcher import setup_wizard
from tests.conftest import free_port


@pytest.fixture
def sim_url() -> Iterator[str]:
    """Three DART pumps (0x50..0x52) on TCP."""
    sim = PumpSimulator(3, 2, simulate=True, baudrate=None)
    with sim:
        yield sim.start_tcp("127.0.0.1", 0)


def _args(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    setup_wizard.add_arguments(p)
    return p.parse_args(list(argv))


def test_scan_finds_the_simulated_pumps_and_only_them(sim_url: str) -> None:
    res = scan_bus(sim_url, 9600, range(0x50, 0x56), timeout_s=0.1)
    assert res.ok, res.error
    assert res.addresses() == [0x50, 0x51, 0x52]
    assert set(res.answered.values()) <= {"data", "eot"}


def test_scan_of_a_dead_port_reports_an_error_without_raising() -> None:
    res = scan_bus(f"socket://127.0.0.1:{free_port()}", 9600, [0x50], timeout_s=0.05)
    assert not res.ok and "cannot open" in (res.error or "")
    with pytest.raises(ValueError, match="outside"):
        scan_bus("socket://127.0.0.1:1", 9600, [0x20])


def test_list_serial_ports_returns_port_infos() -> None:
    for port in list_serial_ports():
        assert port.device.startswith("/dev/")
        assert port.label().startswith(port.device)


def test_flags_mode_scans_and_writes_a_valid_config(tmp_path: Path, sim_url: str) -> None:
    out = tmp_path / "etc" / "station.toml"
    lines: list[str] = []
    rc = setup_wizard.run(_args(
        "--yes", "--config", str(out), "--station-id", "S042", "--station-name", "测试站",
        "--grade", "92:92#汽油:789", "--grade", "95:95#汽油:839", "--grade", "0:0#柴油:765",
        "--line", f"bus1={sim_url}", "--scan", "--scan-timeout", "0.04",
        "--nozzle-grades", "92,95", "--nozzle", "3.1=0", "--nozzle", "3.2=92",
        "--db-path", str(tmp_path / "var" / "forecourt.db"), "--token-file", str(tmp_path / "tok")),
        say=lines.append)
    assert rc == 0, lines
    cfg = load_config(out)
    assert [p.address for p in cfg.all_pumps()] == [0x50, 0x51, 0x52]
    assert [n.grade for n in cfg.all_pumps()[2].nozzles] == ["0", "92"]
    assert [n.number for p in cfg.all_pumps() for n in p.nozzles] == [1, 2, 3, 4, 5, 6]
    assert cfg.station.name == "测试站"
    assert stat.S_IMODE(out.stat().st_mode) in (0o600, 0o640)
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")], "temp file left behind"


def test_invalid_answers_write_nothing_and_keep_the_old_file(tmp_path: Path) -> None:
    out = tmp_path / "station.toml"
    out.write_text("old\n")
    lines: list[str] = []
    rc = setup_wizard.run(_args(
        "--yes", "--config", str(out), "--station-id", "bad id!", "--grade", "92:92#:789",
        "--line", "bus1=socket://127.0.0.1:1", "--pump-addresses", "0x50", "--nozzle-grades", "95"),
        say=lines.append)
    assert rc == 2
    text = "\n".join(lines)
    assert "station.id" in text
    assert out.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["station.toml"]


def test_rewrite_keeps_a_backup_and_key_is_0600(tmp_path: Path) -> None:
    out = tmp_path / "station.toml"
    key = tmp_path / "in.key"
    key.write_text("-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----\n")
    cert = tmp_path / "in.pem"
    cert.write_text("-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n")
    base = ("--yes", "--config", str(out), "--grade", "92:92#:789", "--line", "bus1=/dev/ttyUSB9",
            "--pump-addresses", "0x50", "0x51", "--nozzle-grades", "92", "--key-file", str(key),
            "--cert-file", str(cert))
    assert setup_wizard.run(_args(*base, "--station-id", "A1"), say=lambda _: None) == 0
    assert setup_wizard.run(_args(*base, "--station-id", "A2"), say=lambda _: None) == 0
    assert load_config(out).station.id == "A2"
    assert load_config(tmp_path / "station.toml.bak").station.id == "A1"
    installed = tmp_path / "certs" / "client.key"
    assert installed.read_text() == key.read_text()
    assert stat.S_IMODE(installed.stat().st_mode) == 0o600


def test_interactive_session(tmp_path: Path, sim_url: str) -> None:
    out = tmp_path / "station.toml"
    answers = iter([
        "S7", "", "http://127.0.0.1:9", "", "", "", "", "",  # station, center, broker, certs
        "92", "92#汽油", "789", "95", "", "839", "",            # grades
        "y", sim_url, "",                                       # line bus1, default baud
        "n",                                                    # no second line
        "y",                                                    # scan
        "", "95,92", "92",                                      # nozzles per pump
        "n",                                                    # no connection test
        "y",                                                    # write
    ])
    said: list[str] = []
    rc = setup_wizard.run(_args("--config", str(out), "--scan-timeout", "0.04"),
                          ask=lambda q: next(answers), say=said.append)
    assert rc == 0, "\n".join(said)
    cfg = load_config(out)
    assert cfg.station.id == "S7" and cfg.center.url == "http://127.0.0.1:9"
    assert [[n.grade for n in p.nozzles] for p in cfg.all_pumps()] == [["92", "95"], ["95", "92"], ["92"]]
    assert [g.name for g in cfg.grades] == ["92#汽油", "95#"]
    assert "3 pump(s) answer" in "\n".join(said)


def test_toml_writer_round_trips_awkward_strings() -> None:
    doc = {"station": {"id": "X", "name": 'a "q" \\ 油站\n\t'}, "grades": [{"code": "92", "name": "x", "price_fen": 1}]}
    assert tomllib.loads(setup_wizard.to_toml(doc))["station"]["name"] == doc["station"]["name"]
    assert os.sep == "/"


def test_udev_rules_name_usb_adapters_by_serial_or_socket() -> None:
    from drivers.discovery import PortInfo

    ports = [PortInfo("/dev/ttyUSB0", vid=0x0403, pid=0x6001, serial_number="A10K1234", location="1-2:1.0"),
             PortInfo("/dev/ttyUSB1", vid=0x1A86, pid=0x7523, location="1-3:1.0"),
             PortInfo("/dev/ttyS0")]
    lines = [setup_wizard.Line("bus1", "/dev/ttyUSB0"), setup_wizard.Line("bus2", "/dev/ttyUSB1"),
             setup_wizard.Line("bus3", "/dev/ttyS0"), setup_wizard.Line("sim", "socket://127.0.0.1:1")]
    text, notes = setup_wizard.udev_rules(lines, ports)
    assert 'ENV{ID_SERIAL_SHORT}=="A10K1234", SYMLINK+="forecourt/bus1"' in text
    assert 'ENV{ID_VENDOR_ID}=="0403", ENV{ID_MODEL_ID}=="6001"' in text
    assert 'KERNELS=="1-3:1.0", SYMLINK+="forecourt/bus2"' in text
    assert [ln.url for ln in lines] == ["/dev/forecourt/bus1", "/dev/forecourt/bus2", "/dev/ttyS0",
                                        "socket://127.0.0.1:1"]
    assert any("bus3" in n for n in notes) and any("USB socket" in n for n in notes)
