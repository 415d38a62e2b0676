"""Price book: versioned price sets and getting them onto the pumps safely (R4).

* Version 1 comes from the config's grades the first time the agent starts.
* A new price set is a new version (from the center, or local with manager
  rights); every fill records the version it was sold under.
* A pump gets new prices only when idle with no open fill (a pump in a fill
  gets them after it); DART CD5 always carries every nozzle.
* Every change is read back from the pump and compared; a mismatch is retried
  at least ``RETRY_S`` apart, and after ``MAX_TRIES`` the pump is locked as
  inoperative rather than selling at an unknown price.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import sqlite_utils

from agent.errors import InvalidRequest
from agent.store.records import add_audit, enqueue
from drivers.base import PricesRead, SetPrices

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
        cfg = self._agent.config
        now = self._agent.clock.now_ms()
        prices = {g.code: g.price_fen for g in cfg.grades}

        def tx(db: sqlite_utils.Database) -> tuple[int, dict[str, int]]:
            row = db.execute("SELECT version, prices FROM price_sets ORDER BY version DESC LIMIT 1").fetchone()
            if row is not None:
                return int(row[0]), dict(json.loads(row[1]))
            db.execute("INSERT INTO price_sets(version, prices, source, effective_at_ms, created_at_ms) "
                       "VALUES (1, ?, 'config', ?, ?)", [json.dumps(prices), now, now])
            return 1, prices

        version, current = self._store.write(tx)
        # grades added to the config later get their configured price
        for code, fen in prices.items():
            current.setdefault(code, fen)
        with self._lock:
            self._version, self._prices = version, current

    def current_version(self) -> int:
        with self._lock:
            return self._version

    def current(self) -> dict[str, Any]:
        with self._lock:
            return {"version": self._version, "prices_fen": dict(self._prices),
                    "applied": dict(self._applied)}

    def new_version(self, prices_fen: dict[str, int], *, actor: str, source: str = "local",
                    version: int | None = None, max_step_fen: int | None = None) -> int:
        """Store a new price set (versioned); pumps pick it up when idle.  Returns the version."""
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
        target = version if version is not None else current_version + 1
        if target <= current_version:
            return current_version  # an old or repeated version from the center: ignore
        now = self._agent.clock.now_ms()

        def tx(db: sqlite_utils.Database) -> None:
            db.execute("INSERT INTO price_sets(version, prices, source, effective_at_ms, created_at_ms) "
                       "VALUES (?, ?, ?, ?, ?)", [target, json.dumps(new), source, now, now])
            add_audit(db, at_ms=now, actor=actor, action="price.change", target="price_set",
                      before={"version": current_version, "prices_fen": old},
                      after={"version": target, "prices_fen": new})
            enqueue(db, event_id=f"price_set:{target}", aggregate="price_set", aggregate_id=str(target),
                    kind="price_set.created", payload={"version": target, "prices_fen": new, "source": source},
                    now_ms=now)

        self._store.write(tx)
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
            self._agent.bus.publish("pump.prices", {"pump_id": view.pump_id, "version": version, "ok": True})
            return
        view.prices_ok = False
        self._agent.bus.publish("pump.prices", {"pump_id": view.pump_id, "version": version, "ok": False,
                                                "expected": expected, "read": got})
        self._retry(view, submit, f"read back {got}, expected {expected}")

    def on_failed(self, view: PumpView, reason: str) -> None:
        view.prices_ok = False
        self._agent.bus.publish("pump.prices", {"pump_id": view.pump_id, "ok": False, "reason": reason})
        with self._lock:
            self._sent.pop(view.pump_id, None)

    def _retry(self, view: PumpView, submit: Submit, why: str) -> None:
        with self._lock:
            tries = self._tries.get(view.pump_id, 0) + 1
            self._tries[view.pump_id] = tries
        if tries >= MAX_TRIES:
            log.error("pump %s: price change not verified after %d tries (%s): locking it", view.pump_id, tries, why)
            self._agent.bus.publish("pump.inoperative", {"pump_id": view.pump_id, "reason": why})
            locker = getattr(self._agent, "forecourt", None)
            if locker is not None:
                locker.set_locked(view.pump_id, True, reason="price not verified", actor="system")
            return
        timer = threading.Timer(RETRY_S, self.program, args=(view, submit))
        timer.daemon = True
        timer.start()
