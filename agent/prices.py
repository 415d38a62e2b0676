"""Price book: versioned price sets and getting them onto the pumps safely (R4).

* Version 1 comes from the config's grades the first time the agent starts.
* A new price set is a new version (from the center, or local with manager
  rights); every fill records the version it was sold under.
* A pump gets new prices only when idle with no open fill (a pump in a fill
  gets them after it); DART CD5 always carries every nozzle.
* Every change is read back from the pump and compared; a mismatch or a
  refused command is retried at least ``RETRY_S`` apart (only while the pump is
  idle), and after ``MAX_TRIES`` the pump is locked as inoperative rather than
  selling at an unknown price.  Each verified or failed pump is reported to the
  center through the outbox (``price_set.applied`` / ``price_set.failed``).
* **Scheduled changes:** a price set may carry ``effective_at_ms`` in the
  future (entered locally, or pushed by the center).  The current set is always
  the highest version whose time has come and that was not cancelled; a timer
  (``agent.shifts.ManagerService``) calls ``apply_due`` and then pushes the new
  set to idle pumps.  A scheduled set overtaken by a higher version that is
  already current never applies (it is reported as superseded).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import sqlite_utils

from agent.errors import Conflict, InvalidRequest, NotFound
from agent.store.records import add_audit, enqueue
from drivers.base import PricesRead, PumpState, SetPrices

if TYPE_CHECKING:
    from agent.forecourt import PumpView
    from agent.service import Agent

log = logging.getLogger(__name__)

__all__ = ["PriceBook"]

RETRY_S = 2.0
MAX_TRIES = 3
Submit = Callable[[Any], None]


class PriceBook:
    def __init__(self, agent: Agent) -> None:
        self._agent = agent
        self._store = agent.store
        self._lock = threading.Lock()
        self._version = 0
        self._prices: dict[str, int] = {}
        self._applied: dict[int, int] = {}  #: pump -> version verified on the pump
        self._tries: dict[int, int] = {}
        self._sent: dict[int, int] = {}  #: pump -> version sent, awaiting read-back

    # ------------------------------------------------------------ versions
    def ensure_initial(self) -> None:
        """Create version 1 from the config the first time; (re)load the newest effective version."""
        cfg = self._agent.config
        now = self._agent.clock.now_ms()
        prices = {g.code: g.price_fen for g in cfg.grades}

        def tx(db: sqlite_utils.Database) -> tuple[int, dict[str, int]]:
            if db.execute("SELECT 1 FROM price_sets LIMIT 1").fetchone() is None:
                db.execute("INSERT INTO price_sets(version, prices, source, effective_at_ms, created_at_ms) "
                           "VALUES (1, ?, 'config', ?, ?)", [json.dumps(prices), now, now])
            return _effective(db, now)

        version, current = self._store.write(tx)
        # grades added to the config later get their configured price
        for code, fen in prices.items():
            current.setdefault(code, fen)
        with self._lock:
            self._version, self._prices = version, current

    def apply_due(self) -> int | None:
        """Switch to a scheduled set whose time has come; the new version, or None when unchanged."""
        now = self._agent.clock.now_ms()
        version, prices = _effective(self._store.reader(), now)
        with self._lock:
            if version == self._version:
                return None
            old = self._version
            for code, fen in self._prices.items():
                prices.setdefault(code, fen)
            self._version, self._prices = version, prices
            self._tries.clear()
        log.info("price set %s is now effective (was %s)", version, old)
        self._agent.bus.publish("prices.changed", {"version": version, "prices_fen": prices, "scheduled": True})
        return version

    def scheduled(self) -> list[dict[str, Any]]:
        """Price sets not yet effective (and not cancelled), oldest first."""
        now = self._agent.clock.now_ms()
        rows = self._store.query("SELECT version, prices, source, effective_at_ms, created_at_ms FROM price_sets "
                                 "WHERE effective_at_ms > ? AND cancelled_at_ms IS NULL ORDER BY effective_at_ms",
                                 (now,))
        current = self.current_version()
        return [{**r, "prices_fen": json.loads(r.pop("prices")), "superseded": r["version"] < current}
                for r in rows]

    def cancel_scheduled(self, version: int, *, actor: str) -> dict[str, Any]:
        """Cancel a price set that is not effective yet (an effective one can only be replaced)."""
        now = self._agent.clock.now_ms()

        def tx(db: sqlite_utils.Database) -> dict[str, Any]:
            row = db.execute("SELECT prices, effective_at_ms, cancelled_at_ms FROM price_sets WHERE version = ?",
                             [version]).fetchone()
            if row is None:
                raise NotFound(f"no price set {version}", code="unknown_price_set")
            if row[2] is not None:
                return {"version": version, "cancelled_at_ms": row[2]}
            if row[1] <= now:
                raise Conflict(f"price set {version} is already effective: enter a new change instead",
                               code="price_set_effective")
            db.execute("UPDATE price_sets SET cancelled_at_ms = ? WHERE version = ?", [now, version])
            add_audit(db, at_ms=now, actor=actor, action="price.cancel", target=f"price_set:{version}",
                      before={"version": version, "prices_fen": json.loads(row[0]), "effective_at_ms": row[1]},
                      after={"cancelled": True})
            return {"version": version, "cancelled_at_ms": now}

        return self._store.write(tx)

    def current_version(self) -> int:
        with self._lock:
            return self._version

    def version_on(self, pump_id: int) -> int | None:
        """The version verified on a pump by read-back (None before the first verification)."""
        with self._lock:
            return self._applied.get(pump_id)

    def current(self) -> dict[str, Any]:
        with self._lock:
            return {"version": self._version, "prices_fen": dict(self._prices),
                    "applied": dict(self._applied)}

    def new_version(self, prices_fen: dict[str, int], *, actor: str, source: str = "local",
                    version: int | None = None, max_step_fen: int | None = None,
                    effective_at_ms: int | None = None) -> int:
        """Store a new price set (versioned); pumps pick it up when idle.  Returns the version.

        With ``effective_at_ms`` in the future the set is only scheduled: it becomes current when
        ``apply_due`` runs after that time.  Versions are numbered above every stored one
        (scheduled ones included).
        """
        grades = {g.code for g in self._agent.config.grades}
        unknown = set(prices_fen) - grades
        if unknown:
            raise InvalidRequest(f"unknown grade(s) {sorted(unknown)}", code="unknown_grade")
        for code, fen in prices_fen.items():
            if isinstance(fen, bool) or not isinstance(fen, int) or not 1 <= fen <= 100_000:
                raise InvalidRequest(f"price of {code}: expected fen per litre 1..100000", code="bad_price")
        with self._lock:
            old = dict(self._prices)
            current_version = self._version
        if max_step_fen is not None:
            for code, fen in prices_fen.items():
                if abs(fen - old.get(code, fen)) > max_step_fen:
                    raise InvalidRequest(f"price step for {code} is {fen - old[code]} fen, above the limit "
                                         f"{max_step_fen}", code="price_step_too_large")
        new = {**old, **prices_fen}
        now = self._agent.clock.now_ms()
        effective = now if effective_at_ms is None or effective_at_ms <= now else effective_at_ms
        scheduled = effective > now

        def tx(db: sqlite_utils.Database) -> int:
            top = int(db.execute("SELECT COALESCE(MAX(version), 0) FROM price_sets").fetchone()[0])
            target = version if version is not None else max(top, current_version) + 1
            if target <= current_version or (version is not None and target <= top):
                return current_version if target <= current_version else top  # old or repeated: ignore
            db.execute("INSERT INTO price_sets(version, prices, source, effective_at_ms, created_at_ms) "
                       "VALUES (?, ?, ?, ?, ?)", [target, json.dumps(new), source, effective, now])
            add_audit(db, at_ms=now, actor=actor, action="price.schedule" if scheduled else "price.change",
                      target="price_set", before={"version": current_version, "prices_fen": old},
                      after={"version": target, "prices_fen": new, "effective_at_ms": effective})
            enqueue(db, event_id=f"price_set:{target}", aggregate="price_set", aggregate_id=str(target),
                    kind="price_set.created", payload={"version": target, "prices_fen": new, "source": source,
                                                       "effective_at_ms": effective}, now_ms=now)
            return -target

        stored = self._store.write(tx)
        if stored >= 0:
            return stored
        target = -stored
        if scheduled:
            self._agent.bus.publish("prices.scheduled", {"version": target, "prices_fen": new,
                                                         "effective_at_ms": effective})
            return target
        with self._lock:
            self._version, self._prices = target, new
            self._tries.clear()
        self._agent.bus.publish("prices.changed", {"version": target, "prices_fen": new})
        return target

    # ------------------------------------------------------------ pumps
    def _command(self, view: PumpView) -> SetPrices:
        with self._lock:
            prices = self._prices
            return SetPrices(view.pump_id, prices_fen=tuple(
                (lg, prices[grade]) for lg, (_, grade) in sorted(view.nozzles.items())))

    def program(self, view: PumpView, submit: Submit) -> None:
        """Send the current prices to a pump (zeroized pump, or an idle pump behind on its version)."""
        with self._lock:
            self._sent[view.pump_id] = self._version
        try:
            submit(self._command(view))
        except Exception as exc:
            log.warning("pump %s: prices not sent: %s", view.pump_id, exc)

    def apply_pending(self, view: PumpView, submit: Submit) -> None:
        with self._lock:
            behind = self._applied.get(view.pump_id) != self._version and \
                self._sent.get(view.pump_id) != self._version
        if behind and view.fill_id is None:
            self.program(view, submit)

    def on_read_back(self, view: PumpView, ev: PricesRead, submit: Submit) -> None:
        expected = dict(self._command(view).prices_fen)
        got = dict(ev.prices_fen)
        with self._lock:
            version = self._sent.get(view.pump_id, self._version)
        if got == expected:
            with self._lock:
                self._applied[view.pump_id] = version
                self._tries.pop(view.pump_id, None)
            view.prices_ok = True
            self._report(view.pump_id, version, "applied", {"prices_fen": {str(k): v for k, v in got.items()}})
            self._agent.bus.publish("pump.prices", {"pump_id": view.pump_id, "version": version, "ok": True})
            return
        view.prices_ok = False
        self._agent.bus.publish("pump.prices", {"pump_id": view.pump_id, "version": version, "ok": False,
                                                "expected": expected, "read": got})
        self._retry(view, submit, f"read back {got}, expected {expected}")

    def on_failed(self, view: PumpView, reason: str, submit: Submit | None = None) -> None:
        """The pump refused SetPrices: reported at once, retried ``RETRY_S`` later when ``submit`` is given."""
        view.prices_ok = False
        self._agent.bus.publish("pump.prices", {"pump_id": view.pump_id, "ok": False, "reason": reason})
        with self._lock:
            self._sent.pop(view.pump_id, None)
        if submit is not None:
            self._retry(view, submit, f"command refused: {reason}")

    def _report(self, pump_id: int, version: int, outcome: str, detail: dict[str, Any]) -> None:
        """Tell the center which version a pump runs (or that it could not be set); once per outcome."""
        now = self._agent.clock.now_ms()
        try:
            self._store.write(lambda db: enqueue(
                db, event_id=f"price_set:{version}:pump:{pump_id}:{outcome}", aggregate="price_set",
                aggregate_id=str(version), kind=f"price_set.{outcome}",
                payload={"version": version, "pump_id": pump_id, "at_ms": now, **detail}, now_ms=now))
        except Exception:  # reporting must never stop the pump side
            log.exception("pump %s: could not queue the price report", pump_id)

    def _retry(self, view: PumpView, submit: Submit, why: str) -> None:
        with self._lock:
            tries = self._tries.get(view.pump_id, 0) + 1
            self._tries[view.pump_id] = tries
        if tries >= MAX_TRIES:
            log.error("pump %s: price change not verified after %d tries (%s): locking it", view.pump_id, tries, why)
            self._report(view.pump_id, self.current_version(), "failed", {"reason": why, "tries": tries})
            self._agent.bus.publish("pump.inoperative", {"pump_id": view.pump_id, "reason": why})
            locker = getattr(self._agent, "forecourt", None)
            if locker is not None:
                locker.set_locked(view.pump_id, True, reason="price not verified", actor="system")
            return
        timer = threading.Timer(RETRY_S, self._retry_if_idle, args=(view, submit))
        timer.daemon = True
        timer.start()

    def _retry_if_idle(self, view: PumpView, submit: Submit) -> None:
        """R4: prices go only to an idle pump; a busy one is retried by ``apply_pending`` when idle again."""
        if view.fill_id is None and view.state in (PumpState.IDLE, PumpState.CLOSED):
            self.program(view, submit)
        else:
            with self._lock:
                self._sent.pop(view.pump_id, None)


def _effective(db: sqlite_utils.Database, now_ms: int) -> tuple[int, dict[str, int]]:
    """The highest version whose time has come and that was not cancelled."""
    row = db.execute("SELECT version, prices FROM price_sets WHERE effective_at_ms <= ? AND cancelled_at_ms IS NULL"
                     " ORDER BY version DESC LIMIT 1", [now_ms]).fetchone()
    if row is None:
        row = db.execute("SELECT version, prices FROM price_sets ORDER BY version LIMIT 1").fetchone()
    return int(row[0]), dict(json.loads(row[1]))
