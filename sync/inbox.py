"""Inbound MQTT messages → the ``inbox`` table → domain effects, exactly once per command id.

``InboxProcessor.handle(topic, payload)`` runs on one worker thread (never in paho's callback):

1. parse and validate the wire message (``schema``, ``id``, ``kind``, ``data``; configs carry a
   ``version``);
2. in **one** ``Store.write``: if the command id is already in ``inbox`` → nothing (duplicate);
   else insert the inbox row *and* apply the effect (``agent.inbox_effects``);
3. after the commit: publish bus events; the caller then acks the MQTT message.

An invalid payload is stored as ``parked`` with its reason and never acted on; an expired one
(``expires_at_ms`` in the past on our clock, e.g. a mobile-order release) as ``expired``; a
business refusal as ``rejected``.  All of them are acked, so none blocks the next message.
Config topics use ``config:{name}:{version}`` as their id and apply only ``version > applied``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlite_utils

from agent.inbox_effects import (
    MobileRelease,
    apply_config,
    apply_price_set,
    cancel_mobile_order,
    release_mobile_order,
)
from sync.topics import CONFIG_NAMES, MAX_PAYLOAD, SCHEMA_VERSION

if TYPE_CHECKING:
    from agent.service import Agent

log = logging.getLogger(__name__)

__all__ = ["Inbound", "InboxProcessor", "InboxResult", "Invalid", "parse"]


class Invalid(ValueError):
    """The message cannot be acted on; ``str()`` is the reason stored with the parked row."""


@dataclass(frozen=True)
class Inbound:
    """A parsed message: a command (``kind`` from ``cmd/…``) or a config (``config.<name>``)."""

    command_id: str
    kind: str
    data: dict[str, Any]
    version: int | None = None
    expires_at_ms: int | None = None


@dataclass(frozen=True)
class InboxResult:
    command_id: str
    status: str  #: applied | duplicate | expired | rejected | parked | stale
    result: dict[str, Any] = field(default_factory=dict)


def _int(d: dict[str, Any], key: str, *, low: int = 0, high: int = 10**13, required: bool = True) -> int | None:
    v = d.get(key)
    if v is None and not required:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or not low <= v <= high:
        raise Invalid(f"{key}: expected an integer in {low}..{high}, got {v!r}")
    return v


def _str(d: dict[str, Any], key: str, max_len: int = 128) -> str:
    v = d.get(key)
    if not isinstance(v, str) or not v or len(v) > max_len or not v.isprintable():
        raise Invalid(f"{key}: expected a non-empty printable string of at most {max_len} characters")
    return v


def parse(prefix: str, topic: str, payload: bytes) -> Inbound:
    """Validate one message from ``center/to/{id}/…``; raise ``Invalid`` with the reason."""
    if not topic.startswith(prefix):
        raise Invalid(f"topic {topic!r} is not ours")
    rest = topic[len(prefix):].split("/")
    if len(payload) > MAX_PAYLOAD:
        raise Invalid(f"payload larger than {MAX_PAYLOAD} bytes")
    try:
        body = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise Invalid(f"payload is not UTF-8 JSON: {exc}") from None
    if not isinstance(body, dict):
        raise Invalid("payload is not a JSON object")
    if body.get("schema") != SCHEMA_VERSION:
        raise Invalid(f"schema: expected {SCHEMA_VERSION}, got {body.get('schema')!r}")
    data = body.get("data")
    if not isinstance(data, dict):
        raise Invalid("data: expected an object")
    if len(rest) == 2 and rest[0] == "config":
        name = rest[1]
        if name not in CONFIG_NAMES:
            raise Invalid(f"unknown config {name!r}")
        version = _int(body, "version", low=1)
        return Inbound(f"config:{name}:{version}", f"config.{name}", data, version=version)
    if len(rest) == 2 and rest[0] == "cmd":
        kind = _str(body, "kind", 64)
        if kind != rest[1]:
            raise Invalid(f"kind {kind!r} does not match the topic's {rest[1]!r}")
        return Inbound(_str(body, "id"), kind, data,
                       expires_at_ms=_int(body, "expires_at_ms", required=False))
    raise Invalid(f"unknown topic {topic!r}")


def _fallback_id(topic: str, payload: bytes) -> str:
    """An id for a message too broken to name itself: the same garbage dedups to the same row."""
    try:
        body = json.loads(payload)
        if isinstance(body, dict) and isinstance(body.get("id"), str) and 0 < len(body["id"]) <= 128:
            return str(body["id"])
    except ValueError:
        pass
    return "invalid:" + hashlib.sha256(topic.encode() + b"\0" + payload).hexdigest()[:40]


Effect = Callable[[sqlite_utils.Database, Inbound, int], tuple[str, dict[str, Any]]]


class InboxProcessor:
    """Dedup + effect + events for one station.  ``handle`` is called from one thread."""

    def __init__(self, agent: Agent) -> None:
        self._agent = agent
        sid = agent.config.station.id
        self.prefix = f"center/to/{sid}/"
        self._grades = {g.code for g in agent.config.grades}
        self._nozzles = {n.number for p in agent.config.all_pumps() for n in p.nozzles}
        self._effects: dict[str, Effect] = {
            "mobile_order.release": self._release,
            "mobile_order.cancel": lambda db, m, now: ("applied", cancel_mobile_order(
                db, _str(m.data, "order_id"), now)),
            "payment.result": self._payment_result,
            "station.message": lambda db, m, now: ("applied", {"text": str(m.data.get("text", ""))[:500]}),
            "config.prices": self._prices,
        }

    # ------------------------------------------------------------ effects
    def _release(self, db: sqlite_utils.Database, m: Inbound, now: int) -> tuple[str, dict[str, Any]]:
        d = m.data
        rel = MobileRelease(order_id=_str(d, "order_id"), command_id=m.command_id,
                            nozzle=_int(d, "nozzle", low=1, high=999) or 0, grade=_str(d, "grade", 16),
                            max_amount_fen=_int(d, "max_amount_fen", low=1, high=10_000_000) or 0,
                            paid_fen=_int(d, "paid_fen", high=10_000_000, required=False) or 0,
                            expires_at_ms=m.expires_at_ms)
        if rel.grade not in self._grades:
            return "rejected", {"reason": f"unknown grade {rel.grade!r}", "order_id": rel.order_id}
        if self._nozzles and rel.nozzle not in self._nozzles:
            return "rejected", {"reason": f"unknown nozzle {rel.nozzle}", "order_id": rel.order_id}
        return "applied", release_mobile_order(db, rel, now)

    @staticmethod
    def _payment_result(db: sqlite_utils.Database, m: Inbound, now: int) -> tuple[str, dict[str, Any]]:
        d = m.data
        return "applied", {"trade_no": _str(d, "trade_no"), "out_trade_no": _str(d, "out_trade_no"),
                           "amount_fen": _int(d, "amount_fen", low=1), "status": _str(d, "status", 16)}

    def _prices(self, db: sqlite_utils.Database, m: Inbound, now: int) -> tuple[str, dict[str, Any]]:
        raw = m.data.get("prices_fen")
        if not isinstance(raw, dict) or not raw:
            raise Invalid("prices_fen: expected an object grade → fen per litre")
        prices = {}
        for code in raw:
            if code not in self._grades:
                raise Invalid(f"prices_fen: unknown grade {code!r}")
            prices[code] = _int(raw, code, low=1, high=100_000) or 0
        version = m.version or 0
        res = apply_price_set(db, version, prices, _int(m.data, "effective_at_ms", required=False) or now, now)
        apply_config(db, "prices", version, m.data, now)
        return ("applied" if res["status"] == "applied" else "stale"), res

    # ------------------------------------------------------------ the transaction
    def handle(self, topic: str, payload: bytes) -> InboxResult:
        """Dedup, apply and record one message; never raises for bad input (it is parked)."""
        now = self._agent.clock.now_ms()
        try:
            msg = parse(self.prefix, topic, payload)
        except Invalid as exc:
            return self._park(_fallback_id(topic, payload), topic.rsplit("/", 1)[-1], payload, str(exc), now)
        effect = self._effects.get(msg.kind)
        if effect is None and msg.kind.startswith("config."):
            name = msg.kind.removeprefix("config.")

            def effect(db: sqlite_utils.Database, m: Inbound, n: int) -> tuple[str, dict[str, Any]]:
                res = apply_config(db, name, m.version or 0, m.data, n)
                return ("applied" if res["status"] == "applied" else "stale"), res

        if effect is None:
            return self._park(msg.command_id, msg.kind, payload, f"unknown command kind {msg.kind!r}", now)
        run = effect

        def tx(db: sqlite_utils.Database) -> InboxResult:
            row = db.execute("SELECT status, result FROM inbox WHERE command_id = ?", [msg.command_id]).fetchone()
            if row is not None:
                return InboxResult(msg.command_id, "duplicate", {"first_status": row[0]})
            if msg.expires_at_ms is not None and now > msg.expires_at_ms:
                status, result = "expired", {"expired_at_ms": msg.expires_at_ms}
            else:
                status, result = run(db, msg, now)
            db.execute("INSERT INTO inbox(command_id, kind, payload, status, result, received_at_ms) "
                       "VALUES (?, ?, ?, ?, ?, ?)",
                       [msg.command_id, msg.kind, payload.decode("utf-8"), status,
                        json.dumps(result, ensure_ascii=False), now])
            return InboxResult(msg.command_id, status, result)

        try:
            res = self._agent.store.write(tx)
        except Invalid as exc:  # data-level validation inside the effect: rolled back, park it
            return self._park(msg.command_id, msg.kind, payload, str(exc), now)
        if res.status != "duplicate":
            self._agent.bus.publish(f"center.{msg.kind}", {"command_id": msg.command_id, "status": res.status,
                                                           "result": res.result})
        return res

    def _park(self, command_id: str, kind: str, payload: bytes, reason: str, now: int) -> InboxResult:
        log.warning("inbound message %s parked: %s", command_id, reason)
        text = payload.decode("utf-8", errors="replace")[:4000]

        def tx(db: sqlite_utils.Database) -> InboxResult:
            cur = db.execute("INSERT INTO inbox(command_id, kind, payload, status, result, received_at_ms) "
                             "VALUES (?, ?, ?, 'parked', ?, ?) ON CONFLICT(command_id) DO NOTHING",
                             [command_id, kind[:64], text, json.dumps({"reason": reason}), now])
            return InboxResult(command_id, "parked" if cur.rowcount else "duplicate", {"reason": reason})

        return self._agent.store.write(tx)
