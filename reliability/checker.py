"""Exactly-once checker: the pump ledger, the agent's database and the center simulator, side by side.

``check(ledger, db_path, center, ...)`` returns a ``Report`` listing, per kind of item (fills,
outbox messages, orders, payments, refunds, stored value), what is **lost** (in a source of truth,
missing downstream), **duplicated** (one fact recorded or applied twice) and **mismatched** (the
same fact with different figures).  Three ledgers:

1. the pump simulator's ledger (``PumpSimulator.ledger()``): every fill that really ran, with the
   pump's totalizers — the ground truth of fuel;
2. the agent's SQLite database (opened read-only, after the agent stopped or while it runs);
3. the center simulator's ``CenterState``: the arrival log of uploads (``applied``), the merged
   records, trades, refunds and stored-value operations.

Rules checked (after healing and draining; ``drained=False`` turns "not yet at the center" into
``pending`` figures instead of losses):

* every ledger fill with volume > 0 is exactly one agent fill (matched by pump and end totalizer)
  with the same volume and amount; an agent pump fill matching no ledger fill is a phantom
  (reported as duplicated);
* each fill is in at most one paid order;
* every outbox row is confirmed and applied at the center exactly once; every center upload comes
  from an outbox row; a business fact (``fill.finished``, ``order.created``, ``order.paid``…) is
  never applied twice under different event ids; the center's fill/order figures equal the agent's;
* a paid order's confirmed legs sum to its payable amount; each confirmed QR leg is exactly one
  successful trade of that amount; the center's net QR money per order equals the agent's
  (confirmed legs minus refunds done); no successful trade is unknown to the agent;
* stored value: a confirmed leg was debited at the center once and not given back (unless
  refunded); a failed or compensated leg left the balance whole; the members' total balance moved
  by exactly the agent's net stored value;
* client-side operations log (``ops``): an order the API reported ``paid`` is paid in the database
  and at the center (``ok ⊆ center``), and the center holds no payment the station never started.
* ``PRAGMA integrity_check`` is ``ok``.

Limits: one station; a single currency; the default DART decimals (``Decimals()``) unless given;
fuel sold through the pump bus only (manual sales have no ledger entry and are skipped).
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drivers.base import Decimals
from drivers.sim.pump import LedgerEntry
from sync.center_sim.state import CenterState

__all__ = ["KNOWN_PARKED", "Report", "check", "integrity", "unexplained"]

#: Parked outbox messages caused by known agent bugs (docs/reliability.md "Bugs found"); ``unexplained``
#: leaves them out so a run can still prove "nothing lost or duplicated" while they are open.
KNOWN_PARKED = ("kind 'points.settled' does not belong to 'member'", "kind 'refund.created' does not belong to 'order'")


def unexplained(items: list[str]) -> list[str]:
    """``items`` without the findings explained by ``KNOWN_PARKED``."""
    return [i for i in items if not any(k in i for k in KNOWN_PARKED)]

QR_TENDERS = ("qr_scan", "qr_show", "plate_pay")
#: Kinds that describe one fact per aggregate: applying one twice (under two event ids) is a duplicate.
ONCE_KINDS = ("fill.finished", "fill.zero", "order.created", "order.paid", "order.closed", "shift.closed",
              "day.closed", "mobile_order.filled")


@dataclass
class Report:
    """Findings; ``ok`` when nothing is lost, duplicated or mismatched and the database is intact."""

    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    integrity: str = "not checked"
    figures: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicated or self.mismatched) and self.integrity == "ok"

    def summary(self) -> dict[str, Any]:
        return {"ok": self.ok, "lost": len(self.lost), "duplicated": len(self.duplicated),
                "mismatched": len(self.mismatched), "pending": len(self.pending), "integrity": self.integrity,
                **self.figures}

    def details(self, limit: int = 20) -> str:
        out = [json.dumps(self.summary(), ensure_ascii=False)]
        for name in ("lost", "duplicated", "mismatched", "pending"):
            items = getattr(self, name)
            out += [f"{name}: {x}" for x in items[:limit]]
            if len(items) > limit:
                out.append(f"{name}: … {len(items) - limit} more")
        return "\n".join(out)


def integrity(db_path: Path) -> str:
    """``PRAGMA integrity_check`` on a read-only connection (the WAL is read, nothing is written)."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10)
    try:
        rows = conn.execute("PRAGMA integrity_check").fetchall()
    finally:
        conn.close()
    return "ok" if rows == [("ok",)] else "; ".join(str(r[0]) for r in rows[:5])


