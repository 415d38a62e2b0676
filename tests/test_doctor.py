"""forecourt doctor: agent/doctor.py local checks and launcher/doctor_checks.py probes."""

from __future__ import annotations

import argparse
import http.server
import os
import shutil
import sqlite3
import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from agent import doctor
from agent.config import parse_config
from agent.store import Store
from drivers.sim.simulator import PumpSimulator
from launcher import doctor_checks
from tests.conftest import BASIC_CONFIG, free_port


def _cfg(bus: str = "socket://127.0.0.1:1", api_port: int = 1, center: str = "http://127.0.0.1:1",
         mqtt_port: int = 1, pumps: int = 2) -> dict[str, object]:
    return {
        "station": {"id": "D1"}, "api": {"port": api_port, "token": "t" * 20},
        "center": {"url": center, "mqtt_port": mqtt_port, "timeout_s": 1.0},
        "grades": [{"code": "92", "name": "92#", "price_fen": 789}],
        "lines": [{"name": "bus1", "protocol": "dart", "url": bus,
                   "pumps": [{"pump_id": i + 1, "address": 0x50 + i,
                              "nozzles": [{"number": i + 1, "logical": 1, "grade": "92"}]} for i in range(pumps)]}],
    }


def _toml(doc: dict[str, object], path: Path) -> Path:
    from launcher.setup_wizard import to_toml

    path.write_text(to_toml(doc), encoding="utf-8")
    return path


@pytest.fixture
def center() -> Iterator[str]:
    class H(http.server.BaseHTTPRequestHandler):
        skew = timedelta(0)

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def date_time_string(self, timestamp: float | None = None) -> str:
            return format_datetime(datetime.now(UTC) + H.skew, usegmt=True)

        def log_message(self, *args: object) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def test_clock_skew_levels() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    hdr = format_datetime(now, usegmt=True)
    assert doctor.check_clock_skew(hdr, now + timedelta(seconds=2)).level == "OK"
    assert doctor.check_clock_skew(hdr, now + timedelta(seconds=40)).level == "WARN"
    r = doctor.check_clock_skew(hdr, now - timedelta(minutes=10))
    assert r.level == "FAIL" and "-600 s" in r.message and "timedatectl" in r.action
    assert doctor.check_clock_skew(None, now).level == "WARN"
    assert doctor.check_clock_skew("garbage", now).level == "WARN"


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")
def test_certificate_expiry(tmp_path: Path) -> None:
    cert = tmp_path / "c.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-days", "10", "-subj", "/CN=t", "-keyout", str(tmp_path / "k"), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    assert doctor.check_certificate("c", cert).level == "WARN"  # 10 days < 30
    assert doctor.check_certificate("c", cert, warn_days=5).level == "OK"
    later = datetime.now(UTC) + timedelta(days=11)
    assert doctor.check_certificate("c", cert, now=later).level == "FAIL"
    assert doctor.check_certificate("c", tmp_path / "missing.pem").level == "FAIL"
    (tmp_path / "bad.pem").write_text("-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n")
    assert doctor.check_certificate("c", tmp_path / "bad.pem").level == "FAIL"


def test_database_schema_and_outbox_findings(tmp_path: Path) -> None:
    from agent.store.migrations import SCHEMA_VERSION

    db = tmp_path / "f.db"
    Store(db).close()
    assert [(r.name, r.level) for r in doctor.check_database(str(db))] == [
        ("database", "OK"), ("outbox", "OK"), ("open fills", "OK")]
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    res = doctor.check_database(str(db))
    assert res[0].level == "FAIL" and "newer" in res[0].message
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION - 1}")
    conn.commit()
    conn.close()
    assert doctor.check_database(str(db))[0].level == "WARN"


def test_a_fill_left_open_for_long_is_a_warning_naming_the_pump(tmp_path: Path) -> None:
    db = tmp_path / "f.db"
    Store(db).close()
    now = 1_800_000_000_000
    conn = sqlite3.connect(db)
    for fid, pump, state, age_min in (("f1", 3, "authorized", 95), ("f2", 5, "needs_reconciliation", 40),
                                      ("f3", 6, "fuelling", 2), ("f4", 7, "paid", 300)):
        conn.execute("INSERT INTO fills(fill_id, pump_id, state, created_at_ms) VALUES (?, ?, ?, ?)",
                     (fid, pump, state, now - age_min * 60_000))
    conn.commit()
    conn.close()
    (fills,) = [r for r in doctor.check_database(str(db), now_ms=now) if r.name == "open fills"]
    assert fills.level == "WARN"
    assert fills.message == ("2 open for over 30 min: pump 3 authorized for 95 min, "
                             "pump 5 needs_reconciliation for 40 min")
    assert "meters" in fills.action


