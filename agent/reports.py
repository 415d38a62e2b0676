"""Report figures: pure computations over SQL for shift, day and period reports (班结 / 日结 / 月报).

Every function takes an open ``sqlite_utils.Database`` (a reader, or the writer inside the
caller's transaction, so a shift report and the shift's closing commit see the same rows) and
returns plain dicts of integers: money in fen, volume in mL, never a float.

What belongs to a report:

* **orders** — paid orders linked to the shift (``orders.shift_id``, set by the
  ``orders_paid_shift`` trigger; a station shift includes its cashier shifts), or for a period
  the orders paid inside it.  Orders created before the shift opened are listed as the **late
  bucket** (``shift_late``) and counted in the totals: the money is in this shift's drawer.
* **fuel** — the fills those orders sold (the pump's own volume and amount), by grade and nozzle.
* **tenders** — confirmed payment legs minus refunds made in the shift (refunds belong to the
  shift in which they were made, whichever shift sold the order).
* **meter** — per nozzle, totalizer delta between the open and close readings vs the volume of
  the fills that ended in the window: sold (including manual sales) + pump tests; the variance
  is what the pump measured that no record explains (negative: records exceed the meter).

Limits: a fill counts in the meter table of the shift in which it *ended*; the open reading of a
pump that was mid-fill is the pump's totals before that fill (see ``agent.shifts``).
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

import sqlite_utils

__all__ = ["TZ_OFFSET_MIN", "figures", "meter_table", "period_report", "shift_ids", "shift_report"]

#: Station local time for hour buckets and day boundaries (China: UTC+8, no DST).
TZ_OFFSET_MIN = 480


def _rows(db: sqlite_utils.Database, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    cur = db.execute(sql, params)
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]


def shift_ids(db: sqlite_utils.Database, shift_id: str) -> list[str]:
    """The shift and, for a station shift, the cashier shifts opened under it."""
    kids = db.execute("SELECT shift_id FROM shifts WHERE parent_id = ? ORDER BY opened_at_ms", [shift_id]).fetchall()
    return [shift_id, *(str(k[0]) for k in kids)]


def figures(db: sqlite_utils.Database, *, orders_where: str, orders_params: list[Any], refunds_where: str,
            refunds_params: list[Any], tz_offset_min: int = TZ_OFFSET_MIN) -> dict[str, Any]:
    """Sales figures for the orders matching ``orders_where`` (alias ``o``) and refunds ``refunds_where`` (``r``).

    The where clauses are fixed SQL written in this module's callers; values go in the params.
    """
    ow, rw = f"o.state = 'paid' AND ({orders_where})", f"r.state != 'failed' AND ({refunds_where})"
    orders = _rows(db, f"SELECT o.order_id, o.receipt_no, o.cashier, o.kind, o.total_fen, o.discount_fen,"  # noqa: S608
                       f" o.payable_fen, o.quote, o.shift_late, o.created_at_ms, o.paid_at_ms FROM orders o"
                       f" WHERE {ow} ORDER BY o.paid_at_ms", orders_params)
    fuel = _rows(db, "SELECT f.fill_id, f.pump_id, f.nozzle, f.grade, f.volume_ml, f.amount_fen, f.kind,"  # noqa: S608
                     " COALESCE((SELECT l.discount_fen FROM order_lines l WHERE l.fill_id = f.fill_id"
                     " AND l.order_id = f.order_id), CASE WHEN o.kind = 'prepay' THEN o.discount_fen ELSE 0 END)"
                     f" AS discount_fen FROM fills f JOIN orders o ON o.order_id = f.order_id"
                     f" WHERE f.state = 'paid' AND {ow} ORDER BY f.nozzle", orders_params)
    legs = _rows(db, "SELECT p.tender, COUNT(*) AS legs, SUM(p.amount_fen) AS paid_fen FROM payments p"  # noqa: S608
                     f" JOIN orders o ON o.order_id = p.order_id WHERE p.state = 'confirmed' AND {ow}"
                     " GROUP BY p.tender", orders_params)
    refunds = _rows(db, "SELECT r.refund_id, r.order_id, r.tender, r.amount_fen, r.reason, r.state, r.actor,"  # noqa: S608
                        " (SELECT o.cashier FROM orders o WHERE o.order_id = r.order_id) AS cashier,"
                        f" r.created_at_ms FROM refunds r WHERE {rw} ORDER BY r.created_at_ms", refunds_params)
    invoices = _rows(db, "SELECT COUNT(*) AS count, COALESCE(SUM(i.amount_fen), 0) AS amount_fen"  # noqa: S608
                         f" FROM invoices i JOIN orders o ON o.order_id = i.order_id WHERE i.state = 'issued'"
                         f" AND {ow}", orders_params)[0]
    shop = _rows(db, "SELECT COUNT(*) AS lines, COALESCE(SUM(l.quantity), 0) AS quantity,"  # noqa: S608
                     " COALESCE(SUM(l.amount_fen), 0) AS amount_fen, COALESCE(SUM(l.discount_fen), 0) AS discount_fen"
                     f" FROM order_lines l JOIN orders o ON o.order_id = l.order_id WHERE l.kind = 'item' AND {ow}",
                     orders_params)[0]

    by_grade: dict[str, dict[str, int]] = defaultdict(lambda: {"fills": 0, "volume_ml": 0, "amount_fen": 0,
                                                               "discount_fen": 0})
    by_nozzle: dict[int, dict[str, Any]] = {}
    manual: dict[str, Any] = {"fills": 0, "volume_ml": 0, "amount_fen": 0}
    for f in fuel:
        g = by_grade[str(f["grade"])]
        n = by_nozzle.setdefault(int(f["nozzle"] or 0), {"nozzle": int(f["nozzle"] or 0), "pump_id": f["pump_id"],
                                                         "grade": f["grade"], "fills": 0, "volume_ml": 0,
                                                         "amount_fen": 0, "discount_fen": 0})
        buckets: list[dict[str, Any]] = [g, n, manual] if f["kind"] == "manual" else [g, n]
        for bucket in buckets:
            bucket["fills"] += 1
            bucket["volume_ml"] += int(f["volume_ml"])
            bucket["amount_fen"] += int(f["amount_fen"])
        g["discount_fen"] += int(f["discount_fen"])
        n["discount_fen"] += int(f["discount_fen"])

    refunded_by_tender: dict[str, int] = defaultdict(int)
    by_reason: dict[str, dict[str, int]] = defaultdict(lambda: {"count": 0, "amount_fen": 0})
    for r in refunds:
        refunded_by_tender[str(r["tender"])] += int(r["amount_fen"])
        by_reason[str(r["reason"])]["count"] += 1
        by_reason[str(r["reason"])]["amount_fen"] += int(r["amount_fen"])
    tenders = {str(t["tender"]): t for t in legs}
    by_tender: list[dict[str, Any]] = [{"tender": name, "legs": int(tenders[name]["legs"]) if name in tenders else 0,
                  "paid_fen": int(tenders[name]["paid_fen"]) if name in tenders else 0,
                  "refunded_fen": refunded_by_tender.get(name, 0),
                  "net_fen": (int(tenders[name]["paid_fen"]) if name in tenders else 0)
                  - refunded_by_tender.get(name, 0)}
                 for name in sorted(set(tenders) | set(refunded_by_tender))]

    by_cashier: dict[str, dict[str, int]] = defaultdict(lambda: {"orders": 0, "payable_fen": 0, "refunded_fen": 0})
    hours: dict[int, dict[str, int]] = {h: {"orders": 0, "payable_fen": 0} for h in range(24)}
    discounts: dict[str, dict[str, Any]] = {}
    for o in orders:
        c = by_cashier[str(o["cashier"] or "-")]
        c["orders"] += 1
        c["payable_fen"] += int(o["payable_fen"])
        hour = ((int(o["paid_at_ms"] or o["created_at_ms"]) // 1000 + tz_offset_min * 60) // 3600) % 24
        hours[hour]["orders"] += 1
        hours[hour]["payable_fen"] += int(o["payable_fen"])
        for d in (json.loads(o["quote"]) if o["quote"] else {}).get("discounts", []) or []:
            key = str(d.get("rule_id") or d.get("stage") or "other")
            entry = discounts.setdefault(key, {"rule_id": key, "stage": d.get("stage", ""), "name": d.get("name", ""),
                                               "times": 0, "amount_fen": 0})
            entry["times"] += 1
            entry["amount_fen"] += int(d.get("amount_fen", 0))
    for r in refunds:
        by_cashier[str(r["cashier"] or "-")]["refunded_fen"] += int(r["amount_fen"])

    paid = sum(t["paid_fen"] for t in by_tender)
    refunded = sum(t["refunded_fen"] for t in by_tender)
    late = [o for o in orders if o["shift_late"]]
    return {
        "orders": {"count": len(orders), "gross_fen": sum(int(o["total_fen"]) for o in orders),
                   "discount_fen": sum(int(o["discount_fen"]) for o in orders),
                   "payable_fen": sum(int(o["payable_fen"]) for o in orders)},
        "late": {"count": len(late), "payable_fen": sum(int(o["payable_fen"]) for o in late),
                 "orders": [{"order_id": o["order_id"], "receipt_no": o["receipt_no"], "cashier": o["cashier"],
                             "payable_fen": o["payable_fen"], "created_at_ms": o["created_at_ms"],
                             "paid_at_ms": o["paid_at_ms"]} for o in late]},
        "fuel": {"fills": len(fuel), "volume_ml": sum(int(f["volume_ml"]) for f in fuel),
                 "amount_fen": sum(int(f["amount_fen"]) for f in fuel),
                 "discount_fen": sum(int(f["discount_fen"]) for f in fuel), "manual": manual},
        "by_grade": [{"grade": k, **v} for k, v in sorted(by_grade.items())],
        "by_nozzle": [by_nozzle[k] for k in sorted(by_nozzle)],
        "by_tender": by_tender,
        "by_cashier": [{"cashier": k, **v} for k, v in sorted(by_cashier.items())],
        "by_hour": [{"hour": h, **v} for h, v in hours.items()],
        "shop": {k: int(v) for k, v in shop.items()},
        #: invoices the center issued for these orders (开发票), and what they cover
        "invoices": {"count": int(invoices["count"]), "amount_fen": int(invoices["amount_fen"])},
        "refunds": {"count": len(refunds), "amount_fen": refunded,
                    "pending_fen": sum(int(r["amount_fen"]) for r in refunds if r["state"] == "pending"),
                    "by_reason": [{"reason": k, **v} for k, v in sorted(by_reason.items())],
                    "items": refunds},
        "discounts": {"total_fen": sum(int(o["discount_fen"]) for o in orders),
                      "by_rule": sorted(discounts.values(), key=lambda d: str(d["rule_id"]))},
        "totals": {"paid_fen": paid, "refunded_fen": refunded, "net_fen": paid - refunded},
    }


def meter_table(db: sqlite_utils.Database, nozzles: dict[int, tuple[int, str]], open_readings: dict[str, Any],
                close_readings: dict[str, Any], start_ms: int, end_ms: int) -> list[dict[str, Any]]:
    """Per nozzle (gun number → (pump, grade)): totalizer delta vs sold + pump-test volume (R7 at shift level)."""
    rows = _rows(db, "SELECT nozzle, state, kind, volume_ml FROM fills WHERE finished_at_ms >= ? AND"
                     " finished_at_ms <= ? AND state IN ('finished', 'claimed', 'paid', 'test')", [start_ms, end_ms])
    sold: dict[int, dict[str, int]] = defaultdict(lambda: {"sold_ml": 0, "manual_ml": 0, "test_ml": 0})
    for r in rows:
        s = sold[int(r["nozzle"] or 0)]
        if r["state"] == "test":
            s["test_ml"] += int(r["volume_ml"])
        else:
            s["sold_ml"] += int(r["volume_ml"])
            if r["kind"] == "manual":
                s["manual_ml"] += int(r["volume_ml"])
    out = []
    for gun, (pump_id, grade) in sorted(nozzles.items()):
        o, c = open_readings.get(str(gun)), close_readings.get(str(gun))
        delta = int(c["volume_total_ml"]) - int(o["volume_total_ml"]) if o and c else None
        amount_delta = (int(c["amount_total_fen"]) - int(o["amount_total_fen"])
                        if o and c and o.get("amount_total_fen") is not None and c.get("amount_total_fen") is not None
                        else None)
        s = sold[gun]
        out.append({"nozzle": gun, "pump_id": pump_id, "grade": grade,
                    "open_ml": o["volume_total_ml"] if o else None, "open_source": o["source"] if o else "none",
                    "close_ml": c["volume_total_ml"] if c else None, "close_source": c["source"] if c else "none",
                    "meter_ml": delta, "meter_amount_fen": amount_delta, **s,
                    "variance_ml": delta - s["sold_ml"] - s["test_ml"] if delta is not None else None})
    return out


def shift_report(db: sqlite_utils.Database, shift: dict[str, Any], *, closed_at_ms: int,
                 close_readings: dict[str, Any], declared_cash_fen: int | None,
                 nozzles: dict[int, tuple[int, str]], station: dict[str, Any]) -> dict[str, Any]:
    """The full report of one shift as it closes (or a preview of an open one)."""
    ids = shift_ids(db, str(shift["shift_id"]))
    marks = ", ".join("?" for _ in ids)
    figs = figures(db, orders_where=f"o.shift_id IN ({marks})", orders_params=list(ids),
                   refunds_where=f"r.shift_id IN ({marks})", refunds_params=list(ids))
    open_readings = json.loads(shift["open_readings"] or "{}")
    meter = meter_table(db, nozzles, open_readings, close_readings, int(shift["opened_at_ms"]), closed_at_ms)
    cash = next((t for t in figs["by_tender"] if t["tender"] == "cash"), None)
    expected = int(shift["float_fen"] or 0) + (cash["net_fen"] if cash else 0)
    return {
        "kind": "shift", "station": station, "shift_id": shift["shift_id"], "scope": shift["scope"],
        "cashier": shift["cashier"], "opened_by": shift["opened_by"], "opened_at_ms": shift["opened_at_ms"],
        "closed_at_ms": closed_at_ms, "child_shifts": ids[1:],
        **figs,
        "cash": {"float_fen": int(shift["float_fen"] or 0), "expected_fen": expected,
                 "declared_fen": declared_cash_fen,
                 "over_short_fen": declared_cash_fen - expected if declared_cash_fen is not None else None},
        "meter": meter,
        "meter_variance_ml": sum(m["variance_ml"] or 0 for m in meter),
    }


def period_report(db: sqlite_utils.Database, start_ms: int, end_ms: int, *, kind: str, label: str,
                  station: dict[str, Any]) -> dict[str, Any]:
    """Orders paid and refunds made in ``[start_ms, end_ms)``; meter rows summed over shifts closed in it."""
    figs = figures(db, orders_where="o.paid_at_ms >= ? AND o.paid_at_ms < ?", orders_params=[start_ms, end_ms],
                   refunds_where="r.created_at_ms >= ? AND r.created_at_ms < ?", refunds_params=[start_ms, end_ms])
    shifts = _rows(db, "SELECT shift_id, scope, cashier, opened_at_ms, closed_at_ms, forced, report FROM shifts"
                       " WHERE state = 'closed' AND closed_at_ms >= ? AND closed_at_ms < ? ORDER BY closed_at_ms",
                       [start_ms, end_ms])
    meter: dict[int, dict[str, Any]] = {}
    for s in shifts:
        if s["scope"] != "station" and any(x["scope"] == "station" for x in shifts):
            continue  # the station shifts already cover the pumps
        for m in json.loads(s.pop("report") or "{}").get("meter", []):
            acc = meter.setdefault(int(m["nozzle"]), {"nozzle": m["nozzle"], "pump_id": m["pump_id"],
                                                      "grade": m["grade"], "meter_ml": 0, "sold_ml": 0,
                                                      "manual_ml": 0, "test_ml": 0, "variance_ml": 0})
            for k in ("meter_ml", "sold_ml", "manual_ml", "test_ml", "variance_ml"):
                acc[k] += int(m.get(k) or 0)
    for s in shifts:
        s.pop("report", None)
    return {"kind": kind, "label": label, "station": station, "start_ms": start_ms, "end_ms": end_ms, **figs,
            "shifts": shifts, "meter": [meter[k] for k in sorted(meter)],
            "meter_variance_ml": sum(m["variance_ml"] for m in meter.values())}
