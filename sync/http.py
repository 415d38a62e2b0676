"""The trade center's HTTP API as seen from the station (httpx, explicit timeouts).

Only this module knows the center's JSON: the envelope ``{"errno", "msg", "data"}`` of the seed's
payment API, the upload endpoints and the query endpoints used by reconciliation.  It receives an
``httpx.Client`` (tests pass one bound to the simulator, or a ``MockTransport``) and never retries
by itself: the relay owns retries.

Upload classification (RELIABILITY §2):

* 2xx, item ``ok`` / ``duplicate`` → confirmed;
* item ``invalid`` / ``key_reused`` (or 400/422 for a single message) → parked with the reason;
* 409, 408, 429, 5xx, timeout, connection error → retry later with the same key (``Retry-After``
  honoured);
* 401/403 → the relay pauses (``Unauthorized``), rows are kept.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

__all__ = [
    "CenterClient",
    "CenterError",
    "ItemResult",
    "OutMessage",
    "Outcome",
    "RetryLater",
    "Unauthorized",
    "idempotency_header",
]


class CenterError(Exception):
    """The center answered something this client cannot use (bad envelope, errno != 0)."""


class RetryLater(CenterError):
    """Transient: timeout, connection error, 408/409/429/5xx.  Same key next time."""

    def __init__(self, reason: str, retry_after_s: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after_s = retry_after_s


class Unauthorized(CenterError):
    """401/403: credentials are wrong; the relay pauses and alerts, rows are kept."""


class Outcome(enum.Enum):
    CONFIRMED = "confirmed"
    PARK = "park"
    RETRY = "retry"


@dataclass(frozen=True)
class OutMessage:
    """One outbox row on the wire; ``event_id`` is its idempotency key."""

    event_id: str
    out_type: str
    out_id: str
    kind: str
    payload_json: str  #: the outbox's stored JSON text, sent as is
    created_at_ms: int

    def wire(self) -> str:
        return (f'{{"event_id":{json.dumps(self.event_id)},"out_type":{json.dumps(self.out_type)},'
                f'"out_id":{json.dumps(self.out_id)},"kind":{json.dumps(self.kind)},'
                f'"created_at_ms":{int(self.created_at_ms)},"payload":{self.payload_json}}}')


@dataclass(frozen=True)
class ItemResult:
    event_id: str
    outcome: Outcome
    reason: str = ""


def idempotency_header(key: str) -> str:
    """A structured-field string (draft-ietf-httpapi-idempotency-key-header): ``"key"``."""
    if any(c in key for c in '"\\') or not key.isprintable():
        raise ValueError(f"idempotency key {key!r} is not a plain sf-string")
    return f'"{key}"'


def _retry_after(resp: httpx.Response) -> float | None:
    value = resp.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _envelope(resp: httpx.Response) -> dict[str, Any]:
    try:
        body = resp.json()
    except ValueError as exc:
        raise CenterError(f"HTTP {resp.status_code}: body is not JSON") from exc
    if not isinstance(body, dict) or "errno" not in body:
        raise CenterError(f"HTTP {resp.status_code}: not a {{errno, msg, data}} envelope")
    return body


_ITEM_OUTCOME = {"ok": Outcome.CONFIRMED, "duplicate": Outcome.CONFIRMED, "invalid": Outcome.PARK,
                 "key_reused": Outcome.PARK, "processing": Outcome.RETRY, "retry": Outcome.RETRY}


class CenterClient:
    """Calls on the center for one station.  Thread-compatible (httpx.Client is thread-safe)."""

    def __init__(self, client: httpx.Client, station_id: str) -> None:
        self._client = client
        self.station_id = station_id

    # ------------------------------------------------------------ transport
    def _post(self, path: str, content: str, key: str) -> httpx.Response:
        try:
            resp = self._client.post(path, content=content.encode("utf-8"), headers={
                "Content-Type": "application/json", "Idempotency-Key": idempotency_header(key),
                "X-Station-Id": self.station_id})
        except httpx.TimeoutException as exc:
            raise RetryLater(f"timeout: {exc.__class__.__name__}") from exc
        except httpx.TransportError as exc:
            raise RetryLater(f"transport: {exc.__class__.__name__}: {exc}") from exc
        self._raise_transient(resp)
        return resp

    @staticmethod
    def _raise_transient(resp: httpx.Response) -> None:
        code = resp.status_code
        if code in (401, 403):
            raise Unauthorized(f"HTTP {code}: the center refused our credentials")
        if code in (408, 409, 425, 429) or code >= 500:
            raise RetryLater(f"HTTP {code}", _retry_after(resp))

    def _get(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        try:
            resp = self._client.get(path, params=params, headers={"X-Station-Id": self.station_id})
        except httpx.TimeoutException as exc:
            raise RetryLater(f"timeout: {exc.__class__.__name__}") from exc
        except httpx.TransportError as exc:
            raise RetryLater(f"transport: {exc.__class__.__name__}: {exc}") from exc
        self._raise_transient(resp)
        body = _envelope(resp)
        if body["errno"] != 0:
            raise CenterError(f"{path}: errno {body['errno']}: {body.get('msg')}")
        data = body.get("data")
        if not isinstance(data, dict):
            raise CenterError(f"{path}: data is not an object")
        return data

    # ------------------------------------------------------------ uploads
    def upload_one(self, msg: OutMessage) -> ItemResult:
        """POST /upload with ``Idempotency-Key: "<event_id>"``: an upsert keyed by out_type + out_id."""
        resp = self._post("/upload", msg.wire(), msg.event_id)
        if resp.status_code in (400, 422):
            reason = _reason(resp)
            return ItemResult(msg.event_id, Outcome.PARK, f"HTTP {resp.status_code}: {reason}")
        if not 200 <= resp.status_code < 300:
            return ItemResult(msg.event_id, Outcome.RETRY, f"HTTP {resp.status_code}")
        try:
            body = _envelope(resp)
        except CenterError as exc:  # a 2xx we cannot read: the write may have happened; ask again, same key
            return ItemResult(msg.event_id, Outcome.RETRY, str(exc))
        data = body.get("data")
        status = str(data.get("status", "")) if isinstance(data, dict) else ""
        outcome = _ITEM_OUTCOME.get(status, Outcome.RETRY) if body.get("errno") == 0 else Outcome.PARK
        if body.get("errno") is None:
            outcome = Outcome.RETRY  # not an answer we understand: never park on it
        return ItemResult(msg.event_id, outcome,
                          "" if outcome is Outcome.CONFIRMED else f"{status} {body.get('msg', '')}".strip())

    def upload_batch(self, msgs: Sequence[OutMessage]) -> list[ItemResult] | None:
        """POST /upload/batch: each item is idempotent by its own ``event_id``.

        Returns one result per message, or ``None`` when the center rejected the batch as a whole
        (400/422): the caller then sends the messages one by one so a poison message is isolated.
        The batch key is a hash of the exact body, so it is never reused with another payload.
        """
        body = (f'{{"station_id":{json.dumps(self.station_id)},"messages":['
                + ",".join(m.wire() for m in msgs) + "]}")
        key = "batch-" + hashlib.sha256(body.encode("utf-8")).hexdigest()[:32]
        resp = self._post("/upload/batch", body, key)
        if resp.status_code in (400, 422):
            return None
        if not 200 <= resp.status_code < 300:
            raise RetryLater(f"HTTP {resp.status_code}")
        env = _envelope(resp)
        data = env.get("data")
        results = data.get("results") if isinstance(data, dict) else None
        if env.get("errno") != 0 or not isinstance(results, list):
            return None  # not an answer we can split per message: the caller sends them one by one
        by_id: dict[str, ItemResult] = {}
        for r in results:
            if isinstance(r, dict) and isinstance(r.get("event_id"), str):
                status = str(r.get("status", ""))
                outcome = _ITEM_OUTCOME.get(status, Outcome.RETRY)
                reason = "" if outcome is Outcome.CONFIRMED else f"{status}: {r.get('reason', '')}"
                by_id[r["event_id"]] = ItemResult(r["event_id"], outcome, reason)
        # A message the center did not mention is retried, never assumed sent.
        return [by_id.get(m.event_id, ItemResult(m.event_id, Outcome.RETRY, "not in the answer")) for m in msgs]

    # ------------------------------------------------------------ queries (seed 002)
    def query_bill(self, day: str) -> dict[str, Any]:
        """``/query/bill``: the center's trades and refunds for a UTC day ``YYYY-MM-DD``."""
        return self._get("/query/bill", {"date": day, "station_id": self.station_id})

    def query_trade(self, out_trade_no: str) -> dict[str, Any] | None:
        """``/query/trade`` by our payment id; ``None`` if the center has no such trade."""
        try:
            data = self._get("/query/trade", {"out_trade_no": out_trade_no})
        except CenterError as exc:
            if "errno 404" in str(exc):
                return None
            raise
        return data

    def query_refund(self, out_refund_no: str) -> dict[str, Any] | None:
        try:
            data = self._get("/query/refund", {"out_refund_no": out_refund_no})
        except CenterError as exc:
            if "errno 404" in str(exc):
                return None
            raise
        return data

    def query_settle(self, day: str) -> dict[str, Any]:
        return self._get("/query/settle", {"date": day, "station_id": self.station_id})

    def open_mobile_orders(self) -> list[dict[str, Any]]:
        """Mobile orders the center released to us and still considers open (pulled after a reconnect)."""
        data = self._get(f"/station/{self.station_id}/mobile_orders", {"status": "released"})
        orders = data.get("orders")
        return [o for o in orders if isinstance(o, dict)] if isinstance(orders, list) else []

    def ping(self) -> bool:
        """A cheap reachability probe (``GET /health``); never raises."""
        try:
            return self._client.get("/health").status_code == 200
        except httpx.HTTPError:
            return False


def _reason(resp: httpx.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return resp.text[:200]
    if isinstance(body, dict):
        return str(body.get("msg") or body.get("detail") or body)[:300]
    return str(body)[:300]
