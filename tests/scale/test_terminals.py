"""Several checkout terminals on one agent: TLS on the LAN, per-terminal credentials, who holds a fill."""

from __future__ import annotations

import asyncio
import hashlib
import json
import ssl
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from agent.api.auth import TerminalGate, Terminals, is_loopback
from agent.config import ConfigError, parse_config
from tests.scale.conftest import TERMINAL_TOKENS, TOKEN, LanStation, Pki

T1, T2, T3 = (TERMINAL_TOKENS[t] for t in ("T1", "T2", "T3"))


def test_tls_only_with_the_station_ca(lan: LanStation) -> None:
    assert lan.url.startswith("https://127.0.0.1:")
    with lan.client(T1) as c:
        assert c.get("/health").status_code == 200
        assert c.get("/api/v1/session").json() == {"actor": "terminal:T1", "role": "terminal"}
    with httpx.Client(base_url=lan.url, timeout=5) as untrusting, \
            pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):  # system CAs only
        untrusting.get("/health")
    with httpx.Client(base_url=lan.url.replace("https", "http"), timeout=5) as plain, \
            pytest.raises(httpx.HTTPError):
        plain.get("/health").raise_for_status()
    ctx = ssl.create_default_context(cafile=str(lan.pki.ca))
    with httpx.Client(base_url=lan.url, verify=ctx, timeout=5) as c:
        assert c.get("/health").status_code == 200


def test_host_guard_takes_the_configured_lan_name(lan: LanStation) -> None:
    with lan.client(T1, Host="pos-agent.station.lan") as c:
        assert c.get("/health").status_code == 200
    with lan.client(T1, Host="evil.example") as c:
        assert c.get("/health").status_code == 421


def test_terminal_role_sells_but_cannot_change_prices(lan: LanStation) -> None:
    with lan.client(T2) as c:
        r = c.post("/api/v1/prices", json={"prices_fen": {"92": 799}, "confirm": True})
        assert r.status_code == 403 and r.json()["error"]["code"] == "role"
        r = c.post("/api/v1/checkout/orders", json={"lines": [{"kind": "item", "sku": "101"}]})
        assert r.status_code == 201, r.text
        order = r.json()
    assert order["cashier"] == "terminal:T2"
    row = lan.shop.st.agent.store.query_one("SELECT terminal_id FROM orders WHERE order_id = ?",
                                            (order["order_id"],))
    assert row == {"terminal_id": "T2"}
    out = lan.shop.st.agent.store.query_one("SELECT payload FROM outbox WHERE event_id = ?",
                                            (f"order:{order['order_id']}:created",))
    assert out is not None and json.loads(out["payload"])["terminal_id"] == "T2"
    with lan.client("not-a-terminal-token-at-all") as c:
        assert c.get("/api/v1/session").status_code == 401


def test_cashier_session_is_bound_to_its_terminal(lan: LanStation) -> None:
    with lan.client(T1) as dev:
        r = dev.post("/api/v1/session/login", json={"cashier_id": "c01", "pin": "1234"})
        assert r.status_code == 200, r.text
        session = r.json()["token"]
    with lan.client(session, **{"X-Terminal-Token": T1}) as c:
        assert c.get("/api/v1/session").json() == {"actor": "c01", "role": "cashier"}
        r = c.post("/api/v1/checkout/orders", json={"lines": [{"kind": "item", "sku": "101"}]})
        assert r.status_code == 201, r.text
        order = r.json()
    assert order["cashier"] == "c01"
    row = lan.shop.st.agent.store.query_one("SELECT terminal_id FROM orders WHERE order_id = ?",
                                            (order["order_id"],))
    assert row == {"terminal_id": "T1"}
    with lan.client(session, **{"X-Terminal-Token": T3}) as stolen:  # the same session on another device
        r = stolen.get("/api/v1/session")
        assert r.status_code == 403 and r.json()["error"]["code"] == "wrong_terminal"


def test_two_terminals_claim_one_fill_at_once(lan: LanStation) -> None:
    fill = lan.shop.fill(1, min_ml=2_000)
    barrier = threading.Barrier(2)
    results: dict[str, httpx.Response] = {}

    def claim(tid: str, token: str) -> None:
        with lan.client(token) as c:
            c.get("/health")  # connect and handshake before the race
            barrier.wait(timeout=10)
            results[tid] = c.post("/api/v1/checkout/orders",
                                  json={"lines": [{"kind": "fuel", "fill_id": fill["fill_id"]}]})

    threads = [threading.Thread(target=claim, args=(t, tok)) for t, tok in (("T1", T1), ("T2", T2))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    codes = sorted(r.status_code for r in results.values())
    assert codes == [201, 409], {k: v.text for k, v in results.items()}
    winner = next(k for k, v in results.items() if v.status_code == 201)
    loser = results["T2" if winner == "T1" else "T1"].json()["error"]
    receipt = results[winner].json()["receipt_no"]
    assert loser["code"] == "fill_not_available"
    assert loser["details"]["cashier"] == f"terminal:{winner}"
    assert f"terminal:{winner}" in loser["message"] and receipt in loser["message"]


# ------------------------------------------------------------------ the LAN gate, without a LAN
def _gated(terminals: Terminals) -> Any:
    """``get(path, **kw) -> httpx.Response`` against the gate, as a client at 192.168.10.21 (in-process ASGI)."""
    app = FastAPI()

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"ok": True}

    @app.get("/api/v1/x")
    def x() -> dict[str, Any]:
        return {"ok": True}

    transport = httpx.ASGITransport(app=TerminalGate(app, terminals), client=("192.168.10.21", 50123))

    def get(path: str, **kw: Any) -> httpx.Response:
        async def go() -> httpx.Response:
            async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
                return await c.get(path, **kw)

        return asyncio.run(go())

    return get


