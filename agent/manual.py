"""Manual fuel sales and pump tests: volumes the meter sees that no normal fill explains.

* **Manual sale** (pump not connected: the dispenser runs stand-alone, the attendant reads the
  volume off its display).  Recorded as a fill of kind ``manual`` in state ``finished`` at the
  current price of the nozzle's grade, so the cashier sells it through the normal checkout
  (fuel line, quote, payment, receipt) and it counts in the sales and in the meter
  reconciliation like any fill.  Only for a pump the agent cannot drive (offline, or no pump
  controller); an online pump sells through the pump.  Audited as ``manual.sale``.
* **Pump test** (meter check, 自检/校验: product drawn into a measure and poured back).  Either
  run through the pump — the pump is authorized for the test and the resulting fill is stored as
  state ``test`` the moment it ends (trigger ``fills_pump_test``), never unpaid, never a sale — or
  entered by hand for a stand-alone pump.  Excluded from sales, included in the meter
  reconciliation.  Audited as ``pump.test``.

Limits: a manual sale's amount is volume × current price (``agent.money``); a typed display
amount that disagrees by more than one fen is refused, so a wrong price is noticed.
"""

from __future__ import annotations

import json
from typing import Any

import sqlite_utils

from agent.errors import Conflict, InvalidRequest, NotFound
from agent.money import amount_for_volume
from agent.service import Agent
from agent.store.records import add_audit, enqueue

__all__ = ["ManualService"]

MAX_VOLUME_ML = 2_000_000  # 2 000 L: above any single road-tanker-free sale


