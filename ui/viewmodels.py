"""View-models shared by the cashier window and the customer display (pure Python, no Qt).

Everything the screens show is computed here, so it is tested without Qt and
formatted in one place:

* ``PumpBoard`` keeps the last snapshot of every pump (from ``GET /pumps`` and
  ``pump.status`` / ``pump.progress`` / ``pump.alarm`` events) and turns each into
  a ``PumpTile``: display state, colours, texts, which actions make sense.
* ``OrderDraft`` is the order being built at the counter: fuel lines (stacked
  sales claimed from a pump), shop items and plain amounts, the member, and the
  quote (discounts explained) once the agent computed one.
* ``PaymentDraft`` holds the tenders of a (possibly combined) payment: remaining
  amount, cash tendered and change.
* ``CustomerView`` is what the customer display shows, derived from the draft
  and the payment phase.

Money is integer fen and volume integer mL throughout; ``agent.money`` (a pure
helper) formats them.  Limits: the quote is whatever the agent returned — no
discount is computed here, the UI never invents a price.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from agent.money import MoneyError, format_fen, format_ml, parse_yuan
from ui.i18n import tr

__all__ = [
    "TILE_COLOURS",
    "CustomerView",
    "DraftLine",
    "OrderDraft",
    "PaymentDraft",
    "Phase",
    "PumpBoard",
    "PumpTile",
    "Tender",
    "coupon_text",
    "customer_view",
    "money",
    "notice_view",
    "parse_amount",
    "pump_tile",
]


def money(fen: int) -> str:
    """``¥12.34`` (display only)."""
    return "¥" + format_fen(fen)


def litres(ml: int) -> str:
    """``12.35 L`` shown with two decimals (pump displays use two); exact value stays in mL."""
    text = format_ml(ml)
    return text[:-1] + " L"


#: display state -> (background, foreground, blinking background or "")
TILE_COLOURS: dict[str, tuple[str, str, str]] = {
    "idle": ("#E8F5E9", "#1B5E20", ""),
    "calling": ("#FFB300", "#000000", "#FFF3C4"),
    "authorized": ("#1E88E5", "#FFFFFF", ""),
    "fuelling": ("#00897B", "#FFFFFF", ""),
    "suspended": ("#00897B", "#FFFFFF", ""),
    "finishing": ("#26A69A", "#FFFFFF", ""),
    "unpaid": ("#8E24AA", "#FFFFFF", ""),
    "stopped": ("#C62828", "#FFFFFF", ""),
    "error": ("#D32F2F", "#FFFFFF", ""),
    "offline": ("#9E9E9E", "#212121", ""),
    "closed": ("#BDBDBD", "#212121", ""),
    "locked": ("#455A64", "#FFFFFF", ""),
}

_STATE_MAP = {
    "idle": "idle", "calling": "calling", "authorized": "authorized", "started": "authorized",
    "fuelling": "fuelling", "suspended": "suspended", "end_of_transaction": "finishing",
    "stopped": "stopped", "offline": "offline", "closed": "closed",
}


@dataclass(frozen=True)
class PumpTile:
    """One pump as the cashier sees it."""

    pump_id: int
    display: str  #: key of TILE_COLOURS
    title: str
    status: str  #: translated state name
    detail: str  #: nozzle + grade, or the alarm / lock reason
    litres: str  #: live or last litres ("" when nothing to show)
    amount: str
    unpaid: int
    unpaid_text: str
    blink: bool
    background: str
    foreground: str
    blink_background: str
    primary: str  #: "authorize" | "stop" | "add" | "" (what one tap does)
    can_stop: bool


def pump_tile(snap: dict[str, Any], grade_names: dict[str, str] | None = None) -> PumpTile:
    """Map a pump snapshot (``PumpView.snapshot``) to a tile."""
    names = grade_names or {}
    state = str(snap.get("state", "offline"))
    unpaid = int(snap.get("unpaid") or 0)
    display = _STATE_MAP.get(state, "error")
    if snap.get("alarm"):
        display = "error"
    elif snap.get("locked") and display in ("idle", "calling"):
        display = "locked"
    elif display == "idle" and unpaid:
        display = "unpaid"
    bg, fg, blink_bg = TILE_COLOURS[display]
    grade = snap.get("grade")
    nozzle = snap.get("nozzle")
    if display == "error":
        detail = str(snap.get("alarm") or "")
    elif display == "locked":
        detail = str(snap.get("lock_reason") or "")
    elif nozzle is not None and display not in ("idle", "offline", "closed"):
        detail = f"{tr('pump.nozzle', n=nozzle)}  {names.get(str(grade), str(grade or ''))}"
    else:
        detail = ""
    if snap.get("prices_ok") is False and display not in ("error", "offline"):
        detail = (detail + "  " if detail else "") + tr("pump.prices_bad")
    volume, amount = int(snap.get("volume_ml") or 0), int(snap.get("amount_fen") or 0)
    live = display in ("fuelling", "suspended", "finishing", "stopped") or (volume or amount)
    if display == "calling":
        primary = "authorize"
    elif display in ("authorized", "fuelling", "suspended"):
        primary = "stop"
    elif unpaid and display in ("unpaid", "idle", "calling", "locked"):
        primary = "add"
    else:
        primary = ""
    if display == "idle" and not snap.get("locked"):
        primary = primary or "authorize"
    return PumpTile(
        pump_id=int(snap["pump_id"]), display=display, title=tr("pump.title", n=snap["pump_id"]),
        status=tr("pump.unpaid_status") if display == "unpaid" else tr(f"pump.{display}"),
        detail=detail, litres=litres(volume) if live else "", amount=money(amount) if live else "",
        unpaid=unpaid, unpaid_text=tr("pump.unpaid", n=unpaid) if unpaid else "",
        blink=display == "calling", background=bg, foreground=fg, blink_background=blink_bg,
        primary=primary, can_stop=display in ("authorized", "fuelling", "suspended", "calling"),
    )


class PumpBoard:
    """Last known state of every pump; ``apply`` returns the pump ids whose tile changed."""

    def __init__(self) -> None:
        self.snapshots: dict[int, dict[str, Any]] = {}
        self.grade_names: dict[str, str] = {}

    def load(self, pumps: list[dict[str, Any]]) -> set[int]:
        self.snapshots = {int(p["pump_id"]): dict(p) for p in pumps}
        return set(self.snapshots)

    def set_grades(self, grades: list[dict[str, Any]]) -> None:
        self.grade_names = {str(g["code"]): str(g.get("name") or g["code"]) for g in grades}

    def apply(self, topic: str, data: dict[str, Any]) -> set[int]:
        pid = data.get("pump_id")
        if not isinstance(pid, int):
            return set()
        if topic == "pump.status":
            self.snapshots[pid] = dict(data)
            return {pid}
        snap = self.snapshots.get(pid)
        if snap is None:
            return set()
        if topic == "pump.progress":
            snap.update(volume_ml=data.get("volume_ml", 0), amount_fen=data.get("amount_fen", 0))
            if data.get("price_fen") is not None:
                snap["price_fen"] = data["price_fen"]
            if data.get("nozzle") is not None:
                snap["nozzle"] = data["nozzle"]
            return {pid}
        if topic == "pump.alarm":
            snap["alarm"] = f"{data.get('code')}: {data.get('text')}"
            return {pid}
        if topic == "pump.prices" and "ok" in data:
            snap["prices_ok"] = bool(data["ok"])
            return {pid}
        return set()

    def tile(self, pump_id: int) -> PumpTile:
        return pump_tile(self.snapshots[pump_id], self.grade_names)

    def tiles(self) -> list[PumpTile]:
        return [self.tile(pid) for pid in sorted(self.snapshots)]


# ---------------------------------------------------------------- order draft
@dataclass(frozen=True)
class DraftLine:
    """One line of the order at the counter, as the agent stored it."""

    line_no: int
    kind: str  #: "fuel" | "item" | "amount"
    name: str
    amount_fen: int
    quantity: int = 1
    unit_price_fen: int | None = None
    sku: str | None = None
    fill_id: str | None = None
    volume_ml: int | None = None
    discount_fen: int = 0  #: this line's share of the quoted discount

    def detail(self) -> str:
        if self.kind == "fuel":
            return tr("order.fuel_detail", litres=format_ml(self.volume_ml or 0)[:-1],
                      price=format_fen(self.unit_price_fen or 0))
        if self.kind == "item":
            return tr("order.item_detail", qty=self.quantity, price=format_fen(self.unit_price_fen or 0))
        return ""

    def title(self, grade_names: dict[str, str] | None = None) -> str:
        """Fuel lines are named by the agent ("3号机 5号枪 92#"); show the grade's full name when known."""
        if self.kind == "fuel" and self.sku and grade_names and self.sku in grade_names:
            return f"{self.name.rsplit(' ', 1)[0]} {grade_names[self.sku]}"
        if self.kind == "amount" and not self.name:
            return tr("order.amount_name")
        return self.name


