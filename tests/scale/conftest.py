"""Fixtures for the multi-terminal tests: a throwaway PKI and a station whose API talks TLS to terminals.

``pki`` makes a CA and a server certificate for ``127.0.0.1``/``localhost``
with the ``openssl`` CLI (the ``cryptography`` package is not in the venv).
``lan`` is the checkout station of ``tests/checkout`` served by
``ApiServer.from_config`` exactly as the agent does it: TLS on 127.0.0.1 and three
registered terminals (T1–T3).  Only loopback is ever used.
"""

from __future__ import annotations

import hashlib
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from agent.api import ApiServer, create_app
from agent.checkout.service import CheckoutService
from agent.config import ApiConfig
from sync.center_sim.server import serve_center
from sync.gateway import HttpCenterGateway
from tests.checkout.conftest import EXTRA, TOKEN, Shop
from tests.forecourt_harness import station

TERMINAL_TOKENS = {f"T{i}": f"terminal-{i}-secret-0123456789abcdef" for i in (1, 2, 3)}


@dataclass(frozen=True)
class Pki:
    ca: Path
    cert: Path
    key: Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not installed")
    d = tmp_path_factory.mktemp("pki")
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
             "-subj", "/CN=Forecourt test station CA", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    _openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1", cwd=d)
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
                               "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf", cwd=d)
    return Pki(d / "ca.pem", d / "server.pem", d / "server.key")


def api_config(pki: Pki) -> ApiConfig:
    """``[api]`` of a multi-terminal station, as a config file would give it."""
    return ApiConfig.model_validate({
        "host": "127.0.0.1", "port": 0, "token": TOKEN, "tls_cert": pki.cert.name, "tls_key": pki.key.name,
        "allowed_hosts": ["pos-agent.station.lan"],
        "terminals": [{"id": tid, "token_sha256": hashlib.sha256(tok.encode()).hexdigest()}
                      for tid, tok in TERMINAL_TOKENS.items()],
    })


@dataclass
class LanStation:
    shop: Shop
    server: ApiServer
    pki: Pki

    @property
    def url(self) -> str:
        return self.server.url

    def ssl(self) -> ssl.SSLContext:
        """A client context trusting only the station CA."""
        return ssl.create_default_context(cafile=str(self.pki.ca))

    def client(self, bearer: str, **headers: str) -> httpx.Client:
        """An HTTPS client trusting only the station CA."""
        return httpx.Client(base_url=self.url, verify=self.ssl(), timeout=10,
                            headers={"Authorization": f"Bearer {bearer}", **headers})


@pytest.fixture
def lan(tmp_path: Path, pki: Pki) -> Iterator[LanStation]:
    cfg = api_config(pki)
    center = serve_center()
    center.state.faults.auto_pay = False
    try:
        with station(tmp_path, pumps=2, extra=EXTRA) as st:
            http = httpx.Client(base_url=center.url, timeout=3.0)
            checkout = CheckoutService(st.agent, HttpCenterGateway(http, "T001"))
            st.agent.set_link("center", True)
            checkout.start(sentinel_s=3600)
            app = create_app(st.agent, TOKEN, allowed_hosts=set(cfg.allowed_hosts))
            server = ApiServer.from_config(app, cfg, pki.ca.parent)
            server.start()
            ctx = ssl.create_default_context(cafile=str(pki.ca))
            api = httpx.Client(base_url=server.url, verify=ctx, timeout=10,
                               headers={"Authorization": f"Bearer {TOKEN}"})
            st.wait_all_idle()
            try:
                yield LanStation(Shop(st, center, checkout, api), server, pki)
            finally:
                api.close()
                server.stop()
                checkout.close()
                http.close()
    finally:
        center.stop()
