"""The simulated center's MQTT side: retained versioned config, commands, payment results.

paho-mqtt 2.x, MQTT 5, QoS 1, its own persistent session (``center-sim`` client id).  Commands
carry an ``id`` (the station's dedup key) and, when time-critical, an MQTT 5
``MessageExpiryInterval`` plus ``expires_at_ms`` in the payload.  ``publish`` blocks until the
broker's PUBACK (or ``timeout``) and retries with the same id after a reconnect, so a command is
at least once; the station dedups.
"""

from __future__ import annotations

import json
import logging
import ssl
import threading
import time
import uuid
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from sync.topics import SCHEMA_VERSION, command_topic, config_topic

__all__ = ["SimPublisher"]

log = logging.getLogger(__name__)


class SimPublisher:
    def __init__(self, host: str, port: int, *, client_id: str = "forecourt-center-sim",
                 tls: ssl.SSLContext | None = None) -> None:
        self.connected = threading.Event()
        self._lock = threading.Lock()
        self.published = 0
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5)
        if tls is not None:
            c.tls_set_context(tls)
        c.max_inflight_messages_set(50)
        c.reconnect_delay_set(0.1, 2)  # type: ignore[arg-type]
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        p = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        p.SessionExpiryInterval = 3600
        c.connect_async(host, port, keepalive=30, clean_start=False, properties=p)
        self._client = c

    def start(self) -> SimPublisher:
        self._client.loop_start()
        return self

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        if not rc.is_failure:
            self.connected.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        self.connected.clear()

    # ------------------------------------------------------------ publishing
    def publish(self, topic: str, payload: dict[str, Any] | bytes, *, retain: bool = False,
                ttl_s: int | None = None, timeout: float = 30.0) -> None:
        """Publish QoS 1 and wait for PUBACK, re-publishing after a lost connection; raise on timeout."""
        body = payload if isinstance(payload, bytes) else json.dumps(payload, ensure_ascii=False).encode()
        props = None
        if ttl_s is not None:
            props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            props.MessageExpiryInterval = int(ttl_s)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not self.connected.wait(left):
                raise TimeoutError(f"broker did not accept {topic} in {timeout}s")
            with self._lock:
                info = self._client.publish(topic, body, qos=1, retain=retain, properties=props)
            try:
                info.wait_for_publish(min(5.0, max(0.1, deadline - time.monotonic())))
            except (RuntimeError, ValueError):
                pass  # not connected / queue full: wait for the connection and publish again
            if info.is_published():
                self.published += 1
                return

    def command(self, station_id: str, kind: str, data: dict[str, Any], *, command_id: str | None = None,
                ttl_s: int | None = None) -> str:
        cid = command_id or str(uuid.uuid4())
        msg: dict[str, Any] = {"schema": SCHEMA_VERSION, "id": cid, "kind": kind, "data": data,
                               "issued_at_ms": time.time_ns() // 1_000_000}
        if ttl_s is not None:
            msg["expires_at_ms"] = msg["issued_at_ms"] + int(ttl_s) * 1000
        self.publish(command_topic(station_id, kind), msg, ttl_s=ttl_s)
        return cid

    def config(self, station_id: str, name: str, version: int, data: dict[str, Any]) -> None:
        self.publish(config_topic(station_id, name), {"schema": SCHEMA_VERSION, "version": version, "data": data},
                     retain=True)

    def payment_result(self, station_id: str, trade: dict[str, Any], *, times: int = 1) -> None:
        data = {k: trade.get(k) for k in ("trade_no", "out_trade_no", "order_id", "amount_fen", "status",
                                          "paid_at_ms", "channel")}
        for _ in range(times):  # duplicate notifies reuse the same id: the station must act once
            self.command(station_id, "payment.result", data, command_id=f"notify:{trade['trade_no']}:{trade['status']}")