def test_a_crashing_probe_is_a_fail_line_not_a_crash(tmp_path: Path) -> None:
    def boom(cfg: object) -> list[doctor.CheckResult]:
        raise RuntimeError("kaput")

    res = doctor.run_checks(config_path=None, db_path=None, api_url=None, probes=[boom])
    assert res[-1].level == "FAIL" and "kaput" in res[-1].message
    assert doctor.exit_code(res) == 1


def test_network_probes_ok_and_warn(center: str) -> None:
    cfg = parse_config(_cfg(center=center))
    res = doctor_checks.check_center(cfg)
    assert [r.level for r in res] == ["OK", "OK"] and res[1].name == "clock"
    down = parse_config(_cfg(center=f"http://127.0.0.1:{free_port()}", mqtt_port=free_port()))
    assert doctor_checks.check_center(down)[0].level == "WARN"
    assert doctor_checks.check_broker(down).level == "WARN"


def test_pumps_probed_on_the_bus_when_no_agent_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sim = PumpSimulator(1, 1, simulate=True, baudrate=None)
    with sim:
        url = sim.start_tcp("127.0.0.1", 0)
        cfg_path = _toml(_cfg(bus=url, api_port=free_port(), pumps=2), tmp_path / "station.toml")
        p = argparse.ArgumentParser()
        doctor_checks.add_arguments(p)
        rc = doctor_checks.run(p.parse_args(["--config", str(cfg_path), "--no-network"]))
    out = capsys.readouterr().out
    assert rc == 1
    assert "[OK  ] pump 1 (bus1 0x50): answers POLL" in out
    assert "[FAIL] pump 2 (bus1 0x51): no answer" in out
    assert "1/2 pumps answer" in out


def test_a_port_held_by_another_process_is_not_probed(tmp_path: Path) -> None:
    dev = tmp_path / "ttyFAKE"
    dev.write_bytes(b"")
    with dev.open("rb") as held:
        holder = subprocess.Popen(["sleep", "30"], stdin=held)
    try:
        assert holder.pid in doctor_checks.port_holders(str(dev))
        cfg = parse_config(_cfg(bus=str(dev)))
        res = doctor_checks.check_pumps_via_bus(cfg)
        assert res[0].level == "WARN" and "held by pid" in res[0].message
    finally:
        holder.kill()
        holder.wait()


def test_non_dart_lines_are_not_probed_on_the_bus() -> None:
    doc = _cfg()
    line = doc["lines"][0]  # type: ignore[index]
    line["protocol"] = "gilbarco"
    for i, pump in enumerate(line["pumps"]):
        pump["address"] = i + 1
    try:
        cfg = parse_config(doc)
    except Exception:
        pytest.skip("this config schema knows only DART lines")
    res = doctor_checks.check_pumps_via_bus(cfg)
    assert [r.level for r in res] == ["WARN"] and "DART only" in res[0].message


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become another user")
def test_a_technician_without_sudo_is_told_to_use_it(tmp_path: Path) -> None:
    """The packaged config is 0640 root:forecourt; a plain user's doctor says how to read it.

    A forked child drops to ``nobody`` (real permission check by the kernel) and runs the check.
    """
    import agent.config  # noqa: F401 - loaded before the fork: the child reads no module files

    os.chmod(tmp_path, 0o755)  # noqa: S103 - the other user must traverse to the file
    cfg = tmp_path / "station.toml"
    cfg.write_text(BASIC_CONFIG, encoding="utf-8")
    os.chmod(cfg, 0o640)
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: become nobody, check, report, exit without running pytest's teardown
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            r = doctor.check_config(str(cfg))
            os.write(write_fd, f"{r.level}\n{r.message}\n{r.action}".encode())
        finally:
            os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd) as f:
        level, message, action = f.read().split("\n", 2)
    os.waitpid(pid, 0)
    assert level == "FAIL" and "Permission denied" in message
    assert action == "run the doctor as root: sudo forecourt doctor"
