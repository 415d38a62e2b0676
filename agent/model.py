"""Domain types of the station: configuration, fills, orders, payments, shifts.

Frozen dataclasses; states are Enums whose members say what they mean.  These
types carry no behaviour that needs I/O.  Money is integer fen, volume integer
mL, unit prices fen per litre (see ``agent.money``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

__all__ = [
    "AuditEntry",
    "Coupon",
    "Fill",
    "FillState",
    "Grade",
    "InboxMessage",
    "LineKind",
    "Member",
    "Nozzle",
    "Order",
    "OrderLine",
    "OrderState",
    "OutboxMessage",
    "OutboxState",
    "PaymentLeg",
    "PaymentState",
    "PriceSet",
    "Pump",
    "Refund",
    "Shift",
    "ShiftState",
    "Tender",
]


@dataclass(frozen=True)
class Grade:
    """A fuel grade (油品): ``92#``, ``95#``, ``0#`` diesel."""

    code: str  #: stable code used on the wire and in the database, e.g. "92"
    name: str  #: display name, e.g. "92#汽油"


@dataclass(frozen=True)
class Nozzle:
    """One nozzle (油枪); ``number`` is the station-wide gun number customers name."""

    number: int  #: station-wide gun number ("3号枪")
    pump_id: int
    logical: int  #: the pump's own logical nozzle (1..15)
    grade: str  #: Grade.code


@dataclass(frozen=True)
class Pump:
    """A fuelling point on a bus line."""

    pump_id: int
    line: str
    address: int
    nozzles: tuple[Nozzle, ...]


@dataclass(frozen=True)
class PriceSet:
    """Unit prices per grade, fen/L, with a version; every fill records the version it used."""

    version: int
    prices_fen: dict[str, int]  #: grade code → fen per litre
    effective_at_ms: int = 0


class FillState(enum.Enum):
    #: Authorization sent (id minted before the first bus command).
    AUTHORIZED = "authorized"
    #: Product flowing.
    FUELLING = "fuelling"
    #: Finished and committed with totalizers: an unpaid (stacked) sale.
    FINISHED = "finished"
    #: Claimed by an open order.
    CLAIMED = "claimed"
    #: Paid as part of an order.
    PAID = "paid"
    #: Zero-volume end (authorized, then hung up without flow).
    ZERO = "zero"
    #: In doubt after a restart: never re-sent, waiting for the pump's own state.
    NEEDS_RECONCILIATION = "needs_reconciliation"


@dataclass(frozen=True)
class Fill:
    """One delivery on a nozzle."""

    fill_id: str
    pump_id: int
    nozzle: int | None
    grade: str | None
    state: FillState
    volume_ml: int = 0
    amount_fen: int = 0
    price_fen: int | None = None
    price_set_version: int | None = None
    preset_amount_fen: int | None = None
    preset_volume_ml: int | None = None
    start_total_ml: int | None = None
    end_total_ml: int | None = None
    order_id: str | None = None


class LineKind(enum.Enum):
    FUEL = "fuel"  #: a fill claimed from a pump
    ITEM = "item"  #: a shop item from the catalog
    AMOUNT = "amount"  #: "pay an amount" (买单) default item


@dataclass(frozen=True)
class OrderLine:
    """A sub-order (子订单): one fuel fill, one shop item, or a plain amount."""

    line_no: int
    kind: LineKind
    name: str
    amount_fen: int
    quantity: int = 1  #: items; for fuel the volume is in ``volume_ml``
    unit_price_fen: int = 0
    volume_ml: int = 0
    fill_id: str | None = None
    sku: str | None = None
    discount_fen: int = 0

    @property
    def payable_fen(self) -> int:
        return self.amount_fen - self.discount_fen


class OrderState(enum.Enum):
    INIT = "init"  #: created, not paid
    PAID = "paid"  #: every payment leg confirmed
    CLOSED = "closed"  #: cancelled or timed out; every lock released


