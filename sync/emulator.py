"""Fleet emulation: many stations in a few processes, one Mosquitto, one trade-center simulator.

``StationEmulator`` is a real station minus the hardware: the real ``Agent`` (SQLite
store in WAL/FULL, orders, outbox, inbox) and the real sync side from ``start_sync``
(``OutboxRelay`` over HTTP with idempotency keys, ``StationMqtt`` with a persistent MQTT 5
session, presence and jittered reconnect).  It has no pumps, no local API and no
checkout: a "fill" is an order with one amount line, created by a load thread, which
goes through the same transaction + outbox + relay as a real sale.

``station_worker`` runs a group of emulated stations in one process and
``center_worker`` runs the center simulator in another; ``bench/fleet.py`` drives
both over ``multiprocessing`` pipes.  The center's state stamps the arrival time of
every first-seen upload (``event_id``), so the bench can measure fill → center
latency; downlink commands (``station.message``) are stamped when published and
when the station's inbox stored them.

Limits: all processes share one host clock (latencies are exact, but nothing
models WAN delay or loss); each emulated station costs ~5 threads and one SQLite
database, so one process holds a few dozen, not thousands.
"""

from __future__ import annotations

import heapq
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx

from agent.config import parse_config
from agent.events import EventBus
from agent.orders import LineRequest
from agent.service import Agent
from agent.store import Store
from sync.backoff import Backoff
from sync.center_sim.server import serve_center
from sync.center_sim.state import CenterState, UploadStatus, now_ms
from sync.mqtt import MqttSettings
from sync.relay import RelaySettings
from sync.runtime import SyncHandle, start_sync

__all__ = ["StationEmulator", "TimedCenterState", "center_worker", "station_worker"]

log = logging.getLogger(__name__)

_FILL = [LineRequest(kind="amount", amount_fen=20_000, name="fleet fill")]


@dataclass(frozen=True)
class EmulatorSettings:
    """Production defaults, except where a bench must finish (documented in docs/fleet.md)."""

    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 30.0
    relay_idle_poll_s: float = 0.25
    relay_backoff_cap_s: float = 30.0


class StationEmulator:
    """One emulated station: see the module docstring."""

    def __init__(self, station_id: str, workdir: Path, center_url: str, broker_port: int,
                 settings: EmulatorSettings = EmulatorSettings(), tls: Any = None) -> None:
        self.station_id = station_id
        cfg = parse_config({
            "station": {"id": station_id, "name": f"fleet {station_id}"},
            "grades": [{"code": "92", "name": "92#", "price_fen": 789}],
            "center": {"url": center_url, "mqtt_host": "127.0.0.1", "mqtt_port": broker_port, "timeout_s": 5.0},
        })
        self.agent = Agent(cfg, Store(workdir / f"{station_id}.db"), bus=EventBus())
        self._http = httpx.Client(base_url=center_url, timeout=httpx.Timeout(5.0, connect=3.0),
                                  limits=httpx.Limits(max_connections=2, max_keepalive_connections=1))
        self.sync: SyncHandle = start_sync(
            self.agent, cfg, http_client=self._http,
            relay_settings=RelaySettings(backoff=Backoff(base_s=1.0, cap_s=settings.relay_backoff_cap_s),
                                         idle_poll_s=settings.relay_idle_poll_s),
            mqtt_settings=MqttSettings(port=broker_port, reconnect_min_s=settings.reconnect_min_s,
                                       reconnect_max_s=settings.reconnect_max_s, tls=tls))
        self.created = 0

    @property
    def connected(self) -> bool:
        return self.sync.mqtt is not None and self.sync.mqtt.connected.is_set()

    def fill(self) -> None:
        """One sale: order + outbox row in one transaction; the relay uploads it in the background."""
        self.agent.orders.create(_FILL)
        self.created += 1

    def depth(self) -> int:
        return int(self.agent.sync_status()["depth"])

    def report(self) -> dict[str, Any]:
        q = self.agent.store.query
        return {
            "station_id": self.station_id, "created": self.created,
            "outbox": [(r["event_id"], r["created_at_ms"], r["state"], r["attempts"]) for r in
                       q("SELECT event_id, created_at_ms, state, attempts FROM outbox WHERE kind = 'order.created'")],
            "inbox": [(r["command_id"], r["received_at_ms"], r["status"]) for r in
                      q("SELECT command_id, received_at_ms, status FROM inbox WHERE kind = 'station.message'")],
        }

    def close(self) -> None:
        self.sync.stop()
        self._http.close()
        self.agent.close()