@dataclass(frozen=True)
class Discount:
    """One discount of the quote, explained by the agent ("会员价 92#")."""

    name: str
    amount_fen: int


def parse_amount(text: str) -> int:
    """Yuan typed by the cashier (``"12.5"``) to fen; ``ValueError("bad_amount")`` if not a positive amount."""
    try:
        fen = parse_yuan(text)
    except MoneyError as exc:
        raise ValueError("bad_amount") from exc
    if fen <= 0:
        raise ValueError("bad_amount")
    return fen


@dataclass
class OrderDraft:
    """Mirror of the open order on the agent (lines, member, live quote); empty before the first line.

    The agent recomputes the quote on every change (seed 000) and stores it on
    the order, so the UI only ever shows what payment will charge.
    """

    lines: list[DraftLine] = field(default_factory=list)
    order_id: str | None = None
    receipt_no: str | None = None
    state: str = ""
    member_id: str | None = None
    member_name: str = ""
    discounts: list[Discount] = field(default_factory=list)
    total_fen: int = 0
    discount_fen: int = 0
    payable_fen: int = 0
    notes: list[str] = field(default_factory=list)
    grade_names: dict[str, str] = field(default_factory=dict)
    #: the member's coupons from the lookup (``coupon_id``, ``kind``, ``value``, ``min_spend_fen``, ``state``)
    coupons: list[dict[str, Any]] = field(default_factory=list)
    points_available: int = 0
    coupon_id: str | None = None  #: the coupon the quote used
    points_used: int = 0

    def load_order(self, order: dict[str, Any]) -> None:
        self.order_id = str(order["order_id"])
        self.receipt_no = order.get("receipt_no")
        self.state = str(order.get("state") or "")
        self.member_id = order.get("member_id")
        self.lines = [DraftLine(line_no=int(ln["line_no"]), kind=str(ln["kind"]), name=str(ln.get("name") or ""),
                                amount_fen=int(ln["amount_fen"]), quantity=int(ln.get("quantity") or 1),
                                unit_price_fen=ln.get("unit_price_fen"), sku=ln.get("sku"),
                                fill_id=ln.get("fill_id"), volume_ml=ln.get("volume_ml"),
                                discount_fen=int(ln.get("discount_fen") or 0))
                      for ln in order.get("lines", [])]
        quote = order.get("quote") or {}
        self.discounts = [Discount(str(d.get("name") or d.get("stage") or "?"), int(d["amount_fen"]))
                          for d in quote.get("discounts", []) if int(d.get("amount_fen") or 0)]
        self.notes = [str(n) for n in quote.get("notes", [])]
        self.coupon_id = quote.get("coupon_id")
        self.points_used = int(quote.get("points_used") or 0)
        self.total_fen = int(order.get("total_fen") or sum(ln.amount_fen for ln in self.lines))
        self.discount_fen = int(order.get("discount_fen") or 0)
        payable = order.get("payable_fen")
        self.payable_fen = int(payable) if payable is not None else self.total_fen - self.discount_fen

    def set_member(self, member: dict[str, Any] | None) -> None:
        self.member_id = member.get("member_id") if member else None
        self.member_name = str(member.get("name") or member.get("phone") or "") if member else ""
        self.coupons = [dict(c) for c in (member or {}).get("coupons") or [] if isinstance(c, dict)]
        self.points_available = int((member or {}).get("points_available", (member or {}).get("points")) or 0)

    def usable_coupons(self) -> list[dict[str, Any]]:
        """The member's coupons that can still be used (state ``available``)."""
        return [c for c in self.coupons if str(c.get("state") or "available") == "available"]

    def clear(self) -> None:
        grades = self.grade_names
        self.__init__()  # type: ignore[misc]
        self.grade_names = grades


    @property
    def subtotal_fen(self) -> int:
        return self.total_fen

    def fill_ids(self) -> list[str]:
        return [ln.fill_id for ln in self.lines if ln.fill_id]

    def is_empty(self) -> bool:
        return not self.lines