def _rows(conn: sqlite3.Connection, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]:
    cur = conn.execute(sql, args)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def check(ledger: Iterable[LedgerEntry], db_path: Path, center: CenterState, *,
          ops: Iterable[dict[str, Any]] = (), initial_balances: dict[str, int] | None = None,
          decimals: Decimals | None = None, drained: bool = True) -> Report:
    """Compare the three ledgers (see module docstring); ``ops`` are ``{"op", "order_id", "result"}`` dicts."""
    rep = Report()
    rep.integrity = integrity(db_path)
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10)
    try:
        db = _Db(conn)
        with center.lock:
            c = _Center(center)
        _fills(rep, list(ledger), db, decimals or Decimals())
        _outbox(rep, db, c, drained)
        _money(rep, db, c, drained, initial_balances)
        _ops(rep, db, c, list(ops), drained)
    finally:
        conn.close()
    return rep


class _Db:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.fills = _rows(conn, "SELECT * FROM fills")
        self.orders = {o["order_id"]: o for o in _rows(conn, "SELECT * FROM orders")}
        self.lines = _rows(conn, "SELECT order_id, fill_id FROM order_lines WHERE fill_id IS NOT NULL")
        self.payments = _rows(conn, "SELECT * FROM payments")
        self.refunds = _rows(conn, "SELECT * FROM refunds")
        self.outbox = _rows(conn, "SELECT id, event_id, aggregate, aggregate_id, kind, payload, state, last_error"
                                  " FROM outbox")


class _Center:
    """A copy of what we need from the center state, taken under its lock."""

    def __init__(self, s: CenterState) -> None:
        self.applied = [dict(a) for a in s.applied]
        self.records = {k: {"data": dict(v["data"]), "kinds": list(v["kinds"])} for k, v in s.records.items()}
        self.trades = [dict(t) for t in s.trades.values()]
        self.refunds = {k: dict(v) for k, v in s.refunds.items()}
        self.ops = dict(s.ops)
        self.balances = {m: int(v["balance_fen"]) for m, v in s.members.items()}


def _fills(rep: Report, ledger: list[LedgerEntry], db: _Db, dec: Decimals) -> None:
    by_key: dict[tuple[int, int], list[dict[str, Any]]] = defaultdict(list)
    pump_fills = [f for f in db.fills if f.get("kind", "pump") == "pump" and f["end_total_ml"] is not None]
    for f in pump_fills:
        by_key[(int(f["pump_id"]), int(f["end_total_ml"]))].append(f)
    matched: set[str] = set()
    real = [e for e in ledger if e.volume_ml > 0]
    for e in real:
        key = (e.pump, dec.volume_ml(e.end_volume_total_raw))
        found = by_key.get(key, [])
        if not found:
            rep.lost.append(f"fill: pump {e.pump} fill #{e.fill_no} {e.volume_ml} mL {e.amount_fen} fen "
                            f"(end total {key[1]} mL) is not in the database")
            continue
        if len(found) > 1:
            rep.duplicated.append(f"fill: pump {e.pump} fill #{e.fill_no} recorded {len(found)} times: "
                                  f"{[f['fill_id'] for f in found]}")
        for f in found:
            matched.add(f["fill_id"])
            if (f["volume_ml"], f["amount_fen"]) != (e.volume_ml, e.amount_fen):
                rep.mismatched.append(f"fill {f['fill_id']}: db {f['volume_ml']} mL/{f['amount_fen']} fen, "
                                      f"pump {e.volume_ml} mL/{e.amount_fen} fen")
    for f in pump_fills:
        if f["fill_id"] not in matched and int(f["volume_ml"]) > 0:
            rep.duplicated.append(f"fill {f['fill_id']}: pump {f['pump_id']} {f['volume_ml']} mL has no pump ledger "
                                  "entry (phantom)")
    open_fills = [f for f in db.fills if f["state"] in ("authorized", "fuelling")]
    rep.figures.update(ledger_fills=len(real), db_fills=sum(1 for f in db.fills if int(f["volume_ml"]) > 0),
                       open_authorizations=len(open_fills))
    paid_states = {oid for oid, o in db.orders.items() if o["state"] in ("paid", "closed")}
    per_fill = Counter(line["fill_id"] for line in db.lines if line["order_id"] in paid_states)
    for fid, n in per_fill.items():
        if n > 1:
            rep.duplicated.append(f"fill {fid} is in {n} paid orders")