class _Poisson:
    """Calls ``action(key)`` for each key at exponential intervals of mean ``1/rate``, until stopped."""

    def __init__(self, keys: list[Any], action: Callable[[Any], None], seed: int) -> None:
        self._keys, self._action, self._rng = keys, action, random.Random(seed)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.errors = 0

    def start(self, rate: float) -> None:
        if rate <= 0 or not self._keys:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, args=(rate,), daemon=True, name="fleet-load")
        self._thread.start()

    def _run(self, rate: float) -> None:
        now = time.monotonic()
        heap = [(now + self._rng.expovariate(rate), i) for i in range(len(self._keys))]
        heapq.heapify(heap)
        while heap:
            at, i = heapq.heappop(heap)
            if self._stop.wait(max(0.0, at - time.monotonic())):
                return
            try:
                self._action(self._keys[i])
            except Exception:  # a failed fill is counted, never retried under another key
                self.errors += 1
                log.exception("fleet action failed")
            heapq.heappush(heap, (at + self._rng.expovariate(rate), i))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)


def fleet_tls(pki_dir: str | None, identity: str) -> Any:
    """MQTT-over-TLS client context for ``identity`` from a ``reliability.tlsbroker.make_pki`` dir, or None."""
    if not pki_dir:
        return None
    from sync.tls import client_context

    d = Path(pki_dir)
    return client_context(str(d / "ca.pem"), str(d / f"{identity}.pem"), str(d / f"{identity}.key"))


def station_worker(conn: Connection, station_ids: list[str], workdir: str, center_url: str, broker_port: int,
                   seed: int = 0, pki_dir: str | None = None) -> None:
    """Process entry: run ``station_ids`` as emulators; obey ``(command, arg)`` messages on ``conn``.

    Commands: ``wait_connected`` (→ seconds taken or ``None``), ``load`` rate/s per station,
    ``stop_load``, ``drain`` timeout (→ stations still holding pending rows), ``links`` (→ the
    link transitions seen so far), ``report``, ``quit``.
    """
    logging.basicConfig(level=logging.WARNING)
    stations = [StationEmulator(sid, Path(workdir), center_url, broker_port, tls=fleet_tls(pki_dir, sid))
                for sid in station_ids]
    by_id = {s.station_id: s for s in stations}
    load = _Poisson(station_ids, lambda sid: by_id[sid].fill(), seed)
    transitions: list[tuple[int, str, bool]] = []
    state = {s.station_id: False for s in stations}
    stop = threading.Event()

    def watch() -> None:  # link transitions, sampled every 10 ms (no bus subscription per station)
        while not stop.wait(0.01):
            for s in stations:
                up = s.connected
                if up != state[s.station_id]:
                    state[s.station_id] = up
                    transitions.append((now_ms(), s.station_id, up))

    threading.Thread(target=watch, daemon=True, name="fleet-links").start()
    conn.send(("started", len(stations)))
    try:
        while True:
            cmd, arg = conn.recv()
            if cmd == "wait_connected":
                t0 = time.monotonic()
                while not all(s.connected for s in stations) and time.monotonic() - t0 < float(arg):
                    stop.wait(0.02)
                conn.send(time.monotonic() - t0 if all(s.connected for s in stations) else None)
            elif cmd == "load":
                load.start(float(arg))
                conn.send("ok")
            elif cmd == "stop_load":
                load.stop()
                conn.send(load.errors)
            elif cmd == "drain":
                t0 = time.monotonic()
                while any(s.depth() for s in stations) and time.monotonic() - t0 < float(arg):
                    for s in stations:
                        s.sync.relay.kick()
                    stop.wait(0.1)
                conn.send([s.station_id for s in stations if s.depth()])
            elif cmd == "links":
                conn.send(list(transitions))
            elif cmd == "report":
                conn.send([s.report() for s in stations])
            elif cmd == "quit":
                break
    finally:
        stop.set()
        load.stop()
        for s in stations:
            s.close()
        conn.send("bye")


class TimedCenterState(CenterState):
    """The simulator's state, plus the arrival time (ms) of each first-seen upload ``event_id``."""

    def __init__(self) -> None:
        super().__init__(None)
        self.arrived_ms: dict[str, int] = {}

    def apply_upload(self, item: dict[str, Any]) -> tuple[UploadStatus, str]:
        with self.lock:
            status, reason = super().apply_upload(item)
            if status == "ok":
                self.arrived_ms[item["event_id"]] = now_ms()
            return status, reason


