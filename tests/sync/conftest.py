"""Fixtures for the sync tests: a real Mosquitto, the center simulator, an agent on a temp database."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent.config import parse_config
from agent.events import EventBus
from agent.service import Agent
from agent.store import Store
from sync.backoff import Backoff
from sync.broker import start_mosquitto, stop_mosquitto
from sync.center_sim.server import CenterHandle, serve_center
from sync.mqtt import MqttSettings
from sync.relay import RelaySettings
from sync.runtime import SyncHandle, start_sync
from tests.conftest import free_port

STATION = "T001"
FAST_RELAY = RelaySettings(batch_size=100, backoff=Backoff(base_s=0.05, cap_s=0.5), idle_poll_s=0.05,
                           probe_every_s=0.5)


@dataclass
class Broker:
    port: int
    workdir: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = start_mosquitto(self.port, self.workdir)

    def stop(self) -> None:
        if self.proc is not None:
            stop_mosquitto(self.proc)
            self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(free_port(), tmp_path / "mosquitto")
    b.start()
    yield b
    b.stop()


@pytest.fixture
def center(broker: Broker) -> Iterator[CenterHandle]:
    h = serve_center(mqtt=("127.0.0.1", broker.port))
    assert h.publisher is not None
    assert h.publisher.connected.wait(10)
    yield h
    h.stop()


@pytest.fixture
def center_http_only() -> Iterator[CenterHandle]:
    h = serve_center()
    yield h
    h.stop()


def station_config(center_url: str, mqtt_port: int) -> Any:
    return parse_config({
        "station": {"id": STATION, "name": "测试站"},
        "grades": [{"code": "92", "name": "92#汽油", "price_fen": 789},
                   {"code": "95", "name": "95#汽油", "price_fen": 839}],
        "center": {"url": center_url, "mqtt_host": "127.0.0.1", "mqtt_port": mqtt_port, "timeout_s": 2.0},
    })


@dataclass
class Station:
    agent: Agent
    sync: SyncHandle | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@pytest.fixture
def make_station(tmp_path: Path) -> Iterator[Callable[..., Station]]:
    made: list[Station] = []

    def make(center_url: str, mqtt_port: int, *, mqtt: bool = True, clock: Any = None,
             relay: RelaySettings = FAST_RELAY, start: bool = True) -> Station:
        cfg = station_config(center_url, mqtt_port)
        store = Store(tmp_path / f"station{len(made)}.db")
        agent = Agent(cfg, store, clock=clock, bus=EventBus())
        st = Station(agent)
        if start:
            http = httpx.Client(base_url=center_url, timeout=httpx.Timeout(2.0))
            st.extra["http"] = http
            st.sync = start_sync(agent, cfg, http_client=http, relay_settings=relay,
                                 mqtt_settings=MqttSettings(port=mqtt_port, reconnect_min_s=0.2, reconnect_max_s=1.0),
                                 mqtt_enabled=mqtt)
        made.append(st)
        return st

    yield make
    for st in made:
        if st.sync is not None:
            st.sync.stop()
            st.extra["http"].close()
        st.agent.close()


def wait_until(agent: Agent, pred: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    """Wait for ``pred()`` to hold, re-checking on every bus event (and at least every 50 ms)."""
    import time

    sub = agent.bus.subscribe(10_000)
    try:
        deadline = time.monotonic() + timeout
        while not pred():
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}")
            sub.get(timeout=min(0.05, left))
    finally:
        sub.close()


def outbox_depth(agent: Agent) -> int:
    return int(agent.sync_status()["depth"])