def _outbox(rep: Report, db: _Db, c: _Center, drained: bool) -> None:
    applied = Counter(a["event_id"] for a in c.applied)
    ours = {r["event_id"]: r for r in db.outbox}
    for r in db.outbox:
        n = applied.get(r["event_id"], 0)
        if r["state"] == "parked":
            rep.mismatched.append(f"outbox {r['event_id']}: parked ({r['last_error']})")
        elif n == 0:
            (rep.lost if drained else rep.pending).append(f"outbox {r['event_id']} ({r['state']}) never reached "
                                                          "the center")
        elif r["state"] == "pending":
            rep.pending.append(f"outbox {r['event_id']} applied at the center but still pending locally")
        if n > 1:
            rep.duplicated.append(f"outbox {r['event_id']} applied {n} times at the center")
    for ev in applied:
        if ev not in ours:
            rep.lost.append(f"center has {ev} but the agent's outbox does not (a committed fact lost locally)")
    per_fact = Counter((a["out_type"], a["out_id"], a["kind"]) for a in c.applied if a["kind"] in ONCE_KINDS)
    for (t, i, k), n in per_fact.items():
        if n > 1:
            rep.duplicated.append(f"center applied {k} for {t}:{i} {n} times (different event ids)")
    for f in db.fills:
        rec = c.records.get(f"fill:{f['fill_id']}")
        if rec is None:
            continue
        d = rec["data"]
        if "volume_ml" not in d:
            continue  # fill.zero carries no figures
        if (d.get("volume_ml"), d.get("amount_fen")) != (f["volume_ml"], f["amount_fen"]):
            rep.mismatched.append(f"fill {f['fill_id']}: center {d.get('volume_ml')} mL/{d.get('amount_fen')} fen, "
                                  f"db {f['volume_ml']} mL/{f['amount_fen']} fen")
    for oid, o in db.orders.items():
        rec = c.records.get(f"order:{oid}")
        if rec is None:
            continue
        if "payable_fen" in rec["data"] and rec["data"]["payable_fen"] != o["payable_fen"]:
            rep.mismatched.append(f"order {oid}: center payable {rec['data']['payable_fen']}, db {o['payable_fen']}")
        if o["state"] == "paid" and "order.paid" not in rec["kinds"] and drained:
            rep.lost.append(f"order {oid} is paid locally, the center never got order.paid")
        if "order.paid" in rec["kinds"] and o["state"] not in ("paid", "closed"):
            rep.mismatched.append(f"order {oid}: paid at the center, {o['state']} locally")
    rep.figures.update(outbox=len(db.outbox), center_applied=len(c.applied),
                       outbox_confirmed=sum(1 for r in db.outbox if r["state"] == "confirmed"))