# ---------------------------------------------------------------- payment
@dataclass(frozen=True)
class Tender:
    """One leg of a payment, named as the agent's API names tenders: ``cash``, ``qr_scan`` (the
    customer's code, ``ref``), ``qr_show`` (merchant QR on the customer display), ``stored_value``."""

    method: str
    amount_fen: int
    ref: str | None = None
    given_fen: int | None = None  #: cash only: what the customer handed over

    def to_api(self) -> dict[str, Any]:
        out: dict[str, Any] = {"tender": self.method, "amount_fen": self.amount_fen}
        if self.ref and self.method == "qr_scan":
            out["auth_code"] = self.ref
        if self.given_fen is not None:
            out["given_fen"] = self.given_fen
        return out


@dataclass
class PaymentDraft:
    """Tenders towards ``payable_fen``; cash may exceed what is left (change), nothing else may."""

    payable_fen: int
    legs: list[Tender] = field(default_factory=list)

    @property
    def paid_fen(self) -> int:
        return sum(t.amount_fen for t in self.legs)

    @property
    def remaining_fen(self) -> int:
        return max(0, self.payable_fen - self.paid_fen)

    @property
    def change_fen(self) -> int:
        return sum((t.given_fen or 0) - t.amount_fen for t in self.legs if t.method == "cash")

    def add(self, method: str, amount_fen: int | None = None, *, ref: str | None = None) -> Tender:
        """Add a leg for ``amount_fen`` (default: all that is left). Cash beyond the rest is change."""
        left = self.remaining_fen
        if left <= 0:
            raise ValueError("nothing left to pay")
        if amount_fen is None:
            amount_fen = left
        if amount_fen <= 0:
            raise ValueError("bad_amount")
        if method == "cash":
            leg = Tender("cash", min(amount_fen, left), ref, given_fen=amount_fen)
        else:
            if amount_fen > left:
                raise ValueError("bad_amount")
            leg = Tender(method, amount_fen, ref)
        self.legs.append(leg)
        return leg

    def remove(self, index: int) -> None:
        if 0 <= index < len(self.legs):
            del self.legs[index]

    @property
    def complete(self) -> bool:
        return self.remaining_fen == 0


