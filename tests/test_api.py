"""The local API over real HTTP (uvicorn on a free loopback port, httpx as the client)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent.api import ApiServer, create_app
from agent.config import load_config
from agent.service import Agent
from agent.store import Store

TOKEN = "test-token-0123456789abcdef"


@pytest.fixture
def api(tmp_path: Path, basic_config_file: Path) -> Iterator[tuple[httpx.Client, Agent]]:
    agent = Agent(load_config(basic_config_file), Store(tmp_path / "f.db"))
    server = ApiServer(create_app(agent, TOKEN), port=0)
    server.start()
    client = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"},
                          timeout=httpx.Timeout(5.0))
    try:
        yield client, agent
    finally:
        client.close()
        server.stop()
        agent.close()


def _count(agent: Agent, table: str) -> int:
    row = agent.store.query_one(f"SELECT COUNT(*) AS n FROM {table}")  # noqa: S608 - fixed names
    assert row is not None
    return int(row["n"])


def test_health_needs_no_token_everything_else_does(api: tuple[httpx.Client, Agent]) -> None:
    client, _ = api
    assert client.get("/health", headers={"Authorization": ""}).json()["status"] == "ok"
    r = client.get("/api/v1/station", headers={"Authorization": "Bearer wrong-token-xxxxxxxx"})
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "unauthorized"
    assert client.get("/api/v1/station", headers={"Authorization": ""}).status_code == 401
    assert client.get("/api/v1/station").json()["station"]["id"] == "T001"


def test_foreign_host_header_is_refused(api: tuple[httpx.Client, Agent]) -> None:
    client, _ = api
    r = client.get("/health", headers={"Host": "evil.example:8640"})
    assert r.status_code == 421


def test_openapi_document_lists_the_endpoints(api: tuple[httpx.Client, Agent]) -> None:
    client, _ = api
    doc = client.get("/openapi.json").json()
    assert {"/health", "/api/v1/orders", "/api/v1/events", "/api/v1/sync/status"} <= set(doc["paths"])


def test_create_order_with_item_and_amount_lines(api: tuple[httpx.Client, Agent]) -> None:
    client, agent = api
    r = client.post("/api/v1/orders", json={"lines": [
        {"kind": "item", "sku": "6901234567892", "name": "矿泉水", "unit_price_fen": 200, "quantity": 3},
        {"kind": "amount", "amount_fen": 10_000},
    ], "cashier": "c01"})
    assert r.status_code == 201, r.text
    order = r.json()
    assert order["state"] == "init"
    assert order["total_fen"] == 10_600
    assert order["payable_fen"] == 10_600
    assert [ln["amount_fen"] for ln in order["lines"]] == [600, 10_000]
    assert order["lines"][1]["name"] == "买单"
    assert order["receipt_no"].startswith("T001-")
    assert client.get(f"/api/v1/orders/{order['order_id']}").json() == order
    assert agent.sync_status()["depth"] == 1  # the center will hear about it


def test_replayed_request_returns_the_same_order(api: tuple[httpx.Client, Agent]) -> None:
    client, agent = api
    body = {"lines": [{"kind": "amount", "amount_fen": 500}], "request_key": "req-0001-abcdef"}
    a = client.post("/api/v1/orders", json=body).json()
    b = client.post("/api/v1/orders", json=body).json()
    assert a["order_id"] == b["order_id"]
    assert _count(agent, "orders") == 1


@pytest.mark.parametrize(
    "body",
    [
        {"lines": []},
        {"lines": [{"kind": "amount", "amount_fen": -100}]},
        {"lines": [{"kind": "amount", "amount_fen": 0}]},
        {"lines": [{"kind": "amount", "amount_fen": 12.5}]},
        {"lines": [{"kind": "amount", "amount_fen": "100"}]},
        {"lines": [{"kind": "amount"}]},
        {"lines": [{"kind": "item", "name": "水", "unit_price_fen": 100}]},
        {"lines": [{"kind": "fuel", "amount_fen": 100}]},
        {"lines": [{"kind": "amount", "amount_fen": 100}], "unexpected": 1},
        {"lines": [{"kind": "amount", "amount_fen": 100_000_000}]},
    ],
)
def test_invalid_orders_get_4xx_and_change_nothing(api: tuple[httpx.Client, Agent], body: dict[str, Any]) -> None:
    client, agent = api
    r = client.post("/api/v1/orders", json=body)
    assert 400 <= r.status_code < 500
    err = r.json()["error"]
    assert err["code"] and err["message"]
    assert _count(agent, "orders") == 0
    assert _count(agent, "outbox") == 0


def test_garbage_body_is_rejected(api: tuple[httpx.Client, Agent]) -> None:
    client, agent = api
    r = client.post("/api/v1/orders", content=b"\xff\x00not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 422
    assert _count(agent, "orders") == 0


def test_cancel_and_not_found(api: tuple[httpx.Client, Agent]) -> None:
    client, _ = api
    order = client.post("/api/v1/orders", json={"lines": [{"kind": "amount", "amount_fen": 500}]}).json()
    r = client.post(f"/api/v1/orders/{order['order_id']}/cancel", json={"reason": "customer left"})
    assert r.json()["state"] == "closed"
    assert client.post(f"/api/v1/orders/{order['order_id']}/cancel", json={}).json()["state"] == "closed"
    assert client.get("/api/v1/orders/nope").status_code == 404
    assert client.get("/api/v1/orders", params={"state": "weird"}).status_code == 422


def test_event_stream_delivers_order_events(api: tuple[httpx.Client, Agent]) -> None:
    client, _ = api
    got: list[dict[str, Any]] = []
    subscribed = threading.Event()
    done = threading.Event()

    def listen() -> None:
        with client.stream("GET", "/api/v1/events", params={"heartbeat_s": 0.2}) as resp:
            event = None
            for line in resp.iter_lines():
                if line.startswith("event: "):
                    event = line[7:]
                    if event == "hello":
                        subscribed.set()
                elif line.startswith("data: ") and event == "order.created":
                    got.append(json.loads(line[6:]))
                    done.set()
                    return

    t = threading.Thread(target=listen, daemon=True)
    t.start()
    assert subscribed.wait(5)
    order = client.post("/api/v1/orders", json={"lines": [{"kind": "amount", "amount_fen": 700}]}).json()
    assert done.wait(5), "no order.created event arrived"
    assert got[0]["order_id"] == order["order_id"]
    assert got[0]["payable_fen"] == 700
    t.join(5)