class ManualService:
    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self._store = agent.store
        #: gun number -> (pump id, grade)
        self._nozzles = {n.number: (p.pump_id, n.grade) for line in agent.config.lines
                         for p in line.pumps for n in p.nozzles}

    def _nozzle(self, nozzle: int) -> tuple[int, str]:
        if nozzle not in self._nozzles:
            raise NotFound(f"no nozzle {nozzle}", code="unknown_nozzle", nozzles=sorted(self._nozzles))
        return self._nozzles[nozzle]

    @staticmethod
    def _volume(volume_ml: int) -> int:
        if isinstance(volume_ml, bool) or not isinstance(volume_ml, int) or not 0 < volume_ml <= MAX_VOLUME_ML:
            raise InvalidRequest(f"volume_ml: integer mL 1..{MAX_VOLUME_ML}", code="bad_volume")
        return volume_ml

    def _price(self, grade: str) -> tuple[int, int]:
        fc = self.agent.forecourt
        if fc is not None:
            cur = fc.prices.current()
            return int(cur["prices_fen"][grade]), int(cur["version"])
        row = self._store.query_one("SELECT version, prices FROM price_sets WHERE effective_at_ms <= ? AND"
                                    " cancelled_at_ms IS NULL ORDER BY version DESC LIMIT 1",
                                    (self.agent.clock.now_ms(),))
        if row is not None:
            return int(json.loads(row["prices"])[grade]), int(row["version"])
        return self.agent.config.grade_price(grade), 0

    # ------------------------------------------------------------ manual sale
    def manual_sale(self, *, actor: str, nozzle: int, volume_ml: int, amount_fen: int | None = None,
                    reason: str = "pump not connected", request_key: str | None = None) -> dict[str, Any]:
        """Record a stand-alone sale as a sellable fill; a repeated ``request_key`` returns the same fill."""
        pump_id, grade = self._nozzle(nozzle)
        volume = self._volume(volume_ml)
        fc = self.agent.forecourt
        if fc is not None:
            state = fc.pump(pump_id)["state"]
            if state != "offline":
                raise Conflict(f"pump {pump_id} is {state}: sell through the pump (a manual sale is only for a pump "
                               "that is not connected)", code="pump_connected", state=state)
        price, version = self._price(grade)
        amount = amount_for_volume(volume, price)
        if amount_fen is not None and abs(amount_fen - amount) > 1:
            raise InvalidRequest(f"the display amount {amount_fen} fen does not match {volume} mL at {price} fen/L "
                                 f"({amount} fen): check the dispenser's price", code="amount_mismatch",
                                 expected_fen=amount)
        key = f"manual:{request_key}" if request_key else None
        fill_id = self.agent.ids.new_id()
        now = self.agent.clock.now_ms()

        def tx(db: sqlite_utils.Database) -> str:
            if key is not None:
                row = db.execute("SELECT fill_id FROM fills WHERE completion_key = ?", [key]).fetchone()
                if row is not None:
                    return str(row[0])
            db.execute("INSERT INTO fills(fill_id, pump_id, nozzle, grade, state, kind, volume_ml, amount_fen,"
                       " price_fen, price_set_version, completion_key, authorized_at_ms, finished_at_ms,"
                       " created_at_ms, note) VALUES (?, ?, ?, ?, 'finished', 'manual', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       [fill_id, pump_id, nozzle, grade, volume, amount, price, version, key or f"manual:{fill_id}",
                        now, now, now, f"manual sale: {reason}"])
            add_audit(db, at_ms=now, actor=actor, action="manual.sale", target=f"pump:{pump_id}",
                      after={"fill_id": fill_id, "nozzle": nozzle, "grade": grade, "volume_ml": volume,
                             "amount_fen": amount, "price_fen": price, "reason": reason})
            enqueue(db, event_id=f"fill:{fill_id}:finished", aggregate="fill", aggregate_id=fill_id,
                    kind="fill.finished", payload={"fill_id": fill_id, "pump_id": pump_id, "nozzle": nozzle,
                                                   "grade": grade, "volume_ml": volume, "amount_fen": amount,
                                                   "price_fen": price, "price_set_version": version,
                                                   "kind": "manual", "finished_at_ms": now}, now_ms=now)
            return fill_id

        stored = self._store.write(tx)
        fill = self._fill(stored)
        if stored == fill_id:
            self.agent.bus.publish("fill.finished", fill)
        return fill

    # ------------------------------------------------------------ pump test
    def pump_test(self, *, actor: str, nozzle: int, preset_volume_ml: int | None = None,
                  manual_volume_ml: int | None = None, note: str = "") -> dict[str, Any]:
        """Run a pump test through the pump (preset volume), or record one done stand-alone (manual volume)."""
        pump_id, grade = self._nozzle(nozzle)
        now = self.agent.clock.now_ms()
        test_id = self.agent.ids.new_id()
        if manual_volume_ml is not None:
            volume = self._volume(manual_volume_ml)
            fill_id = self.agent.ids.new_id()

            def manual_tx(db: sqlite_utils.Database) -> None:
                db.execute("INSERT INTO fills(fill_id, pump_id, nozzle, grade, state, kind, volume_ml, amount_fen,"
                           " completion_key, finished_at_ms, created_at_ms, note) VALUES"
                           " (?, ?, ?, ?, 'test', 'test', ?, 0, ?, ?, ?, ?)",
                           [fill_id, pump_id, nozzle, grade, volume, f"test:{fill_id}", now, now,
                            f"pump test (manual): {note}"])
                self._register(db, test_id, fill_id, pump_id, nozzle, actor, note, now, volume)

            self._store.write(manual_tx)
            return self._fill(fill_id)
        fc = self.agent.forecourt
        if fc is None:
            raise Conflict("no pump controller: record the test with manual_volume_ml", code="no_pumps")
        if preset_volume_ml is not None:
            self._volume(preset_volume_ml)
        fill = fc.authorize(pump_id, nozzles=(nozzle,), preset_volume_ml=preset_volume_ml, actor=f"pump-test:{actor}")

        def tx(db: sqlite_utils.Database) -> None:
            self._register(db, test_id, fill["fill_id"], pump_id, nozzle, actor, note, now, None)
            # the fill may already have ended before this commit: the trigger did not see it
            db.execute("UPDATE fills SET state = 'test', kind = 'test' WHERE fill_id = ? AND state = 'finished'",
                       [fill["fill_id"]])

        self._store.write(tx)
        self.agent.bus.publish("pump.test", {"pump_id": pump_id, "nozzle": nozzle, "fill_id": fill["fill_id"]})
        return self._fill(fill["fill_id"])

    @staticmethod
    def _register(db: sqlite_utils.Database, test_id: str, fill_id: str, pump_id: int, nozzle: int, actor: str,
                  note: str, now: int, volume_ml: int | None) -> None:
        db.execute("INSERT INTO pump_tests(test_id, fill_id, pump_id, nozzle, actor, note, created_at_ms)"
                   " VALUES (?, ?, ?, ?, ?, ?, ?)", [test_id, fill_id, pump_id, nozzle, actor, note, now])
        add_audit(db, at_ms=now, actor=actor, action="pump.test", target=f"pump:{pump_id}",
                  after={"test_id": test_id, "fill_id": fill_id, "nozzle": nozzle, "volume_ml": volume_ml,
                         "note": note})

    def tests(self, limit: int = 100) -> list[dict[str, Any]]:
        return self._store.query("SELECT t.*, f.state, f.volume_ml, f.finished_at_ms FROM pump_tests t JOIN fills f"
                                 " USING (fill_id) ORDER BY t.created_at_ms DESC LIMIT ?", (limit,))

    def _fill(self, fill_id: str) -> dict[str, Any]:
        row = self._store.query_one("SELECT * FROM fills WHERE fill_id = ?", (fill_id,))
        if row is None:
            raise NotFound(f"no fill {fill_id}", fill_id=fill_id)
        return row
