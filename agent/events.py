"""A tiny thread-safe event bus: the core publishes, the API's stream subscribes.

Subscribers get their own bounded queue.  A slow subscriber (a stuck SSE
client) loses its oldest events and is told so with a ``stream_gap`` event; it
never blocks the publisher, so a hung UI can never slow a pump or a sale.
"""

from __future__ import annotations

import itertools
import queue
import threading
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Event", "EventBus", "Subscription"]


@dataclass(frozen=True)
class Event:
    """One event on the stream; ``topic`` is e.g. ``pump.status``, ``order.paid``, ``sync.state``."""

    seq: int
    topic: str
    data: dict[str, Any] = field(default_factory=dict)


class Subscription:
    def __init__(self, bus: EventBus, maxsize: int) -> None:
        self._bus = bus
        self.queue: queue.Queue[Event] = queue.Queue(maxsize)

    def get(self, timeout: float | None = None) -> Event | None:
        try:
            return self.queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self) -> None:
        self._bus.unsubscribe(self)

    def _offer(self, event: Event) -> None:
        try:
            self.queue.put_nowait(event)
        except queue.Full:
            try:  # drop the oldest, then mark the gap
                self.queue.get_nowait()
            except queue.Empty:
                pass
            try:
                self.queue.put_nowait(Event(event.seq, "stream_gap", {"dropped_before": event.seq}))
            except queue.Full:
                pass


class EventBus:
    def __init__(self) -> None:
        self._subs: list[Subscription] = []
        self._lock = threading.Lock()
        self._seq = itertools.count(1)

    def publish(self, topic: str, data: dict[str, Any] | None = None) -> Event:
        with self._lock:
            event = Event(next(self._seq), topic, dict(data or {}))
            subs = list(self._subs)
        for s in subs:
            s._offer(event)
        return event

    def subscribe(self, maxsize: int = 1000) -> Subscription:
        sub = Subscription(self, maxsize)
        with self._lock:
            self._subs.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            if sub in self._subs:
                self._subs.remove(sub)

    @property
    def subscriber_count(self) -> int:
        with self._lock:
            return len(self._subs)
