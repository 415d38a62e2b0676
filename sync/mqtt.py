"""The station's MQTT client (paho-mqtt 2.x, MQTT 5): presence, config and commands from the center.

* Stable ``client_id`` (``forecourt-{station}``), ``clean_start=False`` and a
  ``SessionExpiryInterval``, so the broker keeps our subscription and queued QoS 1 messages while
  we are away; we still resubscribe in every ``on_connect``.
* Presence: retained ``online`` on connect, a retained last will ``offline``, and ``offline``
  published before a clean disconnect.
* ``manual_ack=True``: ``on_message`` only enqueues; one worker thread runs the inbox transaction
  (dedup + effect) and then acks, in arrival order.  ``ReceiveMaximum`` bounds what the broker
  sends before we ack, so the queue between paho and the worker is bounded too.  An ack for a
  message from an earlier connection is not sent (its redelivery is deduped instead).
* Reconnect: paho's doubling delay, with a per-station jittered start (RELIABILITY §2).
* Link state goes to ``agent.set_link("broker", …)``; ``on_connected`` lets the runtime kick the
  outbox relay (the center is likely back too).

Limits: paho persists nothing; every fact the center must know goes through the SQLite outbox
and HTTP, never through this client.  TLS (with the station's client certificate) when
``MqttSettings.tls`` holds a context: ``start_sync`` builds it from ``[center]``.
"""

from __future__ import annotations

import json
import logging
import queue
import random
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from sync.inbox import InboxProcessor
from sync.topics import SCHEMA_VERSION, down_filter, status_topic

if TYPE_CHECKING:
    from agent.service import Agent

log = logging.getLogger(__name__)

__all__ = ["MqttSettings", "StationMqtt"]


@dataclass(frozen=True)
class MqttSettings:
    host: str = "127.0.0.1"
    port: int = 1883
    keepalive_s: int = 30
    session_expiry_s: int = 7 * 24 * 3600
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 120.0
    max_inflight: int = 20
    max_queued: int = 100
    receive_maximum: int = 20
    #: MQTT over TLS with this client context (``sync.tls.client_context``); None = plain TCP.
    tls: ssl.SSLContext | None = None


@dataclass(frozen=True)
class _Delivery:
    generation: int
    topic: str
    payload: bytes
    mid: int
    qos: int


def _props(packet: int) -> Properties:
    return Properties(packet)  # type: ignore[no-untyped-call]


class StationMqtt:
    """One station's MQTT session.  ``start()`` returns at once; the link comes up in the background."""

    def __init__(self, agent: Agent, settings: MqttSettings, *, on_connected: Callable[[], None] | None = None,
                 rng: random.Random | None = None) -> None:
        self._agent = agent
        self.settings = settings
        self._on_connected = on_connected
        self._rng = rng or random.Random()
        self.station_id = agent.config.station.id
        self.inbox = InboxProcessor(agent)
        self.connected = threading.Event()
        self._generation = 0
        self._gen_lock = threading.Lock()
        self._queue: queue.Queue[_Delivery | None] = queue.Queue()
        self._worker = threading.Thread(target=self._work, name="mqtt-inbox", daemon=True)
        self.handled = 0

        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"forecourt-{self.station_id}",
                        protocol=MQTTProtocolVersion.MQTTv5, manual_ack=True)
        if settings.tls is not None:
            c.tls_set_context(settings.tls)
        c.max_inflight_messages_set(settings.max_inflight)
        c.max_queued_messages_set(settings.max_queued)
        c.reconnect_delay_set(self._jittered_min(), settings.reconnect_max_s)  # type: ignore[arg-type]
        c.will_set(status_topic(self.station_id), self._presence("offline"), qos=1, retain=True)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        c.on_subscribe = self._on_subscribe
        self._client = c

    def _jittered_min(self) -> float:
        return self.settings.reconnect_min_s * self._rng.uniform(0.5, 1.5)

    def _presence(self, state: str) -> str:
        return json.dumps({"schema": SCHEMA_VERSION, "station_id": self.station_id, "state": state,
                           "at_ms": self._agent.clock.now_ms()})

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        p = _props(PacketTypes.CONNECT)
        p.SessionExpiryInterval = self.settings.session_expiry_s
        p.ReceiveMaximum = self.settings.receive_maximum
        self._worker.start()
        self._client.connect_async(self.settings.host, self.settings.port, keepalive=self.settings.keepalive_s,
                                   clean_start=False, properties=p)
        self._client.loop_start()

    def stop(self, timeout: float = 5.0) -> None:
        """Publish ``offline`` (retained), disconnect cleanly, stop the threads."""
        if self.connected.is_set():
            info = self._client.publish(status_topic(self.station_id), self._presence("offline"), qos=1, retain=True)
            try:
                info.wait_for_publish(min(timeout, 2.0))
            except (RuntimeError, ValueError):
                pass
        self._client.disconnect()
        self._client.loop_stop()
        self._queue.put(None)
        self._worker.join(timeout)
        self._agent.set_link("broker", False, "stopped")

    # ------------------------------------------------------------ paho callbacks (paho's thread: no blocking)
    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any,
                    properties: Any) -> None:
        if reason_code.is_failure:
            log.warning("broker refused the connection: %s", reason_code)
            return
        with self._gen_lock:
            self._generation += 1
        client.subscribe(down_filter(self.station_id), qos=1)
        client.publish(status_topic(self.station_id), self._presence("online"), qos=1, retain=True)

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reason_codes: Any,
                      properties: Any) -> None:
        """The link counts as up once the broker confirmed our subscription (SUBACK)."""
        if any(getattr(rc, "is_failure", False) for rc in reason_codes):
            log.error("broker refused our subscription: %s", reason_codes)
            return
        self.connected.set()
        self._agent.set_link("broker", True)
        if self._on_connected is not None:
            self._on_connected()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any,
                       properties: Any) -> None:
        self.connected.clear()
        self._agent.set_link("broker", False, str(reason_code))
        client.reconnect_delay_set(self._jittered_min(), self.settings.reconnect_max_s)  # type: ignore[arg-type]

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self._gen_lock:
            gen = self._generation
        self._queue.put(_Delivery(gen, msg.topic, bytes(msg.payload), msg.mid, msg.qos))

    # ------------------------------------------------------------ the inbox worker
    def _work(self) -> None:
        while True:
            d = self._queue.get()
            if d is None:
                return
            try:
                res = self.inbox.handle(d.topic, d.payload)
            except Exception:  # store failure: not acked, so the broker redelivers after a reconnect
                log.exception("inbox could not store %s; not acked", d.topic)
                continue
            self.handled += 1
            if res.status != "duplicate":
                log.debug("inbox %s: %s", res.command_id, res.status)
            with self._gen_lock:
                current = self._generation
            if d.qos > 0 and d.generation == current:
                self._client.ack(d.mid, d.qos)