def _money(rep: Report, db: _Db, c: _Center, drained: bool, initial: dict[str, int] | None) -> None:
    legs_by_order: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for p in db.payments:
        legs_by_order[p["order_id"]].append(p)
    for oid, o in db.orders.items():
        if o["state"] != "paid":
            continue
        got = sum(int(p["amount_fen"]) for p in legs_by_order[oid] if p["state"] == "confirmed")
        if got != o["payable_fen"]:
            rep.mismatched.append(f"order {oid}: paid, confirmed legs {got} fen != payable {o['payable_fen']} fen")
    trades_by_out = defaultdict(list)
    for t in c.trades:
        trades_by_out[t["out_trade_no"]].append(t)
    leg_ids = {p["payment_id"]: p for p in db.payments}
    refunds_done = defaultdict(int)
    for r in db.refunds:
        if r["state"] == "done":
            refunds_done[r["payment_id"]] += int(r["amount_fen"])
        elif drained:
            rep.pending.append(f"refund {r['refund_id']} is {r['state']}")
    for p in db.payments:
        if p["tender"] not in QR_TENDERS:
            continue
        ts = trades_by_out.get(p["payment_id"], [])
        ok = [t for t in ts if t["status"] == "success"]
        if p["state"] == "confirmed":
            if not ok:
                rep.lost.append(f"payment {p['payment_id']}: confirmed locally, no successful trade at the center")
            elif ok[0]["amount_fen"] != p["amount_fen"]:
                rep.mismatched.append(f"payment {p['payment_id']}: {p['amount_fen']} fen locally, "
                                      f"{ok[0]['amount_fen']} at the center")
        if len(ok) > 1:
            rep.duplicated.append(f"payment {p['payment_id']}: {len(ok)} successful trades")
    net_center: dict[str, int] = defaultdict(int)
    for t in c.trades:
        if t["status"] != "success":
            continue
        net_center[str(t.get("order_id"))] += int(t["amount_fen"]) - int(t["refunded_fen"])
        if t["out_trade_no"] not in leg_ids:
            rep.duplicated.append(f"trade {t['trade_no']} ({t['out_trade_no']}) charged {t['amount_fen']} fen, "
                                  "unknown to the agent")
    net_db: dict[str, int] = defaultdict(int)
    for p in db.payments:
        if p["tender"] in QR_TENDERS and p["state"] in ("confirmed", "duplicate", "compensated"):
            taken = int(p["amount_fen"]) if p["state"] == "confirmed" else 0
            net_db[p["order_id"]] += taken - (refunds_done[p["payment_id"]] if p["state"] == "confirmed" else 0)
    for oid in set(net_center) | set(net_db):
        if net_center.get(oid, 0) != net_db.get(oid, 0):
            target = rep.mismatched if drained else rep.pending
            target.append(f"order {oid}: net QR money {net_center.get(oid, 0)} fen at the center, "
                          f"{net_db.get(oid, 0)} fen locally")
    # stored value
    sv_net = 0
    for p in db.payments:
        if p["tender"] != "stored_value":
            continue
        debited = f"stored_value.debit:{p['payment_id']}" in c.ops and c.ops[
            f"stored_value.debit:{p['payment_id']}"].get("errno") == 0
        undone = f"stored_value.credit:{p['payment_id']}:undo" in c.ops
        if p["state"] == "confirmed":
            sv_net += int(p["amount_fen"]) - refunds_done[p["payment_id"]]
            if not debited:
                (rep.lost if drained else rep.pending).append(
                    f"stored value {p['payment_id']}: confirmed locally, never debited at the center")
            if undone:
                rep.mismatched.append(f"stored value {p['payment_id']}: confirmed locally but credited back")
        elif debited and not undone and p["state"] in ("failed", "compensated"):
            rep.mismatched.append(f"stored value {p['payment_id']}: {p['state']} locally, still debited")
    if initial is not None:
        center_net = sum(initial.get(m, 0) - c.balances.get(m, 0) for m in initial)
        if center_net != sv_net:
            (rep.mismatched if drained else rep.pending).append(
                f"stored value: members' balances fell by {center_net} fen at the center, agent net {sv_net} fen")
    rep.figures.update(
        orders_paid=sum(1 for o in db.orders.values() if o["state"] == "paid"),
        payments_confirmed=sum(1 for p in db.payments if p["state"] == "confirmed"),
        refunds=len(db.refunds), center_trades_success=sum(1 for t in c.trades if t["status"] == "success"),
        center_refunds=len(c.refunds))


def _ops(rep: Report, db: _Db, c: _Center, ops: list[dict[str, Any]], drained: bool) -> None:
    ok_paid = {o["order_id"] for o in ops if o.get("op") == "pay" and o.get("result") == "paid"}
    for oid in sorted(ok_paid):
        o = db.orders.get(oid)
        if o is None or o["state"] not in ("paid", "closed"):
            rep.lost.append(f"order {oid}: the API said paid, the database says {o and o['state']}")
        elif drained and "order.paid" not in c.records.get(f"order:{oid}", {}).get("kinds", []):
            rep.lost.append(f"order {oid}: the API said paid, the center never heard")
    started = {o["order_id"] for o in ops if o.get("op") in ("pay", "create")}
    for t in c.trades:
        if t["status"] == "success" and t.get("order_id") not in started and t.get("order_id") not in db.orders:
            rep.duplicated.append(f"trade {t['trade_no']} for an order never created: {t.get('order_id')}")
    rep.figures.update(ops=len(ops), ops_paid_ok=len(ok_paid),
                       ops_unknown=sum(1 for o in ops if o.get("result") == "unknown"))