class Keypad:
    """Cash keypad entry as text, validated into fen (two decimals at most)."""

    def __init__(self) -> None:
        self.text = ""

    def press(self, key: str) -> str:
        if key == "C":
            self.text = ""
        elif key == "<":
            self.text = self.text[:-1]
        elif key == "." and "." in self.text:
            pass
        elif key.isdigit() or key == ".":
            candidate = self.text + key
            whole, _, frac = candidate.partition(".")
            if len(frac) <= 2 and len(whole) <= 6:
                self.text = candidate
        return self.text

    def fen(self) -> int | None:
        try:
            return parse_yuan(self.text) if self.text else None
        except MoneyError:
            return None


# ---------------------------------------------------------------- customer display
class Phase(enum.Enum):
    """What the customer display is showing."""

    #: Slideshow / ads.
    IDLE = "idle"
    #: The current order as it changes.
    ORDER = "order"
    #: Merchant QR to scan and pay.
    QR = "qr"
    #: Payment accepted: result and thank-you.
    PAID = "paid"
    #: Payment refused or cancelled.
    FAILED = "failed"


@dataclass(frozen=True)
class CustomerRow:
    title: str
    detail: str
    amount: str


@dataclass(frozen=True)
class CustomerView:
    phase: Phase
    rows: tuple[CustomerRow, ...] = ()
    discounts: tuple[CustomerRow, ...] = ()
    subtotal: str = ""
    discount: str = ""
    payable: str = ""
    qr_payload: str = ""
    headline: str = ""
    message: str = ""