class _PresenceReplay:
    """Center side: when a station announces ``online``, re-publish its recent commands (same ids).

    A PUBACK only says the broker took a message; a broker that dies before saving
    (SIGKILL, power loss) forgets it, and a station that reconnects to an empty broker
    has no session either.  Without an application-level ack from the station, the
    center re-sends what it issued to that station in the last ``window_s`` when the
    station's retained presence turns ``online``; the station's inbox drops the copies.
    Limits: only a broker outage shorter than ``window_s`` is covered; a production
    center would track each station's acks instead (docs/fleet.md).
    """

    def __init__(self, port: int, resend: Callable[[str, str], None], window_s: float = 60.0,
                 tls: Any = None) -> None:
        import json
        import queue

        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

        self._json, self._resend, self._window_ms = json, resend, int(window_s * 1000)
        self._lock = threading.Lock()
        self._issued: dict[str, list[tuple[str, int]]] = {}
        self._queue: queue.Queue[str | None] = queue.Queue()
        self.replayed = 0
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="fleet-center-presence",
                        protocol=MQTTProtocolVersion.MQTTv5)
        if tls is not None:
            c.tls_set_context(tls)
        c.on_connect = lambda cl, *_: cl.subscribe("station/+/status", qos=1)
        c.on_message = self._on_message
        c.reconnect_delay_set(1, 2)
        c.connect_async("127.0.0.1", port, keepalive=30)
        c.loop_start()
        self._client = c
        self._thread = threading.Thread(target=self._run, daemon=True, name="presence-replay")
        self._thread.start()

    def issued(self, station_id: str, command_id: str, at_ms: int) -> None:
        with self._lock:
            self._issued.setdefault(station_id, []).append((command_id, at_ms))

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        try:
            data = self._json.loads(msg.payload)
        except ValueError:
            return
        if isinstance(data, dict) and data.get("state") == "online" and isinstance(data.get("station_id"), str):
            self._queue.put(data["station_id"])  # never block paho's thread

    def _run(self) -> None:
        while (sid := self._queue.get()) is not None:
            if self._window_ms <= 0:
                continue
            floor = now_ms() - self._window_ms
            with self._lock:
                recent = [cid for cid, at in self._issued.get(sid, []) if at >= floor]
            for cid in recent:
                self._resend(sid, cid)
                self.replayed += 1

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(10)
        self._client.disconnect()
        self._client.loop_stop()


def center_worker(conn: Connection, broker_port: int, station_ids: list[str], seed: int = 1,
                  replay_window_s: float = 60.0, pki_dir: str | None = None) -> None:
    """Process entry: the center simulator (HTTP + MQTT publisher) with downlink load on demand.

    Commands: ``downlink`` rate/s per station (``station.message`` commands, QoS 1, each
    re-published by the simulator's publisher until PUBACK, and re-sent when the station
    comes back online: ``_PresenceReplay``), ``stop_downlink``, ``report``, ``quit``.
    """
    logging.basicConfig(level=logging.WARNING)
    state = TimedCenterState()
    handle = serve_center(mqtt=("127.0.0.1", broker_port), state=state, mqtt_tls=fleet_tls(pki_dir, "center"))
    publisher = handle.publisher
    assert publisher is not None
    publisher.connected.wait(10)
    published: dict[str, tuple[str, int, int]] = {}
    seq = [0]
    failures = [0]

    def publish(sid: str, cid: str) -> None:
        while True:
            try:
                publisher.command(sid, "station.message", {"text": "fleet"}, command_id=cid)
                return
            except TimeoutError:  # broker away for long: same id again (the station dedups)
                failures[0] += 1

    replay = _PresenceReplay(broker_port, publish, replay_window_s, tls=fleet_tls(pki_dir, "center"))

    def send(sid: str) -> None:
        seq[0] += 1
        cid = f"fleet:{sid}:{seq[0]}"
        issued = now_ms()
        replay.issued(sid, cid, issued)  # before the first attempt: a replay may overtake it
        publish(sid, cid)
        published[cid] = (sid, issued, now_ms())

    downlink = _Poisson(station_ids, send, seed)
    conn.send(("started", handle.url))
    try:
        while True:
            cmd, arg = conn.recv()
            if cmd == "downlink":
                downlink.start(float(arg))
                conn.send("ok")
            elif cmd == "stop_downlink":
                downlink.stop()
                conn.send(downlink.errors)
            elif cmd == "report":
                with state.lock:
                    conn.send({"arrived": dict(state.arrived_ms), "replays": state.replays,
                               "applied": len(state.applied), "published": dict(published),
                               "publish_timeouts": failures[0], "replayed": replay.replayed})
            elif cmd == "quit":
                break
    finally:
        downlink.stop()
        replay.stop()
        handle.stop()
        conn.send("bye")
