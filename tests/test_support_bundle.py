"""``forecourt support-bundle``: what support needs, without a secret or a sales row in it."""

from __future__ import annotations

import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import httpx

from launcher.support import redact_config
from reliability.rig import MANAGER, SUPERVISOR, TOKEN, Rig, RigOptions
from tests.conftest import ROOT

CASHIER_PIN = "1234"


def test_bundle_of_a_running_station_has_the_facts_and_no_secrets(tmp_path: Path) -> None:
    with Rig(tmp_path / "station", RigOptions(pumps=2, broker=True)) as rig:
        rig.agent.start()
        with httpx.Client(base_url=f"http://127.0.0.1:{rig.api_port}",
                          headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10) as api:
            r = api.post("/api/v1/checkout/orders", json={
                "lines": [{"kind": "item", "sku": "6901234567892", "quantity": 1}], "request_key": "bundle-0001"})
            assert r.status_code == 201, r.text
            receipt = str(r.json()["receipt_no"])
        out = tmp_path / "out"
        out.mkdir()
        proc = subprocess.run([sys.executable, "-m", "main", "support-bundle", "--config", str(rig.config_path),
                               "--out", str(out), "--journal-lines", "50"], cwd=ROOT, capture_output=True,
                              text=True, timeout=180)
        rig.agent.stop()
    assert proc.returncode == 0, proc.stderr
    assert "[1/6] running the doctor" in proc.stderr and "[6/6]" in proc.stderr
    path = Path(proc.stdout.strip().splitlines()[-1])
    assert path.parent == out and path.name.startswith("forecourt-support-T001-") and path.suffix == ".gz"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with tarfile.open(path) as tar:
        files = {Path(m.name).name: tar.extractfile(m).read().decode() for m in tar.getmembers()}  # type: ignore[union-attr]
    assert set(files) == {"doctor.txt", "station.toml", "versions.txt", "database.txt", "backups.txt", "journal.txt"}
    assert "[OK  ] database: integrity ok" in files["doctor.txt"] and "agent API" in files["doctor.txt"]
    assert "orders: 1" in files["database.txt"] and "user_version (schema):" in files["database.txt"]
    assert "program: forecourt" in files["versions.txt"]
    assert 'token = "<redacted>"' in files["station.toml"] and 'id = "T001"' in files["station.toml"]
    everything = "\n".join(files.values())
    for secret in (TOKEN, f'pin = "{CASHIER_PIN}"', f'pin = "{SUPERVISOR[1]}"', f'pin = "{MANAGER[1]}"'):
        assert secret not in everything, secret
    assert receipt not in everything  # counts, never rows


def test_redaction_covers_line_keys_inline_tables_and_hashes() -> None:
    text = ('[api]\ntoken = "abc123secret"\n[[api.terminals]]\nid = "t1"\ntoken_sha256 = "' + "a" * 64 + '"\n'
            '[[cashiers]]\nid = "c01"\npin = "1234"\nx = { pin = "5678", name = "n" }\n'
            '[center]\nurl = "https://c"\nkey_file = "certs/client.key"\n')
    red = redact_config(text)
    for secret in ("abc123secret", "a" * 64, '"1234"', '"5678"'):
        assert secret not in red, secret
    assert 'key_file = "certs/client.key"' in red and 'url = "https://c"' in red and 'id = "c01"' in red


def test_unwritable_output_directory_is_refused(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "main", "support-bundle", "--out", str(tmp_path / "missing")],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "cannot write" in proc.stderr
