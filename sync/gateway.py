"""``HttpCenterGateway``: the checkout's ``agent.ports.CenterGateway`` over the center's HTTP API.

Payment calls of seed 002 (``/gopay``, ``/query/trade``, ``/refund``) and the
member/coupon/invoice calls of the station API.  Every write carries the station-made
id as ``out_trade_no`` / ``out_refund_no`` / ``out_id`` and as the
``Idempotency-Key``, so a repeat after a lost answer is harmless.

Mapping: ``errno == 0`` → the data; ``errno`` 4xx (or HTTP 4xx) → ``GatewayRejected`` (carrying the errno);
timeout, connection error, HTTP 5xx/408/429, a body that is not the
envelope → ``GatewayUnavailable`` (outcome unknown).  The customer's payment
code is sent once and never logged.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx

from agent.ports import GatewayRejected, GatewayUnavailable, InvoiceResult, TradeResult
from sync.http import idempotency_header

__all__ = ["HttpCenterGateway"]

log = logging.getLogger(__name__)


class HttpCenterGateway:
    def __init__(self, client: httpx.Client, station_id: str) -> None:
        self._client = client
        self.station_id = station_id

    def _call(self, method: str, path: str, *, key: str | None = None, json: dict[str, Any] | None = None,
              params: dict[str, str] | None = None, not_found_ok: bool = False) -> dict[str, Any] | None:
        headers = {"Idempotency-Key": idempotency_header(key)} if key else {}
        try:
            resp = self._client.request(method, path, json=json, params=params, headers=headers)
        except httpx.HTTPError as exc:
            raise GatewayUnavailable(f"{path}: {type(exc).__name__}") from None
        if resp.status_code >= 500 or resp.status_code in (408, 429):
            raise GatewayUnavailable(f"{path}: HTTP {resp.status_code}")
        try:
            body = resp.json()
        except ValueError:
            raise GatewayUnavailable(f"{path}: HTTP {resp.status_code}, body is not JSON") from None
        if not isinstance(body, dict) or "errno" not in body:
            raise GatewayUnavailable(f"{path}: not a {{errno, msg, data}} envelope")
        errno = body.get("errno")
        if errno == 0:
            data = body.get("data") or {}
            if not isinstance(data, dict):
                raise GatewayUnavailable(f"{path}: data is not an object")
            return data
        if not_found_ok and errno == 404:
            return None
        if isinstance(errno, int) and 400 <= errno < 500:
            raise GatewayRejected(str(body.get("msg") or f"errno {errno}"), errno=errno)
        raise GatewayUnavailable(f"{path}: errno {errno}: {body.get('msg')}")

    @staticmethod
    def _trade(data: dict[str, Any]) -> TradeResult:
        status = data.get("status")
        amount = data.get("amount_fen")
        if status not in ("pending", "success", "failed", "closed") or not isinstance(amount, int):
            raise GatewayUnavailable(f"trade answer not understood: status={status!r}")
        return TradeResult(out_trade_no=str(data.get("out_trade_no", "")), status=str(status), amount_fen=amount,
                           trade_no=str(data.get("trade_no", "")), pay_url=str(data.get("url", "")))

    # ------------------------------------------------------------ payments
    def gopay(self, *, out_trade_no: str, order_id: str, amount_fen: int, channel: str,
              auth_code: str | None = None) -> TradeResult:
        body: dict[str, Any] = {"out_trade_no": out_trade_no, "order_id": order_id, "amount_fen": amount_fen,
                                "channel": channel, "station_id": self.station_id, "out_type": "payment",
                                "out_id": out_trade_no}
        if auth_code:
            body["auth_code"] = auth_code
        data = self._call("POST", "/gopay", key=f"gopay:{out_trade_no}", json=body)
        assert data is not None
        return self._trade(data)

    def query_trade(self, out_trade_no: str) -> TradeResult | None:
        data = self._call("GET", "/query/trade", params={"out_trade_no": out_trade_no}, not_found_ok=True)
        return None if data is None else self._trade(data)

    def refund(self, *, out_refund_no: str, out_trade_no: str, amount_fen: int, reason: str) -> str:
        data = self._call("POST", "/refund", key=f"refund:{out_refund_no}",
                          json={"out_refund_no": out_refund_no, "out_trade_no": out_trade_no,
                                "amount_fen": amount_fen, "reason": reason, "station_id": self.station_id})
        assert data is not None
        return str(data.get("status", "success"))

    # ------------------------------------------------------------ members and coupons
    def stored_value(self, op: str, *, out_id: str, member_id: str, amount_fen: int) -> int:
        data = self._call("POST", f"/member/stored_value/{op}", key=f"sv:{op}:{out_id}",
                          json={"out_type": f"stored_value.{op}", "out_id": out_id, "member_id": member_id,
                                "amount_fen": amount_fen})
        assert data is not None
        balance = data.get("balance_fen")
        if not isinstance(balance, int):
            raise GatewayUnavailable("stored value answer has no balance")
        return balance

    def coupon(self, op: str, *, coupon_id: str, out_id: str) -> None:
        self._call("POST", f"/coupon/{op}", key=f"coupon:{op}:{out_id}",
                   json={"coupon_id": coupon_id, "out_type": "quote", "out_id": out_id})

    def member_lookup(self, *, phone: str = "", card_no: str = "", plate: str = "") -> dict[str, Any] | None:
        params = {k: v for k, v in (("phone", phone), ("card_no", card_no), ("plate", plate)) if v}
        data = self._call("GET", "/member/lookup", params=params, not_found_ok=True)
        if data is None:
            return None
        if not isinstance(data.get("member_id"), str):
            raise GatewayUnavailable("member answer has no member_id")
        return data

    def member_register(self, *, out_id: str, phone: str, name: str, plate: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {"out_type": "member.register", "out_id": out_id, "station_id": self.station_id,
                                "phone": phone, "name": name}
        if plate:
            body["plate"] = plate
        data = self._call("POST", "/member/register", key=f"member:register:{out_id}", json=body)
        assert data is not None
        if not isinstance(data.get("member_id"), str) or not data["member_id"]:
            raise GatewayUnavailable("member registration answer has no member_id")
        return data

    # ------------------------------------------------------------ invoices
    def invoice(self, *, order_id: str, amount_fen: int, title: str, tax_id: str | None,
                email: str | None) -> InvoiceResult:
        """Ask the center to issue the order's invoice; keyed by the order id (one invoice per order)."""
        data = self._call("POST", "/invoice", key=f"invoice:{order_id}",
                          json={"out_type": "invoice", "out_id": order_id, "order_id": order_id,
                                "station_id": self.station_id, "amount_fen": amount_fen, "title": title,
                                "tax_id": tax_id, "email": email})
        assert data is not None
        no, status, amount = data.get("invoice_no"), data.get("status"), data.get("amount_fen")
        if not isinstance(no, str) or not no or status != "issued" or isinstance(amount, bool) \
                or not isinstance(amount, int):
            raise GatewayUnavailable(f"invoice answer not understood: status={status!r}")
        return InvoiceResult(invoice_no=no, status=status, amount_fen=amount, title=str(data.get("title") or title))
