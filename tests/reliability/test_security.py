"""Security: broker isolation by TLS client certificate + ACL, API roles, secret file modes, canaries.

* Two station certificates (CN T001, T002) on a Mosquitto with ``use_identity_as_username`` and
  pattern ACLs: T001 can neither read T002's topics nor write them; a certificate from another CA
  and a client without a certificate are refused.
* The local API: a cashier session cannot change prices (manager role), a wrong token is refused.
* The API token file is created 0600 (owned by the user running the agent).
* Canary: a customer payment code (``auth_code`` of a ``qr_scan`` tender) and a PAN-like number typed
  into inputs are found nowhere in the database file, its WAL or the agent's log afterwards.
"""

from __future__ import annotations

import os
import ssl
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from agent.api.server import load_or_create_token
from reliability.rig import CASHIER, MANAGER, Rig, RigOptions
from reliability.snapshot import scan_for
from reliability.tlsbroker import Pki, make_pki, start_tls_broker, stop_mosquitto
from tests.conftest import free_port


# ------------------------------------------------------------------ broker: certificates + ACL
class Client:
    """A paho MQTT 5 client with a TLS client certificate; records what it receives."""

    def __init__(self, pki: Pki, name: str | None, port: int) -> None:
        self.got: list[tuple[str, bytes]] = []
        self.cond = threading.Condition()
        self.connected = threading.Event()
        self.refused: list[str] = []
        self.granted: list[int] = []
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"test-{name}-{port}",
                        protocol=MQTTProtocolVersion.MQTTv5)
        cert, key = pki.clients[name] if name else (None, None)
        c.tls_set(ca_certs=str(pki.ca), certfile=str(cert) if cert else None, keyfile=str(key) if key else None,
                  cert_reqs=ssl.CERT_REQUIRED)
        c.on_connect = lambda _c, _u, _f, rc, _p: (self.connected.set() if not rc.is_failure
                                                    else self.refused.append(str(rc)))
        c.on_message = self._on_message
        c.on_subscribe = lambda _c, _u, _m, rcs, _p: self._granted(rcs)
        self.c = c
        self.port = port

    def _granted(self, rcs: Any) -> None:
        with self.cond:
            self.granted += [rc.value for rc in rcs]
            self.cond.notify_all()

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self.cond:
            self.got.append((msg.topic, msg.payload))
            self.cond.notify_all()

    def connect(self) -> bool:
        try:
            self.c.connect("127.0.0.1", self.port, keepalive=10)
        except (ssl.SSLError, OSError):
            return False
        self.c.loop_start()
        return self.connected.wait(5)

    def subscribe(self, *topics: str) -> None:
        n = len(self.granted)
        for t in topics:
            self.c.subscribe(t, qos=1)
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.granted) >= n + len(topics), 5)

    def publish(self, topic: str, payload: bytes) -> None:
        self.c.publish(topic, payload, qos=1).wait_for_publish(5)

    def wait_for(self, payload: bytes, timeout: float = 5.0) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: any(p == payload for _, p in self.got), timeout)

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Pki, int]]:
    d = tmp_path_factory.mktemp("pki")
    pki = make_pki(d / "pki", ["T001", "T002"])
    port = free_port()
    proc = start_tls_broker(pki, port, d / "broker")
    yield pki, port
    stop_mosquitto(proc)


def test_station_certificates_isolate_stations(tls_broker: tuple[Pki, int]) -> None:
    pki, port = tls_broker
    a, b, center = Client(pki, "T001", port), Client(pki, "T002", port), Client(pki, "center", port)
    try:
        assert a.connect() and b.connect() and center.connect()
        # A tries to read B's command and station topics: the broker refuses the subscriptions (SUBACK >= 0x80)
        # (Mosquitto 2.0 grants the SUBACK and then never delivers what the ACL denies: checked below)
        a.subscribe("center/to/T002/#", "station/T002/#", "center/to/T001/#")
        b.subscribe("center/to/T002/#", "station/T002/#")
        center.subscribe("station/#")
        # the center commands B, then A: A sees only its own; B sees its own
        center.publish("center/to/T002/cmd/release", b"for-B")
        center.publish("center/to/T001/cmd/release", b"for-A")
        assert a.wait_for(b"for-A") and b.wait_for(b"for-B")
        assert all(p != b"for-B" for _, p in a.got), a.got
        # A writes into B's topics: dropped; A writes its own: delivered to the center
        a.publish("station/T002/status", b"forged-by-A")
        a.publish("center/to/T002/cmd/release", b"forged-cmd-by-A")
        a.publish("station/T001/status", b"A-own")
        assert center.wait_for(b"A-own")
        assert all(p not in (b"forged-by-A", b"forged-cmd-by-A") for _, p in center.got + b.got), (center.got, b.got)
        # a station cannot write to its own command topic either (read-only)
        a.publish("center/to/T001/cmd/release", b"self-cmd")
        b.publish("station/T002/status", b"B-own")
        assert center.wait_for(b"B-own")
        assert all(p != b"self-cmd" for _, p in a.got)
    finally:
        for c in (a, b, center):
            c.close()


