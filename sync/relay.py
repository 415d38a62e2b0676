"""The outbox relay: sends the outbox to the center, in order per aggregate, exactly once.

One thread.  Each round it reads the oldest *due* pending message of every aggregate (a message
waits while an earlier message of the same aggregate is still pending; parked ones do not block),
at most ``batch_size`` of them, and posts them in one ``/upload/batch`` request (each item
idempotent by its ``event_id``).  If the center rejects the batch as a whole it falls back to one
request per message so a poison message is isolated and parked with its reason.

A row becomes ``confirmed`` only on the center's idempotent 2xx; ``parked`` on an invalid answer;
otherwise it stays ``pending`` with ``attempts``, ``last_error`` and ``next_attempt_at_ms``
(exponential backoff with full jitter).  A transport failure also backs the whole relay off and
marks the center link down; the first success marks it up.  Nothing is ever dropped.

Limits: one relay per database (it is the only writer of these columns).  Ordering holds per
``(aggregate, aggregate_id)``, not across aggregates.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import sqlite_utils

from sync.backoff import Backoff
from sync.http import CenterClient, CenterError, ItemResult, Outcome, OutMessage, RetryLater, Unauthorized

if TYPE_CHECKING:
    from agent.service import Agent

log = logging.getLogger(__name__)

__all__ = ["OutboxRelay", "RelaySettings", "due_messages"]

_DUE_SQL = """
SELECT o.id, o.event_id, o.aggregate, o.aggregate_id, o.kind, o.payload, o.attempts, o.created_at_ms
FROM outbox o
WHERE o.state = 'pending' AND o.next_attempt_at_ms <= ?
  AND NOT EXISTS (SELECT 1 FROM outbox p
                  WHERE p.aggregate = o.aggregate AND p.aggregate_id = o.aggregate_id
                    AND p.state = 'pending' AND p.id < o.id)
ORDER BY o.id LIMIT ?
"""


@dataclass(frozen=True)
class RelaySettings:
    batch_size: int = 200
    backoff: Backoff = field(default_factory=lambda: Backoff(base_s=1.0, cap_s=120.0))
    #: How long an idle relay sleeps before looking at the outbox again (``kick()`` wakes it).
    idle_poll_s: float = 0.25
    #: While idle and believed online, how often to probe ``/health`` to notice an outage.
    probe_every_s: float = 30.0


@dataclass(frozen=True)
class _Row:
    id: int
    attempts: int
    msg: OutMessage


def due_messages(db: sqlite_utils.Database, now_ms: int, limit: int) -> list[_Row]:
    """The head of each aggregate's pending queue that is due, oldest first."""
    rows = db.execute(_DUE_SQL, [now_ms, limit]).fetchall()
    return [_Row(int(r[0]), int(r[6]), OutMessage(str(r[1]), str(r[2]), str(r[3]), str(r[4]), str(r[5]), int(r[7])))
            for r in rows]


