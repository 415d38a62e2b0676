"""A throwaway PKI and a Mosquitto with TLS client certificates and pattern ACLs (RELIABILITY §4).

``make_pki(dir, ["T001", "T002"])`` makes, with the ``openssl`` CLI (the ``cryptography`` package
is not in the venv): a station CA, a broker certificate for ``localhost``/``127.0.0.1``, one client
certificate per station (CN = station id), one for ``center``, and a rogue certificate signed by
another CA.  Keys are written 0600.  ``start_tls_broker(pki, port, workdir)`` runs Mosquitto on
127.0.0.1 with ``require_certificate``, ``use_identity_as_username`` and the ACL

    user center
    topic readwrite station/#
    topic readwrite center/#
    pattern readwrite station/%u/#
    pattern read center/to/%u/#

so a station can only touch its own ``station/<id>/#`` and read its own ``center/to/<id>/#``.

Limits: RSA 2048, 1-day validity, no CRL; loopback only; for tests and the docs, not production.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from sync.broker import MOSQUITTO, stop_mosquitto

__all__ = ["ACL", "Pki", "make_pki", "start_tls_broker", "stop_mosquitto", "tls_listener_lines"]

ACL = """user center
topic readwrite station/#
topic readwrite center/#
topic read $SYS/#

pattern readwrite station/%u/#
pattern read center/to/%u/#
"""


@dataclass
class Pki:
    dir: Path
    ca: Path
    broker_cert: Path
    broker_key: Path
    clients: dict[str, tuple[Path, Path]] = field(default_factory=dict)  #: name → (cert, key)


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _key_and_cert(d: Path, name: str, cn: str, ca: str, ca_key: str, *, server: bool = False) -> tuple[Path, Path]:
    key, csr, cert = d / f"{name}.key", d / f"{name}.csr", d / f"{name}.pem"
    _openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", key.name, "-out", csr.name,
             "-subj", f"/CN={cn}", cwd=d)
    ext = d / f"{name}.ext"
    ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n" if server
                   else "extendedKeyUsage=clientAuth\n", encoding="utf-8")
    _openssl("x509", "-req", "-in", csr.name, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-out", cert.name,
             "-days", "1", "-sha256", "-extfile", ext.name, cwd=d)
    os.chmod(key, 0o600)
    return cert, key


def make_pki(d: Path, stations: list[str]) -> Pki:
    d.mkdir(parents=True, exist_ok=True)
    for ca in ("ca", "rogue-ca"):
        _openssl("req", "-x509", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{ca}.key", "-out",
                 f"{ca}.pem", "-days", "1", "-subj", f"/CN=forecourt test {ca}", cwd=d)
        os.chmod(d / f"{ca}.key", 0o600)
    bcert, bkey = _key_and_cert(d, "broker", "localhost", "ca.pem", "ca.key", server=True)
    pki = Pki(d, d / "ca.pem", bcert, bkey)
    for name in [*stations, "center"]:
        pki.clients[name] = _key_and_cert(d, name, name, "ca.pem", "ca.key")
    pki.clients["rogue"] = _key_and_cert(d, "rogue", stations[0], "rogue-ca.pem", "rogue-ca.key")
    return pki


def tls_listener_lines(pki: Pki, port: int, acl: Path) -> list[str]:
    """mosquitto.conf lines: a loopback TLS listener that requires a client certificate and applies ``acl``."""
    return [f"listener {port} 127.0.0.1", f"cafile {pki.ca}", f"certfile {pki.broker_cert}",
            f"keyfile {pki.broker_key}", "require_certificate true", "use_identity_as_username true",
            "allow_anonymous false", f"acl_file {acl}"]


def start_tls_broker(pki: Pki, port: int, workdir: Path, timeout: float = 10.0) -> subprocess.Popen[bytes]:
    """Mosquitto on 127.0.0.1:port with TLS client certs + ACL; returns once the port accepts TCP."""
    workdir.mkdir(parents=True, exist_ok=True)
    acl = workdir / "broker.acl"
    acl.write_text(ACL, encoding="utf-8")
    lines = [*tls_listener_lines(pki, port, acl), "persistence false",
             f"log_dest file {workdir / 'mosquitto.log'}", "log_type all"]
    if os.geteuid() == 0:
        lines.append("user root")
    conf = workdir / "mosquitto.conf"
    conf.write_text("\n".join(lines) + "\n", encoding="utf-8")
    proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"mosquitto exited {proc.returncode}: {(workdir / 'mosquitto.log').read_text()[-500:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            try:
                proc.wait(0.02)
            except subprocess.TimeoutExpired:
                pass
    stop_mosquitto(proc)
    raise RuntimeError("TLS broker did not listen in time")
