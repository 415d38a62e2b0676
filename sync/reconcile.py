"""Daily reconciliation against the center (seed 002): trades vs ``/query/bill``, then settlement.

Trade reconciliation compares our successful online payments of the day (normal *and*
duplicate ones, as the seed says) and our successful refunds with the center's bill.  Three
mismatch kinds, each followed up automatically with ``/query/trade`` or ``/query/refund``:

* ``amount_differs`` — the query tells whether the bill is wrong (query = ours: ``bill_error``)
  or the trade really differs (``trade_differs``: escalate);
* ``missing_at_center`` — the query finds it (``bill_omission``, e.g. a day/time-zone edge) or
  not (``not_at_center``: a payment the center never had — check for a forged notify);
* ``missing_locally`` — the query confirms it (``notify_lost``: record it locally, the notify
  never arrived) or not (``phantom_in_bill``).

Settlement (``/query/settle``, T+1): bank amount + fee must equal our net for the settled
trades and refunds; settled items we lack and our items not settled are listed.

Limits: read-only — it reports and recommends, it never edits payments.  Days are UTC
(``YYYY-MM-DD``), the same as the simulator's; a station in another zone must agree the cut-off
with the center.  Online tenders only (cash never reaches the payment gateway).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from sync.http import CenterClient

if TYPE_CHECKING:
    from agent.service import Agent

__all__ = ["ONLINE_TENDERS", "reconcile"]

ONLINE_TENDERS = ("qr_scan", "qr_show", "plate_pay")
PAID_STATES = ("confirmed", "duplicate")
REFUNDED_STATES = ("confirmed", "success", "succeeded", "done")


def _day_bounds(day: str) -> tuple[int, int]:
    start = dt.datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=dt.UTC)
    ms = int(start.timestamp() * 1000)
    return ms, ms + 86_400_000


def _local(agent: Agent, day: str) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    lo, hi = _day_bounds(day)
    marks = ",".join("?" * len(ONLINE_TENDERS))
    pays = agent.store.query(
        f"SELECT payment_id, order_id, tender, amount_fen, state, provider_ref FROM payments "  # noqa: S608
        f"WHERE tender IN ({marks}) AND state IN ('confirmed', 'duplicate') "
        f"AND updated_at_ms >= ? AND updated_at_ms < ?", (*ONLINE_TENDERS, lo, hi))
    refunds = agent.store.query(
        f"SELECT r.refund_id, r.payment_id, r.amount_fen, r.state FROM refunds r "  # noqa: S608
        f"JOIN payments p ON p.payment_id = r.payment_id WHERE p.tender IN ({marks}) "
        f"AND r.state IN ({','.join('?' * len(REFUNDED_STATES))}) AND r.created_at_ms >= ? AND r.created_at_ms < ?",
        (*ONLINE_TENDERS, *REFUNDED_STATES, lo, hi))
    return {p["payment_id"]: p for p in pays}, {r["refund_id"]: r for r in refunds}


def _trades(center: CenterClient, local: dict[str, dict[str, Any]], bill: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    theirs = {str(t["out_trade_no"]): t for t in bill}
    for out_no, mine in sorted(local.items()):
        t = theirs.get(out_no)
        if t is None:
            q = center.query_trade(out_no)
            found = q is not None and q.get("status") == "success"
            out.append({"item": "trade", "kind": "missing_at_center", "out_trade_no": out_no,
                        "local_fen": mine["amount_fen"], "center_fen": None, "follow_up": q,
                        "resolution": "bill_omission" if found else "not_at_center",
                        "action": ("center has it: check the bill's day cut-off" if found else
                                   "the center never had this payment: verify the notify signature, alert")})
        elif int(t["amount_fen"]) != int(mine["amount_fen"]):
            q = center.query_trade(out_no)
            bill_wrong = q is not None and int(q.get("amount_fen", -1)) == int(mine["amount_fen"])
            out.append({"item": "trade", "kind": "amount_differs", "out_trade_no": out_no,
                        "local_fen": mine["amount_fen"], "center_fen": t["amount_fen"], "follow_up": q,
                        "resolution": "bill_error" if bill_wrong else "trade_differs",
                        "action": ("the bill is wrong, the trade matches: ask the center to fix the bill"
                                   if bill_wrong else "amounts really differ: escalate to finance")})
    for out_no, t in sorted(theirs.items()):
        if out_no not in local:
            q = center.query_trade(out_no)
            real = q is not None and q.get("status") == "success"
            out.append({"item": "trade", "kind": "missing_locally", "out_trade_no": out_no, "local_fen": None,
                        "center_fen": t["amount_fen"], "follow_up": q,
                        "resolution": "notify_lost" if real else "phantom_in_bill",
                        "action": ("paid at the center but not here: record it from the query result"
                                   if real else "the bill lists a trade the center cannot find: escalate")})
    return out


def _refunds(center: CenterClient, local: dict[str, dict[str, Any]],
             bill: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    theirs = {str(r["out_refund_no"]): r for r in bill}
    for no in sorted(set(local) | set(theirs)):
        mine, t = local.get(no), theirs.get(no)
        if mine is not None and t is not None and int(mine["amount_fen"]) == int(t["amount_fen"]):
            continue
        kind = "missing_at_center" if t is None else "missing_locally" if mine is None else "amount_differs"
        out.append({"item": "refund", "kind": kind, "out_refund_no": no,
                    "local_fen": mine["amount_fen"] if mine else None, "center_fen": t["amount_fen"] if t else None,
                    "follow_up": center.query_refund(no)})
    return out


def _settlement(center: CenterClient, day: str, pays: dict[str, dict[str, Any]],
                refunds: dict[str, dict[str, Any]]) -> dict[str, Any]:
    s = center.query_settle(day)
    settled = {str(t["out_trade_no"]): int(t["amount_fen"]) for t in s.get("trades", [])}
    settled_ref = {str(r["out_refund_no"]): int(r["amount_fen"]) for r in s.get("refunds", [])}
    expected = (sum(int(pays[n]["amount_fen"]) for n in settled if n in pays)
                - sum(int(refunds[n]["amount_fen"]) for n in settled_ref if n in refunds))
    received = int(s["bank_fen"]) + int(s["fee_fen"])
    unknown = sorted(n for n in settled if n not in pays)
    # Items we lack are listed separately; their money is not "unexplained".
    explained = sum(settled[n] for n in unknown) - sum(a for n, a in settled_ref.items() if n not in refunds)
    diff = received - expected - explained
    return {"date": s.get("date", day), "bank_fen": s["bank_fen"], "fee_fen": s["fee_fen"],
            "expected_fen": expected, "difference_fen": diff, "ok": diff == 0 and not unknown
            and not [n for n in pays if n not in settled],
            "settled_not_local": unknown, "local_not_settled": sorted(n for n in pays if n not in settled)}


def reconcile(agent: Agent, center: CenterClient, day: str) -> dict[str, Any]:
    """Reconcile one UTC day; returns ``{date, trades: {...}, mismatches: [...], settlement: {...}}``."""
    _day_bounds(day)  # validates the format
    pays, refunds = _local(agent, day)
    bill = center.query_bill(day)
    mismatches = _trades(center, pays, list(bill.get("trades", [])))
    mismatches += _refunds(center, refunds, list(bill.get("refunds", [])))
    return {
        "date": day,
        "local": {"trades": len(pays), "trade_fen": sum(int(p["amount_fen"]) for p in pays.values()),
                  "refunds": len(refunds), "refund_fen": sum(int(r["amount_fen"]) for r in refunds.values())},
        "center": {"trades": len(bill.get("trades", [])), "refunds": len(bill.get("refunds", []))},
        "mismatches": mismatches,
        "ok": not mismatches,
        "settlement": _settlement(center, day, pays, refunds),
    }
