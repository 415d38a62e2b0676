"""Start and stop the whole sync side for one agent: HTTP client, outbox relay, MQTT session.

``start_sync(agent, config)`` is what ``main.py`` calls after the agent is built.  It never blocks
on the network: the relay and the MQTT client come up in the background and report their links
through ``agent.set_link``.  Selling never waits on sync.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from sync.http import CenterClient
from sync.mqtt import MqttSettings, StationMqtt
from sync.reconcile import reconcile
from sync.relay import OutboxRelay, RelaySettings
from sync.resync import Resync
from sync.tls import center_tls

if TYPE_CHECKING:
    from agent.config import StationConfig
    from agent.service import Agent

log = logging.getLogger(__name__)

__all__ = ["SyncHandle", "start_sync"]


@dataclass(frozen=True)
class SyncHandle:
    """The running sync side.  ``stop()`` is idempotent enough to call from a signal handler path."""

    agent: Agent
    center: CenterClient
    relay: OutboxRelay
    mqtt: StationMqtt | None
    _http: httpx.Client
    _owns_http: bool
    _state: dict[str, bool] = field(default_factory=lambda: {"stopped": False})

    def reconcile(self, day: str) -> dict[str, Any]:
        """Trade and settlement reconciliation of a UTC day ``YYYY-MM-DD`` (see ``sync.reconcile``)."""
        return reconcile(self.agent, self.center, day)

    def stop(self) -> None:
        if self._state["stopped"]:
            return
        self._state["stopped"] = True
        if self.mqtt is not None:
            self.mqtt.stop()
        self.relay.stop()
        if self._owns_http:
            self._http.close()


def start_sync(agent: Agent, config: StationConfig, *, http_client: httpx.Client | None = None,
               relay_settings: RelaySettings | None = None, mqtt_settings: MqttSettings | None = None,
               mqtt_enabled: bool = True, base: Path | None = None) -> SyncHandle:
    """Start the relay thread and the MQTT client for ``agent``; return a handle to stop them.

    ``config.center`` gives the center URL, the broker host/port and the HTTP timeout.
    ``http_client`` (tests: bound to the simulator or a ``MockTransport``) must have the center
    URL as ``base_url``; when omitted one is built with an explicit ``httpx.Timeout``.
    """
    c = config.center
    owns = http_client is None
    timeout = httpx.Timeout(c.timeout_s, connect=min(c.timeout_s, 3.0))
    tls = center_tls(c, base)  # raises TlsConfigError (a config error) before anything starts
    http = http_client or httpx.Client(base_url=c.url, timeout=timeout, verify=tls or True,
                                       limits=httpx.Limits(max_connections=4, max_keepalive_connections=2))
    center = CenterClient(http, config.station.id)
    relay = OutboxRelay(agent, center, relay_settings)
    mq = None
    if mqtt_enabled:
        ms = mqtt_settings or MqttSettings(host=c.mqtt_host, port=c.mqtt_port,
                                           tls=tls if c.use_mqtt_tls else None)
        holder: list[Resync] = []

        def connected() -> None:
            relay.kick(reset_backoff=True)
            if holder:
                holder[0].trigger()

        mq = StationMqtt(agent, ms, on_connected=connected)
        holder.append(Resync(center, mq.inbox))
    relay.start()
    if mq is not None:
        mq.start()
    log.info("sync started: center %s, broker %s:%s%s", c.url, c.mqtt_host, c.mqtt_port,
             " (TLS)" if c.use_mqtt_tls else "")
    return SyncHandle(agent, center, relay, mq, http, owns)