def test_rogue_or_missing_certificate_is_refused(tls_broker: tuple[Pki, int]) -> None:
    pki, port = tls_broker
    for name in ("rogue", None):  # CN T001 signed by another CA; no client certificate at all
        c = Client(pki, name, port)
        try:
            assert not c.connect(), f"{name}: connected"
        finally:
            c.c.loop_stop()


# ------------------------------------------------------------------ local API, secrets, canaries
@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    r = Rig(tmp_path_factory.mktemp("sec"), RigOptions(pumps=1, broker=False)).start()
    r.agent.start()
    yield r
    r.close()


def _login(rig: Rig, who: tuple[str, str]) -> httpx.Client:
    r = rig.api.post("/api/v1/session/login", json={"cashier_id": who[0], "pin": who[1]})
    assert r.status_code == 200, r.text
    token = r.json()["token"]
    return httpx.Client(base_url=str(rig.api.base_url), headers={"Authorization": f"Bearer {token}"}, timeout=10)


def test_cashier_cannot_change_prices_manager_can(rig: Rig) -> None:
    with _login(rig, CASHIER) as cashier, _login(rig, MANAGER) as manager:
        before = rig.get("/api/v1/prices")
        r = cashier.post("/api/v1/prices", json={"prices_fen": {"92": 700}, "confirm": True})
        assert r.status_code == 403, r.text
        r = cashier.post("/api/v1/prices", json={"prices_fen": {"92": 700}})
        assert r.status_code in (403, 422), r.text
        assert rig.get("/api/v1/prices") == before
        r = manager.post("/api/v1/prices", json={"prices_fen": {"92": 799}, "confirm": True})
        assert r.status_code == 201, r.text  # the manager may
        assert rig.get("/api/v1/prices")["prices_fen"]["92"] == 799
    with httpx.Client(base_url=str(rig.api.base_url), headers={"Authorization": "Bearer wrong-token-xxxxxxxx"}) as bad:
        assert bad.get("/api/v1/station").status_code == 401
    assert httpx.get(f"{rig.api.base_url}/api/v1/station").status_code == 401


def test_api_binds_to_loopback_only(rig: Rig) -> None:
    out = Path("/proc/net/tcp").read_text().splitlines()[1:]
    port_hex = f"{rig.api_port:04X}"
    listening = [ln.split()[1] for ln in out if ln.split()[3] == "0A" and ln.split()[1].endswith(":" + port_hex)]
    assert listening == ["0100007F:" + port_hex], listening


def test_token_file_is_created_0600(tmp_path: Path) -> None:
    p = tmp_path / "state" / "api-token"
    load_or_create_token(p)
    st = p.stat()
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert st.st_uid == os.geteuid()


CANARY_CODE = "289912345678901234"  # a customer-presented payment code (auth_code), 18 digits
CANARY_PAN = "4111111111111111"


def test_payment_code_and_pan_canaries_are_not_stored(rig: Rig) -> None:
    assert rig.center is not None
    rig.center.state.faults.auto_pay = True
    r = rig.api.post("/api/v1/checkout/orders", json={"lines": [{"kind": "amount", "amount_fen": 1234}]})
    oid = r.json()["order_id"]
    q = rig.api.post(f"/api/v1/orders/{oid}/confirm").json()
    pay = rig.api.post(f"/api/v1/orders/{oid}/pay", json={"quote_id": q["quote_id"], "tenders": [
        {"tender": "qr_scan", "amount_fen": q["payable_fen"], "auth_code": CANARY_CODE}]})
    assert pay.status_code == 200, pay.text
    # a rejected scan with the PAN as a payment code, and the PAN as a member card number
    rig.api.post(f"/api/v1/orders/{oid}/pay", json={"quote_id": q["quote_id"], "tenders": [
        {"tender": "qr_scan", "amount_fen": 1, "auth_code": CANARY_PAN}]})
    rig.api.get("/api/v1/members/lookup", params={"card_no": CANARY_PAN})
    rig.agent.stop()  # flush the log; keep the WAL as it is (SIGTERM: orderly stop)
    files = [rig.db_path, Path(f"{rig.db_path}-wal"), Path(f"{rig.db_path}-shm"), rig.agent.log_path,
             *rig.workdir.rglob("*.log")]
    found = scan_for(files, [CANARY_CODE, CANARY_PAN])
    rig.agent.start()
    assert CANARY_CODE not in found, f"payment code stored: {found}"
    assert CANARY_PAN not in found, f"PAN stored: {found}"