class OutboxRelay:
    """Drains the outbox over HTTP.  ``start()``/``stop()``; ``step()`` runs one round (tests)."""

    def __init__(self, agent: Agent, center: CenterClient, settings: RelaySettings | None = None,
                 *, rng: random.Random | None = None) -> None:
        self._agent = agent
        self._center = center
        self.settings = settings or RelaySettings()
        self._rng = rng or random.Random()
        self._failures = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_contact = float("-inf")
        self._paused = False
        self.sent = 0  #: messages confirmed by this relay since start (bench, tests)

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="outbox-relay", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def kick(self, *, reset_backoff: bool = False) -> None:
        """Look at the outbox now (new rows, or the broker came back so the center may have too)."""
        if reset_backoff:
            self._failures = 0
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                delay = self.step()
            except Exception:  # a bug or a failing disk: log, keep the rows, try again later
                log.exception("outbox relay round failed")
                delay = self.settings.backoff.cap_s
            if delay > 0:
                self._wake.wait(delay)
            self._wake.clear()

    # ------------------------------------------------------------ one round
    def step(self) -> float:
        """Send one batch; return how long to wait before the next round (0 = at once)."""
        now_ms = self._agent.clock.now_ms()
        rows = due_messages(self._agent.store.reader(), now_ms, self.settings.batch_size)
        if not rows:
            return self._idle()
        try:
            results = self._send([r.msg for r in rows])
        except Unauthorized as exc:
            log.error("center refused our credentials; relay paused, %d rows kept: %s", len(rows), exc)
            self._paused = True
            self._agent.set_health("sync_relay", {"paused": True, "reason": str(exc)})
            return self._failed(rows, str(exc), None)
        except RetryLater as exc:
            return self._failed(rows, str(exc), exc.retry_after_s)
        except CenterError as exc:
            return self._failed(rows, f"bad answer: {exc}", None)
        self._apply(rows, results)
        return 0.0

    def _send(self, msgs: Sequence[OutMessage]) -> list[ItemResult]:
        if len(msgs) > 1:
            results = self._center.upload_batch(msgs)
            if results is not None:
                return results
            log.warning("center rejected a batch of %d as a whole; sending one by one", len(msgs))
        out: list[ItemResult] = []
        for i, m in enumerate(msgs):
            try:
                out.append(self._center.upload_one(m))
            except RetryLater as exc:
                if not out:
                    raise
                out.extend(ItemResult(x.event_id, Outcome.RETRY, str(exc)) for x in msgs[i:])
                break
        return out

    def _idle(self) -> float:
        clock = self._agent.clock
        if self._agent.online and clock.monotonic() - self._last_contact < self.settings.probe_every_s:
            return self.settings.idle_poll_s
        if self._center.ping():
            self._contact()
            return self.settings.idle_poll_s
        self._agent.set_link("center", False, "health probe failed")
        self._failures += 1
        return max(self.settings.idle_poll_s, self.settings.backoff.delay(self._failures - 1, self._rng))

    def _contact(self) -> None:
        if self._paused:
            self._paused = False
            self._agent.set_health("sync_relay", {"paused": False})
        self._failures = 0
        self._last_contact = self._agent.clock.monotonic()
        self._agent.set_link("center", True)

    def _failed(self, rows: Sequence[_Row], reason: str, retry_after: float | None) -> float:
        self._failures += 1
        delay = self.settings.backoff.delay(self._failures - 1, self._rng)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.settings.backoff.cap_s))
        now_ms = self._agent.clock.now_ms()
        due = now_ms + int(delay * 1000)
        ids = [r.id for r in rows]

        def tx(db: sqlite_utils.Database) -> None:
            marks = ",".join("?" * len(ids))
            db.execute(f"UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at_ms = ? "  # noqa: S608
                       f"WHERE id IN ({marks}) AND state = 'pending'", [reason[:500], due, *ids])

        self._agent.store.write(tx)
        if not reason.startswith("HTTP 5") and not reason.startswith("HTTP 4"):
            self._agent.set_link("center", False, reason[:200])
        log.info("relay: %d message(s) not sent (%s); next try in %.2fs", len(rows), reason, delay)
        return delay

    def _apply(self, rows: Sequence[_Row], results: Sequence[ItemResult]) -> None:
        by_id = {r.msg.event_id: r for r in rows}
        now_ms = self._agent.clock.now_ms()
        confirmed = [by_id[r.event_id].id for r in results if r.outcome is Outcome.CONFIRMED and r.event_id in by_id]
        parked = [(r.reason, by_id[r.event_id].id) for r in results
                  if r.outcome is Outcome.PARK and r.event_id in by_id]
        retry = [(r.reason, now_ms + int(1000 * self.settings.backoff.delay(by_id[r.event_id].attempts, self._rng)),
                  by_id[r.event_id].id) for r in results if r.outcome is Outcome.RETRY and r.event_id in by_id]

        def tx(db: sqlite_utils.Database) -> None:
            for chunk in range(0, len(confirmed), 500):
                part = confirmed[chunk:chunk + 500]
                db.execute(f"UPDATE outbox SET state = 'confirmed', confirmed_at_ms = ?, last_error = NULL "  # noqa: S608
                           f"WHERE id IN ({','.join('?' * len(part))}) AND state = 'pending'", [now_ms, *part])
            for reason, row_id in parked:
                db.execute("UPDATE outbox SET state = 'parked', last_error = ?, attempts = attempts + 1 "
                           "WHERE id = ? AND state = 'pending'", [reason[:500], row_id])
            for reason, due, row_id in retry:
                db.execute("UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at_ms = ? "
                           "WHERE id = ? AND state = 'pending'", [reason[:500], due, row_id])

        self._agent.store.write(tx)
        self.sent += len(confirmed)
        for reason, row_id in parked:
            log.error("outbox message %d parked: %s", row_id, reason)
        self._contact()
        self._agent.bus.publish("sync.state", {**self._agent.sync_status(), "confirmed": len(confirmed),
                                               "parked_now": len(parked)})
