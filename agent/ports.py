"""What the domain core needs from the trade center, as a protocol ``sync/`` implements.

The core never speaks HTTP: ``sync.gateway.HttpCenterGateway`` implements
``CenterGateway`` against the center's API (seed 002).  Every call carries
the station-made id (``out_id``) so a repeat is idempotent at the center.

Outcomes:

* a normal return carries the center's answer;
* ``GatewayRejected`` — the center answered and said no (final);
* ``GatewayUnavailable`` — no answer (timeout, connection, 5xx): the outcome
  is **unknown**; the caller keeps its intent and asks again later with the
  same id (the sentinel), never assumes failure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["CenterGateway", "GatewayRejected", "GatewayUnavailable", "InvoiceResult", "TradeResult"]


class GatewayRejected(Exception):
    """The center refused (a final answer); ``errno`` is the center's 4xx code when it gave one."""

    def __init__(self, message: str = "", *, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno


class GatewayUnavailable(Exception):
    """No usable answer: the outcome is unknown; retry with the same id."""


@dataclass(frozen=True)
class TradeResult:
    out_trade_no: str
    status: str  #: pending | success | failed | closed
    amount_fen: int
    trade_no: str = ""
    pay_url: str = ""  #: merchant QR content for the customer display


@dataclass(frozen=True)
class InvoiceResult:
    """An invoice the center issued for one order (发票)."""

    invoice_no: str
    status: str  #: issued
    amount_fen: int
    title: str


class CenterGateway(Protocol):
    def gopay(self, *, out_trade_no: str, order_id: str, amount_fen: int, channel: str,
              auth_code: str | None = None) -> TradeResult: ...

    def query_trade(self, out_trade_no: str) -> TradeResult | None: ...

    def refund(self, *, out_refund_no: str, out_trade_no: str, amount_fen: int, reason: str) -> str: ...

    def stored_value(self, op: str, *, out_id: str, member_id: str, amount_fen: int) -> int: ...

    def coupon(self, op: str, *, coupon_id: str, out_id: str) -> None: ...

    def member_lookup(self, *, phone: str = "", card_no: str = "", plate: str = "") -> dict[str, Any] | None: ...

    def invoice(self, *, order_id: str, amount_fen: int, title: str, tax_id: str | None,
                email: str | None) -> InvoiceResult: ...

    def member_register(self, *, out_id: str, phone: str, name: str, plate: str | None) -> dict[str, Any]: ...