@dataclass(frozen=True)
class Order:
    """A checkout (主订单)."""

    order_id: str
    receipt_no: str
    state: OrderState
    lines: tuple[OrderLine, ...]
    created_at_ms: int
    cashier: str | None = None
    member_id: str | None = None
    shift_id: str | None = None

    @property
    def total_fen(self) -> int:
        return sum(line.amount_fen for line in self.lines)

    @property
    def discount_fen(self) -> int:
        return sum(line.discount_fen for line in self.lines)

    @property
    def payable_fen(self) -> int:
        return self.total_fen - self.discount_fen


class Tender(enum.Enum):
    CASH = "cash"
    STORED_VALUE = "stored_value"  #: member balance (储值)
    COUPON = "coupon"
    POINTS = "points"
    QR_SCAN = "qr_scan"  #: customer-presented code scanned at the counter (被扫)
    QR_SHOW = "qr_show"  #: merchant QR on the customer screen (主扫)
    PLATE_PAY = "plate_pay"  #: 无感支付, plate-linked auto-pay


class PaymentState(enum.Enum):
    INTENT = "intent"  #: recorded before the provider is called
    PENDING = "pending"  #: asked, result not known yet (the sentinel queries it)
    CONFIRMED = "confirmed"
    FAILED = "failed"
    COMPENSATED = "compensated"  #: refunded/unlocked after another leg failed
    DUPLICATE = "duplicate"  #: a second success for a paid order; refunded automatically


@dataclass(frozen=True)
class PaymentLeg:
    """One tender of a possibly combined payment (支付单)."""

    payment_id: str
    order_id: str
    leg_no: int
    tender: Tender
    amount_fen: int
    state: PaymentState
    provider_ref: str | None = None


@dataclass(frozen=True)
class Refund:
    """A refund is its own record, never an edit of the payment."""

    refund_id: str
    order_id: str
    payment_id: str
    amount_fen: int
    reason: str
    state: str = "pending"


class ShiftState(enum.Enum):
    OPEN = "open"
    CLOSED = "closed"  #: immutable


@dataclass(frozen=True)
class Shift:
    shift_id: str
    cashier: str
    opened_at_ms: int
    state: ShiftState = ShiftState.OPEN
    closed_at_ms: int | None = None


@dataclass(frozen=True)
class Member:
    """Cached member data (the center is the owner)."""

    member_id: str
    name: str
    level: str = "normal"
    phone: str | None = None
    card_no: str | None = None
    plates: tuple[str, ...] = ()
    balance_fen: int = 0
    points: int = 0


@dataclass(frozen=True)
class Coupon:
    coupon_id: str
    member_id: str
    kind: str  #: "cash" (fixed fen off) or "rate" (basis points off)
    value: int
    min_spend_fen: int = 0
    state: str = "available"  #: available | locked | settled | released
    locked_by_order: str | None = None


@dataclass(frozen=True)
class AuditEntry:
    """Who did what sensitive thing, when, before and after."""

    at_ms: int
    actor: str
    action: str
    target: str
    before: dict[str, object] = field(default_factory=dict)
    after: dict[str, object] = field(default_factory=dict)


class OutboxState(enum.Enum):
    PENDING = "pending"  #: not yet accepted by the center
    CONFIRMED = "confirmed"  #: the center's idempotent 2xx / application ack
    PARKED = "parked"  #: rejected as invalid; kept with its reason, never blocks others


@dataclass(frozen=True)
class OutboxMessage:
    id: int
    event_id: str
    aggregate: str  #: "order", "fill", "shift" … (ordering is per aggregate id)
    aggregate_id: str
    kind: str
    payload: dict[str, object]
    state: OutboxState
    attempts: int = 0
    next_attempt_at_ms: int = 0
    last_error: str | None = None
    created_at_ms: int = 0


@dataclass(frozen=True)
class InboxMessage:
    command_id: str
    kind: str
    payload: dict[str, object]
    received_at_ms: int
    status: str = "applied"  #: applied | parked
    result: dict[str, object] | None = None
