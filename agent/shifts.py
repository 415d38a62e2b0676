"""Shifts (班结 / 交接班) and day close (日结), with totalizer readings per nozzle.

A shift is opened for one cashier (``scope='cashier'``) or for the whole station
(``scope='station'``, stored with cashier ``'*'``); at most one open shift per cashier and one
station shift (a partial unique index).  A cashier shift opened while a station shift is open
belongs to it (``parent_id``); the station shift's report includes it.

* **Open** reads every nozzle's totalizer from the pumps (``read_meters``) and adopts paid orders
  and refunds that found no open shift (they go to its late bucket).
* **Close** runs the pre-check (``precheck``: unpaid fills, fills in progress, payments in
  progress, open prepays, open cashier shifts — each blocker says what to do), reads the meters,
  computes the report (``agent.reports``) and commits shift, report, audit entry and outbox
  message in one transaction.  A manager may force the close; the blockers go into the audit
  entry.  A closed shift is immutable (triggers); repeating a close returns the stored report.
* **Handover** closes a shift and opens the next one for the incoming cashier in one
  transaction, the close readings becoming the next open readings; it happens once per shift
  (``open_key = 'handover:<shift>'``), a repeated request returns the same pair.
* Orders join shifts when they are paid, by a trigger (see migration 7): never a closed shift.

Meter readings per gun number: ``{"volume_total_ml", "amount_total_fen", "source"}`` with source
``pump`` (read now), ``manual`` (typed from the dispenser's counter: pump not connected),
``last_fill`` (end totals of the nozzle's last stored fill: the pump is busy or offline) or absent.
A pump that is mid-fill is read as ``last_fill``: its running fill ends in the next shift.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlite_utils

from agent.errors import Conflict, InvalidRequest, NotFound
from agent.reports import TZ_OFFSET_MIN, period_report, shift_report
from agent.service import Agent
from agent.store.records import add_audit, enqueue

log = logging.getLogger(__name__)

__all__ = ["ShiftService", "day_bounds"]

READ_TIMEOUT_S = 3.0
OPEN_FILL_STATES = ("authorized", "fuelling", "needs_reconciliation")


def day_bounds(day: str, tz_offset_min: int = TZ_OFFSET_MIN) -> tuple[int, int]:
    """``"2026-01-31"`` → [start, end) in epoch ms, station local time."""
    try:
        d = datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise InvalidRequest(f"not a day: {day!r} (expected YYYY-MM-DD)", code="bad_day") from None
    start = int((d - timedelta(minutes=tz_offset_min)).timestamp() * 1000)
    return start, start + 86_400_000


class ShiftService:
    """See the module docstring.  Thread-safe: one lock serialises open/close/handover."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self._store = agent.store
        self._lock = threading.RLock()
        cfg = agent.config
        #: gun number -> (pump id, grade)
        self.nozzles: dict[int, tuple[int, str]] = {n.number: (p.pump_id, n.grade) for line in cfg.lines
                                                    for p in line.pumps for n in p.nozzles}
        self.station = {"id": cfg.station.id, "name": cfg.station.name}

    # ------------------------------------------------------------ meters
    def read_meters(self, manual: dict[int, int] | None = None, timeout_s: float = READ_TIMEOUT_S
                    ) -> dict[str, dict[str, Any]]:
        """Totalizers per gun: asked from every idle pump (waits for ``pump.totals``), else manual/last fill."""
        out: dict[str, dict[str, Any]] = {}
        fc = self.agent.forecourt
        wanted: set[int] = set()
        if fc is not None:
            sub = self.agent.bus.subscribe(maxsize=10_000)
            try:
                for pump in fc.pumps():
                    if pump["state"] in ("idle", "calling") and not pump["fill_id"]:
                        try:
                            fc.read_totals(pump["pump_id"])
                        except Exception as exc:  # offline line: fall back below
                            log.info("pump %s: totals not readable now (%s)", pump["pump_id"], exc)
                            continue
                        wanted |= {int(n["number"]) for n in pump["nozzles"]}
                deadline = time.monotonic() + timeout_s
                while wanted - {int(k) for k in out} and (left := deadline - time.monotonic()) > 0:
                    ev = sub.get(timeout=left)
                    if ev is not None and ev.topic == "pump.totals" and ev.data.get("nozzle") in wanted:
                        out[str(ev.data["nozzle"])] = {"volume_total_ml": int(ev.data["volume_total_ml"]),
                                                       "amount_total_fen": int(ev.data["amount_total_fen"]),
                                                       "source": "pump"}
            finally:
                sub.close()
        for gun, (pump_id, _) in self.nozzles.items():
            if str(gun) in out:
                continue
            if manual and gun in manual:
                out[str(gun)] = {"volume_total_ml": int(manual[gun]), "amount_total_fen": None, "source": "manual"}
                continue
            row = self._store.query_one(
                "SELECT end_total_ml, end_total_fen FROM fills WHERE pump_id = ? AND nozzle = ? AND end_total_ml"
                " IS NOT NULL ORDER BY finished_at_ms DESC LIMIT 1", (pump_id, gun))
            if row is not None:
                out[str(gun)] = {"volume_total_ml": int(row["end_total_ml"]), "amount_total_fen": row["end_total_fen"],
                                 "source": "last_fill"}
        return out

    # ------------------------------------------------------------ queries
    def get(self, shift_id: str) -> dict[str, Any]:
        row = self._store.query_one("SELECT * FROM shifts WHERE shift_id = ?", (shift_id,))
        if row is None:
            raise NotFound(f"no shift {shift_id}", code="unknown_shift", shift_id=shift_id)
        return _decode(row)

    def recent(self, *, state: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        sql, args = "SELECT * FROM shifts", []
        if state is not None:
            sql += " WHERE state = ?"
            args.append(state)
        return [_decode(r) for r in self._store.query(sql + " ORDER BY opened_at_ms DESC LIMIT ?", (*args, limit))]

    def current(self, cashier: str | None = None) -> dict[str, Any] | None:
        """The shift a sale by ``cashier`` would join now (the cashier's own, else the station's)."""
        row = self._store.query_one(
            "SELECT * FROM shifts WHERE state = 'open' AND ((scope = 'cashier' AND cashier = ?) OR scope = 'station')"
            " ORDER BY scope = 'cashier' DESC LIMIT 1", (cashier or "",))
        return _decode(row) if row else None

    def report(self, shift_id: str) -> dict[str, Any]:
        """The stored report of a closed shift, or a preview of an open one (no close readings)."""
        shift = self.get(shift_id)
        if shift["state"] == "closed":
            return dict(shift["report"])
        raw = self._store.query_one("SELECT * FROM shifts WHERE shift_id = ?", (shift_id,))
        assert raw is not None
        rep = shift_report(self._store.reader(), raw, closed_at_ms=self.agent.clock.now_ms(), close_readings={},
                           declared_cash_fen=None, nozzles=self.nozzles, station=self.station)
        return {**rep, "preview": True, "blockers": self.precheck(shift_id)}

    # ------------------------------------------------------------ open
    def open(self, *, actor: str, scope: str = "cashier", cashier: str | None = None, float_fen: int = 0,
             request_key: str | None = None, manual_readings: dict[int, int] | None = None) -> dict[str, Any]:
        if scope not in ("cashier", "station"):
            raise InvalidRequest("scope: 'cashier' or 'station'", code="bad_scope")
        who = "*" if scope == "station" else (cashier or actor)
        if isinstance(float_fen, bool) or not isinstance(float_fen, int) or not 0 <= float_fen <= 10_000_000:
            raise InvalidRequest("float_fen: integer fen 0..10000000", code="bad_amount")
        with self._lock:
            if request_key:
                row = self._store.query_one("SELECT shift_id FROM shifts WHERE open_key = ?", (request_key,))
                if row is not None:
                    return self.get(row["shift_id"])
            readings = self.read_meters(manual_readings)
            shift_id = self.agent.ids.new_id()
            self._store.write(lambda db: self._insert(db, shift_id, scope=scope, cashier=who, actor=actor,
                                                      float_fen=float_fen, readings=readings, open_key=request_key))
        shift = self.get(shift_id)
        self.agent.bus.publish("shift.opened", shift)
        return shift

    def _insert(self, db: sqlite_utils.Database, shift_id: str, *, scope: str, cashier: str, actor: str,
                float_fen: int, readings: dict[str, Any], open_key: str | None) -> None:
        now = self.agent.clock.now_ms()
        held = db.execute("SELECT shift_id FROM shifts WHERE state = 'open' AND scope = ? AND cashier = ?",
                          [scope, cashier]).fetchone()
        if held is not None:
            raise Conflict(f"a {scope} shift is already open for {cashier}: close or hand it over first",
                           code="shift_already_open", shift_id=held[0])
        parent = None
        if scope == "cashier":
            p = db.execute("SELECT shift_id FROM shifts WHERE state = 'open' AND scope = 'station'").fetchone()
            parent = p[0] if p else None
        db.execute("INSERT INTO shifts(shift_id, cashier, state, opened_at_ms, scope, parent_id, opened_by, float_fen,"
                   " open_readings, open_key) VALUES (?, ?, 'open', ?, ?, ?, ?, ?, ?, ?)",
                   [shift_id, cashier, now, scope, parent, actor, float_fen, json.dumps(readings), open_key])
        # paid while no shift was open: this shift's late bucket (never a closed shift)
        who = "" if scope == "station" else cashier
        db.execute("UPDATE orders SET shift_id = ?, shift_late = 1 WHERE state = 'paid' AND shift_id IS NULL"
                   " AND (? = '' OR cashier = ?)", [shift_id, who, who])
        db.execute("UPDATE refunds SET shift_id = ? WHERE shift_id IS NULL AND (? = '' OR actor = ?)",
                   [shift_id, who, who])
        add_audit(db, at_ms=now, actor=actor, action="shift.open", target=f"shift:{shift_id}",
                  after={"scope": scope, "cashier": cashier, "float_fen": float_fen})
        enqueue(db, event_id=f"shift:{shift_id}:opened", aggregate="shift", aggregate_id=shift_id, kind="shift.opened",
                payload={"shift_id": shift_id, "scope": scope, "cashier": cashier, "opened_at_ms": now,
                         "opened_by": actor, "float_fen": float_fen, "readings": readings}, now_ms=now)

    # ------------------------------------------------------------ pre-check
    def precheck(self, shift_id: str, db: sqlite_utils.Database | None = None) -> list[dict[str, Any]]:
        """What stops this shift from closing, each with what to do about it (empty: it may close)."""
        db = db or self._store.reader()
        shift = db.execute("SELECT scope, cashier, shift_id FROM shifts WHERE shift_id = ?", [shift_id]).fetchone()
        if shift is None:
            raise NotFound(f"no shift {shift_id}", code="unknown_shift")
        scope, cashier = shift[0], shift[1]
        out: list[dict[str, Any]] = []
        fills = db.execute("SELECT f.fill_id, f.pump_id, f.nozzle, f.state, f.volume_ml, f.amount_fen, f.order_id,"
                           " o.cashier, o.receipt_no FROM fills f LEFT JOIN orders o ON o.order_id = f.order_id"
                           " WHERE f.state IN ('finished', 'claimed', 'authorized', 'fuelling', 'needs_reconciliation')"
                           " ORDER BY f.pump_id").fetchall()
        for f in fills:
            if scope == "cashier" and f[7] is not None and f[7] != cashier:
                continue  # claimed by another cashier's order: theirs to settle
            base = {"fill_id": f[0], "pump_id": f[1], "nozzle": f[2], "volume_ml": f[4], "amount_fen": f[5]}
            if f[3] == "finished":
                out.append({**base, "code": "unpaid_fill",
                            "message": f"pump {f[1]} nozzle {f[2]}: a fill of {f[5]} fen is not paid",
                            "action": "add the fill to an order and take payment"})
            elif f[3] == "claimed":
                out.append({**base, "code": "unpaid_fill", "order_id": f[6],
                            "message": f"pump {f[1]} nozzle {f[2]}: the fill is on order {f[8]}, not paid yet",
                            "action": f"finish the payment of order {f[8]} or cancel the order"})
            elif f[6] is None or f[3] == "needs_reconciliation":
                out.append({**base, "code": "fill_in_progress", "message": f"pump {f[1]} has a fill in progress",
                            "action": "wait for the fill to end (or stop the pump); it is reconciled from the pump"})
        sagas = db.execute("SELECT s.order_id, o.receipt_no, o.cashier, s.state FROM payment_sagas s JOIN orders o"
                           " ON o.order_id = s.order_id WHERE s.state IN ('running', 'compensating')").fetchall()
        for s in sagas:
            if scope == "station" or s[2] == cashier:
                out.append({"code": "payment_pending", "order_id": s[0],
                            "message": f"order {s[1]}: payment {s[3]}, the result is not known yet",
                            "action": "wait for the customer's payment result (the sentinel asks the center), "
                                      "or close it with the center"})
        prepays = db.execute(
            "SELECT o.order_id, o.receipt_no, o.cashier, o.prepay_pump_id, f.state FROM orders o LEFT JOIN fills f ON"
            " f.order_id = o.order_id WHERE o.kind = 'prepay' AND o.state = 'paid' AND (f.fill_id IS NULL OR f.state IN"
            " ('authorized', 'fuelling', 'needs_reconciliation'))").fetchall()
        for p in prepays:
            if scope == "station" or p[2] == cashier:
                out.append({"code": "open_prepay", "order_id": p[0], "pump_id": p[3],
                            "message": f"prepay {p[1]} on pump {p[3]} has not been fuelled"
                                       + (" (fuelling)" if p[4] else " (no fill)"),
                            "action": "let the customer finish fuelling" if p[4] else
                                      "authorize the pump for it, or refund the prepay"})
        if scope == "station":
            for k in db.execute("SELECT shift_id, cashier FROM shifts WHERE state = 'open' AND parent_id = ?",
                                [shift_id]).fetchall():
                out.append({"code": "cashier_shift_open", "shift_id": k[0],
                            "message": f"cashier {k[1]}'s shift is still open",
                            "action": "close or hand over the cashier's shift first"})
        return out

    # ------------------------------------------------------------ close / handover
    def close(self, shift_id: str, *, actor: str, declared_cash_fen: int | None, force: bool = False,
              manual_readings: dict[int, int] | None = None, handover_to: str | None = None,
              next_float_fen: int = 0, reason: str = "") -> dict[str, Any]:
        """Close (and optionally hand over); repeated requests return the stored result.

        ``force`` closes over the pre-check's blockers (the caller checks the manager role); it needs a
        ``reason``, kept in the report and the audit log with the blockers it overrode."""
        reason = (reason or "").strip()
        if declared_cash_fen is not None and (isinstance(declared_cash_fen, bool) or not isinstance(
                declared_cash_fen, int) or not 0 <= declared_cash_fen <= 100_000_000):
            raise InvalidRequest("declared_cash_fen: integer fen >= 0", code="bad_amount")
        with self._lock:
            shift = self.get(shift_id)
            if shift["state"] == "closed":
                return self._closed_result(shift, handover_to)
            blockers = self.precheck(shift_id)
            if blockers and not force:
                raise Conflict(f"the shift cannot close yet: {len(blockers)} item(s) to settle first",
                               code="shift_close_blocked", blockers=blockers)
            if blockers and len(reason) < 2:
                raise InvalidRequest("a forced close needs a reason (what is left open, and why)",
                                     code="force_reason_needed", blockers=blockers)
            readings = self.read_meters(manual_readings)
            next_id = self.agent.ids.new_id() if handover_to else None
            now = self.agent.clock.now_ms()

            def tx(db: sqlite_utils.Database) -> None:
                raw = db.execute("SELECT * FROM shifts WHERE shift_id = ?", [shift_id])
                row = dict(zip([d[0] for d in raw.description], raw.fetchone(), strict=True))
                if row["state"] != "open":
                    return
                late_blockers = self.precheck(shift_id, db)
                if late_blockers and not force:
                    raise Conflict("the shift cannot close yet", code="shift_close_blocked", blockers=late_blockers)
                if late_blockers and len(reason) < 2:
                    raise InvalidRequest("a forced close needs a reason", code="force_reason_needed",
                                         blockers=late_blockers)
                report = shift_report(db, row, closed_at_ms=now, close_readings=readings,
                                      declared_cash_fen=declared_cash_fen, nozzles=self.nozzles, station=self.station)
                forced = bool(force and late_blockers)
                report |= {"closed_by": actor, "forced": forced, "force_reason": reason if forced else None,
                           "blockers_at_close": late_blockers, "next_shift_id": next_id}
                db.execute("UPDATE shifts SET state = 'closed', closed_at_ms = ?, closed_by = ?, declared_cash_fen = ?,"
                           " close_readings = ?, forced = ?, next_shift_id = ?, report = ? WHERE shift_id = ?"
                           " AND state = 'open'",
                           [now, actor, declared_cash_fen, json.dumps(readings), int(report["forced"]), next_id,
                            json.dumps(report, ensure_ascii=False), shift_id])
                add_audit(db, at_ms=now, actor=actor, action="shift.force_close" if report["forced"] else "shift.close",
                          target=f"shift:{shift_id}", before={"state": "open", "blockers": late_blockers},
                          after={"state": "closed", "declared_cash_fen": declared_cash_fen,
                                 "reason": report["force_reason"],
                                 "over_short_fen": report["cash"]["over_short_fen"],
                                 "meter_variance_ml": report["meter_variance_ml"], "next_shift_id": next_id})
                enqueue(db, event_id=f"shift:{shift_id}:closed", aggregate="shift", aggregate_id=shift_id,
                        kind="shift.closed", payload=report, now_ms=now)
                if next_id is not None and handover_to is not None:
                    self._insert(db, next_id, scope=row["scope"], cashier="*" if row["scope"] == "station"
                                 else handover_to, actor=actor, float_fen=next_float_fen, readings=readings,
                                 open_key=f"handover:{shift_id}")

            self._store.write(tx)
            shift = self.get(shift_id)
        self.agent.bus.publish("shift.closed", {"shift_id": shift_id, "forced": shift["forced"]})
        if shift["next_shift_id"]:
            self.agent.bus.publish("shift.opened", self.get(shift["next_shift_id"]))
        return self._closed_result(shift, handover_to)

    def _closed_result(self, shift: dict[str, Any], handover_to: str | None) -> dict[str, Any]:
        report = dict(shift["report"])
        if handover_to is None:
            return report
        if not shift["next_shift_id"]:
            raise Conflict("the shift was closed without a handover: open a new shift", code="shift_closed")
        return {"closed": report, "next": self.get(shift["next_shift_id"])}

    # ------------------------------------------------------------ day close / periods
    def day_report(self, day: str) -> dict[str, Any]:
        stored = self._store.query_one("SELECT report FROM day_closes WHERE day = ?", (day,))
        if stored is not None:
            return dict(json.loads(stored["report"]))
        start, end = day_bounds(day)
        return period_report(self._store.reader(), start, end, kind="day", label=day, station=self.station)

    def month_report(self, month: str) -> dict[str, Any]:
        start, _ = day_bounds(f"{month}-01")
        y, m = int(month[:4]), int(month[5:7])
        end, _ = day_bounds(f"{y + m // 12:04d}-{m % 12 + 1:02d}-01")
        return period_report(self._store.reader(), start, end, kind="month", label=month, station=self.station)

    def close_day(self, day: str, *, actor: str) -> dict[str, Any]:
        """日结: every shift opened that day must be closed; stored once, immutable, sent to the center."""
        start, end = day_bounds(day)
        now = self.agent.clock.now_ms()
        if now < end:
            raise Conflict(f"day {day} is not over yet", code="day_not_over")

        def tx(db: sqlite_utils.Database) -> dict[str, Any]:
            row = db.execute("SELECT report FROM day_closes WHERE day = ?", [day]).fetchone()
            if row is not None:
                return dict(json.loads(row[0]))
            open_ = db.execute("SELECT shift_id, cashier FROM shifts WHERE state = 'open' AND opened_at_ms < ?",
                               [end]).fetchall()
            if open_:
                raise Conflict(f"{len(open_)} shift(s) of {day} are still open", code="day_close_blocked",
                               blockers=[{"code": "shift_open", "shift_id": s[0], "cashier": s[1],
                                          "action": "close the shift first"} for s in open_])
            report = period_report(db, start, end, kind="day", label=day, station=self.station)
            report |= {"closed_by": actor, "closed_at_ms": now}
            db.execute("INSERT INTO day_closes(day, report, closed_by, closed_at_ms) VALUES (?, ?, ?, ?)",
                       [day, json.dumps(report, ensure_ascii=False), actor, now])
            add_audit(db, at_ms=now, actor=actor, action="day.close", target=f"day:{day}",
                      after={"net_fen": report["totals"]["net_fen"]})
            enqueue(db, event_id=f"day:{day}:closed", aggregate="day", aggregate_id=day, kind="day.closed",
                    payload=report, now_ms=now)
            return report

        return self._store.write(tx)


def _decode(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    for key in ("open_readings", "close_readings", "report"):
        if out.get(key):
            out[key] = json.loads(out[key])
    out["forced"] = bool(out.get("forced"))
    return out
