"""The agent application: wires config, store, event bus and the domain services.

``main.py`` builds the concrete parts (drivers, sync clients) and hands them
in; this module only knows the neutral interfaces.
"""

from __future__ import annotations

import logging
from typing import Any

from agent.clock import Clock, IdSource, SystemClock, UuidIds
from agent.config import StationConfig
from agent.errors import Unavailable
from agent.events import EventBus
from agent.orders import OrderService
from agent.store import Store
from agent.store.migrations import SCHEMA_VERSION
from agent.store.records import outbox_status
from agent.version import PACKAGE_VERSION, VERSION

log = logging.getLogger(__name__)

__all__ = ["VERSION", "Agent"]


class Agent:
    """One station's agent: owns the store and the services, no I/O of its own beyond SQLite."""

    def __init__(self, config: StationConfig, store: Store, *, clock: Clock | None = None,
                 ids: IdSource | None = None, bus: EventBus | None = None) -> None:
        self.config = config
        self.store = store
        self.clock = clock or SystemClock()
        self.ids = ids or UuidIds()
        self.bus = bus or EventBus()
        self.orders = OrderService(store, self.clock, self.ids, self.bus, config.station.id)
        self.started_at_ms = self.clock.now_ms()
        self._extra_health: dict[str, Any] = {}
        self._links: dict[str, bool] = {"center": False, "broker": False}
        #: The pump controller (agent.forecourt.Forecourt) when pumps are configured; set by it.
        self.forecourt: Any = None
        #: The checkout (agent.checkout.service.CheckoutService) when started; set by it.
        self.checkout: Any = None

    # ------------------------------------------------------------ connectivity
    def set_link(self, name: str, up: bool, detail: str = "") -> None:
        """The sync layer reports whether the center (HTTP) or the broker (MQTT) is reachable.

        Publishes ``sync.link`` on a change; ``online`` is the center's state, which decides
        whether online-only operations (QR, coupon lock, member creation, invoices) are allowed.
        """
        if self._links.get(name) == up:
            return
        self._links[name] = up
        self.bus.publish("sync.link", {"link": name, "up": up, "detail": detail, "online": self.online,
                                       **self.sync_status()})

    @property
    def online(self) -> bool:
        return self._links.get("center", False)

    def require_online(self, what: str) -> None:
        """Refuse an online-only operation with a clear message while the center is unreachable."""
        if not self.online:
            raise Unavailable(f"{what} needs the trade center, which is not reachable now (offline mode)",
                              code="offline", operation=what)

    def health(self) -> dict[str, Any]:
        return {
            "status": "ok",
            "station_id": self.config.station.id,
            "version": VERSION,
            "package": PACKAGE_VERSION,
            "schema_version": SCHEMA_VERSION,
            "uptime_s": (self.clock.now_ms() - self.started_at_ms) // 1000,
            "online": self.online,
            "links": dict(self._links),
            **self._extra_health,
        }

    def set_health(self, key: str, value: Any) -> None:
        self._extra_health[key] = value

    def sync_status(self) -> dict[str, Any]:
        return {**outbox_status(self.store.reader(), self.clock.now_ms()), "online": self.online,
                "links": dict(self._links)}

    def station(self) -> dict[str, Any]:
        c = self.config
        return {
            "station": c.station.model_dump(),
            "grades": [g.model_dump() for g in c.grades],
            "pumps": [
                {"pump_id": p.pump_id, "line": line.name, "address": p.address,
                 "nozzles": [n.model_dump() for n in p.nozzles]}
                for line in c.lines for p in line.pumps
            ],
            "policy": c.policy.model_dump(),
        }

    def close(self) -> None:
        self.store.close()