def test_lan_clients_must_prove_a_terminal() -> None:
    terms = Terminals({"T1": hashlib.sha256(T1.encode()).hexdigest()})
    get = _gated(terms)
    assert get("/health").status_code == 200
    r = get("/api/v1/x", headers={"Authorization": f"Bearer {TOKEN}"})  # the station token stays on the box
    assert r.status_code == 401 and r.json()["error"]["code"] == "terminal_required"
    assert get("/api/v1/x", headers={"X-Terminal-Id": "T1"}).status_code == 401  # a claim is not a proof
    assert get("/api/v1/x", headers={"Authorization": f"Bearer {T1}"}).status_code == 200
    assert get("/api/v1/x", headers={"X-Terminal-Token": T1, "Authorization": "Bearer s"}).status_code == 200
    assert get("/api/v1/x", params={"token": T1}).status_code == 200
    assert terms.match(T2) is None and terms.match("") is None


@pytest.mark.parametrize(("host", "local"), [("127.0.0.1", True), ("127.3.4.5", True), ("::1", True),
                                             ("::ffff:127.0.0.1", True), (None, True), ("192.168.1.2", False),
                                             ("10.0.0.1", False), ("testclient", False)])
def test_loopback(host: str | None, local: bool) -> None:
    assert is_loopback(host) is local


def test_config_refuses_lan_without_tls() -> None:
    base: dict[str, Any] = {"station": {"id": "S1"}, "grades": [{"code": "92", "name": "92#", "price_fen": 789}]}
    with pytest.raises(ConfigError, match="not loopback"):
        parse_config({**base, "api": {"host": "0.0.0.0"}})
    with pytest.raises(ConfigError, match="go together"):
        parse_config({**base, "api": {"tls_cert": "a.pem"}})
    with pytest.raises(ConfigError, match="token_sha256"):
        parse_config({**base, "api": {"terminals": [{"id": "T1", "token_sha256": "short"}]}})
    with pytest.raises(ConfigError, match="listed twice"):
        parse_config({**base, "api": {"terminals": [{"id": "T1", "token_sha256": "a" * 64},
                                                     {"id": "T1", "token_sha256": "b" * 64}]}})
    cfg = parse_config({**base, "api": {"host": "0.0.0.0", "tls_cert": "c.pem", "tls_key": "k.pem",
                                        "terminals": [{"id": "T1", "token_sha256": "a" * 64}]}})
    assert cfg.api.terminals[0].id == "T1"


def test_loopback_terminal_may_name_itself(lan: LanStation) -> None:
    """On the agent's own box a terminal may just say who it is (``X-Terminal-Id``); the session binds to it."""
    with lan.client(TOKEN) as dev:
        session = dev.post("/api/v1/session/login", json={"cashier_id": "c01", "pin": "1234"}).json()["token"]
    with lan.client(session, **{"X-Terminal-Id": "LOCAL1"}) as c:
        r = c.post("/api/v1/checkout/orders", json={"lines": [{"kind": "item", "sku": "101"}]})
        assert r.status_code == 201, r.text
    row = lan.shop.st.agent.store.query_one("SELECT terminal_id FROM orders WHERE order_id = ?",
                                            (r.json()["order_id"],))
    assert row == {"terminal_id": "LOCAL1"}
    with lan.client(session, **{"X-Terminal-Id": "LOCAL2"}) as other:
        assert other.get("/api/v1/session").status_code == 403


def test_server_from_config_checks_the_pem_files(tmp_path: Path, pki: Pki) -> None:
    from agent.api import ApiServer
    from tests.scale.conftest import api_config

    cfg = api_config(pki)
    with pytest.raises(ValueError, match=r"api\.tls_cert: no file"):
        ApiServer.from_config(FastAPI(), cfg, tmp_path)  # relative names resolved against the wrong folder
    server = ApiServer.from_config(FastAPI(), cfg, pki.ca.parent, port=0)
    assert server.scheme == "https" and server.url.startswith("https://127.0.0.1:")
