"""forecourt doctor on a multi-terminal station: the agent's API is HTTPS (``[api] tls_cert``), so the
doctor must ask it over TLS, trusting the configured certificate, and read the pumps from it."""

from __future__ import annotations

import subprocess
from pathlib import Path

from agent.config import parse_config
from launcher import doctor_checks
from tests.scale.conftest import TOKEN, LanStation


def _config(lan: LanStation, host: str) -> dict[str, object]:
    return {
        "station": {"id": "T001"},
        "api": {"host": host, "port": lan.server.port, "token": TOKEN,
                "tls_cert": str(lan.pki.cert), "tls_key": str(lan.pki.key)},
        "grades": [{"code": "92", "name": "92#", "price_fen": 789}],
        "lines": [{"name": "bus1", "protocol": "dart", "url": "socket://127.0.0.1:1",
                   "pumps": [{"pump_id": i + 1, "address": 0x50 + i,
                              "nozzles": [{"number": i + 1, "logical": 1, "grade": "92"}]} for i in range(2)]}],
    }


def test_the_doctor_reads_the_pumps_through_the_agents_https_api(lan: LanStation, tmp_path: Path) -> None:
    # the agent listens on every interface with a LAN certificate; the doctor, on the device, calls
    # https://127.0.0.1 and trusts the configured server certificate itself (no CA file at hand)
    cfg = parse_config(_config(lan, "0.0.0.0"))
    assert doctor_checks.api_base(cfg, None) == f"https://127.0.0.1:{lan.server.port}"
    results = doctor_checks.check_pumps(cfg, str(tmp_path / "station.toml"), None)
    assert [(r.name, r.level) for r in results] == [("pump 1 (bus1 0x50)", "OK"), ("pump 2 (bus1 0x51)", "OK")]
    assert all(r.message.endswith("(via agent)") for r in results)

    # a certificate that is not the agent's (another station's) is not trusted: no answer over TLS, so
    # the doctor falls back to probing the bus itself, never to plain HTTP
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", "other.key", "-out", "other.pem", "-days", "2", "-subj", "/CN=other"],
                   cwd=tmp_path, check=True, capture_output=True, timeout=30)
    doc = _config(lan, "0.0.0.0")
    doc["api"] = {**doc["api"], "tls_cert": str(tmp_path / "other.pem"),  # type: ignore[dict-item]
                  "tls_key": str(tmp_path / "other.key")}
    results = doctor_checks.check_pumps(parse_config(doc), str(tmp_path / "station.toml"), None)
    assert not any(r.message.endswith("(via agent)") for r in results)
    assert results[0].level == "FAIL", results