def customer_view(phase: Phase, draft: OrderDraft | None, *, qr_payload: str = "", change_fen: int = 0,
                  reason: str = "") -> CustomerView:
    """What the customer sees for ``phase`` and the order ``draft``."""
    if phase is Phase.IDLE or draft is None:
        return CustomerView(Phase.IDLE, headline=tr("cust.welcome"))
    rows = tuple(CustomerRow(ln.title(draft.grade_names), ln.detail(), money(ln.amount_fen)) for ln in draft.lines)
    discounts = tuple(CustomerRow(d.name, "", "-" + money(d.amount_fen)) for d in draft.discounts)
    common: dict[str, Any] = {
        "rows": rows, "discounts": discounts, "subtotal": money(draft.subtotal_fen),
        "discount": "-" + money(draft.discount_fen) if draft.discount_fen else "",
        "payable": money(draft.payable_fen),
    }
    if phase is Phase.ORDER:
        return CustomerView(Phase.ORDER, headline=tr("cust.your_order"), **common)
    if phase is Phase.QR:
        return CustomerView(Phase.QR, headline=tr("cust.scan_to_pay", amount=format_fen(draft.payable_fen)),
                            qr_payload=qr_payload, **common)
    if phase is Phase.PAID:
        msg = tr("cust.change", amount=format_fen(change_fen)) if change_fen > 0 else ""
        return CustomerView(Phase.PAID, headline=tr("cust.paid"), message=(msg + "\n" if msg else "")
                            + tr("cust.thanks"), **common)
    return CustomerView(Phase.FAILED, headline=tr("cust.failed"), message=reason, **common)


def notice_view(headline: str, amount: str, message: str) -> CustomerView:
    """A result that is not an order at the counter (a prepay taken, an underrun refunded)."""
    return CustomerView(Phase.PAID, headline=headline, payable=amount, message=message)


def coupon_text(coupon: dict[str, Any]) -> str:
    """``C001 减 ¥5.00（满 ¥100.00）`` / ``C002 95折…``: a coupon as the pick list shows it."""
    cid, value, min_spend = str(coupon.get("coupon_id")), int(coupon.get("value") or 0), \
        int(coupon.get("min_spend_fen") or 0)
    if str(coupon.get("kind")) in ("rate", "percent", "discount_rate"):
        pct = (10_000 - value) / 100  # basis points off -> percent paid
        return tr("coupon.rate", id=cid, pct=f"{pct:g}", min=format_fen(min_spend))
    return tr("coupon.cash", id=cid, value=format_fen(value), min=format_fen(min_spend))

