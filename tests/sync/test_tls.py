"""The station talks to the trade center over mutual TLS: HTTPS for the API, MQTT over TLS.

A real ``forecourt agent`` process, a center simulator that serves HTTPS and demands a client
certificate, and Mosquitto with ``require_certificate`` and the per-station ACL.  The station's
``[center]`` names ``ca_file``/``cert_file``/``key_file`` relative to the config directory, as
``forecourt setup`` writes them.  Also: a wrong CA is refused (the sale still completes offline and
stays queued; the doctor says why), and a missing certificate file stops the agent with exit 2.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from drivers.sim.simulator import PumpSimulator
from reliability.rig import TOKEN, AgentChild, station_toml
from reliability.tlsbroker import Pki, make_pki, start_tls_broker, stop_mosquitto
from sync.center_sim.server import CenterHandle, serve_center
from tests.conftest import ROOT, free_port

pytestmark = pytest.mark.skipif(shutil.which("mosquitto") is None or shutil.which("openssl") is None,
                                reason="needs mosquitto and openssl")
STATION = "TLS01"


@dataclass
class TlsCenter:
    pki: Pki
    broker_port: int
    center: CenterHandle
    bus: str


@pytest.fixture(scope="module")
def tls_center(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsCenter]:
    d = tmp_path_factory.mktemp("tls")
    pki = make_pki(d / "pki", [STATION])
    port = free_port()
    broker = start_tls_broker(pki, port, d / "broker")
    center = serve_center(tls=(pki.broker_cert, pki.broker_key, pki.ca))
    sim = PumpSimulator(1, 1, simulate=True, speed=20.0, baudrate=None, seed=5)
    try:
        yield TlsCenter(pki, port, center, sim.start_tcp())
    finally:
        sim.close()
        center.stop()
        stop_mosquitto(broker)


def write_station(tmp: Path, tc: TlsCenter, *, ca: Path) -> tuple[Path, int]:
    """A station dir with certs/ (as ``forecourt setup`` lays it out) and a config naming them relatively."""
    certs = tmp / "certs"
    certs.mkdir(parents=True)
    cert, key = tc.pki.clients[STATION]
    for src, name in ((ca, "ca.pem"), (cert, "client.pem"), (key, "client.key")):
        shutil.copyfile(src, certs / name)
    api_port = free_port()
    text = station_toml(api_port=api_port, db_path=str(tmp / "forecourt.db"), bus_url=tc.bus,
                        center_url=tc.center.url, mqtt_port=tc.broker_port, pumps=1, station_id=STATION)
    text = text.replace("timeout_s = 2.0", 'timeout_s = 2.0\nca_file = "certs/ca.pem"\n'
                        'cert_file = "certs/client.pem"\nkey_file = "certs/client.key"')
    config = tmp / "station.toml"
    config.write_text(text, encoding="utf-8")
    return config, api_port


def presence(tc: TlsCenter, timeout: float = 20.0) -> str | None:
    """The station's retained presence, read by the center's own TLS client (None if never seen)."""
    got: list[str] = []
    seen = threading.Event()
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="center-check", protocol=MQTTProtocolVersion.MQTTv5)
    cert, key = tc.pki.clients["center"]
    c.tls_set(ca_certs=str(tc.pki.ca), certfile=str(cert), keyfile=str(key))

    def on_message(_c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        got.append(json.loads(msg.payload)["state"])
        seen.set()

    c.on_connect = lambda cl, *_: cl.subscribe(f"station/{STATION}/status", qos=1)
    c.on_message = on_message
    c.connect("localhost", tc.broker_port)
    c.loop_start()
    try:
        seen.wait(timeout)
    finally:
        c.disconnect()
        c.loop_stop()
    return got[-1] if got else None


def sell_item(api_port: int, key: str) -> str:
    """A shop item paid cash through the agent's API; returns the order id."""
    with httpx.Client(base_url=f"http://127.0.0.1:{api_port}", headers={"Authorization": f"Bearer {TOKEN}"},
                      timeout=10) as api:
        r = api.post("/api/v1/checkout/orders", json={
            "lines": [{"kind": "item", "sku": "6901234567892", "quantity": 1}], "request_key": key})
        assert r.status_code == 201, r.text
        oid = str(r.json()["order_id"])
        q = api.post(f"/api/v1/orders/{oid}/confirm").json()
        r = api.post(f"/api/v1/orders/{oid}/pay", json={
            "quote_id": q["quote_id"], "request_key": f"pay-{key}",
            "tenders": [{"tender": "cash", "amount_fen": q["payable_fen"], "given_fen": q["payable_fen"]}]})
        assert r.status_code < 300 and r.json()["state"] == "paid", r.text
        return oid


def outbox_pending(api_port: int) -> int:
    with httpx.Client(base_url=f"http://127.0.0.1:{api_port}", headers={"Authorization": f"Bearer {TOKEN}"},
                      timeout=10) as api:
        return int(api.get("/api/v1/sync/status").json()["depth"])


def doctor(config: Path) -> str:
    return subprocess.run([sys.executable, "-m", "main", "doctor", "--config", str(config), "--no-pumps"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120).stdout


def test_station_syncs_with_the_center_over_mutual_tls(tls_center: TlsCenter, tmp_path: Path) -> None:
    config, api_port = write_station(tmp_path, tls_center, ca=tls_center.pki.ca)
    agent = AgentChild(config, tmp_path / "agent.log")
    agent.start()
    try:
        assert presence(tls_center) == "online"  # MQTT over TLS with the station's certificate
        oid = sell_item(api_port, "tls-sale-0001")
        st = tls_center.center.state

        def uploaded() -> bool:
            with st.lock:
                return any(a.get("out_id") == oid for a in st.applied)
        deadline = threading.Event()
        for _ in range(100):  # the relay delivers over HTTPS within its backoff
            if uploaded():
                break
            deadline.wait(0.2)
        assert uploaded(), f"order {oid} never reached the center over HTTPS"
        report = doctor(config)
        assert "over TLS" in report and "TLS handshake ok" in report, report
    finally:
        agent.stop()


def test_a_center_signed_by_another_ca_is_refused_and_sales_wait_in_the_outbox(
        tls_center: TlsCenter, tmp_path: Path) -> None:
    rogue_ca = tls_center.pki.dir / "rogue-ca.pem"
    config, api_port = write_station(tmp_path, tls_center, ca=rogue_ca)
    agent = AgentChild(config, tmp_path / "agent.log")
    agent.start()
    try:
        oid = sell_item(api_port, "tls-sale-0002")  # the cashier is never held up by the center
        assert outbox_pending(api_port) >= 1
        with tls_center.center.state.lock:
            assert not any(a.get("out_id") == oid for a in tls_center.center.state.applied)
        report = doctor(config)
        assert "[FAIL] center" in report and "TLS refused" in report and "CERTIFICATE_VERIFY_FAILED" in report, report
        assert "[FAIL] broker" in report, report
    finally:
        agent.stop()


def test_a_missing_certificate_file_stops_the_agent_with_a_config_error(
        tls_center: TlsCenter, tmp_path: Path) -> None:
    config, _ = write_station(tmp_path, tls_center, ca=tls_center.pki.ca)
    (tmp_path / "certs" / "client.key").unlink()
    proc = subprocess.run([sys.executable, "-m", "main", "agent", "--config", str(config)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "center.cert_file" in proc.stderr or "center.key_file" in proc.stderr, proc.stderr
    assert not (tmp_path / "forecourt.db").exists()  # refused before anything was created
