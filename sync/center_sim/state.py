"""The simulated center's data: uploads, trades, refunds, config, members, coupons, mobile orders, invoices.

Everything is in memory under one lock (``threading.RLock``), optionally saved to a JSON file.
Uploads are upserts keyed by ``out_type`` + ``out_id``; each message is applied once per
``event_id`` (a replay with the same payload answers ``duplicate``, with another payload
``key_reused``).  Money is integer fen.  Days are UTC ``YYYY-MM-DD``.

``Faults`` are the misbehaviour knobs (slow answers, 5xx, commit-then-500, commit-then-drop,
duplicate notifies, a wrong amount or a missing trade in the bill); counters of the form
``next_n`` are consumed one per write request.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["CenterState", "Faults", "UploadStatus", "utc_day"]

UploadStatus = str  # "ok" | "duplicate" | "invalid" | "key_reused"

_OUT_TYPE_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
FEE_PPM = 6000  # 0.6 % channel fee, rounded half up per trade


def utc_day(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).strftime("%Y-%m-%d")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class Faults:
    """Misbehaviour knobs; mutable on purpose (tests and ``/_sim/faults`` turn them on and off)."""

    delay_s: float = 0.0  #: every answer waits this long
    fail_5xx: int = 0  #: the next N write requests answer 503 without committing
    commit_then_500: int = 0  #: the next N write requests commit, then answer 500
    commit_then_drop: int = 0  #: the next N write requests commit, then the connection is dropped
    duplicate_notify: bool = False  #: payment results are published twice
    auto_pay: bool = True  #: /gopay succeeds at once (as if the customer paid)
    bill_amount_delta: dict[str, int] = field(default_factory=dict)  #: out_trade_no → fen added in the bill
    bill_missing: list[str] = field(default_factory=list)  #: out_trade_no left out of the bill
    settle_delta_fen: int = 0  #: added to the settled amount (bank shortfall)

    def update(self, values: dict[str, Any]) -> None:
        for k, v in values.items():
            if k not in self.__dataclass_fields__:
                raise KeyError(f"unknown fault knob {k!r}")
            setattr(self, k, v)


def _hash(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def validate_item(item: Any) -> str | None:
    """Structural check of one uploaded message; a reason string when it is not even a message."""
    if not isinstance(item, dict):
        return "message is not an object"
    for key in ("event_id", "out_type", "out_id", "kind"):
        if not isinstance(item.get(key), str) or not item[key]:
            return f"{key}: expected a non-empty string"
    if not isinstance(item.get("payload"), dict):
        return "payload: expected an object"
    return None


def _semantic(item: dict[str, Any]) -> str | None:
    out_type, kind, p = item["out_type"], item["kind"], item["payload"]
    if not _OUT_TYPE_RE.fullmatch(out_type):
        return f"out_type {out_type!r} is not an identifier"
    if not kind.startswith(out_type + "."):
        return f"kind {kind!r} does not belong to {out_type!r}"
    if out_type == "order" and kind == "order.created":
        if p.get("order_id") != item["out_id"]:
            return "payload.order_id must equal out_id"
        for k in ("total_fen", "payable_fen"):
            if not isinstance(p.get(k), int) or isinstance(p.get(k), bool) or p[k] < 0:
                return f"payload.{k}: expected integer fen >= 0"
        if not isinstance(p.get("lines"), list) or not p["lines"]:
            return "payload.lines: expected a non-empty list"
    if out_type in ("payment", "refund"):
        amount = p.get("amount_fen")
        if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
            return "payload.amount_fen: expected integer fen > 0"
    return None


class CenterState:
    """All center data behind one lock.  Methods are the simulator's business rules."""

    def __init__(self, path: Path | None = None) -> None:
        self.lock = threading.RLock()
        self.faults = Faults()
        self.path = path
        self.events: dict[str, str] = {}  # event_id → payload hash
        self.applied: list[dict[str, Any]] = []  # arrival log: seq, event_id, out_type, out_id, kind
        self.records: dict[str, dict[str, Any]] = {}  # "out_type:out_id" → merged record
        self.replays = 0
        self.trades: dict[str, dict[str, Any]] = {}  # trade_no → trade
        self.trade_by_out: dict[str, str] = {}
        self.refunds: dict[str, dict[str, Any]] = {}  # out_refund_no → refund
        self.config: dict[str, dict[str, Any]] = {}  # name → {"version", "data"}
        self.members: dict[str, dict[str, Any]] = {}
        self.coupons: dict[str, dict[str, Any]] = {}
        self.ops: dict[str, Any] = {}  # out_type:out_id → stored result of member/coupon writes
        self.mobile_orders: dict[str, dict[str, Any]] = {}
        self.invoices: dict[str, dict[str, Any]] = {}  # out_id (the station's order id) → invoice
        self.calls: dict[str, int] = {}  # requests received per write endpoint (tests: "the center saw one")
        self._seq = 0
        if path is not None and path.exists():
            self._load(path)

    # ------------------------------------------------------------ persistence
    _SAVED = ("events", "applied", "records", "replays", "trades", "trade_by_out", "refunds", "config",
              "members", "coupons", "ops", "mobile_orders", "invoices", "_seq")

    def _load(self, path: Path) -> None:
        data = json.loads(path.read_text(encoding="utf-8"))
        for k in self._SAVED:
            if k in data:
                setattr(self, k, data[k])

    def save(self) -> None:
        if self.path is None:
            return
        with self.lock:
            data = {k: getattr(self, k) for k in self._SAVED}
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
        tmp.replace(self.path)

    def next_seq(self) -> int:
        with self.lock:
            self._seq += 1
            return self._seq

    # ------------------------------------------------------------ uploads
    def apply_upload(self, item: dict[str, Any]) -> tuple[UploadStatus, str]:
        """Apply one structurally valid message; idempotent by ``event_id``."""
        with self.lock:
            h = _hash([item["out_type"], item["out_id"], item["kind"], item["payload"]])
            seen = self.events.get(item["event_id"])
            if seen is not None:
                self.replays += 1
                return ("duplicate", "") if seen == h else ("key_reused", "event_id reused with another payload")
            reason = _semantic(item)
            if reason is not None:
                return "invalid", reason
            self.events[item["event_id"]] = h
            seq = self.next_seq()
            self.applied.append({"seq": seq, "event_id": item["event_id"], "out_type": item["out_type"],
                                 "out_id": item["out_id"], "kind": item["kind"]})
            key = f"{item['out_type']}:{item['out_id']}"
            rec = self.records.setdefault(key, {"out_type": item["out_type"], "out_id": item["out_id"],
                                                "kinds": [], "data": {}})
            rec["kinds"].append(item["kind"])
            rec["data"].update(item["payload"])
            rec["updated_seq"] = seq
            self._effects(item)
            return "ok", ""

    def _effects(self, item: dict[str, Any]) -> None:
        """What an applied message changes in the center's own books (once: the event id is new)."""
        p = item["payload"]
        if item["kind"] == "member.points_settled":
            member = self.members.get(str(p.get("member_id")))
            used, earned = p.get("used"), p.get("earned")
            if member is not None and isinstance(used, int) and isinstance(earned, int):
                member["points"] = int(member.get("points") or 0) - used + earned
        elif item["kind"] == "member.points_reversed":  # a fully refunded order
            member = self.members.get(str(p.get("member_id")))
            back, taken = p.get("returned"), p.get("taken_back")
            if member is not None and isinstance(back, int) and isinstance(taken, int):
                member["points"] = int(member.get("points") or 0) + back - taken

    # ------------------------------------------------------------ trades (seed 002)
    def gopay(self, body: dict[str, Any]) -> tuple[int, str, dict[str, Any]]:
        out_no, amount = body.get("out_trade_no"), body.get("amount_fen")
        if not isinstance(out_no, str) or not out_no:
            return 400, "out_trade_no required", {}
        if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
            return 400, "amount_fen: integer fen > 0 required", {}
        with self.lock:
            existing = self.trade_by_out.get(out_no)
            if existing is not None:
                t = self.trades[existing]
                if t["amount_fen"] != amount:
                    return 422, "out_trade_no reused with another amount", {}
                return 0, "ok", dict(t)
            trade_no = f"T{self.next_seq():010d}"
            t = {"trade_no": trade_no, "out_trade_no": out_no, "order_id": body.get("order_id"),
                 "station_id": body.get("station_id"), "channel": str(body.get("channel", "qr")),
                 "amount_fen": amount, "status": "pending", "created_at_ms": int(body.get("at_ms") or now_ms()),
                 "paid_at_ms": None, "refunded_fen": 0}
            self.trades[trade_no] = t
            self.trade_by_out[out_no] = trade_no
            return 0, "ok", dict(t)

    def notify(self, trade_no: str, status: str, amount_fen: int | None, at_ms: int | None = None) -> dict[str, Any]:
        """The channel's callback; repeated notifies change nothing after the first final status."""
        with self.lock:
            t = self.trades.get(trade_no)
            if t is None:
                raise KeyError(trade_no)
            if t["status"] == "pending":
                if status == "success" and (amount_fen is None or amount_fen == t["amount_fen"]):
                    t["status"], t["paid_at_ms"] = "success", at_ms or t["created_at_ms"]
                elif status != "success":
                    t["status"] = "failed"
            return dict(t)

    def refund(self, body: dict[str, Any]) -> tuple[int, str, dict[str, Any]]:
        out_refund, out_trade, amount = body.get("out_refund_no"), body.get("out_trade_no"), body.get("amount_fen")
        if not isinstance(out_refund, str) or not isinstance(out_trade, str):
            return 400, "out_refund_no and out_trade_no required", {}
        if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
            return 400, "amount_fen: integer fen > 0 required", {}
        with self.lock:
            if out_refund in self.refunds:
                r = self.refunds[out_refund]
                return (0, "ok", dict(r)) if r["amount_fen"] == amount else (422, "out_refund_no reused", {})
            trade_no = self.trade_by_out.get(out_trade)
            t = self.trades.get(trade_no or "")
            if t is None or t["status"] != "success":
                return 404, "no successful trade to refund", {}
            if t["refunded_fen"] + amount > t["amount_fen"]:
                return 400, "refund exceeds the paid amount", {}
            t["refunded_fen"] += amount
            r = {"refund_no": f"R{self.next_seq():010d}", "out_refund_no": out_refund, "trade_no": t["trade_no"],
                 "out_trade_no": out_trade, "amount_fen": amount, "status": "success",
                 "refunded_at_ms": int(body.get("at_ms") or now_ms())}
            self.refunds[out_refund] = r
            return 0, "ok", dict(r)

    def bill(self, day: str, station_id: str | None) -> dict[str, Any]:
        """The day's successful trades and refunds, with the bill knobs applied."""
        with self.lock:
            f = self.faults
            trades = []
            for t in self.trades.values():
                if t["status"] != "success" or utc_day(t["paid_at_ms"]) != day:
                    continue
                if station_id and t.get("station_id") not in (None, station_id):
                    continue
                if t["out_trade_no"] in f.bill_missing:
                    continue
                row = {k: t[k] for k in ("trade_no", "out_trade_no", "channel", "amount_fen", "paid_at_ms")}
                row["amount_fen"] += int(f.bill_amount_delta.get(t["out_trade_no"], 0))
                trades.append(row)
            refunds = [dict(r) for r in self.refunds.values() if utc_day(r["refunded_at_ms"]) == day]
        trades.sort(key=lambda r: r["trade_no"])
        return {"date": day, "trades": trades, "refunds": refunds}

    def settle(self, day: str, station_id: str | None) -> dict[str, Any]:
        """T+1 settlement of ``day``: gross, refunds, fee, the bank transfer and its items."""
        with self.lock:
            trades = [t for t in self.trades.values() if t["status"] == "success" and utc_day(t["paid_at_ms"]) == day
                      and (not station_id or t.get("station_id") in (None, station_id))]
            refunds = [r for r in self.refunds.values() if utc_day(r["refunded_at_ms"]) == day]
            gross = sum(t["amount_fen"] for t in trades)
            fee = sum((t["amount_fen"] * FEE_PPM + 500_000) // 1_000_000 for t in trades)
            refunded = sum(r["amount_fen"] for r in refunds)
            bank = gross - refunded - fee + self.faults.settle_delta_fen
        return {"date": day, "gross_fen": gross, "refund_fen": refunded, "fee_fen": fee, "bank_fen": bank,
                "trades": sorted(({k: t[k] for k in ("trade_no", "out_trade_no", "amount_fen")} for t in trades),
                                 key=lambda t: str(t["trade_no"])),
                "refunds": sorted(({k: r[k] for k in ("refund_no", "out_refund_no", "amount_fen")} for r in refunds),
                                  key=lambda r: str(r["refund_no"]))}

    # ------------------------------------------------------------ invoices (发票)
    def issue_invoice(self, body: dict[str, Any]) -> tuple[int, str, dict[str, Any]]:
        """Issue the invoice of one station order; idempotent by ``out_id``: a repeat returns the same invoice."""
        out_id, amount, title = body.get("out_id"), body.get("amount_fen"), body.get("title")
        with self.lock:
            self.calls["invoice"] = self.calls.get("invoice", 0) + 1
            if not isinstance(out_id, str) or not out_id:
                return 400, "out_id required", {}
            existing = self.invoices.get(out_id)
            if existing is not None:
                return 0, "ok", dict(existing)
            if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
                return 422, "amount_fen: integer fen > 0 required", {}
            if not isinstance(title, str) or not 1 <= len(title.strip()) <= 100:
                return 400, "title: 1 to 100 characters required", {}
            at = int(body.get("at_ms") or now_ms())
            inv = {"invoice_no": f"FP{utc_day(at).replace('-', '')}{self.next_seq():08d}", "status": "issued",
                   "out_id": out_id, "order_id": body.get("order_id") or out_id, "station_id": body.get("station_id"),
                   "amount_fen": amount, "title": title.strip(), "tax_id": body.get("tax_id"),
                   "email": body.get("email"), "issued_at_ms": at}
            self.invoices[out_id] = inv
            return 0, "ok", dict(inv)

    # ------------------------------------------------------------ members
    def register_member(self, body: dict[str, Any]) -> dict[str, Any]:
        """A new member (会员注册); idempotent by ``out_id``; a phone that is already a member's is refused (409)."""
        with self.lock:
            self.calls["member.register"] = self.calls.get("member.register", 0) + 1
            out_id, phone, name, plate = body.get("out_id"), body.get("phone"), body.get("name"), body.get("plate")
            if not isinstance(out_id, str) or not out_id:
                return {"errno": 400, "msg": "out_id required"}

            def run() -> dict[str, Any]:
                if not isinstance(phone, str) or not re.fullmatch(r"1[0-9]{10}", phone):
                    return {"errno": 400, "msg": "phone: 11 digits starting with 1 required"}
                if not isinstance(name, str) or not 1 <= len(name.strip()) <= 30:
                    return {"errno": 400, "msg": "name: 1 to 30 characters required"}
                if plate is not None and not isinstance(plate, str):
                    return {"errno": 400, "msg": "plate: expected a string"}
                taken = next((m for m in self.members.values() if m.get("phone") == phone), None)
                if taken is not None:
                    return {"errno": 409, "msg": f"phone {phone} already belongs to member {taken['member_id']}"}
                member_id = f"M{self.next_seq():08d}"
                m = {"member_id": member_id, "name": name.strip(), "level": "normal", "phone": phone,
                     "card_no": None, "plates": [plate] if plate else [], "balance_fen": 0, "points": 0}
                self.members[member_id] = m
                return {"errno": 0, **m, "coupons": []}

            result: dict[str, Any] = self.once("member.register", out_id, run)
            return result

    # ------------------------------------------------------------ idempotent member/coupon writes
    def once(self, out_type: str, out_id: str, fn: Any) -> Any:
        """Run ``fn()`` once per ``out_type:out_id``; a repeat returns the stored result."""
        key = f"{out_type}:{out_id}"
        with self.lock:
            if key in self.ops:
                return self.ops[key]
            result = fn()
            self.ops[key] = result
            return result

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {"applied": len(self.applied), "records": len(self.records), "replays": self.replays,
                    "trades": len(self.trades), "refunds": len(self.refunds),
                    "config": {k: v["version"] for k, v in self.config.items()},
                    "faults": asdict(self.faults)}
